/* kernels/cpu/rope.c - interleaved partial RoPE (§8.3).  cos/sin of the f32 angle
 * are evaluated in double and rounded once: the correctly rounded f32 values the
 * spec fixes (exact for the released constants, see MODEL.md §8.3). */
#include <math.h>

#include "cpu.h"

void cpu_rope(struct kern *k, float *x, int rows, int ld, int nh, int hstride, int off, int dr,
	      const float *freq, int pos0, int pos_step, int inverse, unsigned nm)
{
	for (int s = 0; s < rows; s++) {
		long p = (long)pos0 + (long)s * pos_step;
		for (int i = 0; i < dr / 2; i++) {
			float th = (float)((double)p * (double)freq[i]); /* exact product, one rounding */
			float c = (float)cos((double)th), sn = (float)sin((double)th);
			for (int h = 0; h < nh; h++) {
				float *v = x + (size_t)s * ld + (size_t)h * hstride + off + 2 * i;
				float a = v[0], b = v[1];
				float a2, b2;
				if (!inverse) {
					a2 = a * c - b * sn;
					b2 = a * sn + b * c;
				} else {
					a2 = a * c + b * sn;
					b2 = b * c - a * sn;
				}
				v[0] = cpu_rnd(a2, nm);
				v[1] = cpu_rnd(b2, nm);
			}
		}
	}
}
