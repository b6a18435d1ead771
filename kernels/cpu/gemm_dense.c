/* kernels/cpu/gemm_dense.c - BF16 GEMM (§7.4, rounded output) and F32 GEMM on bf16
 * weights upcast to f32 (never rounded: gate, compressor, head). */
#include "cpu.h"

static inline float dot_bf16w(const float *x, const uint16_t *w, int K)
{
	float acc = 0;
	for (int i = 0; i < K; i++) acc += x[i] * kern_bf16_to_f32(w[i]);
	return acc;
}

void cpu_gemm_bf16(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w,
		   int N, int K, int S, unsigned nm)
{
	for (int n = 0; n < N; n++)
		for (int s = 0; s < S; s++)
			y[(size_t)s * ldy + n] = cpu_rnd(dot_bf16w(x + (size_t)s * ldx, w + (size_t)n * K, K), nm);
}

void cpu_gemm_f32(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w,
		  int N, int K, int S)
{
	for (int n = 0; n < N; n++)
		for (int s = 0; s < S; s++)
			y[(size_t)s * ldy + n] = dot_bf16w(x + (size_t)s * ldx, w + (size_t)n * K, K);
}
