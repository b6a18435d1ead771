/* core/chat_json.c - JSON as the prompt format needs it: parsing that keeps number
 * lexemes, and a writer matching Python's json.dumps(..., ensure_ascii=False)
 * (CHAT.md B.9). */
#include "chat.h"
#include "chat_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom) return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1) cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) { b->oom = 1; return; }
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

void sb_adds(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void sb_json_str(struct sbuf *b, const char *s, size_t n)
{
	sb_add(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[8];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) { snprintf(u, sizeof u, "\\u%04x", c); esc = u; }
		}
		if (!esc) continue;
		sb_add(b, s + run, i - run);
		sb_adds(b, esc);
		run = i + 1;
	}
	sb_add(b, s + run, n - run);
	sb_add(b, "\"", 1);
}

void sb_py_float(struct sbuf *b, double v)
{
	if (isnan(v)) { sb_adds(b, "NaN"); return; }
	if (isinf(v)) { sb_adds(b, v < 0 ? "-Infinity" : "Infinity"); return; }
	if (v == 0) { sb_adds(b, signbit(v) ? "-0.0" : "0.0"); return; }
	/* shortest round-trip digits: the correctly rounded p-digit form for the
	 * smallest p that reads back exactly (what repr() prints) */
	char tmp[64];
	for (int p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
		if (strtod(tmp, NULL) == v) break;
	}
	char digits[32], out[64];
	int nd = 0, neg = 0;
	const char *q = tmp;
	if (*q == '-') { neg = 1; q++; }
	for (; *q && *q != 'e'; q++)
		if (*q >= '0' && *q <= '9') digits[nd++] = *q;
	int exp10 = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0') nd--;
	int decpt = exp10 + 1;
	size_t o = 0;
	if (neg) out[o++] = '-';
	if (decpt > 16 || decpt < -3) {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			memcpy(out + o, digits + 1, (size_t)nd - 1);
			o += (size_t)nd - 1;
		}
		o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
				      abs(decpt - 1));
	} else if (decpt <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int i = 0; i < -decpt; i++) out[o++] = '0';
		memcpy(out + o, digits, (size_t)nd);
		o += (size_t)nd;
	} else if (decpt >= nd) {
		memcpy(out + o, digits, (size_t)nd);
		o += (size_t)nd;
		for (int i = nd; i < decpt; i++) out[o++] = '0';
		out[o++] = '.';
		out[o++] = '0';
	} else {
		memcpy(out + o, digits, (size_t)decpt);
		o += (size_t)decpt;
		out[o++] = '.';
		memcpy(out + o, digits + decpt, (size_t)(nd - decpt));
		o += (size_t)(nd - decpt);
	}
	sb_add(b, out, o);
}

static void json_number(struct sbuf *b, const cJSON *v)
{
	const char *lex = v->valuestring;
	if (lex && !strpbrk(lex, ".eE")) {
		/* a Python int: its digits as written ("-0" reads as 0) */
		if (!strcmp(lex, "-0")) sb_adds(b, "0");
		else sb_adds(b, lex);
		return;
	}
	double d = lex ? strtod(lex, NULL) : v->valuedouble;
	if (!lex && d == floor(d) && fabs(d) < 9007199254740992.0) {
		char t[32];
		snprintf(t, sizeof t, "%.0f", d);
		sb_adds(b, strcmp(t, "-0") ? t : "0");
		return;
	}
	sb_py_float(b, d);
}

const cJSON *json_get(const cJSON *o, const char *k)
{
	const cJSON *r = NULL;
	if (!cJSON_IsObject(o)) return NULL;
	for (const cJSON *c = o->child; c; c = c->next)
		if (c->string && !strcmp(c->string, k)) r = c;
	return r;
}

void sb_json(struct sbuf *b, const cJSON *v)
{
	if (!v || cJSON_IsNull(v)) { sb_adds(b, "null"); return; }
	if (cJSON_IsTrue(v)) { sb_adds(b, "true"); return; }
	if (cJSON_IsFalse(v)) { sb_adds(b, "false"); return; }
	if (cJSON_IsNumber(v)) { json_number(b, v); return; }
	if (cJSON_IsString(v)) { sb_json_str(b, v->valuestring, strlen(v->valuestring)); return; }
	if (cJSON_IsRaw(v)) { sb_adds(b, v->valuestring); return; }
	if (cJSON_IsArray(v)) {
		sb_add(b, "[", 1);
		for (const cJSON *c = v->child; c; c = c->next) {
			sb_json(b, c);
			if (c->next) sb_add(b, ", ", 2);
		}
		sb_add(b, "]", 1);
		return;
	}
	/* object */
	const cJSON **vals = NULL;
	int k = json_dict(v, &vals);
	if (k < 0) { b->oom = 1; return; }
	sb_add(b, "{", 1);
	for (int i = 0; i < k; i++) {
		const char *key = vals[i]->string ? vals[i]->string : "";
		if (i) sb_add(b, ", ", 2);
		sb_json_str(b, key, strlen(key));
		sb_add(b, ": ", 2);
		sb_json(b, vals[i]);
	}
	sb_add(b, "}", 1);
	free(vals);
}

struct kent {
	const char *k;
	int idx;
	const cJSON *node;
};

static int kent_cmp(const void *a, const void *b)
{
	const struct kent *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

int json_dict(const cJSON *o, const cJSON ***out)
{
	int n = 0;
	for (const cJSON *c = o->child; c; c = c->next) n++;
	const cJSON **vals = malloc((size_t)(n + 1) * sizeof *vals);
	struct kent *ke = malloc((size_t)(n + 1) * sizeof *ke);
	const cJSON **at = calloc((size_t)n + 1, sizeof *at); /* [first index] = last value */
	if (!vals || !ke || !at) { free(vals); free(ke); free(at); return -1; }
	int i = 0;
	for (const cJSON *c = o->child; c; c = c->next, i++) {
		ke[i].k = c->string ? c->string : "";
		ke[i].idx = i;
		ke[i].node = c;
	}
	qsort(ke, (size_t)n, sizeof *ke, kent_cmp);
	for (int a = 0; a < n;) {
		int z = a;
		while (z + 1 < n && !strcmp(ke[z + 1].k, ke[a].k)) z++;
		at[ke[a].idx] = ke[z].node;
		a = z + 1;
	}
	int m = 0;
	for (int j = 0; j < n; j++)
		if (at[j]) vals[m++] = at[j];
	free(ke);
	free(at);
	*out = vals;
	return m;
}

/* Number lexemes in document order (strings skipped).  cJSON visits numbers in the
 * same order depth-first, so the i-th lexeme belongs to the i-th number node. */
struct lexemes {
	const char **at; /* [n] start of each number */
	size_t *len;     /* [n] */
	size_t n, cap, next;
};

static int collect_numbers(const char *s, size_t n, struct lexemes *lx)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\') i++;
			continue;
		}
		if (c == '-' || (c >= '0' && c <= '9')) {
			size_t j = i;
			while (j < n && strchr("+-0123456789.eE", s[j]) && s[j]) j++;
			if (lx->n == lx->cap) {
				size_t cap = lx->cap ? lx->cap * 2 : 64;
				const char **a = realloc(lx->at, cap * sizeof *a);
				if (!a) return -1;
				lx->at = a;
				size_t *l = realloc(lx->len, cap * sizeof *l);
				if (!l) return -1;
				lx->len = l;
				lx->cap = cap;
			}
			lx->at[lx->n] = s + i;
			lx->len[lx->n++] = j - i;
			i = j - 1;
		}
	}
	return 0;
}

static int attach_lexemes(cJSON *v, struct lexemes *lx)
{
	for (; v; v = v->next) {
		if (cJSON_IsNumber(v)) {
			if (lx->next >= lx->n) return -1;
			char *s = malloc(lx->len[lx->next] + 1);
			if (!s) return -1;
			memcpy(s, lx->at[lx->next], lx->len[lx->next]);
			s[lx->len[lx->next]] = 0;
			lx->next++;
			free(v->valuestring);
			v->valuestring = s;
		}
		if (v->child && attach_lexemes(v->child, lx)) return -1;
	}
	return 0;
}

static void drop_lexemes(cJSON *v)
{
	for (; v; v = v->next) {
		if (cJSON_IsNumber(v)) { free(v->valuestring); v->valuestring = NULL; }
		if (v->child) drop_lexemes(v->child);
	}
}

int core_chat_json_parse(const char *text, size_t n, const char *name, cJSON **out, struct nv_err *e)
{
	*out = NULL;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
	if (!root) {
		size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0, line = 1;
		for (size_t i = 0; i < at; i++) line += text[i] == '\n';
		return core_err_set(e, NV_EINVAL, name, NULL, "the file must be JSON",
				    "not valid JSON: syntax error near byte %zu (line %zu)", at, line);
	}
	/* only whitespace may follow the value */
	size_t at = (size_t)(end - text);
	while (at < n && (text[at] == ' ' || text[at] == '\n' || text[at] == '\r' || text[at] == '\t')) at++;
	if (at < n && text[at]) {
		cJSON_Delete(root);
		return core_err_set(e, NV_EINVAL, name, NULL, "the file must hold one JSON value",
				    "unexpected data after the JSON value at byte %zu", at);
	}
	struct lexemes lx = {0};
	int rc = collect_numbers(text, (size_t)(end - text), &lx);
	if (rc || attach_lexemes(root, &lx) || lx.next != lx.n)
		drop_lexemes(root); /* fall back to the parsed doubles */
	free(lx.at);
	free(lx.len);
	*out = root;
	return 0;
}
