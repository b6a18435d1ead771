/* core/tokenizer.c - loading tokenizer.json, pre-tokenizer, BPE, added tokens.
 * Decoding lives in core/tok_decode.c; shared internals in core/tok_internal.h. */
#include "tok_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include <xxhash.h>

/* ------------------------------------------------------------------------- */
/* UTF-8 */

size_t core_utf8_valid_prefix(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) need = 1;
		else if (c == 0xE0) { need = 2; lo = 0xA0; }
		else if (c == 0xED) { need = 2; hi = 0x9F; }
		else if (c >= 0xE1 && c <= 0xEF) need = 2;
		else if (c == 0xF0) { need = 3; lo = 0x90; }
		else if (c == 0xF4) { need = 3; hi = 0x8F; }
		else if (c >= 0xF1 && c <= 0xF3) need = 3;
		else return i;
		if (i + need >= n) return i;
		if (p[i + 1] < lo || p[i + 1] > hi) return i;
		for (size_t k = 2; k <= need; k++)
			if ((p[i + k] & 0xC0) != 0x80) return i;
		i += need + 1;
	}
	return n;
}

/* Code point at s (n > 0 bytes left); tolerant of bad input (returns U+FFFD). */
static uint32_t utf8_cp(const uint8_t *s, size_t n, size_t *len)
{
	uint8_t c = s[0];
	size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	if (l > n || (c >= 0x80 && c < 0xC0)) { *len = 1; return 0xFFFD; }
	*len = l;
	switch (l) {
	case 1: return c;
	case 2: return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
	case 3: return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
	default:
		return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
		       ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
	}
}

static size_t utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) { out[0] = (char)cp; return 1; }
	if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 63)); return 2; }
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 63));
		out[2] = (char)(0x80 | (cp & 63)); return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 63));
	out[2] = (char)(0x80 | ((cp >> 6) & 63)); out[3] = (char)(0x80 | (cp & 63));
	return 4;
}

/* GPT-2 byte <-> unicode table (CHAT.md A.4). */
static void byte_table(uint32_t fwd[256], int16_t inv[TOK_INV_N])
{
	int k = 0;
	for (int i = 0; i < TOK_INV_N; i++) inv[i] = -1;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
		fwd[b] = printable ? (uint32_t)b : (uint32_t)(256 + k++);
		inv[fwd[b]] = (int16_t)b;
	}
}

/* ------------------------------------------------------------------------- */
/* Hash maps */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int pairmap_init(struct tok_pairmap *m, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2) cap <<= 1;
	m->slot = malloc(cap * sizeof *m->slot);
	if (!m->slot) return -1;
	for (size_t i = 0; i < cap; i++) m->slot[i].key = UINT64_MAX;
	m->mask = cap - 1;
	return 0;
}

/* Later duplicates overwrite earlier ones (as the reference's map construction). */
static void pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = mix64(key) & m->mask;
	while (m->slot[i].key != UINT64_MAX && m->slot[i].key != key) i = (i + 1) & m->mask;
	m->slot[i].key = key;
	m->slot[i].rank = rank;
	m->slot[i].id = id;
}

static inline const struct tok_pair *pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = mix64(key) & m->mask;
	for (;;) {
		const struct tok_pair *p = &m->slot[i];
		if (p->key == key) return p;
		if (p->key == UINT64_MAX) return NULL;
		i = (i + 1) & m->mask;
	}
}

/* Load-time string -> id map; keys borrowed from the cJSON tree. */
struct strmap {
	const char **key; /* [cap] */
	uint32_t *klen;   /* [cap] */
	int32_t *val;     /* [cap] */
	size_t mask;
};

static int strmap_init(struct strmap *m, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2) cap <<= 1;
	m->key = calloc(cap, sizeof *m->key);
	m->klen = calloc(cap, sizeof *m->klen);
	m->val = calloc(cap, sizeof *m->val);
	m->mask = cap - 1;
	return (m->key && m->klen && m->val) ? 0 : -1;
}

static void strmap_free(struct strmap *m)
{
	free(m->key); free(m->klen); free(m->val);
}

/* Returns 1 when the key was already present (value left unchanged). */
static int strmap_put(struct strmap *m, const char *k, size_t n, int32_t v)
{
	size_t i = XXH3_64bits(k, n) & m->mask;
	while (m->key[i]) {
		if (m->klen[i] == n && !memcmp(m->key[i], k, n)) return 1;
		i = (i + 1) & m->mask;
	}
	m->key[i] = k; m->klen[i] = (uint32_t)n; m->val[i] = v;
	return 0;
}

static int32_t strmap_get(const struct strmap *m, const char *k, size_t n)
{
	size_t i = XXH3_64bits(k, n) & m->mask;
	while (m->key[i]) {
		if (m->klen[i] == n && !memcmp(m->key[i], k, n)) return m->val[i];
		i = (i + 1) & m->mask;
	}
	return -1;
}

/* ------------------------------------------------------------------------- */
/* Added-token trie (leftmost-longest matching, CHAT.md A.6) */

static int trie_node(struct core_tok *t, uint8_t c)
{
	if (t->n_trie == t->cap_trie) {
		size_t nc = t->cap_trie ? t->cap_trie * 2 : 256;
		struct tok_trie *p = realloc(t->trie, nc * sizeof *p);
		if (!p) return -1;
		t->trie = p;
		t->cap_trie = nc;
	}
	struct tok_trie *nd = &t->trie[t->n_trie];
	nd->c = c; nd->child = -1; nd->sibling = -1; nd->id = -1;
	return (int)t->n_trie++;
}

static int trie_add(struct core_tok *t, const uint8_t *s, size_t n, int32_t id)
{
	int cur = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = t->trie[cur].child, found = -1;
		for (; ch >= 0; ch = t->trie[ch].sibling)
			if (t->trie[ch].c == s[i]) { found = ch; break; }
		if (found < 0) {
			found = trie_node(t, s[i]);
			if (found < 0) return -1;
			t->trie[found].sibling = t->trie[cur].child;
			t->trie[cur].child = found;
		}
		cur = found;
	}
	t->trie[cur].id = id; /* a repeated content keeps the last id, like a map insert */
	t->first_byte[s[0]] = 1;
	return 0;
}

/* Longest added token starting at s; returns its length (0 if none), *id set. */
static size_t trie_longest(const struct core_tok *t, const uint8_t *s, size_t n, int32_t *id)
{
	int cur = 0;
	size_t best = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = t->trie[cur].child;
		while (ch >= 0 && t->trie[ch].c != s[i]) ch = t->trie[ch].sibling;
		if (ch < 0) break;
		cur = ch;
		if (t->trie[cur].id >= 0) { best = i + 1; *id = t->trie[cur].id; }
	}
	return best;
}

int32_t core_tok_added_id(const struct core_tok *t, const char *s)
{
	int32_t id = -1;
	size_t n = strlen(s);
	if (!n || !t->n_trie) return -1;
	return trie_longest(t, (const uint8_t *)s, n, &id) == n ? id : -1;
}

/* ------------------------------------------------------------------------- */
/* Loading */

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1 if key absent or JSON null / false. */
static int jfalsy(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return !v || cJSON_IsNull(v) || cJSON_IsFalse(v);
}

static int junsup(struct core_tok *t, struct nv_err *e, const char *obj, const char *why)
{
	return core_err_set(e, NV_EUNSUPPORTED, t->name, obj,
			    "nvmoe supports byte-level BPE tokenizers like DeepSeek-V3/V4's",
			    "%s", why);
}

/* Oniguruma's \s is Unicode White_Space (TAB..CR, U+0085, Zs, Zl, Zp); PCRE2's UCP
 * \s also matches U+180E, so \s and \S are spelled out (CHAT.md A.9).  Inside a
 * character class only \s can be expanded; \S there keeps PCRE2's meaning. */
static char *translate_regex(const char *pat, size_t n, size_t *out_n)
{
	static const char ws_in[] = "\\t-\\r\\x{85}\\p{Z}";
	size_t cap = n * 10 + 64, o = 0; /* a 2-byte \S becomes 19 bytes */
	char *out = malloc(cap);
	if (!out) return NULL;
	int in_class = 0;
	for (size_t i = 0; i < n; i++) {
		char c = pat[i];
		if (c == '\\' && i + 1 < n) {
			char d = pat[i + 1];
			if (d == 's' || (d == 'S' && !in_class)) {
				if (!in_class) out[o++] = '[';
				if (d == 'S') out[o++] = '^';
				memcpy(out + o, ws_in, sizeof ws_in - 1);
				o += sizeof ws_in - 1;
				if (!in_class) out[o++] = ']';
			} else {
				out[o++] = c;
				out[o++] = d;
			}
			i++;
			continue;
		}
		if (!in_class && c == '[') {
			in_class = 1;
			out[o++] = c;
			/* a leading ']' or '^]' is a literal */
			if (i + 1 < n && pat[i + 1] == '^') out[o++] = pat[++i];
			if (i + 1 < n && pat[i + 1] == ']') out[o++] = pat[++i];
			continue;
		}
		if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') {
			const char *end = strstr(pat + i + 2, ":]");
			if (end && (size_t)(end - pat) < n) {
				size_t k = (size_t)(end - pat) + 2 - i;
				memcpy(out + o, pat + i, k);
				o += k;
				i += k - 1;
				continue;
			}
		}
		if (in_class && c == ']') in_class = 0;
		out[o++] = c;
	}
	out[o] = 0;
	*out_n = o;
	return out;
}

static int add_split(struct core_tok *t, const cJSON *step, int idx, struct nv_err *e)
{
	char obj[64];
	snprintf(obj, sizeof obj, "pre_tokenizer step %d (Split)", idx);
	if (t->n_split == TOK_MAX_SPLIT)
		return junsup(t, e, obj, "more than 8 Split steps");
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(step, "pattern");
	const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
	const char *beh = jstr(step, "behavior");
	if (!re && !lit)
		return core_err_set(e, NV_EINVAL, t->name, obj, NULL,
				    "expected \"pattern\": {\"Regex\": ...} or {\"String\": ...}");
	if (!beh || (strcmp(beh, "Isolated") && strcmp(beh, "Removed")))
		return junsup(t, e, obj, "behavior must be Isolated or Removed");
	if (!jfalsy(step, "invert"))
		return junsup(t, e, obj, "invert: true is not supported");
	struct tok_split *sp = &t->split[t->n_split];
	sp->removed = !strcmp(beh, "Removed");
	int ec;
	PCRE2_SIZE eo;
	if (re) {
		size_t tn;
		char *tr = translate_regex(re, strlen(re), &tn);
		if (!tr) return core_err_set(e, NV_ENOMEM, t->name, obj, NULL, "out of memory");
		sp->re = pcre2_compile((PCRE2_SPTR)tr, tn, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
		free(tr);
	} else {
		sp->re = pcre2_compile((PCRE2_SPTR)lit, strlen(lit), PCRE2_UTF | PCRE2_LITERAL, &ec, &eo,
				       NULL);
	}
	if (!sp->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		return core_err_set(e, NV_EINVAL, t->name, obj, "the pattern must be a valid regex",
				    "cannot compile /%s/: %s at offset %zu", re ? re : lit, (char *)msg,
				    (size_t)eo);
	}
	sp->jit = pcre2_jit_compile(sp->re, PCRE2_JIT_COMPLETE) == 0;
	sp->md = pcre2_match_data_create_from_pattern(sp->re, NULL);
	if (!sp->md) return core_err_set(e, NV_ENOMEM, t->name, obj, NULL, "out of memory");
	t->n_split++;
	return 0;
}

static int parse_pretok(struct core_tok *t, const cJSON *pt, struct nv_err *e)
{
	if (!pt || cJSON_IsNull(pt))
		return junsup(t, e, "pre_tokenizer", "a ByteLevel step is required (found none)");
	const char *type = jstr(pt, "type");
	const cJSON *list = NULL;
	if (type && !strcmp(type, "Sequence")) list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
	int idx = 0, have_bl = 0;
	const cJSON *step = list ? list->child : pt;
	if (list && !cJSON_IsArray(list))
		return core_err_set(e, NV_EINVAL, t->name, "pre_tokenizer.pretokenizers", NULL,
				    "expected an array");
	for (; step; step = list ? step->next : NULL, idx++) {
		const char *st = jstr(step, "type");
		char obj[64];
		snprintf(obj, sizeof obj, "pre_tokenizer step %d", idx);
		if (!st) return core_err_set(e, NV_EINVAL, t->name, obj, NULL, "missing \"type\"");
		if (have_bl) return junsup(t, e, obj, "steps after ByteLevel are not supported");
		if (!strcmp(st, "Split")) {
			int rc = add_split(t, step, idx, e);
			if (rc) return rc;
		} else if (!strcmp(st, "ByteLevel")) {
			if (!jfalsy(step, "add_prefix_space"))
				return junsup(t, e, obj, "ByteLevel add_prefix_space: true is not supported");
			if (!jfalsy(step, "use_regex"))
				return junsup(t, e, obj, "ByteLevel use_regex: true is not supported");
			have_bl = 1;
		} else {
			char why[128];
			snprintf(why, sizeof why, "pre-tokenizer type \"%s\" is not supported", st);
			return junsup(t, e, obj, why);
		}
		if (!list) break;
	}
	if (!have_bl) return junsup(t, e, "pre_tokenizer", "a ByteLevel step is required (found none)");
	return 0;
}

static int check_model(struct core_tok *t, const cJSON *m, struct nv_err *e)
{
	const char *type = jstr(m, "type");
	if (!type || strcmp(type, "BPE")) return junsup(t, e, "model.type", "only \"BPE\" is supported");
	static const char *const must_null[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix",
						"byte_fallback", "ignore_merges", "fuse_unk"};
	for (size_t i = 0; i < sizeof must_null / sizeof must_null[0]; i++)
		if (!jfalsy(m, must_null[i])) {
			char obj[64], why[128];
			snprintf(obj, sizeof obj, "model.%s", must_null[i]);
			snprintf(why, sizeof why, "expected null/false (no %s support)", must_null[i]);
			return junsup(t, e, obj, why);
		}
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(t->root_tmp, "normalizer");
	if (n && !cJSON_IsNull(n)) {
		const char *nt = jstr(n, "type");
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
		if (!nt || strcmp(nt, "Sequence") || !cJSON_IsArray(l) || cJSON_GetArraySize(l) != 0)
			return junsup(t, e, "normalizer", "only an empty normalizer Sequence is supported");
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(t->root_tmp, "decoder");
	if (!d || !jstr(d, "type") || strcmp(jstr(d, "type"), "ByteLevel"))
		return junsup(t, e, "decoder", "only the ByteLevel decoder is supported");
	return 0;
}

#define TOK_MAX_IDS (1 << 24)

static int json_id(const cJSON *v, int32_t *id)
{
	if (!cJSON_IsNumber(v)) return -1;
	double d = v->valuedouble;
	if (!(d >= 0 && d < TOK_MAX_IDS) || d != (double)(int32_t)d) return -1;
	*id = (int32_t)d;
	return 0;
}

static int load_tables(struct core_tok *t, const cJSON *root, struct nv_err *e)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (!cJSON_IsObject(model))
		return core_err_set(e, NV_EINVAL, t->name, "model", "is this a tokenizer.json file?",
				    "missing \"model\" object");
	int rc = check_model(t, model, e);
	if (rc) return rc;
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
	if (!cJSON_IsObject(vocab))
		return core_err_set(e, NV_EINVAL, t->name, "model.vocab", NULL, "expected an object");
	if (!cJSON_IsArray(merges))
		return core_err_set(e, NV_EINVAL, t->name, "model.merges", NULL, "expected an array");
	if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
		return core_err_set(e, NV_EINVAL, t->name, "added_tokens", NULL, "expected an array");

	/* id space */
	int32_t max_id = -1;
	size_t n_vocab = 0, n_added = 0, n_merges = (size_t)cJSON_GetArraySize(merges);
	for (const cJSON *v = vocab->child; v; v = v->next, n_vocab++) {
		int32_t id = 0;
		if (json_id(v, &id))
			return core_err_set(e, NV_EINVAL, t->name, "model.vocab", NULL,
					    "entry \"%.80s\": expected an integer id in [0, %d)", v->string,
					    TOK_MAX_IDS);
		if (id > max_id) max_id = id;
	}
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next, n_added++) {
		int32_t id = 0;
		char obj[64];
		snprintf(obj, sizeof obj, "added_tokens[%zu]", n_added);
		if (json_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id) || !jstr(a, "content") ||
		    !jstr(a, "content")[0])
			return core_err_set(e, NV_EINVAL, t->name, obj, NULL,
					    "expected {\"id\": integer, \"content\": non-empty string}");
		if (!jfalsy(a, "lstrip") || !jfalsy(a, "rstrip") || !jfalsy(a, "single_word"))
			return junsup(t, e, obj, "lstrip/rstrip/single_word must be false");
		if (id > max_id) max_id = id;
	}
	if (max_id < 0) return core_err_set(e, NV_EINVAL, t->name, "model.vocab", NULL, "vocabulary is empty");
	t->n_ids = max_id + 1;

	struct strmap sm;
	if (strmap_init(&sm, n_vocab + 1)) return core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory");
	const char **idstr = calloc((size_t)t->n_ids, sizeof *idstr);
	t->id_flags = calloc((size_t)t->n_ids, 1);
	t->dec_off = calloc((size_t)t->n_ids + 1, sizeof *t->dec_off);
	if (!idstr || !t->id_flags || !t->dec_off) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); goto out; }
	size_t total = 0;
	for (const cJSON *v = vocab->child; v; v = v->next) {
		int32_t id = 0;
		json_id(v, &id);
		if (strmap_put(&sm, v->string, strlen(v->string), id)) {
			rc = core_err_set(e, NV_EINVAL, t->name, "model.vocab", NULL, "duplicate entry \"%.80s\"", v->string);
			goto out;
		}
		if (idstr[id]) {
			rc = core_err_set(e, NV_EINVAL, t->name, "model.vocab", NULL,
					  "id %d is used by \"%.60s\" and \"%.60s\"", id, idstr[id], v->string);
			goto out;
		}
		idstr[id] = v->string;
		t->id_flags[id] = TOK_F_HAS;
	}
	/* Added tokens take precedence for id -> string (their content is raw text). */
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
		int32_t id = 0;
		json_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id);
		idstr[id] = jstr(a, "content");
		t->id_flags[id] = TOK_F_HAS | TOK_F_ADDED |
				  (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) ? TOK_F_SPECIAL : 0);
	}
	for (int32_t i = 0; i < t->n_ids; i++) total += idstr[i] ? strlen(idstr[i]) : 0;
	t->dec = malloc(total + 1);
	if (!t->dec) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); goto out; }
	/* Decoded bytes: byte-level inverse of each symbol; a string with a character
	 * outside the byte table is used as raw UTF-8 (added tokens always are). */
	size_t off = 0;
	for (int32_t i = 0; i < t->n_ids; i++) {
		t->dec_off[i] = (uint32_t)off;
		const char *s = idstr[i];
		if (!s) continue;
		size_t sl = strlen(s), j = 0, o2 = off;
		int raw = (t->id_flags[i] & TOK_F_ADDED) != 0;
		while (!raw && j < sl) {
			size_t cl;
			uint32_t cp = utf8_cp((const uint8_t *)s + j, sl - j, &cl);
			if (cp >= TOK_INV_N || t->inv[cp] < 0) { raw = 1; break; }
			t->dec[o2++] = (char)t->inv[cp];
			j += cl;
		}
		if (raw) { memcpy(t->dec + off, s, sl); o2 = off + sl; }
		off = o2;
		if (o2 - t->dec_off[i] > t->max_id_bytes) t->max_id_bytes = o2 - t->dec_off[i];
	}
	t->dec_off[t->n_ids] = (uint32_t)off;

	for (int b = 0; b < 256; b++) {
		char sym[4];
		size_t l = utf8_put(t->fwd[b], sym);
		t->byte_id[b] = strmap_get(&sm, sym, l);
		if (t->byte_id[b] < 0) {
			rc = core_err_set(e, NV_EINVAL, t->name, "model.vocab",
					  "a byte-level BPE vocabulary has all 256 byte symbols",
					  "the symbol of byte 0x%02X (U+%04X) is missing", b, t->fwd[b]);
			goto out;
		}
	}

	if (pairmap_init(&t->merges, n_merges + 1)) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); goto out; }
	char *cat = NULL;
	size_t cat_cap = 0;
	int32_t rank = 0;
	for (const cJSON *m = merges->child; m; m = m->next, rank++) {
		const char *l, *r;
		size_t ln, rn;
		if (cJSON_IsString(m)) {
			const char *sp = strchr(m->valuestring, ' ');
			if (!sp || strchr(sp + 1, ' ')) {
				rc = core_err_set(e, NV_EINVAL, t->name, "model.merges", NULL,
						  "merge %d \"%.80s\": expected two symbols separated by one space",
						  rank, m->valuestring);
				break;
			}
			l = m->valuestring; ln = (size_t)(sp - l);
			r = sp + 1; rn = strlen(r);
		} else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
			   cJSON_IsString(m->child->next)) {
			l = m->child->valuestring; ln = strlen(l);
			r = m->child->next->valuestring; rn = strlen(r);
		} else {
			rc = core_err_set(e, NV_EINVAL, t->name, "model.merges", NULL,
					  "merge %d: expected \"A B\" or [\"A\", \"B\"]", rank);
			break;
		}
		if (ln + rn > cat_cap) {
			cat_cap = (ln + rn) * 2 + 16;
			char *p = realloc(cat, cat_cap);
			if (!p) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); break; }
			cat = p;
		}
		memcpy(cat, l, ln);
		memcpy(cat + ln, r, rn);
		int32_t a = strmap_get(&sm, l, ln), b = strmap_get(&sm, r, rn), ab = strmap_get(&sm, cat, ln + rn);
		if (a < 0 || b < 0 || ab < 0) {
			rc = core_err_set(e, NV_EINVAL, t->name, "model.merges", NULL,
					  "merge %d (\"%.40s\" + \"%.40s\"): %s is not in the vocabulary", rank, l, r,
					  a < 0 ? "the left symbol" : b < 0 ? "the right symbol" : "the merged symbol");
			break;
		}
		pairmap_put(&t->merges, a, b, rank, ab);
	}
	free(cat);
	if (rc) goto out;

	if (trie_node(t, 0) < 0) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); goto out; }
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
		int32_t id = 0;
		json_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id);
		const char *c = jstr(a, "content");
		if (trie_add(t, (const uint8_t *)c, strlen(c), id)) { rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); goto out; }
		t->n_added++;
	}
out:
	strmap_free(&sm);
	free(idstr);
	return rc;
}

static int scratch_reserve(struct core_tok *t, size_t n)
{
	if (n <= t->scratch_cap) return 0;
	size_t cap = t->scratch_cap ? t->scratch_cap : 256;
	while (cap < n) cap *= 2;
	int32_t *id = realloc(t->sym_id, cap * sizeof *id);
	if (!id) return -1;
	t->sym_id = id;
	int32_t *pv = realloc(t->sym_prev, cap * sizeof *pv);
	if (!pv) return -1;
	t->sym_prev = pv;
	int32_t *nx = realloc(t->sym_next, cap * sizeof *nx);
	if (!nx) return -1;
	t->sym_next = nx;
	/* at most n-1 initial pairs plus 2 per merge (n-1 merges) */
	struct tok_heap *h = realloc(t->heap, 3 * cap * sizeof *h);
	if (!h) return -1;
	t->heap = h;
	t->scratch_cap = cap;
	return 0;
}

static int cache_init(struct core_tok *t)
{
	t->cache.slot = calloc(TOK_CACHE_SLOTS, sizeof *t->cache.slot);
	t->cache.ent = malloc(TOK_CACHE_ENTRIES * sizeof *t->cache.ent);
	t->cache.bytes = malloc(TOK_CACHE_BYTES);
	t->cache.ids = malloc(TOK_CACHE_IDS * sizeof *t->cache.ids);
	return (t->cache.slot && t->cache.ent && t->cache.bytes && t->cache.ids) ? 0 : -1;
}

int core_tok_load_mem(const char *json, size_t n, const char *name, struct core_tok **out,
		      struct nv_err *e)
{
	*out = NULL;
	struct core_tok *t = calloc(1, sizeof *t);
	if (!t) return core_err_set(e, NV_ENOMEM, name, NULL, NULL, "out of memory");
	snprintf(t->name, sizeof t->name, "%s", name ? name : "tokenizer.json");
	byte_table(t->fwd, t->inv);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
	int rc = 0;
	if (!root) {
		size_t at = end && end >= json && end <= json + n ? (size_t)(end - json) : 0, line = 1;
		for (size_t i = 0; i < at; i++) line += json[i] == '\n';
		rc = core_err_set(e, NV_EINVAL, t->name, NULL, "the file must be a Hugging Face tokenizer.json",
				  "not valid JSON: syntax error near byte %zu (line %zu)", at, line);
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		rc = core_err_set(e, NV_EINVAL, t->name, NULL, "the file must be a Hugging Face tokenizer.json",
				  "top level is not a JSON object");
		goto fail;
	}
	t->root_tmp = root;
	rc = load_tables(t, root, e);
	if (!rc) rc = parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), e);
	t->root_tmp = NULL;
	cJSON_Delete(root);
	root = NULL;
	if (rc) goto fail;
	t->mctx = pcre2_match_context_create(NULL);
	t->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
	if (!t->mctx || !t->jit_stack || cache_init(t) || scratch_reserve(t, 256)) {
		rc = core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory");
		goto fail;
	}
	/* The patterns are linear; a long whitespace run costs one backtrack per
	 * character, which the default limit (10M) would refuse on large inputs. */
	pcre2_set_match_limit(t->mctx, UINT32_MAX);
	pcre2_jit_stack_assign(t->mctx, NULL, t->jit_stack);
	*out = t;
	return 0;
fail:
	cJSON_Delete(root);
	core_tok_destroy(t);
	return rc;
}

int core_tok_load(const char *path, struct core_tok **out, struct nv_err *e)
{
	*out = NULL;
	struct stat st;
	char file[4096];
	if (stat(path, &st))
		return core_err_set(e, -errno, path, NULL,
				    "pass a model directory holding tokenizer.json, or the file itself",
				    "cannot access: %s", strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		snprintf(file, sizeof file, "%s/tokenizer.json", path);
		if (stat(file, &st)) {
			snprintf(file, sizeof file, "%s/tokenizer.reconstructed.json", path);
			if (stat(file, &st))
				return core_err_set(e, NV_EMISSING, path, "tokenizer.json",
						    "the model directory must hold tokenizer.json",
						    "no tokenizer.json (nor tokenizer.reconstructed.json) in the directory");
		}
	} else {
		snprintf(file, sizeof file, "%s", path);
	}
	FILE *f = fopen(file, "rb");
	if (!f) return core_err_set(e, -errno, file, NULL, NULL, "cannot open: %s", strerror(errno));
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fclose(f);
		return core_err_set(e, NV_EINVAL, file, NULL, NULL, "not a regular file");
	}
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	if (!buf) { fclose(f); return core_err_set(e, NV_ENOMEM, file, NULL, NULL, "out of memory (%zu bytes)", n); }
	size_t got = fread(buf, 1, n, f);
	int err = ferror(f) ? errno : 0;
	fclose(f);
	if (got != n) {
		free(buf);
		return core_err_set(e, err ? -err : NV_EIO, file, NULL, NULL, "short read: %zu of %zu bytes", got, n);
	}
	buf[n] = 0;
	int rc = core_tok_load_mem(buf, n, file, out, e);
	free(buf);
	return rc;
}

void core_tok_destroy(struct core_tok *t)
{
	if (!t) return;
	for (int i = 0; i < t->n_split; i++) {
		pcre2_match_data_free(t->split[i].md);
		pcre2_code_free(t->split[i].re);
	}
	pcre2_match_context_free(t->mctx);
	pcre2_jit_stack_free(t->jit_stack);
	free(t->merges.slot);
	free(t->trie);
	free(t->id_flags);
	free(t->dec_off);
	free(t->dec);
	free(t->sym_id); free(t->sym_prev); free(t->sym_next); free(t->heap);
	free(t->cache.slot); free(t->cache.ent); free(t->cache.bytes); free(t->cache.ids);
	free(t);
}

/* ------------------------------------------------------------------------- */
/* BPE */

static inline int heap_less(const struct tok_heap *a, const struct tok_heap *b)
{
	return a->key < b->key;
}

static void heap_push(struct tok_heap *h, size_t *n, struct tok_heap x)
{
	size_t i = (*n)++;
	while (i) {
		size_t p = (i - 1) / 2;
		if (!heap_less(&x, &h[p])) break;
		h[i] = h[p];
		i = p;
	}
	h[i] = x;
}

static struct tok_heap heap_pop(struct tok_heap *h, size_t *n)
{
	struct tok_heap top = h[0], x = h[--(*n)];
	size_t i = 0, m = *n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m) break;
		if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
		if (!heap_less(&h[c], &x)) break;
		h[i] = h[c];
		i = c;
	}
	if (m) h[i] = x;
	return top;
}

static inline struct tok_heap mk_entry(int32_t rank, int32_t pos, int32_t id)
{
	struct tok_heap e = {((uint64_t)(uint32_t)rank << 32) | (uint32_t)pos, id};
	return e;
}

/* Merge loop of the reference (lowest rank first, then leftmost; stale entries are
 * detected by re-looking up the pair).  Appends the ids to out. */
static int bpe_word(struct core_tok *t, const uint8_t *p, size_t n, struct core_tok_ids *out)
{
	if (scratch_reserve(t, n)) return NV_ENOMEM;
	int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next;
	struct tok_heap *h = t->heap;
	size_t hn = 0;
	for (size_t i = 0; i < n; i++) {
		id[i] = t->byte_id[p[i]];
		prev[i] = (int32_t)i - 1;
		next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		const struct tok_pair *m = pairmap_get(&t->merges, id[i], id[i + 1]);
		if (m) heap_push(h, &hn, mk_entry(m->rank, (int32_t)i, m->id));
	}
	t->stats.bpe_symbols += n;
	t->stats.heap_ops += hn;
	while (hn) {
		struct tok_heap top = heap_pop(h, &hn);
		t->stats.heap_ops++;
		int32_t pos = (int32_t)(uint32_t)top.key;
		if (id[pos] < 0 || next[pos] < 0) continue;
		int32_t r = next[pos];
		const struct tok_pair *m = pairmap_get(&t->merges, id[pos], id[r]);
		if (!m || m->id != top.id) continue;
		id[pos] = top.id;
		id[r] = -1;
		next[pos] = next[r];
		if (next[r] >= 0) prev[next[r]] = pos;
		if (prev[pos] >= 0) {
			const struct tok_pair *q = pairmap_get(&t->merges, id[prev[pos]], id[pos]);
			if (q) { heap_push(h, &hn, mk_entry(q->rank, prev[pos], q->id)); t->stats.heap_ops++; }
		}
		if (next[pos] >= 0) {
			const struct tok_pair *q = pairmap_get(&t->merges, id[pos], id[next[pos]]);
			if (q) { heap_push(h, &hn, mk_entry(q->rank, pos, q->id)); t->stats.heap_ops++; }
		}
	}
	size_t cnt = 0;
	for (int32_t i = 0; i >= 0; i = next[i]) cnt++;
	if (out->n + cnt > out->cap) {
		size_t cap = out->cap ? out->cap : 64;
		while (cap < out->n + cnt) cap *= 2;
		int32_t *v = realloc(out->v, cap * sizeof *v);
		if (!v) return NV_ENOMEM;
		out->v = v;
		out->cap = cap;
	}
	for (int32_t i = 0; i >= 0; i = next[i]) out->v[out->n++] = id[i];
	return 0;
}

static int ids_push(struct core_tok_ids *out, int32_t id)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 64;
		int32_t *v = realloc(out->v, cap * sizeof *v);
		if (!v) return NV_ENOMEM;
		out->v = v;
		out->cap = cap;
	}
	out->v[out->n++] = id;
	return 0;
}

void core_tok_ids_free(struct core_tok_ids *ids)
{
	if (!ids) return;
	free(ids->v);
	ids->v = NULL;
	ids->n = ids->cap = 0;
}

/* Piece cache: open addressing over entries; cleared wholesale when full (the
 * common pieces come back within a few lines of text). */
static int bpe_piece(struct core_tok *t, const char *s, size_t n, struct core_tok_ids *out)
{
	const uint8_t *p = (const uint8_t *)s;
	if (n == 1) return ids_push(out, t->byte_id[p[0]]);
	struct tok_cache *c = &t->cache;
	if (n > TOK_CACHE_MAX_PIECE) return bpe_word(t, p, n, out);
	uint64_t hv = XXH3_64bits(p, n);
	uint32_t i = (uint32_t)hv & (TOK_CACHE_SLOTS - 1);
	while (c->slot[i]) {
		const struct tok_cache_ent *en = &c->ent[c->slot[i] - 1];
		if (en->hash == hv && en->len == n && !memcmp(c->bytes + en->off, p, n)) {
			t->stats.cache_hits++;
			for (uint32_t k = 0; k < en->nids; k++) {
				int rc = ids_push(out, c->ids[en->ids_off + k]);
				if (rc) return rc;
			}
			return 0;
		}
		i = (i + 1) & (TOK_CACHE_SLOTS - 1);
	}
	size_t before = out->n;
	int rc = bpe_word(t, p, n, out);
	if (rc) return rc;
	size_t nids = out->n - before;
	if (c->n_ent + 1 > TOK_CACHE_ENTRIES || c->n_bytes + n > TOK_CACHE_BYTES ||
	    c->n_ids + nids > TOK_CACHE_IDS) {
		memset(c->slot, 0, TOK_CACHE_SLOTS * sizeof *c->slot);
		c->n_ent = 0; c->n_bytes = 0; c->n_ids = 0;
		i = (uint32_t)hv & (TOK_CACHE_SLOTS - 1);
	}
	struct tok_cache_ent *en = &c->ent[c->n_ent];
	en->hash = hv;
	en->off = c->n_bytes;
	en->len = (uint32_t)n;
	en->ids_off = c->n_ids;
	en->nids = (uint32_t)nids;
	memcpy(c->bytes + c->n_bytes, p, n);
	memcpy(c->ids + c->n_ids, out->v + before, nids * sizeof *c->ids);
	c->n_bytes += n;
	c->n_ids += nids;
	c->slot[i] = ++c->n_ent;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Pre-tokenizer: Split steps run one after another, each on the pieces of the
 * previous one; a piece is its own subject, so look-aheads see the piece's end. */

typedef int (*sink_fn)(struct core_tok *t, const char *p, size_t n, void *ud, struct nv_err *e);

static int split_rec(struct core_tok *t, int k, const char *p, size_t n, sink_fn fn, void *ud,
		     struct nv_err *e)
{
	if (n == 0) return 0;
	if (k == t->n_split) {
		t->stats.pieces++;
		return fn(t, p, n, ud, e);
	}
	struct tok_split *sp = &t->split[k];
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sp->md);
	size_t pos = 0, last = 0;
	while (pos < n) {
		int rc;
		t->stats.regex_calls++;
		if (sp->jit)
			rc = pcre2_jit_match(sp->re, (PCRE2_SPTR)p, n, pos, 0, sp->md, t->mctx);
		else
			rc = pcre2_match(sp->re, (PCRE2_SPTR)p, n, pos, PCRE2_NO_UTF_CHECK, sp->md, t->mctx);
		if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
			rc = pcre2_match(sp->re, (PCRE2_SPTR)p, n, pos, PCRE2_NO_UTF_CHECK, sp->md, t->mctx);
		if (rc == PCRE2_ERROR_NOMATCH) break;
		if (rc < 0) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return core_err_set(e, NV_EIO, t->name, "pre-tokenizer", NULL,
					    "regex of Split step %d failed on a %zu-byte piece: %s", k, n, (char *)msg);
		}
		size_t s = ov[0], en = ov[1];
		if (en == s) { /* empty match: not a piece; move one character on */
			size_t cl;
			if (s >= n) break;
			utf8_cp((const uint8_t *)p + s, n - s, &cl);
			pos = s + cl;
			continue;
		}
		if (s > last && (rc = split_rec(t, k + 1, p + last, s - last, fn, ud, e))) return rc;
		if (!sp->removed && (rc = split_rec(t, k + 1, p + s, en - s, fn, ud, e))) return rc;
		last = pos = en;
	}
	if (last < n) return split_rec(t, k + 1, p + last, n - last, fn, ud, e);
	return 0;
}

static int sink_bpe(struct core_tok *t, const char *p, size_t n, void *ud, struct nv_err *e)
{
	int rc = bpe_piece(t, p, n, ud);
	if (rc) return core_err_set(e, rc, t->name, NULL, NULL, "out of memory");
	return 0;
}

struct user_sink { core_tok_piece_fn fn; void *ud; };

static int sink_user(struct core_tok *t, const char *p, size_t n, void *ud, struct nv_err *e)
{
	struct user_sink *u = ud;
	int rc = u->fn(u->ud, p, n);
	if (rc) return core_err_set(e, rc, t->name, NULL, NULL, "piece callback stopped with %d", rc);
	return 0;
}

static int check_utf8(const struct core_tok *t, const char *text, size_t n, struct nv_err *e)
{
	size_t bad = core_utf8_valid_prefix(text, n);
	if (bad == n) return 0;
	return core_err_set(e, NV_EINVAL, "tokenizer input", NULL,
			    "the text must be UTF-8; convert it first (e.g. iconv)",
			    "invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
}

int core_tok_pretokenize(struct core_tok *t, const char *text, size_t n, core_tok_piece_fn fn,
			 void *ud, struct nv_err *e)
{
	int rc = check_utf8(t, text, n, e);
	if (rc) return rc;
	struct user_sink u = {fn, ud};
	return split_rec(t, 0, text, n, sink_user, &u, e);
}

int core_tok_encode(struct core_tok *t, const char *text, size_t n, unsigned flags,
		    struct core_tok_ids *ids, struct nv_err *e)
{
	int rc = check_utf8(t, text, n, e);
	if (rc) return rc;
	const uint8_t *p = (const uint8_t *)text;
	size_t seg = 0, i = 0;
	if (!(flags & CORE_TOK_NO_SPECIAL) && t->n_added) {
		while (i < n) {
			if (!t->first_byte[p[i]]) { i++; continue; }
			int32_t id = -1;
			size_t len = trie_longest(t, p + i, n - i, &id);
			if (!len) { i++; continue; }
			if (i > seg && (rc = split_rec(t, 0, text + seg, i - seg, sink_bpe, ids, e))) return rc;
			if (ids_push(ids, id)) return core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory");
			i += len;
			seg = i;
		}
	}
	if (seg < n) return split_rec(t, 0, text + seg, n - seg, sink_bpe, ids, e);
	return 0;
}

/* ------------------------------------------------------------------------- */

int core_tok_n_ids(const struct core_tok *t) { return t->n_ids; }
size_t core_tok_max_id_bytes(const struct core_tok *t) { return t->max_id_bytes; }

const char *core_tok_id_bytes(const struct core_tok *t, int32_t id, size_t *n)
{
	if (id < 0 || id >= t->n_ids || !(t->id_flags[id] & TOK_F_HAS)) return NULL;
	*n = t->dec_off[id + 1] - t->dec_off[id];
	return t->dec + t->dec_off[id];
}

int core_tok_is_special(const struct core_tok *t, int32_t id)
{
	return id >= 0 && id < t->n_ids && (t->id_flags[id] & TOK_F_SPECIAL);
}

void core_tok_get_stats(const struct core_tok *t, struct core_tok_stats *s)
{
	*s = t->stats;
}
