/* offload/prefetch.h - the prefetch predictors of the streamed expert source.
 *
 * Contract
 *   An offload_prefetch holds what predicts routed experts before the forward pass
 *   asks for them (DESIGN.md §3):
 *     - hash-exact: the hash-routed blocks (0 .. num_hash_layers-1) route token t to
 *       tid2eid[block][t], so once a token is known its experts there are known
 *       exactly (offload_prefetch_token);
 *     - router lookahead: the forward pass applies the gates of blocks L+1 .. L+A to
 *       block L's hidden state (core/moe.c) and reports the result, which arrives
 *       here through offload_prefetch_lookahead;
 *   and scores both against the routing that actually happened (routed):
 *   predicted = distinct ids predicted, correct = of those, selected.  With a trace
 *   path it writes the routing trace of offload/trace.h (lookahead predictions are
 *   recorded for single-token steps, i.e. decode; a prefill chunk reports one union
 *   for all of its tokens, which the trace does not attribute).
 *   It issues no I/O itself: offload/source.c turns predictions into reads.
 *   Borrowed: the checkpoint (tid2eid tables are read from its mapped shards) must
 *   outlive it.  Everything is allocated in create(); calls come from the forward
 *   pass's thread.  close() publishes the trace and reports a write error.
 */
#ifndef NV_OFFLOAD_PREFETCH_H
#define NV_OFFLOAD_PREFETCH_H

#include <stdint.h>
#include "core/ckpt.h"
#include "core/err.h"

enum { OFFLOAD_PF_HASH = 0, OFFLOAD_PF_LOOKAHEAD = 1, OFFLOAD_PF_KINDS = 2 };

struct offload_prefetch_opts {
	int lookahead;          /* router lookahead depth (blocks), 0 = off, at most OFFLOAD_MAX_LOOKAHEAD */
	const char *trace_path; /* routing trace to write, NULL = none */
	int trace_ring;         /* positions a chunk may span (>= the model's chunk) */
};

#define OFFLOAD_MAX_LOOKAHEAD 16

struct offload_pred_stats {
	uint64_t predicted[OFFLOAD_PF_KINDS]; /* distinct (block, expert) ids predicted */
	uint64_t correct[OFFLOAD_PF_KINDS];   /* of those, selected by the router */
	/* lookahead by distance d = 1 .. OFFLOAD_MAX_LOOKAHEAD (index d) */
	uint64_t predicted_d[OFFLOAD_MAX_LOOKAHEAD + 1], correct_d[OFFLOAD_MAX_LOOKAHEAD + 1];
};

struct offload_prefetch;

int offload_prefetch_create(const struct core_ckpt *ck, const struct offload_prefetch_opts *o,
			    struct offload_prefetch **out, struct nv_err *e);
/* Publishes the trace (when one is written); returns its write error, if any.
 * Accepts NULL. */
int offload_prefetch_close(struct offload_prefetch *p, struct nv_err *e);
/* Publish the trace now (later routing is not recorded); its write error, if any. */
int offload_prefetch_trace_close(struct offload_prefetch *p, struct nv_err *e);
int offload_prefetch_lookahead_depth(const struct offload_prefetch *p);
int offload_prefetch_hash_layers(const struct offload_prefetch *p);

/* Token `token` at position pos is known.  Fills ids[b * k ..] with the experts of
 * hash block b for b < the returned number of blocks (0 when the tables are not
 * available); k = *k_out.  ids must hold num_hash_layers * k entries. */
int offload_prefetch_token(struct offload_prefetch *p, int pos, int token, int *ids, int *k_out);
/* Layer-major calls (core/model.h): token `token` at position pos is known, for the
 * trace only (its hash experts are predicted per chunk by offload_prefetch_hash). */
void offload_prefetch_token_seen(struct offload_prefetch *p, int pos, int token);
/* Layer-major calls: the forward pass named ids[0..n) as the exact experts of hash
 * block `block` for its next routing (scored as hash predictions). */
void offload_prefetch_hash(struct offload_prefetch *p, int block, const int *ids, int n);
/* The forward pass predicted ids[0..n) for block, dist blocks ahead, for the
 * tokens it is processing (positions p0 .. p0+S-1 of the last routed() call). */
void offload_prefetch_lookahead(struct offload_prefetch *p, int block, int dist, const int *ids, int n);
/* Block routed positions p0 .. p0+S-1 to ids [S, k]. */
void offload_prefetch_routed(struct offload_prefetch *p, int block, int p0, int S, int k, const int32_t *ids);
void offload_prefetch_stats(const struct offload_prefetch *p, struct offload_pred_stats *st);

#endif
