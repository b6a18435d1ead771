/* core/numfmt.c - E4M3 / E8M0 / E2M1 / BF16 codecs and the activation
 * quantisation simulations of MODEL.md §10. */
#include "numfmt.h"

#include <math.h>

/* Tables built from the decode rules of CHECKPOINT.md §6 (values written out so
 * that kernels can use them without a constructor). */
static float e4m3_decode_rule(uint8_t b)
{
	int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
	if ((b & 0x7f) == 0x7f) return NAN;
	float v = e == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + m / 8.0f, e - 7);
	return s ? -v : v;
}

/* E4M3 (fn) decode table, generated from the rule of CHECKPOINT.md §6. */
const float core_e4m3_table[256] = {
	0.0f, 0x1.0000000000000p-9f, 0x1.0000000000000p-8f, 0x1.8000000000000p-8f, 0x1.0000000000000p-7f, 0x1.4000000000000p-7f, 0x1.8000000000000p-7f, 0x1.c000000000000p-7f,
	0x1.0000000000000p-6f, 0x1.2000000000000p-6f, 0x1.4000000000000p-6f, 0x1.6000000000000p-6f, 0x1.8000000000000p-6f, 0x1.a000000000000p-6f, 0x1.c000000000000p-6f, 0x1.e000000000000p-6f,
	0x1.0000000000000p-5f, 0x1.2000000000000p-5f, 0x1.4000000000000p-5f, 0x1.6000000000000p-5f, 0x1.8000000000000p-5f, 0x1.a000000000000p-5f, 0x1.c000000000000p-5f, 0x1.e000000000000p-5f,
	0x1.0000000000000p-4f, 0x1.2000000000000p-4f, 0x1.4000000000000p-4f, 0x1.6000000000000p-4f, 0x1.8000000000000p-4f, 0x1.a000000000000p-4f, 0x1.c000000000000p-4f, 0x1.e000000000000p-4f,
	0x1.0000000000000p-3f, 0x1.2000000000000p-3f, 0x1.4000000000000p-3f, 0x1.6000000000000p-3f, 0x1.8000000000000p-3f, 0x1.a000000000000p-3f, 0x1.c000000000000p-3f, 0x1.e000000000000p-3f,
	0x1.0000000000000p-2f, 0x1.2000000000000p-2f, 0x1.4000000000000p-2f, 0x1.6000000000000p-2f, 0x1.8000000000000p-2f, 0x1.a000000000000p-2f, 0x1.c000000000000p-2f, 0x1.e000000000000p-2f,
	0x1.0000000000000p-1f, 0x1.2000000000000p-1f, 0x1.4000000000000p-1f, 0x1.6000000000000p-1f, 0x1.8000000000000p-1f, 0x1.a000000000000p-1f, 0x1.c000000000000p-1f, 0x1.e000000000000p-1f,
	0x1.0000000000000p+0f, 0x1.2000000000000p+0f, 0x1.4000000000000p+0f, 0x1.6000000000000p+0f, 0x1.8000000000000p+0f, 0x1.a000000000000p+0f, 0x1.c000000000000p+0f, 0x1.e000000000000p+0f,
	0x1.0000000000000p+1f, 0x1.2000000000000p+1f, 0x1.4000000000000p+1f, 0x1.6000000000000p+1f, 0x1.8000000000000p+1f, 0x1.a000000000000p+1f, 0x1.c000000000000p+1f, 0x1.e000000000000p+1f,
	0x1.0000000000000p+2f, 0x1.2000000000000p+2f, 0x1.4000000000000p+2f, 0x1.6000000000000p+2f, 0x1.8000000000000p+2f, 0x1.a000000000000p+2f, 0x1.c000000000000p+2f, 0x1.e000000000000p+2f,
	0x1.0000000000000p+3f, 0x1.2000000000000p+3f, 0x1.4000000000000p+3f, 0x1.6000000000000p+3f, 0x1.8000000000000p+3f, 0x1.a000000000000p+3f, 0x1.c000000000000p+3f, 0x1.e000000000000p+3f,
	0x1.0000000000000p+4f, 0x1.2000000000000p+4f, 0x1.4000000000000p+4f, 0x1.6000000000000p+4f, 0x1.8000000000000p+4f, 0x1.a000000000000p+4f, 0x1.c000000000000p+4f, 0x1.e000000000000p+4f,
	0x1.0000000000000p+5f, 0x1.2000000000000p+5f, 0x1.4000000000000p+5f, 0x1.6000000000000p+5f, 0x1.8000000000000p+5f, 0x1.a000000000000p+5f, 0x1.c000000000000p+5f, 0x1.e000000000000p+5f,
	0x1.0000000000000p+6f, 0x1.2000000000000p+6f, 0x1.4000000000000p+6f, 0x1.6000000000000p+6f, 0x1.8000000000000p+6f, 0x1.a000000000000p+6f, 0x1.c000000000000p+6f, 0x1.e000000000000p+6f,
	0x1.0000000000000p+7f, 0x1.2000000000000p+7f, 0x1.4000000000000p+7f, 0x1.6000000000000p+7f, 0x1.8000000000000p+7f, 0x1.a000000000000p+7f, 0x1.c000000000000p+7f, 0x1.e000000000000p+7f,
	0x1.0000000000000p+8f, 0x1.2000000000000p+8f, 0x1.4000000000000p+8f, 0x1.6000000000000p+8f, 0x1.8000000000000p+8f, 0x1.a000000000000p+8f, 0x1.c000000000000p+8f, NAN,
	-0.0f, -0x1.0000000000000p-9f, -0x1.0000000000000p-8f, -0x1.8000000000000p-8f, -0x1.0000000000000p-7f, -0x1.4000000000000p-7f, -0x1.8000000000000p-7f, -0x1.c000000000000p-7f,
	-0x1.0000000000000p-6f, -0x1.2000000000000p-6f, -0x1.4000000000000p-6f, -0x1.6000000000000p-6f, -0x1.8000000000000p-6f, -0x1.a000000000000p-6f, -0x1.c000000000000p-6f, -0x1.e000000000000p-6f,
	-0x1.0000000000000p-5f, -0x1.2000000000000p-5f, -0x1.4000000000000p-5f, -0x1.6000000000000p-5f, -0x1.8000000000000p-5f, -0x1.a000000000000p-5f, -0x1.c000000000000p-5f, -0x1.e000000000000p-5f,
	-0x1.0000000000000p-4f, -0x1.2000000000000p-4f, -0x1.4000000000000p-4f, -0x1.6000000000000p-4f, -0x1.8000000000000p-4f, -0x1.a000000000000p-4f, -0x1.c000000000000p-4f, -0x1.e000000000000p-4f,
	-0x1.0000000000000p-3f, -0x1.2000000000000p-3f, -0x1.4000000000000p-3f, -0x1.6000000000000p-3f, -0x1.8000000000000p-3f, -0x1.a000000000000p-3f, -0x1.c000000000000p-3f, -0x1.e000000000000p-3f,
	-0x1.0000000000000p-2f, -0x1.2000000000000p-2f, -0x1.4000000000000p-2f, -0x1.6000000000000p-2f, -0x1.8000000000000p-2f, -0x1.a000000000000p-2f, -0x1.c000000000000p-2f, -0x1.e000000000000p-2f,
	-0x1.0000000000000p-1f, -0x1.2000000000000p-1f, -0x1.4000000000000p-1f, -0x1.6000000000000p-1f, -0x1.8000000000000p-1f, -0x1.a000000000000p-1f, -0x1.c000000000000p-1f, -0x1.e000000000000p-1f,
	-0x1.0000000000000p+0f, -0x1.2000000000000p+0f, -0x1.4000000000000p+0f, -0x1.6000000000000p+0f, -0x1.8000000000000p+0f, -0x1.a000000000000p+0f, -0x1.c000000000000p+0f, -0x1.e000000000000p+0f,
	-0x1.0000000000000p+1f, -0x1.2000000000000p+1f, -0x1.4000000000000p+1f, -0x1.6000000000000p+1f, -0x1.8000000000000p+1f, -0x1.a000000000000p+1f, -0x1.c000000000000p+1f, -0x1.e000000000000p+1f,
	-0x1.0000000000000p+2f, -0x1.2000000000000p+2f, -0x1.4000000000000p+2f, -0x1.6000000000000p+2f, -0x1.8000000000000p+2f, -0x1.a000000000000p+2f, -0x1.c000000000000p+2f, -0x1.e000000000000p+2f,
	-0x1.0000000000000p+3f, -0x1.2000000000000p+3f, -0x1.4000000000000p+3f, -0x1.6000000000000p+3f, -0x1.8000000000000p+3f, -0x1.a000000000000p+3f, -0x1.c000000000000p+3f, -0x1.e000000000000p+3f,
	-0x1.0000000000000p+4f, -0x1.2000000000000p+4f, -0x1.4000000000000p+4f, -0x1.6000000000000p+4f, -0x1.8000000000000p+4f, -0x1.a000000000000p+4f, -0x1.c000000000000p+4f, -0x1.e000000000000p+4f,
	-0x1.0000000000000p+5f, -0x1.2000000000000p+5f, -0x1.4000000000000p+5f, -0x1.6000000000000p+5f, -0x1.8000000000000p+5f, -0x1.a000000000000p+5f, -0x1.c000000000000p+5f, -0x1.e000000000000p+5f,
	-0x1.0000000000000p+6f, -0x1.2000000000000p+6f, -0x1.4000000000000p+6f, -0x1.6000000000000p+6f, -0x1.8000000000000p+6f, -0x1.a000000000000p+6f, -0x1.c000000000000p+6f, -0x1.e000000000000p+6f,
	-0x1.0000000000000p+7f, -0x1.2000000000000p+7f, -0x1.4000000000000p+7f, -0x1.6000000000000p+7f, -0x1.8000000000000p+7f, -0x1.a000000000000p+7f, -0x1.c000000000000p+7f, -0x1.e000000000000p+7f,
	-0x1.0000000000000p+8f, -0x1.2000000000000p+8f, -0x1.4000000000000p+8f, -0x1.6000000000000p+8f, -0x1.8000000000000p+8f, -0x1.a000000000000p+8f, -0x1.c000000000000p+8f, NAN,
};

const float core_e2m1_table[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
				   -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float core_e4m3_to_f32(uint8_t b) { return e4m3_decode_rule(b); }

float core_e8m0_to_f32(uint8_t b)
{
	if (b == 0xff) return NAN;
	return ldexpf(1.0f, (int)b - 127);
}

float core_e2m1_to_f32(uint8_t nib) { return core_e2m1_table[nib & 15]; }

uint8_t core_f32_to_e4m3(float f)
{
	if (isnan(f)) return 0x7f;
	uint8_t sign = signbit(f) ? 0x80 : 0;
	double a = fabs((double)f);
	if (a > 448.0) return sign | 0x7e; /* saturate, infinities included */
	if (a < 0x1p-6) {
		/* subnormal grid m * 2^-9; m == 8 carries into the first normal code */
		double m = nearbyint(a * 512.0);
		return sign | (uint8_t)m;
	}
	int e;
	double fr = frexp(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
	int ex = e - 1;           /* a = (2 fr) * 2^ex, 2fr in [1, 2) */
	double m = nearbyint((2.0 * fr - 1.0) * 8.0);
	if (m == 8.0) { m = 0; ex++; }
	int code = ((ex + 7) << 3) | (int)m;
	if (code > 0x7e) code = 0x7e;
	return sign | (uint8_t)code;
}

uint8_t core_f32_to_e2m1(float f)
{
	uint8_t sign = signbit(f) ? 8 : 0;
	float a = fabsf(f);
	if (isnan(f)) return 7;
	if (a >= 6.0f) return sign | 7;
	/* nearest of the 8 magnitudes; a tie goes to the even code */
	int best = 0;
	float bd = a;
	for (int c = 1; c < 8; c++) {
		float d = fabsf(a - core_e2m1_table[c]);
		if (d < bd || (d == bd && (c & 1) == 0)) { bd = d; best = c; }
	}
	return sign | (uint8_t)best;
}

float core_pow2_scale(float amax, float fmax_recip, float floor_)
{
	if (!(amax >= floor_)) amax = floor_; /* also catches NaN */
	float t = amax * fmax_recip;          /* f32 product, as the reference does */
	int e;
	float fr = frexpf(t, &e);             /* t = fr * 2^e, fr in [0.5, 1) */
	/* ceil(log2 t): t == 2^(e-1) exactly when fr == 0.5 */
	int c = fr == 0.5f ? e - 1 : e;
	return ldexpf(1.0f, c);
}

#define F32_1_448 0x1.24925p-9f /* f32(1/448) = 0x3b124925 */
#define F32_1_6 0x1.555556p-3f  /* f32(1/6)   = 0x3e2aaaab */
#define F32_1EM4 0x1.a36e2ep-14f /* f32(1e-4)  = 0x38d1b717 */

float core_act_quant_block(const float *x, int n, uint8_t *q)
{
	float amax = 0;
	for (int k = 0; k < n; k++) {
		float a = fabsf(x[k]);
		if (a > amax) amax = a;
	}
	float s = core_pow2_scale(amax, F32_1_448, F32_1EM4);
	if (q) {
		float inv = 1.0f / s; /* exact: s is a power of two */
		for (int k = 0; k < n; k++) {
			float v = x[k] * inv;
			if (v > 448.0f) v = 448.0f;
			if (v < -448.0f) v = -448.0f;
			q[k] = core_f32_to_e4m3(v);
		}
	}
	return s;
}

void core_qdq8(float *x, int len, int b)
{
	uint8_t q[128];
	for (int o = 0; o < len; o += b) {
		int n = len - o < b ? len - o : b;
		float s = core_act_quant_block(x + o, n, q);
		for (int k = 0; k < n; k++)
			x[o + k] = core_round_bf16(core_e4m3_to_f32(q[k]) * s);
	}
}

void core_qdq4(float *x, int len, int b)
{
	const float floor_ = 6.0f * 0x1p-126f;
	for (int o = 0; o < len; o += b) {
		int n = len - o < b ? len - o : b;
		float amax = 0;
		for (int k = 0; k < n; k++)
			if (fabsf(x[o + k]) > amax) amax = fabsf(x[o + k]);
		float s = core_pow2_scale(amax, F32_1_6, floor_);
		float inv = 1.0f / s;
		for (int k = 0; k < n; k++) {
			float v = x[o + k] * inv;
			if (v > 6.0f) v = 6.0f;
			if (v < -6.0f) v = -6.0f;
			x[o + k] = core_round_bf16(core_e2m1_to_f32(core_f32_to_e2m1(v)) * s);
		}
	}
}

void core_hadamard(float *x, int n, int round_bf16)
{
	for (int h = 1; h < n; h <<= 1)
		for (int i = 0; i < n; i += 2 * h)
			for (int j = i; j < i + h; j++) {
				float a = x[j], b = x[j + h];
				x[j] = a + b;
				x[j + h] = a - b;
			}
	float sc = (float)(1.0 / sqrt((double)n));
	for (int i = 0; i < n; i++) {
		x[i] *= sc;
		if (round_bf16) x[i] = core_round_bf16(x[i]);
	}
}
