/* kernels/numeric.h - number formats and quantisation simulations (MODEL.md §10).
 *
 * Contract
 *   The single source of truth for the numeric primitives: bf16 rounding, E4M3 /
 *   E8M0 / E2M1 codecs, the power-of-two block scales of act_quant and QDQ4, the
 *   Hadamard rotation.  kernels/ must not include core/, so these live here and
 *   core/numfmt.h forwards to them (core -> kernels is the allowed direction).
 *   Pure functions, no state, thread-safe.  Encoders round to nearest, ties to
 *   even, and saturate (E4M3 at ±448, never NaN for finite/infinite input; E2M1
 *   at ±6); NaN encodes as 0x7F (E4M3) / 0x7 with sign (E2M1).  Decoders are exact.
 *   Block scales use the exact formula 2^ceil(log2(max(amax, floor)/fmax)) for any
 *   f32 amax (the reference's f32 evaluation agrees with it for bf16 inputs, and
 *   the golden `exact` mode applies it to unrounded f32 values).
 */
#ifndef NV_KERN_NUMERIC_H
#define NV_KERN_NUMERIC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* E4M3 values by byte (NaN for 0x7F/0xFF); E2M1 values by nibble. */
extern const float kern_e4m3_lut[256];
extern const float kern_e2m1_lut[16];

static inline float kern_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* RNE; NaN stays NaN (quiet). */
static inline uint16_t kern_f32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

/* bf16(v) as an f32 value. */
static inline float kern_rbf16(float f) { return kern_bf16_to_f32(kern_f32_to_bf16(f)); }

static inline float kern_e8m0_to_f32(uint8_t b)
{
	if (b == 0xFF) return NAN;
	return ldexpf(1.0f, (int)b - 127);
}

static inline float kern_e4m3_to_f32(uint8_t b) { return kern_e4m3_lut[b]; }

static inline uint8_t kern_f32_to_e4m3(float f)
{
	if (isnan(f)) return 0x7F;
	uint8_t sign = signbit(f) ? 0x80 : 0;
	float a = fabsf(f);
	uint8_t code;
	if (a >= 448.0f) {
		code = 0x7E;
	} else if (a < 0.015625f) { /* below 2^-6: subnormal grid m * 2^-9 */
		code = (uint8_t)nearbyintf(a * 512.0f); /* 8 -> 0x08 = 2^-6, contiguous */
	} else {
		int e;
		float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
		e -= 1;                  /* a = (2m) * 2^e, 2m in [1, 2) */
		float q = nearbyintf((2.0f * m - 1.0f) * 8.0f);
		if (q >= 8.0f) { q = 0; e++; }
		int c = ((e + 7) << 3) | (int)q;
		code = (uint8_t)(c > 0x7E ? 0x7E : c);
	}
	return (uint8_t)(sign | code);
}

static inline float kern_e2m1_to_f32(uint8_t nib) { return kern_e2m1_lut[nib & 15]; }

static inline uint8_t kern_f32_to_e2m1(float f)
{
	uint8_t sign = signbit(f) ? 8 : 0;
	float a = fabsf(f);
	uint8_t c;
	if (isnan(f)) c = 7;
	else if (a <= 0.25f) c = 0;
	else if (a < 0.75f) c = 1;
	else if (a <= 1.25f) c = 2;
	else if (a < 1.75f) c = 3;
	else if (a <= 2.5f) c = 4;
	else if (a < 3.5f) c = 5;
	else if (a <= 5.0f) c = 6;
	else c = 7;
	return (uint8_t)(sign | c);
}

/* 2^ceil(log2(max(amax, floor) / fmax)), exact (fmax = 448 or 6). */
static inline float kern_pow2_scale(float amax, float fmax, float floor)
{
	double a = amax > floor ? amax : floor;
	if (!(a == a)) return NAN;
	if (isinf(a)) return INFINITY; /* 2^ceil(log2(inf)); the loops below would not end */
	int e = (int)ceil(log2(a / fmax));
	/* fix the estimate with exact comparisons: want fmax*2^(e-1) < a <= fmax*2^e */
	while (ldexp(fmax, e) < a) e++;
	while (ldexp(fmax, e - 1) >= a) e--;
	return (float)ldexp(1.0, e);
}

/* act_quant of one block (§10.1): returns the scale s and writes the DECODED
 * E4M3 values q[k] = e4m3(clamp(x[k]/s)) (exact f32) into q. */
static inline float kern_act_quant_block(const float *x, int n, float *q)
{
	float amax = 0;
	for (int i = 0; i < n; i++) {
		float a = fabsf(x[i]);
		if (a > amax) amax = a;
	}
	float s = kern_pow2_scale(amax, 448.0f, 1e-4f);
	float inv = 1.0f / s; /* exact: s is a power of two */
	for (int i = 0; i < n; i++) {
		float v = x[i] * inv;
		if (v > 448.0f) v = 448.0f;
		if (v < -448.0f) v = -448.0f;
		q[i] = kern_e4m3_lut[kern_f32_to_e4m3(v)];
	}
	return s;
}

/* QDQ8 in place over len values in blocks of b: x <- e4m3(x/s)*s (exact in bf16). */
static inline void kern_qdq8(float *x, int len, int b)
{
	for (int o = 0; o < len; o += b) {
		int n = len - o < b ? len - o : b;
		float s = kern_act_quant_block(x + o, n, x + o);
		for (int i = 0; i < n; i++) x[o + i] *= s;
	}
}

/* QDQ4 in place (§10.2) in blocks of b (32). */
static inline void kern_qdq4(float *x, int len, int b)
{
	for (int o = 0; o < len; o += b) {
		int n = len - o < b ? len - o : b;
		float amax = 0;
		for (int i = 0; i < n; i++) {
			float a = fabsf(x[o + i]);
			if (a > amax) amax = a;
		}
		float s = kern_pow2_scale(amax, 6.0f, 6.0f * 0x1p-126f);
		float inv = 1.0f / s;
		for (int i = 0; i < n; i++) {
			float v = x[o + i] * inv;
			if (v > 6.0f) v = 6.0f;
			if (v < -6.0f) v = -6.0f;
			x[o + i] = kern_rbf16(kern_e2m1_lut[kern_f32_to_e2m1(v)] * s);
		}
	}
}

/* y = (H_n x) * f32(n^-0.5) in place (§10.6), n a power of two; f32 butterflies.
 * Rounds the result to bf16 when round_bf16 is set. */
static inline void kern_hadamard(float *x, int n, int round_bf16)
{
	for (int h = 1; h < n; h *= 2)
		for (int i = 0; i < n; i += 2 * h)
			for (int j = i; j < i + h; j++) {
				float a = x[j], b = x[j + h];
				x[j] = a + b;
				x[j + h] = a - b;
			}
	float sc = (float)(1.0 / sqrt((double)n));
	for (int i = 0; i < n; i++) {
		float v = x[i] * sc;
		x[i] = round_bf16 ? kern_rbf16(v) : v;
	}
}

#endif
