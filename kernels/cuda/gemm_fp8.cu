/* kernels/cuda/gemm_fp8.cu - block-scaled FP8 GEMM (§7.2; decode and prefill alike:
 * one kernel, so a row's result never depends on the row count) and the grouped
 * wo_a GEMM on FP8 weights used as exact bf16 values (§7.4, §8.9).  The work is done
 * by the GEMM engine (gemm_engine.cu). */
#include "cu.cuh"

void cu_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W, int S,
		 unsigned nm)
{
	if (S <= 0) return;
	if (cu_of(k)->gemm_lt && cu_lt_gemm_fp8(k, y, ldy, x, ldx, W, S, nm)) return; /* diagnostic cuBLASLt path */
	struct cu_gdesc d = {};
	d.kind = CU_FP8;
	d.w = W->w;
	d.s = W->s;
	d.N = W->n;
	d.K = W->k;
	d.G = 1;
	d.qnt = (nm & KERN_QNT) != 0;
	d.np = d.qnt ? 1 : 3; /* without QNT the f32 activation itself, split exactly */
	d.y = y;
	d.ldy = ldy;
	d.rnd = (nm & KERN_RND) != 0;
	cu_gemm_rows(k, &d, x, ldx, S);
}

void cu_gemm_fp8_grouped(struct kern *k, float *y, const float *x, const struct kern_fp8w *W, int G, int S,
			 unsigned nm)
{
	if (S <= 0) return;
	struct cu_gdesc d = {};
	d.kind = CU_FP8G;
	d.w = W->w;
	d.s = W->s;
	d.N = W->n / G;
	d.K = W->k;
	d.G = G;
	d.qnt = 0;
	d.np = (nm & KERN_RND) ? 1 : 3; /* with RND the input holds bf16 values */
	d.y = y;
	d.ldy = W->n;
	d.rnd = (nm & KERN_RND) != 0;
	cu_gemm_rows(k, &d, x, G * W->k, S);
}
