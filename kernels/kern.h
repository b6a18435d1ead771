/* kernels/kern.h - the kernel table: every operation the forward pass performs on
 * activations and state (MODEL.md §4-§11), behind one struct of function pointers.
 *
 * Contract
 *   Backends.  A backend (kern_cpu_create(); later a CUDA one) fills a struct kern.
 *   The forward pass in core/ is written once against this table and never reads
 *   or writes activation/state memory itself.
 *
 *   Memory.  Three kinds of pointer appear below:
 *     - backend memory ("B"): from k->alloc(), or a weight made available with
 *       k->wmap().  core/ may do pointer ARITHMETIC on it (row s of a [S, n] buffer
 *       is buf + s*n) but never dereferences it; it moves bytes with upload /
 *       download / copy.  On the CPU backend B memory is ordinary host memory.
 *     - host memory ("H"): small arrays the caller owns (token ids, descriptors).
 *     - descriptor structs (kern_fp8w, kern_fp4w, kern_expert, kern_kv) live in host
 *       memory; the pointers inside them are B memory.
 *   alloc() returns zeroed B memory (NULL on failure); free() accepts NULL.
 *   wmap() makes a read-only weight available to the backend: the CPU backend
 *   returns the host pointer itself (zero copy, e.g. into the mmapped checkpoint);
 *   a GPU backend uploads it once.  Weights stay valid until destroy().
 *   Transfers are synchronous: after download() returns, the host bytes are valid.
 *
 *   Activations are float32 arrays, row-major, one row per token.  In the faithful
 *   mode they hold bf16 values (rounded at the points of MODEL.md §10.5); in the
 *   other modes unrounded f32.  Shapes are given as [rows, cols]; `ld` arguments are
 *   row strides in elements.  Outputs never alias inputs unless stated ("in place").
 *
 *   Numeric mode.  Every op that has a rounding point or a quantisation step takes
 *   `nm`, a set of flags:
 *     KERN_RND  round to bf16 (RNE) at the points of MODEL.md §10.5 that the op
 *               owns, and do the per-head q norm in bf16 arithmetic (§8.1);
 *     KERN_QNT  activation quantisation: act_quant(128) before FP8/FP4 GEMMs,
 *               the KV FP8 simulation (qdq8) and the indexer FP4 simulation (qdq4).
 *   faithful = RND|QNT, exact = QNT (golden `exact`), smooth = 0 (golden `smooth`).
 *     KERN_KV16 (only in the `nm` of kv_store, idx_score and attn): the KV
 *               caches - window rings, compressed caches, indexer caches - hold
 *               bf16 (uint16 bit patterns, MODEL.md §13.1) instead of f32.  core
 *               sets it exactly when the model runs with RND: every value it
 *               stores is then already a bf16 value, so the narrow layout is
 *               lossless and results are bitwise those of the f32 layout.  The
 *               element type of a cache is fixed when its memory is allocated;
 *               "cache rows" below have head_dim (or d_I) elements of that type.
 *   Without QNT an FP8/FP4 GEMM multiplies the activation itself with the
 *   dequantised weights.  F32 GEMMs (gate, compressor, head) never round.
 *   The attention softmax is always processed in 64-entry blocks in list order
 *   (§8.8); with RND the probabilities are rounded to bf16 before P·V.
 *
 *   Row independence.  Every op computes each row (token) with the same arithmetic
 *   in the same order whatever the number of rows in the call, so a token's result
 *   does not depend on chunking or batching (bitwise on one backend).
 *
 *   Scratch.  reserve(k, rows, width) must be called (by core, once at set-up) with
 *   rows >= the largest row count of any later call (S, S*M, S*H ...) and width >=
 *   the largest K or N of any GEMM and the largest row length of any op; ops then
 *   never allocate.  Ops return nothing and cannot fail (inputs are trusted:
 *   core validated shapes when binding the model).
 *
 *   Threads.  One thread drives a struct kern at a time; a backend may use worker
 *   threads internally.
 */
#ifndef NV_KERN_H
#define NV_KERN_H

#include <stddef.h>
#include <stdint.h>

enum { KERN_RND = 1, KERN_QNT = 2, KERN_KV16 = 4 };

/* FP8 linear [n, k]: w E4M3 [n, k], s E8M0 [ceil(n/128), ceil(k/128)] (B memory). */
struct kern_fp8w {
	const uint8_t *w, *s;
	int n, k;
};

/* FP4 linear [n, k]: w packed E2M1 [n, k/2] (even k in the low nibble),
 * s E8M0 [n, k/32] (B memory). */
struct kern_fp4w {
	const uint8_t *w, *s;
	int n, k;
};

/* One routed expert: w1, w3 [F, D], w2 [D, F]. */
struct kern_expert {
	struct kern_fp4w w1, w3, w2;
};

/* The KV array of one attention call (§8.7): list entry j < n_win addresses
 * win[j], n_win <= j < n_win + n_cmp addresses cmp[j - n_win]; -1 = masked.
 * Rows have head_dim elements: bf16 (uint16) when the call's nm has KERN_KV16,
 * else float. */
struct kern_kv {
	const void *win;
	int n_win;
	const void *cmp;
	int n_cmp;
};

/* Sampling parameters of sample() (MODEL.md §12).  u in [0, 1) is the caller's
 * uniform draw (core keeps the generator, so every backend gets the same u). */
struct kern_sample {
	float temperature;   /* 0 = greedy */
	float top_p;         /* (0, 1]; 1 = off */
	int top_k;           /* 0 = off; 1 = greedy */
	double u;            /* unused when greedy */
};

struct kern {
	const char *name;
	void *impl; /* backend private */

	/* ---- memory ---- */
	void *(*alloc)(struct kern *k, size_t bytes);
	void (*free)(struct kern *k, void *p);
	void (*upload)(struct kern *k, void *dst_b, const void *src_h, size_t bytes);
	void (*download)(struct kern *k, void *dst_h, const void *src_b, size_t bytes);
	void (*copy)(struct kern *k, void *dst_b, const void *src_b, size_t bytes);
	/* dst[i] = v for i < n (B). */
	void (*fill)(struct kern *k, float *dst, float v, size_t n);
	const void *(*wmap)(struct kern *k, const void *host, size_t bytes);
	int (*reserve)(struct kern *k, int max_rows, int max_width); /* 0 or -ENOMEM */
	void (*destroy)(struct kern *k);

	/* ---- embedding, elementwise ---- */
	/* X[s, j, :] = f32(emb[tok[s], :]) for j < M.  X [S, M*D]; emb bf16 [V, D] (B,
	 * from wmap); tok [S] (H). */
	void (*embed)(struct kern *k, float *X, const uint16_t *emb, const int32_t *tok,
		      int S, int D, int M);
	/* x[i] = bf16(x[i]) with RND, else nothing.  In place, [n]. */
	void (*round)(struct kern *k, float *x, size_t n, unsigned nm);
	/* x[i] = rnd(x[i] * c).  In place, [n]. */
	void (*scale)(struct kern *k, float *x, size_t n, float c, unsigned nm);
	/* y[s, j, :] = rnd(a[s, j, :] + b[s, :]); y, a [S, M*n], b [S, n]; y may be a. */
	void (*add_bcast)(struct kern *k, float *y, const float *a, const float *b,
			  int S, int M, int n, unsigned nm);

	/* ---- norms (§6, §8.1) ---- */
	/* y[r] = rnd(w ⊙ (x[r] · 1/sqrt(mean(x[r]²) + eps))), rows of n; w bf16 [n].
	 * y may be x. */
	void (*rmsnorm)(struct kern *k, float *y, const float *x, const uint16_t *w,
			int rows, int n, float eps, unsigned nm);
	/* Per-head q normalisation without weight (§8.1), in place on rows of n. With
	 * RND every step is rounded to bf16 as the spec writes it. */
	void (*head_rms)(struct kern *k, float *q, int rows, int n, float eps, unsigned nm);

	/* ---- RoPE (§8.3) ---- */
	/* For row s (position pos0 + s*pos_step) and head h < nh, rotate the pairs of
	 * x[s*ld + h*hstride + off + (0 .. dr)] by θ_i = f32(p·freq[i]) (cos/sin
	 * correctly rounded f32); inverse = multiply by the conjugate.  Each output
	 * element rnd().  freq [dr/2] (B). */
	void (*rope)(struct kern *k, float *x, int rows, int ld, int nh, int hstride,
		     int off, int dr, const float *freq, int pos0, int pos_step, int inverse,
		     unsigned nm);

	/* ---- quantisation simulations (§10.1, §10.2, §10.6) ---- */
	/* QDQ8 of x[r*ld + 0 .. len) in blocks of `block`, only with QNT. */
	void (*qdq8)(struct kern *k, float *x, int rows, int ld, int len, int block,
		     unsigned nm);
	/* QDQ4 of x[r*ld + 0 .. len) in blocks of 32, only with QNT. */
	void (*qdq4)(struct kern *k, float *x, int rows, int ld, int len, unsigned nm);
	/* Hadamard rotation of each row of n (power of two), in place; output rnd(). */
	void (*hadamard)(struct kern *k, float *x, int rows, int n, unsigned nm);

	/* ---- linear layers (§7) ---- */
	/* y[s, 0..W->n) = rnd( x[s, 0..W->k) · Wᵀ ), FP8 GEMM: with QNT the row is
	 * act_quant(128)-ed and per-block partial sums are scaled by sa·sw (§7.2). */
	void (*gemm_fp8)(struct kern *k, float *y, int ldy, const float *x, int ldx,
			 const struct kern_fp8w *W, int S, unsigned nm);
	/* Grouped wo_a (§8.9): W [G*R, Kg] FP8 used as exact bf16 values, no act_quant.
	 * y[s, g*R + r] = rnd( Σ_k x[s, g*Kg + k] · W[g*R + r, k] ).  y [S, G*R],
	 * x [S, G*Kg]. */
	void (*gemm_fp8_grouped)(struct kern *k, float *y, const float *x,
				 const struct kern_fp8w *W, int G, int S, unsigned nm);
	/* y[s, 0..N) = rnd( x[s] · wᵀ ), w bf16 [N, K] (§7.4). */
	void (*gemm_bf16)(struct kern *k, float *y, int ldy, const float *x, int ldx,
			  const uint16_t *w, int N, int K, int S, unsigned nm);
	/* y[s, 0..N) = x[s] · f32(w)ᵀ, f32 output, never rounded (§7.1 "F32"). */
	void (*gemm_f32)(struct kern *k, float *y, int ldy, const float *x, int ldx,
			 const uint16_t *w, int N, int K, int S);

	/* ---- hyper-connections (§5) ---- */
	/* hc_pre with Sinkhorn: X [S, M*D] -> y [S, D] (rnd), post [S, M], comb [S, M*M]
	 * (f32, comb[j*M + k] mixes input copy j into output copy k).  fn [(2+M)*M, M*D],
	 * scale [3], base [(2+M)*M] (B, f32 weights). */
	void (*hc_pre)(struct kern *k, float *y, float *post, float *comb, const float *X,
		       const float *fn, const float *scale, const float *base, int S, int M,
		       int D, int iters, float eps_n, float eps_h, unsigned nm);
	/* Xo[s, k] = rnd( post[s,k]·f[s] + Σ_j comb[s, j*M+k]·R[s, j] ); Xo, R [S, M*D],
	 * f [S, D].  Xo must not alias R. */
	void (*hc_post)(struct kern *k, float *Xo, const float *f, const float *R,
			const float *post, const float *comb, int S, int M, int D, unsigned nm);
	/* hc_head (§5.4): y [S, D] (rnd) from X [S, M*D]; fn [M, M*D], scale [1], base [M]. */
	void (*hc_head)(struct kern *k, float *y, const float *X, const float *fn,
			const float *scale, const float *base, int S, int M, int D,
			float eps_n, float eps_h, unsigned nm);

	/* ---- compressor (§8.5) ---- */
	/* Streams the S tokens at positions p0 .. p0+S-1 through a compressor of ratio
	 * r (4: overlapping, c = 2; otherwise c = 1) and head size d.  kt, gt [S, c*d]
	 * are the f32 projections (gt WITHOUT ape; the op adds ape[p mod r], ape
	 * [r, c*d]).  State Kst, Gst [c*r, c*d] (§8.5.4; reset: K = 0, G = -inf).
	 * Every window w completed inside the call (floor(p0/r) <= w <
	 * floor((p0+S)/r)) is pooled (§8.5.2) into u[(w - floor(p0/r))*d .. +d) (f32,
	 * not rounded); afterwards the state equals what token-by-token streaming leaves. */
	void (*compress)(struct kern *k, float *u, float *Kst, float *Gst, const float *kt,
			 const float *gt, const float *ape, int S, int p0, int r, int d);

	/* ---- KV caches ---- */
	/* dst[i] = src[i] for i < n into cache memory: with KV16 dst is uint16 and
	 * gets bf16(src[i]) (RNE; exact for the bf16 values core stores), else dst is
	 * float and gets the bits of src[i].  dst (cache rows) and src (f32) are B. */
	void (*kv_store)(struct kern *k, void *dst, const float *src, size_t n, unsigned nm);

	/* ---- indexer (§8.6) ---- */
	/* sc[s*ld_sc + t] = rnd( Σ_h rnd( max(rnd(q[s,h]·ic[t]), 0) · w[s, h] ) ) for
	 * t < n.  q [S, HI*dI], w [S, HI], ic [n, dI] cache rows (bf16 with KV16, else
	 * f32; the arithmetic is the same on the widened values). */
	void (*idx_score)(struct kern *k, float *sc, int ld_sc, const float *q, const float *w,
			  const void *ic, int n, int S, int HI, int dI, unsigned nm);
	/* Top-k per row (§8.6, §10.7): row s sees t < nv = min(n, floor((p0+s+1)/r));
	 * kk = min(kmax, nv) entries of largest sc, descending, ties to the lower t;
	 * idx[s*ld_idx + j] = sel_j + offset for j < kk, -1 for kk <= j < width. */
	void (*topk)(struct kern *k, int32_t *idx, int ld_idx, const float *sc, int ld_sc,
		     int S, int n, int p0, int r, int kmax, int width, int offset);

	/* ---- sparse attention with sink (§8.8) ---- */
	/* o[s, h*dh ..] = attention of q[s, h*dh ..] over the list idx[s*n_idx .. +n_idx)
	 * (entries into kv, -1 masked; the first entry of every list is valid), scale
	 * tau, sink[h] (f32 [H]) in the denominator, 64-entry blocks; output rnd().
	 * kv rows are bf16 with KV16 (widened exactly, same arithmetic), else f32. */
	void (*attn)(struct kern *k, float *o, const float *q, const struct kern_kv *kv,
		     const int32_t *idx, int n_idx, const float *sink, int S, int H, int dh,
		     float tau, unsigned nm);

	/* ---- MoE (§9) ---- */
	/* Routing: a = sqrt(softplus(logits)) [S, E].  bias != NULL (score-routed): ids =
	 * top-k of a + bias, descending, ties to the lower id.  bias == NULL (hash): ids
	 * are given (uploaded by the caller).  w[s, j] = a[ids_j] / Σ a[ids] · gamma.
	 * ids, w [S, topk]. */
	void (*route)(struct kern *k, int32_t *ids, float *w, const float *logits,
		      const float *bias, int S, int E, int topk, float gamma);
	/* One routed expert on a list of rows: for i < n, slot = slots[i] (B), token row
	 * s = slot / topk, weight wt[slot]:  acc[s] += f32(y) with
	 *   g = FP4(w1, x[s]), u = FP4(w3, x[s]) (rnd outputs), clamps with limit > 0,
	 *   h = rnd(wt · silu(g) · u), y = rnd(FP4(w2, h))   (§9.2).
	 * acc [S, D] f32, x [S, D]. */
	void (*moe_expert)(struct kern *k, float *acc, const float *x,
			   const struct kern_expert *ex, const int32_t *slots, int n,
			   const float *wt, int topk, float limit, unsigned nm);
	/* Shared expert activation: h = rnd(silu(g) · u), all [rows, n]. */
	void (*swiglu)(struct kern *k, float *h, const float *g, const float *u, int rows,
		       int n, unsigned nm);
	/* y = rnd(acc + b), [n] (MoE combination: routed sum plus shared expert). */
	void (*add_round)(struct kern *k, float *y, const float *acc, const float *b,
			  size_t n, unsigned nm);

	/* ---- sampling (§12) ---- */
	/* Scratch of sample() for rows of up to max_vocab logits (0 or -ENOMEM).  Like
	 * reserve(): once at set-up (core_model_create does it for the model's
	 * vocabulary); a smaller value later keeps what is there. */
	int (*sample_reserve)(struct kern *k, int max_vocab);
	/* *id_h = the next token from logits [V] (B), downloading nothing but the id.
	 * Masked ids: those in mask [n_mask] (B; ids outside 0..V-1 ignored) and ids
	 * >= v_valid; they, NaN and -inf are "not candidates".  The definition (the CPU
	 * backend computes exactly this, and so does core_sampler_sample() on host
	 * logits with the same u):
	 *   m = the largest candidate logit, best = the lowest id holding it; no
	 *   candidate: *id_h = -1.  temperature 0, top_k 1 or m = +inf: *id_h = best.
	 *   Else x_i = (l_i - m) * inv_t in f32, inv_t = 1 / max(T, 1e-5) (f32), and
	 *   p_i = exp((double)x_i) (p = 0 for non-candidates).  The order "<" ranks by
	 *   x descending, ties by lower id.  S = the top_k first candidates in that
	 *   order (all candidates when top_k is 0 or >= their number); tot = sum of p
	 *   over S in ascending id order (double, sequential).
	 *   top_p = 1: the draw walks S in ascending id order, total = tot.
	 *   top_p < 1: need = (double)top_p * tot; walking S in "<" order with a
	 *   running double sum c_j, the nucleus ends at the first j with c_j >= need;
	 *   total = that c_j; the draw walks the nucleus in "<" order.
	 *   Draw: r = u * total; the answer is the first walked id whose running sum
	 *   (double, sequential, from 0) exceeds r.
	 * Backends may sum in another order (the CUDA one sums per thread chunk, then
	 * a tree) and their double exp may differ in the last bit: ids then differ
	 * only where r or need lies within that rounding (~1e-15 of total) of a
	 * running sum.  Masking, m, best, x, the order and the tie rules are bitwise
	 * the same on every backend.  V <= max_vocab of sample_reserve(). */
	void (*sample)(struct kern *k, int32_t *id_h, const float *logits, int V,
		       const int32_t *mask, int n_mask, int v_valid, const struct kern_sample *p);
};

/* The CPU backend (kernels/cpu/).  Options:
 *   threads  total threads of the backend's persistent pool, the driving thread
 *            included (0 = the number of online cores).  Workers are created once
 *            here and sleep between calls.
 *   isa      inner loops: KERN_CPU_ISA_AUTO picks the best the CPU has - AVX512
 *            (AVX2+FMA loops, FP4 experts and, with VBMI, FP8 GEMMs with AVX-512
 *            BF16 dot products), else
 *            AVX2 (AVX2+FMA), else SCALAR (plain C, the reference arithmetic);
 *            diagnostic override of AUTO: environment NVMOE_CPU_ISA=scalar|avx2|
 *            avx512.  A table the CPU lacks falls back to the next one down;
 *            kern_cpu_isa() tells which runs.
 * Results are bitwise independent of threads and of chunking for a given isa; the
 * isas differ by f32 summation order only (MODEL.md §7.5).  NULL on failure (out of
 * memory, thread creation). */
enum kern_cpu_isa { KERN_CPU_ISA_AUTO = 0, KERN_CPU_ISA_SCALAR, KERN_CPU_ISA_AVX2, KERN_CPU_ISA_AVX512 };
struct kern_cpu_opts {
	int threads;
	enum kern_cpu_isa isa;
};
struct kern *kern_cpu_create_opts(const struct kern_cpu_opts *o);
/* kern_cpu_create_opts with defaults (all cores, auto isa). */
struct kern *kern_cpu_create(void);
/* Of a CPU backend: pool size, and the inner loops in use ("scalar" | "avx2" | "avx512"). */
int kern_cpu_threads(const struct kern *k);
const char *kern_cpu_isa(const struct kern *k);

#endif
