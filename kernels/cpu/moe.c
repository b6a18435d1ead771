/* kernels/cpu/moe.c - routing (§9.1), routed experts with FP4 weights (§7.3, §9.2),
 * the shared expert's activation (§9.3) and the combination (§9.4). */
#include <math.h>

#include "cpu.h"

static inline float softplus(float z) { return z > 20.0f ? z : log1pf(expf(z)); }
static inline float silu(float z) { return z / (1.0f + expf(-z)); }

void cpu_route(struct kern *k, int32_t *ids, float *w, const float *logits, const float *bias, int S,
	       int E, int topk, float gamma)
{
	float *a = cpu_scratch(k, 0); /* [E] */
	for (int s = 0; s < S; s++) {
		const float *l = logits + (size_t)s * E;
		int32_t *id = ids + (size_t)s * topk;
		for (int e = 0; e < E; e++) a[e] = sqrtf(softplus(l[e]));
		if (bias) {
			/* top-k of a + bias, descending, ties to the lower id */
			for (int j = 0; j < topk; j++) {
				int best = -1;
				float bv = 0;
				for (int e = 0; e < E; e++) {
					int used = 0;
					for (int i = 0; i < j; i++) used |= id[i] == e;
					if (used) continue;
					float v = a[e] + bias[e];
					if (best < 0 || v > bv) { best = e; bv = v; }
				}
				id[j] = best;
			}
		}
		float sum = 0;
		for (int j = 0; j < topk; j++) sum += a[id[j]];
		for (int j = 0; j < topk; j++) w[(size_t)s * topk + j] = a[id[j]] / sum * gamma;
	}
}

void cpu_fp4_row(float *y, const float *q, const float *sa, const struct kern_fp4w *W, unsigned nm)
{
	const int K = W->k, nc = K / 32;
	for (int n = 0; n < W->n; n++) {
		const uint8_t *wr = W->w + (size_t)n * (K / 2);
		const uint8_t *sr = W->s + (size_t)n * nc;
		float acc = 0;
		for (int c = 0; c < nc; c++) {
			float p = 0;
			const float *qc = q + c * 32;
			const uint8_t *wc = wr + c * 16;
			for (int i = 0; i < 16; i++) {
				p += qc[2 * i] * kern_e2m1_lut[wc[i] & 15];
				p += qc[2 * i + 1] * kern_e2m1_lut[wc[i] >> 4];
			}
			acc += sa[c / 4] * kern_e8m0_to_f32(sr[c]) * p;
		}
		y[n] = cpu_rnd(acc, nm);
	}
}

void cpu_moe_expert(struct kern *k, float *acc, const float *x, const struct kern_expert *ex,
		    const int32_t *slots, int n, const float *wt, int topk, float limit, unsigned nm)
{
	const int D = ex->w1.k, F = ex->w1.n;
	float *q = cpu_scratch(k, 0);       /* [max(D, F)] quantised input row */
	float *sa = q + (D > F ? D : F);    /* [max/128 + 1] */
	float *g = sa + (D > F ? D : F) / 128 + 1;
	float *u = g + F, *h = u + F, *y = h + F; /* [F], [F], [F], [D] */
	for (int i = 0; i < n; i++) {
		int slot = slots[i], s = slot / topk;
		float wgt = wt[slot];
		cpu_act_quant_row(x + (size_t)s * D, D, q, sa, nm);
		cpu_fp4_row(g, q, sa, &ex->w1, nm);
		cpu_fp4_row(u, q, sa, &ex->w3, nm);
		for (int f = 0; f < F; f++) {
			float gv = g[f], uv = u[f];
			if (limit > 0) {
				uv = uv < -limit ? -limit : uv > limit ? limit : uv;
				gv = gv > limit ? limit : gv;
			}
			h[f] = cpu_rnd(wgt * (silu(gv) * uv), nm);
		}
		cpu_act_quant_row(h, F, q, sa, nm);
		cpu_fp4_row(y, q, sa, &ex->w2, nm);
		float *ar = acc + (size_t)s * D;
		for (int d = 0; d < D; d++) ar[d] += y[d];
	}
}

void cpu_swiglu(struct kern *k, float *h, const float *g, const float *u, int rows, int n, unsigned nm)
{
	for (size_t i = 0; i < (size_t)rows * n; i++) h[i] = cpu_rnd(silu(g[i]) * u[i], nm);
}
