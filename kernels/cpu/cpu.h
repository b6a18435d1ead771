/* kernels/cpu/cpu.h - internal interface of the CPU backend.
 *
 * Each kernels/cpu/<family>.c implements the ops of one family with the signatures
 * of struct kern (kernels/kern.h); cpu.c assembles the table, picks the inner-loop
 * table (isa.h) and owns the worker pool (pool.h).  An op splits its outputs into
 * ranges with cpu_par() and runs the isa's loops on each; only the driving thread
 * calls ops.  Scratch: one arena per backend (cpu_scratch, shared by the tasks of a
 * call, each task writing disjoint parts), plus per-thread scratch (cpu_tscratch,
 * indexed by the task's tid), both sized by reserve().
 */
#ifndef NV_KERN_CPU_H
#define NV_KERN_CPU_H

#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "isa.h"
#include "pool.h"

struct cpu_impl {
	float *scratch;
	size_t scratch_n;           /* floats */
	struct cpu_pool *pool;
	int nthreads;
	const struct cpu_isa *isa;  /* &isa_tab */
	struct cpu_isa isa_tab;
	float *tscr;                /* [nthreads, tscr_n] per-thread scratch */
	size_t tscr_n;              /* floats per thread */
	void *smp;                  /* sample() scratch for smp_v logits (sample.c) */
	int smp_v;
};

static inline float *cpu_scratch(struct kern *k, size_t n_floats)
{
	struct cpu_impl *c = k->impl;
	(void)n_floats; /* sized by reserve(); CHECKed in debug builds */
	return c->scratch;
}

static inline size_t cpu_scratch_size(struct kern *k) { return ((struct cpu_impl *)k->impl)->scratch_n; }

/* Scratch of thread tid (a pool task's tid), tscr_n floats. */
static inline float *cpu_tscratch(struct kern *k, int tid)
{
	struct cpu_impl *c = k->impl;
	return c->tscr + (size_t)tid * c->tscr_n;
}

static inline const struct cpu_isa *cpu_isa(struct kern *k) { return ((struct cpu_impl *)k->impl)->isa; }

/* Runs fn(ctx, a, b, tid) over disjoint ranges [a, b) covering [0, n), cut at
 * multiples of `grain`, on the pool; inline in one piece when `work` (about the
 * number of multiply-adds) is too small to be worth waking the workers. */
typedef void (*cpu_range_fn)(void *ctx, int a, int b, int tid);
void cpu_par(struct kern *k, int n, int grain, double work, cpu_range_fn fn, void *ctx);

static inline float cpu_rnd(float v, unsigned nm) { return (nm & KERN_RND) ? kern_rbf16(v) : v; }

/* FP8 weight element (n, k) dequantised (exact f32). */
static inline float cpu_fp8_scale(const struct kern_fp8w *W, int n, int kb)
{
	int kblocks = (W->k + 127) / 128;
	return kern_e8m0_to_f32(W->s[(size_t)(n / 128) * kblocks + kb]);
}

/* Quantise one activation row of K (multiple of 128 or not: last block partial)
 * into q (decoded E4M3 values) and sa (one scale per 128-block); without QNT q = x,
 * sa = 1.  The isa's actq is bit-exact with kern_act_quant_block. */
static inline void cpu_act_quant_row(const struct cpu_isa *isa, const float *x, int K, float *q, float *sa,
				     unsigned nm)
{
	for (int b = 0, o = 0; o < K; b++, o += 128) {
		int n = K - o < 128 ? K - o : 128;
		if (nm & KERN_QNT) {
			sa[b] = isa->actq(x + o, n, q + o);
		} else {
			for (int i = 0; i < n; i++) q[o + i] = x[o + i];
			sa[b] = 1.0f;
		}
	}
}

void cpu_embed(struct kern *k, float *X, const uint16_t *emb, const int32_t *tok, int S, int D, int M);
void cpu_round(struct kern *k, float *x, size_t n, unsigned nm);
void cpu_scale(struct kern *k, float *x, size_t n, float c, unsigned nm);
void cpu_add_bcast(struct kern *k, float *y, const float *a, const float *b, int S, int M, int n, unsigned nm);
void cpu_rmsnorm(struct kern *k, float *y, const float *x, const uint16_t *w, int rows, int n, float eps, unsigned nm);
void cpu_head_rms(struct kern *k, float *q, int rows, int n, float eps, unsigned nm);
void cpu_rope(struct kern *k, float *x, int rows, int ld, int nh, int hstride, int off, int dr,
	      const float *freq, int pos0, int pos_step, int inverse, unsigned nm);
void cpu_qdq8(struct kern *k, float *x, int rows, int ld, int len, int block, unsigned nm);
void cpu_qdq4(struct kern *k, float *x, int rows, int ld, int len, unsigned nm);
void cpu_hadamard(struct kern *k, float *x, int rows, int n, unsigned nm);
void cpu_gemm_fp8(struct kern *k, float *y, int ldy, const float *x, int ldx, const struct kern_fp8w *W, int S, unsigned nm);
void cpu_gemm_fp8_grouped(struct kern *k, float *y, const float *x, const struct kern_fp8w *W, int G, int S, unsigned nm);
void cpu_gemm_bf16(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K, int S, unsigned nm);
void cpu_gemm_f32(struct kern *k, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K, int S);
void cpu_hc_pre(struct kern *k, float *y, float *post, float *comb, const float *X, const float *fn,
		const float *scale, const float *base, int S, int M, int D, int iters, float eps_n,
		float eps_h, unsigned nm);
void cpu_hc_post(struct kern *k, float *Xo, const float *f, const float *R, const float *post,
		 const float *comb, int S, int M, int D, unsigned nm);
void cpu_hc_head(struct kern *k, float *y, const float *X, const float *fn, const float *scale,
		 const float *base, int S, int M, int D, float eps_n, float eps_h, unsigned nm);
void cpu_compress(struct kern *k, float *u, float *Kst, float *Gst, const float *kt, const float *gt,
		  const float *ape, int S, int p0, int r, int d);
void cpu_kv_store(struct kern *k, void *dst, const float *src, size_t n, unsigned nm);
void cpu_idx_score(struct kern *k, float *sc, int ld_sc, const float *q, const float *w, const void *ic,
		   int n, int S, int HI, int dI, unsigned nm);
void cpu_topk(struct kern *k, int32_t *idx, int ld_idx, const float *sc, int ld_sc, int S, int n,
	      int p0, int r, int kmax, int width, int offset);
void cpu_attn(struct kern *k, float *o, const float *q, const struct kern_kv *kv, const int32_t *idx,
	      int n_idx, const float *sink, int S, int H, int dh, float tau, unsigned nm);
void cpu_route(struct kern *k, int32_t *ids, float *w, const float *logits, const float *bias, int S,
	       int E, int topk, float gamma);
void cpu_moe_expert(struct kern *k, float *acc, const float *x, const struct kern_expert *ex,
		    const int32_t *slots, int n, const float *wt, int topk, float limit, unsigned nm);
void cpu_swiglu(struct kern *k, float *h, const float *g, const float *u, int rows, int n, unsigned nm);
void cpu_add_round(struct kern *k, float *y, const float *acc, const float *b, size_t n, unsigned nm);
int cpu_sample_reserve(struct kern *k, int max_vocab);
void cpu_sample(struct kern *k, int32_t *id_h, const float *logits, int V, const int32_t *mask, int n_mask,
		int v_valid, const struct kern_sample *p);

/* q [S, K], sa [S, ceil(K/128)] from x rows: cpu_act_quant_row on the pool. */
void cpu_quant_rows(struct kern *k, float *q, float *sa, const float *x, int ldx, int K, int S, unsigned nm);

#endif
