/* kernels/cpu/norm.c - RMSNorm (§6) and the per-head q normalisation (§8.1). */
#include <math.h>

#include "cpu.h"

void cpu_rmsnorm(struct kern *k, float *y, const float *x, const uint16_t *w, int rows, int n,
		 float eps, unsigned nm)
{
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * n;
		float *yr = y + (size_t)r * n;
		float ss = 0;
		for (int i = 0; i < n; i++) ss += xr[i] * xr[i];
		float rr = 1.0f / sqrtf(ss / (float)n + eps);
		for (int i = 0; i < n; i++) yr[i] = cpu_rnd(kern_bf16_to_f32(w[i]) * (xr[i] * rr), nm);
	}
}

void cpu_head_rms(struct kern *k, float *q, int rows, int n, float eps, unsigned nm)
{
	for (int r = 0; r < rows; r++) {
		float *v = q + (size_t)r * n;
		if (nm & KERN_RND) {
			/* the reference does this in bf16 arithmetic: every step rounded */
			float ss = 0;
			for (int i = 0; i < n; i++) ss += kern_rbf16(v[i] * v[i]);
			float m = kern_rbf16(ss / (float)n);
			float t = kern_rbf16(m + eps);
			float rr = kern_rbf16(1.0f / sqrtf(t));
			for (int i = 0; i < n; i++) v[i] = kern_rbf16(v[i] * rr);
		} else {
			float ss = 0;
			for (int i = 0; i < n; i++) ss += v[i] * v[i];
			float rr = 1.0f / sqrtf(ss / (float)n + eps);
			for (int i = 0; i < n; i++) v[i] *= rr;
		}
	}
}
