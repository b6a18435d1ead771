/* tests/test_prefetch_policy.c - eviction policies (cache/lru.c, lfu.c, s3fifo.c)
 * replayed through the host cache by tools/tracesim/sim.c, and Belady's MIN.
 *
 * Expected hit counts are worked out by hand (sequences and traces in the comments
 * below) or come from the textbook (Silberschatz, Operating System Concepts, §10.4:
 * the reference string 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 with 3 frames gives
 * 12 LRU faults and 9 OPT faults, i.e. 8 and 11 hits).  Random traces check
 * properties that hold for any correct implementation: MIN >= every policy, LRU ==
 * a naive timestamp LRU, and the victim contract of cache/policy.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/policy.h"
#include "testutil.h"
#include "tools/tracesim/sim.h"

static uint64_t run(const char *pol, const int32_t *k, long n, int nkeys, int slots)
{
	struct nv_err e = {0};
	uint64_t h = 0;
	int rc = pol ? sim_policy(pol, k, n, 1, nkeys, slots, &h, &e) : sim_belady(k, n, nkeys, slots, &h, &e);
	TU_CHECK(rc == 0, "%s: replay failed: %s", pol ? pol : "belady", e.why);
	return h;
}

static void expect(const char *what, const char *pol, const int32_t *k, long n, int nkeys, int slots, uint64_t want)
{
	uint64_t got = run(pol, k, n, nkeys, slots);
	TU_CHECK(got == want, "%s, %s, %d slots: %llu hits, expected %llu", what, pol ? pol : "belady", slots,
		 (unsigned long long)got, (unsigned long long)want);
}

/* Naive LRU: the resident key with the oldest last use is evicted. */
static uint64_t naive_lru(const int32_t *k, long n, int slots)
{
	int32_t *key = malloc(sizeof(int32_t) * (size_t)slots);
	long *t = malloc(sizeof(long) * (size_t)slots);
	int m = 0;
	uint64_t hits = 0;
	for (long i = 0; i < n; i++) {
		int f = -1;
		for (int j = 0; j < m; j++) if (key[j] == k[i]) f = j;
		if (f >= 0) { hits++; t[f] = i; continue; }
		if (m < slots) { key[m] = k[i]; t[m++] = i; continue; }
		int o = 0;
		for (int j = 1; j < m; j++) if (t[j] < t[o]) o = j;
		key[o] = k[i];
		t[o] = i;
	}
	free(key);
	free(t);
	return hits;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* ---- the policy contract (cache/policy.h) on random operations */

struct mask { const unsigned char *ev; int calls; };
static int ev_fn(void *arg, int s) { struct mask *m = arg; m->calls++; return m->ev[s]; }

static void contract(const struct cache_policy_ops *p)
{
	enum { N = 37 };
	void *st;
	TU_CHECK(p->create(N, &st) == 0, "%s: create", p->name);
	unsigned char in[N] = {0}, ev[N];
	int failures_before = tu_failures;
	for (int it = 0; it < 20000 && tu_failures == failures_before; it++) {
		int s = (int)(rnd() % N), op = (int)(rnd() % 10);
		if (op < 3 && !in[s]) {
			if (p->insert_key) p->insert_key(st, s, (int)(rnd() % 200)); else p->insert(st, s);
			in[s] = 1;
		} else if (op < 6 && in[s]) {
			p->touch(st, s);
		} else if (op < 7 && in[s]) {
			p->remove(st, s);
			in[s] = 0;
		} else {
			int any = 0;
			for (int i = 0; i < N; i++) { ev[i] = (rnd() % 4) != 0; any |= in[i] && ev[i]; }
			struct mask m = { ev, 0 };
			int v = p->victim(st, ev_fn, &m);
			if (v < 0) {
				TU_CHECK(!any, "%s: iteration %d: victim -1 although an evictable slot is tracked", p->name, it);
			} else {
				TU_CHECK(v < N && in[v] && ev[v], "%s: iteration %d: victim %d (tracked %d, evictable %d)",
					 p->name, it, v, v < N ? in[v] : -1, v < N ? ev[v] : -1);
				if (v >= 0 && v < N && in[v]) { p->remove(st, v); in[v] = 0; }
			}
		}
	}
	p->destroy(st);
	p->destroy(NULL);
}

int main(void)
{
	/* Textbook string, 3 frames.  LRU 8, MIN 11 (Silberschatz).  LFU (in-cache
	 * counts, LRU among ties), by hand: misses 7 0 1 2(evict 7) 3(evict 1) 4(evict 2)
	 * 2(evict 3) 3(evict 4) 1(evict 3: count 2, older than 2) 7(evict 1: count 2 <
	 * 3, 5) 1(evict 7) -> 11 misses, 9 hits.  S3-FIFO (S target 1, ghost 2), by hand:
	 * hits at refs 5, 7, 11, 12, 13, 16, 19, 20 -> 8 (ref 6 promotes 0 to M and
	 * evicts 1; refs 9 and 10 readmit 2 and 3 from the ghost into M; ref 14 cycles
	 * M: 0 2->1, 2 1->0, 3 1->0, 0 1->0, evicts 2; ref 17 readmits 1 from the ghost;
	 * ref 18 evicts 3). */
	static const int32_t classic[] = { 7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1 };
	const long nc = sizeof classic / sizeof classic[0];
	expect("textbook", "lru", classic, nc, 8, 3, 8);
	expect("textbook", NULL, classic, nc, 8, 3, 11);
	expect("textbook", "lfu", classic, nc, 8, 3, 9);
	expect("textbook", "s3fifo", classic, nc, 8, 3, 8);
	/* every policy: only the 6 compulsory misses once the 6 distinct keys fit, no
	 * hit with 1 slot (no key repeats at once) */
	expect("textbook", "lru", classic, nc, 8, 6, nc - 6);
	expect("textbook", "lfu", classic, nc, 8, 6, nc - 6);
	expect("textbook", "s3fifo", classic, nc, 8, 6, nc - 6);
	expect("textbook", NULL, classic, nc, 8, 6, nc - 6);
	expect("textbook", "lru", classic, nc, 8, 1, 0);

	/* A hot pair and one-time visitors, 4 slots: A B A B C D E F A B C A D E A B.
	 * LRU by hand: hits at 3 4 12 15 = 4 (the scan C D E F flushes A and B).
	 * S3-FIFO: ref 7 promotes A, B (accessed in S) to M and evicts C to the ghost;
	 * 8 evicts D; 11 evicts E, C returns from the ghost into M; 13 evicts F, D
	 * returns into M; 14 cycles M (A 2->1, B 1->0) and evicts C; E returns into M.
	 * Hits 3 4 9 10 12 15 16 = 7.  LFU: A and B reach count 2 before the scan, so the
	 * visitors evict each other: hits 3 4 9 10 12 15 16 = 7.  MIN: 3 4 9 10 11 12 15
	 * 16 = 8 (E evicts D, F evicts E, D evicts C, E evicts F). */
	enum { A, B, C, D, E, F };
	static const int32_t hot[] = { A, B, A, B, C, D, E, F, A, B, C, A, D, E, A, B };
	const long nh = sizeof hot / sizeof hot[0];
	expect("hot pair", "lru", hot, nh, 6, 4, 4);
	expect("hot pair", "s3fifo", hot, nh, 6, 4, 7);
	expect("hot pair", "lfu", hot, nh, 6, 4, 7);
	expect("hot pair", NULL, hot, nh, 6, 4, 8);

	/* a loop one larger than the cache: LRU and MIN's textbook extremes */
	int32_t loop[400];
	for (int i = 0; i < 400; i++) loop[i] = i % 5;
	expect("loop of 5", "lru", loop, 400, 5, 4, 0);
	/* MIN on a cyclic loop of m keys in c slots misses once per (m - c) ... : here,
	 * after the 4 compulsory misses, every miss is followed by exactly 3 hits
	 * (the evicted key is the one needed last), so 396 references after the first
	 * 4 form 99 groups of 1 miss + 3 hits = 297 hits. */
	expect("loop of 5", NULL, loop, 400, 5, 4, 297);

	/* random traces: uniform and skewed keys, several sizes */
	const char *pols[] = { "lru", "lfu", "s3fifo" };
	for (int trial = 0; trial < 24; trial++) {
		int nkeys = 16 + (int)(rnd() % 300);
		long n = 2000 + (long)(rnd() % 6000);
		int32_t *k = malloc(sizeof(int32_t) * (size_t)n);
		int skew = trial % 2;
		for (long i = 0; i < n; i++) {
			uint32_t r = rnd() % (uint32_t)nkeys;
			if (skew) r = (uint32_t)((uint64_t)r * (rnd() % (uint32_t)nkeys) / (uint32_t)nkeys); /* denser at 0 */
			k[i] = (int32_t)r;
		}
		int slots = 1 + (int)(rnd() % (uint32_t)nkeys);
		uint64_t min = run(NULL, k, n, nkeys, slots);
		for (int p = 0; p < 3; p++) {
			uint64_t h = run(pols[p], k, n, nkeys, slots);
			TU_CHECK(h <= min, "trial %d (%d keys, %ld refs, %d slots): %s %llu hits > MIN %llu", trial, nkeys,
				 n, slots, pols[p], (unsigned long long)h, (unsigned long long)min);
		}
		uint64_t lru = run("lru", k, n, nkeys, slots), ref = naive_lru(k, n, slots);
		TU_CHECK(lru == ref, "trial %d (%d keys, %ld refs, %d slots): lru %llu hits, naive LRU %llu", trial,
			 nkeys, n, slots, (unsigned long long)lru, (unsigned long long)ref);
		free(k);
	}

	contract(&cache_policy_lru);
	contract(&cache_policy_lfu);
	contract(&cache_policy_s3fifo);
	TU_CHECK(cache_policy_find("lfu") == &cache_policy_lfu && cache_policy_find("s3fifo") == &cache_policy_s3fifo &&
		 cache_policy_find(NULL) == &cache_policy_lru && cache_policy_find("arc") == NULL,
		 "cache_policy_find by name");
	TU_DONE();
}
