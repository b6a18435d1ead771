/* kernels/cpu/hc.c - hyper-connections (§5): hc_pre with Sinkhorn, hc_post,
 * hc_head.  All statistics in f32; the RMS factor multiplies AFTER the dots, which
 * are the inner-loop table's (isa.h). */
#include <math.h>

#include "cpu.h"

static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }

/* m[i] = (x · fn[i]) · ρ for i < nmix, x = one row of M*D values.  The sums are the
 * table's dot (any f32 order is allowed, MODEL.md §0; plain C keeps the natural
 * one): 24 dots of 16,384 per hc_pre, a serial scalar chain otherwise. */
static void hc_mixes(const struct cpu_isa *isa, float *m, const float *x, const float *fn, int nmix, int MD,
		     float eps_n)
{
	float ss = isa->dot(x, x, MD);
	float rho = 1.0f / sqrtf(ss / (float)MD + eps_n);
	for (int i = 0; i < nmix; i++) m[i] = isa->dot(x, fn + (size_t)i * MD, MD) * rho;
}

/* Sinkhorn (§5.2) on the M×M matrix C in place. */
static void sinkhorn(float *C, int M, int iters, float eps)
{
	for (int j = 0; j < M; j++) {
		float *r = C + j * M, mx = r[0], sum = 0;
		for (int k = 1; k < M; k++) if (r[k] > mx) mx = r[k];
		for (int k = 0; k < M; k++) { r[k] = expf(r[k] - mx); sum += r[k]; }
		for (int k = 0; k < M; k++) r[k] = r[k] / sum + eps;
	}
	for (int it = 0; it < iters; it++) {
		if (it > 0)
			for (int j = 0; j < M; j++) {
				float *r = C + j * M, sum = 0;
				for (int k = 0; k < M; k++) sum += r[k];
				for (int k = 0; k < M; k++) r[k] = r[k] / (sum + eps);
			}
		for (int k = 0; k < M; k++) {
			float sum = 0;
			for (int j = 0; j < M; j++) sum += C[j * M + k];
			for (int j = 0; j < M; j++) C[j * M + k] = C[j * M + k] / (sum + eps);
		}
	}
}

void cpu_hc_pre(struct kern *k, float *y, float *post, float *comb, const float *X, const float *fn,
		const float *scale, const float *base, int S, int M, int D, int iters, float eps_n,
		float eps_h, unsigned nm)
{
	const int nmix = (2 + M) * M, MD = M * D;
	float *m = cpu_scratch(k, 0); /* [nmix] */
	float *pre = m + nmix;        /* [M] */
	for (int s = 0; s < S; s++) {
		const float *x = X + (size_t)s * MD;
		hc_mixes(cpu_isa(k), m, x, fn, nmix, MD, eps_n);
		float *po = post + (size_t)s * M, *C = comb + (size_t)s * M * M;
		for (int j = 0; j < M; j++) {
			pre[j] = sigm(m[j] * scale[0] + base[j]) + eps_h;
			po[j] = 2.0f * sigm(m[M + j] * scale[1] + base[M + j]);
		}
		for (int i = 0; i < M * M; i++) C[i] = m[2 * M + i] * scale[2] + base[2 * M + i];
		sinkhorn(C, M, iters, eps_h);
		float *yr = y + (size_t)s * D;
		for (int d = 0; d < D; d++) {
			float acc = 0;
			for (int j = 0; j < M; j++) acc += pre[j] * x[(size_t)j * D + d];
			yr[d] = cpu_rnd(acc, nm);
		}
	}
}

void cpu_hc_post(struct kern *k, float *Xo, const float *f, const float *R, const float *post,
		 const float *comb, int S, int M, int D, unsigned nm)
{
	for (int s = 0; s < S; s++) {
		const float *fr = f + (size_t)s * D, *Rr = R + (size_t)s * M * D;
		const float *po = post + (size_t)s * M, *C = comb + (size_t)s * M * M;
		float *xo = Xo + (size_t)s * M * D;
		for (int kk = 0; kk < M; kk++)
			for (int d = 0; d < D; d++) {
				float acc = 0;
				for (int j = 0; j < M; j++) acc += C[j * M + kk] * Rr[(size_t)j * D + d];
				xo[(size_t)kk * D + d] = cpu_rnd(po[kk] * fr[d] + acc, nm);
			}
	}
}

void cpu_hc_head(struct kern *k, float *y, const float *X, const float *fn, const float *scale,
		 const float *base, int S, int M, int D, float eps_n, float eps_h, unsigned nm)
{
	const int MD = M * D;
	float *m = cpu_scratch(k, 0), *pre = m + M;
	for (int s = 0; s < S; s++) {
		const float *x = X + (size_t)s * MD;
		hc_mixes(cpu_isa(k), m, x, fn, M, MD, eps_n);
		for (int j = 0; j < M; j++) pre[j] = sigm(m[j] * scale[0] + base[j]) + eps_h;
		float *yr = y + (size_t)s * D;
		for (int d = 0; d < D; d++) {
			float acc = 0;
			for (int j = 0; j < M; j++) acc += pre[j] * x[(size_t)j * D + d];
			yr[d] = cpu_rnd(acc, nm);
		}
	}
}
