/* kernels/cpu/gemm_fp8.c - block-scaled FP8 GEMM (§7.2) and the grouped wo_a GEMM
 * on FP8 weights used as exact bf16 values (§7.4, §8.9).  Weights are decoded on
 * the fly from E4M3 bytes; every (row, output) dot product has a fixed order. */
#include "cpu.h"

void cpu_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx,
		  const struct kern_fp8w *W, int S, unsigned nm)
{
	const int K = W->k, N = W->n, nb = (K + 127) / 128;
	float *q = cpu_scratch(k, 0);          /* [S, K] quantised activations */
	float *sa = q + (size_t)S * K;         /* [S, nb] activation scales */
	for (int s = 0; s < S; s++)
		cpu_act_quant_row(x + (size_t)s * ldx, K, q + (size_t)s * K, sa + (size_t)s * nb, nm);
	for (int n = 0; n < N; n++) {
		const uint8_t *wr = W->w + (size_t)n * K;
		for (int s = 0; s < S; s++) {
			const float *qr = q + (size_t)s * K;
			float acc = 0;
			for (int b = 0; b < nb; b++) {
				int o = b * 128, e = o + 128 < K ? o + 128 : K;
				float p = 0;
				for (int i = o; i < e; i++) p += qr[i] * kern_e4m3_lut[wr[i]];
				acc += (sa[(size_t)s * nb + b] * cpu_fp8_scale(W, n, b)) * p;
			}
			y[(size_t)s * ldy + n] = cpu_rnd(acc, nm);
		}
	}
}

void cpu_gemm_fp8_grouped(struct kern *k, float *y, const float *x, const struct kern_fp8w *W,
			  int G, int S, unsigned nm)
{
	const int Kg = W->k, R = W->n / G, nb = (Kg + 127) / 128;
	for (int g = 0; g < G; g++)
		for (int r = 0; r < R; r++) {
			int n = g * R + r;
			const uint8_t *wr = W->w + (size_t)n * Kg;
			for (int s = 0; s < S; s++) {
				const float *xr = x + (size_t)s * G * Kg + (size_t)g * Kg;
				float acc = 0;
				for (int b = 0; b < nb; b++) {
					/* the weight value e4m3·scale is exact in bf16/f32 */
					float sw = cpu_fp8_scale(W, n, b);
					int o = b * 128, e = o + 128 < Kg ? o + 128 : Kg;
					for (int i = o; i < e; i++) acc += xr[i] * (kern_e4m3_lut[wr[i]] * sw);
				}
				y[(size_t)s * G * R + n] = cpu_rnd(acc, nm);
			}
		}
}
