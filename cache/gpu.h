/* cache/gpu.h - the GPU tier: expert slots in device memory, filled from host views.
 *
 * Contract
 *   A cache_gpu is a struct core_expert_src (core/expert_src.h) layered over an INNER
 *   source that returns host views (offload/source over the host cache, or views into
 *   the mmapped checkpoint).  acquire(b, x) returns views into one of its device slots:
 *   pointers the kernel backend reads directly (B memory of kernels/kern.h).  A slot
 *   holds the six parts of one expert at 64-byte aligned offsets (>= the 16 bytes the
 *   CUDA kernels' vector loads need; the store's own record layout, so that a store
 *   record goes over in one copy); slots are `slot_size` apart in one pool.
 *
 *   Ordering, without a device-wide synchronisation anywhere in a step:
 *     - a miss copies the expert's parts into a slot on the COPY stream and records
 *       the slot's copy event; the COMPUTE stream (the backend's) waits on that event
 *       before acquire() returns, so kernels issued afterwards see the bytes;
 *     - release() records the slot's use event on the compute stream, after the
 *       expert's kernels; a slot is only refilled once that use is complete: a
 *       victim whose use event has completed is preferred, otherwise the copy stream
 *       waits on the use event (GPU-side) before overwriting the slot;
 *     - the inner source's reference on the host view is held until the copy event has
 *       completed (the DMA reads the host bytes asynchronously); it is dropped at a later
 *       acquire/release that sees the event complete, or synchronously (waiting for that
 *       copy only) when the inner source runs out of room or at destroy().
 *   Referenced slots (acquired, not released) are never evicted; victims otherwise
 *   follow the eviction policy (cache/policy.h, LRU).
 *
 *   Device operations go through struct cache_gpu_ops, so that the slot logic runs
 *   against a fake device in unit tests; cache_gpu_cuda_ops() gives the CUDA one (a
 *   copy stream of its own, the backend's compute stream, events).  The pool is sized
 *   lazily: opts.nslots, else opts.bytes, else ops.avail() at the first acquire (or at
 *   cache_gpu_reserve()), i.e. after the model and sequence have taken their device
 *   memory: the CUDA ops report what remains under --vram-budget.
 *
 *   Errors: acquire() fails (negative, *e filled with block, expert and cause) when the
 *   inner source fails, when a device operation fails, or when every slot is
 *   referenced.  Threads: one thread (the forward pass), like the backend.
 *   Lifetimes: the inner source and the backend behind the ops must outlive the cache;
 *   destroy() waits for its copies and uses, releases every inner view it holds, frees
 *   the pool and calls ops.destroy.  destroy accepts NULL.
 */
#ifndef NV_CACHE_GPU_H
#define NV_CACHE_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/expert_src.h"

struct kern;

#define CACHE_GPU_NPARTS 6  /* w1, w1_scale, w3, w3_scale, w2, w2_scale */
#define CACHE_GPU_ALIGN 64  /* part offsets inside a slot */

/* Device operations.  Events are opaque handles; `ev` arguments are from event_create.
 * Every int-returning op returns 0 or a negative error (errstr names it). */
struct cache_gpu_ops {
	void *arg;
	/* Bytes the pool may take now (called once, when the pool is sized). */
	int (*avail)(void *arg, uint64_t *bytes);
	int (*alloc)(void *arg, size_t bytes, void **dev); /* 256-byte aligned */
	void (*free)(void *arg, void *dev);
	int (*event_create)(void *arg, void **ev);
	void (*event_destroy)(void *arg, void *ev);
	/* Host -> device, asynchronous, in order on the copy stream. */
	int (*copy)(void *arg, void *dst_dev, const void *src_host, size_t bytes);
	int (*record_copy)(void *arg, void *ev);    /* ev = all copies issued so far */
	int (*record_compute)(void *arg, void *ev); /* ev = all compute work issued so far */
	int (*compute_wait)(void *arg, void *ev);   /* later compute work waits for ev */
	int (*copy_wait)(void *arg, void *ev);      /* later copies wait for ev */
	int (*query)(void *arg, void *ev);          /* 1 complete, 0 pending, < 0 error */
	int (*sync)(void *arg, void *ev);           /* the host waits for ev */
	const char *(*errstr)(void *arg, int rc);   /* optional */
	void (*destroy)(void *arg);                 /* optional: frees arg */
};

struct cache_gpu_opts {
	const struct core_expert_src *inner; /* host views (borrowed) */
	size_t part_bytes[CACHE_GPU_NPARTS]; /* bytes of each part of one expert */
	int nblocks, nexperts;               /* key space */
	uint64_t bytes;                      /* > 0: pool size */
	int nslots;                          /* > 0: exactly this many slots (tests, diagnostics) */
	int min_slots;                       /* fewer fit: acquire/reserve fail; 0 = 2 */
	const char *policy;                  /* eviction policy (NULL = lru) */
};

struct cache_gpu_stats {
	uint64_t hits, misses, evictions;
	uint64_t copies, bytes_copied;       /* copy operations issued, bytes */
	uint64_t copy_waits;                 /* refills ordered after a pending use (GPU side) */
	uint64_t host_waits;                 /* host waited for a copy (inner source full, destroy) */
};

struct cache_gpu;

/* Slot stride of an expert with these part sizes, and each part's offset in a slot. */
size_t cache_gpu_layout(const size_t part_bytes[CACHE_GPU_NPARTS], size_t off[CACHE_GPU_NPARTS]);

/* *ops is copied; on failure ops->destroy is still called (the cache owns ops from here). */
int cache_gpu_create(const struct cache_gpu_opts *o, const struct cache_gpu_ops *ops, struct cache_gpu **out,
		     struct nv_err *e);
void cache_gpu_destroy(struct cache_gpu *g);
/* Size and allocate the pool now (idempotent).  0, or an error saying how much was
 * available and how much one slot needs. */
int cache_gpu_reserve(struct cache_gpu *g, struct nv_err *e);
/* The interface the forward pass takes; valid while g lives. */
void cache_gpu_iface(struct cache_gpu *g, struct core_expert_src *out);
/* 1 when src is (an interface of) a cache_gpu: its views are device memory. */
int cache_gpu_is_src(const struct core_expert_src *src);
int cache_gpu_nslots(const struct cache_gpu *g); /* 0 before the pool is sized */
size_t cache_gpu_slot_size(const struct cache_gpu *g);
void cache_gpu_stats(const struct cache_gpu *g, struct cache_gpu_stats *st);
/* The device address of slot s (tests). */
void *cache_gpu_slot(const struct cache_gpu *g, int s);
/* The slot holding (b, x), or -1 (tests). */
int cache_gpu_lookup(const struct cache_gpu *g, int b, int x);

/* ---- CUDA (a CUDA build with a CUDA backend; otherwise NV_EUNSUPPORTED) ---- */

/* Device operations for the CUDA backend k: a copy stream of its own, k's compute
 * stream, events without timing.  avail() = what remains under vram_budget (bytes, 0 =
 * no budget) after the backend's own device memory (kern_cuda_mem_used), and never
 * more than the device's free memory less a reserve of max(256 MiB, 2 % of the device). */
int cache_gpu_cuda_ops(struct kern *k, uint64_t vram_budget, struct cache_gpu_ops *out, struct nv_err *e);

/* Pin hook for cache/host (struct cache_host_opts.pin/unpin): registers the host pool
 * with CUDA as page-locked memory (cudaHostRegister), so copies from it are true
 * asynchronous DMA.  When registration is refused it returns 0 and leaves the pool
 * pageable (copies still work, staged by the driver): cache_gpu_cuda_pinned(arg) says
 * which.  arg: a struct cache_gpu_pin the caller owns (outliving the host cache). */
struct cache_gpu_pin {
	int pinned;       /* set by the hook: 1 registered */
	char why[200];    /* set when registration was refused */
};
int cache_gpu_cuda_pin(void *base, size_t len, void *arg, struct nv_err *e);
void cache_gpu_cuda_unpin(void *base, size_t len, void *arg);

/* Host-to-device copy bandwidth of the current device (GB/s, 1e9 bytes): `reps`
 * cudaMemcpyAsync of `bytes` on one stream after a warm-up copy, from page-locked
 * (pinned = 1: a cudaHostRegister-ed buffer, like the host cache) or pageable memory.
 * Synchronises the device (benchmarks only, never inside a step). */
int cache_gpu_cuda_h2d_gbs(size_t bytes, int reps, int pinned, double *gbs, struct nv_err *e);

#endif
