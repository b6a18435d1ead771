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
 *   Threads: acquire/release/hint are called from the forward pass's thread only;
 *   a source does its own I/O on threads of its own.
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
};

#endif
