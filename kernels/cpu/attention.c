/* kernels/cpu/attention.c - sparse attention with a per-head sink (§8.8): online
 * softmax over the index list in blocks of 64 entries, list order; with RND the
 * probabilities are rounded to bf16 for P·V while the denominator keeps f32. */
#include <math.h>

#include "cpu.h"

#define ABLK 64

static inline const float *kv_row(const struct kern_kv *kv, int j, int dh)
{
	return j < kv->n_win ? kv->win + (size_t)j * dh : kv->cmp + (size_t)(j - kv->n_win) * dh;
}

void cpu_attn(struct kern *k, float *o, const float *q, const struct kern_kv *kv, const int32_t *idx,
	      int n_idx, const float *sink, int S, int H, int dh, float tau, unsigned nm)
{
	float *acc = cpu_scratch(k, 0); /* [dh] */
	float sj[ABLK];
	for (int s = 0; s < S; s++) {
		const int32_t *I = idx + (size_t)s * n_idx;
		for (int h = 0; h < H; h++) {
			const float *qh = q + (size_t)s * H * dh + (size_t)h * dh;
			float m = -INFINITY, l = 0;
			for (int i = 0; i < dh; i++) acc[i] = 0;
			for (int b0 = 0; b0 < n_idx; b0 += ABLK) {
				int nb = n_idx - b0 < ABLK ? n_idx - b0 : ABLK;
				float mb = m;
				for (int j = 0; j < nb; j++) {
					int e = I[b0 + j];
					if (e < 0) { sj[j] = -INFINITY; continue; }
					const float *kr = kv_row(kv, e, dh);
					float dot = 0;
					for (int i = 0; i < dh; i++) dot += qh[i] * kr[i];
					sj[j] = dot * tau;
					if (sj[j] > mb) mb = sj[j];
				}
				if (mb == -INFINITY) continue; /* only padding so far */
				float alpha = expf(m - mb), psum = 0;
				for (int i = 0; i < dh; i++) acc[i] *= alpha;
				for (int j = 0; j < nb; j++) {
					if (sj[j] == -INFINITY) continue;
					float p = expf(sj[j] - mb);
					psum += p;
					float pr = cpu_rnd(p, nm);
					const float *kr = kv_row(kv, I[b0 + j], dh);
					for (int i = 0; i < dh; i++) acc[i] += pr * kr[i];
				}
				l = l * alpha + psum;
				m = mb;
			}
			l += expf(sink[h] - m);
			float *oh = o + (size_t)s * H * dh + (size_t)h * dh;
			for (int i = 0; i < dh; i++) oh[i] = cpu_rnd(acc[i] / l, nm);
		}
	}
}
