/* kernels/cpu/indexer.c - indexer scores (§8.6) and the top-k selection with the
 * spec's tie rule (§10.7: descending value, equal values by ascending index). */
#include <math.h>

#include "cpu.h"

struct score_ctx {
	struct kern *k;
	float *sc;
	int ld_sc;
	const float *q, *w;
	const void *ic; /* [n, dI], bf16 with KV16 */
	int n, HI, dI;
	unsigned nm;
};

/* items are (token, entry) pairs, token-major */
static void score_items(void *vp, int a, int b, int tid)
{
	struct score_ctx *c = vp;
	const struct cpu_isa *isa = cpu_isa(c->k);
	const int HI = c->HI, dI = c->dI;
	for (int it = a; it < b; it++) {
		int s = it / c->n, t = it % c->n;
		const float *qs = c->q + (size_t)s * HI * dI, *ws = c->w + (size_t)s * HI;
		const int kv16 = (c->nm & KERN_KV16) != 0;
		const void *kt = (const char *)c->ic + (size_t)t * dI * (kv16 ? 2 : 4);
		float tot = 0;
		for (int h = 0; h < HI; h++) {
			const float *qh = qs + (size_t)h * dI;
			float v = cpu_rnd(kv16 ? isa->dot16(qh, kt, dI) : isa->dot(qh, kt, dI), c->nm);
			tot += cpu_rnd((v > 0 ? v : 0) * ws[h], c->nm);
		}
		c->sc[(size_t)s * c->ld_sc + t] = cpu_rnd(tot, c->nm);
	}
}

void cpu_idx_score(struct kern *k, float *sc, int ld_sc, const float *q, const float *w, const void *ic,
		   int n, int S, int HI, int dI, unsigned nm)
{
	if (n <= 0) return;
	struct score_ctx c = { k, sc, ld_sc, q, w, ic, n, HI, dI, nm };
	cpu_par(k, S * n, 16, (double)S * n * HI * dI, score_items, &c);
}

/* a ranks before b */
static inline int better(const float *v, int a, int b)
{
	return v[a] > v[b] || (v[a] == v[b] && a < b);
}

/* min-heap on "better": the root is the worst kept entry */
static void sift_down(int32_t *h, int n, int i, const float *v)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && better(v, h[m], h[l])) m = l;
		if (r < n && better(v, h[m], h[r])) m = r;
		if (m == i) return;
		int32_t t = h[i]; h[i] = h[m]; h[m] = t;
		i = m;
	}
}

static void sift_up(int32_t *h, int i, const float *v)
{
	while (i > 0) {
		int p = (i - 1) / 2;
		if (!better(v, h[p], h[i])) return;
		int32_t t = h[i]; h[i] = h[p]; h[p] = t;
		i = p;
	}
}

void cpu_topk(struct kern *k, int32_t *idx, int ld_idx, const float *sc, int ld_sc, int S, int n,
	      int p0, int r, int kmax, int width, int offset)
{
	int32_t *h = (int32_t *)cpu_scratch(k, 0);
	for (int s = 0; s < S; s++) {
		const float *v = sc + (size_t)s * ld_sc;
		int nv = (p0 + s + 1) / r;
		if (nv > n) nv = n;
		int kk = kmax < nv ? kmax : nv, hn = 0;
		for (int t = 0; t < nv && kk > 0; t++) {
			if (hn < kk) {
				h[hn] = t;
				sift_up(h, hn++, v);
			} else if (better(v, t, h[0])) {
				h[0] = t;
				sift_down(h, hn, 0, v);
			}
		}
		int32_t *out = idx + (size_t)s * ld_idx;
		/* pop the worst first, filling from the back: descending order */
		for (int j = hn - 1; j >= 0; j--) {
			out[j] = h[0] + offset;
			h[0] = h[--hn];
			sift_down(h, hn, 0, v);
		}
		for (int j = kk; j < width; j++) out[j] = -1;
	}
}
