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

/* One expert on a batch of B tokens: (1) quantise the B input rows; (2) tasks over
 * 128-row slices of F compute g and u, h = rnd(wt·silu(g)·u) and quantise h's
 * 128-blocks of the slice; (3) tasks over columns of D compute y = FP4(w2, h) and
 * add it to the tokens' sums.  Every token's numbers are those of a batch of one. */
struct moe_ctx {
	struct kern *k;
	const struct kern_expert *ex;
	const float *x;          /* [S, D] */
	float *acc;              /* [S, D] */
	const int32_t *slots;    /* [B] this batch's slots */
	const float *wt;
	int topk, B, D, F;
	float limit;
	unsigned nm;
	float *qx, *sax;         /* [B, D], [B, nbD] */
	float *g, *u;            /* [B, F] */
	float *qh, *sah;         /* [B, F], [B, nbF] */
	float *y;                /* [B, D] */
};

static void moe_quant_in(void *vp, int a, int b, int tid)
{
	struct moe_ctx *c = vp;
	const struct cpu_isa *isa = cpu_isa(c->k);
	const int D = c->D, nb = (D + 127) / 128;
	for (int i = a; i < b; i++) {
		int s = c->slots[i] / c->topk;
		float *q = c->qx + (size_t)i * D;
		cpu_act_quant_row(isa, c->x + (size_t)s * D, D, q, c->sax + (size_t)i * nb, c->nm);
		if (isa->fp4_layout) isa->fp4_layout(q, D, D, cpu_tscratch(c->k, tid), c->nm);
	}
}

static void moe_up(void *vp, int a, int b, int tid)
{
	struct moe_ctx *c = vp;
	const struct cpu_isa *isa = cpu_isa(c->k);
	const int F = c->F, nb = (F + 127) / 128;
	float *wb = cpu_tscratch(c->k, tid);
	isa->fp4(c->g, F, c->qx, c->sax, c->B, &c->ex->w1, a, b, wb, c->nm);
	isa->fp4(c->u, F, c->qx, c->sax, c->B, &c->ex->w3, a, b, wb, c->nm);
	for (int i = 0; i < c->B; i++) {
		float wgt = c->wt[c->slots[i]];
		const float *g = c->g + (size_t)i * F, *u = c->u + (size_t)i * F;
		float *h = c->qh + (size_t)i * F;
		for (int f = a; f < b; f++) {
			float gv = g[f], uv = u[f];
			if (c->limit > 0) {
				uv = uv < -c->limit ? -c->limit : uv > c->limit ? c->limit : uv;
				gv = gv > c->limit ? c->limit : gv;
			}
			h[f] = cpu_rnd(wgt * (silu(gv) * uv), c->nm);
		}
		/* a is a multiple of 128: the slice holds whole act_quant blocks */
		cpu_act_quant_row(isa, h + a, b - a, h + a, c->sah + (size_t)i * nb + a / 128, c->nm);
		if (isa->fp4_layout) isa->fp4_layout(h + a, b - a, F, wb, c->nm);
	}
}

static void moe_down(void *vp, int a, int b, int tid)
{
	struct moe_ctx *c = vp;
	const int D = c->D;
	cpu_isa(c->k)->fp4(c->y, D, c->qh, c->sah, c->B, &c->ex->w2, a, b, cpu_tscratch(c->k, tid), c->nm);
	for (int i = 0; i < c->B; i++) {
		float *ar = c->acc + (size_t)(c->slots[i] / c->topk) * D;
		const float *yr = c->y + (size_t)i * D;
		for (int d = a; d < b; d++) ar[d] += yr[d];
	}
}

void cpu_moe_expert(struct kern *k, float *acc, const float *x, const struct kern_expert *ex,
		    const int32_t *slots, int n, const float *wt, int topk, float limit, unsigned nm)
{
	const int D = ex->w1.k, F = ex->w1.n, nbD = (D + 127) / 128, nbF = (F + 127) / 128;
	/* scratch per token: qx, sax, g, u, qh, sah, y */
	const size_t per = 2 * (size_t)D + nbD + 3 * (size_t)F + nbF + 8;
	int cap = (int)(cpu_scratch_size(k) / per);
	if (cap < 1) cap = 1;
	for (int i0 = 0; i0 < n; i0 += cap) {
		int B = n - i0 < cap ? n - i0 : cap;
		float *p = cpu_scratch(k, 0);
		struct moe_ctx c = { .k = k, .ex = ex, .x = x, .acc = acc, .slots = slots + i0, .wt = wt,
				      .topk = topk, .B = B, .D = D, .F = F, .limit = limit, .nm = nm };
		c.qx = p, p += (size_t)B * D;
		c.sax = p, p += (size_t)B * nbD;
		c.g = p, p += (size_t)B * F;
		c.u = p, p += (size_t)B * F;
		c.qh = p, p += (size_t)B * F;
		c.sah = p, p += (size_t)B * nbF;
		c.y = p;
		cpu_par(k, B, 1, 8.0 * B * D, moe_quant_in, &c);
		cpu_par(k, F, 128, 2.0 * B * F * D, moe_up, &c);
		cpu_par(k, D, 8, (double)B * F * D, moe_down, &c);
	}
}

void cpu_swiglu(struct kern *k, float *h, const float *g, const float *u, int rows, int n, unsigned nm)
{
	for (size_t i = 0; i < (size_t)rows * n; i++) h[i] = cpu_rnd(silu(g[i]) * u[i], nm);
}
