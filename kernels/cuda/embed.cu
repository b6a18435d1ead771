/* kernels/cuda/embed.cu - embedding rows and the small elementwise ops (bit-identical
 * to kernels/cpu/embed.c: one rounding per element, no contraction). */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

#define GRID_STRIDE(i, n) \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_embed(float *X, const uint16_t *emb, const int32_t *tok, int S, int D, int M)
{
	const size_t n = (size_t)S * M * D;
	GRID_STRIDE(e, n)
	{
		int d = (int)(e % D);
		int s = (int)(e / ((size_t)M * D));
		X[e] = d_bf16(emb[(size_t)tok[s] * D + d]);
	}
}

void cu_embed(struct kern *k, float *X, const uint16_t *emb, const int32_t *tok, int S, int D, int M)
{
	struct cu_impl *c = cu_of(k);
	if (S <= 0) return;
	/* token ids are host memory: stage them in the workspace (sized by reserve) */
	if (!c->tok || S > c->max_rows) {
		fprintf(stderr, "nvmoe: CUDA embed: %d rows > reserved %d\n", S, c->max_rows);
		abort();
	}
	k->upload(k, c->tok, tok, (size_t)S * sizeof(int32_t));
	size_t n = (size_t)S * M * D;
	k_embed<<<cu_grid(n), 256, 0, c->st>>>(X, emb, c->tok, S, D, M);
	cu_after_launch(k, "embed");
}

__global__ void k_round(float *x, size_t n)
{
	GRID_STRIDE(i, n) x[i] = d_rbf16(x[i]);
}

void cu_round(struct kern *k, float *x, size_t n, unsigned nm)
{
	if (!(nm & KERN_RND) || !n) return;
	k_round<<<cu_grid(n), 256, 0, cu_of(k)->st>>>(x, n);
	cu_after_launch(k, "round");
}

__global__ void k_scale(float *x, size_t n, float c, unsigned nm)
{
	GRID_STRIDE(i, n) x[i] = d_rnd(__fmul_rn(x[i], c), nm);
}

void cu_scale(struct kern *k, float *x, size_t n, float c, unsigned nm)
{
	if (!n) return;
	k_scale<<<cu_grid(n), 256, 0, cu_of(k)->st>>>(x, n, c, nm);
	cu_after_launch(k, "scale");
}

__global__ void k_add_bcast(float *y, const float *a, const float *b, int S, int M, int n, unsigned nm)
{
	const size_t tot = (size_t)S * M * n;
	GRID_STRIDE(e, tot)
	{
		int i = (int)(e % n);
		size_t s = e / ((size_t)M * n);
		y[e] = d_rnd(__fadd_rn(a[e], b[s * n + i]), nm);
	}
}

void cu_add_bcast(struct kern *k, float *y, const float *a, const float *b, int S, int M, int n, unsigned nm)
{
	size_t tot = (size_t)S * M * n;
	if (!tot) return;
	k_add_bcast<<<cu_grid(tot), 256, 0, cu_of(k)->st>>>(y, a, b, S, M, n, nm);
	cu_after_launch(k, "add_bcast");
}

__global__ void k_add_round(float *y, const float *acc, const float *b, size_t n, unsigned nm)
{
	GRID_STRIDE(i, n) y[i] = d_rnd(__fadd_rn(acc[i], b[i]), nm);
}

void cu_add_round(struct kern *k, float *y, const float *acc, const float *b, size_t n, unsigned nm)
{
	if (!n) return;
	k_add_round<<<cu_grid(n), 256, 0, cu_of(k)->st>>>(y, acc, b, n, nm);
	cu_after_launch(k, "add_round");
}

__global__ void k_fill(float *x, float v, size_t n)
{
	GRID_STRIDE(i, n) x[i] = v;
}

void cu_fill(struct kern *k, float *dst, float v, size_t n)
{
	if (!n) return;
	k_fill<<<cu_grid(n), 256, 0, cu_of(k)->st>>>(dst, v, n);
	cu_after_launch(k, "fill");
}

__global__ void k_swiglu(float *h, const float *g, const float *u, size_t n, unsigned nm)
{
	GRID_STRIDE(i, n) h[i] = d_rnd(__fmul_rn(d_silu(g[i]), u[i]), nm);
}

void cu_swiglu(struct kern *k, float *h, const float *g, const float *u, int rows, int n, unsigned nm)
{
	size_t tot = (size_t)rows * n;
	if (!tot) return;
	k_swiglu<<<cu_grid(tot), 256, 0, cu_of(k)->st>>>(h, g, u, tot, nm);
	cu_after_launch(k, "swiglu");
}
