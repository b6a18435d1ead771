/* kernels/cuda/gemm_lt.cu - the block-scaled FP8 GEMM (MODEL.md §7.2) through
 * cuBLASLt's DeepSeek scaling modes, a diagnostic alternative to the GEMM engine for
 * gemm_fp8 (NVMOE_CUDA_GEMM=lt, or kern_cuda_set_gemm_lt()).  Layout rules and the
 * cases it takes: kernels/cuda/lt.h; everything else falls back to the own kernel.
 *
 * Per call (rows in chunks of at most L->rows):
 *   1. act_quant(128) of the rows on the GPU (§10.1, the engine's arithmetic: the same
 *      d_pow2_scale / d_f32_to_e4m3 helpers of cu.cuh, so the codes and the scales
 *      are bitwise those the engine stages) into E4M3 bytes + f32 scales [K/128][rows];
 *   2. cublasLtMatmul, compute 32F, FAST_ACCUM off (cuBLASLt promotes the partial
 *      sums to f32), in the first of four variants the heuristic has an algorithm for:
 *        0  A = weight (BLK128x128_32F), B = codes (VEC128_32F), D f32 = y itself
 *           (kernels/cuda/lt.h's mapping: no copy);
 *        1  A = codes (VEC128_32F), B = weight (BLK128x128_32F) - the operand order of
 *           NVIDIA's sample - D f32 [N][rows] column-major in a scratch buffer, then
 *           transposed into y;
 *        2, 3  as 0, 1 with a bf16 D (scratch), only with RND (below);
 *   3. rnd() to bf16 with RND.  With an f32 D cuBLASLt forms the per-128-block partial
 *      sums, multiplies them by sa·sw (powers of two: exact) and accumulates in f32,
 *      which is §7.2's structure, and the one bf16 rounding is ours (RNE), the same
 *      rounding point as the engine and the CPU.  A bf16 D rounds inside cuBLASLt's
 *      epilogue and cannot give the unrounded `exact` mode: last resort, RND only.
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

/* Variants (see the top): bit 0 = codes as A (transposed result), bit 1 = bf16 D. */
enum { LT_NVAR = 4, LT_SWAP = 1, LT_BF16 = 2 };

struct lt_algo {
	int n, k, m;               /* key; n == 0: empty slot */
	signed char st[LT_NVAR];   /* 0 not asked, 1 have, -1 none */
	cublasLtMatmulAlgo_t a[LT_NVAR];
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
	cublasLtMatmulDesc_t op[2];  /* [0] weight = A, [1] codes = A (scale modes swapped) */
	cublasLtMatrixLayout_t lw, lx, ld32, ld16; /* weight, codes, D f32, D bf16 */
	cublasLtMatmulPreference_t pref;
	void *ws;                /* [LT_WS_BYTES] cuBLASLt workspace */
	int rows, width;         /* capacity of the buffers below */
	uint8_t *aq;             /* [rows][width] E4M3 activation codes, row stride K */
	float *asc;              /* [width/128][rows] activation scales, [K/128][n] per chunk */
	float *dsc;              /* [rows rounded up to 8][width] D scratch of variants 1-3 */
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

/* y[s*ldy + c] = rnd(D(s, c)) for s < n, c < N, D of variant v: y itself (0); f32
 * column-major, D(s, c) at c*ldd + s (1); bf16 at s*ldd + c (2); bf16 column-major (3).
 * 32x32 tiles through shared memory so that the transposed variants read and write
 * whole rows; grid (ceil(N/32), ceil(n/32)), 32x8 threads. */
__global__ void k_lt_out(float *y, int ldy, const void *D, int ldd, int v, int N, int n, int rnd)
{
	__shared__ float t[32][33];
	const int c0 = blockIdx.x * 32, s0 = blockIdx.y * 32, tx = threadIdx.x, ty = threadIdx.y;
	const float *df = (const float *)D;
	const uint16_t *dh = (const uint16_t *)D;
	if (v & LT_SWAP) { /* load columns (s fastest), store rows */
		for (int j = ty; j < 32; j += 8) {
			const int c = c0 + j, s = s0 + tx;
			if (c < N && s < n) {
				const size_t o = (size_t)c * ldd + s;
				t[j][tx] = v & LT_BF16 ? d_bf16(dh[o]) : df[o];
			}
		}
		__syncthreads();
	}
	for (int j = ty; j < 32; j += 8) {
		const int s = s0 + j, c = c0 + tx;
		if (s >= n || c >= N) continue;
		float *o = y + (size_t)s * ldy + c;
		const float val = v & LT_SWAP ? t[tx][j] : v & LT_BF16 ? d_bf16(dh[(size_t)s * ldd + c]) : *o;
		*o = rnd ? d_rbf16(val) : val;
	}
}

/* ---- set-up ---- */

static void lt_buffers_free(struct cu_lt *L)
{
	cudaFree(L->aq);
	cudaFree(L->asc);
	cudaFree(L->dsc);
	L->aq = NULL;
	L->asc = NULL;
	L->dsc = NULL;
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
	cublasLtMatrixLayout_t lay[4] = { L->lw, L->lx, L->ld32, L->ld16 };
	for (int i = 0; i < 4; i++)
		if (lay[i]) cublasLtMatrixLayoutDestroy(lay[i]);
	for (int i = 0; i < 2; i++)
		if (L->op[i]) cublasLtMatmulDescDestroy(L->op[i]);
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
	const int32_t blk = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, vec = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
	const int8_t fast = 0;
	const uint32_t al16 = 16;
	const size_t wsb = LT_WS_BYTES;
	int ok = cublasLtCreate(&L->h) == CUBLAS_STATUS_SUCCESS;
	for (int i = 0; ok && i < 2; i++) {
		const int32_t *ma = i ? &vec : &blk, *mb = i ? &blk : &vec;
		ok = cublasLtMatmulDescCreate(&L->op[i], CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatmulDescSetAttribute(L->op[i], CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA) == CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatmulDescSetAttribute(L->op[i], CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB) == CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatmulDescSetAttribute(L->op[i], CUBLASLT_MATMUL_DESC_A_SCALE_MODE, ma, sizeof *ma) ==
			     CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatmulDescSetAttribute(L->op[i], CUBLASLT_MATMUL_DESC_B_SCALE_MODE, mb, sizeof *mb) ==
			     CUBLAS_STATUS_SUCCESS &&
		     cublasLtMatmulDescSetAttribute(L->op[i], CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast) ==
			     CUBLAS_STATUS_SUCCESS;
	}
	ok = ok &&
		 /* placeholder sizes: every use sets rows / cols / ld first */
		 cublasLtMatrixLayoutCreate(&L->lw, CUDA_R_8F_E4M3, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
		 cublasLtMatrixLayoutCreate(&L->lx, CUDA_R_8F_E4M3, 128, 128, 128) == CUBLAS_STATUS_SUCCESS &&
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
	    cudaMalloc(&L->dsc, (size_t)(rows + 7) / 8 * 8 * width * 4) != cudaSuccess) {
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

size_t cu_lt_bytes(struct kern *k)
{
	struct cu_lt *L = cu_of(k)->lt;
	if (!L) return 0;
	size_t b = L->ws ? LT_WS_BYTES : 0;
	if (L->aq) b += (size_t)L->rows * L->width / 32 * 33 + (size_t)(L->rows + 7) / 8 * 8 * L->width * 4;
	for (struct lt_arena *a = L->arenas; a; a = a->next) b += a->cap;
	return b;
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

/* Layouts of variant v for (N, K, m); D's leading dimension ldd (variant 0: ldy). */
static int lt_layouts(struct cu_lt *L, int v, int N, int K, int m, int ldd)
{
	const uint64_t uK = K, uN = N, um = m, dr = v & LT_SWAP ? um : uN, dc = v & LT_SWAP ? uN : um;
	const int64_t lK = K, lD = ldd;
	const cublasLtMatrixLayoutAttribute_t R = CUBLASLT_MATRIX_LAYOUT_ROWS, C = CUBLASLT_MATRIX_LAYOUT_COLS,
					      LD = CUBLASLT_MATRIX_LAYOUT_LD;
	const cublasLtMatrixLayout_t dl = v & LT_BF16 ? L->ld16 : L->ld32;
	/* weight: column-major K x N; codes: column-major K x m; D: N x m (or m x N swapped) */
	return cublasLtMatrixLayoutSetAttribute(L->lw, R, &uK, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(L->lw, C, &uN, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(L->lw, LD, &lK, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(L->lx, R, &uK, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(L->lx, C, &um, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(L->lx, LD, &lK, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(dl, R, &dr, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(dl, C, &dc, 8) == CUBLAS_STATUS_SUCCESS &&
	       cublasLtMatrixLayoutSetAttribute(dl, LD, &lD, 8) == CUBLAS_STATUS_SUCCESS;
}

/* D's leading dimension in variant v: y's row stride, or the scratch's (columns kept
 * 32-byte aligned: cuBLASLt's FP8 kernels want 16-byte aligned leading dimensions). */
static int lt_ldd(int v, int N, int m, int ldy) { return v == 0 ? ldy : v & LT_SWAP ? (m + 7) / 8 * 8 : N; }

/* Best algorithm of variant v for (N, K, m). */
static int lt_heuristic(struct cu_lt *L, int v, int N, int K, int m, cublasLtMatmulAlgo_t *algo)
{
	cublasLtMatmulHeuristicResult_t r;
	int nres = 0;
	const cublasLtMatrixLayout_t dl = v & LT_BF16 ? L->ld16 : L->ld32;
	const cublasLtMatrixLayout_t a = v & LT_SWAP ? L->lx : L->lw, b = v & LT_SWAP ? L->lw : L->lx;
	/* variant 0 is asked with ldd = N; lt.h's 16-byte rule keeps any ldy usable */
	if (!lt_layouts(L, v, N, K, m, v == 0 ? N : lt_ldd(v, N, m, 0))) return 0;
	memset(&r, 0, sizeof r);
	if (cublasLtMatmulAlgoGetHeuristic(L->h, L->op[v & LT_SWAP], a, b, dl, dl, L->pref, 1, &r, &nres) !=
		    CUBLAS_STATUS_SUCCESS ||
	    nres < 1 || r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > LT_WS_BYTES)
		return 0;
	*algo = r.algo;
	return 1;
}

/* The cached entry of (N, K, m) and its first variant with an algorithm (*var); the
 * bf16-output variants only with RND.  NULL when none has one. */
static struct lt_algo *lt_algo_get(struct cu_lt *L, int N, int K, int m, int rnd, int *var)
{
	size_t j = ((size_t)N * 2654435761u ^ (size_t)K * 40503u ^ (size_t)m * 97u) & (LT_NALGO - 1);
	while (L->algo[j].n && (L->algo[j].n != N || L->algo[j].k != K || L->algo[j].m != m)) j = (j + 1) & (LT_NALGO - 1);
	struct lt_algo *e = &L->algo[j];
	if (!e->n) {
		e->n = N;
		e->k = K;
		e->m = m;
		L->nalgo++;
	}
	for (int v = 0; v < (rnd ? LT_NVAR : 2); v++) {
		if (!e->st[v]) e->st[v] = lt_heuristic(L, v, N, K, m, &e->a[v]) ? 1 : -1;
		if (e->st[v] > 0) {
			*var = v;
			return e;
		}
	}
	return NULL;
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
	if ((L->nalgo + 2) * 4 >= LT_NALGO * 3) { /* many distinct row counts: start over */
		memset(L->algo, 0, LT_NALGO * sizeof *L->algo);
		L->nalgo = 0;
	}
	/* every chunk size has an algorithm before anything is launched */
	const int m0 = S < L->rows ? S : L->rows, mlast = S % L->rows ? S % L->rows : m0;
	int v0, vl;
	struct lt_algo *e0 = lt_algo_get(L, N, K, m0, rnd, &v0);
	struct lt_algo *el = e0 ? lt_algo_get(L, N, K, mlast, rnd, &vl) : NULL;
	if (!e0 || !el) return 0;
	const float *wsf = lt_wscale(c, L, W);
	if (!wsf) return 0;
	const float one = 1.0f, zero = 0.0f;
	for (int r0 = 0; r0 < S; r0 += L->rows) {
		const int n = S - r0 < L->rows ? S - r0 : L->rows;
		struct lt_algo *e = n == m0 ? e0 : el;
		const int v = n == m0 ? v0 : vl, sw = v & LT_SWAP;
		float *yc = y + (size_t)r0 * ldy;
		void *D = v ? (void *)L->dsc : (void *)yc;
		const cublasLtMatrixLayout_t dl = v & LT_BF16 ? L->ld16 : L->ld32;
		k_lt_quant<<<dim3(K / 128, n), 32, 0, c->st>>>(L->aq, L->asc, n, x + (size_t)r0 * ldx, ldx, K);
		cu_after_launch(k, "gemm_fp8 (cuBLASLt) act_quant");
		const void *pa = sw ? (const void *)L->asc : (const void *)wsf, *pb = sw ? (const void *)wsf : (const void *)L->asc;
		const void *A = sw ? (const void *)L->aq : (const void *)W->w, *B = sw ? (const void *)W->w : (const void *)L->aq;
		cublasLtMatmulDesc_t op = L->op[sw];
		const int ldd = lt_ldd(v, N, n, ldy);
		int ok = lt_layouts(L, v, N, K, n, ldd) &&
			 cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &pa, sizeof pa) ==
				 CUBLAS_STATUS_SUCCESS &&
			 cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &pb, sizeof pb) ==
				 CUBLAS_STATUS_SUCCESS &&
			 cublasLtMatmul(L->h, op, &one, A, sw ? L->lx : L->lw, B, sw ? L->lw : L->lx, &zero, D, dl, D, dl,
					&e->a[v], L->ws, LT_WS_BYTES, c->st) == CUBLAS_STATUS_SUCCESS;
		if (!ok) {
			e->st[v] = -1; /* the next call asks for another variant */
			if (r0 == 0) return 0;
			lt_rest_on_engine(k, y, ldy, x, ldx, W, r0, S, nm);
			return 1;
		}
		cu_after_launch(k, "gemm_fp8 (cuBLASLt)");
		if (v || rnd) {
			k_lt_out<<<dim3((N + 31) / 32, (n + 31) / 32), dim3(32, 8), 0, c->st>>>(yc, ldy, v ? L->dsc : NULL, ldd, v,
												   N, n, rnd);
			cu_after_launch(k, "gemm_fp8 (cuBLASLt) output");
		}
	}
	L->calls++;
	return 1;
}
