/* tests/sample_old.h - the host sampler as it was before sampling moved behind the
 * kernel table (core/sampler.c at 66ab901, verbatim but for names and the error
 * text): the "before" of test_sample_gen, which checks that run/chat keep giving
 * the same ids for a seed.  Test code only. */
#ifndef NV_TEST_SAMPLE_OLD_H
#define NV_TEST_SAMPLE_OLD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/sampler.h"

struct old_sampler {
	int n;
	struct core_sampler_cfg c;
	uint64_t st[4];  /* xoshiro256** state */
	int32_t *idx;    /* [n] candidate ids */
	float *val;      /* [n] candidate logits, later probabilities */
	int32_t *tmp_i;  /* [n] selection scratch */
	float *tmp_v;    /* [n] */
};

static uint64_t old_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t old_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t old_next_u64(struct old_sampler *s)
{
	uint64_t *q = s->st;
	uint64_t r = old_rotl(q[1] * 5, 7) * 9, t = q[1] << 17;
	q[2] ^= q[0]; q[3] ^= q[1]; q[1] ^= q[2]; q[0] ^= q[3];
	q[2] ^= t;
	q[3] = old_rotl(q[3], 45);
	return r;
}




/* (value desc, id asc): a total order, so selection and sorting are deterministic */
static inline int old_before(float va, int32_t ia, float vb, int32_t ib)
{
	return va > vb || (va == vb && ia < ib);
}

static void old_swap(float *v, int32_t *ix, int a, int b)
{
	float tv = v[a]; v[a] = v[b]; v[b] = tv;
	int32_t ti = ix[a]; ix[a] = ix[b]; ix[b] = ti;
}

/* Partition so that the k first entries are the k best (unordered). */
static void old_select_k(float *v, int32_t *ix, int n, int k)
{
	int lo = 0, hi = n - 1;
	uint64_t x = 0x1234567u; /* pivot choice: fixed, deterministic */
	while (lo < hi) {
		int p = lo + (int)(old_splitmix(&x) % (uint64_t)(hi - lo + 1));
		float pv = v[p];
		int32_t pi = ix[p];
		old_swap(v, ix, p, hi);
		int st = lo;
		for (int i = lo; i < hi; i++)
			if (old_before(v[i], ix[i], pv, pi)) old_swap(v, ix, i, st++);
		old_swap(v, ix, st, hi);
		if (st == k - 1 || st == k) return;
		if (st < k) lo = st + 1;
		else hi = st - 1;
	}
}

static void old_sift(float *v, int32_t *ix, int r, int n)
{
	for (;;) {
		int c = 2 * r + 1;
		if (c >= n) return;
		if (c + 1 < n && old_before(v[c + 1], ix[c + 1], v[c], ix[c])) c++;
		if (!old_before(v[c], ix[c], v[r], ix[r])) return;
		old_swap(v, ix, r, c);
		r = c;
	}
}

/* Best first.  Heap sort: no allocation, deterministic under the total order. */
static void old_sort_desc(float *v, int32_t *ix, int n)
{
	for (int r = n / 2 - 1; r >= 0; r--) old_sift(v, ix, r, n);
	for (int end = n - 1; end > 0; end--) {
		old_swap(v, ix, 0, end); /* the best goes to the back */
		old_sift(v, ix, 0, end);
	}
	for (int a = 0, b = n - 1; a < b; a++, b--) old_swap(v, ix, a, b);
}

__attribute__((unused)) static int old_sampler_sample(struct old_sampler *s, const float *logits, int32_t *id, struct nv_err *e)
{
	const int n = s->n;
	float m = -INFINITY;
	int32_t best = -1;
	for (int i = 0; i < n; i++)
		if (logits[i] > m) { m = logits[i]; best = i; } /* NaN never compares greater */
	if (best < 0)
		return (void)e, NV_EINVAL;
	if (s->c.temperature == 0 || s->c.top_k == 1 || m == INFINITY) {
		*id = best;
		return 0;
	}
	const float inv_t = 1.0f / fmaxf(s->c.temperature, 1e-5f);
	float *v = s->val;
	int32_t *ix = s->idx;
	int nc = 0;
	for (int i = 0; i < n; i++) {
		float l = logits[i];
		if (!(l > -INFINITY)) continue;
		v[nc] = l;
		ix[nc++] = i;
	}
	int k = s->c.top_k;
	if (k > 0 && k < nc) {
		old_select_k(v, ix, nc, k);
		nc = k;
	}
	double total = 0;
	for (int i = 0; i < nc; i++) {
		v[i] = expf((v[i] - m) * inv_t);
		total += v[i];
	}
	if (s->c.top_p < 1.0f) {
		/* the nucleus lies inside {p >= t} as soon as that set holds top_p of the
		 * mass: shrink t until it does, then sort only those candidates */
		double need = (double)s->c.top_p * total;
		float t = 1e-3f;
		int nk;
		for (;;) {
			double mass = 0;
			nk = 0;
			for (int i = 0; i < nc; i++)
				if (v[i] >= t) { s->tmp_v[nk] = v[i]; s->tmp_i[nk++] = ix[i]; mass += v[i]; }
			if (mass >= need || t == 0) break;
			t = t > 1e-30f ? t * 1e-3f : 0;
		}
		memcpy(v, s->tmp_v, (size_t)nk * sizeof *v);
		memcpy(ix, s->tmp_i, (size_t)nk * sizeof *ix);
		old_sort_desc(v, ix, nk);
		double cum = 0;
		int cut = nk;
		for (int i = 0; i < nk; i++) {
			cum += v[i];
			if (cum >= need) { cut = i + 1; break; }
		}
		nc = cut;
		total = cum;
	}
	/* 53 random bits -> [0, 1) */
	double u = (double)(old_next_u64(s) >> 11) * (1.0 / 9007199254740992.0) * total;
	double cum = 0;
	for (int i = 0; i < nc; i++) {
		cum += v[i];
		if (u < cum) { *id = ix[i]; return 0; }
	}
	*id = ix[nc - 1];
	return 0;
}

static struct old_sampler *old_sampler_create(int n, const struct core_sampler_cfg *c)
{
	struct old_sampler *s = calloc(1, sizeof *s);
	s->n = n;
	s->c = *c;
	s->idx = malloc((size_t)n * sizeof *s->idx);
	s->val = malloc((size_t)n * sizeof *s->val);
	s->tmp_i = malloc((size_t)n * sizeof *s->tmp_i);
	s->tmp_v = malloc((size_t)n * sizeof *s->tmp_v);
	uint64_t x = c->seed;
	for (int i = 0; i < 4; i++) s->st[i] = old_splitmix(&x);
	return s;
}

static void old_sampler_destroy(struct old_sampler *s)
{
	free(s->idx); free(s->val); free(s->tmp_i); free(s->tmp_v);
	free(s);
}

#endif
