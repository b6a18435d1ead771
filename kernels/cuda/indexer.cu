/* kernels/cuda/indexer.cu - indexer scores (§8.6) and the top-k selection with the
 * spec's tie rule (§10.7).
 *
 * Scores: one warp per compressed entry t, the query's H_I heads in shared memory;
 * per head a fixed-tree dot product (every lane ends with the same bits), then the
 * CPU's sequence of roundings, heads ascending.
 * Top-k: one block per query row.  Each entry gets the 64-bit key
 * (order-preserving bits of its score) << 32 | ~t, unique, larger = better (higher
 * score, then lower t), so the spec's order is a plain descending key order.  A radix
 * select (8 passes of 8 bits, exact counts) finds the kk-th largest key, the kk keys
 * >= it are gathered and bitonic-sorted in shared memory: bit-identical to the CPU's
 * heap selection. */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

#define IDX_EPB 32   /* entries per block (4 per warp) */
#define TOPK_MAX 2048

/* T: the indexer cache element type (float, or uint16_t bf16 with KERN_KV16) */
template <typename T>
__global__ void k_idx_score(float *sc, int ld_sc, const float *q, const float *w, const T *ic, int n, int S,
			    int HI, int dI, unsigned nm)
{
	extern __shared__ float qs[]; /* [HI*dI] query heads, then [HI] weights */
	const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float *ws = qs + (size_t)HI * dI;
	const int per = dI / 32; /* dI is a power of two >= 32 (TINY.md R3), <= 256 */
	/* rows stride over gridDim.y (at most 65535; S is a chunk of any size) */
	for (int s = blockIdx.y; s < S; s += gridDim.y) {
		const float *qr = q + (size_t)s * HI * dI;
		__syncthreads(); /* the previous row's readers are done with qs */
		for (int i = threadIdx.x; i < HI * dI; i += blockDim.x) qs[i] = qr[i];
		for (int i = threadIdx.x; i < HI; i += blockDim.x) ws[i] = w[(size_t)s * HI + i];
		__syncthreads();
		for (int t = blockIdx.x * IDX_EPB + wid; t < n && t < (blockIdx.x + 1) * IDX_EPB; t += nw) {
			const T *kt = ic + (size_t)t * dI;
			float kv[8];
#pragma unroll
			for (int m = 0; m < 8; m++) kv[m] = m < per ? d_kv(kt, lane + 32 * m) : 0.0f;
			float tot = 0.0f;
			for (int h = 0; h < HI; h++) {
				const float *qh = qs + (size_t)h * dI;
				float a = 0.0f;
#pragma unroll
				for (int m = 0; m < 8; m++)
					if (m < per) a = fmaf(qh[lane + 32 * m], kv[m], a);
				a = d_rnd(warp_sum(a), nm);
				tot = __fadd_rn(tot, d_rnd(__fmul_rn(a > 0 ? a : 0.0f, ws[h]), nm));
			}
			if (lane == 0) sc[(size_t)s * ld_sc + t] = d_rnd(tot, nm);
		}
	}
}

void cu_idx_score(struct kern *k, float *sc, int ld_sc, const float *q, const float *w, const void *ic, int n,
		  int S, int HI, int dI, unsigned nm)
{
	if (n <= 0 || S <= 0) return;
	if (dI % 32 || dI > 256) {
		fprintf(stderr, "nvmoe: CUDA idx_score: index_head_dim %d (need a multiple of 32, <= 256)\n", dI);
		abort();
	}
	size_t smem = ((size_t)HI * dI + HI) * sizeof(float);
	dim3 grid((n + IDX_EPB - 1) / IDX_EPB, S < 65535 ? S : 65535);
	if (nm & KERN_KV16) {
		if (smem > 48 * 1024)
			CU_CALL(cudaFuncSetAttribute(k_idx_score<uint16_t>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
		k_idx_score<uint16_t><<<grid, 256, smem, cu_of(k)->st>>>(sc, ld_sc, q, w, (const uint16_t *)ic, n, S, HI, dI, nm);
	} else {
		if (smem > 48 * 1024)
			CU_CALL(cudaFuncSetAttribute(k_idx_score<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
		k_idx_score<float><<<grid, 256, smem, cu_of(k)->st>>>(sc, ld_sc, q, w, (const float *)ic, n, S, HI, dI, nm);
	}
	cu_after_launch(k, "idx_score");
}

static __device__ __forceinline__ unsigned long long topk_key(float v, int t)
{
	uint32_t u = __float_as_uint(v);
	if ((u & 0x7fffffffu) == 0) u = 0; /* -0 == +0 */
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return ((unsigned long long)u << 32) | (uint32_t)(0xffffffffu - (uint32_t)t);
}

__global__ void __launch_bounds__(256) k_topk(int32_t *idx, int ld_idx, const float *sc, int ld_sc, int n, int p0,
					       int r, int kmax, int width, int offset)
{
	__shared__ unsigned hist[256];
	__shared__ unsigned long long keys[TOPK_MAX];
	__shared__ unsigned long long s_prefix;
	__shared__ int s_need, s_cnt;
	const int s = blockIdx.x;
	const float *v = sc + (size_t)s * ld_sc;
	int nv = (p0 + s + 1) / r;
	if (nv > n) nv = n;
	const int kk = kmax < nv ? kmax : nv;
	int32_t *out = idx + (size_t)s * ld_idx;
	for (int j = kk + threadIdx.x; j < width; j += blockDim.x) out[j] = -1;
	if (kk <= 0) return;
	/* radix select of the kk-th largest key */
	unsigned long long prefix = 0, mask = 0;
	if (threadIdx.x == 0) s_need = kk;
	for (int pass = 0; pass < 8; pass++) {
		const int shift = 56 - 8 * pass;
		for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
		__syncthreads();
		for (int t = threadIdx.x; t < nv; t += blockDim.x) {
			unsigned long long key = topk_key(v[t], t);
			if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1u);
		}
		__syncthreads();
		if (threadIdx.x == 0) {
			int need = s_need;
			unsigned cum = 0;
			int b = 255;
			for (; b > 0; b--) {
				if (cum + hist[b] >= (unsigned)need) break;
				cum += hist[b];
			}
			s_need = need - (int)cum;
			s_prefix = prefix | ((unsigned long long)b << shift);
		}
		__syncthreads();
		prefix = s_prefix;
		mask |= 255ull << shift;
	}
	/* prefix is now the kk-th largest key: gather the kk keys >= it */
	int P = 1;
	while (P < kk) P <<= 1;
	if (threadIdx.x == 0) s_cnt = 0;
	for (int j = threadIdx.x; j < P; j += blockDim.x) keys[j] = 0;
	__syncthreads();
	for (int t = threadIdx.x; t < nv; t += blockDim.x) {
		unsigned long long key = topk_key(v[t], t);
		if (key >= prefix) keys[atomicAdd(&s_cnt, 1)] = key;
	}
	__syncthreads();
	/* bitonic sort, descending */
	for (int size = 2; size <= P; size <<= 1)
		for (int stride = size >> 1; stride > 0; stride >>= 1) {
			for (int i = threadIdx.x; i < P; i += blockDim.x) {
				int j = i ^ stride;
				if (j > i) {
					bool desc = (i & size) == 0;
					unsigned long long a = keys[i], b = keys[j];
					if (desc ? a < b : a > b) { keys[i] = b; keys[j] = a; }
				}
			}
			__syncthreads();
		}
	for (int j = threadIdx.x; j < kk; j += blockDim.x)
		out[j] = (int32_t)(0xffffffffu - (uint32_t)(keys[j] & 0xffffffffu)) + offset;
}

void cu_topk(struct kern *k, int32_t *idx, int ld_idx, const float *sc, int ld_sc, int S, int n, int p0, int r,
	     int kmax, int width, int offset)
{
	if (S <= 0) return;
	if (kmax > TOPK_MAX) {
		fprintf(stderr, "nvmoe: CUDA topk: index_topk %d > %d\n", kmax, TOPK_MAX);
		abort();
	}
	k_topk<<<S, 256, 0, cu_of(k)->st>>>(idx, ld_idx, sc, ld_sc, n, p0, r, kmax, width, offset);
	cu_after_launch(k, "topk");
}
