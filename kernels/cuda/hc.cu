/* kernels/cuda/hc.cu - hyper-connections (§5): hc_pre with Sinkhorn, hc_post,
 * hc_head.  The mixes (M·D-long dot products) are split into fixed slices, one block
 * per (slice, row), summed slice by slice in order; everything after the dots is the
 * CPU's sequence of f32 operations (kernels/cpu/hc.c), one thread per row. */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

static inline int hc_nspl(int MD)
{
	int n = (MD + CU_HC_SLICE - 1) / CU_HC_SLICE;
	return n > CU_HC_NSPL ? CU_HC_NSPL : n < 1 ? 1 : n;
}

/* part[row][spl][i] = slice spl of x·fn[i] (i < nmix), of x·x (i = nmix) */
__global__ void k_hc_part(float *part, const float *X, const float *fn, int MD, int nmix, int nspl)
{
	extern __shared__ float xs[];
	const int row = blockIdx.y, spl = blockIdx.x;
	const int L = (MD + nspl - 1) / nspl, j0 = spl * L;
	const int len = MD - j0 < L ? MD - j0 : L;
	const float *x = X + (size_t)row * MD + j0;
	for (int j = threadIdx.x; j < len; j += blockDim.x) xs[j] = x[j];
	__syncthreads();
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	for (int task = w; task <= nmix; task += nw) {
		const float *f = task < nmix ? fn + (size_t)task * MD + j0 : xs;
		float acc = 0.0f;
		for (int j = lane; j < len; j += 32) acc = fmaf(xs[j], f[j], acc);
		acc = warp_sum(acc);
		if (lane == 0) part[((size_t)row * CU_HC_NSPL + spl) * CU_HC_NV + task] = acc;
	}
}

/* Sinkhorn (§5.2) on the M×M matrix C in place: the CPU's operation sequence. */
static __device__ void sinkhorn(float *C, int M, int iters, float eps)
{
	for (int j = 0; j < M; j++) {
		float *r = C + j * M, mx = r[0], sum = 0.0f;
		for (int k = 1; k < M; k++) if (r[k] > mx) mx = r[k];
		for (int k = 0; k < M; k++) { r[k] = expf(__fsub_rn(r[k], mx)); sum = __fadd_rn(sum, r[k]); }
		for (int k = 0; k < M; k++) r[k] = __fadd_rn(__fdiv_rn(r[k], sum), eps);
	}
	for (int it = 0; it < iters; it++) {
		if (it > 0)
			for (int j = 0; j < M; j++) {
				float *r = C + j * M, sum = 0.0f;
				for (int k = 0; k < M; k++) sum = __fadd_rn(sum, r[k]);
				for (int k = 0; k < M; k++) r[k] = __fdiv_rn(r[k], __fadd_rn(sum, eps));
			}
		for (int k = 0; k < M; k++) {
			float sum = 0.0f;
			for (int j = 0; j < M; j++) sum = __fadd_rn(sum, C[j * M + k]);
			for (int j = 0; j < M; j++) C[j * M + k] = __fdiv_rn(C[j * M + k], __fadd_rn(sum, eps));
		}
	}
}

static __device__ __forceinline__ float affine(float m, float sc, float b) { return __fadd_rn(__fmul_rn(m, sc), b); }

/* head = 0: hc_pre (pre, post, Sinkhorn comb); head = 1: hc_head (pre only). */
__global__ void k_hc_fin(float *y, float *post, float *comb, const float *X, const float *part, const float *scale,
			 const float *base, int M, int D, int nmix, int nspl, int iters, float eps_n, float eps_h,
			 unsigned nm, int head)
{
	__shared__ float v[CU_HC_NV], pre[8], C[64];
	const int row = blockIdx.x, MD = M * D;
	if (threadIdx.x <= nmix) {
		float s = 0.0f;
		for (int p = 0; p < nspl; p++) s = __fadd_rn(s, part[((size_t)row * CU_HC_NSPL + p) * CU_HC_NV + threadIdx.x]);
		v[threadIdx.x] = s;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		float rho = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(v[nmix], (float)MD), eps_n)));
		for (int i = 0; i < nmix; i++) v[i] = __fmul_rn(v[i], rho);
		for (int j = 0; j < M; j++) pre[j] = __fadd_rn(d_sigm(affine(v[j], scale[0], base[j])), eps_h);
		if (!head) {
			float *po = post + (size_t)row * M, *cb = comb + (size_t)row * M * M;
			for (int j = 0; j < M; j++) po[j] = __fmul_rn(2.0f, d_sigm(affine(v[M + j], scale[1], base[M + j])));
			for (int i = 0; i < M * M; i++) C[i] = affine(v[2 * M + i], scale[2], base[2 * M + i]);
			sinkhorn(C, M, iters, eps_h);
			for (int i = 0; i < M * M; i++) cb[i] = C[i];
		}
	}
	__syncthreads();
	const float *x = X + (size_t)row * MD;
	float *yr = y + (size_t)row * D;
	for (int d = threadIdx.x; d < D; d += blockDim.x) {
		float acc = 0.0f;
		for (int j = 0; j < M; j++) acc = __fadd_rn(acc, __fmul_rn(pre[j], x[(size_t)j * D + d]));
		yr[d] = d_rnd(acc, nm);
	}
}

static void hc_run(struct kern *k, float *y, float *post, float *comb, const float *X, const float *fn,
		   const float *scale, const float *base, int S, int M, int D, int iters, float eps_n, float eps_h,
		   unsigned nm, int head)
{
	struct cu_impl *c = cu_of(k);
	const int MD = M * D, nmix = head ? M : (2 + M) * M, nspl = hc_nspl(MD);
	if (S <= 0) return;
	if (nmix + 1 > CU_HC_NV || M > 8 || !c->hcp) {
		fprintf(stderr, "nvmoe: CUDA hc: hc_mult %d too large (or no workspace)\n", M);
		abort();
	}
	const int L = (MD + nspl - 1) / nspl;
	for (int r0 = 0; r0 < S; r0 += CU_ROWS) {
		int n = S - r0 < CU_ROWS ? S - r0 : CU_ROWS;
		const float *Xr = X + (size_t)r0 * MD;
		dim3 grid(nspl, n);
		k_hc_part<<<grid, 256, (size_t)L * sizeof(float), c->st>>>(c->hcp, Xr, fn, MD, nmix, nspl);
		cu_after_launch(k, "hc mixes");
		k_hc_fin<<<n, 256, 0, c->st>>>(y + (size_t)r0 * D, head ? NULL : post + (size_t)r0 * M,
					      head ? NULL : comb + (size_t)r0 * M * M, Xr, c->hcp, scale, base, M, D,
					      nmix, nspl, iters, eps_n, eps_h, nm, head);
		cu_after_launch(k, "hc finish");
	}
}

void cu_hc_pre(struct kern *k, float *y, float *post, float *comb, const float *X, const float *fn,
	       const float *scale, const float *base, int S, int M, int D, int iters, float eps_n, float eps_h,
	       unsigned nm)
{
	hc_run(k, y, post, comb, X, fn, scale, base, S, M, D, iters, eps_n, eps_h, nm, 0);
}

void cu_hc_head(struct kern *k, float *y, const float *X, const float *fn, const float *scale, const float *base,
		int S, int M, int D, float eps_n, float eps_h, unsigned nm)
{
	hc_run(k, y, NULL, NULL, X, fn, scale, base, S, M, D, 0, eps_n, eps_h, nm, 1);
}

__global__ void k_hc_post(float *Xo, const float *f, const float *R, const float *post, const float *comb, int S,
			  int M, int D, unsigned nm)
{
	const size_t tot = (size_t)S * M * D;
	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < tot; e += (size_t)gridDim.x * blockDim.x) {
		int d = (int)(e % D), kk = (int)((e / D) % M);
		size_t s = e / ((size_t)M * D);
		const float *C = comb + s * M * M, *Rr = R + s * M * D;
		float acc = 0.0f;
		for (int j = 0; j < M; j++) acc = __fadd_rn(acc, __fmul_rn(C[j * M + kk], Rr[(size_t)j * D + d]));
		Xo[e] = d_rnd(__fadd_rn(__fmul_rn(post[s * M + kk], f[s * D + d]), acc), nm);
	}
}

void cu_hc_post(struct kern *k, float *Xo, const float *f, const float *R, const float *post, const float *comb,
		int S, int M, int D, unsigned nm)
{
	size_t tot = (size_t)S * M * D;
	if (!tot) return;
	k_hc_post<<<cu_grid(tot), 256, 0, cu_of(k)->st>>>(Xo, f, R, post, comb, S, M, D, nm);
	cu_after_launch(k, "hc_post");
}
