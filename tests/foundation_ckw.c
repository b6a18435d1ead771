/* tests/foundation_ckw.c - see foundation_ckw.h. */
#define _GNU_SOURCE
#include "foundation_ckw.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/config.h"

uint64_t ckw_dtype_size(const char *d)
{
	if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
	if (!strcmp(d, "BF16") || !strcmp(d, "F16")) return 2;
	if (!strcmp(d, "I64")) return 8;
	return 1;
}

static struct ckw_tensor *push(struct ckw *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->t = realloc(c->t, c->cap * sizeof *c->t);
		if (!c->t) { fprintf(stderr, "ckw: out of memory\n"); exit(1); }
	}
	struct ckw_tensor *t = &c->t[c->n++];
	memset(t, 0, sizeof *t);
	t->ofs[0] = t->ofs[1] = -1;
	return t;
}

struct ckw_tensor *ckw_add(struct ckw *c, const char *name, const char *dtype, int ndim, const int64_t *shape,
			   int shard)
{
	struct ckw_tensor *t = push(c);
	snprintf(t->name, sizeof t->name, "%s", name);
	snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
	t->ndim = ndim;
	t->nbytes = ckw_dtype_size(dtype);
	for (int d = 0; d < ndim; d++) { t->shape[d] = shape[d]; t->nbytes *= (uint64_t)shape[d]; }
	t->shard = shard;
	t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
	return t;
}

struct ckw_tensor *ckw_find(struct ckw *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->t[i].name, name)) return &c->t[i];
	return NULL;
}

void ckw_remove(struct ckw *c, const char *name)
{
	struct ckw_tensor *t = ckw_find(c, name);
	if (!t) return;
	free(t->data);
	memmove(t, t + 1, (size_t)(c->t + c->n - t - 1) * sizeof *t);
	c->n--;
}

void ckw_free(struct ckw *c)
{
	for (size_t i = 0; i < c->n; i++) free(c->t[i].data);
	free(c->t);
	free(c->config);
	memset(c, 0, sizeof *c);
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill(struct ckw_tensor *t, const struct core_config *cfg, uint64_t seed)
{
	unsigned char *p = t->data;
	uint64_t s = seed;
	if (!strcmp(t->dtype, "F8_E8M0")) {
		for (uint64_t i = 0; i < t->nbytes; i++) p[i] = (unsigned char)(120 + splitmix(&s) % 8);
	} else if (!strcmp(t->dtype, "F8_E4M3")) {
		for (uint64_t i = 0; i < t->nbytes; i++) {
			unsigned char b = (unsigned char)splitmix(&s);
			if ((b & 0x7F) == 0x7F) b ^= 1;
			p[i] = b;
		}
	} else if (!strcmp(t->dtype, "I8")) {
		for (uint64_t i = 0; i < t->nbytes; i++) p[i] = (unsigned char)splitmix(&s);
	} else if (!strcmp(t->dtype, "BF16")) {
		for (uint64_t i = 0; i + 1 < t->nbytes; i += 2) {
			/* bf16 in [1, 2) */
			unsigned h = 0x3F80 | (unsigned)(splitmix(&s) & 0x7F);
			p[i] = (unsigned char)h;
			p[i + 1] = (unsigned char)(h >> 8);
		}
	} else if (!strcmp(t->dtype, "F32")) {
		for (uint64_t i = 0; i + 3 < t->nbytes; i += 4) {
			float f = (float)((double)(splitmix(&s) >> 11) * 0x1p-53 - 0.5);
			memcpy(p + i, &f, 4);
		}
	} else if (!strcmp(t->dtype, "I64")) {
		/* tid2eid: row r = (r + j) mod E, distinct for k <= E */
		int64_t k = t->shape[1], E = cfg->n_routed_experts;
		for (int64_t r = 0; r < t->shape[0]; r++)
			for (int64_t j = 0; j < k; j++) {
				int64_t v = (r + j) % E;
				memcpy(p + (size_t)(r * k + j) * 8, &v, 8);
			}
	}
}

uint64_t ckw_offset_of(const struct ckw *c, const char *name)
{
	uint64_t off = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct ckw_tensor *t = &c->t[i];
		if (!strcmp(t->name, name)) return t->ofs[0] >= 0 ? (uint64_t)t->ofs[0] : off;
		if (t->shard == ckw_find((struct ckw *)c, name)->shard && t->ofs[0] < 0) off += t->nbytes;
	}
	return UINT64_MAX;
}

char *ckw_shard_name(const struct ckw *c, int shard, char *buf, size_t n)
{
	snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, c->nshards);
	return buf;
}

int ckw_from_config(struct ckw *c, const char *json, int sparse)
{
	memset(c, 0, sizeof *c);
	c->total_size = -1;
	c->config = strdup(json);
	struct core_config cfg;
	struct nv_err e;
	char msg[1024];
	if (core_config_parse(json, strlen(json), "config.json", &cfg, &e)) {
		fprintf(stderr, "ckw: config: %s\n", core_err_str(&e, msg, sizeof msg));
		return -1;
	}
	struct core_tensor_spec *s;
	size_t n;
	if (core_expected_tensors(&cfg, &s, &n, &e)) return -1;
	int nb = core_cfg_nblocks(&cfg), L = cfg.num_hidden_layers;
	/* embed; one per main block; head group; one per MTP block */
	c->nshards = 1 + L + 1 + (nb - L);
	for (size_t i = 0; i < n; i++) {
		int shard;
		if (s[i].block < 0) shard = strcmp(s[i].name, "embed.weight") ? L + 1 : 0;
		else if (s[i].block < L) shard = 1 + s[i].block;
		else shard = L + 2 + (s[i].block - L);
		struct ckw_tensor *t = push(c);
		snprintf(t->name, sizeof t->name, "%s", s[i].name);
		snprintf(t->dtype, sizeof t->dtype, "%s", core_dtype_name(s[i].dtype));
		t->ndim = s[i].ndim;
		memcpy(t->shape, s[i].shape, sizeof t->shape);
		t->shard = shard;
		t->nbytes = core_spec_nbytes(&s[i]);
		if (!sparse) {
			t->data = malloc(t->nbytes ? t->nbytes : 1);
			fill(t, &cfg, 0x5EED ^ (i * 0x100000001b3ull));
		}
	}
	free(s);
	return 0;
}

static int read_all(const char *path, unsigned char **out, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f) return -1;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)sz + 1);
	*n = fread(*out, 1, (size_t)sz, f);
	(*out)[*n] = 0;
	fclose(f);
	return 0;
}

int ckw_from_dir(struct ckw *c, const char *dir)
{
	memset(c, 0, sizeof *c);
	c->total_size = -1;
	char p[4096];
	unsigned char *buf;
	size_t n;
	snprintf(p, sizeof p, "%s/config.json", dir);
	if (read_all(p, &buf, &n)) return -1;
	c->config = (char *)buf;
	/* shards: model-0000k-of-0000N.safetensors, N from the first one found */
	for (int k = 0;; k++) {
		int N = c->nshards ? c->nshards : 0;
		if (!N) {
			for (N = 1; N < 100; N++) {
				snprintf(p, sizeof p, "%s/model-00001-of-%05d.safetensors", dir, N);
				if (!access(p, R_OK)) break;
			}
			if (N == 100) return -1;
			c->nshards = N;
		}
		if (k == N) break;
		snprintf(p, sizeof p, "%s/model-%05d-of-%05d.safetensors", dir, k + 1, N);
		if (read_all(p, &buf, &n)) return -1;
		uint64_t hn = 0;
		for (int b = 7; b >= 0; b--) hn = hn << 8 | buf[b];
		cJSON *h = cJSON_ParseWithLength((char *)buf + 8, hn);
		if (!h) { free(buf); return -1; }
		cJSON *it;
		cJSON_ArrayForEach(it, h) {
			if (!strcmp(it->string, "__metadata__")) continue;
			struct ckw_tensor *t = push(c);
			snprintf(t->name, sizeof t->name, "%s", it->string);
			snprintf(t->dtype, sizeof t->dtype, "%s", cJSON_GetObjectItem(it, "dtype")->valuestring);
			cJSON *sh = cJSON_GetObjectItem(it, "shape"), *d;
			cJSON_ArrayForEach(d, sh) t->shape[t->ndim++] = (int64_t)d->valuedouble;
			cJSON *of = cJSON_GetObjectItem(it, "data_offsets");
			uint64_t b = (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble;
			uint64_t en = (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble;
			t->nbytes = en - b;
			t->shard = k;
			t->data = malloc(t->nbytes ? t->nbytes : 1);
			memcpy(t->data, buf + 8 + hn + b, t->nbytes);
		}
		cJSON_Delete(h);
		free(buf);
	}
	return 0;
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return -1;
	int ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int ckw_write(const struct ckw *c, const char *dir)
{
	mkdir(dir, 0755);
	char p[4096], sn[64];
	snprintf(p, sizeof p, "%s/config.json", dir);
	if (write_file(p, c->config, strlen(c->config))) return -1;
	uint64_t sum = 0;
	for (int s = 0; s < c->nshards; s++) {
		/* header: entries in list order, data contiguous in that order */
		size_t cap = 1 << 16, len = 0;
		char *h = malloc(cap);
		len += (size_t)sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
		uint64_t off = 0;
		for (size_t i = 0; i < c->n; i++) {
			const struct ckw_tensor *t = &c->t[i];
			if (t->shard != s) continue;
			if (len + 512 > cap) { cap *= 2; h = realloc(h, cap); }
			uint64_t b = t->ofs[0] >= 0 ? (uint64_t)t->ofs[0] : off;
			uint64_t en = t->ofs[0] >= 0 ? (uint64_t)t->ofs[1] : off + t->nbytes;
			len += (size_t)sprintf(h + len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, t->dtype);
			for (int d = 0; d < t->ndim; d++)
				len += (size_t)sprintf(h + len, "%s%lld", d ? "," : "", (long long)t->shape[d]);
			len += (size_t)sprintf(h + len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)b,
					       (unsigned long long)en);
			if (t->ofs[0] < 0) off += t->nbytes;
			sum += t->nbytes;
		}
		if (len + 16 + (size_t)c->hdr_extra > cap) { cap = len + 16 + (size_t)c->hdr_extra; h = realloc(h, cap); }
		h[len++] = '}';
		while (len % 8) h[len++] = ' ';
		for (int k = 0; k < c->hdr_extra; k++) h[len++] = ' ';
		snprintf(p, sizeof p, "%s/%s", dir, ckw_shard_name(c, s, sn, sizeof sn));
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) { free(h); return -1; }
		unsigned char l8[8];
		for (int b = 0; b < 8; b++) l8[b] = (unsigned char)((uint64_t)len >> (8 * b));
		int bad = write(fd, l8, 8) != 8 || write(fd, h, len) != (ssize_t)len;
		free(h);
		uint64_t pos = 8 + len;
		for (size_t i = 0; i < c->n && !bad; i++) {
			const struct ckw_tensor *t = &c->t[i];
			if (t->shard != s || t->ofs[0] >= 0) continue;
			if (t->data) bad |= pwrite(fd, t->data, t->nbytes, (off_t)pos) != (ssize_t)t->nbytes;
			pos += t->nbytes;
		}
		bad |= ftruncate(fd, (off_t)(8 + len + off)) != 0;
		bad |= close(fd) != 0;
		if (bad) return -1;
	}
	if (c->no_index) return 0;
	cJSON *root = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(root, "metadata");
	cJSON_AddNumberToObject(md, "total_size", c->total_size >= 0 ? (double)c->total_size : (double)sum);
	cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
	/* first copy of a name wins; a hash set keeps this linear for 69k names */
	size_t hcap = 16;
	while (hcap < 2 * c->n) hcap <<= 1;
	size_t *set = calloc(hcap, sizeof *set);
	for (size_t i = 0; i < c->n; i++) {
		const struct ckw_tensor *t = &c->t[i];
		uint64_t h = 0xcbf29ce484222325ull;
		for (const char *q = t->name; *q; q++) h = (h ^ (unsigned char)*q) * 0x100000001b3ull;
		size_t sl = (size_t)h & (hcap - 1);
		int dup = 0;
		while (set[sl] && !(dup = !strcmp(c->t[set[sl] - 1].name, t->name))) sl = (sl + 1) & (hcap - 1);
		if (dup) continue;
		set[sl] = i + 1;
		int s = c->idx_name && !strcmp(c->idx_name, t->name) ? c->idx_shard : t->shard;
		cJSON_AddStringToObject(wm, t->name, ckw_shard_name(c, s, sn, sizeof sn));
	}
	free(set);
	char *txt = cJSON_Print(root);
	cJSON_Delete(root);
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	int rc = write_file(p, txt, strlen(txt));
	free(txt);
	return rc;
}

char *ckw_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p = malloc(4096);
	snprintf(p, 4096, "%s/nvmoe-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(p)) { perror("mkdtemp"); exit(1); }
	return p;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

void ckw_rmrf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
