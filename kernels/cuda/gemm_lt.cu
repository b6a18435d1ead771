/* kernels/cuda/gemm_lt.cu - the block-scaled FP8 GEMM (MODEL.md §7.2) through
 * cuBLASLt's DeepSeek scaling modes, a diagnostic alternative to the GEMM engine for
 * gemm_fp8 (NVMOE_CUDA_GEMM=lt, or kern_cuda_set_gemm_lt()).  Layout rules and the
 * cases it takes: kernels/cuda/lt.h; everything else falls back to the own kernel.
 *
 * Per call (rows in chunks of at most L->rows):
 *   1. act_quant(128) of the rows on the GPU (§10.1, the engine's arithmetic: the same
 *      d_pow2_scale / d_f32_to_e4m3 helpers of cu.cuh, so the codes and the scales
 *      are bitwise those the engine stages) into E4M3 bytes + f32 scales [K/128][rows];
 *   2. cublasLtMatmul, A = weight (BLK128x128_32F scales), B = codes (VEC128_32F),
 *      compute 32F, FAST_ACCUM off (cuBLASLt promotes the partial sums to f32);
 *   3. D is f32, written straight into y: cuBLASLt forms the per-128-block partial
 *      sums, multiplies them by sa·sw (powers of two: exact) and accumulates in f32,
 *      which is §7.2's structure; the one bf16 rounding is then ours (rnd(), RNE,
 *      only with RND), the same rounding point as the engine and the CPU.  A bf16 D
 *      would round inside cuBLASLt's epilogue and cannot give the unrounded `exact`
 *      mode, so it is only tried with RND when no f32-output algorithm exists.
 *   What differs from the engine is the summation inside a 128-block: Hopper's FP8
 *   tensor cores add with reduced internal precision (§7.5 leaves it free; the
 *   reference's own kernels have the same property).
 *
 * Why opt-in.  cuBLASLt picks the algorithm (tile, split-K, stream-K) per problem,
 * including the row count S, so a token's result may depend on how many rows share
 * the call: kern.h's row-independence guarantee (bitwise chunked prefill) does not
 * hold.  Nothing here pins it.
 *
 * Set-up (never per call): handle, matmul descriptor, layouts, preference and a 32 MiB
 * workspace at cu_lt_setup (reserve); per (N, K, rows) the heuristic's algorithm,
 * cached; per weight the f32 scale grid, converted once at its first use (host
 * decode, kernels/cuda/lt.h) and cached by device pointer until that memory is freed
 * or written (cu_lt_forget, called by free/upload/copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "cu.cuh"
extern "C" {
#include "kernels/cuda/lt.h"
}

#define LT_ROWS 4096                 /* most rows per cublasLtMatmul */
#define LT_WS_BYTES ((size_t)32 << 20)
#define LT_NALGO 1024                /* heuristic cache slots (power of two) */
#define LT_ARENA ((size_t)4 << 20)   /* weight-scale arena chunk */

struct lt_algo {
	int n, k, m;             /* key; n == 0: empty slot */
	signed char st32, st16;  /* 0 not asked, 1 have, -1 none */
	cublasLtMatmulAlgo_t a32, a16;
};

struct lt_wscale {
	const uint8_t *s;        /* device E8M0 grid (the key) */
	int n, k;
	const float *f;          /* device f32 grid [ceil(n/128)][kern_lt_ldk(k)] */
};

struct lt_arena {
	struct lt_arena *next;
	char *base;
	size_t used, cap;
};

struct cu_lt {
	cublasLtHandle_t h;
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t la, lb, ld32, ld16;
	cublasLtMatmulPreference_t pref;
	void *ws;                /* [LT_WS_BYTES] cuBLASLt workspace */
	int rows, width;         /* capacity of the buffers below */
	uint8_t *aq;             /* [rows][width] E4M3 activation codes, row stride K */
	float *asc;              /* [width/128][rows] activation scales, [K/128][n] per chunk */
	uint16_t *d16;           /* [rows][width] bf16 D (only for bf16-output algorithms) */
	struct lt_algo *algo;    /* [LT_NALGO] open addressing on (n, k, m) */
	int nalgo;
	/* Weight scales: a plain array searched linearly (a few hundred FP8 linears; a
	 * pointer compare each, next to a GEMM launch), [lo, hi) bounds the cached keys so
	 * that free/upload/copy elsewhere are rejected at once. */
	struct lt_wscale *wsc;
	size_t nwsc, capwsc;
	uintptr_t lo, hi;
	struct lt_arena *arenas;
	long calls;              /* gemm_fp8 calls computed here (diagnostics, tests) */
};

/* ---- kernels ---- */

/* act_quant(128) of n rows: one warp per (row, 128-block); codes [n][K], scales [K/128][n]. */
__global__ void k_lt_quant(uint8_t *aq, float *asc, int n, const float *x, int ldx, int K)
{
	const int i = blockIdx.y, b = blockIdx.x, lane = threadIdx.x;
	const float *xr = x + (size_t)i * ldx + (size_t)b * 128;
	float v[4], amax = 0.0f;
#pragma unroll
	for (int j = 0; j < 4; j++) {
		v[j] = xr[lane + 32 * j];
		amax = fmaxf(amax, fabsf(v[j]));
	}
	amax = warp_max(amax);
	const float s = d_pow2_scale(amax, 448.0f, 1e-4f), inv = __fdiv_rn(1.0f, s);
	uint8_t *qr = aq + (size_t)i * K + (size_t)b * 128;
#pragma unroll
	for (int j = 0; j < 4; j++) {
		float q = __fmul_rn(v[j], inv);
		q = q > 448.0f ? 448.0f : q;
		q = q < -448.0f ? -448.0f : q;
		qr[lane + 32 * j] = (uint8_t)d_f32_to_e4m3(q);
	}
	if (lane == 0) asc[(size_t)b * n + i] = s;
}

/* y[s*ldy + c] = rnd(D[s][c]) for s < n, c < N: D is y itself (f32) or d16 [n][N] bf16. */
__global__ void k_lt_out(float *y, int ldy, const uint16_t *d16, int N, int n, int rnd)
{
	const size_t tot = (size_t)n * N;
	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < tot; e += (size_t)gridDim.x * blockDim.x) {
		const size_t s = e / N, c = e % N;
		float *o = y + s * ldy + c;
		float v = d16 ? d_bf16(d16[e]) : *o;
		*o = rnd ? d_rbf16(v) : v;
	}
}

/* ---- set-up ---- */

static void lt_buffers_free(struct cu_lt *L)
{
	cudaFree(L->aq);
	cudaFree(L->asc);
	cudaFree(L->d16);
	L->aq = NULL;
	L->asc = NULL;
	L->d16 = NULL;
	L->rows = L->width = 0;
}

void cu_lt_destroy(struct kern *k)
{
	struct cu_impl *c = cu_of(k);
	struct cu_lt *L = c->lt;
	if (!L) return;
	cudaStreamSynchronize(c->st);
	lt_buffers_free(L);
	cudaFree(L->ws);
	for (struct lt_arena *a = L->arenas, *nx; a; a = nx) {
		nx = a->next;
		cudaFree(a->base);
		free(a);
	}
	if (L->pref) cublasLtMatmulPreferenceDestroy(L->pref);
	if (L->la) cublasLtMatrixLayoutDestroy(L->la);
	if (L->lb) cublasLtMatrixLayoutDestroy(L->lb);
	if (L->ld32) cublasLtMatrixLayoutDestroy(L->ld32);
	if (L->ld16) cublasLtMatrixLayoutDestroy(L->ld16);
	if (L->op) cublasLtMatmulDescDestroy(L->op);
	if (L->h) cublasLtDestroy(L->h);
	free(L->algo);
	free(L->wsc);
	free(L);
	c->lt = NULL;
}

/* Handle, descriptors, workspace: once per backend. */
static int lt_create(struct cu_impl *c, char *why, size_t why_n)
{
	cudaDeviceProp pr;
	if (cudaGetDeviceProperties(&pr, c->device) != cudaSuccess) {
		cudaGetLastError();
		snprintf(why, why_n, "cudaGetDeviceProperties failed");
		return -ENODEV;
	}
	if (pr.major != 9) {
		snprintf(why, why_n, "compute capability %d.%d: cuBLASLt's VEC128/BLK128x128 FP8 scaling exists on sm_90 only",
			 pr.major, pr.minor);
		return -ENOTSUP;
	}
	if (cublasLtGetVersion() < 120900) {
		snprintf(why, why_n, "cuBLASLt %zu: block scaling needs 12.9 or later", cublasLtGetVersion());
		return -ENOTSUP;
	}
	struct cu_lt *L = (struct cu_lt *)calloc(1, sizeof *L);
	if (!L || !(L->algo = (struct lt_algo *)calloc(LT_NALGO, sizeof *L->algo))) {
		free(L);
		snprintf(why, why_n, "out of host memory");
		return -ENOMEM;
	}
	c->lt = L;
	const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
	const int32_t modeA = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, modeB = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
	const int8_t fast = 0;
	const uint32_t al16 = 16;
	const size_t wsb = LT_WS_BYTES;
	int ok = cublasLtCreate(&L->h) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescCreate(&L->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &modeA, sizeof modeA) ==
			 CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &modeB, sizeof modeB) ==
			 CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast) ==
			 CUBLAS_STATUS_SUCCESS &&
		 /* placeholder sizes: every use sets rows / cols / ld first */
		 cublasLtMatrixLayoutCreate(&L->la, CUDA_R_8F_E4M3, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutCreate(&L->lb, CUDA_R_8F_E4M3, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutCreate(&L->ld32, CUDA_R_32F, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutCreate(&L->ld16, CUDA_R_16BF, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulPreferenceCreate(&L->pref) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatmulPreferenceSetAttribute(L->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb) ==
			 CUBLAS_STATUS_SUCCESS;
	/* kernels/cuda/lt.h guarantees 16-byte alignment, not cuBLASLt's default 256 */
	const cublasLtMatmulPreferenceAttributes_t al[4] = {
		CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
		CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES };
	for (int i = 0; ok && i < 4; i++)
		ok = cublasLtMatmulPreferenceSetAttribute(L->pref, al[i], &al16, sizeof al16) == CUBLAS_STATUS_SUCCESS;
	if (!ok) {
		snprintf(why, why_n, "cuBLASLt set-up (handle, descriptors, preference) failed");
		return -ENOTSUP;
	}
	if (cudaMalloc(&L->ws, LT_WS_BYTES) != cudaSuccess) {
		cudaGetLastError();
		L->ws = NULL;
		snprintf(why, why_n, "cudaMalloc of the %zu MiB cuBLASLt workspace failed", LT_WS_BYTES >> 20);
		return -ENOMEM;
	}
	return 0;
}

int cu_lt_setup(struct kern *k, char *why, size_t why_n)
{
	struct cu_impl *c = cu_of(k);
	char dummy[8];
	if (!why || !why_n) why = dummy, why_n = sizeof dummy;
	why[0] = 0;
	if (!c->lt) {
		int rc = lt_create(c, why, why_n);
		if (rc) {
			cu_lt_destroy(k);
			return rc;
		}
	}
	struct cu_lt *L = c->lt;
	if (c->max_rows <= 0 || c->max_width <= 0) return 0; /* sized at reserve() */
	const int rows = c->max_rows < LT_ROWS ? c->max_rows : LT_ROWS;
	const int width = (c->max_width + 127) / 128 * 128;
	if (L->aq && rows <= L->rows && width <= L->width) return 0;
	CU_CALL(cudaStreamSynchronize(c->st));
	lt_buffers_free(L);
	const size_t n = (size_t)rows * width;
	if (cudaMalloc(&L->aq, n) != cudaSuccess || cudaMalloc(&L->asc, n / 128 * 4) != cudaSuccess ||
	    cudaMalloc(&L->d16, n * 2) != cudaSuccess) {
		cudaGetLastError();
		lt_buffers_free(L);
		snprintf(why, why_n, "cudaMalloc of the cuBLASLt activation buffers (%d rows of %d) failed", rows, width);
		return -ENOMEM;
	}
	L->rows = rows;
	L->width = width;
	return 0;
}

long cu_lt_calls(struct kern *k)
{
	struct cu_lt *L = cu_of(k)->lt;
	return L ? L->calls : 0;
}

/* ---- weight scales ---- */

void cu_lt_forget(struct kern *k, const void *p, size_t bytes)
{
	struct cu_lt *L = cu_of(k)->lt;
	const uintptr_t a = (uintptr_t)p, b = a + bytes;
	if (!L || !L->nwsc || b <= L->lo || a >= L->hi) return;
	for (size_t i = L->nwsc; i-- > 0;) {
		const uintptr_t s = (uintptr_t)L->wsc[i].s;
		const size_t sb = (size_t)((L->wsc[i].n + 127) / 128) * ((L->wsc[i].k + 127) / 128);
		if (s < b && a < s + sb) L->wsc[i] = L->wsc[--L->nwsc]; /* its f32 copy stays in the arena */
	}
}

static float *lt_arena_get(struct cu_lt *L, size_t bytes)
{
	bytes = (bytes + 255) & ~(size_t)255;
	struct lt_arena *a = L->arenas;
	if (!a || a->cap - a->used < bytes) {
		const size_t cap = bytes > LT_ARENA ? bytes : LT_ARENA;
		a = (struct lt_arena *)calloc(1, sizeof *a);
		if (!a) return NULL;
		if (cudaMalloc((void **)&a->base, cap) != cudaSuccess) {
			cudaGetLastError();
			free(a);
			return NULL;
		}
		a->cap = cap;
		a->next = L->arenas;
		L->arenas = a;
	}
	float *r = (float *)(a->base + a->used);
	a->used += bytes;
	return r;
}

/* The f32 scale grid of W: cached, or converted now (the first use of this weight). */
static const float *lt_wscale(struct cu_impl *c, struct cu_lt *L, const struct kern_fp8w *W)
{
	for (size_t i = 0; i < L->nwsc; i++)
		if (L->wsc[i].s == W->s && L->wsc[i].n == W->n && L->wsc[i].k == W->k) return L->wsc[i].f;
	if (L->nwsc == L->capwsc) {
		size_t ncap = L->capwsc ? 2 * L->capwsc : 256;
		struct lt_wscale *nw = (struct lt_wscale *)realloc(L->wsc, ncap * sizeof *nw);
		if (!nw) return NULL;
		L->wsc = nw;
		L->capwsc = ncap;
	}
	const size_t ns = (size_t)((W->n + 127) / 128) * ((W->k + 127) / 128), nf = kern_lt_wscale_count(W->n, W->k);
	uint8_t *hs = (uint8_t *)malloc(ns);
	float *hf = (float *)malloc(nf * sizeof(float));
	float *d = hs && hf ? lt_arena_get(L, nf * sizeof(float)) : NULL;
	if (d) {
		CU_CALL(cudaMemcpyAsync(hs, W->s, ns, cudaMemcpyDeviceToHost, c->st));
		CU_CALL(cudaStreamSynchronize(c->st));
		kern_lt_wscale_f32(hf, hs, W->n, W->k);
		CU_CALL(cudaMemcpyAsync(d, hf, nf * sizeof(float), cudaMemcpyHostToDevice, c->st));
		CU_CALL(cudaStreamSynchronize(c->st));
		struct lt_wscale *e = &L->wsc[L->nwsc++];
		e->s = W->s;
		e->n = W->n;
		e->k = W->k;
		e->f = d;
		const uintptr_t a = (uintptr_t)W->s;
		if (L->nwsc == 1 || a < L->lo) L->lo = a;
		if (L->nwsc == 1 || a + ns > L->hi) L->hi = a + ns;
	}
	free(hs);
	free(hf);
	return d;
}

/* ---- algorithms ---- */

static int lt_layouts(struct cu_lt *L, int N, int K, int m, int ldd)
{
	const uint64_t uK = K, uN = N, um = m;
	const int64_t lK = K, lD = ldd;
	const cublasLtMatrixLayoutAttribute_t R = CUBLASLT_MATRIX_LAYOUT_ROWS, C = CUBLASLT_MATRIX_LAYOUT_COLS,
					      LD = CUBLASLT_MATRIX_LAYOUT_LD;
	cublasLtMatrixLayout_t dl[2] = { L->ld32, L->ld16 };
	int ok = cublasLtMatrixLayoutSetAttribute(L->la, R, &uK, 8) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutSetAttribute(L->la, C, &uN, 8) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutSetAttribute(L->la, LD, &lK, 8) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutSetAttribute(L->lb, R, &uK, 8) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutSetAttribute(L->lb, C, &um, 8) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutSetAttribute(L->lb, LD, &lK, 8) == CUBLAS_STATUS_SUCCESS;
	for (int i = 0; ok && i < 2; i++)
		ok = cublasLtMatrixLayoutSetAttribute(dl[i], R, &uN, 8) == CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatrixLayoutSetAttribute(dl[i], C, &um, 8) == CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatrixLayoutSetAttribute(dl[i], LD, &lD, 8) == CUBLAS_STATUS_SUCCESS;
	return ok;
}

/* Best algorithm for (N, K, m) with D of type f32 (bf16 = 0) or bf16. */
static int lt_heuristic(struct cu_lt *L, int N, int K, int m, int bf16, cublasLtMatmulAlgo_t *algo)
{
	cublasLtMatmulHeuristicResult_t r;
	int nres = 0;
	cublasLtMatrixLayout_t dl = bf16 ? L->ld16 : L->ld32;
	if (!lt_layouts(L, N, K, m, N)) return 0;
	memset(&r, 0, sizeof r);
	if (cublasLtMatmulAlgoGetHeuristic(L->h, L->op, L->la, L->lb, dl, dl, L->pref, 1, &r, &nres) !=
		    CUBLAS_STATUS_SUCCESS ||
	    nres < 1 || r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > LT_WS_BYTES)
		return 0;
	*algo = r.algo;
	return 1;
}

/* The cached entry of (N, K, m), its heuristics asked on first use: which output type
 * to use (*bf16), NULL when neither applies (bf16 output only with RND). */
static struct lt_algo *lt_algo_get(struct cu_lt *L, int N, int K, int m, int rnd, int *bf16)
{
	if (L->nalgo * 4 >= LT_NALGO * 3) { /* many distinct row counts: start over */
		memset(L->algo, 0, LT_NALGO * sizeof *L->algo);
		L->nalgo = 0;
	}
	size_t j = ((size_t)N * 2654435761u ^ (size_t)K * 40503u ^ (size_t)m * 97u) & (LT_NALGO - 1);
	while (L->algo[j].n && (L->algo[j].n != N || L->algo[j].k != K || L->algo[j].m != m)) j = (j + 1) & (LT_NALGO - 1);
	struct lt_algo *e = &L->algo[j];
	if (!e->n) {
		e->n = N;
		e->k = K;
		e->m = m;
		L->nalgo++;
	}
	if (!e->st32) e->st32 = lt_heuristic(L, N, K, m, 0, &e->a32) ? 1 : -1;
	if (e->st32 > 0) {
		*bf16 = 0;
		return e;
	}
	if (!rnd) return NULL;
	if (!e->st16) e->st16 = lt_heuristic(L, N, K, m, 1, &e->a16) ? 1 : -1;
	*bf16 = 1;
	return e->st16 > 0 ? e : NULL;
}

/* ---- the op ---- */

/* Rows [r0, S) on the engine (a cuBLASLt call failed after earlier chunks ran). */
static void lt_rest_on_engine(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W,
			      int r0, int S, unsigned nm)
{
	struct cu_gdesc d = {};
	d.kind = CU_FP8;
	d.w = W->w;
	d.s = W->s;
	d.N = W->n;
	d.K = W->k;
	d.G = 1;
	d.qnt = 1;
	d.np = 1;
	d.y = y + (size_t)r0 * ldy;
	d.ldy = ldy;
	d.rnd = (nm & KERN_RND) != 0;
	cu_gemm_rows(k, &d, x + (size_t)r0 * ldx, ldx, S - r0);
}

int cu_lt_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W, int S,
		   unsigned nm)
{
	struct cu_impl *c = cu_of(k);
	struct cu_lt *L = c->lt;
	const int N = W->n, K = W->k, rnd = (nm & KERN_RND) != 0;
	if (!c->gemm_lt || c->gemm_ref || !L || !L->aq || S <= 0) return 0;
	if (!kern_lt_fits(N, K, ldy, nm, (uintptr_t)W->w, (uintptr_t)W->s, (uintptr_t)y)) return 0;
	if (K > L->width || N > L->width) return 0;
	/* every chunk size has an algorithm before anything is launched */
	const int m0 = S < L->rows ? S : L->rows, mlast = S % L->rows ? S % L->rows : m0;
	int b0, bl;
	struct lt_algo *e0 = lt_algo_get(L, N, K, m0, rnd, &b0);
	struct lt_algo *el = e0 ? lt_algo_get(L, N, K, mlast, rnd, &bl) : NULL;
	if (!e0 || !el) return 0;
	const float *wsf = lt_wscale(c, L, W);
	if (!wsf) return 0;
	const float one = 1.0f, zero = 0.0f;
	for (int r0 = 0; r0 < S; r0 += L->rows) {
		const int n = S - r0 < L->rows ? S - r0 : L->rows;
		struct lt_algo *e = n == m0 ? e0 : el;
		const int b16 = n == m0 ? b0 : bl;
		float *yc = y + (size_t)r0 * ldy;
		void *D = b16 ? (void *)L->d16 : (void *)yc;
		cublasLtMatrixLayout_t dl = b16 ? L->ld16 : L->ld32;
		k_lt_quant<<<dim3(K / 128, n), 32, 0, c->st>>>(L->aq, L->asc, n, x + (size_t)r0 * ldx, ldx, K);
		cu_after_launch(k, "gemm_fp8 (cuBLASLt) act_quant");
		const void *pa = wsf, *pb = L->asc;
		int ok = e && lt_layouts(L, N, K, n, b16 ? N : ldy) &&
			 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &pa, sizeof pa) ==
				 CUBLAS_STATUS_SUCCESS &&
			 cublasLtMatmulDescSetAttribute(L->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &pb, sizeof pb) ==
				 CUBLAS_STATUS_SUCCESS &&
			 cublasLtMatmul(L->h, L->op, &one, W->w, L->la, L->aq, L->lb, &zero, D, dl, D, dl,
					b16 ? &e->a16 : &e->a32, L->ws, LT_WS_BYTES, c->st) == CUBLAS_STATUS_SUCCESS;
		if (!ok) {
			if (e && b16) e->st16 = -1;
			else if (e) e->st32 = -1;
			if (r0 == 0) return 0;
			lt_rest_on_engine(k, y, ldy, x, ldx, W, r0, S, nm);
			return 1;
		}
		cu_after_launch(k, "gemm_fp8 (cuBLASLt)");
		if (b16 || rnd) {
			k_lt_out<<<cu_grid((size_t)n * N), 256, 0, c->st>>>(yc, ldy, b16 ? L->d16 : NULL, N, n, rnd);
			cu_after_launch(k, "gemm_fp8 (cuBLASLt) output");
		}
	}
	L->calls++;
	return 1;
}
