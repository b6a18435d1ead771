/* kernels/cuda/gemm_engine.cu - the one GEMM engine behind every linear layer
 * (contract in cu.cuh, "the GEMM engine").
 *
 * Tensor-core kernel.  A CTA owns 8 output columns (one mma n8 tile) and 16*MT rows;
 * its kw warps split the K blocks (128 wide) into fixed contiguous ranges and their
 * partial results are summed in warp order through shared memory.  Inside a 32-wide
 * k group lane t holds the 8 consecutive k values 8t..8t+7 of its weight row and of
 * its activation rows; the two m16n8k16 steps of the group take k {8t..8t+3} and
 * {8t+4..8t+7} as the mma's logical k {2t, 2t+1, 2t+8, 2t+9}.  This permutes k inside
 * the group identically for A and B, so the dot products are unchanged while every
 * lane reads contiguous bytes.  Partial sums follow the scale structure: FP8 one
 * partial per 128-block, FP4 one per 32-group, scaled by sa·sw and accumulated.
 * Weights are decoded to bf16 through a shared table (E4M3 byte -> bf16, E2M1 byte
 * -> two bf16): exact.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

struct gk_params {
	const uint8_t *w;
	const uint8_t *s;
	int N, K, kblocks, vec;
	const uint16_t *A;  /* planes: + pl*pstride, row r at + r*lda, group g at + g*Kp */
	size_t pstride;
	int lda, Kp, np;
	const float *sa;    /* [rows][sld] or NULL (= 1) */
	int sld;
	const float *xf;    /* reference path, non-quantised: f32 rows [rows][lda] */
	int rows;
	float *y;
	int ldy, yrow0, rnd;
	float *acc;
	int ldacc;
	const int32_t *rowmap; /* already offset to the chunk */
	int topk;
	int kw;
};

/* ---- staging ---- */

/* act_quant(128) of chunk rows: one warp per (row, 128-block). */
__global__ void k_stage_q(uint16_t *A, int lda, float *sa, int sld, float *xf, const float *x, int ldx,
			  const int32_t *rowmap, int topk, int K, int Kp)
{
	const int i = blockIdx.y, b = blockIdx.x, lane = threadIdx.x;
	const int src = rowmap ? rowmap[i] / topk : i;
	const float *xr = x + (size_t)src * ldx;
	float v[4], amax = 0.0f;
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int kk = b * 128 + lane + 32 * j;
		v[j] = kk < K ? xr[kk] : 0.0f;
		amax = fmaxf(amax, fabsf(v[j]));
	}
	amax = warp_max(amax);
	float s = d_pow2_scale(amax, 448.0f, 1e-4f);
	float inv = __fdiv_rn(1.0f, s);
#pragma unroll
	for (int j = 0; j < 4; j++) {
		int kk = b * 128 + lane + 32 * j;
		if (kk >= Kp) continue;
		float q = kk < K ? d_quant8(v[j], inv) : 0.0f;
		A[(size_t)i * lda + kk] = (uint16_t)(__float_as_uint(q) >> 16);
		if (xf) xf[(size_t)i * lda + kk] = q;
	}
	if (lane == 0) sa[(size_t)i * sld + b] = s;
}

/* Exact split of f32 rows into np bf16 planes (hi, mid, lo); grouped columns. */
__global__ void k_stage_split(uint16_t *A, size_t pstride, int lda, float *xf, const float *x, int ldx,
			      const int32_t *rowmap, int topk, int K, int Kp, int G, int np, int n)
{
	const size_t tot = (size_t)n * G * Kp;
	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < tot; e += (size_t)gridDim.x * blockDim.x) {
		int i = (int)(e / ((size_t)G * Kp));
		int c = (int)(e % ((size_t)G * Kp));
		int g = c / Kp, kk = c % Kp;
		int src = rowmap ? rowmap[i] / topk : i;
		float v = kk < K ? x[(size_t)src * ldx + (size_t)g * K + kk] : 0.0f;
		float hi = d_rbf16(v);
		size_t o = (size_t)i * lda + c;
		A[o] = (uint16_t)(__float_as_uint(hi) >> 16);
		if (np > 1) {
			float r1 = __fsub_rn(v, hi);
			float mid = d_rbf16(r1);
			float lo = d_rbf16(__fsub_rn(r1, mid));
			A[pstride + o] = (uint16_t)(__float_as_uint(mid) >> 16);
			A[2 * pstride + o] = (uint16_t)(__float_as_uint(lo) >> 16);
		}
		if (xf) xf[o] = v;
	}
}

void cu_stage(struct kern *k, const float *x, int ldx, const int32_t *rowmap, int topk, int r0, int n,
	      int K, int G, int qnt, int np)
{
	struct cu_impl *c = cu_of(k);
	const int Kp = cu_kp(K), lda = G * Kp;
	if (n <= 0) return;
	if (lda > c->wp || n > CU_ROWS || !c->apl) {
		fprintf(stderr, "nvmoe: CUDA GEMM staging: %d rows of %d > workspace (%d rows of %d)\n", n, lda,
			CU_ROWS, c->wp);
		abort();
	}
	const int32_t *rm = rowmap ? rowmap + r0 : NULL;
	const float *xs = rowmap ? x : x + (size_t)r0 * ldx;
	float *xf = c->gemm_ref ? c->xf : NULL;
	if (qnt) {
		dim3 grid((K + 127) / 128, n);
		k_stage_q<<<grid, 32, 0, c->st>>>(c->apl, lda, c->asc, c->wp / 128 + 1, xf, xs, ldx, rm, topk, K, Kp);
	} else {
		size_t tot = (size_t)n * lda;
		k_stage_split<<<cu_grid(tot), 256, 0, c->st>>>(c->apl, (size_t)CU_ROWS * c->wp, lda, xf, xs, ldx, rm,
							       topk, K, Kp, G, np, n);
	}
	cu_after_launch(k, "gemm stage");
}

/* ---- tensor-core kernel ---- */

static __device__ __forceinline__ void mma16816(float *c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
						 uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
		     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ uint32_t bf16_bits(float f) { return __float_as_uint(f) >> 16; }

/* Shared decode table: E4M3 byte -> bf16 bits; E2M1 byte -> (low nibble) | (high nibble) << 16. */
template <int KIND>
static __device__ __forceinline__ void fill_lut(uint32_t *lut)
{
	for (int b = threadIdx.x; b < 256; b += blockDim.x) {
		if (KIND == CU_FP4)
			lut[b] = bf16_bits(d_e2m1_val(b & 15)) | (bf16_bits(d_e2m1_val(b >> 4)) << 16);
		else
			lut[b] = bf16_bits(d_e4m3_val(b));
	}
}

/* The 8 weights k0+8t .. k0+8t+7 of weight row `row` (global row index nglob) as
 * 4 packed bf16 pairs; zeros past K or for an invalid row. */
template <int KIND>
static __device__ __forceinline__ void load_b(const gk_params &p, const uint32_t *lut, int nglob, bool nvalid,
					      int k0, int t, uint32_t *bw)
{
	const int kb = k0 + 8 * t;
	if (KIND == CU_BF16) {
		const uint16_t *wr = (const uint16_t *)p.w + (size_t)nglob * p.K;
		if (nvalid && p.vec) {
			uint4 r = *(const uint4 *)(wr + kb);
			bw[0] = r.x; bw[1] = r.y; bw[2] = r.z; bw[3] = r.w;
		} else {
#pragma unroll
			for (int i = 0; i < 4; i++) {
				uint32_t lo = nvalid && kb + 2 * i < p.K ? wr[kb + 2 * i] : 0;
				uint32_t hi = nvalid && kb + 2 * i + 1 < p.K ? wr[kb + 2 * i + 1] : 0;
				bw[i] = lo | (hi << 16);
			}
		}
	} else if (KIND == CU_FP4) {
		const uint8_t *wr = p.w + (size_t)nglob * (p.K / 2);
		uint32_t word = 0;
		if (nvalid && p.vec) {
			word = *(const uint32_t *)(wr + kb / 2);
		} else if (nvalid) {
#pragma unroll
			for (int i = 0; i < 8; i++) {
				int kk = kb + i;
				uint32_t nib = kk < p.K ? (wr[kk / 2] >> ((kk & 1) * 4)) & 15 : 0;
				word |= nib << (4 * i);
			}
		}
#pragma unroll
		for (int i = 0; i < 4; i++) bw[i] = lut[(word >> (8 * i)) & 255];
	} else { /* CU_FP8, CU_FP8G */
		const uint8_t *wr = p.w + (size_t)nglob * p.K;
		uint32_t by[8];
		if (nvalid && p.vec) {
			uint2 r = *(const uint2 *)(wr + kb);
#pragma unroll
			for (int i = 0; i < 4; i++) {
				by[i] = (r.x >> (8 * i)) & 255;
				by[4 + i] = (r.y >> (8 * i)) & 255;
			}
		} else {
#pragma unroll
			for (int i = 0; i < 8; i++) by[i] = nvalid && kb + i < p.K ? wr[kb + i] : 0;
		}
		if (KIND == CU_FP8) {
#pragma unroll
			for (int i = 0; i < 4; i++) bw[i] = lut[by[2 * i]] | (lut[by[2 * i + 1]] << 16);
		} else {
			/* wo_a: the weight value e4m3 * 2^(e-127) is exact in bf16 */
			float sw = nvalid ? d_e8m0(p.s[(size_t)(nglob / 128) * p.kblocks + k0 / 128]) : 0.0f;
#pragma unroll
			for (int i = 0; i < 4; i++) {
				float a = __fmul_rn(__uint_as_float(lut[by[2 * i]] << 16), sw);
				float b = __fmul_rn(__uint_as_float(lut[by[2 * i + 1]] << 16), sw);
				bw[i] = bf16_bits(a) | (bf16_bits(b) << 16);
			}
		}
	}
}

static __device__ __forceinline__ void gk_out(const gk_params &p, int grp, int row, int col, float v)
{
	if (p.rnd) v = d_rbf16(v);
	if (p.acc) {
		float *a = p.acc + (size_t)(p.rowmap[row] / p.topk) * p.ldacc + col;
		*a = __fadd_rn(*a, v);
	} else {
		p.y[(size_t)(p.yrow0 + row) * p.ldy + (size_t)grp * p.N + col] = v;
	}
}

static __device__ __forceinline__ float gk_sa(const gk_params &p, int row, int blk)
{
	if (!p.sa) return 1.0f;
	return row < p.rows ? p.sa[(size_t)row * p.sld + blk] : 0.0f;
}

template <int KIND, int MT>
__global__ void __launch_bounds__(256) k_gemm_mma(gk_params p)
{
	__shared__ uint32_t lut[256];
	__shared__ float red[8][MT][4][32];
	if (KIND != CU_BF16) fill_lut<KIND>(lut);
	__syncthreads();
	const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
	const int g = lane >> 2, t = lane & 3;
	const int grp = blockIdx.z;
	const int n0 = blockIdx.x * 8, m0 = blockIdx.y * 16 * MT;
	const bool nvalid = n0 + g < p.N;
	const int nglob = grp * p.N + n0 + g;
	const int aoff = grp * p.Kp;
	const int nblk = (p.K + 127) / 128;
	const int b_lo = wid * nblk / p.kw, b_hi = (wid + 1) * nblk / p.kw;
	float acc[MT][4];
#pragma unroll
	for (int mt = 0; mt < MT; mt++)
#pragma unroll
		for (int i = 0; i < 4; i++) acc[mt][i] = 0.0f;

	for (int b = b_lo; b < b_hi; b++) {
		float P[MT][4];
#pragma unroll
		for (int mt = 0; mt < MT; mt++)
#pragma unroll
			for (int i = 0; i < 4; i++) P[mt][i] = 0.0f;
		/* the block's weights first: four loads in flight per lane */
		uint32_t bwq[4][4];
#pragma unroll
		for (int q = 0; q < 4; q++) {
			if (b * 128 + q * 32 < p.K) {
				load_b<KIND>(p, lut, nglob, nvalid, b * 128 + q * 32, t, bwq[q]);
			} else {
#pragma unroll
				for (int i = 0; i < 4; i++) bwq[q][i] = 0;
			}
		}
#pragma unroll
		for (int q = 0; q < 4; q++) {
			const int k0 = b * 128 + q * 32;
			if (k0 >= p.K) break;
			const uint32_t *bw = bwq[q];
			float P4[MT][4];
#pragma unroll
			for (int mt = 0; mt < MT; mt++)
#pragma unroll
				for (int i = 0; i < 4; i++) P4[mt][i] = 0.0f;
			for (int pl = 0; pl < p.np; pl++) {
				const uint16_t *Ap = p.A + pl * p.pstride + aoff + k0 + 8 * t;
#pragma unroll
				for (int mt = 0; mt < MT; mt++) {
					const int rlo = m0 + mt * 16 + g, rhi = rlo + 8;
					uint4 alo = make_uint4(0, 0, 0, 0), ahi = make_uint4(0, 0, 0, 0);
					if (rlo < p.rows) alo = *(const uint4 *)(Ap + (size_t)rlo * p.lda);
					if (rhi < p.rows) ahi = *(const uint4 *)(Ap + (size_t)rhi * p.lda);
					if constexpr (KIND == CU_FP4) {
						mma16816(P4[mt], alo.x, ahi.x, alo.y, ahi.y, bw[0], bw[1]);
						mma16816(P4[mt], alo.z, ahi.z, alo.w, ahi.w, bw[2], bw[3]);
					} else if constexpr (KIND == CU_FP8) {
						mma16816(P[mt], alo.x, ahi.x, alo.y, ahi.y, bw[0], bw[1]);
						mma16816(P[mt], alo.z, ahi.z, alo.w, ahi.w, bw[2], bw[3]);
					} else {
						mma16816(acc[mt], alo.x, ahi.x, alo.y, ahi.y, bw[0], bw[1]);
						mma16816(acc[mt], alo.z, ahi.z, alo.w, ahi.w, bw[2], bw[3]);
					}
				}
			}
			if (KIND == CU_FP4) {
				/* P_c scaled by sa[c/4]·sw[n][c] (§7.3) */
				const int c = k0 / 32, ncb = p.K / 32;
				float sw[2];
#pragma unroll
				for (int j = 0; j < 2; j++) {
					int col = n0 + 2 * t + j;
					sw[j] = col < p.N ? d_e8m0(p.s[(size_t)col * ncb + c]) : 0.0f;
				}
#pragma unroll
				for (int mt = 0; mt < MT; mt++)
#pragma unroll
					for (int i = 0; i < 4; i++) {
						int row = m0 + mt * 16 + g + 8 * (i >> 1);
						float sc = __fmul_rn(gk_sa(p, row, b), sw[i & 1]);
						acc[mt][i] = __fadd_rn(acc[mt][i], __fmul_rn(sc, P4[mt][i]));
					}
			}
		}
		if (KIND == CU_FP8) {
			/* P_b scaled by sa[b]·sw[n/128][b] (§7.2) */
			float sw[2];
#pragma unroll
			for (int j = 0; j < 2; j++) {
				int col = n0 + 2 * t + j;
				sw[j] = col < p.N ? d_e8m0(p.s[(size_t)(col / 128) * p.kblocks + b]) : 0.0f;
			}
#pragma unroll
			for (int mt = 0; mt < MT; mt++)
#pragma unroll
				for (int i = 0; i < 4; i++) {
					int row = m0 + mt * 16 + g + 8 * (i >> 1);
					float sc = __fmul_rn(gk_sa(p, row, b), sw[i & 1]);
					acc[mt][i] = __fadd_rn(acc[mt][i], __fmul_rn(sc, P[mt][i]));
				}
		}
	}
	/* warps' partial sums in warp order */
#pragma unroll
	for (int mt = 0; mt < MT; mt++)
#pragma unroll
		for (int i = 0; i < 4; i++) red[wid][mt][i][lane] = acc[mt][i];
	__syncthreads();
	for (int e = threadIdx.x; e < MT * 4 * 32; e += blockDim.x) {
		const int mt = e / 128, i = (e / 32) % 4, ln = e % 32;
		float v = red[0][mt][i][ln];
		for (int w = 1; w < p.kw; w++) v = __fadd_rn(v, red[w][mt][i][ln]);
		const int row = m0 + mt * 16 + (ln >> 2) + 8 * (i >> 1);
		const int col = n0 + 2 * (ln & 3) + (i & 1);
		if (row < p.rows && col < p.N) gk_out(p, grp, row, col, v);
	}
}

/* ---- reference kernel: one thread per output, the CPU's order and roundings ---- */

template <int KIND>
__global__ void k_gemm_ref(gk_params p)
{
	const int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y, grp = blockIdx.z;
	if (col >= p.N) return;
	const int nglob = grp * p.N + col;
	const uint16_t *aq = p.A + (size_t)row * p.lda + (size_t)grp * p.Kp;
	const float *af = p.xf ? p.xf + (size_t)row * p.lda + (size_t)grp * p.Kp : NULL;
	float acc = 0.0f;
#define AV(kk) (af ? af[kk] : d_bf16(aq[kk]))
	if (KIND == CU_FP8) {
		const uint8_t *wr = p.w + (size_t)nglob * p.K;
		for (int b = 0; b * 128 < p.K; b++) {
			int e = b * 128 + 128 < p.K ? b * 128 + 128 : p.K;
			float s = 0.0f;
			for (int kk = b * 128; kk < e; kk++) s = __fadd_rn(s, __fmul_rn(AV(kk), d_e4m3_val(wr[kk])));
			float sc = __fmul_rn(gk_sa(p, row, b), d_e8m0(p.s[(size_t)(nglob / 128) * p.kblocks + b]));
			acc = __fadd_rn(acc, __fmul_rn(sc, s));
		}
	} else if (KIND == CU_FP4) {
		const uint8_t *wr = p.w + (size_t)nglob * (p.K / 2), *sr = p.s + (size_t)nglob * (p.K / 32);
		for (int c = 0; c < p.K / 32; c++) {
			float s = 0.0f;
			for (int i = 0; i < 16; i++) {
				uint8_t by = wr[c * 16 + i];
				s = __fadd_rn(s, __fmul_rn(AV(c * 32 + 2 * i), d_e2m1_val(by & 15)));
				s = __fadd_rn(s, __fmul_rn(AV(c * 32 + 2 * i + 1), d_e2m1_val(by >> 4)));
			}
			float sc = __fmul_rn(gk_sa(p, row, c / 4), d_e8m0(sr[c]));
			acc = __fadd_rn(acc, __fmul_rn(sc, s));
		}
	} else if (KIND == CU_FP8G) {
		const uint8_t *wr = p.w + (size_t)nglob * p.K;
		for (int kk = 0; kk < p.K; kk++) {
			float sw = d_e8m0(p.s[(size_t)(nglob / 128) * p.kblocks + kk / 128]);
			acc = __fadd_rn(acc, __fmul_rn(AV(kk), __fmul_rn(d_e4m3_val(wr[kk]), sw)));
		}
	} else {
		const uint16_t *wr = (const uint16_t *)p.w + (size_t)nglob * p.K;
		for (int kk = 0; kk < p.K; kk++) acc = __fadd_rn(acc, __fmul_rn(AV(kk), d_bf16(wr[kk])));
	}
#undef AV
	gk_out(p, grp, row, col, acc);
}

/* ---- launch ---- */

template <int KIND>
static void launch_kind(struct cu_impl *c, const gk_params &p, int G, int ref)
{
	if (ref) {
		dim3 grid((p.N + 127) / 128, p.rows, G);
		k_gemm_ref<KIND><<<grid, 128, 0, c->st>>>(p);
		return;
	}
	const int MT = p.rows > 32 ? 4 : p.rows > 16 ? 2 : 1;
	dim3 grid((p.N + 7) / 8, (p.rows + 16 * MT - 1) / (16 * MT), G);
	const int threads = 32 * p.kw;
	if (MT == 4) k_gemm_mma<KIND, 4><<<grid, threads, 0, c->st>>>(p);
	else if (MT == 2) k_gemm_mma<KIND, 2><<<grid, threads, 0, c->st>>>(p);
	else k_gemm_mma<KIND, 1><<<grid, threads, 0, c->st>>>(p);
}

void cu_gemm_chunk(struct kern *k, const struct cu_gdesc *d, int r0, int n)
{
	struct cu_impl *c = cu_of(k);
	if (n <= 0 || d->N <= 0) return;
	gk_params p;
	p.w = (const uint8_t *)d->w;
	p.s = d->s;
	p.N = d->N;
	p.K = d->K;
	p.kblocks = (d->K + 127) / 128;
	p.vec = d->K % 32 == 0;
	p.A = c->apl;
	p.pstride = (size_t)CU_ROWS * c->wp;
	p.Kp = cu_kp(d->K);
	p.lda = d->G * p.Kp;
	p.np = d->qnt ? 1 : d->np; /* act_quant stages one plane */
	p.sa = d->qnt ? c->asc : NULL;
	p.sld = c->wp / 128 + 1;
	p.xf = c->gemm_ref && !d->qnt ? c->xf : NULL;
	p.rows = n;
	p.y = d->y;
	p.ldy = d->ldy;
	p.yrow0 = d->ylocal ? 0 : r0;
	p.rnd = d->rnd;
	p.acc = d->acc;
	p.ldacc = d->ldacc;
	p.rowmap = d->rowmap ? d->rowmap + r0 : NULL;
	p.topk = d->topk;
	int nblk = p.kblocks;
	p.kw = nblk < 8 ? nblk : 8;
	if (p.kw < 1) p.kw = 1;
	switch (d->kind) {
	case CU_FP8: launch_kind<CU_FP8>(c, p, d->G, c->gemm_ref); break;
	case CU_FP4: launch_kind<CU_FP4>(c, p, d->G, c->gemm_ref); break;
	case CU_BF16: launch_kind<CU_BF16>(c, p, d->G, c->gemm_ref); break;
	default: launch_kind<CU_FP8G>(c, p, d->G, c->gemm_ref); break;
	}
	cu_after_launch(k, "gemm");
}

void cu_gemm_rows(struct kern *k, const struct cu_gdesc *d, const float *x, int ldx, int S)
{
	for (int r0 = 0; r0 < S; r0 += CU_ROWS) {
		int n = S - r0 < CU_ROWS ? S - r0 : CU_ROWS;
		cu_stage(k, x, ldx, NULL, 1, r0, n, d->K, d->G, d->qnt, d->np);
		cu_gemm_chunk(k, d, r0, n);
	}
}
