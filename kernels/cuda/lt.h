/* kernels/cuda/lt.h - host-side rules of the cuBLASLt block-scaled FP8 GEMM path
 * (kernels/cuda/gemm_lt.cu, selected with NVMOE_CUDA_GEMM=lt): when it applies and
 * how the weight scales are laid out for it.
 *
 * Contract
 *   Pure functions of their arguments (static inline, plain C: a CPU-only unit test
 *   checks them without CUDA).  No state, thread-safe.
 *
 *   The mapping.  y[S, N] (row-major, stride ldy) = x[S, K] · Wᵀ is computed as the
 *   column-major cuBLASLt product D[N, S] = op(A)[N, K] · B[K, S] with
 *     A = the weight [N, K] row-major = column-major K×N, ld K, TRANSA = T,
 *         scale mode BLK128x128_32F (one f32 per 128×128 block);
 *     B = the act_quant codes [S, K] row-major = column-major K×S, ld K, TRANSB = N,
 *         scale mode VEC128_32F (one f32 per 128 values along K);
 *     D = y seen as column-major N×S with ld = ldy.
 *   This is the "TN" layout FP8 matmuls require, and D lands in y without a copy.
 *
 *   Scale layouts (cuBLASLt's, for a matrix whose inner dimension is K):
 *     VEC128_32F   [K/128][outer]: scale of (row s, block b) at b*S + s;
 *     BLK128x128_32F [ceil(N/128)][ldk], ldk = ceil(K/128) rounded up to 4: scale of
 *                  block (nb, kb) at nb*ldk + kb; the padding holds 0.
 *   The checkpoint's E8M0 grid [ceil(N/128), ceil(K/128)] has the same order, so the
 *   conversion is a decode (2^(e-127), MODEL.md §10.4) plus the row padding.
 */
#ifndef NV_KERN_CUDA_LT_H
#define NV_KERN_CUDA_LT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kern.h"
#include "kernels/numeric.h"

/* Row length (in scales) of the BLK128x128_32F weight-scale grid. */
static inline int kern_lt_ldk(int k) { return ((k + 127) / 128 + 3) / 4 * 4; }

/* Elements of the converted weight-scale grid of an [n, k] weight. */
static inline size_t kern_lt_wscale_count(int n, int k) { return (size_t)((n + 127) / 128) * kern_lt_ldk(k); }

/* dst [ceil(n/128)][kern_lt_ldk(k)] f32 = decoded E8M0 grid s [ceil(n/128)][ceil(k/128)],
 * padding columns 0. */
static inline void kern_lt_wscale_f32(float *dst, const uint8_t *s, int n, int k)
{
	const int nb = (n + 127) / 128, kb = (k + 127) / 128, ldk = kern_lt_ldk(k);
	for (int i = 0; i < nb; i++)
		for (int j = 0; j < ldk; j++) dst[(size_t)i * ldk + j] = j < kb ? kern_e8m0_to_f32(s[(size_t)i * kb + j]) : 0.0f;
}

/* 1 when the cuBLASLt path can compute gemm_fp8 for these arguments: act_quant on
 * (KERN_QNT: block scaling has no "smooth" variant), whole 128-blocks along K (the
 * VEC128 activation scales cover exactly 128 values), N a multiple of 16 and the FP8 /
 * f32 leading dimensions and pointers 16-byte aligned (cuBLASLt's FP8 requirements;
 * ldy counts floats).  Anything else takes the backend's own kernel. */
static inline int kern_lt_fits(int n, int k, int ldy, unsigned nm, uintptr_t w, uintptr_t s, uintptr_t y)
{
	if (!(nm & KERN_QNT) || n <= 0 || k <= 0) return 0;
	if (k % 128 || n % 16 || ldy % 4 || ldy < n) return 0;
	return !(w % 16) && s && !(y % 16);
}

#endif
