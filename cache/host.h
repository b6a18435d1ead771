/* cache/host.h - the host tier: a fixed pool of expert-sized slots in locked memory.
 *
 * Contract
 *   A cache_host owns one anonymous mapping of nslots x slot_size bytes (2 MiB
 *   aligned and advised for transparent huge pages, cache_huge_map; each slot a
 *   multiple of 4 KiB, so slots are valid O_DIRECT targets), locked with mlock.  When the lock is refused (RLIMIT_MEMLOCK too low) create()
 *   fails with a message saying how to raise the limit, unless opts.allow_unlocked,
 *   which runs unlocked and leaves a warning in cache_host_warning().  opts.pin is a
 *   hook for registering the pool with a GPU runtime as page-locked memory (CUDA
 *   backend, later); opts.unpin undoes it in destroy().
 *
 *   It indexes (block, expert) -> slot, counts references (a referenced slot is
 *   never evicted, reused or moved), tracks each slot's state (FREE, LOADING,
 *   LOADED = bytes arrived but unchecked, READY, FAILED) and picks victims: free
 *   slots first, then prefetched-but-never-used slots (oldest first; not for a
 *   prefetch, which never displaces another), then the eviction policy's order
 *   (cache/policy.h) among slots that are unreferenced and not LOADING.  When no slot can be taken, get() fails with NV_EFIT and a clear
 *   message (never waits): cache_host_nloading() tells whether waiting for a load
 *   in flight could help.
 *
 *   Threads: not thread-safe; the owner (offload/source.c) serializes all calls.
 *   Statistics are plain counters the owner adds to (bytes read, time waited).
 */
#ifndef NV_CACHE_HOST_H
#define NV_CACHE_HOST_H

#include <stddef.h>
#include <stdint.h>
#include "core/err.h"

enum cache_slot_state { CACHE_FREE, CACHE_LOADING, CACHE_LOADED, CACHE_READY, CACHE_FAILED };

#define CACHE_REF 1u      /* take a reference on the slot returned */
#define CACHE_ALLOC 2u    /* on a miss, take a slot for the key */
#define CACHE_PREFETCH 4u /* a slot taken on a miss counts as prefetched-unused */

struct cache_host_opts {
	uint64_t bytes;        /* pool size; nslots = bytes / slot_size (rounded up to 4 KiB) */
	int nslots;            /* when > 0, used instead of bytes */
	size_t slot_size;      /* bytes of one expert as the source lays it out */
	int nblocks, nexperts; /* key space */
	const char *policy;    /* "lru" (NULL = lru) */
	int allow_unlocked;    /* mlock refused: run unlocked with a warning instead of failing */
	int (*pin)(void *base, size_t len, void *arg, struct nv_err *e); /* optional */
	void (*unpin)(void *base, size_t len, void *arg);                /* optional */
	void *pin_arg;
};

struct cache_host_stats {
	uint64_t hits, misses, evictions;
	uint64_t prefetch_inserts;   /* slots filled on a prefetch */
	uint64_t prefetch_used;      /* of those, later used by a demand get */
	uint64_t prefetch_wasted;    /* evicted (or dropped) before any use */
	uint64_t bytes_read;         /* added by the owner */
	uint64_t wait_ns;            /* time the owner waited for bytes (added by the owner) */
	uint64_t failures;           /* slots that ended FAILED */
};

struct cache_host;

/* Anonymous read-write mapping of bytes (rounded up to 4 KiB) starting on a 2 MiB
 * boundary, advised MADV_HUGEPAGE before any touch so that it is backed by
 * transparent huge pages where the kernel allows them (THP "always" or "madvise");
 * plain 4 KiB pages otherwise, silently.  NULL with errno set on failure.  Expert
 * bytes stream through the FP4 kernels: huge pages spare the TLB misses of a 4 KiB
 * page walk every 4 KiB of weights.  cache_huge_unmap(NULL, ..) does nothing. */
void *cache_huge_map(size_t bytes);
void cache_huge_unmap(void *p, size_t bytes);

int cache_host_create(const struct cache_host_opts *o, struct cache_host **out, struct nv_err *e);
void cache_host_destroy(struct cache_host *c);

int cache_host_nslots(const struct cache_host *c);
size_t cache_host_slot_size(const struct cache_host *c);
void *cache_host_base(const struct cache_host *c);   /* the pool (for io_uring registration) */
size_t cache_host_bytes(const struct cache_host *c); /* nslots x slot_size */
int cache_host_locked(const struct cache_host *c);
const char *cache_host_warning(const struct cache_host *c); /* "" when none */
const char *cache_host_policy(const struct cache_host *c);

void *cache_host_slot(const struct cache_host *c, int slot);

/* Find (block, expert).  On a hit returns its slot (*hit = 1), counted as a hit
 * when flags has CACHE_REF (a demand use).  On a miss: without CACHE_ALLOC returns
 * -1 (*hit = 0, not counted); with it, takes a slot (evicting if needed), maps the
 * key to it in state LOADING and returns it (*hit = 0, a miss when CACHE_REF),
 * or returns NV_EFIT when every slot is referenced or loading.  CACHE_REF takes a
 * reference on the returned slot. */
int cache_host_get(struct cache_host *c, int block, int expert, unsigned flags, int *hit,
		   struct nv_err *e);
void cache_host_ref(struct cache_host *c, int slot);
void cache_host_unref(struct cache_host *c, int slot);
int cache_host_refs(const struct cache_host *c, int slot);

enum cache_slot_state cache_host_state(const struct cache_host *c, int slot);
void cache_host_set_state(struct cache_host *c, int slot, enum cache_slot_state s);
/* Unmap the slot's key (e.g. its load failed); it becomes FREE once unreferenced. */
void cache_host_drop(struct cache_host *c, int slot);
/* The (block, expert) a slot holds; -1/-1 when none. */
void cache_host_key(const struct cache_host *c, int slot, int *block, int *expert);
int cache_host_nloading(const struct cache_host *c);

void cache_host_stats(const struct cache_host *c, struct cache_host_stats *s);
void cache_host_add_io(struct cache_host *c, uint64_t bytes, uint64_t wait_ns);

#endif
