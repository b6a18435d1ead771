/* kernels/cpu/gemm_dense.c - BF16 GEMM (§7.4, rounded output) and F32 GEMM on bf16
 * weights upcast to f32 (never rounded: gate, compressor, head); tasks over output
 * columns, weights converted on the fly. */
#include "cpu.h"

struct dense_ctx {
	struct kern *k;
	float *y;
	int ldy;
	const float *x;
	int ldx;
	const uint16_t *w;
	int K, S, rnd;
};

static void dense_cols(void *vp, int a, int b, int tid)
{
	struct dense_ctx *c = vp;
	cpu_isa(c->k)->dense(c->y, c->ldy, c->x, c->ldx, c->w, c->K, c->S, a, b, c->rnd,
			     cpu_tscratch(c->k, tid));
}

static void dense(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N,
		  int K, int S, int rnd)
{
	struct dense_ctx c = { k, y, ldy, x, ldx, w, K, S, rnd };
	cpu_par(k, N, 16, (double)N * K * S, dense_cols, &c);
}

void cpu_gemm_bf16(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w,
		   int N, int K, int S, unsigned nm)
{
	dense(k, y, ldy, x, ldx, w, N, K, S, (nm & KERN_RND) != 0);
}

void cpu_gemm_f32(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w,
		  int N, int K, int S)
{
	dense(k, y, ldy, x, ldx, w, N, K, S, 0);
}
