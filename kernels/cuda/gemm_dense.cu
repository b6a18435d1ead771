/* kernels/cuda/gemm_dense.cu - BF16 GEMM (§7.4, rounded output) and F32 GEMM on
 * bf16 weights (never rounded: gate, compressor, head), on the GEMM engine.  No
 * cuBLAS here: its algorithm choice may depend on the row count, which would break
 * the bitwise row independence of kern.h.  The F32 GEMM splits every f32 activation
 * exactly into three bf16 planes (its input may hold any f32 value), so the products
 * are exact and only the f32 summation order differs from the CPU. */
#include "cu.cuh"

void cu_gemm_bf16(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K,
		  int S, unsigned nm)
{
	if (S <= 0) return;
	struct cu_gdesc d = {};
	d.kind = CU_BF16;
	d.w = w;
	d.N = N;
	d.K = K;
	d.G = 1;
	d.np = (nm & KERN_RND) ? 1 : 3;
	d.y = y;
	d.ldy = ldy;
	d.rnd = (nm & KERN_RND) != 0;
	cu_gemm_rows(k, &d, x, ldx, S);
}

void cu_gemm_f32(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K, int S)
{
	if (S <= 0) return;
	struct cu_gdesc d = {};
	d.kind = CU_BF16;
	d.w = w;
	d.N = N;
	d.K = K;
	d.G = 1;
	d.np = 3;
	d.y = y;
	d.ldy = ldy;
	d.rnd = 0;
	cu_gemm_rows(k, &d, x, ldx, S);
}
