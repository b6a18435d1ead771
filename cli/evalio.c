/* cli/evalio.c - see evalio.h. */
#include "evalio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_read_file(const char *path, char **buf, size_t *n, struct nv_err *e)
{
	/* Streamed, not sized with fseek, so that "-" (stdin) and pipes work too. */
	*buf = NULL;
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f) return core_err_set(e, -errno, path, NULL, "check the path", "cannot open: %s", strerror(errno));
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);
	while (b) {
		if (len + 1 >= cap) {
			char *p = realloc(b, cap *= 2);
			if (!p) { free(b); b = NULL; break; }
			b = p;
		}
		size_t got = fread(b + len, 1, cap - len - 1, f);
		len += got;
		if (!got) break;
	}
	int bad = ferror(f);
	if (f != stdin) fclose(f);
	if (!b || bad) {
		free(b);
		return core_err_set(e, b ? NV_EIO : NV_ENOMEM, path, NULL, NULL, b ? "read error" : "out of memory");
	}
	b[len] = 0;
	*buf = b;
	*n = len;
	return 0;
}

int cli_read_tokens(const char *path, int32_t **tok, int *n, int *prefill, struct nv_err *e)
{
	char *buf;
	size_t len;
	*tok = NULL;
	*prefill = -1;
	int rc = cli_read_file(path, &buf, &len, e);
	if (rc) return rc;
	cJSON *root = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!root)
		return core_err_set(e, NV_EINVAL, path, NULL, "expected [ids...] or {\"tokens\": [...]}",
				    "not valid JSON");
	cJSON *arr = root;
	if (cJSON_IsObject(root)) {
		arr = cJSON_GetObjectItemCaseSensitive(root, "tokens");
		cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prefill_len");
		if (cJSON_IsNumber(p)) *prefill = p->valueint;
	}
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1) {
		cJSON_Delete(root);
		return core_err_set(e, NV_EINVAL, path, "tokens", "expected [ids...] or {\"tokens\": [...]}",
				    "no non-empty token list");
	}
	int cnt = cJSON_GetArraySize(arr), i = 0;
	int32_t *t = malloc(sizeof(int32_t) * cnt);
	if (!t) {
		cJSON_Delete(root);
		return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	}
	cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble || it->valuedouble < 0) {
			free(t);
			cJSON_Delete(root);
			return core_err_set(e, NV_EINVAL, path, "tokens", "expected [ids...] or {\"tokens\": [...]}",
					    "entry %d is not a non-negative integer token id", i);
		}
		t[i++] = (int32_t)it->valuedouble;
	}
	cJSON_Delete(root);
	*tok = t;
	*n = cnt;
	return 0;
}

int cli_write_atomic(const char *path, const void *buf, size_t n, struct nv_err *e)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) return core_err_set(e, -errno, tmp, NULL, "check the output directory", "cannot create: %s", strerror(errno));
	size_t w = fwrite(buf, 1, n, f);
	int bad = w != n;
	if (fclose(f)) bad = 1;
	if (bad) {
		unlink(tmp);
		return core_err_set(e, NV_EIO, tmp, NULL, "check free disk space", "write failed");
	}
	if (rename(tmp, path)) {
		int er = errno;
		unlink(tmp);
		return core_err_set(e, -er, path, NULL, NULL, "rename failed: %s", strerror(er));
	}
	return 0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void cli_rowstats(double *v, int n, struct cli_rowstats *st)
{
	memset(st, 0, sizeof *st);
	st->n = n;
	if (n <= 0) return;
	double *c = malloc(sizeof(double) * n);
	if (!c) return;
	int c1 = 0, c2 = 0;
	st->worst = 0;
	for (int i = 0; i < n; i++) {
		double x = isnan(v[i]) ? INFINITY : v[i];
		c[i] = x;
		if (x > c[st->worst]) st->worst = i;
		c1 += x < 1e-4;
		c2 += x < 1e-2;
	}
	qsort(c, n, sizeof(double), cmpd);
	st->median = c[n / 2];
	st->p90 = c[(int)(0.9 * (n - 1))];
	st->p99 = c[(int)(0.99 * (n - 1))];
	st->max = c[n - 1];
	st->frac_1e4 = (double)c1 / n;
	st->frac_1e2 = (double)c2 / n;
	free(c);
}

void cli_row_rel(const float *a, const float *b, int rows, int n, double *rel, struct cli_rowstats *st)
{
	for (int i = 0; i < rows; i++) {
		double md = 0, mr = 0;
		for (int j = 0; j < n; j++) {
			double d = fabs((double)a[(size_t)i * n + j] - (double)b[(size_t)i * n + j]);
			double r = fabs((double)b[(size_t)i * n + j]);
			if (d > md || isnan(d)) md = isnan(d) ? INFINITY : (d > md ? d : md);
			if (r > mr) mr = r;
		}
		rel[i] = mr > 0 ? md / mr : md;
	}
	if (st) cli_rowstats(rel, rows, st);
}
