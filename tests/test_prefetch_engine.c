/* tests/test_prefetch_engine.c - offload_engine_cancel (stale prefetches): behind one
 * request in flight, the queued reads of the cancelled groups are never issued
 * (their buffers keep a sentinel), complete with NV_ECANCELED through their
 * callbacks, and the other groups still read the right bytes; a group with nothing
 * queued any more is left alone. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload/engine.h"
#include "offload_testlib.h"
#include "testutil.h"

#define FILE_BYTES (4u << 20)
#define SEED 11
#define RL 65536

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_done;
struct pf { struct offload_group grp; struct offload_read r; int calls, status; };
static void on_done(struct offload_group *grp, void *arg)
{
	struct pf *p = arg;
	pthread_mutex_lock(&g_mu);
	p->calls++;
	p->status = offload_group_status(grp, NULL);
	g_done++;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
}

static void t_cancel(int mode, const char *tag, const char *path)
{
	enum { N = 256, NC = 128 }; /* the last NC groups are cancelled */
	uint8_t *buf = aligned_alloc(4096, (size_t)N * RL);
	memset(buf, 0xA5, (size_t)N * RL);
	struct offload_engine_opts o;
	offload_engine_opts_default(&o);
	o.mode = mode;
	o.request_size = RL;
	o.queue_depth = 1;
	o.pread_threads = 1;
	struct iovec v = { buf, (size_t)N * RL };
	struct offload_engine *g;
	struct nv_err e;
	if (offload_engine_create(&o, &v, 1, &g, &e)) { TU_CHECK(0, "%s: engine: %s", tag, e.why); free(buf); return; }
	int f;
	if (offload_engine_open(g, path, &f, &e)) { TU_CHECK(0, "%s: open: %s", tag, e.why); offload_engine_destroy(g); free(buf); return; }
	struct pf *p = calloc(N, sizeof *p);
	g_done = 0;
	for (int i = 0; i < N; i++) {
		p[i].r = (struct offload_read){ .file = f, .off = (uint64_t)(i % (FILE_BYTES / RL)) * RL, .len = RL,
						 .buf = buf + (size_t)i * RL };
		p[i].grp.done = on_done;
		p[i].grp.arg = &p[i];
		offload_engine_submit(g, &p[i].r, 1, OFFLOAD_PRIO_PREFETCH, &p[i].grp, &e);
	}
	int cancelled = 0;
	for (int i = N - NC; i < N; i++) cancelled += offload_engine_cancel(g, &p[i].grp);
	pthread_mutex_lock(&g_mu);
	while (g_done < N) pthread_cond_wait(&g_cv, &g_mu);
	pthread_mutex_unlock(&g_mu);
	/* cancelling again: nothing queued, nothing happens */
	TU_CHECK(offload_engine_cancel(g, &p[N - 1].grp) == 0, "%s: second cancel cancelled something", tag);
	struct offload_engine_stats st;
	offload_engine_stats(g, &st);
	offload_engine_destroy(g);
	int nc = 0;
	for (int i = 0; i < N; i++) {
		TU_CHECK(p[i].calls == 1, "%s: group %d: %d callbacks", tag, i, p[i].calls);
		if (p[i].status == NV_ECANCELED) {
			nc++;
			TU_CHECK(i >= N - NC, "%s: group %d was not cancelled but failed", tag, i);
			int clean = 1;
			for (size_t j = 0; j < RL && clean; j++) clean = buf[(size_t)i * RL + j] == 0xA5;
			TU_CHECK(clean, "%s: cancelled group %d was read into its buffer", tag, i);
		} else {
			TU_CHECK(p[i].status == 0 && ot_check(buf + (size_t)i * RL, RL, p[i].r.off, SEED) < 0,
				 "%s: group %d: status %d or wrong bytes", tag, i, p[i].status);
		}
	}
	/* 128 groups stood behind 128 others with one request in flight: unless this
	 * thread stalled for the whole of those reads, most were still queued */
	TU_CHECK(nc == cancelled && nc > 0, "%s: %d groups ended cancelled, cancel() reported %d", tag, nc, cancelled);
	TU_CHECK(st.requests == (uint64_t)(N - nc), "%s: %llu requests issued, expected %d", tag,
		 (unsigned long long)st.requests, N - nc);
	printf("%s: %d of %d queued groups cancelled\n", tag, nc, NC);
	free(p);
	free(buf);
}

int main(void)
{
	char *dir = ot_tmpdir("pfengine");
	char path[4300];
	snprintf(path, sizeof path, "%s/pattern.bin", dir);
	if (ot_write_pattern(path, FILE_BYTES, SEED)) { perror(path); return 1; }
	t_cancel(OFFLOAD_IO_URING, "uring", path);
	t_cancel(OFFLOAD_IO_PREAD, "pread", path);
	unlink(path);
	rmdir(dir);
	free(dir);
	TU_DONE();
}
