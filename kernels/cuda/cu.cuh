/* kernels/cuda/cu.cuh - internal interface of the CUDA backend (kernels/cuda/).
 *
 * Each kernels/cuda/<family>.cu implements the ops of one family with the signatures
 * of struct kern (kernels/kern.h); backend.cu assembles the table.  All work goes to
 * ONE compute stream (cu_impl.st), so ops are ordered like the CPU backend's calls;
 * upload/download synchronise that stream (kern.h: transfers are synchronous).
 *
 * Numerics.  Device helpers below reproduce the CPU's primitives bit for bit
 * (kernels/numeric.h: bf16 RNE, E4M3/E2M1 encoders, E8M0 decode, power-of-two block
 * scales).  Elementwise ops use the __f*_rn intrinsics where the CPU evaluates
 * a*b+c as two roundings, so that nvcc cannot contract them into an FMA.  Reductions
 * (dot products, sums of squares) use fixed trees: a different order from the CPU
 * (MODEL.md §10.8 allows it) but the same order for every row whatever the row count,
 * which keeps the kern.h row-independence guarantee (bitwise chunk invariance).
 *
 * Errors.  Ops cannot fail (kern.h).  A CUDA error inside an op is a broken device
 * or a bug: cu_fatal() prints it and aborts (the CHECK() policy of core/err.h).
 * NVMOE_CUDA_SYNC=1 (diagnostic) synchronises after every launch so the failing op
 * is named.
 */
#ifndef NV_KERN_CUDA_CU_CUH
#define NV_KERN_CUDA_CU_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "kernels/kern.h"
}

/* GEMM kinds of the shared GEMM engine (gemm_mma.cuh / gemm_ref). */
enum { CU_FP8 = 0, CU_FP4 = 1, CU_BF16 = 2, CU_FP8G = 3 };

/* Rows of one GEMM chunk: activations are staged for at most this many rows. */
#define CU_ROWS 256
/* hc partial sums: slice length along M*D, max slices, max mixes + 1. */
#define CU_HC_SLICE 512
#define CU_HC_NSPL 64
#define CU_HC_NV 40

struct cu_wmap {
	const void *host;
	size_t bytes;
	void *dev;
};

struct cu_impl {
	int device, nsm;
	cudaStream_t st;
	int sync_debug;   /* NVMOE_CUDA_SYNC=1 */
	int gemm_ref;     /* 1: reference GEMM path (one thread per output, CPU order) */
	int gemm_lt;      /* 1: FP8 GEMMs through cuBLASLt where it fits (gemm_lt.cu) */
	struct cu_lt *lt; /* its state, NULL until first enabled */
	/* workspace (reserve) */
	int max_rows, max_width;
	int wp;           /* padded A row length (elements) */
	uint16_t *apl;    /* [3][CU_ROWS][wp] bf16 activation planes */
	float *asc;       /* [CU_ROWS][wp/128 + 1] activation scales */
	float *xf;        /* [CU_ROWS][wp] f32 copy of staged rows (gemm_ref only) */
	float *mg, *mu;   /* [CU_ROWS][wp] routed-expert w1 / w3 outputs */
	float *hcp;       /* [CU_ROWS][CU_HC_NSPL][CU_HC_NV] hc partial sums */
	int32_t *tok;     /* [max_rows] token ids of embed */
	/* sample() scratch (sample_reserve, sample.cu), smp_v logits */
	int smp_v;
	float *s_x, *s_xs;        /* [smp_v] masked logits -> keys x; keys sorted */
	int32_t *s_id, *s_ids;    /* [smp_v] ids; ids sorted */
	double *s_p;              /* [smp_v] weights in walk order */
	void *s_tmp;              /* cub radix-sort temporary storage */
	size_t s_tmp_bytes;
	struct cu_smp_state *s_st; /* [1] m, best, result */
	size_t smp_bytes;         /* all of the above (kern_cuda_mem_used) */
	/* weights made available with wmap: open-addressing table keyed by host pointer */
	struct cu_wmap *wm;
	size_t wm_n, wm_cap;
};

static inline struct cu_impl *cu_of(struct kern *k) { return (struct cu_impl *)k->impl; }

void cu_fatal(const char *what, cudaError_t err, const char *file, int line);
#define CU_CALL(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) cu_fatal(#x, e_, __FILE__, __LINE__); } while (0)
/* After every launch: catches bad configurations at once; with sync_debug waits. */
void cu_after_launch(struct kern *k, const char *op);

/* Grid size for a grid-stride loop over n elements with 256-thread blocks. */
static inline unsigned cu_grid(size_t n)
{
	size_t g = (n + 255) / 256;
	return (unsigned)(g < 1 ? 1 : g > 8192 ? 8192 : g);
}

/* ---- device numerics (mirror kernels/numeric.h) ---- */

static __device__ __forceinline__ float d_rbf16(float f)
{
	uint32_t u = __float_as_uint(f);
	if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float((u | 0x00400000u) & 0xffff0000u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return __uint_as_float(u & 0xffff0000u);
}

static __device__ __forceinline__ float d_rnd(float v, unsigned nm) { return (nm & KERN_RND) ? d_rbf16(v) : v; }

static __device__ __forceinline__ float d_bf16(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* a KV cache element widened to f32 (exact): float rows, or bf16 rows with KERN_KV16 */
static __device__ __forceinline__ float d_kv(const float *p, size_t i) { return p[i]; }
static __device__ __forceinline__ float d_kv(const uint16_t *p, size_t i) { return d_bf16(p[i]); }

static __device__ __forceinline__ float d_e8m0(uint8_t b)
{
	if (b == 0xFF) return __uint_as_float(0x7fc00000u);
	return ldexpf(1.0f, (int)b - 127);
}

static __device__ __forceinline__ float d_e4m3_val(uint32_t b)
{
	if ((b & 0x7f) == 0x7f) return __uint_as_float(0x7fc00000u);
	int e = (b >> 3) & 15, m = b & 7;
	float v = e == 0 ? (float)m * 0x1p-9f : ldexpf((float)(8 + m), e - 10);
	return (b & 0x80) ? -v : v;
}

static __device__ __forceinline__ uint32_t d_f32_to_e4m3(float f)
{
	if (isnan(f)) return 0x7F;
	uint32_t sign = signbit(f) ? 0x80 : 0;
	float a = fabsf(f);
	uint32_t code;
	if (a >= 448.0f) {
		code = 0x7E;
	} else if (a < 0.015625f) {
		code = (uint32_t)rintf(__fmul_rn(a, 512.0f));
	} else {
		int e;
		float m = frexpf(a, &e);
		e -= 1;
		float q = rintf(__fmul_rn(__fsub_rn(__fmul_rn(2.0f, m), 1.0f), 8.0f));
		if (q >= 8.0f) { q = 0; e++; }
		int c = ((e + 7) << 3) | (int)q;
		code = (uint32_t)(c > 0x7E ? 0x7E : c);
	}
	return sign | code;
}

/* E2M1 code 0..7 -> 0, .5, 1, 1.5, 2, 3, 4, 6 (no table: a run-time index into a
 * local array would go to local memory). */
static __device__ __forceinline__ float d_e2m1_val(uint32_t nib)
{
	uint32_t c = nib & 7;
	float v = c < 2 ? (float)c * 0.5f : ldexpf(1.0f + (float)(c & 1) * 0.5f, (int)(c >> 1) - 1);
	return (nib & 8) ? -v : v;
}

static __device__ __forceinline__ uint32_t d_f32_to_e2m1(float f)
{
	uint32_t sign = signbit(f) ? 8 : 0;
	float a = fabsf(f);
	uint32_t c;
	if (isnan(f)) c = 7;
	else if (a <= 0.25f) c = 0;
	else if (a < 0.75f) c = 1;
	else if (a <= 1.25f) c = 2;
	else if (a < 1.75f) c = 3;
	else if (a <= 2.5f) c = 4;
	else if (a < 3.5f) c = 5;
	else if (a <= 5.0f) c = 6;
	else c = 7;
	return sign | c;
}

/* 2^ceil(log2(max(amax, floor) / fmax)), exact (the fix-up loops compare exactly). */
static __device__ __forceinline__ float d_pow2_scale(float amax, float fmax, float floor_)
{
	double a = amax > floor_ ? amax : floor_;
	if (!(a == a)) return __uint_as_float(0x7fc00000u);
	/* as kern_pow2_scale: with amax = inf the fix-up loops below would never end (a
	 * hung kernel, not just a wrong value) */
	if (isinf(a)) return __uint_as_float(0x7f800000u);
	int e = (int)ceil(log2(a / (double)fmax));
	while (ldexp((double)fmax, e) < a) e++;
	while (ldexp((double)fmax, e - 1) >= a) e--;
	return (float)ldexp(1.0, e);
}

/* act_quant of one value given the block's 1/s: decoded E4M3 value. */
static __device__ __forceinline__ float d_quant8(float x, float inv)
{
	float v = __fmul_rn(x, inv);
	v = v > 448.0f ? 448.0f : v;
	v = v < -448.0f ? -448.0f : v;
	return d_e4m3_val(d_f32_to_e4m3(v));
}

static __device__ __forceinline__ float d_silu(float z) { return __fdiv_rn(z, __fadd_rn(1.0f, expf(-z))); }
static __device__ __forceinline__ float d_sigm(float z) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-z))); }

/* ---- reductions: fixed xor trees, every lane ends with the same bits ---- */

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum over a block of blockDim.x (multiple of 32, <= 1024) threads; all threads get
 * the result.  red: __shared__ float[33]. */
static __device__ __forceinline__ float block_sum(float v, float *red)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum(v);
	if (lane == 0) red[w] = v;
	__syncthreads();
	if (w == 0) {
		float t = lane < nw ? red[lane] : 0.0f;
		t = warp_sum(t);
		if (lane == 0) red[32] = t;
	}
	__syncthreads();
	float r = red[32];
	__syncthreads();
	return r;
}

static __device__ __forceinline__ float block_max(float v, float *red)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_max(v);
	if (lane == 0) red[w] = v;
	__syncthreads();
	if (w == 0) {
		float t = lane < nw ? red[lane] : -INFINITY;
		t = warp_max(t);
		if (lane == 0) red[32] = t;
	}
	__syncthreads();
	float r = red[32];
	__syncthreads();
	return r;
}

/* ---- ops (one family per file) ---- */

/* embed.cu */
void cu_embed(struct kern *k, float *X, const uint16_t *emb, const int32_t *tok, int S, int D, int M);
void cu_round(struct kern *k, float *x, size_t n, unsigned nm);
void cu_scale(struct kern *k, float *x, size_t n, float c, unsigned nm);
void cu_add_bcast(struct kern *k, float *y, const float *a, const float *b, int S, int M, int n, unsigned nm);
void cu_add_round(struct kern *k, float *y, const float *acc, const float *b, size_t n, unsigned nm);
void cu_fill(struct kern *k, float *dst, float v, size_t n);
/* norm.cu */
void cu_rmsnorm(struct kern *k, float *y, const float *x, const uint16_t *w, int rows, int n, float eps, unsigned nm);
void cu_head_rms(struct kern *k, float *q, int rows, int n, float eps, unsigned nm);
/* rope.cu */
void cu_rope(struct kern *k, float *x, int rows, int ld, int nh, int hstride, int off, int dr,
	     const float *freq, int pos0, int pos_step, int inverse, unsigned nm);
/* quant.cu */
void cu_qdq8(struct kern *k, float *x, int rows, int ld, int len, int block, unsigned nm);
void cu_qdq4(struct kern *k, float *x, int rows, int ld, int len, unsigned nm);
void cu_hadamard(struct kern *k, float *x, int rows, int n, unsigned nm);
/* gemm_fp8.cu / gemm_dense.cu */
void cu_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W, int S, unsigned nm);
void cu_gemm_fp8_grouped(struct kern *k, float *y, const float *x, const struct kern_fp8w *W, int G, int S, unsigned nm);
void cu_gemm_bf16(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K, int S, unsigned nm);
void cu_gemm_f32(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K, int S);
/* hc.cu */
void cu_hc_pre(struct kern *k, float *y, float *post, float *comb, const float *X, const float *fn,
	       const float *scale, const float *base, int S, int M, int D, int iters, float eps_n,
	       float eps_h, unsigned nm);
void cu_hc_post(struct kern *k, float *Xo, const float *f, const float *R, const float *post,
		const float *comb, int S, int M, int D, unsigned nm);
void cu_hc_head(struct kern *k, float *y, const float *X, const float *fn, const float *scale,
		const float *base, int S, int M, int D, float eps_n, float eps_h, unsigned nm);
/* compressor.cu */
void cu_compress(struct kern *k, float *u, float *Kst, float *Gst, const float *kt, const float *gt,
		 const float *ape, int S, int p0, int r, int d);
/* indexer.cu */
void cu_idx_score(struct kern *k, float *sc, int ld_sc, const float *q, const float *w, const void *ic,
		  int n, int S, int HI, int dI, unsigned nm);
void cu_topk(struct kern *k, int32_t *idx, int ld_idx, const float *sc, int ld_sc, int S, int n,
	     int p0, int r, int kmax, int width, int offset);
/* attention.cu */
void cu_kv_store(struct kern *k, void *dst, const float *src, size_t n, unsigned nm);
void cu_attn(struct kern *k, float *o, const float *q, const struct kern_kv *kv, const int32_t *idx,
	     int n_idx, const float *sink, int S, int H, int dh, float tau, unsigned nm);
/* moe.cu */
void cu_route(struct kern *k, int32_t *ids, float *w, const float *logits, const float *bias, int S,
	      int E, int topk, float gamma);
void cu_moe_expert(struct kern *k, float *acc, const float *x, const struct kern_expert *ex,
		   const int32_t *slots, int n, const float *wt, int topk, float limit, unsigned nm);
void cu_swiglu(struct kern *k, float *h, const float *g, const float *u, int rows, int n, unsigned nm);
/* sample.cu */
int cu_sample_reserve(struct kern *k, int max_vocab);
void cu_sample(struct kern *k, int32_t *id_h, const float *logits, int V, const int32_t *mask, int n_mask,
	       int v_valid, const struct kern_sample *p);
void cu_sample_free(struct cu_impl *c);

/* ---- cuBLASLt block-scaled FP8 GEMM (gemm_lt.cu; diagnostic NVMOE_CUDA_GEMM=lt) ----
 * cu_lt_gemm_fp8: 1 when it computed the gemm_fp8 call, 0 when the call must take the
 * own kernel (lt off or unavailable, shape/mode/alignment outside kernels/cuda/lt.h's
 * rules, no algorithm).  cu_lt_setup: (re)size its state to the reserve()d workspace;
 * 0 or negative errno (-ENOTSUP: not a Hopper device / cuBLASLt too old).
 * cu_lt_forget: drop cached weight scales read from [p, p+bytes) (freed or
 * overwritten device memory).  cu_lt_destroy frees everything (NULL state ok). */
int cu_lt_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W, int S,
		   unsigned nm);
int cu_lt_setup(struct kern *k, char *why, size_t why_n);
void cu_lt_forget(struct kern *k, const void *p, size_t bytes);
void cu_lt_destroy(struct kern *k);
long cu_lt_calls(struct kern *k);
size_t cu_lt_bytes(struct kern *k); /* device memory it holds (kern_cuda_mem_used) */

/* ---- the GEMM engine (gemm_engine.cu) ----
 * y = x · Wᵀ in chunks of at most CU_ROWS rows.  cu_stage() copies a chunk's
 * activation rows into bf16 planes: with qnt act_quant(128) (decoded E4M3 values, exact
 * in bf16, plus the block scales), else an exact split of each f32 value into np bf16
 * planes (hi + mid + lo; np = 1 only when the rows hold bf16 values).  Then
 * cu_gemm_chunk() runs the tensor-core kernel (bf16 MMA, f32 accumulate: E4M3 and
 * E2M1 weights are exact in bf16, so every product is exact and the block structure
 * of MODEL.md §7.2/§7.3 is kept with per-block partial sums), or the reference kernel
 * (gemm_ref: one thread per output, the CPU's order, bit-identical to kernels/cpu).
 * The K loop, its split over warps and the reduction order depend only on K, never on
 * the row count: row independence (kern.h).
 *
 * Source row of chunk row i: rowmap ? rowmap[r0+i] / topk : r0 + i.
 * Output: acc == NULL: y[(yrow0 + i)*ldy + g*N + n] = rnd(v) with yrow0 = r0, or 0
 * when ylocal; else acc[(rowmap[r0+i]/topk)*ldacc + n] += rnd(v).
 * G > 1: group g multiplies x columns [g*K, (g+1)*K) with weight rows [g*N, (g+1)*N). */
struct cu_gdesc {
	int kind;
	const void *w;
	const uint8_t *s;
	int N, K, G;
	int qnt, np;
	float *y;
	int ldy, ylocal, rnd;
	float *acc;
	int ldacc;
	const int32_t *rowmap;
	int topk;
};
void cu_stage(struct kern *k, const float *x, int ldx, const int32_t *rowmap, int topk, int r0, int n,
	      int K, int G, int qnt, int np);
void cu_gemm_chunk(struct kern *k, const struct cu_gdesc *d, int r0, int n);
/* Stage + compute over all S rows (rowmap NULL). */
void cu_gemm_rows(struct kern *k, const struct cu_gdesc *d, const float *x, int ldx, int S);
/* Padded per-group row length of the staged planes. */
static inline int cu_kp(int K) { return (K + 31) / 32 * 32; }

#endif
