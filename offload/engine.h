/* offload/engine.h - asynchronous file reads for the expert tiers: io_uring with
 * O_DIRECT into registered buffers, or a small pread thread pool.
 *
 * Contract
 *   An engine owns: its open files (offload_engine_open), one io_uring with a
 *   thread that both submits and reaps (when io_uring works), and a pool of pread
 *   threads (used for files that refuse O_DIRECT, when io_uring is unavailable, or
 *   when forced with opts.mode / NVMOE_IO=pread).  The choice is automatic and
 *   reported by offload_engine_describe().
 *
 *   A requester fills caller-owned struct offload_read entries and submits them as
 *   one group at a priority (0 = demand, 1 = prefetch).  Each read is cut into
 *   requests of at most opts.request_size bytes; at most opts.queue_depth requests
 *   are in flight; demand requests are always dispatched before prefetch ones and
 *   prefetch never takes the last quarter of the queue.  Short reads are
 *   resubmitted for the remainder, -EAGAIN is retried; any other error, and an end
 *   of file before `len` bytes, fails the read: its `status` gets the code and the
 *   group's nv_err names the file, the offset and the length (the first failure of a
 *   group wins).  No allocation happens per read: reads and groups live in the
 *   requester's memory until the group is done.
 *
 *   O_DIRECT files (offload_engine_file_direct() != 0) need `off` and `buf`
 *   aligned to OFFLOAD_ALIGN and a buffer of at least roundup(len, OFFLOAD_ALIGN)
 *   bytes (the tail past `len` is scratch).  Buffered files take any values.
 *
 *   Threads: submit/wait/poll may be called from any thread; a group's `done`
 *   callback runs on an engine thread (on the submitter's when nothing had to be
 *   read), with no engine lock held, and must not block on the engine.  A group
 *   with a callback is done when the callback runs: do not wait on it as well.  destroy() cancels queued reads (NV_ECANCELED), waits for
 *   the in-flight ones and joins its threads; it accepts NULL.
 *   Test hooks (opts.fail_nth, eagain_nth, short_cap) make the engine itself
 *   produce I/O errors, -EAGAIN and short transfers, so every path is testable.
 */
#ifndef NV_OFFLOAD_ENGINE_H
#define NV_OFFLOAD_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "core/err.h"

#define OFFLOAD_ALIGN 4096
#define OFFLOAD_PRIO_DEMAND 0
#define OFFLOAD_PRIO_PREFETCH 1
#define OFFLOAD_NPRIO 2

static inline uint64_t offload_align_up(uint64_t x) { return (x + OFFLOAD_ALIGN - 1) & ~(uint64_t)(OFFLOAD_ALIGN - 1); }
static inline uint64_t offload_align_down(uint64_t x) { return x & ~(uint64_t)(OFFLOAD_ALIGN - 1); }

enum offload_io_mode { OFFLOAD_IO_AUTO, OFFLOAD_IO_URING, OFFLOAD_IO_PREAD };

struct offload_engine_opts {
	int queue_depth;       /* requests in flight on the ring (default 64) */
	size_t request_size;   /* bytes per request, multiple of 4096 (default 1 MiB) */
	int mode;              /* enum offload_io_mode (AUTO: io_uring when it works) */
	int no_direct;         /* open files buffered (no O_DIRECT) */
	int pread_threads;     /* fallback pool size (default 4) */
	int max_files;         /* file table capacity (default 256) */
	/* Test hooks (diagnostics; 0 = off). Requests are counted from 1 over the
	 * engine's life, in issue order. */
	long fail_nth;         /* request number fail_nth completes with -EIO ... */
	long fail_count;       /* ... and so do the fail_count - 1 after it (0 = 1) */
	long eagain_nth;       /* request number eagain_nth completes once with -EAGAIN */
	size_t short_cap;      /* every transfer moves at most short_cap bytes (multiple of 4096) */
};

/* Defaults, then the diagnostic environment: NVMOE_IO=uring|pread|buffered,
 * NVMOE_IO_FAIL_NTH=N, NVMOE_IO_FAIL_COUNT=K, NVMOE_IO_SHORT_CAP=BYTES,
 * NVMOE_IO_REQUEST=BYTES (request size), NVMOE_IO_QD=N (queue depth). */
void offload_engine_opts_default(struct offload_engine_opts *o);
void offload_engine_opts_env(struct offload_engine_opts *o);

struct offload_group;

/* One read; caller-owned until its group is done. */
struct offload_read {
	int file;        /* id from offload_engine_open */
	uint64_t off;    /* file offset */
	uint64_t len;    /* bytes required */
	void *buf;       /* destination (see alignment rules above) */
	int status;      /* out: 0 or negative error, valid once the group is done */
	/* engine-private */
	uint64_t next_;  /* bytes dispatched (relative to off) */
	int inflight_;
	struct offload_group *grp_;
	struct offload_read *qnext_;
};

struct offload_group {
	/* Optional: called once, on an engine thread, when every read of the group
	 * has finished (status final). */
	void (*done)(struct offload_group *g, void *arg);
	void *arg;
	/* engine-private (read with offload_engine_wait / _poll) */
	int pending_;
	int status_;
	struct nv_err err_;
	struct offload_group *cbnext_;
};

struct offload_engine_stats {
	uint64_t reads;          /* offload_read completed */
	uint64_t requests;       /* requests issued (ring + pool) */
	uint64_t ring_requests, pool_requests, fixed_requests;
	uint64_t bytes;          /* bytes transferred */
	uint64_t short_reads;    /* transfers resubmitted for a remainder */
	uint64_t eagain;         /* -EAGAIN retries */
	uint64_t errors;         /* reads failed */
};

struct offload_engine;

/* regions: memory that reads will target, registered with io_uring as fixed
 * buffers when possible (may be NULL / 0). */
int offload_engine_create(const struct offload_engine_opts *o, const struct iovec *regions,
			  int nregions, struct offload_engine **out, struct nv_err *e);
void offload_engine_destroy(struct offload_engine *g);

/* Open path read-only (O_DIRECT unless refused or opts.no_direct); *id for reads. */
int offload_engine_open(struct offload_engine *g, const char *path, int *id, struct nv_err *e);
const char *offload_engine_file_path(const struct offload_engine *g, int id);
uint64_t offload_engine_file_size(const struct offload_engine *g, int id);
int offload_engine_file_direct(const struct offload_engine *g, int id);

/* Queue n reads as one group at priority prio.  Returns 0, or a negative error
 * (bad arguments, e.g. a misaligned O_DIRECT read) without queuing anything. */
int offload_engine_submit(struct offload_engine *g, struct offload_read *r, int n, int prio,
			  struct offload_group *grp, struct nv_err *e);
/* Move the still-queued reads of grp to demand priority (a prefetch that is now
 * needed); a no-op for reads already in flight or done. */
void offload_engine_promote(struct offload_engine *g, struct offload_group *grp);
/* Cancel the still-queued reads of grp (a prefetch no longer wanted): they fail
 * with NV_ECANCELED without being issued; reads already in flight finish.  The
 * group completes (callback included, possibly on the caller's thread, with no
 * engine lock held) once nothing of it is in flight.  Returns the number of reads
 * cancelled (0: nothing was queued any more). */
int offload_engine_cancel(struct offload_engine *g, struct offload_group *grp);
/* Block until grp is done; returns its status and copies its error into e. */
int offload_engine_wait(struct offload_engine *g, struct offload_group *grp, struct nv_err *e);
/* A done group's status and error (for `done` callbacks). */
int offload_group_status(const struct offload_group *grp, struct nv_err *e);
/* 1 when grp is done, 0 otherwise; never blocks. */
int offload_engine_poll(struct offload_engine *g, struct offload_group *grp);

void offload_engine_stats(struct offload_engine *g, struct offload_engine_stats *s);
/* One line: which path serves reads and why ("io_uring, O_DIRECT, qd 64, 1 MiB
 * requests, 2 fixed buffers" / "pread pool (4 threads): io_uring_queue_init: ..."). */
const char *offload_engine_describe(const struct offload_engine *g, char *buf, size_t n);
int offload_engine_uses_uring(const struct offload_engine *g);

#endif
