/* offload/engine.c - io_uring / pread read engine (contract in engine.h).
 *
 * One mutex guards the queues, the file table's counters, the reads' and groups'
 * engine-private fields and the statistics.  The ring thread prepares SQEs and
 * reaps CQEs; it sleeps in io_uring_submit_and_wait() and is woken for new work by
 * an eventfd whose read is kept armed in the ring.  Pool threads sleep on a
 * condition variable.  Requests are cut lazily from the head read of a queue, so a
 * read costs no allocation.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define EV_TAG 1ull   /* user_data of the eventfd read; requests use slot + 2 */
#define BK_RING 0
#define BK_POOL 1
#define FIXED_MAX_BYTES (1ull << 30) /* io_uring limit per registered buffer */

struct eng_file {
	char *path;
	int fd;
	int direct;
	uint64_t size;
};

/* One request in flight: a piece of a read. */
struct ereq {
	struct offload_read *r;
	uint64_t off;   /* file offset of this transfer */
	char *buf;
	uint64_t len;   /* bytes asked for (aligned on O_DIRECT files) */
	uint64_t need;  /* bytes that must arrive (<= len) */
	int prio;
	int synth;      /* the hooks replaced this transfer by result synth_res */
	int synth_res;
	int fixed;      /* registered buffer index, -1 for none */
	int busy;
};

struct rq { struct offload_read *head, *tail; };

struct offload_engine {
	struct offload_engine_opts o;
	pthread_mutex_t mu;
	pthread_cond_t done_cv;  /* a group finished */
	pthread_cond_t pool_cv;  /* pool work or stop */
	int stop;

	struct eng_file *files;
	int nfiles;

	struct rq q[2][OFFLOAD_NPRIO];

	/* ring */
	int have_ring;
	struct io_uring ring;
	pthread_t ring_thr;
	int ring_started;
	int evfd;
	uint64_t ev_val;
	struct ereq *slots;      /* [queue_depth] */
	int ring_inflight;
	int ring_pf_inflight;    /* prefetch-priority requests in flight */
	struct iovec *fixed;     /* registered pieces, sorted by address */
	int nfixed;

	/* pool */
	pthread_t *pool_thr;
	int npool;

	long issued;             /* requests issued (hook counter) */
	struct offload_group *cb_head; /* groups whose callback is due */
	struct offload_engine_stats st;
	char why_mode[256];
	int nbuffered;
};

/* ---------------------------------------------------------------- options */

void offload_engine_opts_default(struct offload_engine_opts *o)
{
	memset(o, 0, sizeof *o);
	o->queue_depth = 64;
	o->request_size = 1u << 20;
	o->mode = OFFLOAD_IO_AUTO;
	o->pread_threads = 4;
	o->max_files = 256;
}

void offload_engine_opts_env(struct offload_engine_opts *o)
{
	const char *s = getenv("NVMOE_IO");
	if (s && !strcmp(s, "pread")) o->mode = OFFLOAD_IO_PREAD;
	else if (s && !strcmp(s, "uring")) o->mode = OFFLOAD_IO_URING;
	else if (s && !strcmp(s, "buffered")) o->no_direct = 1;
	if ((s = getenv("NVMOE_IO_FAIL_NTH"))) o->fail_nth = atol(s);
	if ((s = getenv("NVMOE_IO_FAIL_COUNT"))) o->fail_count = atol(s);
	if ((s = getenv("NVMOE_IO_SHORT_CAP"))) o->short_cap = (size_t)atoll(s);
	if ((s = getenv("NVMOE_IO_REQUEST"))) o->request_size = (size_t)atoll(s);
	if ((s = getenv("NVMOE_IO_QD"))) o->queue_depth = atoi(s);
}

/* ---------------------------------------------------------------- queues */

static void q_push(struct rq *q, struct offload_read *r)
{
	r->qnext_ = NULL;
	if (q->tail) q->tail->qnext_ = r; else q->head = r;
	q->tail = r;
}

static void q_pop(struct rq *q)
{
	struct offload_read *r = q->head;
	q->head = r->qnext_;
	if (!q->head) q->tail = NULL;
	r->qnext_ = NULL;
}

static int q_remove(struct rq *q, struct offload_read *r)
{
	struct offload_read *p = NULL;
	for (struct offload_read *c = q->head; c; p = c, c = c->qnext_) {
		if (c != r) continue;
		if (p) p->qnext_ = c->qnext_; else q->head = c->qnext_;
		if (q->tail == c) q->tail = p;
		c->qnext_ = NULL;
		return 1;
	}
	return 0;
}

static uint64_t read_cap(const struct offload_engine *g, const struct offload_read *r)
{
	return g->files[r->file].direct ? offload_align_up(r->len) : r->len;
}

static int read_backend(const struct offload_engine *g, const struct offload_read *r)
{
	return g->have_ring && g->files[r->file].direct ? BK_RING : BK_POOL;
}

/* ---------------------------------------------------------------- completion */

/* Lock held.  The group of a finished read loses one pending read; a finished
 * group with a callback is queued for run_callbacks(). */
static void finish_read(struct offload_engine *g, struct offload_read *r)
{
	struct offload_group *grp = r->grp_;
	g->st.reads++;
	if (r->status < 0) g->st.errors++;
	if (--grp->pending_ > 0) return;
	pthread_cond_broadcast(&g->done_cv);
	if (grp->done) {
		grp->cbnext_ = g->cb_head;
		g->cb_head = grp;
	}
}

/* Lock held; runs due callbacks with the lock dropped. */
static void run_callbacks(struct offload_engine *g)
{
	while (g->cb_head) {
		struct offload_group *grp = g->cb_head;
		g->cb_head = grp->cbnext_;
		grp->cbnext_ = NULL;
		void (*fn)(struct offload_group *, void *) = grp->done;
		void *arg = grp->arg;
		pthread_mutex_unlock(&g->mu);
		fn(grp, arg);
		pthread_mutex_lock(&g->mu);
	}
}

/* Lock held.  Mark r failed (first error of its group fills the group's nv_err). */
static void fail_read(struct offload_engine *g, struct offload_read *r, int code,
		      const char *hint, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail_read(struct offload_engine *g, struct offload_read *r, int code,
		      const char *hint, const char *fmt, ...)
{
	if (r->status < 0) return;
	r->status = code;
	struct offload_group *grp = r->grp_;
	if (grp->status_ == 0) {
		char why[700];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof why, fmt, ap);
		va_end(ap);
		grp->status_ = code;
		core_err_set(&grp->err_, code, g->files[r->file].path, NULL, hint, "%s", why);
	}
	/* stop cutting requests from it */
	uint64_t cap = read_cap(g, r);
	if (r->next_ < cap) {
		int b = read_backend(g, r);
		for (int p = 0; p < OFFLOAD_NPRIO; p++)
			if (q_remove(&g->q[b][p], r)) break;
		r->next_ = cap;
	}
}

/* Lock held.  Account one transfer of q; returns 1 when q must be reissued for a
 * remainder (or a retry), 0 when this request is over. */
static int complete_req(struct offload_engine *g, struct ereq *q, int res)
{
	struct offload_read *r = q->r;
	struct eng_file *f = &g->files[r->file];
	if (r->status < 0) goto over; /* the read already failed: drop the rest */
	if (res == -EAGAIN) { g->st.eagain++; return 1; }
	if (res < 0) {
		fail_read(g, r, res, "check the device and the kernel log (dmesg); the file may be damaged",
			  "read of %llu bytes at offset %llu failed: %s",
			  (unsigned long long)q->len, (unsigned long long)q->off, strerror(-res));
		goto over;
	}
	g->st.bytes += (uint64_t)res;
	if ((uint64_t)res >= q->need) goto over;
	if (res > 0 && (!f->direct || ((q->off + (uint64_t)res) % OFFLOAD_ALIGN) == 0)) {
		q->off += (uint64_t)res;
		q->buf += res;
		q->len -= (uint64_t)res;
		q->need -= (uint64_t)res;
		g->st.short_reads++;
		return 1;
	}
	{
		struct stat st;
		long long now = fstat(f->fd, &st) == 0 ? (long long)st.st_size : -1;
		fail_read(g, r, NV_EFORMAT, "the file is truncated or shrank while in use: restore it (re-run nvmoe convert or re-download)",
			  "unexpected end of file at offset %llu while reading %llu bytes at offset %llu"
			  " (file is now %lld bytes, %llu at open)",
			  (unsigned long long)(q->off + (uint64_t)res), (unsigned long long)r->len,
			  (unsigned long long)r->off, now, (unsigned long long)f->size);
	}
over:
	if (--r->inflight_ == 0 && r->next_ >= read_cap(g, r)) finish_read(g, r);
	return 0;
}

/* Lock held.  Cut the next request for backend b into q; 0 when there is none
 * (or, with !allow_prefetch, none of demand priority). */
static int take_req(struct offload_engine *g, int b, int allow_prefetch, struct ereq *q)
{
	for (int p = 0; p < OFFLOAD_NPRIO; p++) {
		if (p > 0 && !allow_prefetch) return 0;
		struct rq *rq = &g->q[b][p];
		struct offload_read *r = rq->head;
		if (!r) continue;
		uint64_t cap = read_cap(g, r);
		uint64_t rel = r->next_;
		uint64_t len = cap - rel;
		if (len > g->o.request_size) len = g->o.request_size;
		r->next_ += len;
		r->inflight_++;
		if (r->next_ >= cap) q_pop(rq);
		q->r = r;
		q->off = r->off + rel;
		q->buf = (char *)r->buf + rel;
		q->len = len;
		q->need = len < r->len - rel ? len : r->len - rel;
		q->prio = p;
		q->synth = 0;
		q->fixed = -1;
		return 1;
	}
	return 0;
}

/* Lock held.  Apply the test hooks to a transfer about to be issued. */
static void issue_hooks(struct offload_engine *g, struct ereq *q, int backend)
{
	long n = ++g->issued;
	g->st.requests++;
	if (backend == BK_RING) g->st.ring_requests++; else g->st.pool_requests++;
	long cnt = g->o.fail_count > 0 ? g->o.fail_count : 1;
	if (g->o.fail_nth && n >= g->o.fail_nth && n - g->o.fail_nth < cnt) { q->synth = 1; q->synth_res = -EIO; }
	else if (g->o.eagain_nth && n == g->o.eagain_nth) { q->synth = 1; q->synth_res = -EAGAIN; }
	else q->synth = 0;
}

static uint64_t xfer_len(const struct offload_engine *g, const struct ereq *q)
{
	return g->o.short_cap && q->len > g->o.short_cap ? g->o.short_cap : q->len;
}

/* ---------------------------------------------------------------- ring thread */

static int find_fixed(const struct offload_engine *g, const void *buf, uint64_t len)
{
	uintptr_t a = (uintptr_t)buf;
	int lo = 0, hi = g->nfixed - 1;
	while (lo <= hi) {
		int m = (lo + hi) / 2;
		uintptr_t b = (uintptr_t)g->fixed[m].iov_base;
		if (a < b) hi = m - 1;
		else if (a >= b + g->fixed[m].iov_len) lo = m + 1;
		else return a + len <= b + g->fixed[m].iov_len ? m : -1;
	}
	return -1;
}

static void arm_eventfd(struct offload_engine *g)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&g->ring);
	CHECK(s);
	io_uring_prep_read(s, g->evfd, &g->ev_val, sizeof g->ev_val, 0);
	io_uring_sqe_set_data64(s, EV_TAG);
}

static void prep_req(struct offload_engine *g, int slot)
{
	struct ereq *q = &g->slots[slot];
	struct io_uring_sqe *s = io_uring_get_sqe(&g->ring);
	CHECK(s); /* the ring has queue_depth + 2 entries */
	if (q->synth) {
		io_uring_prep_nop(s);
	} else {
		unsigned n = (unsigned)xfer_len(g, q);
		int fd = g->files[q->r->file].fd;
		q->fixed = find_fixed(g, q->buf, n);
		if (q->fixed >= 0) {
			io_uring_prep_read_fixed(s, fd, q->buf, n, q->off, q->fixed);
			g->st.fixed_requests++;
		} else {
			io_uring_prep_read(s, fd, q->buf, n, q->off);
		}
	}
	io_uring_sqe_set_data64(s, (uint64_t)slot + 2);
}

static void *ring_main(void *arg)
{
	struct offload_engine *g = arg;
	int qd = g->o.queue_depth;
	int pf_max = qd - qd / 4;
	if (pf_max < 1) pf_max = 1;
	pthread_mutex_lock(&g->mu);
	arm_eventfd(g);
	for (;;) {
		while (g->ring_inflight < qd) {
			int slot = 0;
			while (g->slots[slot].busy) slot++;
			struct ereq *q = &g->slots[slot];
			if (!take_req(g, BK_RING, g->ring_pf_inflight < pf_max, q)) break;
			q->busy = 1;
			g->ring_inflight++;
			if (q->prio > 0) g->ring_pf_inflight++;
			issue_hooks(g, q, BK_RING);
			prep_req(g, slot);
		}
		if (g->stop && g->ring_inflight == 0) break;
		pthread_mutex_unlock(&g->mu);
		int rc = io_uring_submit_and_wait(&g->ring, 1);
		pthread_mutex_lock(&g->mu);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			/* The ring itself broke: fail everything in flight. */
			for (int i = 0; i < qd; i++) {
				struct ereq *q = &g->slots[i];
				if (!q->busy) continue;
				q->busy = 0;
				g->ring_inflight--;
				if (q->prio > 0) g->ring_pf_inflight--;
				complete_req(g, q, rc);
			}
			run_callbacks(g);
			continue;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&g->ring, head, cqe) {
			seen++;
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			if (tag == EV_TAG) {
				if (!g->stop) arm_eventfd(g);
				continue;
			}
			int slot = (int)(tag - 2);
			struct ereq *q = &g->slots[slot];
			int res = q->synth ? q->synth_res : cqe->res;
			if (complete_req(g, q, res)) {
				issue_hooks(g, q, BK_RING);
				prep_req(g, slot);
			} else {
				q->busy = 0;
				g->ring_inflight--;
				if (q->prio > 0) g->ring_pf_inflight--;
			}
		}
		io_uring_cq_advance(&g->ring, seen);
		run_callbacks(g);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---------------------------------------------------------------- pool threads */

static void *pool_main(void *arg)
{
	struct offload_engine *g = arg;
	pthread_mutex_lock(&g->mu);
	for (;;) {
		struct ereq q;
		if (!take_req(g, BK_POOL, 1, &q)) {
			if (g->stop) break;
			pthread_cond_wait(&g->pool_cv, &g->mu);
			continue;
		}
		for (;;) {
			issue_hooks(g, &q, BK_POOL);
			int fd = g->files[q.r->file].fd;
			int res;
			if (q.synth) {
				res = q.synth_res;
			} else {
				size_t n = (size_t)xfer_len(g, &q);
				pthread_mutex_unlock(&g->mu);
				ssize_t k = pread(fd, q.buf, n, (off_t)q.off);
				res = k < 0 ? -errno : (int)k;
				pthread_mutex_lock(&g->mu);
			}
			if (!complete_req(g, &q, res)) break;
		}
		run_callbacks(g);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---------------------------------------------------------------- public */

static int cmp_iov(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct iovec *)a)->iov_base;
	uintptr_t y = (uintptr_t)((const struct iovec *)b)->iov_base;
	return x < y ? -1 : x > y;
}

static void register_regions(struct offload_engine *g, const struct iovec *regions, int n)
{
	int cnt = 0;
	for (int i = 0; i < n; i++)
		cnt += (int)((regions[i].iov_len + FIXED_MAX_BYTES - 1) / FIXED_MAX_BYTES);
	if (cnt == 0) return;
	if (cnt > 16384) {
		snprintf(g->why_mode + strlen(g->why_mode), sizeof g->why_mode - strlen(g->why_mode),
			 ", no fixed buffers (%d pieces > 16384)", cnt);
		return;
	}
	struct iovec *v = calloc((size_t)cnt, sizeof *v);
	if (!v) return;
	int k = 0;
	for (int i = 0; i < n; i++)
		for (size_t o = 0; o < regions[i].iov_len; o += FIXED_MAX_BYTES) {
			size_t l = regions[i].iov_len - o;
			v[k].iov_base = (char *)regions[i].iov_base + o;
			v[k].iov_len = l < FIXED_MAX_BYTES ? l : FIXED_MAX_BYTES;
			k++;
		}
	qsort(v, (size_t)cnt, sizeof *v, cmp_iov);
	int rc = io_uring_register_buffers(&g->ring, v, (unsigned)cnt);
	if (rc < 0) {
		size_t l = strlen(g->why_mode);
		snprintf(g->why_mode + l, sizeof g->why_mode - l, ", no fixed buffers (register: %s)", strerror(-rc));
		free(v);
		return;
	}
	g->fixed = v;
	g->nfixed = cnt;
}

int offload_engine_create(const struct offload_engine_opts *o, const struct iovec *regions,
			  int nregions, struct offload_engine **out, struct nv_err *e)
{
	*out = NULL;
	struct offload_engine_opts d;
	offload_engine_opts_default(&d);
	if (!o) o = &d;
	if (o->queue_depth < 1 || o->queue_depth > 4096)
		return core_err_set(e, NV_EINVAL, "io engine", "queue depth", "use 1..4096",
				    "queue depth %d out of range", o->queue_depth);
	if (o->request_size < OFFLOAD_ALIGN || o->request_size % OFFLOAD_ALIGN || o->request_size > (1u << 30))
		return core_err_set(e, NV_EINVAL, "io engine", "request size", "use a multiple of 4096 up to 1 GiB",
				    "request size %zu is not a multiple of %d", o->request_size, OFFLOAD_ALIGN);
	if (o->short_cap % OFFLOAD_ALIGN)
		return core_err_set(e, NV_EINVAL, "io engine", "short_cap", NULL,
				    "test hook short_cap %zu is not a multiple of %d", o->short_cap, OFFLOAD_ALIGN);
	struct offload_engine *g = calloc(1, sizeof *g);
	if (!g) return core_err_set(e, NV_ENOMEM, "io engine", NULL, NULL, "out of memory");
	g->o = *o;
	if (g->o.pread_threads < 1) g->o.pread_threads = 1;
	if (g->o.max_files < 1) g->o.max_files = 256;
	g->evfd = -1;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->done_cv, NULL);
	pthread_cond_init(&g->pool_cv, NULL);
	g->files = calloc((size_t)g->o.max_files, sizeof *g->files);
	g->slots = calloc((size_t)g->o.queue_depth, sizeof *g->slots);
	g->pool_thr = calloc((size_t)g->o.pread_threads, sizeof *g->pool_thr);
	if (!g->files || !g->slots || !g->pool_thr) {
		offload_engine_destroy(g);
		return core_err_set(e, NV_ENOMEM, "io engine", NULL, NULL, "out of memory");
	}

	if (g->o.mode != OFFLOAD_IO_PREAD) {
		int rc = io_uring_queue_init((unsigned)g->o.queue_depth + 2, &g->ring, 0);
		if (rc == 0) {
			g->evfd = eventfd(0, EFD_CLOEXEC);
			if (g->evfd < 0) {
				rc = -errno;
				io_uring_queue_exit(&g->ring);
			}
		}
		if (rc < 0) {
			if (g->o.mode == OFFLOAD_IO_URING) {
				offload_engine_destroy(g);
				return core_err_set(e, rc, "io_uring", NULL,
						    "check /proc/sys/kernel/io_uring_disabled and seccomp, or use NVMOE_IO=pread",
						    "io_uring_queue_init failed: %s", strerror(-rc));
			}
			snprintf(g->why_mode, sizeof g->why_mode, "io_uring unavailable (%s)", strerror(-rc));
		} else {
			g->have_ring = 1;
			snprintf(g->why_mode, sizeof g->why_mode, "io_uring");
			register_regions(g, regions, nregions);
			if (pthread_create(&g->ring_thr, NULL, ring_main, g) != 0) {
				offload_engine_destroy(g);
				return core_err_set(e, NV_ENOMEM, "io engine", NULL, NULL, "cannot start the ring thread");
			}
			g->ring_started = 1;
		}
	} else {
		snprintf(g->why_mode, sizeof g->why_mode, "pread forced");
	}
	for (int i = 0; i < g->o.pread_threads; i++) {
		if (pthread_create(&g->pool_thr[i], NULL, pool_main, g) != 0) {
			offload_engine_destroy(g);
			return core_err_set(e, NV_ENOMEM, "io engine", NULL, NULL, "cannot start pread threads");
		}
		g->npool++;
	}
	*out = g;
	return 0;
}

void offload_engine_destroy(struct offload_engine *g)
{
	if (!g) return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	/* cancel what is queued and not yet in flight */
	for (int b = 0; b < 2; b++)
		for (int p = 0; p < OFFLOAD_NPRIO; p++)
			while (g->q[b][p].head) {
				struct offload_read *r = g->q[b][p].head;
				fail_read(g, r, NV_ECANCELED, NULL, "engine shut down before the read was issued");
				if (r->inflight_ == 0) finish_read(g, r);
			}
	pthread_cond_broadcast(&g->pool_cv);
	pthread_mutex_unlock(&g->mu);
	if (g->ring_started) {
		uint64_t one = 1;
		ssize_t w = write(g->evfd, &one, sizeof one);
		(void)w;
		pthread_join(g->ring_thr, NULL);
	}
	for (int i = 0; i < g->npool; i++) pthread_join(g->pool_thr[i], NULL);
	pthread_mutex_lock(&g->mu);
	run_callbacks(g); /* those of the cancelled groups */
	pthread_mutex_unlock(&g->mu);
	if (g->have_ring) io_uring_queue_exit(&g->ring);
	if (g->evfd >= 0) close(g->evfd);
	for (int i = 0; i < g->nfiles; i++) {
		if (g->files[i].fd >= 0) close(g->files[i].fd);
		free(g->files[i].path);
	}
	free(g->files);
	free(g->slots);
	free(g->pool_thr);
	free(g->fixed);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->done_cv);
	pthread_cond_destroy(&g->pool_cv);
	free(g);
}

int offload_engine_open(struct offload_engine *g, const char *path, int *id, struct nv_err *e)
{
	pthread_mutex_lock(&g->mu);
	int full = g->nfiles >= g->o.max_files;
	pthread_mutex_unlock(&g->mu);
	if (full)
		return core_err_set(e, NV_ERANGE, path, NULL, "raise offload_engine_opts.max_files",
				    "too many open files in the io engine (%d)", g->o.max_files);
	int direct = !g->o.no_direct;
	int fd = -1;
	if (direct) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		if (fd < 0 && errno == EINVAL) direct = 0; /* filesystem refuses O_DIRECT */
		else if (fd < 0) goto fail;
	}
	if (direct) {
		/* Some filesystems accept the flag at open and refuse the reads. */
		void *probe = NULL;
		if (posix_memalign(&probe, OFFLOAD_ALIGN, OFFLOAD_ALIGN) == 0) {
			ssize_t k = pread(fd, probe, OFFLOAD_ALIGN, 0);
			int err = errno;
			free(probe);
			if (k < 0 && err == EINVAL) { close(fd); fd = -1; direct = 0; }
		}
	}
	if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) goto fail;
	struct stat st;
	if (fstat(fd, &st) != 0) { close(fd); goto fail; }
	char *p = strdup(path);
	if (!p) { close(fd); return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); }
	pthread_mutex_lock(&g->mu);
	int k = g->nfiles;
	g->files[k].path = p;
	g->files[k].fd = fd;
	g->files[k].direct = direct;
	g->files[k].size = (uint64_t)st.st_size;
	if (!direct) g->nbuffered++;
	g->nfiles++; /* published last: the threads only index files of queued reads */
	pthread_mutex_unlock(&g->mu);
	*id = k;
	return 0;
fail:;
	int err = errno;
	return core_err_set(e, -err, path, NULL,
			    err == ENOENT ? "check the path; a converted model needs every file nvmoe convert wrote" : NULL,
			    "cannot open: %s", strerror(err));
}

const char *offload_engine_file_path(const struct offload_engine *g, int id) { return g->files[id].path; }
uint64_t offload_engine_file_size(const struct offload_engine *g, int id) { return g->files[id].size; }
int offload_engine_file_direct(const struct offload_engine *g, int id) { return g->files[id].direct; }
int offload_engine_uses_uring(const struct offload_engine *g) { return g->have_ring; }

int offload_engine_submit(struct offload_engine *g, struct offload_read *r, int n, int prio,
			  struct offload_group *grp, struct nv_err *e)
{
	if (prio < 0) prio = 0;
	if (prio >= OFFLOAD_NPRIO) prio = OFFLOAD_NPRIO - 1;
	for (int i = 0; i < n; i++) {
		if (r[i].file < 0 || r[i].file >= g->nfiles)
			return core_err_set(e, NV_EINVAL, "io engine", NULL, NULL, "read %d: bad file id %d", i, r[i].file);
		const struct eng_file *f = &g->files[r[i].file];
		if (f->direct && ((r[i].off | (uint64_t)(uintptr_t)r[i].buf) % OFFLOAD_ALIGN))
			return core_err_set(e, NV_EINVAL, f->path, NULL, "internal: O_DIRECT reads need 4 KiB alignment",
					    "misaligned O_DIRECT read: offset %llu, buffer %p",
					    (unsigned long long)r[i].off, r[i].buf);
	}
	grp->pending_ = n;
	grp->status_ = 0;
	core_err_clear(&grp->err_);
	int wake_ring = 0, wake_pool = 0;
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < n; i++) {
		struct offload_read *x = &r[i];
		x->status = 0;
		x->next_ = 0;
		x->inflight_ = 0;
		x->grp_ = grp;
		x->qnext_ = NULL;
		if (x->len == 0 || g->stop) {
			if (g->stop) fail_read(g, x, NV_ECANCELED, NULL, "engine is shutting down");
			finish_read(g, x);
			continue;
		}
		int b = read_backend(g, x);
		q_push(&g->q[b][prio], x);
		if (b == BK_RING) wake_ring = 1; else wake_pool = 1;
	}
	if (wake_pool) pthread_cond_broadcast(&g->pool_cv);
	if (n == 0) pthread_cond_broadcast(&g->done_cv);
	/* with no reads (or all empty) the callback is due now */
	run_callbacks(g);
	pthread_mutex_unlock(&g->mu);
	if (wake_ring) {
		uint64_t one = 1;
		ssize_t w = write(g->evfd, &one, sizeof one);
		(void)w;
	}
	if (n == 0 && grp->done) grp->done(grp, grp->arg);
	return 0;
}

void offload_engine_promote(struct offload_engine *g, struct offload_group *grp)
{
	pthread_mutex_lock(&g->mu);
	for (int b = 0; b < 2; b++) {
		struct rq *pf = &g->q[b][OFFLOAD_PRIO_PREFETCH], keep = { NULL, NULL };
		while (pf->head) {
			struct offload_read *r = pf->head;
			q_pop(pf);
			q_push(r->grp_ == grp ? &g->q[b][OFFLOAD_PRIO_DEMAND] : &keep, r);
		}
		*pf = keep;
	}
	pthread_mutex_unlock(&g->mu);
}

int offload_engine_cancel(struct offload_engine *g, struct offload_group *grp)
{
	int n = 0;
	pthread_mutex_lock(&g->mu);
	for (int b = 0; b < 2; b++)
		for (int p = 0; p < OFFLOAD_NPRIO; p++)
			for (struct offload_read *r = g->q[b][p].head, *nx; r; r = nx) {
				nx = r->qnext_;
				if (r->grp_ != grp) continue;
				fail_read(g, r, NV_ECANCELED, NULL, "prefetch cancelled: no longer needed");
				if (r->inflight_ == 0) finish_read(g, r);
				n++;
			}
	run_callbacks(g);
	pthread_mutex_unlock(&g->mu);
	return n;
}

int offload_engine_wait(struct offload_engine *g, struct offload_group *grp, struct nv_err *e)
{
	pthread_mutex_lock(&g->mu);
	while (grp->pending_ > 0) pthread_cond_wait(&g->done_cv, &g->mu);
	int st = grp->status_;
	if (st && e) *e = grp->err_;
	pthread_mutex_unlock(&g->mu);
	return st;
}

int offload_group_status(const struct offload_group *grp, struct nv_err *e)
{
	if (grp->status_ && e) *e = grp->err_;
	return grp->status_;
}

int offload_engine_poll(struct offload_engine *g, struct offload_group *grp)
{
	pthread_mutex_lock(&g->mu);
	int done = grp->pending_ <= 0;
	pthread_mutex_unlock(&g->mu);
	return done;
}

void offload_engine_stats(struct offload_engine *g, struct offload_engine_stats *s)
{
	pthread_mutex_lock(&g->mu);
	*s = g->st;
	pthread_mutex_unlock(&g->mu);
}

const char *offload_engine_describe(const struct offload_engine *g, char *buf, size_t n)
{
	if (g->have_ring)
		snprintf(buf, n, "%s, qd %d, %zu KiB requests, %d fixed buffer(s); %d file(s) O_DIRECT, %d buffered via pread pool (%d threads)%s",
			 g->why_mode, g->o.queue_depth, g->o.request_size >> 10, g->nfixed,
			 g->nfiles - g->nbuffered, g->nbuffered, g->npool,
			 g->nbuffered ? " (O_DIRECT refused or disabled)" : "");
	else
		snprintf(buf, n, "pread pool (%d threads, %zu KiB requests): %s; %d file(s) O_DIRECT, %d buffered",
			 g->npool, g->o.request_size >> 10, g->why_mode, g->nfiles - g->nbuffered, g->nbuffered);
	return buf;
}
