/* core/numfmt.c - E4M3 / E8M0 / E2M1 / BF16 codecs and the activation
 * quantisation simulations of MODEL.md §10: thin wrappers over kernels/numeric.h
 * (the single implementation, shared with the kernels). */
#include "numfmt.h"

#include <math.h>

float core_e4m3_to_f32(uint8_t b) { return kern_e4m3_to_f32(b); }
float core_e8m0_to_f32(uint8_t b) { return kern_e8m0_to_f32(b); }
float core_e2m1_to_f32(uint8_t nib) { return kern_e2m1_to_f32(nib); }
uint8_t core_f32_to_e4m3(float f) { return kern_f32_to_e4m3(f); }
uint8_t core_f32_to_e2m1(float f) { return kern_f32_to_e2m1(f); }

/* The reference's evaluation: the f32 product amax * f32(1/fmax), ceil(log2) from
 * the float's bits.  For bf16 amax it equals kern_pow2_scale's exact formula. */
float core_pow2_scale(float amax, float fmax_recip, float floor_)
{
	if (!(amax >= floor_)) amax = floor_; /* also catches NaN */
	float t = amax * fmax_recip;
	int e;
	float fr = frexpf(t, &e); /* t = fr * 2^e, fr in [0.5, 1) */
	int c = fr == 0.5f ? e - 1 : e;
	return ldexpf(1.0f, c);
}

float core_act_quant_block(const float *x, int n, uint8_t *q)
{
	float amax = 0;
	for (int k = 0; k < n; k++) {
		float a = fabsf(x[k]);
		if (a > amax) amax = a;
	}
	float s = kern_pow2_scale(amax, 448.0f, 1e-4f);
	if (q) {
		float inv = 1.0f / s; /* exact: s is a power of two */
		for (int k = 0; k < n; k++) {
			float v = x[k] * inv;
			if (v > 448.0f) v = 448.0f;
			if (v < -448.0f) v = -448.0f;
			q[k] = kern_f32_to_e4m3(v);
		}
	}
	return s;
}

void core_qdq8(float *x, int len, int b) { kern_qdq8(x, len, b); }
void core_qdq4(float *x, int len, int b) { kern_qdq4(x, len, b); }
void core_hadamard(float *x, int n, int round_bf16) { kern_hadamard(x, n, round_bf16); }
