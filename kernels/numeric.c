/* kernels/numeric.c - decode tables of kernels/numeric.h. */
#include "numeric.h"

#define E4(b) ((((b) & 0x7f) == 0x7f) ? NAN : \
	(((b) & 0x80) ? -1.0f : 1.0f) * ((((b) >> 3) & 15) == 0 ? \
		(float)((b) & 7) * 0x1p-9f : \
		(1.0f + (float)((b) & 7) / 8.0f) * (float)(1 << (((b) >> 3) & 15)) * 0x1p-7f))
#define E4x8(b) E4(b), E4(b + 1), E4(b + 2), E4(b + 3), E4(b + 4), E4(b + 5), E4(b + 6), E4(b + 7)
#define E4x64(b) E4x8(b), E4x8(b + 8), E4x8(b + 16), E4x8(b + 24), E4x8(b + 32), E4x8(b + 40), \
	E4x8(b + 48), E4x8(b + 56)

const float kern_e4m3_lut[256] = { E4x64(0), E4x64(64), E4x64(128), E4x64(192) };

const float kern_e2m1_lut[16] = {
	0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
	-0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};
