/* kernels/cpu/gemm_fp8.c - block-scaled FP8 GEMM (§7.2) and the grouped wo_a GEMM
 * on FP8 weights used as exact bf16 values (§7.4, §8.9).  Activation rows are
 * quantised once (tasks over rows), then tasks over output columns run the inner
 * loops of the selected isa; weights are decoded on the fly from E4M3 bytes. */
#include "cpu.h"

struct quant_ctx {
	struct kern *k;
	const float *x;
	int ldx, K, nb;
	float *q, *sa;
	unsigned nm;
	int layout; /* rows into the isa's fp8 layout */
};

static void quant_rows(void *vp, int a, int b, int tid)
{
	struct quant_ctx *c = vp;
	const struct cpu_isa *isa = cpu_isa(c->k);
	for (int s = a; s < b; s++) {
		float *q = c->q + (size_t)s * c->K;
		cpu_act_quant_row(isa, c->x + (size_t)s * c->ldx, c->K, q, c->sa + (size_t)s * c->nb, c->nm);
		if (c->layout && isa->fp8_layout) isa->fp8_layout(q, c->K, c->nm);
	}
}

/* q [S, K], sa [S, ceil(K/128)] from x rows (act_quant with QNT, copies without). */
void cpu_quant_rows(struct kern *k, float *q, float *sa, const float *x, int ldx, int K, int S, unsigned nm)
{
	struct quant_ctx c = { k, x, ldx, K, (K + 127) / 128, q, sa, nm, 0 };
	/* act_quant costs about as much per element as a few multiply-adds */
	cpu_par(k, S, 1, 8.0 * S * K, quant_rows, &c);
}

struct fp8_ctx {
	struct kern *k;
	float *y;
	int ldy;
	const float *q, *sa;
	int S;
	const struct kern_fp8w *W;
	unsigned nm;
};

static void fp8_cols(void *vp, int a, int b, int tid)
{
	struct fp8_ctx *c = vp;
	const int K = c->W->k;
	cpu_isa(c->k)->fp8(c->y, c->ldy, c->q, K, c->sa, (K + 127) / 128, c->S, c->W, a, b,
			   cpu_tscratch(c->k, tid), c->nm);
}

void cpu_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx,
		  const struct kern_fp8w *W, int S, unsigned nm)
{
	const int K = W->k;
	float *q = cpu_scratch(k, 0);          /* [S, K] quantised activations */
	float *sa = q + (size_t)S * K;         /* [S, ceil(K/128)] activation scales */
	struct quant_ctx qc = { k, x, ldx, K, (K + 127) / 128, q, sa, nm, 1 };
	cpu_par(k, S, 1, 8.0 * S * K, quant_rows, &qc);
	struct fp8_ctx c = { k, y, ldy, q, sa, S, W, nm };
	cpu_par(k, W->n, 8, (double)W->n * K * S, fp8_cols, &c);
}

struct fp8g_ctx {
	struct kern *k;
	float *y;
	const float *x;
	const struct kern_fp8w *W;
	int G, S;
	unsigned nm;
};

static void fp8g_cols(void *vp, int a, int b, int tid)
{
	struct fp8g_ctx *c = vp;
	cpu_isa(c->k)->fp8g(c->y, c->x, c->W, c->G, c->S, a, b, cpu_tscratch(c->k, tid), c->nm);
}

struct fp8g_lay_ctx {
	struct kern *k;
	uint16_t *xs;
	const float *x;
	int Kg, G;
	unsigned nm;
};

static void fp8g_lay_rows(void *vp, int a, int b, int tid)
{
	struct fp8g_lay_ctx *c = vp;
	(void)tid;
	cpu_isa(c->k)->fp8g_layout(c->xs, c->x, c->Kg, c->G, a, b, c->nm);
}

void cpu_gemm_fp8_grouped(struct kern *k, float *y, const float *x, const struct kern_fp8w *W,
			  int G, int S, unsigned nm)
{
	const struct cpu_isa *isa = cpu_isa(k);
	uint16_t *xs = (uint16_t *)cpu_scratch(k, 0); /* [S, G*Kg] bf16 words when the isa wants them */
	if (isa->fp8g_layout && isa->fp8g_layout(xs, x, W->k, G, 0, 0, nm)) {
		struct fp8g_lay_ctx lc = { k, xs, x, W->k, G, nm };
		cpu_par(k, S, 1, 4.0 * S * G * W->k, fp8g_lay_rows, &lc);
		x = (const float *)xs;
	}
	struct fp8g_ctx c = { k, y, x, W, G, S, nm };
	cpu_par(k, W->n, 8, (double)W->n * W->k * S, fp8g_cols, &c);
}
