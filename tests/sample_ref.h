/* tests/sample_ref.h - shared by the sampling tests: random logits rows of several
 * kinds, the configurations, and an independent long-double evaluation of the
 * definition of kern.h's sample() (qsort for the order, long double sums) that
 * also reports whether u lies near a boundary (weights exp() in double as
 * defined, every sum in long double).  Header-only, test code. */
#ifndef NV_TEST_SAMPLE_REF_H
#define NV_TEST_SAMPLE_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern.h"

static uint64_t sr_rng = 0x243F6A8885A308D3ull;
static uint64_t sr_next(void)
{
	sr_rng ^= sr_rng << 13;
	sr_rng ^= sr_rng >> 7;
	sr_rng ^= sr_rng << 17;
	return sr_rng;
}
static double sr_unif(void) { return (double)(sr_next() >> 11) * 0x1p-53; }
static float sr_gauss(void)
{
	double u = sr_unif() + 1e-300, v = sr_unif();
	return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* Logits kinds: the last one has no candidate at all. */
enum { SR_GAUSS, SR_TIES, SR_SPECIAL, SR_FLAT, SR_PEAKED, SR_NONE, SR_NKIND };
static const char *const sr_kind_name[SR_NKIND] = {"gauss", "ties", "nan/-inf", "flat", "peaked", "none"};

/* Fill l [V]; mask [*n_mask] (ids, some out of range, some repeated) and *vv. */
static void sr_logits(int kind, int V, float *l, int32_t *mask, int *n_mask, int *vv)
{
	for (int i = 0; i < V; i++) {
		float g = sr_gauss();
		switch (kind) {
		case SR_GAUSS: l[i] = 3 * g; break;
		case SR_TIES: l[i] = roundf(2 * g) * 0.5f; break;  /* few distinct values */
		case SR_SPECIAL: {
			uint64_t r = sr_next() % 10;
			l[i] = r == 0 ? NAN : r == 1 ? -INFINITY : 2 * g;
			break;
		}
		case SR_FLAT: l[i] = 1.5f; break;
		case SR_PEAKED: l[i] = 8 * g; break;
		default: l[i] = (sr_next() & 1) ? NAN : -INFINITY; break;
		}
	}
	*vv = V >= 8 ? V - V / 8 : V;
	int n = 0;
	if (V >= 4) {
		int want = V / 10 + 1;
		for (int j = 0; j < want; j++) mask[n++] = (int32_t)(sr_next() % (uint64_t)V);
		mask[n++] = mask[0]; /* repeated */
		mask[n++] = -5;      /* out of range: ignored */
		mask[n++] = V + 3;
	}
	*n_mask = n;
}

/* The row as core_sampler_sample() sees it: masked ids and ids >= vv at -inf. */
static void sr_apply_mask(float *h, const float *l, int V, const int32_t *mask, int n_mask, int vv)
{
	for (int i = 0; i < V; i++) h[i] = i < vv ? l[i] : -INFINITY;
	for (int j = 0; j < n_mask; j++)
		if (mask[j] >= 0 && mask[j] < V) h[mask[j]] = -INFINITY;
}

struct sr_cfg {
	float t, p;
	int k;
};
static const struct sr_cfg sr_cfgs[] = {
	{0, 1, 0},         /* greedy */
	{1, 1, 0},
	{0.7f, 1, 0},
	{1, 1, 1},         /* top_k 1 = greedy */
	{1, 1, 40},
	{0.7f, 0.9f, 0},
	{1, 0.95f, 0},
	{0.8f, 0.9f, 40},
	{1, 1, 1 << 30},   /* top_k beyond the vocabulary = off */
	{1e-4f, 1, 0},     /* tiny T: most weights underflow, some x overflow to -inf */
	{2.5f, 0.5f, 3},
	{1.3f, 0.99f, 500},
};
#define SR_NCFG ((int)(sizeof sr_cfgs / sizeof sr_cfgs[0]))

struct sr_ent {
	float x;
	int32_t id;
};
static int sr_cmp(const void *a, const void *b)
{
	const struct sr_ent *p = a, *q = b;
	if (p->x != q->x) return p->x > q->x ? -1 : 1;
	return p->id < q->id ? -1 : p->id > q->id;
}

static int sr_cmp_id(const void *a, const void *b)
{
	const struct sr_ent *p = a, *q = b;
	return p->id < q->id ? -1 : p->id > q->id;
}

/* A weight as defined: exp in double (it underflows to 0 below about -745, which
 * the definition keeps), summed here in long double. */
static long double sr_w(float x) { return (long double)exp((double)x); }

/* The definition on the already-masked row h [V] (NaN = -inf), in long double.
 * Returns the id (-1: no candidate); *near = 1 when r or need lies within rel
 * (relative to the sums) of a running sum, where another summation order may
 * legitimately choose the neighbour.  prob (may be NULL) gets the normalised
 * probability of every id under the configuration (independent of u).
 * ws: [V] entries of scratch. */
static int32_t sr_eval(const float *h, int V, const struct kern_sample *sp, long double rel, int *near,
		       double *prob, struct sr_ent *ws)
{
	*near = 0;
	if (prob) memset(prob, 0, (size_t)V * sizeof *prob);
	float m = -INFINITY;
	int32_t best = -1;
	for (int i = 0; i < V; i++)
		if (h[i] > m) { m = h[i]; best = i; }
	if (best < 0) return -1;
	if (sp->temperature == 0 || sp->top_k == 1 || m == INFINITY) {
		if (prob) prob[best] = 1;
		return best;
	}
	const float inv_t = 1.0f / fmaxf(sp->temperature, 1e-5f);
	int nc = 0;
	for (int i = 0; i < V; i++)
		if (h[i] > -INFINITY) {
			ws[nc].x = (h[i] - m) * inv_t;
			ws[nc++].id = i;
		}
	qsort(ws, (size_t)nc, sizeof *ws, sr_cmp);
	const int ns = sp->top_k > 0 && sp->top_k < nc ? sp->top_k : nc;
	long double tot = 0;
	for (int j = 0; j < ns; j++) tot += sr_w(ws[j].x);
	int cut = ns - 1;
	long double total = tot;
	if (sp->top_p < 1.0f) {
		long double need = (long double)sp->top_p * tot, c = 0;
		for (int j = 0; j < ns; j++) {
			c += sr_w(ws[j].x);
			if (fabsl(c - need) <= rel * tot) *near = 1;
			if (c >= need) { cut = j; total = c; break; }
		}
	} else {
		qsort(ws, (size_t)ns, sizeof *ws, sr_cmp_id); /* the walk: ascending ids */
	}
	if (prob)
		for (int j = 0; j <= cut; j++) prob[ws[j].id] = (double)(sr_w(ws[j].x) / total);
	const long double r = (long double)sp->u * total;
	long double c = 0;
	int32_t got = ws[cut].id;
	for (int j = 0; j <= cut; j++) {
		long double pj = sr_w(ws[j].x);
		if (pj == 0) continue; /* a zero weight is no boundary */
		c += pj;
		if (fabsl(c - r) <= rel * total) *near = 1;
		if (r < c) { got = ws[j].id; break; }
	}
	return got;
}
#endif
