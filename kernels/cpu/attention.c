/* kernels/cpu/attention.c - sparse attention with a per-head sink (§8.8): online
 * softmax over the index list in blocks of 64 entries, list order; with RND the
 * probabilities are rounded to bf16 for P·V while the denominator keeps f32.
 * Tasks over (token, head) pairs; dot products and P·V updates use the isa's
 * vector loops (fixed order per head). */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define ABLK 64

/* row j of the KV array; es = element bytes (2 with KV16, else 4) */
static inline const void *kv_row(const struct kern_kv *kv, int j, int dh, size_t es)
{
	return j < kv->n_win ? (const char *)kv->win + (size_t)j * dh * es
			     : (const char *)kv->cmp + (size_t)(j - kv->n_win) * dh * es;
}

struct attn_ctx {
	struct kern *k;
	float *o;
	const float *q;
	const struct kern_kv *kv;
	const int32_t *idx;
	int n_idx;
	const float *sink;
	int H, dh;
	float tau;
	unsigned nm;
};

static void attn_head(const struct attn_ctx *c, int s, int h, float *acc)
{
	const struct cpu_isa *isa = cpu_isa(c->k);
	const int dh = c->dh, n_idx = c->n_idx;
	const struct kern_kv *kv = c->kv;
	const int kv16 = (c->nm & KERN_KV16) != 0;
	const size_t es = kv16 ? 2 : 4;
	const int32_t *I = c->idx + (size_t)s * n_idx;
	const float *qh = c->q + (size_t)s * c->H * dh + (size_t)h * dh;
	float sj[ABLK];
	float m = -INFINITY, l = 0;
	for (int i = 0; i < dh; i++) acc[i] = 0;
	for (int b0 = 0; b0 < n_idx; b0 += ABLK) {
		int nb = n_idx - b0 < ABLK ? n_idx - b0 : ABLK;
		float mb = m;
		for (int j = 0; j < nb; j++) {
			int e = I[b0 + j];
			if (e < 0) { sj[j] = -INFINITY; continue; }
			const void *kr = kv_row(kv, e, dh, es);
			sj[j] = (kv16 ? isa->dot16(qh, kr, dh) : isa->dot(qh, kr, dh)) * c->tau;
			if (sj[j] > mb) mb = sj[j];
		}
		if (mb == -INFINITY) continue; /* only padding so far */
		float alpha = expf(m - mb), psum = 0;
		for (int i = 0; i < dh; i++) acc[i] *= alpha;
		for (int j = 0; j < nb; j++) {
			if (sj[j] == -INFINITY) continue;
			float p = expf(sj[j] - mb);
			psum += p;
			const void *kr = kv_row(kv, I[b0 + j], dh, es);
			if (kv16) isa->axpy16(acc, cpu_rnd(p, c->nm), kr, dh);
			else isa->axpy(acc, cpu_rnd(p, c->nm), kr, dh);
		}
		l = l * alpha + psum;
		m = mb;
	}
	l += expf(c->sink[h] - m);
	float *oh = c->o + (size_t)s * c->H * dh + (size_t)h * dh;
	for (int i = 0; i < dh; i++) oh[i] = cpu_rnd(acc[i] / l, c->nm);
}

static void attn_pairs(void *vp, int a, int b, int tid)
{
	struct attn_ctx *c = vp;
	float *acc = cpu_tscratch(c->k, tid); /* [dh] */
	for (int p = a; p < b; p++) attn_head(c, p / c->H, p % c->H, acc);
}

void cpu_attn(struct kern *k, float *o, const float *q, const struct kern_kv *kv, const int32_t *idx,
	      int n_idx, const float *sink, int S, int H, int dh, float tau, unsigned nm)
{
	struct attn_ctx c = { k, o, q, kv, idx, n_idx, sink, H, dh, tau, nm };
	cpu_par(k, S * H, 1, 2.0 * S * H * n_idx * dh, attn_pairs, &c);
}

void cpu_kv_store(struct kern *k, void *dst, const float *src, size_t n, unsigned nm)
{
	(void)k;
	if (!(nm & KERN_KV16)) {
		if (n && dst != (const void *)src) memmove(dst, src, n * sizeof(float));
		return;
	}
	uint16_t *d = dst;
	for (size_t i = 0; i < n; i++) d[i] = kern_f32_to_bf16(src[i]);
}
