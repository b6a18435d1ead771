/* kernels/cuda/norm.cu - RMSNorm (§6) and the per-head q normalisation (§8.1): one
 * block per row; the sum of squares is a fixed tree (same for every row count). */
#include "cu.cuh"

static inline int norm_threads(int n) { return n >= 2048 ? 512 : n >= 256 ? 256 : 128; }

__global__ void k_rmsnorm(float *y, const float *x, const uint16_t *w, int n, float eps, unsigned nm)
{
	__shared__ float red[33];
	const float *xr = x + (size_t)blockIdx.x * n;
	float *yr = y + (size_t)blockIdx.x * n;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) ss = __fadd_rn(ss, __fmul_rn(xr[i], xr[i]));
	ss = block_sum(ss, red);
	float rr = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)n), eps)));
	for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = d_rnd(__fmul_rn(d_bf16(w[i]), __fmul_rn(xr[i], rr)), nm);
}

void cu_rmsnorm(struct kern *k, float *y, const float *x, const uint16_t *w, int rows, int n, float eps, unsigned nm)
{
	if (rows <= 0 || n <= 0) return;
	k_rmsnorm<<<rows, norm_threads(n), 0, cu_of(k)->st>>>(y, x, w, n, eps, nm);
	cu_after_launch(k, "rmsnorm");
}

__global__ void k_head_rms(float *q, int n, float eps, unsigned nm)
{
	__shared__ float red[33];
	float *v = q + (size_t)blockIdx.x * n;
	const bool rnd = nm & KERN_RND;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float sq = __fmul_rn(v[i], v[i]);
		ss = __fadd_rn(ss, rnd ? d_rbf16(sq) : sq);
	}
	ss = block_sum(ss, red);
	float rr;
	if (rnd) {
		/* the reference does this in bf16 arithmetic: every step rounded */
		float m = d_rbf16(__fdiv_rn(ss, (float)n));
		float t = d_rbf16(__fadd_rn(m, eps));
		rr = d_rbf16(__fdiv_rn(1.0f, sqrtf(t)));
	} else {
		rr = __fdiv_rn(1.0f, sqrtf(__fadd_rn(__fdiv_rn(ss, (float)n), eps)));
	}
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float r = __fmul_rn(v[i], rr);
		v[i] = rnd ? d_rbf16(r) : r;
	}
}

void cu_head_rms(struct kern *k, float *q, int rows, int n, float eps, unsigned nm)
{
	if (rows <= 0 || n <= 0) return;
	k_head_rms<<<rows, norm_threads(n), 0, cu_of(k)->st>>>(q, n, eps, nm);
	cu_after_launch(k, "head_rms");
}
