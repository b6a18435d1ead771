/* core/expert_src.h - how the forward pass obtains routed experts.
 *
 * Contract
 *   core/ never includes offload/ or cache/ (DESIGN.md §5): the forward pass asks an
 *   expert source for the bytes of expert e of block b.  A fully resident model
 *   (views into the mmapped checkpoint) is the simplest source; offload/ implements
 *   the cached, streamed one.
 *
 *   acquire() returns a borrowed view, valid until the matching release(); the
 *   source must not evict or move it meanwhile.  It may block until the bytes
 *   arrive and returns a negative error (filling *e with block, expert, file and
 *   offset) on I/O or checksum failure; the forward pass then fails the step.
 *   hint() announces experts that will be acquired soon (prefetch); it never blocks,
 *   never fails the step and may be ignored.  `priority` 0 = demand-imminent,
 *   larger = more speculative.
 *   Batch acquisition (optional, for the pipeline of DESIGN.md §3): begin() names
 *   the n distinct experts a block needs now (ascending ids) so the source can look
 *   them all up and start every missing read at once; next() then hands them out
 *   one at a time - want = -1: whichever is ready first (arrival order), else that
 *   expert id - each a view until its release(); end() gives back the experts of
 *   the batch not handed out (always called, also after an error).  The numerics do
 *   not depend on the order (core/moe.c sums in id order).
 *   routed() (optional) reports every token's selection ids [S, k] (selection order)
 *   for block, positions p0 .. p0+S-1, before its experts are acquired.
 *   lookahead: how many blocks ahead the forward pass should predict with the gates
 *   of later blocks applied to the current hidden state (0 = none); predictions
 *   arrive as hint(block + d, ids, n, priority = d).
 *   Threads: every call comes from the forward pass's thread only; a source does
 *   its own I/O on threads of its own.
 */
#ifndef NV_CORE_EXPERT_SRC_H
#define NV_CORE_EXPERT_SRC_H

#include <stdint.h>
#include "err.h"

/* The bytes of one routed expert, in the checkpoint's layout (CHECKPOINT.md §5):
 * w1, w3: packed E2M1 [F, D/2] + E8M0 scales [F, D/32]; w2: [D, F/2] + [D, F/32]. */
struct core_expert_view {
	const uint8_t *w1, *w1_scale;
	const uint8_t *w3, *w3_scale;
	const uint8_t *w2, *w2_scale;
};

struct core_expert_src {
	void *ctx;
	int (*acquire)(void *ctx, int block, int expert, struct core_expert_view *out,
		       struct nv_err *e);
	void (*release)(void *ctx, int block, int expert);
	/* Optional (may be NULL). */
	void (*hint)(void *ctx, int block, const int *experts, int n, int priority);
	/* Optional: called once per token position when the token id is known
	 * (hash-exact prefetch); may be NULL. */
	void (*token_known)(void *ctx, int pos, int token);
	/* Optional batch acquisition (see the contract); all three or none. */
	int (*acquire_begin)(void *ctx, int block, const int *experts, int n, struct nv_err *e);
	int (*acquire_next)(void *ctx, int block, int want, int *got, struct core_expert_view *out,
			    struct nv_err *e);
	void (*acquire_end)(void *ctx, int block);
	/* Optional: ids [S, k] host, valid during the call. */
	void (*routed)(void *ctx, int block, int p0, int S, int k, const int32_t *ids);
	int lookahead; /* router lookahead depth in blocks, 0 = none */
	/* Optional: a layer-major call (core/model.h) begins (layer_major = 1) or ends
	 * (0).  In between, token_known() reports every token of the call at once,
	 * before any block runs, so a source should not read ahead for all hash layers
	 * from it; the forward pass hints the next chunk's experts of the current
	 * block itself (hint(block, ids, n, 1), exact for hash-routed blocks), and no
	 * router lookahead is made. */
	void (*order)(void *ctx, int layer_major);
};

#endif
