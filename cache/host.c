/* cache/host.c - host expert cache: locked slot pool, index, refcounts, victims. */
#define _GNU_SOURCE
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "policy.h"

struct cache_host {
	struct cache_host_opts o;
	int nslots;
	size_t slot_size;
	char *base;                 /* [nslots][slot_size] */
	size_t bytes;
	int locked;
	int pinned;
	char warning[512];

	int nkeys;
	int *index;                 /* [nblocks * nexperts] -> slot or -1 */
	int *key;                   /* [nslots] -> key or -1 */
	int *refs;                  /* [nslots] */
	unsigned char *state;       /* [nslots] enum cache_slot_state */
	unsigned char *pf;          /* [nslots] prefetched and not yet used */
	int *pf_prev, *pf_next;     /* [nslots] FIFO of prefetched-unused slots */
	int pf_head, pf_tail;
	int *free_stack;            /* [nslots] */
	int nfree;
	int nloading;

	const struct cache_policy_ops *pol;
	void *pol_st;
	struct cache_host_stats st;
};

static void fmt_bytes(char *b, size_t n, uint64_t v)
{
	if (v == RLIM_INFINITY) snprintf(b, n, "unlimited");
	else if (v >= (1ull << 30)) snprintf(b, n, "%.1f GiB", (double)v / (1ull << 30));
	else if (v >= (1ull << 20)) snprintf(b, n, "%.1f MiB", (double)v / (1ull << 20));
	else if (v >= (1ull << 10)) snprintf(b, n, "%.1f KiB", (double)v / (1ull << 10));
	else snprintf(b, n, "%llu B", (unsigned long long)v);
}

/* 2 MiB: the x86-64 PMD size, where transparent huge pages take one TLB entry */
#define HUGE_ALIGN ((size_t)2 << 20)

void *cache_huge_map(size_t bytes)
{
	if (bytes == 0) return NULL;
	/* over-map by 2 MiB and trim both ends so that the kept range starts on a 2 MiB
	 * boundary: only aligned 2 MiB ranges can become huge pages */
	size_t len = bytes + HUGE_ALIGN;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return NULL;
	uintptr_t a = ((uintptr_t)p + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
	char *base = (char *)a;
	size_t head = (size_t)(base - p), keep = (bytes + 4095) & ~(size_t)4095;
	size_t tail = len - head - keep; /* mmap lengths are whole pages: keep fits */
	if (head) munmap(p, head);
	if (tail) munmap(base + keep, tail);
#ifdef MADV_HUGEPAGE
	/* before the first touch (or mlock) so that faults take 2 MiB pages; refused
	 * when THP is off or not built in: 4 KiB pages then, silently */
	madvise(base, keep, MADV_HUGEPAGE);
#endif
	return base;
}

void cache_huge_unmap(void *p, size_t bytes)
{
	if (p) munmap(p, (bytes + 4095) & ~(size_t)4095);
}

int cache_host_create(const struct cache_host_opts *o, struct cache_host **out, struct nv_err *e)
{
	*out = NULL;
	if (o->slot_size == 0 || o->nblocks <= 0 || o->nexperts <= 0)
		return core_err_set(e, NV_EINVAL, "host cache", NULL, NULL,
				    "bad geometry: slot %zu bytes, %d blocks x %d experts",
				    o->slot_size, o->nblocks, o->nexperts);
	const struct cache_policy_ops *pol = cache_policy_find(o->policy);
	if (!pol)
		return core_err_set(e, NV_EINVAL, "host cache", "policy", NULL,
				    "unknown eviction policy '%s' (known: %s)", o->policy, cache_policy_names());
	size_t ss = (o->slot_size + 4095) & ~(size_t)4095;
	uint64_t n = o->nslots > 0 ? (uint64_t)o->nslots : o->bytes / ss;
	if (n == 0) {
		char a[32], b[32];
		fmt_bytes(a, sizeof a, o->bytes);
		fmt_bytes(b, sizeof b, ss);
		return core_err_set(e, NV_EFIT, "host cache", NULL, "raise --host-cache",
				    "a host cache of %s holds no expert (one expert slot is %s)", a, b);
	}
	if (n > (1u << 24))
		return core_err_set(e, NV_ERANGE, "host cache", NULL, NULL, "%llu slots is too many",
				    (unsigned long long)n);
	struct cache_host *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "host cache", NULL, NULL, "out of memory");
	c->o = *o;
	c->o.policy = pol->name;
	c->nslots = (int)n;
	c->slot_size = ss;
	c->bytes = (size_t)n * ss;
	c->nkeys = o->nblocks * o->nexperts;
	c->pol = pol;
	c->pf_head = c->pf_tail = -1;
	c->index = malloc(sizeof(int) * (size_t)c->nkeys);
	c->key = malloc(sizeof(int) * n);
	c->refs = calloc(n, sizeof(int));
	c->state = calloc(n, 1);
	c->pf = calloc(n, 1);
	c->pf_prev = malloc(sizeof(int) * n);
	c->pf_next = malloc(sizeof(int) * n);
	c->free_stack = malloc(sizeof(int) * n);
	if (!c->index || !c->key || !c->refs || !c->state || !c->pf || !c->pf_prev || !c->pf_next ||
	    !c->free_stack || pol->create(c->nslots, &c->pol_st)) {
		cache_host_destroy(c);
		return core_err_set(e, NV_ENOMEM, "host cache", NULL, NULL, "out of memory");
	}
	for (int i = 0; i < c->nkeys; i++) c->index[i] = -1;
	for (int i = 0; i < c->nslots; i++) {
		c->key[i] = -1;
		c->free_stack[i] = c->nslots - 1 - i; /* slot 0 handed out first */
	}
	c->nfree = c->nslots;

	void *p = cache_huge_map(c->bytes);
	if (!p) {
		int err = errno;
		char a[32];
		fmt_bytes(a, sizeof a, c->bytes);
		cache_host_destroy(c);
		return core_err_set(e, -err, "host cache", NULL, "use a smaller --host-cache",
				    "cannot map %s: %s", a, strerror(err));
	}
	c->base = p;
	if (mlock(c->base, c->bytes) == 0) {
		c->locked = 1;
	} else {
		int err = errno;
		struct rlimit rl = {0, 0};
		getrlimit(RLIMIT_MEMLOCK, &rl);
		char a[32], lim[32];
		fmt_bytes(a, sizeof a, c->bytes);
		fmt_bytes(lim, sizeof lim, rl.rlim_cur);
		if (!o->allow_unlocked) {
			cache_host_destroy(c);
			return core_err_set(e, NV_ENOMEM, "host cache", "mlock",
				"raise the limit: `ulimit -l unlimited` in the shell (or a 'memlock' line in "
				"/etc/security/limits.conf, LimitMEMLOCK= for a systemd service), use a smaller "
				"--host-cache, or pass --no-mlock to run unlocked (pages may be swapped)",
				"cannot lock %s of host cache in memory: %s (RLIMIT_MEMLOCK is %s)",
				a, strerror(err), lim);
		}
		snprintf(c->warning, sizeof c->warning,
			 "host cache of %s runs unlocked (mlock: %s, RLIMIT_MEMLOCK %s): it may be swapped out",
			 a, strerror(err), lim);
		madvise(c->base, c->bytes, MADV_WILLNEED);
	}
	if (o->pin) {
		int rc = o->pin(c->base, c->bytes, o->pin_arg, e);
		if (rc) { cache_host_destroy(c); return rc; }
		c->pinned = 1;
	}
	*out = c;
	return 0;
}

void cache_host_destroy(struct cache_host *c)
{
	if (!c) return;
	if (c->pinned && c->o.unpin) c->o.unpin(c->base, c->bytes, c->o.pin_arg);
	cache_huge_unmap(c->base, c->bytes);
	if (c->pol_st) c->pol->destroy(c->pol_st);
	free(c->index); free(c->key); free(c->refs); free(c->state); free(c->pf);
	free(c->pf_prev); free(c->pf_next); free(c->free_stack);
	free(c);
}

int cache_host_nslots(const struct cache_host *c) { return c->nslots; }
size_t cache_host_slot_size(const struct cache_host *c) { return c->slot_size; }
void *cache_host_base(const struct cache_host *c) { return c->base; }
size_t cache_host_bytes(const struct cache_host *c) { return c->bytes; }
int cache_host_locked(const struct cache_host *c) { return c->locked; }
const char *cache_host_warning(const struct cache_host *c) { return c->warning; }
const char *cache_host_policy(const struct cache_host *c) { return c->pol->name; }
int cache_host_refs(const struct cache_host *c, int s) { return c->refs[s]; }
int cache_host_nloading(const struct cache_host *c) { return c->nloading; }
enum cache_slot_state cache_host_state(const struct cache_host *c, int s) { return c->state[s]; }

void *cache_host_slot(const struct cache_host *c, int s)
{
	CHECK(s >= 0 && s < c->nslots);
	return c->base + (size_t)s * c->slot_size;
}

void cache_host_key(const struct cache_host *c, int s, int *block, int *expert)
{
	int k = c->key[s];
	*block = k < 0 ? -1 : k / c->o.nexperts;
	*expert = k < 0 ? -1 : k % c->o.nexperts;
}

/* ---- prefetched-unused FIFO */

static void pf_push(struct cache_host *c, int s)
{
	c->pf[s] = 1;
	c->pf_next[s] = -1;
	c->pf_prev[s] = c->pf_tail;
	if (c->pf_tail >= 0) c->pf_next[c->pf_tail] = s; else c->pf_head = s;
	c->pf_tail = s;
}

static void pf_unlink(struct cache_host *c, int s)
{
	if (!c->pf[s]) return;
	if (c->pf_prev[s] >= 0) c->pf_next[c->pf_prev[s]] = c->pf_next[s]; else c->pf_head = c->pf_next[s];
	if (c->pf_next[s] >= 0) c->pf_prev[c->pf_next[s]] = c->pf_prev[s]; else c->pf_tail = c->pf_prev[s];
	c->pf[s] = 0;
}

/* ---- victims */

static int evictable(void *arg, int s)
{
	const struct cache_host *c = arg;
	return c->refs[s] == 0 && c->state[s] != CACHE_LOADING && c->key[s] >= 0;
}

/* Forget slot s's key (no reference may be held). */
static void unmap_slot(struct cache_host *c, int s)
{
	if (c->key[s] < 0) return;
	c->index[c->key[s]] = -1;
	c->key[s] = -1;
	if (c->pf[s]) { pf_unlink(c, s); c->st.prefetch_wasted++; }
	else c->pol->remove(c->pol_st, s);
}

/* A prefetch never evicts another prefetched-unused slot: among a layer's hinted
 * experts the oldest are needed first, so that would only thrash. */
static int take_slot(struct cache_host *c, unsigned flags)
{
	if (c->nfree > 0) return c->free_stack[--c->nfree];
	if (!(flags & CACHE_PREFETCH))
		for (int s = c->pf_head; s >= 0; s = c->pf_next[s])
			if (evictable(c, s)) { unmap_slot(c, s); c->st.evictions++; return s; }
	int s = c->pol->victim(c->pol_st, evictable, c);
	if (s < 0) return -1;
	CHECK(evictable(c, s));
	unmap_slot(c, s);
	c->st.evictions++;
	return s;
}

static void pol_insert(struct cache_host *c, int s)
{
	if (c->pol->insert_key) c->pol->insert_key(c->pol_st, s, c->key[s]);
	else c->pol->insert(c->pol_st, s);
}

void cache_host_set_state(struct cache_host *c, int s, enum cache_slot_state st)
{
	CHECK(s >= 0 && s < c->nslots);
	if (c->state[s] == CACHE_LOADING) c->nloading--;
	if (st == CACHE_LOADING) c->nloading++;
	if (st == CACHE_FAILED && c->state[s] != CACHE_FAILED) c->st.failures++;
	c->state[s] = (unsigned char)st;
}

int cache_host_get(struct cache_host *c, int block, int expert, unsigned flags, int *hit,
		   struct nv_err *e)
{
	*hit = 0;
	if (block < 0 || block >= c->o.nblocks || expert < 0 || expert >= c->o.nexperts)
		return core_err_set(e, NV_ERANGE, "host cache", NULL, "internal: bad expert id",
				    "block %d expert %d outside %d blocks x %d experts",
				    block, expert, c->o.nblocks, c->o.nexperts);
	int k = block * c->o.nexperts + expert;
	int s = c->index[k];
	if (s >= 0) {
		*hit = 1;
		if (flags & CACHE_REF) {
			c->refs[s]++;
			c->st.hits++;
			if (c->pf[s]) {
				pf_unlink(c, s);
				c->st.prefetch_used++;
				pol_insert(c, s);
			} else {
				c->pol->touch(c->pol_st, s);
			}
		}
		return s;
	}
	if (!(flags & CACHE_ALLOC)) return -1;
	s = take_slot(c, flags);
	if (s < 0) {
		int nref = 0;
		for (int i = 0; i < c->nslots; i++) nref += c->refs[i] > 0;
		char a[32];
		fmt_bytes(a, sizeof a, c->slot_size);
		char obj[64];
		snprintf(obj, sizeof obj, "block %d expert %d", block, expert);
		return core_err_set(e, NV_EFIT, "host cache", obj,
				    "the forward pass holds more experts at once than the cache has slots: raise --host-cache",
				    "host cache full: all %d slots (%s each) are in use (%d referenced, %d loading)",
				    c->nslots, a, nref, c->nloading);
	}
	c->key[s] = k;
	c->index[k] = s;
	c->refs[s] = 0;
	c->state[s] = CACHE_FREE;
	cache_host_set_state(c, s, CACHE_LOADING);
	if (flags & CACHE_PREFETCH) {
		pf_push(c, s);
		c->st.prefetch_inserts++;
	} else {
		pol_insert(c, s);
	}
	if (flags & CACHE_REF) {
		c->refs[s]++;
		c->st.misses++;
	}
	return s;
}

void cache_host_ref(struct cache_host *c, int s)
{
	CHECK(s >= 0 && s < c->nslots && c->key[s] >= 0);
	c->refs[s]++;
}

static void free_slot(struct cache_host *c, int s)
{
	if (c->state[s] == CACHE_LOADING) c->nloading--;
	c->state[s] = CACHE_FREE;
	c->free_stack[c->nfree++] = s;
}

void cache_host_unref(struct cache_host *c, int s)
{
	CHECK(s >= 0 && s < c->nslots && c->refs[s] > 0);
	if (--c->refs[s] == 0 && c->key[s] < 0) free_slot(c, s);
}

void cache_host_drop(struct cache_host *c, int s)
{
	CHECK(s >= 0 && s < c->nslots);
	if (c->key[s] < 0) return;
	unmap_slot(c, s);
	if (c->refs[s] == 0) free_slot(c, s);
}

void cache_host_stats(const struct cache_host *c, struct cache_host_stats *s) { *s = c->st; }

void cache_host_add_io(struct cache_host *c, uint64_t bytes, uint64_t wait_ns)
{
	c->st.bytes_read += bytes;
	c->st.wait_ns += wait_ns;
}
