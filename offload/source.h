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
 *   acquire that finds a failed prefetch: only its own read's failure is final).  hint()
 *   starts reads at prefetch priority into prefetched-unused slots (evicted
 *   first); token_known() prefetches the hash-routed layers' experts (tid2eid).
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

struct offload_source_opts {
	uint64_t host_cache_bytes; /* 0 = every expert, at most half of the RAM */
	int host_cache_slots;      /* > 0: exactly this many slots (tests) */
	int allow_unlocked;        /* --no-mlock: run the cache unlocked with a warning */
	const char *policy;        /* eviction policy name (NULL = lru) */
	int prefetch;              /* token_known() prefetch of hash layers (default on) */
	struct offload_engine_opts io;
};

struct offload_source_stats {
	struct cache_host_stats cache;
	struct offload_engine_stats io;
	uint64_t verified;         /* records whose checksum was checked */
	uint64_t retried;          /* failed prefetches read again on demand */
	uint64_t promoted;         /* prefetches raised to demand priority by an acquire */
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
/* One line: where experts come from, cache size, io path. */
const char *offload_source_describe(struct offload_source *s, char *buf, size_t n);
/* Warning to show the user ("" when none), e.g. the cache runs unlocked. */
const char *offload_source_warning(const struct offload_source *s);
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
