/* offload/source.h - the streamed expert source: struct core_expert_src backed by
 * the io engine and the host cache, reading the expert store or the HF shards.
 *
 * Contract
 *   offload_source_create() borrows an open checkpoint (which must outlive the
 *   source).  When the directory holds an expert store (core_ckpt_has_store) the
 *   experts are read from it, one record per expert, and every record's checksum
 *   is verified before its first use; otherwise each expert's six tensors are read
 *   from the safetensors shards (runs of bytes at any offset: the engine reads the
 *   4 KiB aligned ranges around them into the slot, and the views point inside).
 *   The host cache holds opts.host_cache_bytes (0: every expert, or half of the
 *   machine's memory when they do not fit) of
 *   expert-sized slots in locked memory; experts in use are never evicted.
 *
 *   The interface (offload_source_iface) follows core/expert_src.h: acquire()
 *   blocks until the bytes are there and checked, and fails, never skips: an I/O
 *   error, a short file, a checksum mismatch or a full cache of in-use experts
 *   gives an error naming the layer (or MTP block) and expert, the file, the offset
 *   and the cause; a later acquire of the same expert reads it again (so does an
 *   acquire that finds a failed prefetch: only its own read's failure is final).
 *   Batch acquisition (acquire_begin/next/end) looks a block's experts up at once,
 *   starts every missing read at demand priority and hands the experts out in the
 *   order their bytes arrive.  Prefetch (offload/prefetch.h predictors, unless
 *   opts.prefetch is 0): token_known() reads the hash-routed layers' experts
 *   (tid2eid), hint(block, ids, n, d) - the router lookahead d blocks ahead - reads
 *   its predictions; both at prefetch priority (below every demand read) into
 *   prefetched-unused slots, which are evicted first and never displace an expert
 *   in use or another prefetch.  A demand use of such a slot counts as a hit and
 *   the prefetch as used (a still-queued one is promoted to demand).  When the
 *   tokens of a new chunk become known, prefetch reads made for earlier chunks that
 *   are still queued are cancelled (never waited on); their slots are freed.  Time
 *   the forward pass spends blocked on bytes is the stall (stats cache.wait_ns).
 *   During a layer-major call (order(), core/model.h) token_known() only records
 *   the tokens (the whole call's arrive at once) and hint(b, ids, n, 1) for a
 *   hash-routed block b is the forward pass's exact list for b's next chunk: read
 *   and scored as hash prefetch.
 *   acquire/release/hint/token_known are called from one thread (the forward
 *   pass); completions arrive on the engine's thread.  destroy() accepts NULL.
 */
#ifndef NV_OFFLOAD_SOURCE_H
#define NV_OFFLOAD_SOURCE_H

#include <stdint.h>
#include "cache/host.h"
#include "core/ckpt.h"
#include "core/expert_src.h"
#include "offload/engine.h"
#include "offload/prefetch.h"

/* Router lookahead depth when none is given (chosen by measurement: README). */
#define OFFLOAD_LOOKAHEAD_DEFAULT 2

struct offload_source_opts {
	uint64_t host_cache_bytes; /* 0 = every expert, at most half of the RAM */
	int host_cache_slots;      /* > 0: exactly this many slots (tests) */
	int allow_unlocked;        /* --no-mlock: run the cache unlocked with a warning */
	const char *policy;        /* eviction policy name (NULL = lru) */
	int prefetch;              /* prefetch reads: hash-exact and lookahead (default on) */
	int lookahead;             /* router lookahead depth (default OFFLOAD_LOOKAHEAD_DEFAULT) */
	const char *trace_path;    /* routing trace to write (offload/trace.h), NULL = none */
	int trace_ring;            /* largest chunk the trace must attribute (default 256) */
	/* Optional page-locking hook for the host cache's pool (cache/host.h: pin/unpin),
	 * e.g. cache_gpu_cuda_pin when a GPU copies from it. */
	int (*pin)(void *base, size_t len, void *arg, struct nv_err *e);
	void (*unpin)(void *base, size_t len, void *arg);
	void *pin_arg;
	struct offload_engine_opts io;
};

struct offload_source_stats {
	struct cache_host_stats cache;
	struct offload_engine_stats io;
	uint64_t verified;         /* records whose checksum was checked */
	uint64_t retried;          /* failed prefetches read again on demand */
	uint64_t promoted;         /* prefetches raised to demand priority by an acquire */
	/* per predictor (OFFLOAD_PF_HASH, OFFLOAD_PF_LOOKAHEAD): reads started, and of
	 * those, found by a demand use */
	uint64_t pf_issued[OFFLOAD_PF_KINDS], pf_used[OFFLOAD_PF_KINDS];
	uint64_t pf_wasted_bytes;  /* bytes of prefetches evicted or dropped before any use */
	uint64_t pf_cancelled;     /* stale prefetch loads cancelled before they were read */
	uint64_t late;             /* demand uses that found the expert still loading */
	uint64_t io_busy_ns;       /* wall time with at least one expert load in flight */
	struct offload_pred_stats pred; /* predictor accuracy, I/O aside */
};

struct offload_source;

/* Defaults (engine defaults + diagnostic environment, prefetch on). */
void offload_source_opts_default(struct offload_source_opts *o);
int offload_source_create(const struct core_ckpt *ck, const struct offload_source_opts *o,
			  struct offload_source **out, struct nv_err *e);
void offload_source_destroy(struct offload_source *s);
/* The interface the forward pass takes; valid while s lives. */
void offload_source_iface(struct offload_source *s, struct core_expert_src *out);
void offload_source_stats(struct offload_source *s, struct offload_source_stats *st);
/* Publish the routing trace (opts.trace_path) now; its write error, if any. */
int offload_source_close_trace(struct offload_source *s, struct nv_err *e);
/* The lookahead depth the interface asks the forward pass for (0 without prefetch). */
int offload_source_lookahead(const struct offload_source *s);
/* One line of statistics for `run --stats` and the REPL's /stats: host cache hit
 * rate, prefetches used/issued per predictor, wasted bytes, stall per token
 * (tokens = decoded tokens the stall is spread over; 0 = the total in seconds). */
const char *offload_stats_line(const struct offload_source_stats *st, uint64_t tokens, char *buf, size_t n);
/* One line: where experts come from, cache size, io path. */
const char *offload_source_describe(struct offload_source *s, char *buf, size_t n);
/* Warning to show the user ("" when none), e.g. the cache runs unlocked. */
const char *offload_source_warning(const struct offload_source *s);
/* 1 when the host cache has fewer slots than the model has routed experts (all
 * blocks, MTP included): a long prompt then re-reads experts chunk after chunk,
 * which the layer-major order avoids (core/model.h). */
int offload_source_streams(const struct offload_source *s);
/* Bytes of one expert slot (store record or shard read layout). */
uint64_t offload_source_slot_size(const struct offload_source *s);

/* The reads of one expert from HF shards: its six tensors (parts in the order of
 * enum OFFLOAD_W1..) sorted by (shard, offset), neighbours merged, each run widened
 * to 4 KiB alignment and placed at slot_pos in a slot; view_off[p] is where part p
 * lands.  Returns the slot bytes needed.  Also used by `nvmoe bench --io`. */
struct offload_run { int shard; uint64_t off, len, slot_pos; };
uint64_t offload_hf_runs(const struct core_tensor *const parts[6], struct offload_run runs[6],
			 int *nruns, uint64_t view_off[6]);

#endif
