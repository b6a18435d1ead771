/* cache/s3fifo.c - S3-FIFO eviction (cache/policy.h): Yang et al., "FIFO queues are
 * all you need for cache eviction", SOSP 2023.
 *
 * Why this adaptive policy (rather than ARC or 2Q): routed-expert popularity is
 * skewed in trained models (a few experts per layer take much of the traffic) while
 * many experts are touched once in a while; S3-FIFO's small probation queue drops
 * those one-time visitors quickly (quick demotion) and its ghost list readmits a
 * returning expert straight into the main queue.  It needs only FIFO queues and a
 * 2-bit counter per slot, so a hit is a counter increment under the source's lock
 * (no list surgery as in LRU or ARC's four lists), and it has no tuning knob that
 * adapts at run time, which keeps tracesim replays easy to reason about.
 *
 * Queues: S (small, target max(1, ceil(n/10)) slots), M (main, the rest), G (ghost:
 * keys evicted from S, at most n - target of them).  A new key enters S, or M when
 * G remembers it.  A hit sets freq = min(freq + 1, 3).  victim(): when S holds at
 * least its target (or M is empty) the S tail is examined first: freq > 0 moves it
 * to M's head with freq 0 (lazy promotion), else it is the victim (and its key
 * goes to G when the cache removes it).  Otherwise M's tail: freq > 0 is
 * decremented and reinserted at M's head, else it is the victim.  Slots the cache
 * says are not evictable (in use, loading) are stepped over in place.  When the
 * preferred queue has no victim the other one is searched.
 */
#include "policy.h"

#include <stdlib.h>

#include "core/err.h"

enum { Q_NONE = 0, Q_S = 1, Q_M = 2 };

struct s3 {
	int n, target;
	/* per slot [n] */
	unsigned char *q, *freq;
	int *key;
	int *prev, *next;          /* prev toward the head (newest) */
	int head[3], tail[3], len[3];
	/* ghost: FIFO ring of keys ([gcap], -1 = emptied) + open-addressing index */
	int gcap, ghead, gn;
	int *ring;
	int hmask;
	int *hkey, *hpos;          /* [hmask + 1]; hkey -1 = empty */
};

static void s3_destroy(void *st)
{
	struct s3 *q = st;
	if (!q) return;
	free(q->q); free(q->freq); free(q->key); free(q->prev); free(q->next);
	free(q->ring); free(q->hkey); free(q->hpos);
	free(q);
}

static int s3_create(int n, void **st)
{
	struct s3 *q = calloc(1, sizeof *q);
	if (!q) return NV_ENOMEM;
	size_t ns = (size_t)(n > 0 ? n : 1);
	q->n = n;
	q->target = (n + 9) / 10;
	if (q->target < 1) q->target = 1;
	q->gcap = n - q->target > 0 ? n - q->target : 1;
	int hs = 4;
	while (hs < 2 * q->gcap) hs *= 2;
	q->hmask = hs - 1;
	q->q = calloc(ns, 1);
	q->freq = calloc(ns, 1);
	q->key = malloc(ns * sizeof *q->key);
	q->prev = malloc(ns * sizeof *q->prev);
	q->next = malloc(ns * sizeof *q->next);
	q->ring = malloc((size_t)q->gcap * sizeof *q->ring);
	q->hkey = malloc((size_t)hs * sizeof *q->hkey);
	q->hpos = malloc((size_t)hs * sizeof *q->hpos);
	if (!q->q || !q->freq || !q->key || !q->prev || !q->next || !q->ring || !q->hkey || !q->hpos) {
		s3_destroy(q);
		return NV_ENOMEM;
	}
	for (int i = 0; i < 3; i++) q->head[i] = q->tail[i] = -1;
	for (int i = 0; i < hs; i++) q->hkey[i] = -1;
	*st = q;
	return 0;
}

/* ---- ghost */

static unsigned hslot(const struct s3 *q, int key) { return ((unsigned)key * 2654435761u) & (unsigned)q->hmask; }

static int ghost_find(const struct s3 *q, int key)
{
	for (unsigned i = hslot(q, key);; i = (i + 1) & (unsigned)q->hmask) {
		if (q->hkey[i] < 0) return -1;
		if (q->hkey[i] == key) return (int)i;
	}
}

/* Delete hash entry i (linear probing, backward shift). */
static void ghost_hdel(struct s3 *q, int i)
{
	unsigned m = (unsigned)q->hmask, hole = (unsigned)i;
	for (unsigned j = (hole + 1) & m; q->hkey[j] >= 0; j = (j + 1) & m) {
		unsigned home = hslot(q, q->hkey[j]);
		/* j's entry may fill the hole unless its home lies cyclically in (hole, j] */
		if (((j - home) & m) >= ((j - hole) & m)) {
			q->hkey[hole] = q->hkey[j];
			q->hpos[hole] = q->hpos[j];
			hole = j;
		}
	}
	q->hkey[hole] = -1;
}

/* Forget key if remembered; returns 1 when it was. */
static int ghost_take(struct s3 *q, int key)
{
	if (key < 0) return 0;
	int i = ghost_find(q, key);
	if (i < 0) return 0;
	q->ring[q->hpos[i]] = -1;
	ghost_hdel(q, i);
	return 1;
}

static void ghost_add(struct s3 *q, int key)
{
	if (key < 0 || ghost_find(q, key) >= 0) return;
	int pos;
	if (q->gn == q->gcap) { /* drop the oldest */
		pos = q->ghead;
		q->ghead = (q->ghead + 1) % q->gcap;
		int old = q->ring[pos];
		if (old >= 0) {
			int i = ghost_find(q, old);
			if (i >= 0) ghost_hdel(q, i);
		}
	} else {
		pos = (q->ghead + q->gn++) % q->gcap;
	}
	q->ring[pos] = key;
	unsigned i = hslot(q, key);
	while (q->hkey[i] >= 0) i = (i + 1) & (unsigned)q->hmask;
	q->hkey[i] = key;
	q->hpos[i] = pos;
}

/* ---- queues */

static void q_unlink(struct s3 *q, int s)
{
	int w = q->q[s];
	if (q->prev[s] >= 0) q->next[q->prev[s]] = q->next[s]; else q->head[w] = q->next[s];
	if (q->next[s] >= 0) q->prev[q->next[s]] = q->prev[s]; else q->tail[w] = q->prev[s];
	q->len[w]--;
	q->q[s] = Q_NONE;
}

static void q_push_head(struct s3 *q, int w, int s)
{
	q->q[s] = (unsigned char)w;
	q->prev[s] = -1;
	q->next[s] = q->head[w];
	if (q->head[w] >= 0) q->prev[q->head[w]] = s; else q->tail[w] = s;
	q->head[w] = s;
	q->len[w]++;
}

static void s3_insert_key(void *st, int s, int key)
{
	struct s3 *q = st;
	CHECK(s >= 0 && s < q->n);
	if (q->q[s] != Q_NONE) q_unlink(q, s);
	q->key[s] = key;
	q->freq[s] = 0;
	q_push_head(q, ghost_take(q, key) ? Q_M : Q_S, s);
}

static void s3_insert(void *st, int s) { s3_insert_key(st, s, -1); }

static void s3_touch(void *st, int s)
{
	struct s3 *q = st;
	CHECK(s >= 0 && s < q->n);
	if (q->q[s] == Q_NONE) { s3_insert(st, s); return; }
	if (q->freq[s] < 3) q->freq[s]++;
}

static void s3_remove(void *st, int s)
{
	struct s3 *q = st;
	CHECK(s >= 0 && s < q->n);
	if (q->q[s] == Q_NONE) return;
	if (q->q[s] == Q_S) ghost_add(q, q->key[s]);
	q_unlink(q, s);
}

/* S tail to head: promote the accessed, return the first evictable unaccessed. */
static int scan_s(struct s3 *q, int (*ev)(void *, int), void *arg)
{
	for (int s = q->tail[Q_S]; s >= 0;) {
		int p = q->prev[s];
		if (q->freq[s] > 0) {
			q_unlink(q, s);
			q->freq[s] = 0;
			q_push_head(q, Q_M, s);
		} else if (ev(arg, s)) {
			return s;
		}
		s = p;
	}
	return -1;
}

/* M tail onward: reinsert the accessed with freq - 1 (they come round again, at
 * most 3 times each), return the first evictable unaccessed. */
static int scan_m(struct s3 *q, int (*ev)(void *, int), void *arg)
{
	for (int s = q->tail[Q_M]; s >= 0;) {
		int p = q->prev[s];
		if (q->freq[s] > 0) {
			q->freq[s]--;
			if (q->head[Q_M] != s) {
				q_unlink(q, s);
				q_push_head(q, Q_M, s);
			} else {
				p = s; /* alone at the head: look at it again */
			}
		} else if (ev(arg, s)) {
			return s;
		}
		s = p;
	}
	return -1;
}

static int s3_victim(void *st, int (*ev)(void *, int), void *arg)
{
	struct s3 *q = st;
	int v;
	if (q->len[Q_S] >= q->target || q->len[Q_M] == 0) {
		if ((v = scan_s(q, ev, arg)) >= 0) return v;
		return scan_m(q, ev, arg);
	}
	if ((v = scan_m(q, ev, arg)) >= 0) return v;
	if ((v = scan_s(q, ev, arg)) >= 0) return v;
	return scan_m(q, ev, arg); /* what scan_s promoted */
}

const struct cache_policy_ops cache_policy_s3fifo = {
	.name = "s3fifo",
	.create = s3_create,
	.destroy = s3_destroy,
	.insert = s3_insert,
	.touch = s3_touch,
	.remove = s3_remove,
	.victim = s3_victim,
	.insert_key = s3_insert_key,
};
