/* core/safetensors.c - dtypes and the parser of one safetensors header
 * (CHECKPOINT.md §2.1; loader checks 5-10 that concern a single file).
 * Kept apart from ckpt.c so that the fuzzer links only this, config.c and err.c.
 */
#include "ckpt.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const struct { const char *name; size_t size; } g_dtypes[CORE_DT_COUNT] = {
	[CORE_DT_BF16] = {"BF16", 2},       [CORE_DT_F32] = {"F32", 4},
	[CORE_DT_F8_E4M3] = {"F8_E4M3", 1}, [CORE_DT_F8_E8M0] = {"F8_E8M0", 1},
	[CORE_DT_I8] = {"I8", 1},           [CORE_DT_I64] = {"I64", 8},
	[CORE_DT_F16] = {"F16", 2},         [CORE_DT_I32] = {"I32", 4},
	[CORE_DT_U8] = {"U8", 1},
};

size_t core_dtype_size(enum core_dtype t)
{
	return (unsigned)t < CORE_DT_COUNT ? g_dtypes[t].size : 0;
}

const char *core_dtype_name(enum core_dtype t)
{
	return (unsigned)t < CORE_DT_COUNT ? g_dtypes[t].name : "?";
}

int core_dtype_parse(const char *s, size_t n, enum core_dtype *out)
{
	for (int i = 0; i < CORE_DT_COUNT; i++)
		if (strlen(g_dtypes[i].name) == n && !memcmp(g_dtypes[i].name, s, n)) {
			*out = (enum core_dtype)i;
			return 0;
		}
	return NV_EINVAL;
}

/* The standard reader's limit on N (CHECKPOINT.md §2.1). */
#define ST_MAX_HEADER 100000000ull
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly. */
#define ST_MAX_INT 9007199254740992.0

static int utf8_valid(const unsigned char *s, size_t n, size_t *bad_at)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) { i++; continue; }
		size_t len;
		uint32_t cp;
		if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
		else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
		else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
		else goto bad;
		if (i + len > n) goto bad;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80) goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			goto bad;
		i += len;
	}
	return 1;
bad:
	*bad_at = i;
	return 0;
}

static const char *json_type(const cJSON *it)
{
	if (!it) return "nothing";
	if (cJSON_IsString(it)) return "a string";
	if (cJSON_IsNumber(it)) return "a number";
	if (cJSON_IsArray(it)) return "a list";
	if (cJSON_IsObject(it)) return "an object";
	if (cJSON_IsBool(it)) return "a boolean";
	return "null";
}

static int json_uint(const cJSON *it, uint64_t *out)
{
	if (!cJSON_IsNumber(it)) return -1;
	double v = it->valuedouble;
	if (!(v >= 0) || v > ST_MAX_INT || v != floor(v)) return -1;
	*out = (uint64_t)v;
	return 0;
}

/* Thousands separators, as in the messages of CHECKPOINT.md §7. */
static const char *commas(char *buf, size_t n, uint64_t v)
{
	return core_fmt_count(buf, n, v);
}

static void fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int d = 0; d < ndim && o < n; d++)
		o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d ? ", " : "", shape[d]);
	if (o < n) snprintf(buf + o, n - o, "]");
}

/* Sort order for the overlap check: by begin, then end. */
struct range { uint64_t b, e; size_t i; };
static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	if (x->b != y->b) return x->b < y->b ? -1 : 1;
	if (x->e != y->e) return x->e < y->e ? -1 : 1;
	return 0;
}

int core_st_parse_header(const char *json, size_t n, uint64_t file_size, const char *fname,
			 struct core_tensor **out, size_t *ntens, char **arena, struct nv_err *e)
{
	*out = NULL;
	*ntens = 0;
	*arena = NULL;
	const char *fix = "the file is damaged or incomplete: re-download it";
	/* Check 5 (the caller read N from the file; repeated so the parser stands alone). */
	if (n < 2 || n > ST_MAX_HEADER || 8 + (uint64_t)n > file_size)
		return core_err_set(e, NV_EFORMAT, fname, NULL, fix,
				    "header length %zu %s (file size %" PRIu64 ", limit %llu)", n,
				    n < 2 ? "is too small" : n > ST_MAX_HEADER ? "exceeds the limit" : "exceeds file size",
				    file_size, (unsigned long long)ST_MAX_HEADER);
	/* Check 6. */
	size_t bad_at;
	if (!utf8_valid((const unsigned char *)json, n, &bad_at))
		return core_err_set(e, NV_EFORMAT, fname, NULL, fix, "header is not valid UTF-8 (byte %zu)", bad_at);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
	if (!root) {
		size_t at = end && end >= json && end <= json + n ? (size_t)(end - json) : 0;
		return core_err_set(e, NV_EFORMAT, fname, NULL, fix, "header is not valid JSON (parse error near byte %zu of %zu)",
				    at, n);
	}
	/* The writer pads with spaces; anything else after the object is garbage. */
	for (const char *p = end; p < json + n; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
			cJSON_Delete(root);
			return core_err_set(e, NV_EFORMAT, fname, NULL, fix, "header has data after the JSON object (byte %zu)",
					    (size_t)(p - json));
		}
	int rc = 0;
	struct core_tensor *t = NULL;
	struct range *rg = NULL;
	uint32_t *set = NULL;
	char *names = NULL;
	if (!cJSON_IsObject(root)) {
		rc = core_err_set(e, NV_EFORMAT, fname, NULL, fix, "header is %s, expected a JSON object", json_type(root));
		goto out;
	}
	size_t cnt = 0, name_bytes = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, root) {
		if (!strcmp(it->string, "__metadata__")) continue;
		cnt++;
		name_bytes += strlen(it->string) + 1;
	}
	t = calloc(cnt ? cnt : 1, sizeof *t);
	rg = malloc((cnt ? cnt : 1) * sizeof *rg);
	names = malloc(name_bytes ? name_bytes : 1);
	size_t setcap = 16;
	while (setcap < 2 * cnt) setcap <<= 1;
	set = calloc(setcap, sizeof *set); /* 1-based tensor index, 0 = empty */
	if (!t || !rg || !names || !set) {
		rc = core_err_set(e, NV_ENOMEM, fname, NULL, NULL, "out of memory for %zu tensors", cnt);
		goto out;
	}
	size_t i = 0, no = 0, max_i = 0;
	uint64_t max_end = 0;
	cJSON_ArrayForEach(it, root) {
		const char *nm = it->string;
		if (!strcmp(nm, "__metadata__")) continue;
		struct core_tensor *x = &t[i];
		size_t len = strlen(nm);
		memcpy(names + no, nm, len + 1);
		x->name = names + no;
		no += len + 1;
		/* Check 10 within the file: a name twice. */
		uint64_t h = XXH3_64bits(nm, len);
		size_t slot = (size_t)h & (setcap - 1);
		while (set[slot]) {
			if (!strcmp(t[set[slot] - 1].name, nm)) {
				rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s' appears twice in the header", nm);
				goto out;
			}
			slot = (slot + 1) & (setcap - 1);
		}
		set[slot] = (uint32_t)(i + 1);
		if (!cJSON_IsObject(it)) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s': entry is %s, expected an object",
					  nm, json_type(it));
			goto out;
		}
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
		const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
		const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		const char *miss = !dt ? "dtype" : !sh ? "shape" : !of ? "data_offsets" : NULL;
		if (miss) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s': missing '%s'", nm, miss);
			goto out;
		}
		/* Check 7. */
		if (!cJSON_IsString(dt)) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s': 'dtype' is %s, expected a string",
					  nm, json_type(dt));
			goto out;
		}
		if (core_dtype_parse(dt->valuestring, strlen(dt->valuestring), &x->dtype)) {
			rc = core_err_set(e, NV_EUNSUPPORTED, fname, nm,
					  "this checkpoint is not the DeepSeek-V4 FP8/FP4 release format",
					  "tensor '%s': unsupported dtype '%.32s'", nm, dt->valuestring);
			goto out;
		}
		if (!cJSON_IsArray(sh)) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s': 'shape' is %s, expected a list",
					  nm, json_type(sh));
			goto out;
		}
		int nd = cJSON_GetArraySize(sh);
		if (nd > CORE_MAX_DIMS) {
			rc = core_err_set(e, NV_EUNSUPPORTED, fname, nm, NULL, "tensor '%s': %d dimensions, at most %d supported",
					  nm, nd, CORE_MAX_DIMS);
			goto out;
		}
		x->ndim = nd;
		uint64_t numel = 1;
		int ovf = 0, d = 0;
		const cJSON *dim;
		cJSON_ArrayForEach(dim, sh) {
			uint64_t v;
			if (json_uint(dim, &v)) {
				rc = core_err_set(e, NV_EFORMAT, fname, nm, fix,
						  "tensor '%s': shape[%d] is not a non-negative integer", nm, d);
				goto out;
			}
			x->shape[d++] = (int64_t)v;
			ovf |= __builtin_mul_overflow(numel, v, &numel);
		}
		uint64_t esz = core_dtype_size(x->dtype), need;
		ovf |= __builtin_mul_overflow(numel, esz, &need);
		uint64_t b, en;
		if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_uint(of->child, &b) ||
		    json_uint(of->child->next, &en)) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix,
					  "tensor '%s': 'data_offsets' must be two non-negative integers [begin, end]", nm);
			goto out;
		}
		/* Check 8. */
		char shp[96];
		fmt_shape(shp, sizeof shp, x->shape, x->ndim);
		if (b > en) {
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
					  ") has begin > end", nm, b, en);
			goto out;
		}
		if (ovf || en - b != need) {
			char c1[32], c2[32];
			rc = core_err_set(e, NV_EFORMAT, fname, nm, fix,
					  "tensor '%s': byte range [%" PRIu64 ", %" PRIu64 ") holds %s bytes, shape %s x %s needs %s%s",
					  nm, b, en, commas(c1, sizeof c1, en - b), shp, core_dtype_name(x->dtype),
					  ovf ? "more than " : "", commas(c2, sizeof c2, ovf ? UINT64_MAX : need));
			goto out;
		}
		x->nbytes = need;
		x->file_offset = 8 + (uint64_t)n + b;
		x->shard = -1;
		x->data = NULL;
		rg[i] = (struct range){ b, en, i };
		if (en > max_end) { max_end = en; max_i = i; }
		i++;
	}
	/* Check 9 before the per-tensor range check, so that a truncated download is
	 * reported as such rather than as one tensor out of range. */
	uint64_t need_size = 8 + (uint64_t)n + max_end;
	if (need_size > file_size) {
		char c1[32], c2[32], c3[32];
		rc = core_err_set(e, NV_EFORMAT, fname, t[max_i].name, fix,
				  "file is %s bytes, header needs %s (tensor '%s' ends at data offset %s) - truncated?",
				  commas(c1, sizeof c1, file_size), commas(c2, sizeof c2, need_size), t[max_i].name,
				  commas(c3, sizeof c3, max_end));
		goto out;
	}
	if (need_size < file_size) {
		char c1[32], c2[32], c3[32];
		rc = core_err_set(e, NV_EFORMAT, fname, NULL, fix,
				  "file is %s bytes, header accounts for %s (%s bytes after the last tensor)",
				  commas(c1, sizeof c1, file_size), commas(c2, sizeof c2, need_size),
				  commas(c3, sizeof c3, file_size - need_size));
		goto out;
	}
	/* Check 8: ranges do not overlap (empty tensors overlap nothing). */
	qsort(rg, cnt, sizeof *rg, cmp_range);
	uint64_t reach = 0;
	size_t reach_i = 0;
	for (size_t k = 0; k < cnt; k++) {
		if (rg[k].b == rg[k].e) continue;
		if (rg[k].b < reach) {
			const struct core_tensor *a = &t[reach_i], *c = &t[rg[k].i];
			rc = core_err_set(e, NV_EFORMAT, fname, c->name, fix,
					  "tensor '%s': byte range [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' [%" PRIu64
					  ", %" PRIu64 ")", c->name, rg[k].b, rg[k].e, a->name,
					  a->file_offset - 8 - n, a->file_offset - 8 - n + a->nbytes);
			goto out;
		}
		reach = rg[k].e;
		reach_i = rg[k].i;
	}
	*out = t;
	*ntens = cnt;
	*arena = names;
	t = NULL;
	names = NULL;
out:
	free(t);
	free(rg);
	free(set);
	free(names);
	cJSON_Delete(root);
	return rc;
}
