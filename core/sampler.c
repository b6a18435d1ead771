/* core/sampler.c - greedy / temperature / top-k / top-p sampling with a seeded
 * generator (MODEL.md §12): the host reference of kern.h's sample() plus the
 * draw that feeds both. */
#include "sampler.h"
#include "kernels/kern.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

struct core_sampler {
	int n;
	struct core_sampler_cfg c;
	uint64_t st[4];  /* xoshiro256** state */
	int32_t *idx;    /* [n] candidate ids */
	float *val;      /* [n] candidate x = (l - m) / T */
	int32_t *tmp_i;  /* [n] selection scratch */
	float *tmp_v;    /* [n] */
	double *p;       /* [n] candidate probabilities (unnormalised) */
};

void core_sampler_cfg_default(struct core_sampler_cfg *c)
{
	c->temperature = 1.0f;
	c->top_p = 1.0f;
	c->top_k = 0;
	c->seed = 0;
}

int core_sampler_cfg_load(const char *dir, struct core_sampler_cfg *c, struct nv_err *e)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	FILE *f = fopen(path, "rb");
	if (!f) return errno == ENOENT ? 0 : core_err_set(e, -errno, path, NULL, NULL, "cannot open: %s", strerror(errno));
	/* Read whole (a fixed buffer cut larger files), bounded like config.json: a
	 * settings file has no business being larger. */
	const size_t max = 16u << 20;
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	int bad = ferror(f);
	fclose(f);
	if (!buf || bad || n > max) {
		free(buf);
		return core_err_set(e, !buf ? NV_ENOMEM : bad ? NV_EIO : NV_EINVAL, path, NULL,
				    n > max ? "keep it under 16 MiB" : NULL,
				    !buf ? "out of memory" : bad ? "read error" : "larger than 16 MiB: not a settings file");
	}
	cJSON *j = cJSON_ParseWithLength(buf, n);
	free(buf);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return core_err_set(e, NV_EINVAL, path, NULL, "the file must be a JSON object", "not valid JSON");
	}
	static const char *const keys[] = {"temperature", "top_p", "top_k"};
	int rc = 0;
	for (int i = 0; i < 3 && !rc; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (!v || cJSON_IsNull(v)) continue;
		double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
		if (i == 0 && d >= 0) c->temperature = (float)d;
		else if (i == 1 && d > 0 && d <= 1) c->top_p = (float)d;
		else if (i == 2 && d >= 0 && d == floor(d) && d < 1e9) c->top_k = (int)d;
		else rc = core_err_set(e, NV_EINVAL, path, keys[i], NULL, "out of range or not a number");
	}
	cJSON_Delete(j);
	return rc;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(struct core_sampler *s)
{
	uint64_t *q = s->st;
	uint64_t r = rotl(q[1] * 5, 7) * 9, t = q[1] << 17;
	q[2] ^= q[0]; q[3] ^= q[1]; q[1] ^= q[2]; q[0] ^= q[3];
	q[2] ^= t;
	q[3] = rotl(q[3], 45);
	return r;
}

void core_sampler_reseed(struct core_sampler *s, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++) s->st[i] = splitmix(&x);
}

int core_sampler_create(int n_vocab, const struct core_sampler_cfg *c, struct core_sampler **out,
			struct nv_err *e)
{
	*out = NULL;
	if (n_vocab <= 0) return core_err_set(e, NV_EINVAL, "sampler", "n_vocab", NULL, "must be > 0, got %d", n_vocab);
	if (!(c->temperature >= 0) || !(c->top_p > 0 && c->top_p <= 1) || c->top_k < 0)
		return core_err_set(e, NV_EINVAL, "sampler", "config", "temperature >= 0, top_p in (0, 1], top_k >= 0",
				    "bad values: temperature %g, top_p %g, top_k %d", c->temperature, c->top_p, c->top_k);
	struct core_sampler *s = calloc(1, sizeof *s);
	if (!s) return core_err_set(e, NV_ENOMEM, "sampler", NULL, NULL, "out of memory");
	s->n = n_vocab;
	s->c = *c;
	s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
	s->val = malloc((size_t)n_vocab * sizeof *s->val);
	s->tmp_i = malloc((size_t)n_vocab * sizeof *s->tmp_i);
	s->tmp_v = malloc((size_t)n_vocab * sizeof *s->tmp_v);
	s->p = malloc((size_t)n_vocab * sizeof *s->p);
	if (!s->idx || !s->val || !s->tmp_i || !s->tmp_v || !s->p) {
		core_sampler_destroy(s);
		return core_err_set(e, NV_ENOMEM, "sampler", NULL, NULL, "out of memory");
	}
	core_sampler_reseed(s, c->seed);
	*out = s;
	return 0;
}

void core_sampler_destroy(struct core_sampler *s)
{
	if (!s) return;
	free(s->idx); free(s->val); free(s->tmp_i); free(s->tmp_v); free(s->p);
	free(s);
}

/* (value desc, id asc): a total order, so selection and sorting are deterministic */
static inline int before(float va, int32_t ia, float vb, int32_t ib)
{
	return va > vb || (va == vb && ia < ib);
}

static void swap(float *v, int32_t *ix, int a, int b)
{
	float tv = v[a]; v[a] = v[b]; v[b] = tv;
	int32_t ti = ix[a]; ix[a] = ix[b]; ix[b] = ti;
}

/* Partition so that the k first entries are the k best (unordered). */
static void select_k(float *v, int32_t *ix, int n, int k)
{
	int lo = 0, hi = n - 1;
	uint64_t x = 0x1234567u; /* pivot choice: fixed, deterministic */
	while (lo < hi) {
		int p = lo + (int)(splitmix(&x) % (uint64_t)(hi - lo + 1));
		float pv = v[p];
		int32_t pi = ix[p];
		swap(v, ix, p, hi);
		int st = lo;
		for (int i = lo; i < hi; i++)
			if (before(v[i], ix[i], pv, pi)) swap(v, ix, i, st++);
		swap(v, ix, st, hi);
		if (st == k - 1 || st == k) return;
		if (st < k) lo = st + 1;
		else hi = st - 1;
	}
}

static void sift(float *v, int32_t *ix, int r, int n)
{
	for (;;) {
		int c = 2 * r + 1;
		if (c >= n) return;
		if (c + 1 < n && before(v[c + 1], ix[c + 1], v[c], ix[c])) c++;
		if (!before(v[c], ix[c], v[r], ix[r])) return;
		swap(v, ix, r, c);
		r = c;
	}
}

/* Best first.  Heap sort: no allocation, deterministic under the total order. */
static void sort_desc(float *v, int32_t *ix, int n)
{
	for (int r = n / 2 - 1; r >= 0; r--) sift(v, ix, r, n);
	for (int end = n - 1; end > 0; end--) {
		swap(v, ix, 0, end); /* the best goes to the back */
		sift(v, ix, 0, end);
	}
	for (int a = 0, b = n - 1; a < b; a++, b--) swap(v, ix, a, b);
}

/* 53 random bits -> [0, 1); drawn only when the configuration samples */
static double draw_u(struct core_sampler *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int greedy_cfg(const struct core_sampler *s) { return s->c.temperature == 0 || s->c.top_k == 1; }

/* x_t ranks within the top-k set whose last element is (xt, it) */
static inline int member(float x, int32_t i, float xt, int32_t it) { return x > xt || (x == xt && i <= it); }

/* The definition of kern.h's sample(), on host logits (the reference of the CPU
 * op: same arithmetic, other algorithms - quickselect, thresholds, heap sort). */
static int choose(struct core_sampler *s, const float *logits, double u, int32_t *id, struct nv_err *e)
{
	const int n = s->n;
	float m = -INFINITY;
	int32_t best = -1;
	for (int i = 0; i < n; i++)
		if (logits[i] > m) { m = logits[i]; best = i; } /* NaN never compares greater */
	if (best < 0)
		return core_err_set(e, NV_EINVAL, "sampler", "logits", "check the forward pass for NaN/inf",
				    "every logit is -inf or NaN");
	if (greedy_cfg(s) || m == INFINITY) {
		*id = best;
		return 0;
	}
	const float inv_t = 1.0f / fmaxf(s->c.temperature, 1e-5f);
	float *v = s->val;
	int32_t *ix = s->idx;
	double *p = s->p;
	int nc = 0;
	for (int i = 0; i < n; i++) {
		float l = logits[i];
		if (!(l > -INFINITY)) continue;
		v[nc] = (l - m) * inv_t;
		ix[nc++] = i;
	}
	/* the top-k set, back in ascending id order (membership against its last element) */
	int k = s->c.top_k;
	if (k > 0 && k < nc) {
		select_k(v, ix, nc, k);
		int w = 0;
		for (int i = 1; i < k; i++)
			if (before(v[w], ix[w], v[i], ix[i])) w = i;
		const float xt = v[w];
		const int32_t it = ix[w];
		nc = 0;
		for (int i = 0; i < n; i++) {
			float l = logits[i];
			if (!(l > -INFINITY)) continue;
			float x = (l - m) * inv_t;
			if (member(x, i, xt, it)) { v[nc] = x; ix[nc++] = i; }
		}
	}
	double total = 0;
	for (int i = 0; i < nc; i++) {
		p[i] = exp((double)v[i]);
		total += p[i];
	}
	if (s->c.top_p < 1.0f) {
		/* the nucleus is a prefix of the order; {x >= t} is one too: sort only it,
		 * lowering t until its running sum reaches need */
		const double need = (double)s->c.top_p * total;
		float t = -8.0f;
		for (;;) {
			int nk = 0;
			for (int i = 0; i < nc; i++)
				if (v[i] >= t) { s->tmp_v[nk] = v[i]; s->tmp_i[nk++] = ix[i]; }
			sort_desc(s->tmp_v, s->tmp_i, nk);
			double cum = 0;
			int cut = -1;
			for (int i = 0; i < nk; i++) {
				cum += exp((double)s->tmp_v[i]);
				if (cum >= need) { cut = i; break; }
			}
			if (cut >= 0 || t == -INFINITY) {
				if (cut < 0) cut = nk - 1;
				const double r = u * cum;
				double c2 = 0;
				for (int i = 0; i <= cut; i++) {
					c2 += exp((double)s->tmp_v[i]);
					if (r < c2) { *id = s->tmp_i[i]; return 0; }
				}
				*id = s->tmp_i[cut];
				return 0;
			}
			t = t > -1000.0f ? t * 4 : -INFINITY;
		}
	}
	const double r = u * total;
	double cum = 0;
	for (int i = 0; i < nc; i++) {
		cum += p[i];
		if (r < cum) { *id = ix[i]; return 0; }
	}
	*id = ix[nc - 1];
	return 0;
}

int core_sampler_sample(struct core_sampler *s, const float *logits, int32_t *id, struct nv_err *e)
{
	double u = greedy_cfg(s) ? 0 : draw_u(s);
	return choose(s, logits, u, id, e);
}

int core_sampler_sample_k(struct core_sampler *s, struct kern *k, const float *logits_b, const int32_t *mask_b,
			  int n_mask, int v_valid, int32_t *id, struct nv_err *e)
{
	if (!logits_b)
		return core_err_set(e, NV_EINVAL, "sampler", "logits", "run core_forward with io.logits_keep first",
				    "no logits row in backend memory");
	struct kern_sample sp = { s->c.temperature, s->c.top_p, s->c.top_k, greedy_cfg(s) ? 0 : draw_u(s) };
	int32_t got = -1;
	k->sample(k, &got, logits_b, s->n, mask_b, n_mask, v_valid, &sp);
	if (got < 0)
		return core_err_set(e, NV_EINVAL, "sampler", "logits", "check the forward pass for NaN/inf",
				    "every logit is -inf, NaN or masked");
	*id = got;
	return 0;
}
