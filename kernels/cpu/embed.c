/* kernels/cpu/embed.c - embedding rows and small elementwise ops. */
#include "cpu.h"

void cpu_embed(struct kern *k, float *X, const uint16_t *emb, const int32_t *tok, int S, int D, int M)
{
	for (int s = 0; s < S; s++) {
		const uint16_t *e = emb + (size_t)tok[s] * D;
		float *x = X + (size_t)s * M * D;
		for (int d = 0; d < D; d++) x[d] = kern_bf16_to_f32(e[d]);
		for (int j = 1; j < M; j++)
			for (int d = 0; d < D; d++) x[(size_t)j * D + d] = x[d];
	}
}

void cpu_round(struct kern *k, float *x, size_t n, unsigned nm)
{
	if (!(nm & KERN_RND)) return;
	for (size_t i = 0; i < n; i++) x[i] = kern_rbf16(x[i]);
}

void cpu_scale(struct kern *k, float *x, size_t n, float c, unsigned nm)
{
	for (size_t i = 0; i < n; i++) x[i] = cpu_rnd(x[i] * c, nm);
}

void cpu_add_bcast(struct kern *k, float *y, const float *a, const float *b, int S, int M, int n, unsigned nm)
{
	for (int s = 0; s < S; s++)
		for (int j = 0; j < M; j++) {
			const float *ar = a + ((size_t)s * M + j) * n;
			float *yr = y + ((size_t)s * M + j) * n;
			const float *br = b + (size_t)s * n;
			for (int i = 0; i < n; i++) yr[i] = cpu_rnd(ar[i] + br[i], nm);
		}
}

void cpu_add_round(struct kern *k, float *y, const float *acc, const float *b, size_t n, unsigned nm)
{
	for (size_t i = 0; i < n; i++) y[i] = cpu_rnd(acc[i] + b[i], nm);
}
