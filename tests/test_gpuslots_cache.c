/* tests/test_gpuslots_cache.c - the GPU expert-slot logic (cache/gpu.c) on a FAKE device,
 * so that it runs without a GPU:
 *   the fake has two in-order queues (copy, compute) that the test advances at will;
 *   copies read the host bytes when they EXECUTE (not when issued), events complete when
 *   their latest record executes, waits block a queue; "kernels" enqueued on the compute
 *   queue check, when they execute, that the slot holds the bytes of the expert they were
 *   given (any slot reuse before its use completed, or a host view released before its
 *   copy ran and then overwritten, shows up as wrong bytes).  The inner source is a tiny
 *   host cache that overwrites a slot as soon as it reuses it.
 * Checks: LRU order and statistics, references protect slots and a full cache fails
 * with a clear error, refills wait (GPU side) for the last use, completed victims are
 * preferred, inner views are held until their copy ran (and drained when the inner
 * source is full), store-like layouts go in one copy, 16-byte aligned views, device
 * errors reported with block and expert, pool sizing from avail(), and a randomized
 * run with random queue progress.  Label unit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/gpu.h"
#include "testutil.h"

#define NB 3
#define NE 6
static const size_t PART[CACHE_GPU_NPARTS] = { 100, 7, 100, 7, 50, 3 };

static uint8_t pat(int b, int x, int p, size_t i) { return (uint8_t)(b * 71 + x * 13 + p * 5 + i * 3 + 1); }

/* ------------------------------------------------------------------ fake device */

enum { OP_COPY, OP_RECORD, OP_WAIT, OP_KERNEL };
struct fev { int gen, done_gen; };
struct fop {
	int kind;
	void *dst;
	const void *src;
	size_t n;
	struct fev *ev;
	int gen;
	int b, x;                       /* kernel: expected expert */
	struct core_expert_view v;      /* kernel: device views */
};
#define QCAP 4096
struct fq { struct fop op[QCAP]; int head, tail; };
struct fake {
	struct fq q[2];                 /* 0 copy, 1 compute */
	int fail_copy;                  /* > 0: the n-th next copy fails */
	uint64_t avail;
	int events_live, allocs_live, kernels_run, kernel_bad;
};
static struct fake F;

static void enq(int qi, struct fop op)
{
	struct fq *q = &F.q[qi];
	if (q->tail - q->head >= QCAP) { fprintf(stderr, "fake queue overflow\n"); exit(1); }
	q->op[q->tail++ % QCAP] = op;
}

static int ev_done(const struct fev *e) { return e->done_gen >= e->gen; }

/* Execute the front op of queue qi; 1 when something ran. */
static int step(int qi)
{
	struct fq *q = &F.q[qi];
	if (q->head == q->tail) return 0;
	struct fop *o = &q->op[q->head % QCAP];
	switch (o->kind) {
	case OP_COPY: memcpy(o->dst, o->src, o->n); break;
	case OP_RECORD: if (o->gen > o->ev->done_gen) o->ev->done_gen = o->gen; break;
	case OP_WAIT: if (o->ev->done_gen < o->gen) return 0; break;
	case OP_KERNEL: {
		const uint8_t *pp[6] = { o->v.w1, o->v.w1_scale, o->v.w3, o->v.w3_scale, o->v.w2, o->v.w2_scale };
		F.kernels_run++;
		for (int p = 0; p < 6; p++)
			for (size_t i = 0; i < PART[p]; i++)
				if (pp[p][i] != pat(o->b, o->x, p, i)) {
					if (F.kernel_bad++ < 5)
						fprintf(stderr, "FAIL: kernel for (%d,%d) part %d byte %zu: got %u, expected %u\n", o->b,
							o->x, p, i, pp[p][i], pat(o->b, o->x, p, i));
					tu_failures++;
					p = 6;
					break;
				}
		break;
	}
	}
	q->head++;
	return 1;
}

static void drain(void)
{
	while (step(0) | step(1)) {}
	TU_CHECK(F.q[0].head == F.q[0].tail && F.q[1].head == F.q[1].tail, "fake device deadlocked");
}

static unsigned rnd_state = 12345;
static unsigned rnd(void) { rnd_state = rnd_state * 1103515245u + 12345u; return rnd_state >> 8; }

static void random_progress(void)
{
	int n = (int)(rnd() % 6);
	for (int i = 0; i < n; i++) step((int)(rnd() % 2));
}

static int f_avail(void *a, uint64_t *b) { (void)a; *b = F.avail; return 0; }
static int f_alloc(void *a, size_t n, void **d)
{
	(void)a;
	*d = aligned_alloc(256, (n + 255) / 256 * 256);
	if (*d) { memset(*d, 0xEE, n); F.allocs_live++; }
	return *d ? 0 : -12;
}
static void f_free(void *a, void *d) { (void)a; free(d); F.allocs_live--; }
static int f_event_create(void *a, void **ev)
{
	(void)a;
	*ev = calloc(1, sizeof(struct fev));
	F.events_live++;
	return 0;
}
static void f_event_destroy(void *a, void *ev) { (void)a; free(ev); F.events_live--; }
static int f_copy(void *a, void *dst, const void *src, size_t n)
{
	(void)a;
	if (F.fail_copy > 0 && --F.fail_copy == 0) return -700;
	enq(0, (struct fop){ .kind = OP_COPY, .dst = dst, .src = src, .n = n });
	return 0;
}
static int record(int qi, void *ev)
{
	struct fev *e = ev;
	enq(qi, (struct fop){ .kind = OP_RECORD, .ev = e, .gen = ++e->gen });
	return 0;
}
static int f_record_copy(void *a, void *ev) { (void)a; return record(0, ev); }
static int f_record_compute(void *a, void *ev) { (void)a; return record(1, ev); }
static int waitq(int qi, void *ev)
{
	struct fev *e = ev;
	enq(qi, (struct fop){ .kind = OP_WAIT, .ev = e, .gen = e->gen });
	return 0;
}
static int f_compute_wait(void *a, void *ev) { (void)a; return waitq(1, ev); }
static int f_copy_wait(void *a, void *ev) { (void)a; return waitq(0, ev); }
static int f_query(void *a, void *ev) { (void)a; return ev_done(ev); }
static int f_sync(void *a, void *ev)
{
	(void)a;
	while (!ev_done(ev))
		if (!(step(0) | step(1))) { TU_CHECK(0, "sync on an event that can never complete"); return -1; }
	return 0;
}
static const char *f_errstr(void *a, int rc) { (void)a; return rc == -700 ? "fake copy failure" : "fake error"; }

static const struct cache_gpu_ops FOPS = {
	NULL, f_avail, f_alloc, f_free, f_event_create, f_event_destroy, f_copy, f_record_copy, f_record_compute,
	f_compute_wait, f_copy_wait, f_query, f_sync, f_errstr, NULL,
};

/* ------------------------------------------------------------------ inner host source */

#define HSLOT 512
struct host {
	int n;                 /* slots */
	int key[8], refs[8];   /* key = b*NE+x, -1 */
	unsigned age[8], clock;
	uint8_t mem[8][HSLOT];
	int scattered;         /* parts at odd offsets in reverse order (HF-like) */
	int acquires, releases;
};
static struct host H;

static void hoff(size_t off[6])
{
	if (!H.scattered) { cache_gpu_layout(PART, off); return; } /* store-like: the slot's own layout */
	size_t o = 3;
	for (int p = 5; p >= 0; p--) { off[p] = o; o += PART[p] + 5; }
}

static int h_acquire(void *ctx, int b, int x, struct core_expert_view *v, struct nv_err *e)
{
	(void)ctx;
	int key = b * NE + x, s = -1;
	for (int i = 0; i < H.n; i++) if (H.key[i] == key) s = i;
	if (s < 0) {
		for (int i = 0; i < H.n; i++)
			if (!H.refs[i] && (s < 0 || H.age[i] < H.age[s])) s = i;
		if (s < 0) return core_err_set(e, NV_EFIT, "host", NULL, NULL, "all host slots referenced");
		H.key[s] = key;
		size_t off[6];
		hoff(off);
		memset(H.mem[s], 0xAB, HSLOT); /* the previous expert's bytes are gone at once */
		for (int p = 0; p < 6; p++)
			for (size_t i = 0; i < PART[p]; i++) H.mem[s][off[p] + i] = pat(b, x, p, i);
	}
	H.refs[s]++;
	H.age[s] = ++H.clock;
	H.acquires++;
	size_t off[6];
	hoff(off);
	const uint8_t *m = H.mem[s];
	v->w1 = m + off[0]; v->w1_scale = m + off[1]; v->w3 = m + off[2];
	v->w3_scale = m + off[3]; v->w2 = m + off[4]; v->w2_scale = m + off[5];
	return 0;
}

static void h_release(void *ctx, int b, int x)
{
	(void)ctx;
	for (int i = 0; i < H.n; i++)
		if (H.key[i] == b * NE + x) {
			TU_CHECK(H.refs[i] > 0, "inner release of (%d,%d) without a reference", b, x);
			H.refs[i]--;
			H.releases++;
			return;
		}
	TU_CHECK(0, "inner release of (%d,%d), which it does not hold", b, x);
}

static int h_refs(void)
{
	int r = 0;
	for (int i = 0; i < H.n; i++) r += H.refs[i];
	return r;
}

static struct core_expert_src HSRC = { .acquire = h_acquire, .release = h_release };

/* ------------------------------------------------------------------ helpers */

static void reset(int host_slots, int scattered)
{
	memset(&F, 0, sizeof F);
	memset(&H, 0, sizeof H);
	H.n = host_slots;
	H.scattered = scattered;
	for (int i = 0; i < 8; i++) H.key[i] = -1;
}

static struct cache_gpu *mk(int nslots, int min_slots)
{
	struct cache_gpu_opts o = { .inner = &HSRC, .nblocks = NB, .nexperts = NE, .nslots = nslots, .min_slots = min_slots };
	memcpy(o.part_bytes, PART, sizeof PART);
	struct cache_gpu *g = NULL;
	struct nv_err e = {0};
	if (cache_gpu_create(&o, &FOPS, &g, &e)) {
		char b[1024];
		fprintf(stderr, "create: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	return g;
}

/* acquire + a checking kernel + release; returns acquire's rc */
static int use(struct cache_gpu *g, int b, int x)
{
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	struct core_expert_view v;
	struct nv_err e = {0};
	int rc = s.acquire(s.ctx, b, x, &v, &e);
	if (rc) return rc;
	enq(1, (struct fop){ .kind = OP_KERNEL, .b = b, .x = x, .v = v });
	s.release(s.ctx, b, x);
	return 0;
}

static void finish(struct cache_gpu *g)
{
	cache_gpu_destroy(g);
	drain();
	TU_CHECK(h_refs() == 0, "inner references left after destroy: %d", h_refs());
	TU_CHECK(F.events_live == 0 && F.allocs_live == 0, "leaked events %d / allocations %d", F.events_live, F.allocs_live);
	TU_CHECK(F.kernel_bad == 0, "%d kernels saw wrong bytes", F.kernel_bad);
}

/* ------------------------------------------------------------------ tests */

static void t_lru(void)
{
	reset(8, 0);
	struct cache_gpu *g = mk(3, 0);
	for (int x = 0; x < 3; x++) { use(g, 0, x); drain(); } /* old->new: 0 1 2 */
	use(g, 0, 0); drain();                                  /* 1 2 0 */
	use(g, 1, 4); drain();                                  /* evicts (0,1) */
	TU_CHECK(cache_gpu_lookup(g, 0, 1) < 0, "LRU: (0,1) should have been evicted");
	TU_CHECK(cache_gpu_lookup(g, 0, 0) >= 0 && cache_gpu_lookup(g, 0, 2) >= 0 && cache_gpu_lookup(g, 1, 4) >= 0,
		 "LRU: wrong survivors");
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	TU_CHECK(st.misses == 4 && st.hits == 1 && st.evictions == 1, "stats: misses %llu hits %llu evictions %llu, expected 4 1 1",
		 (unsigned long long)st.misses, (unsigned long long)st.hits, (unsigned long long)st.evictions);
	/* store-like host layout = the slot's layout: one copy per miss */
	TU_CHECK(st.copies == 4, "copies %llu, expected 4 (one per miss: contiguous parts)", (unsigned long long)st.copies);
	size_t off[6];
	size_t ss = cache_gpu_layout(PART, off);
	TU_CHECK(st.bytes_copied == 4 * (off[5] + PART[5]), "bytes copied %llu, expected %zu", (unsigned long long)st.bytes_copied,
		 4 * (off[5] + PART[5]));
	TU_CHECK(cache_gpu_slot_size(g) == ss && ss % 256 == 0, "slot size %zu (layout %zu) not a multiple of 256",
		 cache_gpu_slot_size(g), ss);
	for (int p = 0; p < 6; p++) TU_CHECK(off[p] % 16 == 0, "part %d offset %zu not 16-byte aligned", p, off[p]);
	/* each view is dropped by the first call that sees its copy done; the last one by destroy */
	TU_CHECK(H.acquires == 4 && H.releases == 3, "inner acquires %d releases %d, expected 4 3", H.acquires, H.releases);
	finish(g);
	TU_CHECK(H.releases == 4, "inner releases after destroy %d, expected 4", H.releases);
}

static void t_scattered(void)
{
	reset(8, 1);
	struct cache_gpu *g = mk(2, 0);
	use(g, 2, 5);
	use(g, 1, 1);
	use(g, 2, 5);
	drain();
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	TU_CHECK(st.copies == 12 && st.misses == 2 && st.hits == 1, "scattered: copies %llu misses %llu hits %llu, expected 12 2 1",
		 (unsigned long long)st.copies, (unsigned long long)st.misses, (unsigned long long)st.hits);
	TU_CHECK(F.kernels_run == 3, "kernels run %d, expected 3", F.kernels_run);
	finish(g);
}

static void t_refs(void)
{
	reset(8, 0);
	struct cache_gpu *g = mk(2, 0);
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	struct core_expert_view va, vb, vc;
	struct nv_err e = {0};
	TU_CHECK(s.acquire(s.ctx, 0, 0, &va, &e) == 0, "acquire (0,0)");
	for (int x = 1; x < 5; x++) { use(g, 1, x); drain(); }
	TU_CHECK(cache_gpu_lookup(g, 0, 0) >= 0, "a referenced slot was evicted");
	TU_CHECK(s.acquire(s.ctx, 0, 1, &vb, &e) == 0, "acquire (0,1)");
	int rc = s.acquire(s.ctx, 0, 2, &vc, &e);
	TU_CHECK(rc == NV_EFIT, "all slots referenced: rc %d, expected NV_EFIT", rc);
	TU_CHECK(strstr(e.why, "block 0 expert 2") && strstr(e.why, "in use"), "message does not name the expert: %s", e.why);
	enq(1, (struct fop){ .kind = OP_KERNEL, .b = 0, .x = 0, .v = va });
	enq(1, (struct fop){ .kind = OP_KERNEL, .b = 0, .x = 1, .v = vb });
	s.release(s.ctx, 0, 0);
	s.release(s.ctx, 0, 1);
	TU_CHECK(use(g, 0, 2) == 0, "after releases a slot is free again");
	const uint8_t *pv[6] = { va.w1, va.w1_scale, va.w3, va.w3_scale, va.w2, va.w2_scale };
	for (int p = 0; p < 6; p++) TU_CHECK(((uintptr_t)pv[p] & 15) == 0, "view %d not 16-byte aligned", p);
	finish(g);
}

static void t_use_event(void)
{
	/* one slot: the refill of B must not run before A's kernel */
	reset(8, 0);
	struct cache_gpu *g = mk(1, 1);
	use(g, 0, 0);               /* A: copy + kernel queued, nothing ran */
	while (step(0)) {}          /* the copy ran; A's kernel has not */
	use(g, 0, 1);               /* B: evicts A while its use is pending */
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	TU_CHECK(st.copy_waits == 1, "copy waits %llu, expected 1 (refill ordered after the pending use)",
		 (unsigned long long)st.copy_waits);
	while (step(0)) {}          /* the copy queue must stop at the wait */
	const uint8_t *slot = cache_gpu_slot(g, 0);
	TU_CHECK(slot[0] == pat(0, 0, 0, 0), "slot overwritten before its use completed: byte %u, expected %u", slot[0],
		 pat(0, 0, 0, 0));
	drain();                    /* A's kernel sees A, then B is copied and checked */
	TU_CHECK(F.kernels_run == 2, "kernels run %d, expected 2", F.kernels_run);
	finish(g);

	/* two slots: a victim whose use completed is preferred to an older pending one.
	 * A is acquired first (older in LRU order) but released after B, so B's use
	 * completes first on the in-order compute queue */
	reset(8, 0);
	g = mk(2, 0);
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	struct core_expert_view va;
	struct nv_err e = {0};
	TU_CHECK(s.acquire(s.ctx, 0, 0, &va, &e) == 0, "acquire A");
	use(g, 0, 1);               /* B: acquire, kernel, release */
	enq(1, (struct fop){ .kind = OP_KERNEL, .b = 0, .x = 0, .v = va });
	s.release(s.ctx, 0, 0);     /* A's use recorded after B's */
	while (step(0)) {}
	for (int i = 0; i < 4; i++) step(1); /* wait A, wait B, kernel B, record B's use */
	use(g, 1, 3);               /* C: A is older but pending, B is complete -> B */
	cache_gpu_stats(g, &st);
	TU_CHECK(st.copy_waits == 0, "copy waits %llu, expected 0 (a completed victim was available)",
		 (unsigned long long)st.copy_waits);
	TU_CHECK(cache_gpu_lookup(g, 0, 1) < 0 && cache_gpu_lookup(g, 0, 0) >= 0, "wrong victim: B present %d, A present %d",
		 cache_gpu_lookup(g, 0, 1) >= 0, cache_gpu_lookup(g, 0, 0) >= 0);
	finish(g);

	/* both candidates pending: the LRU one is taken and its refill waits */
	reset(8, 0);
	g = mk(2, 0);
	use(g, 0, 0);
	use(g, 0, 1);
	use(g, 0, 2);               /* nothing ran: evicts (0,0) with its use pending */
	cache_gpu_stats(g, &st);
	TU_CHECK(st.copy_waits == 1 && cache_gpu_lookup(g, 0, 0) < 0, "copy waits %llu (expected 1), (0,0) present %d",
		 (unsigned long long)st.copy_waits, cache_gpu_lookup(g, 0, 0) >= 0);
	finish(g);
}

static void t_inner_hold(void)
{
	/* one host slot: our pending copy holds the inner view; the next miss must finish
	 * that copy (host wait) before the inner source may reuse its slot */
	reset(1, 0);
	struct cache_gpu *g = mk(2, 0);
	use(g, 0, 0);
	TU_CHECK(h_refs() == 1, "inner view released before its copy ran (refs %d)", h_refs());
	use(g, 0, 1);
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	TU_CHECK(st.host_waits == 1, "host waits %llu, expected 1", (unsigned long long)st.host_waits);
	drain();
	TU_CHECK(F.kernels_run == 2 && F.kernel_bad == 0, "kernels %d, bad %d", F.kernels_run, F.kernel_bad);
	use(g, 0, 1);               /* a hit: polls and drops the completed view */
	TU_CHECK(h_refs() == 0, "completed copy still holds its inner view (refs %d)", h_refs());
	finish(g);
}

static void t_errors(void)
{
	reset(8, 0);
	struct cache_gpu *g = mk(2, 0);
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	struct core_expert_view v;
	struct nv_err e = {0};
	F.fail_copy = 1;
	int rc = s.acquire(s.ctx, 1, 2, &v, &e);
	TU_CHECK(rc == NV_EIO && strstr(e.why, "block 1 expert 2") && strstr(e.why, "fake copy failure"),
		 "copy failure: rc %d, message '%s'", rc, e.why);
	drain();
	TU_CHECK(h_refs() == 0 && cache_gpu_lookup(g, 1, 2) < 0, "failed acquire left refs %d / a mapping", h_refs());
	TU_CHECK(use(g, 1, 2) == 0, "the cache works after a failed copy");
	rc = s.acquire(s.ctx, NB, 0, &v, &e);
	TU_CHECK(rc == NV_ERANGE, "out-of-range block: rc %d", rc);
	finish(g);

	/* sizing from avail(): 2.5 slots -> 2; 1.5 -> error naming --vram-budget */
	reset(8, 0);
	size_t off[6];
	size_t ss = cache_gpu_layout(PART, off);
	struct cache_gpu_opts o = { .inner = &HSRC, .nblocks = NB, .nexperts = NE };
	memcpy(o.part_bytes, PART, sizeof PART);
	F.avail = ss * 5 / 2;
	TU_CHECK(cache_gpu_create(&o, &FOPS, &g, &e) == 0, "create");
	TU_CHECK(cache_gpu_nslots(g) == 0, "pool sized before reserve");
	TU_CHECK(use(g, 0, 0) == 0 && cache_gpu_nslots(g) == 2, "lazy sizing: %d slots, expected 2", cache_gpu_nslots(g));
	finish(g);
	reset(8, 0);
	F.avail = ss * 3 / 2;
	TU_CHECK(cache_gpu_create(&o, &FOPS, &g, &e) == 0, "create");
	rc = cache_gpu_reserve(g, &e);
	TU_CHECK(rc == NV_EFIT && !strcmp(e.object, "--vram-budget"), "too small: rc %d object '%s'", rc, e.object);
	TU_CHECK(F.allocs_live == 0 && F.events_live == 0, "failed reserve left allocations");
	finish(g);
	reset(8, 0);
	F.avail = ss * 1000;
	TU_CHECK(cache_gpu_create(&o, &FOPS, &g, &e) == 0 && cache_gpu_reserve(g, &e) == 0, "reserve");
	TU_CHECK(cache_gpu_nslots(g) == NB * NE, "slots %d, expected the %d experts (cap)", cache_gpu_nslots(g), NB * NE);
	finish(g);
}

static void t_random(int scattered)
{
	reset(4, scattered);
	struct cache_gpu *g = mk(3, 0);
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	int held_b = -1, held_x = -1;
	struct core_expert_view hv;
	for (int it = 0; it < 4000; it++) {
		int b = (int)(rnd() % NB), x = (int)(rnd() % (rnd() % 2 ? 2 : NE)); /* skewed: some hot experts */
		struct core_expert_view v;
		struct nv_err e = {0};
		if (held_b < 0 && rnd() % 8 == 0) { /* hold one expert across several steps */
			if (s.acquire(s.ctx, b, x, &hv, &e) == 0) { held_b = b; held_x = x; }
			random_progress();
			continue;
		}
		int rc = s.acquire(s.ctx, b, x, &v, &e);
		if (rc) {
			TU_CHECK(0, "iteration %d: acquire (%d,%d): %s", it, b, x, e.why);
			break;
		}
		random_progress();
		enq(1, (struct fop){ .kind = OP_KERNEL, .b = b, .x = x, .v = v });
		random_progress();
		s.release(s.ctx, b, x);
		random_progress();
		if (held_b >= 0 && rnd() % 4 == 0) {
			enq(1, (struct fop){ .kind = OP_KERNEL, .b = held_b, .x = held_x, .v = hv });
			s.release(s.ctx, held_b, held_x);
			held_b = -1;
		}
	}
	if (held_b >= 0) {
		enq(1, (struct fop){ .kind = OP_KERNEL, .b = held_b, .x = held_x, .v = hv });
		s.release(s.ctx, held_b, held_x);
	}
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	TU_CHECK(st.hits > 100 && st.misses > 100 && st.copy_waits > 0,
		 "random run did not exercise hits/misses/waits: %llu %llu %llu", (unsigned long long)st.hits,
		 (unsigned long long)st.misses, (unsigned long long)st.copy_waits);
	finish(g);
	TU_CHECK(F.kernels_run > 3000, "only %d kernels ran", F.kernels_run);
}

int main(void)
{
	t_lru();
	t_scattered();
	t_refs();
	t_use_event();
	t_inner_hold();
	t_errors();
	t_random(0);
	t_random(1);
	TU_DONE();
}
