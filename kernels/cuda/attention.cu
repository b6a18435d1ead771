/* kernels/cuda/attention.cu - sparse attention with a per-head sink (§8.8): one block
 * per (head, query), the list processed in 64-entry blocks in list order with an
 * online softmax.  Scores: one warp per entry, fixed-tree dot product.  Block maximum,
 * exp, the f32 denominator (summed in list order by one thread) and the P·V update
 * (each output element summed in list order by its thread) follow the CPU's sequence;
 * with RND the probabilities are rounded to bf16 for P·V. */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

#define ABLK 64
#define ATH 128
#define AMAXE 8 /* head_dim <= ATH * AMAXE */

/* T: the KV element type (float, or uint16_t bf16 with KERN_KV16), widened exactly */
template <typename T>
__global__ void __launch_bounds__(ATH) k_attn(float *o, const float *q, const T *win, int n_win,
					       const T *cmp, const int32_t *idx, int n_idx, const float *sink,
					       int H, int dh, float tau, unsigned nm)
{
	extern __shared__ float qs[]; /* [dh] */
	__shared__ float sj[ABLK], pr[ABLK], pv[ABLK];
	__shared__ int ej[ABLK];
	__shared__ float s_mb, s_psum;
	const int h = blockIdx.x % H, s = blockIdx.x / H, tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;
	const float *qh = q + ((size_t)s * H + h) * dh;
	for (int i = tid; i < dh; i += ATH) qs[i] = qh[i];
	const int32_t *I = idx + (size_t)s * n_idx;
	float acc[AMAXE];
#pragma unroll
	for (int j = 0; j < AMAXE; j++) acc[j] = 0.0f;
	float m = -INFINITY, l = 0.0f;
	for (int b0 = 0; b0 < n_idx; b0 += ABLK) {
		const int nb = n_idx - b0 < ABLK ? n_idx - b0 : ABLK;
		if (tid < ABLK) ej[tid] = tid < nb ? I[b0 + tid] : -1;
		__syncthreads();
		for (int j = wid; j < ABLK; j += ATH / 32) {
			const int e = ej[j];
			if (e < 0) {
				if (lane == 0) sj[j] = -INFINITY;
				continue;
			}
			const T *kr = e < n_win ? win + (size_t)e * dh : cmp + (size_t)(e - n_win) * dh;
			float dot = 0.0f;
			for (int i = lane; i < dh; i += 32) dot = fmaf(qs[i], d_kv(kr, i), dot);
			dot = warp_sum(dot);
			if (lane == 0) sj[j] = __fmul_rn(dot, tau);
		}
		__syncthreads();
		if (tid == 0) {
			float mb = m;
			for (int j = 0; j < nb; j++)
				if (sj[j] > mb) mb = sj[j];
			s_mb = mb;
		}
		__syncthreads();
		const float mb = s_mb;
		if (mb == -INFINITY) continue; /* only padding so far: uniform, ej/sj rewritten after a barrier */
		const float alpha = expf(__fsub_rn(m, mb));
		if (tid < ABLK) {
			float p = tid < nb && sj[tid] != -INFINITY ? expf(__fsub_rn(sj[tid], mb)) : 0.0f;
			pv[tid] = p;
			pr[tid] = d_rnd(p, nm);
		}
		__syncthreads();
		if (tid == 0) {
			float psum = 0.0f;
			for (int j = 0; j < nb; j++)
				if (sj[j] != -INFINITY) psum = __fadd_rn(psum, pv[j]);
			s_psum = psum;
		}
#pragma unroll
		for (int jj = 0; jj < AMAXE; jj++) {
			const int i = tid + ATH * jj;
			if (i >= dh) break;
			float a = __fmul_rn(acc[jj], alpha);
			for (int j = 0; j < nb; j++) {
				const int e = ej[j];
				if (e < 0 || sj[j] == -INFINITY) continue;
				const T *kr = e < n_win ? win + (size_t)e * dh : cmp + (size_t)(e - n_win) * dh;
				a = __fadd_rn(a, __fmul_rn(pr[j], d_kv(kr, i)));
			}
			acc[jj] = a;
		}
		__syncthreads();
		l = __fadd_rn(__fmul_rn(l, alpha), s_psum);
		m = mb;
		__syncthreads(); /* s_psum, ej, sj read before the next block rewrites them */
	}
	l = __fadd_rn(l, expf(__fsub_rn(sink[h], m)));
	float *oh = o + ((size_t)s * H + h) * dh;
#pragma unroll
	for (int jj = 0; jj < AMAXE; jj++) {
		const int i = tid + ATH * jj;
		if (i < dh) oh[i] = d_rnd(__fdiv_rn(acc[jj], l), nm);
	}
}

void cu_attn(struct kern *k, float *o, const float *q, const struct kern_kv *kv, const int32_t *idx, int n_idx,
	     const float *sink, int S, int H, int dh, float tau, unsigned nm)
{
	if (S <= 0 || H <= 0 || n_idx <= 0) return;
	if (dh > ATH * AMAXE) {
		fprintf(stderr, "nvmoe: CUDA attn: head_dim %d > %d\n", dh, ATH * AMAXE);
		abort();
	}
	/* (s, h) pairs in x: gridDim.y would cap S at 65535 (chunks may be larger) */
	const unsigned grid = (unsigned)S * (unsigned)H;
	const size_t smem = (size_t)dh * sizeof(float);
	if (nm & KERN_KV16)
		k_attn<uint16_t><<<grid, ATH, smem, cu_of(k)->st>>>(o, q, (const uint16_t *)kv->win, kv->n_win,
								    (const uint16_t *)kv->cmp, idx, n_idx, sink, H, dh,
								    tau, nm);
	else
		k_attn<float><<<grid, ATH, smem, cu_of(k)->st>>>(o, q, (const float *)kv->win, kv->n_win,
								 (const float *)kv->cmp, idx, n_idx, sink, H, dh, tau, nm);
	cu_after_launch(k, "attn");
}

/* KV cache store (kern.h kv_store): bf16 RNE with KV16 (d_rbf16's bits), else a copy */
__global__ void k_kv_store16(uint16_t *dst, const float *src, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		dst[i] = (uint16_t)(__float_as_uint(d_rbf16(src[i])) >> 16);
}

void cu_kv_store(struct kern *k, void *dst, const float *src, size_t n, unsigned nm)
{
	if (!n) return;
	if (!(nm & KERN_KV16)) {
		if (dst != (const void *)src)
			CU_CALL(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, cu_of(k)->st));
		return;
	}
	size_t blocks = (n + 255) / 256;
	if (blocks > 4096) blocks = 4096;
	k_kv_store16<<<(unsigned)blocks, 256, 0, cu_of(k)->st>>>((uint16_t *)dst, src, n);
	cu_after_launch(k, "kv_store");
}
