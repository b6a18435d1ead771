/* kernels/cuda/moe.cu - routing (§9.1) and routed experts with FP4 weights (§7.3,
 * §9.2).  An expert call runs, per chunk of its rows: stage the gathered token rows
 * (act_quant), w1 and w3 on the GEMM engine into the workspace, stage
 * h = rnd(wt·silu(g)·u) (clamped) as the w2 input, w2 whose epilogue adds rnd(y) to
 * acc[token] (tokens of one call are distinct: core drops repeated ids, §9.4, so the
 * plain add is race-free and keeps the CPU's expert order). */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

/* ---- routing: one warp per token ---- */

__global__ void k_route(int32_t *ids, float *w, const float *logits, const float *bias, int E, int topk, float gamma)
{
	extern __shared__ float a[]; /* [E] */
	const int s = blockIdx.x, lane = threadIdx.x;
	const float *l = logits + (size_t)s * E;
	int32_t *id = ids + (size_t)s * topk;
	for (int e = lane; e < E; e += 32) {
		float z = l[e];
		float sp = z > 20.0f ? z : log1pf(expf(z));
		a[e] = sqrtf(sp);
	}
	__syncwarp();
	if (bias) {
		/* top-k of a + bias, descending, ties to the lower id */
		for (int j = 0; j < topk; j++) {
			int best = -1;
			float bv = 0.0f;
			for (int e = lane; e < E; e += 32) {
				bool used = false;
				for (int i = 0; i < j; i++) used |= id[i] == e;
				if (used) continue;
				float v = __fadd_rn(a[e], bias[e]);
				if (best < 0 || v > bv) { best = e; bv = v; }
			}
#pragma unroll
			for (int o = 16; o > 0; o >>= 1) {
				int ob = __shfl_xor_sync(0xffffffffu, best, o);
				float ov = __shfl_xor_sync(0xffffffffu, bv, o);
				if (ob >= 0 && (best < 0 || ov > bv || (ov == bv && ob < best))) { best = ob; bv = ov; }
			}
			if (lane == 0) id[j] = best;
			__syncwarp();
		}
	}
	if (lane == 0) {
		float sum = 0.0f;
		for (int j = 0; j < topk; j++) {
			int e = id[j];
			sum = __fadd_rn(sum, e >= 0 && e < E ? a[e] : 0.0f);
		}
		for (int j = 0; j < topk; j++) {
			int e = id[j];
			float v = e >= 0 && e < E ? a[e] : 0.0f;
			w[(size_t)s * topk + j] = __fmul_rn(__fdiv_rn(v, sum), gamma);
		}
	}
}

void cu_route(struct kern *k, int32_t *ids, float *w, const float *logits, const float *bias, int S, int E,
	      int topk, float gamma)
{
	if (S <= 0) return;
	k_route<<<S, 32, (size_t)E * sizeof(float), cu_of(k)->st>>>(ids, w, logits, bias, E, topk, gamma);
	cu_after_launch(k, "route");
}

/* ---- routed expert ---- */

static __device__ __forceinline__ float moe_h(const float *mg, const float *mu, int i, int f, int F, float wgt,
					      float limit, unsigned nm)
{
	float gv = mg[(size_t)i * F + f], uv = mu[(size_t)i * F + f];
	if (limit > 0.0f) {
		uv = uv < -limit ? -limit : uv > limit ? limit : uv;
		gv = gv > limit ? limit : gv;
	}
	return d_rnd(__fmul_rn(wgt, __fmul_rn(d_silu(gv), uv)), nm);
}

/* h rows -> act_quant planes: one warp per (row, 128-block) */
__global__ void k_stage_h_q(uint16_t *A, int lda, float *sa, int sld, float *xf, const float *mg, const float *mu,
			    const int32_t *slots, const float *wt, int F, float limit, unsigned nm)
{
	const int i = blockIdx.y, b = blockIdx.x, lane = threadIdx.x;
	const float wgt = wt[slots[i]];
	float v[4], amax = 0.0f;
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int f = b * 128 + lane + 32 * j;
		v[j] = f < F ? moe_h(mg, mu, i, f, F, wgt, limit, nm) : 0.0f;
		amax = fmaxf(amax, fabsf(v[j]));
	}
	amax = warp_max(amax);
	float s = d_pow2_scale(amax, 448.0f, 1e-4f), inv = __fdiv_rn(1.0f, s);
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int f = b * 128 + lane + 32 * j;
		if (f >= F) continue;
		float q = d_quant8(v[j], inv);
		A[(size_t)i * lda + f] = (uint16_t)(__float_as_uint(q) >> 16);
		if (xf) xf[(size_t)i * lda + f] = q;
	}
	if (lane == 0) sa[(size_t)i * sld + b] = s;
}

/* h rows -> exact bf16 planes (no QNT) */
__global__ void k_stage_h_split(uint16_t *A, size_t pstride, int lda, float *xf, const float *mg, const float *mu,
				const int32_t *slots, const float *wt, int F, float limit, unsigned nm, int np, int n)
{
	const size_t tot = (size_t)n * F;
	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < tot; e += (size_t)gridDim.x * blockDim.x) {
		int i = (int)(e / F), f = (int)(e % F);
		float v = moe_h(mg, mu, i, f, F, wt[slots[i]], limit, nm);
		float hi = d_rbf16(v);
		size_t o = (size_t)i * lda + f;
		A[o] = (uint16_t)(__float_as_uint(hi) >> 16);
		if (np > 1) {
			float r1 = __fsub_rn(v, hi), mid = d_rbf16(r1), lo = d_rbf16(__fsub_rn(r1, mid));
			A[pstride + o] = (uint16_t)(__float_as_uint(mid) >> 16);
			A[2 * pstride + o] = (uint16_t)(__float_as_uint(lo) >> 16);
		}
		if (xf) xf[o] = v;
	}
}

void cu_moe_expert(struct kern *k, float *acc, const float *x, const struct kern_expert *ex, const int32_t *slots,
		   int n, const float *wt, int topk, float limit, unsigned nm)
{
	struct cu_impl *c = cu_of(k);
	if (n <= 0) return;
	const int D = ex->w1.k, F = ex->w1.n;
	const int qnt = (nm & KERN_QNT) != 0, np = qnt ? 1 : 3, rnd = (nm & KERN_RND) != 0;
	if (F > c->wp || D > c->wp) {
		fprintf(stderr, "nvmoe: CUDA moe_expert: F %d / D %d > workspace width %d\n", F, D, c->wp);
		abort();
	}
	struct cu_gdesc d1 = {}, d3, d2 = {};
	d1.kind = CU_FP4;
	d1.w = ex->w1.w;
	d1.s = ex->w1.s;
	d1.N = F;
	d1.K = D;
	d1.G = 1;
	d1.qnt = qnt;
	d1.np = np;
	d1.y = c->mg;
	d1.ldy = F;
	d1.ylocal = 1;
	d1.rnd = rnd;
	d3 = d1;
	d3.w = ex->w3.w;
	d3.s = ex->w3.s;
	d3.y = c->mu;
	d2.kind = CU_FP4;
	d2.w = ex->w2.w;
	d2.s = ex->w2.s;
	d2.N = D;
	d2.K = F;
	d2.G = 1;
	d2.qnt = qnt;
	d2.np = np;
	d2.rnd = rnd;
	d2.acc = acc;
	d2.ldacc = D;
	d2.rowmap = slots;
	d2.topk = topk;
	const int lda = cu_kp(F), sld = c->wp / 128 + 1;
	for (int r0 = 0; r0 < n; r0 += CU_ROWS) {
		const int nn = n - r0 < CU_ROWS ? n - r0 : CU_ROWS;
		cu_stage(k, x, D, slots, topk, r0, nn, D, 1, qnt, np);
		cu_gemm_chunk(k, &d1, r0, nn);
		cu_gemm_chunk(k, &d3, r0, nn);
		float *xf = c->gemm_ref ? c->xf : NULL;
		if (qnt) {
			dim3 grid((F + 127) / 128, nn);
			k_stage_h_q<<<grid, 32, 0, c->st>>>(c->apl, lda, c->asc, sld, xf, c->mg, c->mu, slots + r0, wt, F,
							    limit, nm);
		} else {
			size_t tot = (size_t)nn * F;
			k_stage_h_split<<<cu_grid(tot), 256, 0, c->st>>>(c->apl, (size_t)CU_ROWS * c->wp, lda, xf, c->mg,
									  c->mu, slots + r0, wt, F, limit, nm, np, nn);
		}
		cu_after_launch(k, "moe stage h");
		cu_gemm_chunk(k, &d2, r0, nn);
	}
}
