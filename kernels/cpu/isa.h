/* kernels/cpu/isa.h - inner loops of the CPU backend, one table per instruction set.
 *
 * Contract
 *   The ops in kernels/cpu/<family>.c split their work into tasks over disjoint
 *   output ranges (columns of a GEMM, heads, tokens) and call these inner loops on
 *   each range.  An inner loop computes every output with a fixed sequence of
 *   floating-point operations that depends only on that output's inputs - never on
 *   the range, the number of tokens S or the thread - so results are bitwise
 *   independent of chunking, batching and thread count on one table.
 *   Two tables: cpu_isa_scalar (plain C, the reference arithmetic of the spec's
 *   formulas in their natural order) and cpu_isa_avx2 (AVX2 + FMA, compiled with
 *   target attributes and chosen at run time with __builtin_cpu_supports).  They
 *   differ only by f32 summation order inside the sums that MODEL.md §7.5/§10.8
 *   leave free; tests compare them at stated tolerances.  The "avx512" table is the
 *   AVX2 one with the AVX-512 BF16 loops declared below swapped in.
 *   Weights are decoded on the fly (FP8 / FP4 / bf16 never expanded beyond a few
 *   rows of per-thread scratch).  Prefill (S > 1) on the AVX-512 loops decodes a
 *   group of weight rows once into that scratch and applies it to tiles of tokens;
 *   a token's operations are those of a call with S = 1 all the same.  NaN weight codes (E4M3 0x7F) decode as finite values
 *   on the AVX2 table (a valid checkpoint has none).
 *
 *   Scratch: `wb` is per-thread scratch of at least cpu_isa_wb_floats(K, S) floats.
 */
#ifndef NV_KERN_CPU_ISA_H
#define NV_KERN_CPU_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kern.h"

struct cpu_isa {
	const char *name;
	/* y[s*ldy + n] = rnd(Σ_b sa[s*ldsa + b]·sw[n/128][b]·Σ_{k∈b} q[s*ldq + k]·w[n][k])
	 * for n in [n0, n1), s < S: the FP8 GEMM of §7.2 on prepared activations. */
	void (*fp8)(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
		    const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm);
	/* The grouped wo_a GEMM of §8.9 on outputs [n0, n1) (kern.h gemm_fp8_grouped). */
	void (*fp8g)(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0, int n1,
		     float *wb, unsigned nm);
	/* FP4 GEMM of §7.3: y[s*ldy + n] for n in [n0, n1); q [S, K] prepared by
	 * fp4_layout (rows of K), sa [S, K/128]. */
	void (*fp4)(float *y, int ldy, const float *q, const float *sa, int S, const struct kern_fp4w *W,
		    int n0, int n1, float *wb, unsigned nm);
	/* Reorders len quantised inputs of a row of K (K % 32 == 0; the piece starts at
	 * a multiple of 128 and len is a multiple of 128 unless the piece ends the row)
	 * into the layout fp4 reads for rows of K with the same nm (tmp: 256 floats);
	 * NULL = natural order. */
	void (*fp4_layout)(float *q, int len, int K, float *tmp, unsigned nm);
	/* Rewrites one act_quant-ed row of K (q, in place) into the layout fp8 reads
	 * with the same nm; NULL = natural order (f32). */
	void (*fp8_layout)(float *q, int K, unsigned nm);
	/* Writes rows [s0, s1) of x [S, G*Kg] into xs (bf16 words, [S, G*Kg]) in the
	 * layout fp8g then reads instead of x; returns 0 (writing nothing, also for an
	 * empty range) when fp8g reads x itself for this Kg and nm.  NULL = never. */
	int (*fp8g_layout)(uint16_t *xs, const float *x, int Kg, int G, int s0, int s1, unsigned nm);
	/* y[s*ldy + n] = rnd?(Σ_k x[s*ldx + k]·f32(w[n*K + k])), n in [n0, n1); rounds
	 * to bf16 when rnd.  wb: per-thread scratch (unused by scalar / AVX2). */
	void (*dense)(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S,
		      int n0, int n1, int rnd, float *wb);
	/* act_quant of one block of n <= 128 (kern_act_quant_block, bit-exact): returns
	 * the scale, writes the decoded E4M3 values (q may be x). */
	float (*actq)(const float *x, int n, float *q);
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float a, const float *x, int n); /* y += a·x */
	/* dot and axpy on a bf16 row b / x (KV16 caches): the same operations in the
	 * same order on the exactly widened values, so bitwise equal to dot / axpy on
	 * the f32 copy of the row. */
	float (*dot16)(const float *a, const uint16_t *b, int n);
	void (*axpy16)(float *y, float a, const uint16_t *x, int n);
};

extern const struct cpu_isa cpu_isa_scalar;
extern const struct cpu_isa cpu_isa_avx2;
/* AVX-512 BF16 FP4 loops (isa_avx512.c): with QNT and K % 128 == 0 the activation
 * codes (E4M3 values, exact in bf16) are dotted with the weights by VDPBF16PS, else
 * they use the AVX2 loops below.  The "avx512" table is the AVX2 one with these. */
void cpu_fp4_avx512(float *y, int ldy, const float *q, const float *sa, int S, const struct kern_fp4w *W,
		    int n0, int n1, float *wb, unsigned nm);
void cpu_fp4_layout_avx512(float *q, int len, int K, float *tmp, unsigned nm);
int cpu_have_avx512bf16(void); /* CPU and compiler support the table */
void cpu_fp4_avx2(float *y, int ldy, const float *q, const float *sa, int S, const struct kern_fp4w *W,
		  int n0, int n1, float *wb, unsigned nm);
void cpu_fp4_layout_avx2(float *q, int len, int K, float *tmp, unsigned nm);
/* AVX-512 BF16 + VBMI FP8 loops (isa_avx512_fp8.c): with QNT (fp8) or RND (fp8g,
 * bf16 activations) and K % 128 == 0, E4M3 weights decoded to bf16 and dotted by
 * VDPBF16PS, rows decoded once per group and applied to tiles of tokens; else the
 * AVX2 loops.  Part of the "avx512" table when the CPU has VBMI. */
void cpu_fp8_avx512(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
		    const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm);
void cpu_fp8g_avx512(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0, int n1,
		     float *wb, unsigned nm);
void cpu_fp8_layout_avx512(float *q, int K, unsigned nm);
int cpu_fp8g_layout_avx512(uint16_t *xs, const float *x, int Kg, int G, int s0, int s1, unsigned nm);
int cpu_have_avx512vbmi(void); /* cpu_have_avx512bf16() and VBMI */
/* AVX-512 BF16 dense loop (isa_avx512_dense.c): bf16-exact activation rows dotted
 * with the bf16 weights by VDPBF16PS in tiles of up to 4 tokens; other rows take the
 * AVX2 loop.  Part of the "avx512" table. */
void cpu_dense_avx512(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S, int n0,
		      int n1, int rnd, float *wb);

/* Per-thread scratch the inner loops need for rows of K and S tokens. */
static inline size_t cpu_isa_wb_floats(size_t K, size_t S)
{
	return 3 * K + 4 * (K / 32 + 8) + 4 * S + 256;
}

#endif
