/* core/model.h - the model: weights bound to a kernel backend, per-sequence state,
 * and the one forward pass of MODEL.md §4-§11.
 *
 * Contract
 *   core_model_create() binds the tensors of an open checkpoint (core/ckpt.h) to a
 *   kernel backend (kernels/kern.h): FP8 weights stay E4M3 + E8M0 as stored (wo_a is
 *   used as exact bf16 values by its kernel), bf16/f32 tensors are used as stored,
 *   routed experts are only reached through a struct core_expert_src (NULL in the
 *   options = resident views into the mmapped checkpoint).  It allocates every
 *   workspace once from opts.max_chunk; nothing is allocated per token.
 *   The checkpoint, the backend and the expert source are borrowed: they must
 *   outlive the model.
 *
 *   A struct core_seq is the state of one sequence (window rings, compressed caches,
 *   compressor and indexer states, MTP block state) for up to `ctx` positions.
 *   core_forward() with p0 == 0 starts a new sequence (state reset, MODEL.md
 *   §8.5.4); with p0 > 0 it continues and p0 must equal core_seq_pos().  Any S >= 1
 *   is accepted: the call is cut into chunks of at most the model's chunk size and
 *   every token gets the per-token (decode) semantics of §8.4-§8.7 - same window,
 *   compressor emission schedule and indexer visibility - so logits do not depend on
 *   the chunking (bitwise on the CPU backend).  Attention index lists follow the
 *   decode convention for every token (window part of width W padded with -1,
 *   then the compressed part); for lists longer than 64 entries this can differ
 *   from the reference's prefill padding by bf16 roundings in the faithful mode.
 *
 *   Numeric modes: CORE_NUM_FAITHFUL (bf16 rounding points of §10.5 + activation
 *   quantisation), CORE_NUM_EXACT (quantisation, no bf16 rounding: golden `exact`),
 *   CORE_NUM_SMOOTH (neither: golden `smooth`).
 *
 *   Order of a multi-chunk call (DESIGN.md §4).  Chunk-major (default): each chunk
 *   passes every block, then the head (and MTP), then the next chunk.  Layer-major
 *   (core_fwd_io.layer_major): every chunk passes block 0, then every chunk block 1,
 *   ..., then the MTP block and the head chunk by chunk, with the same chunk
 *   boundaries.  Each block's state (ring, caches, compressor and indexer states)
 *   only depends on that block's own inputs and rows are independent, so the logits
 *   and MTP logits are bitwise those of the chunk-major order; what changes is that
 *   a block's routed experts are acquired chunk after chunk, so a source holding
 *   one layer's experts reads each at most once per call.  The hidden streams of
 *   the whole call, S x hc_mult x hidden_size f32, are kept in host memory
 *   (allocated per call; the error names the size when that fails) and moved to and
 *   from the backend per chunk and block through the kernel table.  In this order
 *   the forward pass announces the order to the source (core_expert_src.order),
 *   reports every token of the call through token_known() before the first block,
 *   replaces the router lookahead (which would predict blocks a whole document
 *   away) by exact hints for the hash-routed blocks: after routing chunk c of block
 *   b, hint(b, experts of chunk c+1, priority 1), and at the last chunk the next
 *   block's first chunk when that block is hash-routed.  A call that fits in one
 *   chunk is run chunk-major.  A failed or stopped layer-major call leaves the
 *   sequence reset (position 0): its blocks would be at different positions.
 *
 *   Hooks (for checking) receive host copies, valid during the call only; they
 *   cost downloads, so leave them NULL in production.  They are called in the
 *   order of the call: block by block (each block's chunks in order) when
 *   layer-major; their arguments (block, p0, S) are the same in both orders.
 *
 *   Errors: create fails on missing tensors or allocation failure; forward fails on
 *   bad arguments (p0, S, token ids, ctx exceeded) and expert-source errors, with
 *   *e filled.  Threads: one thread drives a model and its sequences at a time.
 */
#ifndef NV_CORE_MODEL_H
#define NV_CORE_MODEL_H

#include <signal.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "expert_src.h"
#include "kernels/kern.h"

enum core_numeric { CORE_NUM_FAITHFUL = 0, CORE_NUM_EXACT, CORE_NUM_SMOOTH };

/* "faithful" | "exact" | "smooth" -> 0, or NV_EINVAL. */
int core_numeric_parse(const char *s, enum core_numeric *out);
const char *core_numeric_name(enum core_numeric n);

struct core_model_opts {
	enum core_numeric numeric;
	int max_chunk;                         /* tokens per chunk (workspace rows); 0 = 64 */
	const struct core_expert_src *experts; /* NULL = resident */
};

/* Checking hooks.  block: index (MTP = num_hidden_layers); rows are positions
 * p0 .. p0+S-1 of the chunk being processed. */
struct core_hooks {
	void *ctx;
	/* residual stream after block `block`: X [S, M, D] */
	void (*block_out)(void *ctx, int block, int p0, int S, const float *X);
	/* routed experts of `block`: ids, w [S, k] (ids in selection order) */
	void (*route)(void *ctx, int block, int p0, int S, int k, const int32_t *ids,
		      const float *w);
	/* indexer selection of a ratio-4 block: sel [S, width] compressed entry
	 * numbers in descending score order, -1 padded */
	void (*index_sel)(void *ctx, int block, int p0, int S, int width, const int32_t *sel);
};

struct core_model;
struct core_seq;

int core_model_create(const struct core_ckpt *ck, struct kern *k, const struct core_model_opts *o,
		      struct core_model **out, struct nv_err *e);
void core_model_destroy(struct core_model *m);
const struct core_config *core_model_config(const struct core_model *m);
/* Chunk size for later calls, 1 .. max_chunk. */
int core_model_set_chunk(struct core_model *m, int chunk, struct nv_err *e);
/* Install (h != NULL) or remove hooks; allocates host copies once. */
int core_model_set_hooks(struct core_model *m, const struct core_hooks *h, struct nv_err *e);

int core_seq_create(struct core_model *m, int ctx, struct core_seq **out, struct nv_err *e);
void core_seq_destroy(struct core_seq *sq);
void core_seq_reset(struct core_seq *sq);
int core_seq_pos(const struct core_seq *sq); /* next position of the main model */
/* Bytes of a sequence's attention state as allocated (MODEL.md §13.1 layout): per
 * block the ring (W slots + max_chunk rows for the chunk being processed), the
 * compressed caches (ctx/r + 1 entries; indexer ctx/4 + 1) and the f32 compressor
 * states.  Cache elements are bf16 in the faithful mode (every stored value is a
 * bf16 value, so this is lossless) and f32 in exact/smooth.  *cache_bytes (may be
 * NULL) gets the ring + cache part alone.  Index lists and scores are not counted. */
size_t core_seq_state_bytes(const struct core_seq *sq, size_t *cache_bytes);
/* 2 (bf16 caches) or 4 (f32). */
size_t core_model_kv_elem_bytes(const struct core_model *m);

/* Marks: going back to an earlier position of a sequence (the REPL's next turn
 * re-renders an earlier answer differently, e.g. without its reasoning, so the new
 * prompt shares only a prefix with what the sequence has seen).  Compressed and
 * indexer caches are append-only by position (entry w is written once window w is
 * complete and never changes afterwards), so a mark saves only what later positions
 * overwrite: every block's window ring and compressor / indexer states, and the
 * positions.  That is a few tens of MB for the released model at any context, not
 * the whole state.  A mark holds backend memory allocated once at create.
 *   save:   the mark now describes sq at its current position.
 *   rewind: sq goes back to the mark's position; the results of later calls are
 *           bitwise those of a sequence that never went past it.  Valid only while
 *           sq has not been reset (p0 == 0) or rewound to another mark since the
 *           save, and sq is at or past the mark: otherwise NV_EINVAL and sq is
 *           unchanged.  After a rewind the mark stays valid (sq is exactly at it);
 *           every other mark of sq becomes stale.
 * With MTP, the MTP block's state at p was computed with mtp_tok of position
 * p-1, i.e. the token at p: a continuation after a rewind must keep that token.
 * A mark belongs to one sequence; destroy it before the sequence. */
struct core_seq_mark;
int core_seq_mark_create(struct core_seq *sq, struct core_seq_mark **out, struct nv_err *e);
void core_seq_mark_destroy(struct core_seq_mark *mk);
void core_seq_mark_save(struct core_seq_mark *mk);
/* The saved position, -1 when never saved or stale. */
int core_seq_mark_pos(const struct core_seq_mark *mk);
int core_seq_rewind(struct core_seq_mark *mk, struct nv_err *e);

/* Outputs of one forward call (host memory, owned by the caller). */
struct core_fwd_io {
	float *logits;          /* [S, V] when logits_all, else [V] (position p0+S-1); NULL = none */
	int logits_all;
	/* 1: the logits of position p0+S-1 also stay in backend memory, readable with
	 * core_model_logits_b() (sampling on the backend: nothing is downloaded when
	 * logits is NULL).  Not with mtp_logits (its head reuses that memory). */
	int logits_keep;
	/* With logits_all: instead of filling logits (then unused), hand the rows over as
	 * they are computed: sink(sink_ctx, s, n, rows [n, V] host, valid during the
	 * call) for call rows s .. s+n-1, in increasing order (n <= 16).  A nonzero
	 * return stops the call with that status (*e names the sink).  NULL = none. */
	int (*logits_sink)(void *sink_ctx, int s, int n, const float *rows);
	void *sink_ctx;
	/* MTP (§11): mtp_tok[s] = the id of the token at position p0+s+1; the MTP block
	 * runs over the same positions right after the main blocks.  NULL = no MTP.
	 * The MTP state must be fed at every position (its own next position must be
	 * p0, or p0 == 0). */
	const int32_t *mtp_tok;
	float *mtp_logits;      /* [S, V] when mtp_all, else [V]; NULL = none */
	int mtp_all;
	int layer_major;        /* 1 = layer-major order (see the contract); 0 = chunk-major */
	/* Optional: read before every chunk; nonzero stops the call with NV_ECANCELED
	 * (chunk-major: the sequence ends after the last whole chunk; layer-major: it
	 * is reset).  E.g. a flag set by a SIGINT handler.  NULL = never. */
	const volatile sig_atomic_t *stop;
	/* Optional: told after every chunk of work, done of total units (chunk-major: a
	 * unit is a token; layer-major: a token through one block, MTP included), done
	 * increasing to total.  For progress displays; it cannot fail.  NULL = none. */
	void (*progress)(void *progress_ctx, long done, long total);
	void *progress_ctx;
};

/* Run tokens tok[0..S) at positions p0 .. p0+S-1 (see the contract). */
int core_forward(struct core_model *m, struct core_seq *sq, const int32_t *tok, int S, int p0,
		 const struct core_fwd_io *io, struct nv_err *e);
/* The [V] logits row (backend memory) of the last position of the last
 * core_forward() call with io.logits_keep; valid until the next forward call on the
 * model; NULL when the last call did not keep one. */
const float *core_model_logits_b(const struct core_model *m);

/* Run ONE main block on a supplied input stream (layer-isolated checks): X_in, X_out
 * [S, M, D] host; tok [S] (hash routing).  Uses and advances that block's state in sq
 * with the same p0 rules as core_forward (p0 == 0 resets the whole sequence). */
int core_block_forward(struct core_model *m, struct core_seq *sq, int block, const float *X_in,
		       const int32_t *tok, int S, int p0, float *X_out, struct nv_err *e);

/* The f32 RoPE frequency table of §8.3 (d_r/2 entries): yarn = 0 for ratio-0 blocks
 * (rope_theta), 1 for ratio-4/128 blocks (compress_rope_theta + YaRN). */
void core_rope_freqs(const struct core_config *c, int yarn, float *w);

/* The resident expert source: views into the checkpoint's mmapped shards, made
 * available to backend k with wmap().  Borrowed by the model; destroy after it. */
int core_expert_src_resident(const struct core_ckpt *ck, struct kern *k, struct core_expert_src **out,
			     struct nv_err *e);
void core_expert_src_resident_destroy(struct core_expert_src *src);

#endif
