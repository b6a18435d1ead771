/* kernels/cpu/isa_scalar.c - the plain-C inner loops: the spec's formulas in their
 * natural order (the reference the AVX2 table is tested against). */
#include "cpu.h"
#include "isa.h"

static void fp8_scalar(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
		       const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nb = (K + 127) / 128;
	for (int n = n0; n < n1; n++) {
		const uint8_t *wr = W->w + (size_t)n * K;
		for (int s = 0; s < S; s++) {
			const float *qr = q + (size_t)s * ldq;
			float acc = 0;
			for (int b = 0; b < nb; b++) {
				int o = b * 128, e = o + 128 < K ? o + 128 : K;
				float p = 0;
				for (int i = o; i < e; i++) p += qr[i] * kern_e4m3_lut[wr[i]];
				acc += (sa[(size_t)s * ldsa + b] * cpu_fp8_scale(W, n, b)) * p;
			}
			y[(size_t)s * ldy + n] = cpu_rnd(acc, nm);
		}
	}
}

static void fp8g_scalar(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0,
			int n1, float *wb, unsigned nm)
{
	const int Kg = W->k, R = W->n / G, nb = (Kg + 127) / 128;
	for (int n = n0; n < n1; n++) {
		int g = n / R;
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

static void fp4_scalar(float *y, int ldy, const float *q, const float *sa, int S,
		       const struct kern_fp4w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nc = K / 32, nb = (K + 127) / 128;
	for (int n = n0; n < n1; n++) {
		const uint8_t *wr = W->w + (size_t)n * (K / 2);
		const uint8_t *sr = W->s + (size_t)n * nc;
		for (int s = 0; s < S; s++) {
			const float *qs = q + (size_t)s * K, *sas = sa + (size_t)s * nb;
			float acc = 0;
			for (int c = 0; c < nc; c++) {
				float p = 0;
				const float *qc = qs + c * 32;
				const uint8_t *wc = wr + c * 16;
				for (int i = 0; i < 16; i++) {
					p += qc[2 * i] * kern_e2m1_lut[wc[i] & 15];
					p += qc[2 * i + 1] * kern_e2m1_lut[wc[i] >> 4];
				}
				acc += sas[c / 4] * kern_e8m0_to_f32(sr[c]) * p;
			}
			y[(size_t)s * ldy + n] = cpu_rnd(acc, nm);
		}
	}
}

static void dense_scalar(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S,
			 int n0, int n1, int rnd, float *wb)
{
	(void)wb;
	for (int n = n0; n < n1; n++) {
		const uint16_t *wr = w + (size_t)n * K;
		for (int s = 0; s < S; s++) {
			const float *xr = x + (size_t)s * ldx;
			float acc = 0;
			for (int i = 0; i < K; i++) acc += xr[i] * kern_bf16_to_f32(wr[i]);
			y[(size_t)s * ldy + n] = rnd ? kern_rbf16(acc) : acc;
		}
	}
}

static float actq_scalar(const float *x, int n, float *q) { return kern_act_quant_block(x, n, q); }

static float dot_scalar(const float *a, const float *b, int n)
{
	float acc = 0;
	for (int i = 0; i < n; i++) acc += a[i] * b[i];
	return acc;
}

static void axpy_scalar(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static float dot16_scalar(const float *a, const uint16_t *b, int n)
{
	float acc = 0;
	for (int i = 0; i < n; i++) acc += a[i] * kern_bf16_to_f32(b[i]);
	return acc;
}

static void axpy16_scalar(float *y, float a, const uint16_t *x, int n)
{
	for (int i = 0; i < n; i++) y[i] += a * kern_bf16_to_f32(x[i]);
}

const struct cpu_isa cpu_isa_scalar = {
	.name = "scalar",
	.fp8 = fp8_scalar,
	.fp8g = fp8g_scalar,
	.fp4 = fp4_scalar,
	.fp4_layout = NULL,
	.fp8_layout = NULL,
	.fp8g_layout = NULL,
	.dense = dense_scalar,
	.actq = actq_scalar,
	.dot = dot_scalar,
	.axpy = axpy_scalar,
	.dot16 = dot16_scalar,
	.axpy16 = axpy16_scalar,
};
