/* kernels/cuda/quant.cu - the in-place quantisation simulations and the Hadamard
 * rotation (§10.1, §10.2, §10.6), bit-identical to kernels/cpu/quant.c: the block
 * maximum is exact in any order and every other step is one rounding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

/* gridDim.y is at most 65535 while rows may be S*H_I (qdq4 of the indexer queries):
 * the y index strides over the rows. */
static inline unsigned rows_grid(int rows) { return (unsigned)(rows < 65535 ? rows : 65535); }

/* QDQ8: one warp per (row, block of `block` <= 256 values). */
__global__ void k_qdq8(float *x, int rows, int ld, int len, int block)
{
	const int o = blockIdx.x * block, lane = threadIdx.x;
	const int n = len - o < block ? len - o : block;
	for (int r = blockIdx.y; r < rows; r += gridDim.y) {
		float *xr = x + (size_t)r * ld;
		float v[8], amax = 0.0f;
#pragma unroll
		for (int j = 0; j < 8; j++) {
			int i = lane + 32 * j;
			v[j] = i < n ? xr[o + i] : 0.0f;
			amax = fmaxf(amax, fabsf(v[j]));
		}
		amax = warp_max(amax);
		float s = d_pow2_scale(amax, 448.0f, 1e-4f), inv = __fdiv_rn(1.0f, s);
#pragma unroll
		for (int j = 0; j < 8; j++) {
			int i = lane + 32 * j;
			if (i < n) xr[o + i] = __fmul_rn(d_quant8(v[j], inv), s);
		}
	}
}

void cu_qdq8(struct kern *k, float *x, int rows, int ld, int len, int block, unsigned nm)
{
	if (!(nm & KERN_QNT) || rows <= 0 || len <= 0) return;
	if (block > 256 || block <= 0) {
		fprintf(stderr, "nvmoe: CUDA qdq8: block %d outside 1..256\n", block);
		abort();
	}
	dim3 grid((len + block - 1) / block, rows_grid(rows));
	k_qdq8<<<grid, 32, 0, cu_of(k)->st>>>(x, rows, ld, len, block);
	cu_after_launch(k, "qdq8");
}

/* QDQ4: one warp per (row, block of 32). */
__global__ void k_qdq4(float *x, int rows, int ld, int len)
{
	const int i = blockIdx.x * 32 + threadIdx.x;
	for (int r = blockIdx.y; r < rows; r += gridDim.y) {
		float *xr = x + (size_t)r * ld;
		float v = i < len ? xr[i] : 0.0f;
		float amax = warp_max(fabsf(v));
		float s = d_pow2_scale(amax, 6.0f, 6.0f * 0x1p-126f), inv = __fdiv_rn(1.0f, s);
		float q = __fmul_rn(v, inv);
		q = q > 6.0f ? 6.0f : q;
		q = q < -6.0f ? -6.0f : q;
		if (i < len) xr[i] = d_rbf16(__fmul_rn(d_e2m1_val(d_f32_to_e2m1(q)), s));
	}
}

void cu_qdq4(struct kern *k, float *x, int rows, int ld, int len, unsigned nm)
{
	if (!(nm & KERN_QNT) || rows <= 0 || len <= 0) return;
	dim3 grid((len + 31) / 32, rows_grid(rows));
	k_qdq4<<<grid, 32, 0, cu_of(k)->st>>>(x, rows, ld, len);
	cu_after_launch(k, "qdq4");
}

/* Hadamard: one block per row, butterflies in shared memory with strides 1, 2, ...
 * (each output of a stage is one f32 add of two fixed inputs: order-free, exact CPU). */
__global__ void k_hadamard(float *x, int n, float sc, int rnd)
{
	extern __shared__ float hs[];
	float *xr = x + (size_t)blockIdx.x * n;
	for (int i = threadIdx.x; i < n; i += blockDim.x) hs[i] = xr[i];
	__syncthreads();
	for (int h = 1; h < n; h *= 2) {
		for (int p = threadIdx.x; p < n / 2; p += blockDim.x) {
			int i = (p / h) * 2 * h + p % h, j = i + h;
			float a = hs[i], b = hs[j];
			hs[i] = __fadd_rn(a, b);
			hs[j] = __fsub_rn(a, b);
		}
		__syncthreads();
	}
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = __fmul_rn(hs[i], sc);
		xr[i] = rnd ? d_rbf16(v) : v;
	}
}

void cu_hadamard(struct kern *k, float *x, int rows, int n, unsigned nm)
{
	if (rows <= 0 || n <= 1) return;
	float sc = (float)(1.0 / sqrt((double)n));
	int th = n / 2 < 32 ? 32 : n / 2 > 512 ? 512 : n / 2;
	th = (th + 31) / 32 * 32;
	k_hadamard<<<rows, th, (size_t)n * sizeof(float), cu_of(k)->st>>>(x, n, sc, (nm & KERN_RND) != 0);
	cu_after_launch(k, "hadamard");
}
