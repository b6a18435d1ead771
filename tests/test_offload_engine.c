/* tests/test_offload_engine.c - the io engine on both paths (io_uring + O_DIRECT,
 * pread pool), against files whose bytes are known from a formula: multi-request
 * reads, unaligned lengths, short transfers resubmitted, -EAGAIN retried,
 * injected -EIO reported with file/offset/length, end of file and a file that
 * shrinks under the reader, misaligned O_DIRECT refused, demand before prefetch. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "offload/engine.h"
#include "offload_testlib.h"
#include "testutil.h"

#define FILE_BYTES (3u << 20) /* 3 MiB: several 64 KiB requests per read */
#define SEED 7

static char g_path[4200];

static struct offload_engine *mk(int mode, size_t rs, int qd, void *region, size_t rlen,
				 void (*tweak)(struct offload_engine_opts *))
{
	struct offload_engine_opts o;
	offload_engine_opts_default(&o);
	o.mode = mode;
	o.request_size = rs;
	o.queue_depth = qd;
	if (tweak) tweak(&o);
	struct iovec v = { region, rlen };
	struct offload_engine *g;
	struct nv_err e;
	int rc = offload_engine_create(&o, region ? &v : NULL, region ? 1 : 0, &g, &e);
	if (rc) { char b[1024]; fprintf(stderr, "engine: %s\n", core_err_str(&e, b, sizeof b)); exit(1); }
	return g;
}

static int open_file(struct offload_engine *g)
{
	int id;
	struct nv_err e;
	if (offload_engine_open(g, g_path, &id, &e)) { char b[1024]; fprintf(stderr, "%s\n", core_err_str(&e, b, sizeof b)); exit(1); }
	return id;
}

/* Reads at many offsets/lengths, all in one group, verified byte by byte. */
static void t_basic(int mode, const char *tag)
{
	size_t blen = 8u << 20;
	uint8_t *buf = aligned_alloc(4096, blen);
	struct offload_engine *g = mk(mode, 64 << 10, 8, buf, blen, NULL);
	TU_CHECK(offload_engine_uses_uring(g) == (mode == OFFLOAD_IO_URING), "%s: uses_uring %d",
		 tag, offload_engine_uses_uring(g));
	int f = open_file(g);
	TU_CHECK(offload_engine_file_direct(g, f), "%s: file should be O_DIRECT", tag);
	TU_CHECK(offload_engine_file_size(g, f) == FILE_BYTES, "%s: size %llu", tag,
		 (unsigned long long)offload_engine_file_size(g, f));
	/* (offset, length): aligned offsets; lengths odd, multi-request, tail of file */
	static const uint64_t spec[][2] = {
		{0, 4096}, {4096, 100}, {8192, 65536 * 3 + 17}, {1 << 20, 1 << 20},
		{FILE_BYTES - 8192, 8192}, {FILE_BYTES - 4096, 4000}, {12288, 1},
	};
	enum { N = sizeof spec / sizeof spec[0] };
	struct offload_read r[N];
	uint64_t pos = 0;
	for (int i = 0; i < N; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].file = f;
		r[i].off = spec[i][0];
		r[i].len = spec[i][1];
		r[i].buf = buf + pos;
		memset(buf + pos, 0xEE, offload_align_up(spec[i][1]));
		pos += offload_align_up(spec[i][1]);
	}
	struct offload_group grp = {0};
	struct nv_err e;
	int rc = offload_engine_submit(g, r, N, OFFLOAD_PRIO_DEMAND, &grp, &e);
	TU_CHECK(rc == 0, "%s: submit %d", tag, rc);
	rc = offload_engine_wait(g, &grp, &e);
	TU_CHECK(rc == 0, "%s: wait %d", tag, rc);
	for (int i = 0; i < N; i++) {
		TU_CHECK(r[i].status == 0, "%s: read %d status %d", tag, i, r[i].status);
		long long bad = ot_check(r[i].buf, r[i].len, r[i].off, SEED);
		TU_CHECK(bad < 0, "%s: read %d (off %llu len %llu): byte %lld got 0x%02x expected 0x%02x", tag, i,
			 (unsigned long long)r[i].off, (unsigned long long)r[i].len, bad,
			 bad >= 0 ? ((uint8_t *)r[i].buf)[bad] : 0, bad >= 0 ? ot_byte(r[i].off + (uint64_t)bad, SEED) : 0);
	}
	struct offload_engine_stats st;
	offload_engine_stats(g, &st);
	uint64_t want_req = 0, want_bytes = 0;
	for (int i = 0; i < N; i++) {
		uint64_t cap = offload_align_up(spec[i][1]);
		want_req += (cap + (64 << 10) - 1) / (64 << 10);
		uint64_t end = spec[i][0] + cap > FILE_BYTES ? FILE_BYTES : spec[i][0] + cap;
		want_bytes += end - spec[i][0];
	}
	TU_CHECK(st.requests == want_req, "%s: requests %llu expected %llu", tag,
		 (unsigned long long)st.requests, (unsigned long long)want_req);
	TU_CHECK(st.bytes == want_bytes, "%s: bytes %llu expected %llu", tag,
		 (unsigned long long)st.bytes, (unsigned long long)want_bytes);
	TU_CHECK(st.reads == N && st.errors == 0, "%s: reads %llu errors %llu", tag,
		 (unsigned long long)st.reads, (unsigned long long)st.errors);
	if (mode == OFFLOAD_IO_URING)
		TU_CHECK(st.fixed_requests == st.requests, "%s: fixed %llu of %llu", tag,
			 (unsigned long long)st.fixed_requests, (unsigned long long)st.requests);
	else
		TU_CHECK(st.pool_requests == st.requests, "%s: pool %llu of %llu", tag,
			 (unsigned long long)st.pool_requests, (unsigned long long)st.requests);
	char d[512];
	offload_engine_describe(g, d, sizeof d);
	TU_CHECK(strstr(d, mode == OFFLOAD_IO_URING ? "io_uring" : "pread") != NULL, "%s: describe '%s'", tag, d);
	printf("%s: %s\n", tag, d);
	offload_engine_destroy(g);
	free(buf);
}

static size_t g_cap;
static long g_nth;
static void tw_short(struct offload_engine_opts *o) { o->short_cap = g_cap; }
static void tw_fail(struct offload_engine_opts *o) { o->fail_nth = g_nth; }
static void tw_eagain(struct offload_engine_opts *o) { o->eagain_nth = g_nth; }

/* One 1 MiB read; returns its status, error in *e. */
static int one_read(struct offload_engine *g, int f, uint64_t off, uint64_t len, uint8_t *buf, struct nv_err *e)
{
	struct offload_read r = { .file = f, .off = off, .len = len, .buf = buf };
	struct offload_group grp = {0};
	int rc = offload_engine_submit(g, &r, 1, 0, &grp, e);
	if (rc) return rc;
	return offload_engine_wait(g, &grp, e);
}

static void t_short(int mode, const char *tag)
{
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	g_cap = 8192;
	struct offload_engine *g = mk(mode, 64 << 10, 4, NULL, 0, tw_short);
	int f = open_file(g);
	struct nv_err e;
	int rc = one_read(g, f, 4096, (1 << 20) - 5, buf, &e);
	TU_CHECK(rc == 0, "%s: short-capped read rc %d", tag, rc);
	long long bad = ot_check(buf, (1 << 20) - 5, 4096, SEED);
	TU_CHECK(bad < 0, "%s: short-capped read byte %lld wrong", tag, bad);
	struct offload_engine_stats st;
	offload_engine_stats(g, &st);
	/* 16 requests of 64 KiB, each moved 8 KiB at a time: 7 resubmissions each */
	TU_CHECK(st.short_reads == 16 * 7, "%s: short_reads %llu expected %d", tag,
		 (unsigned long long)st.short_reads, 16 * 7);
	offload_engine_destroy(g);
	free(buf);
}

static void t_fail(int mode, const char *tag)
{
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	g_nth = 3;
	struct offload_engine *g = mk(mode, 256 << 10, 1, NULL, 0, tw_fail);
	int f = open_file(g);
	struct nv_err e;
	core_err_clear(&e);
	/* requests 1-4 of this read: the 3rd (offset 65536 + 2*256K) fails */
	int rc = one_read(g, f, 65536, 1 << 20, buf, &e);
	TU_CHECK(rc == -EIO, "%s: injected EIO: rc %d expected %d", tag, rc, -EIO);
	char msg[2048];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(strstr(msg, g_path) != NULL, "%s: message lacks the file: %s", tag, msg);
	TU_CHECK(strstr(msg, "offset 589824") != NULL, "%s: message lacks the offset 589824: %s", tag, msg);
	TU_CHECK(strstr(msg, "262144 bytes") != NULL, "%s: message lacks the length: %s", tag, msg);
	TU_CHECK(strstr(msg, "Input/output error") != NULL, "%s: message lacks the cause: %s", tag, msg);
	/* the engine keeps working */
	rc = one_read(g, f, 0, 1 << 20, buf, &e);
	TU_CHECK(rc == 0 && ot_check(buf, 1 << 20, 0, SEED) < 0, "%s: read after EIO rc %d", tag, rc);
	offload_engine_destroy(g);

	g_nth = 2;
	g = mk(mode, 256 << 10, 2, NULL, 0, tw_eagain);
	f = open_file(g);
	rc = one_read(g, f, 0, 1 << 20, buf, &e);
	TU_CHECK(rc == 0 && ot_check(buf, 1 << 20, 0, SEED) < 0, "%s: read with EAGAIN rc %d", tag, rc);
	struct offload_engine_stats st;
	offload_engine_stats(g, &st);
	TU_CHECK(st.eagain == 1, "%s: eagain %llu expected 1", tag, (unsigned long long)st.eagain);
	offload_engine_destroy(g);
	free(buf);
}

/* Reading past the end, and a file that shrinks after open. */
static void t_eof(int mode, const char *tag)
{
	char p2[4300];
	snprintf(p2, sizeof p2, "%s.shrink", g_path);
	TU_CHECK(ot_write_pattern(p2, FILE_BYTES, SEED) == 0, "write %s", p2);
	uint8_t *buf = aligned_alloc(4096, 2 << 20);
	struct offload_engine *g = mk(mode, 128 << 10, 4, NULL, 0, NULL);
	int f;
	struct nv_err e;
	TU_CHECK(offload_engine_open(g, p2, &f, &e) == 0, "open");
	int rc = one_read(g, f, FILE_BYTES - 8192, 65536, buf, &e);
	TU_CHECK(rc == NV_EFORMAT, "%s: read past EOF rc %d expected %d", tag, rc, NV_EFORMAT);
	char msg[2048];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(strstr(msg, "end of file") && strstr(msg, p2), "%s: EOF message: %s", tag, msg);
	/* shrink under the reader */
	TU_CHECK(truncate(p2, 1 << 20) == 0, "truncate");
	rc = one_read(g, f, (1 << 20) + 4096, 1 << 20, buf, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EFORMAT, "%s: read of a shrunk file rc %d: %s", tag, rc, msg);
	TU_CHECK(strstr(msg, "file is now 1048576 bytes") != NULL, "%s: shrink message: %s", tag, msg);
	rc = one_read(g, f, 0, 1 << 20, buf, &e);
	TU_CHECK(rc == 0 && ot_check(buf, 1 << 20, 0, SEED) < 0, "%s: read of the remaining part rc %d", tag, rc);
	offload_engine_destroy(g);
	unlink(p2);
	free(buf);
}

static void t_misaligned(void)
{
	struct offload_engine *g = mk(OFFLOAD_IO_URING, 64 << 10, 4, NULL, 0, NULL);
	int f = open_file(g);
	uint8_t *buf = aligned_alloc(4096, 65536);
	struct offload_read r = { .file = f, .off = 100, .len = 4096, .buf = buf };
	struct offload_group grp = {0};
	struct nv_err e;
	int rc = offload_engine_submit(g, &r, 1, 0, &grp, &e);
	TU_CHECK(rc == NV_EINVAL, "misaligned O_DIRECT read accepted: rc %d", rc);
	offload_engine_destroy(g);
	free(buf);
}

/* A buffered (no O_DIRECT) file goes to the pool even with a ring, any alignment. */
static void tw_nodirect(struct offload_engine_opts *o) { o->no_direct = 1; }
static void t_buffered(void)
{
	struct offload_engine *g = mk(OFFLOAD_IO_URING, 64 << 10, 4, NULL, 0, tw_nodirect);
	int f = open_file(g);
	TU_CHECK(!offload_engine_file_direct(g, f), "no_direct file is direct");
	uint8_t *buf = malloc(300000);
	struct nv_err e;
	int rc = one_read(g, f, 12345, 299999, buf + 1, &e);
	TU_CHECK(rc == 0 && ot_check(buf + 1, 299999, 12345, SEED) < 0, "buffered unaligned read rc %d", rc);
	struct offload_engine_stats st;
	offload_engine_stats(g, &st);
	TU_CHECK(st.pool_requests == st.requests && st.requests == 5, "buffered: pool %llu of %llu requests (expected 5)",
		 (unsigned long long)st.pool_requests, (unsigned long long)st.requests);
	char d[512];
	offload_engine_describe(g, d, sizeof d);
	TU_CHECK(strstr(d, "1 buffered") != NULL, "describe does not report the buffered file: %s", d);
	offload_engine_destroy(g);
	free(buf);
}

/* Demand before prefetch: with one request in flight, a demand read submitted
 * behind 32 queued prefetch reads completes before all but those already issued. */
static atomic_int g_order;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
struct pf { struct offload_group grp; struct offload_read r; int done_at; };
static void on_pf(struct offload_group *grp, void *arg)
{
	(void)grp;
	struct pf *p = arg;
	pthread_mutex_lock(&g_mu);
	p->done_at = atomic_fetch_add(&g_order, 1);
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
}

static void t_priority(void)
{
	enum { NP = 32 };
	uint8_t *buf = aligned_alloc(4096, (size_t)(NP + 1) * 65536);
	struct offload_engine *g = mk(OFFLOAD_IO_URING, 64 << 10, 1, NULL, 0, NULL);
	int f = open_file(g);
	struct pf *p = calloc(NP + 1, sizeof *p);
	struct nv_err e;
	atomic_store(&g_order, 0);
	for (int i = 0; i <= NP; i++) {
		p[i].r = (struct offload_read){ .file = f, .off = (uint64_t)i * 65536, .len = 65536, .buf = buf + (size_t)i * 65536 };
		p[i].grp.done = on_pf;
		p[i].grp.arg = &p[i];
		p[i].done_at = -1;
	}
	for (int i = 0; i < NP; i++) offload_engine_submit(g, &p[i].r, 1, OFFLOAD_PRIO_PREFETCH, &p[i].grp, &e);
	int before = atomic_load(&g_order);
	offload_engine_submit(g, &p[NP].r, 1, OFFLOAD_PRIO_DEMAND, &p[NP].grp, &e);
	pthread_mutex_lock(&g_mu);
	while (atomic_load(&g_order) < NP + 1) pthread_cond_wait(&g_cv, &g_mu);
	pthread_mutex_unlock(&g_mu);
	offload_engine_destroy(g);
	for (int i = 0; i < NP; i++)
		TU_CHECK(p[i].r.status == 0 && ot_check(p[i].r.buf, 65536, p[i].r.off, SEED) < 0, "prefetch %d status %d", i, p[i].r.status);
	TU_CHECK(p[NP].done_at >= 0 && p[NP].r.status == 0, "demand read not completed (status %d)", p[NP].r.status);
	TU_CHECK(p[NP].done_at <= before + 1, "demand read finished %d-th; %d prefetches had finished when it was submitted",
		 p[NP].done_at, before);
	free(p);
	free(buf);
}

/* A queued prefetch promoted to demand overtakes the prefetches queued before it. */
static void t_promote(void)
{
	enum { NP = 32 };
	uint8_t *buf = aligned_alloc(4096, (size_t)NP * 65536);
	struct offload_engine *g = mk(OFFLOAD_IO_URING, 64 << 10, 1, NULL, 0, NULL);
	int f = open_file(g);
	struct pf *p = calloc(NP, sizeof *p);
	struct nv_err e;
	atomic_store(&g_order, 0);
	for (int i = 0; i < NP; i++) {
		p[i].r = (struct offload_read){ .file = f, .off = (uint64_t)i * 65536, .len = 65536, .buf = buf + (size_t)i * 65536 };
		p[i].grp.done = on_pf;
		p[i].grp.arg = &p[i];
		p[i].done_at = -1;
		offload_engine_submit(g, &p[i].r, 1, OFFLOAD_PRIO_PREFETCH, &p[i].grp, &e);
	}
	int before = atomic_load(&g_order);
	offload_engine_promote(g, &p[NP - 1].grp);
	pthread_mutex_lock(&g_mu);
	while (atomic_load(&g_order) < NP) pthread_cond_wait(&g_cv, &g_mu);
	pthread_mutex_unlock(&g_mu);
	offload_engine_destroy(g);
	TU_CHECK(p[NP - 1].r.status == 0 && ot_check(buf + (size_t)(NP - 1) * 65536, 65536, (uint64_t)(NP - 1) * 65536, SEED) < 0,
		 "promoted read failed");
	TU_CHECK(p[NP - 1].done_at <= before + 1, "promoted read finished %d-th; %d had finished when it was promoted",
		 p[NP - 1].done_at, before);
	free(p);
	free(buf);
}

int main(void)
{
	char *dir = ot_tmpdir("engine");
	snprintf(g_path, sizeof g_path, "%s/pattern.bin", dir);
	if (ot_write_pattern(g_path, FILE_BYTES, SEED)) { perror(g_path); return 1; }
	t_basic(OFFLOAD_IO_URING, "uring");
	t_basic(OFFLOAD_IO_PREAD, "pread");
	t_short(OFFLOAD_IO_URING, "uring");
	t_short(OFFLOAD_IO_PREAD, "pread");
	t_fail(OFFLOAD_IO_URING, "uring");
	t_fail(OFFLOAD_IO_PREAD, "pread");
	t_eof(OFFLOAD_IO_URING, "uring");
	t_eof(OFFLOAD_IO_PREAD, "pread");
	t_misaligned();
	t_buffered();
	t_priority();
	t_promote();
	ot_rm_rf(dir);
	free(dir);
	TU_DONE();
}
