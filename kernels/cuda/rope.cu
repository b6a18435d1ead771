/* kernels/cuda/rope.cu - interleaved partial RoPE (§8.3).  Angle and cos/sin exactly
 * as kernels/cpu/rope.c (double precision, one rounding to f32), so the tables and
 * the rotated values are bit-identical to the CPU. */
#include "cu.cuh"

/* block: one row; thread i < dr/2: one frequency, all heads */
__global__ void k_rope(float *x, int ld, int nh, int hstride, int off, int dr, const float *freq, int pos0,
		       int pos_step, int inverse, unsigned nm)
{
	const int s = blockIdx.x;
	const long p = (long)pos0 + (long)s * pos_step;
	for (int i = threadIdx.x; i < dr / 2; i += blockDim.x) {
		float th = (float)((double)p * (double)freq[i]); /* exact product, one rounding */
		float c = (float)cos((double)th), sn = (float)sin((double)th);
		for (int h = 0; h < nh; h++) {
			float *v = x + (size_t)s * ld + (size_t)h * hstride + off + 2 * i;
			float a = v[0], b = v[1], a2, b2;
			if (!inverse) {
				a2 = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
				b2 = __fadd_rn(__fmul_rn(a, sn), __fmul_rn(b, c));
			} else {
				a2 = __fadd_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
				b2 = __fsub_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
			}
			v[0] = d_rnd(a2, nm);
			v[1] = d_rnd(b2, nm);
		}
	}
}

void cu_rope(struct kern *k, float *x, int rows, int ld, int nh, int hstride, int off, int dr,
	     const float *freq, int pos0, int pos_step, int inverse, unsigned nm)
{
	if (rows <= 0 || dr < 2 || nh <= 0) return;
	int th = dr / 2 < 32 ? 32 : dr / 2 > 256 ? 256 : (dr / 2 + 31) / 32 * 32;
	k_rope<<<rows, th, 0, cu_of(k)->st>>>(x, ld, nh, hstride, off, dr, freq, pos0, pos_step, inverse, nm);
	cu_after_launch(k, "rope");
}
