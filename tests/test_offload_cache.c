/* tests/test_offload_cache.c - host cache: LRU order, reference counts protect
 * experts in use, a cache full of in-use slots fails with a clear error (never
 * waits), prefetched-unused slots go first, statistics, mlock limit message. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/host.h"
#include "cache/policy.h"
#include "testutil.h"

static struct cache_host *mk(int nslots, size_t slot)
{
	struct cache_host_opts o = { .nslots = nslots, .slot_size = slot, .nblocks = 4, .nexperts = 8 };
	struct cache_host *c;
	struct nv_err e;
	if (cache_host_create(&o, &c, &e)) { char b[1024]; fprintf(stderr, "%s\n", core_err_str(&e, b, sizeof b)); exit(1); }
	return c;
}

/* Demand-load (b, x): get with a reference, mark ready, release. Returns the slot. */
static int use(struct cache_host *c, int b, int x)
{
	int hit;
	struct nv_err e;
	int s = cache_host_get(c, b, x, CACHE_REF | CACHE_ALLOC, &hit, &e);
	if (s < 0) return s;
	if (!hit) cache_host_set_state(c, s, CACHE_READY);
	cache_host_unref(c, s);
	return s;
}

static int present(struct cache_host *c, int b, int x)
{
	int hit;
	return cache_host_get(c, b, x, 0, &hit, NULL) >= 0;
}

static void t_lru(void)
{
	struct cache_host *c = mk(4, 1000);
	TU_CHECK(cache_host_slot_size(c) == 4096, "slot size %zu, expected 4096 (rounded up)", cache_host_slot_size(c));
	TU_CHECK(((uintptr_t)cache_host_slot(c, 1) & 4095) == 0, "slot 1 not 4 KiB aligned");
	for (int x = 0; x < 4; x++) use(c, 0, x);       /* order (old->new): 0 1 2 3 */
	use(c, 0, 0);                                   /* 1 2 3 0 */
	use(c, 1, 5);                                   /* evicts 1 */
	TU_CHECK(!present(c, 0, 1), "LRU: (0,1) should have been evicted");
	TU_CHECK(present(c, 0, 0) && present(c, 0, 2) && present(c, 0, 3) && present(c, 1, 5), "LRU: wrong survivors");
	use(c, 2, 2);                                   /* evicts 2 */
	TU_CHECK(!present(c, 0, 2) && present(c, 0, 3), "LRU: (0,2) should have been evicted next");
	struct cache_host_stats st;
	cache_host_stats(c, &st);
	/* 4 + 1 + 1 misses, 1 hit, 2 evictions */
	TU_CHECK(st.misses == 6 && st.hits == 1 && st.evictions == 2, "stats: misses %llu hits %llu evictions %llu, expected 6 1 2",
		 (unsigned long long)st.misses, (unsigned long long)st.hits, (unsigned long long)st.evictions);
	cache_host_destroy(c);
}

static void t_refs(void)
{
	struct cache_host *c = mk(3, 4096);
	int hit;
	struct nv_err e;
	int a = cache_host_get(c, 0, 0, CACHE_REF | CACHE_ALLOC, &hit, &e); /* held */
	cache_host_set_state(c, a, CACHE_READY);
	use(c, 0, 1);
	use(c, 0, 2);                                   /* LRU order: (0,0) held, 1, 2 */
	use(c, 0, 3);                                   /* must evict (0,1), not the held (0,0) */
	TU_CHECK(present(c, 0, 0) && !present(c, 0, 1), "refcount: held (0,0) evicted or (0,1) kept");
	/* fill every slot with held experts: the next get fails at once */
	int b = cache_host_get(c, 0, 2, CACHE_REF | CACHE_ALLOC, &hit, &e);
	int d = cache_host_get(c, 0, 3, CACHE_REF | CACHE_ALLOC, &hit, &e);
	TU_CHECK(b >= 0 && d >= 0, "re-get of cached experts failed");
	core_err_clear(&e);
	int rc = cache_host_get(c, 3, 7, CACHE_REF | CACHE_ALLOC, &hit, &e);
	char msg[1024];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EFIT, "full cache: rc %d expected NV_EFIT", rc);
	TU_CHECK(strstr(msg, "host cache full") && strstr(msg, "3 referenced") && strstr(msg, "block 3 expert 7") &&
		 strstr(msg, "--host-cache"), "full cache message: %s", msg);
	/* LOADING slots are not evictable either */
	cache_host_unref(c, d);
	cache_host_set_state(c, d, CACHE_LOADING);
	rc = cache_host_get(c, 3, 7, CACHE_REF | CACHE_ALLOC, &hit, &e);
	TU_CHECK(rc == NV_EFIT && cache_host_nloading(c) == 1, "loading slot evicted: rc %d nloading %d", rc, cache_host_nloading(c));
	cache_host_set_state(c, d, CACHE_READY);
	rc = cache_host_get(c, 3, 7, CACHE_REF | CACHE_ALLOC, &hit, &e);
	TU_CHECK(rc == d, "released slot not reused: got %d expected %d", rc, d);
	/* drop while referenced: freed on the last unref */
	cache_host_drop(c, a);
	TU_CHECK(!present(c, 0, 0), "dropped key still mapped");
	cache_host_unref(c, a);
	TU_CHECK(cache_host_state(c, a) == CACHE_FREE, "dropped slot not free after unref: state %d", cache_host_state(c, a));
	rc = cache_host_get(c, 2, 1, CACHE_REF | CACHE_ALLOC, &hit, &e);
	TU_CHECK(rc == a, "free slot not used first: got %d expected %d", rc, a);
	cache_host_destroy(c);
}

static void t_prefetch(void)
{
	struct cache_host *c = mk(3, 4096);
	int hit;
	struct nv_err e;
	use(c, 0, 0);
	use(c, 0, 1);
	int p = cache_host_get(c, 1, 1, CACHE_ALLOC | CACHE_PREFETCH, &hit, &e); /* newest, but unused */
	TU_CHECK(p >= 0 && cache_host_refs(c, p) == 0, "prefetch get: slot %d refs %d", p, p >= 0 ? cache_host_refs(c, p) : -1);
	cache_host_set_state(c, p, CACHE_LOADED);
	use(c, 2, 2);                                   /* evicts the prefetched-unused slot first */
	TU_CHECK(!present(c, 1, 1) && present(c, 0, 0) && present(c, 0, 1), "prefetched-unused slot not evicted first");
	p = cache_host_get(c, 1, 1, CACHE_ALLOC | CACHE_PREFETCH, &hit, &e);  /* evicts LRU (0,0) */
	cache_host_set_state(c, p, CACHE_READY);
	TU_CHECK(!present(c, 0, 0), "(0,0) should be evicted for the prefetch");
	use(c, 1, 1);                                   /* used: now an ordinary MRU entry */
	use(c, 3, 3);                                   /* evicts LRU (0,1), not (1,1) */
	TU_CHECK(present(c, 1, 1) && !present(c, 0, 1), "used prefetch evicted");
	struct cache_host_stats st;
	cache_host_stats(c, &st);
	TU_CHECK(st.prefetch_inserts == 2 && st.prefetch_used == 1 && st.prefetch_wasted == 1,
		 "prefetch stats %llu %llu %llu, expected 2 1 1", (unsigned long long)st.prefetch_inserts,
		 (unsigned long long)st.prefetch_used, (unsigned long long)st.prefetch_wasted);
	cache_host_destroy(c);
}

static void t_errors(void)
{
	struct nv_err e;
	struct cache_host *c;
	struct cache_host_opts o = { .bytes = 1000, .slot_size = 8192, .nblocks = 1, .nexperts = 1 };
	int rc = cache_host_create(&o, &c, &e);
	char msg[1024];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EFIT && strstr(msg, "holds no expert"), "tiny cache: rc %d %s", rc, msg);
	o.bytes = 1 << 20;
	o.policy = "nope";
	rc = cache_host_create(&o, &c, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EINVAL && strstr(msg, "lru"), "unknown policy: rc %d %s", rc, msg);
	TU_CHECK(cache_policy_find("lru") == &cache_policy_lru, "policy table");
}

/* mlock refused: in a child with a 64 KiB RLIMIT_MEMLOCK and, when root, no
 * CAP_IPC_LOCK (setuid to nobody drops it). */
static void t_mlock(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("mlock checks skipped: AddressSanitizer turns mlock into a no-op\n");
	return;
#endif
	for (int allow = 0; allow < 2; allow++) {
		int pfd[2];
		if (pipe(pfd)) { perror("pipe"); tu_failures++; return; }
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			struct rlimit rl = { 65536, 65536 };
			setrlimit(RLIMIT_MEMLOCK, &rl);
			if (geteuid() == 0 && setuid(65534)) _exit(3);
			struct cache_host_opts o = { .bytes = 8 << 20, .slot_size = 1 << 20, .nblocks = 1, .nexperts = 8,
						     .allow_unlocked = allow };
			struct cache_host *c;
			struct nv_err e;
			int rc = cache_host_create(&o, &c, &e);
			char msg[2048];
			if (rc) core_err_str(&e, msg, sizeof msg);
			else snprintf(msg, sizeof msg, "OK locked=%d warning=%s", cache_host_locked(c), cache_host_warning(c));
			if (write(pfd[1], msg, strlen(msg)) < 0) _exit(4);
			_exit(rc ? 1 : 0);
		}
		close(pfd[1]);
		char msg[2048] = "";
		ssize_t k = read(pfd[0], msg, sizeof msg - 1);
		if (k > 0) msg[k] = 0;
		close(pfd[0]);
		int st;
		waitpid(pid, &st, 0);
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (!allow)
			TU_CHECK(code == 1 && strstr(msg, "ulimit -l") && strstr(msg, "limits.conf") && strstr(msg, "RLIMIT_MEMLOCK is 64.0 KiB"),
				 "mlock refusal: exit %d, message: %s", code, msg);
		else
			TU_CHECK(code == 0 && strstr(msg, "locked=0") && strstr(msg, "unlocked"),
				 "unlocked opt-out: exit %d, message: %s", code, msg);
	}
}

int main(void)
{
	t_lru();
	t_refs();
	t_prefetch();
	t_errors();
	t_mlock();
	TU_DONE();
}
