/* kernels/cpu/sample.c - sample() of the CPU backend: the definition of kern.h
 * computed literally, sums sequential in the stated orders.  The "<" order comes
 * from a stable LSD radix sort of the candidates (input in ascending id order, so
 * equal x keep ascending ids).  Scratch: one block sized by sample_reserve(). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Views into the scratch block of cpu_impl (V = smp_v entries each). */
struct smp_ws {
	double *p;            /* [V] p_i */
	float *x;             /* [V] masked logits, then x_i (-inf: not a candidate) */
	uint32_t *ka, *kb;    /* [V] sort keys and their double buffer */
	int32_t *ia, *ib;     /* [V] ids and their double buffer */
};

static struct smp_ws views(struct cpu_impl *c)
{
	const size_t V = (size_t)c->smp_v;
	struct smp_ws w;
	w.p = c->smp;
	w.x = (float *)(w.p + V);
	w.ka = (uint32_t *)(w.x + V);
	w.kb = w.ka + V;
	w.ia = (int32_t *)(w.kb + V);
	w.ib = w.ia + V;
	return w;
}

int cpu_sample_reserve(struct kern *k, int max_vocab)
{
	struct cpu_impl *c = k->impl;
	if (max_vocab <= c->smp_v) return 0;
	void *p = malloc((size_t)max_vocab * (sizeof(double) + sizeof(float) + 2 * sizeof(uint32_t) +
					      2 * sizeof(int32_t)));
	if (!p) return -ENOMEM;
	free(c->smp);
	c->smp = p;
	c->smp_v = max_vocab;
	return 0;
}

/* Unsigned key whose ascending order is x descending (-0 and +0 equal). */
static inline uint32_t desc_key(float f)
{
	uint32_t u;
	f += 0.0f; /* -0 -> +0 */
	memcpy(&u, &f, sizeof u);
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending order of f */
	return ~u;
}

/* Stable ascending sort of (k, v)[n] by k, 4 passes of 8 bits; the result is back
 * in k, v (an even number of passes). */
static void radix_sort(uint32_t *k, int32_t *v, uint32_t *k2, int32_t *v2, int n)
{
	for (int sh = 0; sh < 32; sh += 8) {
		size_t cnt[257] = {0};
		for (int i = 0; i < n; i++) cnt[((k[i] >> sh) & 255) + 1]++;
		for (int b = 0; b < 256; b++) cnt[b + 1] += cnt[b];
		for (int i = 0; i < n; i++) {
			size_t d = cnt[(k[i] >> sh) & 255]++;
			k2[d] = k[i];
			v2[d] = v[i];
		}
		uint32_t *tk = k; k = k2; k2 = tk;
		int32_t *tv = v; v = v2; v2 = tv;
	}
}

/* x_i ranks within the first kk of "<" (threshold element xt, it) */
static inline int member(float xi, int32_t i, float xt, int32_t it)
{
	return xi > xt || (xi == xt && i <= it);
}

void cpu_sample(struct kern *k, int32_t *id_h, const float *logits, int V, const int32_t *mask, int n_mask,
		int v_valid, const struct kern_sample *sp)
{
	struct smp_ws w = views(k->impl);
	float *x = w.x;
	double *p = w.p;
	const int vv = v_valid < 0 ? 0 : v_valid < V ? v_valid : V;
	for (int i = 0; i < vv; i++) x[i] = logits[i] > -INFINITY ? logits[i] : -INFINITY; /* NaN too */
	for (int i = vv; i < V; i++) x[i] = -INFINITY;
	for (int j = 0; j < n_mask; j++)
		if (mask[j] >= 0 && mask[j] < V) x[mask[j]] = -INFINITY;
	float m = -INFINITY;
	int32_t best = -1;
	for (int i = 0; i < V; i++)
		if (x[i] > m) { m = x[i]; best = i; }
	*id_h = best;
	if (best < 0 || sp->temperature == 0 || sp->top_k == 1 || m == INFINITY) return;

	const float inv_t = 1.0f / fmaxf(sp->temperature, 1e-5f);
	int n1 = 0; /* candidates with p > 0 possible (x > -inf) */
	for (int i = 0; i < V; i++) {
		if (x[i] > -INFINITY) x[i] = (x[i] - m) * inv_t;
		p[i] = exp((double)x[i]); /* exp(-inf) = 0 */
		if (x[i] > -INFINITY) {
			w.ka[n1] = desc_key(x[i]);
			w.ia[n1++] = i;
		}
	}
	const int kk = sp->top_k > 0 && sp->top_k < n1 ? sp->top_k : n1;
	const double u = sp->u;
	double tot = 0, cum = 0;
	if (kk == n1 && sp->top_p >= 1.0f) { /* every candidate, ascending ids */
		for (int i = 0; i < V; i++) tot += p[i];
		const double r = u * tot;
		for (int i = 0; i < V; i++) {
			cum += p[i];
			if (r < cum) { *id_h = i; return; }
		}
		return; /* unreachable: r < tot */
	}
	radix_sort(w.ka, w.ia, w.kb, w.ib, n1);
	const int32_t it = w.ia[kk - 1];
	const float xt = x[it];
	for (int i = 0; i < V; i++)
		if (member(x[i], i, xt, it)) tot += p[i];
	if (sp->top_p >= 1.0f) { /* top-k alone: S in ascending ids */
		const double r = u * tot;
		for (int i = 0; i < V; i++)
			if (member(x[i], i, xt, it)) {
				cum += p[i];
				if (r < cum) { *id_h = i; return; }
			}
		return;
	}
	const double need = (double)sp->top_p * tot;
	int cut = kk - 1;
	for (int j = 0; j < kk; j++) {
		cum += p[w.ia[j]];
		if (cum >= need) { cut = j; break; }
	}
	const double r = u * cum;
	double c2 = 0;
	for (int j = 0; j <= cut; j++) {
		c2 += p[w.ia[j]];
		if (r < c2) { *id_h = w.ia[j]; return; }
	}
	*id_h = w.ia[cut]; /* unreachable: r < the nucleus sum */
}
