/* offload/trace.h - routing traces: which experts each token selected at each layer,
 * and what the prefetch predictors had predicted for them.  Written by the
 * prefetcher (`--trace-experts FILE`), read by tools/tracesim and the tests.
 *
 * Format (text, version 1; one item per line, fields separated by single spaces):
 *
 *   nvmoe-trace 1 layers=L experts=E k=K hash=H lookahead=A
 *   # any comment
 *   t POS TOKEN
 *   r POS LAYER s=e,e,... [h=e,e,...] [d1=e,...] ... [dA=e,...]
 *
 *   The header line comes first.  L = routed blocks (num_hidden_layers, plus the MTP
 *   blocks when they run), E experts per block, K experts per token, H hash-routed
 *   layers (0 .. H-1), A = deepest router lookahead recorded.
 *   `t` says that the token at position POS became known (sampled or read from the
 *   prompt): from here on its hash layers' experts are predictable.
 *   `r` is one routing decision, written when it is made, so the file order is the
 *   order in which the forward pass needed experts: s = the K selected expert ids
 *   in selection order; h = the hash predictor's ids for this (POS, LAYER) (only
 *   for hash layers); dN = the ids the router lookahead predicted N layers earlier
 *   (N = 1 .. A; absent when that prediction was not made, e.g. in prefill chunks).
 *   Expert ids are decimal, 0 .. E-1.  A new sequence starts again at POS 0.
 *
 * Contract
 *   The writer buffers predictions per (POS mod ring, LAYER) until the layer's `r`
 *   line is written; it allocates everything in create() and never per token.
 *   Write errors are remembered and reported by close(), which writes to PATH.tmp
 *   and renames it to PATH, so an interrupted run leaves no half trace.  The reader
 *   loads a whole file and checks every line (malformed lines name the file and
 *   line).  Objects belong to one thread; destroy/close accept NULL.
 */
#ifndef NV_OFFLOAD_TRACE_H
#define NV_OFFLOAD_TRACE_H

#include <stdint.h>
#include "core/err.h"

#define OFFLOAD_TRACE_MAX_K 64
#define OFFLOAD_TRACE_MAX_LOOKAHEAD 16

struct offload_trace_hdr {
	int layers, experts, k, hash_layers, lookahead;
};

/* ---- reading */

struct offload_trace {
	struct offload_trace_hdr h;
	long n;              /* routing records */
	int32_t *pos;        /* [n] */
	int32_t *layer;      /* [n] */
	int32_t *token;      /* [n] token of POS when known (last `t` line), else -1 */
	/* [n][A + 2][k]: part 0 = selected, 1 = hash prediction, 1 + d = lookahead d;
	 * -1 where absent */
	int32_t *ids;
	long ntokens;        /* `t` lines */
};

static inline const int32_t *offload_trace_ids(const struct offload_trace *t, long i, int part)
{
	return t->ids + ((size_t)i * (size_t)(t->h.lookahead + 2) + (size_t)part) * (size_t)t->h.k;
}

int offload_trace_load(const char *path, struct offload_trace **out, struct nv_err *e);
void offload_trace_free(struct offload_trace *t);

/* ---- writing */

struct offload_trace_writer;

/* ring: positions whose predictions may be pending at once (>= the chunk size). */
int offload_trace_writer_create(const char *path, const struct offload_trace_hdr *h, int ring,
				struct offload_trace_writer **out, struct nv_err *e);
void offload_trace_token(struct offload_trace_writer *w, int pos, int token);
/* dist 0 = hash prediction, 1 .. A = lookahead distance. */
void offload_trace_predict(struct offload_trace_writer *w, int pos, int layer, int dist,
			   const int32_t *ids, int n);
void offload_trace_route(struct offload_trace_writer *w, int pos, int layer, const int32_t *ids, int n);
/* Flush, close and rename into place; returns the first write error.  Frees w. */
int offload_trace_writer_close(struct offload_trace_writer *w, struct nv_err *e);
/* Drop w without publishing the file (error paths). */
void offload_trace_writer_abort(struct offload_trace_writer *w);

#endif
