/* core/numfmt.h - the number formats of the checkpoint and the activation
 * quantisation simulations (MODEL.md §10, CHECKPOINT.md §6).
 *
 * Contract
 *   Pure functions, no state, thread-safe.  Encoders round to nearest, ties to even,
 *   and saturate (E4M3 at ±448, never NaN for finite or infinite input; E2M1 at ±6);
 *   a NaN input encodes as 0x7F (E4M3).  Decoders are exact (every value is an f32).
 *   The block quantisers work in place on f32 arrays holding bf16 values and
 *   reproduce `units/` of the golden data bit for bit.
 */
#ifndef NV_CORE_NUMFMT_H
#define NV_CORE_NUMFMT_H

#include <stdint.h>
#include <string.h>

/* The implementation lives in kernels/numeric.h (kernels/ may not include core/;
 * core -> kernels is the allowed direction), so there is one source of truth. */
#include "kernels/numeric.h"

static inline float core_bf16_to_f32(uint16_t h) { return kern_bf16_to_f32(h); }
/* RNE; NaN stays NaN (quiet). */
static inline uint16_t core_f32_to_bf16(float f) { return kern_f32_to_bf16(f); }
/* bf16(v) as an f32 value. */
static inline float core_round_bf16(float f) { return kern_rbf16(f); }

float core_e4m3_to_f32(uint8_t b);     /* NaN for 0x7F/0xFF */
uint8_t core_f32_to_e4m3(float f);
float core_e8m0_to_f32(uint8_t b);     /* 2^(b-127); NaN for 0xFF */
float core_e2m1_to_f32(uint8_t nib);   /* low 4 bits used */
uint8_t core_f32_to_e2m1(float f);     /* nibble code, bit 3 = sign */

/* E4M3 decode table for speed (index = byte); E2M1 values by nibble. */
#define core_e4m3_table kern_e4m3_lut
#define core_e2m1_table kern_e2m1_lut

/* act_quant (MODEL.md §10.1) of one block of n values: returns the power-of-two
 * scale s; q[k] = e4m3 code of x[k]/s (q may be NULL).  */
float core_act_quant_block(const float *x, int n, uint8_t *q);
/* QDQ8 in place over len values in blocks of b (128 or 64): x <- bf16(e4m3(x/s)*s). */
void core_qdq8(float *x, int len, int b);
/* QDQ4 in place over len values in blocks of 32 (MODEL.md §10.2). */
void core_qdq4(float *x, int len, int b);
/* y = (H_n x) * f32(n^-0.5), in place, n a power of two; f32 butterflies (§10.6).
 * Rounds the result to bf16 when round_bf16 is set. */
void core_hadamard(float *x, int n, int round_bf16);

/* Power-of-two scale 2^ceil(log2(amax/fmax)) with amax floored at `floor`
 * (exact; computed from the float's bits). */
float core_pow2_scale(float amax, float fmax_recip, float floor);

#endif
