/* tools/tracesim/sim.h - cache replay for tracesim and the prefetch tests.
 *
 * Contract
 *   A replay is a sequence of keys (block * nexperts + expert), one per demand
 *   access.  sim_policy() replays it through the run-time host cache itself
 *   (cache/host.h with a cache/policy.h policy, 4 KiB dummy slots, unlocked), so
 *   the hit counts are those the runtime's cache would have; sim_belady() is
 *   Belady's MIN (evict the key whose next use is farthest), the upper bound for any
 *   policy that admits every miss.  sim_keys() turns a trace into such a sequence:
 *   per routing record its distinct selected experts in ascending id order (the
 *   order core/moe.c acquires them).  Errors fill *e; nothing is printed.
 */
#ifndef NV_TRACESIM_SIM_H
#define NV_TRACESIM_SIM_H

#include <stdint.h>
#include "core/err.h"
#include "offload/trace.h"

/* *keys is malloc'ed ([*n]). */
int sim_keys(const struct offload_trace *t, int32_t **keys, long *n, struct nv_err *e);
/* Demand hits of `policy` (cache_policy_find name) with `slots` slots. */
int sim_policy(const char *policy, const int32_t *keys, long n, int nblocks, int nexperts, int slots,
	       uint64_t *hits, struct nv_err *e);
/* Belady's MIN hits with `slots` slots; keys in 0 .. nkeys-1. */
int sim_belady(const int32_t *keys, long n, int nkeys, int slots, uint64_t *hits, struct nv_err *e);

/* Predictor accuracy of trace part `part` (1 = hash, 1 + d = lookahead d): over the
 * records that carry that prediction, ids predicted, of them selected, and ids
 * selected. */
struct sim_pred { long records, predicted, correct, selected; };
void sim_pred_accuracy(const struct offload_trace *t, int part, struct sim_pred *out);

#endif
