/* cache/lfu.c - least-frequently-used eviction (cache/policy.h).
 *
 * Counts are in-cache: a slot starts at 1 when it is inserted and gains 1 per
 * touch; an evicted expert forgets its count.  Among equal counts the least
 * recently used goes first.  O(1) per operation: slots of one count form a list
 * (a bucket), buckets form a list in ascending count, so a touch moves a slot to
 * the next bucket and victim() walks from the lowest bucket's oldest slot.
 */
#include "policy.h"

#include <stdlib.h>

#include "core/err.h"

struct lfu {
	int n;
	/* per slot [n] */
	unsigned *cnt;
	int *bkt;          /* bucket of the slot, -1 = not tracked */
	int *prev, *next;  /* within the bucket; prev toward the head (most recent) */
	/* buckets [n + 1]: one more than slots, a touch creates before it frees */
	unsigned *bfreq;
	int *head, *tail;  /* head = most recent */
	int *bprev, *bnext; /* ascending count */
	int first;         /* lowest bucket, -1 = none */
	int *bfree;        /* stack of unused bucket ids */
	int nbfree;
};

static int lfu_create(int n, void **st)
{
	struct lfu *l = calloc(1, sizeof *l);
	if (!l) return NV_ENOMEM;
	size_t ns = (size_t)(n > 0 ? n : 1), nb = ns + 1;
	l->n = n;
	l->cnt = calloc(ns, sizeof *l->cnt);
	l->bkt = malloc(ns * sizeof *l->bkt);
	l->prev = malloc(ns * sizeof *l->prev);
	l->next = malloc(ns * sizeof *l->next);
	l->bfreq = calloc(nb, sizeof *l->bfreq);
	l->head = malloc(nb * sizeof *l->head);
	l->tail = malloc(nb * sizeof *l->tail);
	l->bprev = malloc(nb * sizeof *l->bprev);
	l->bnext = malloc(nb * sizeof *l->bnext);
	l->bfree = malloc(nb * sizeof *l->bfree);
	if (!l->cnt || !l->bkt || !l->prev || !l->next || !l->bfreq || !l->head || !l->tail ||
	    !l->bprev || !l->bnext || !l->bfree) {
		free(l->cnt); free(l->bkt); free(l->prev); free(l->next); free(l->bfreq);
		free(l->head); free(l->tail); free(l->bprev); free(l->bnext); free(l->bfree);
		free(l);
		return NV_ENOMEM;
	}
	for (size_t i = 0; i < ns; i++) l->bkt[i] = -1;
	for (size_t i = 0; i < nb; i++) l->bfree[i] = (int)(nb - 1 - i);
	l->nbfree = (int)nb;
	l->first = -1;
	*st = l;
	return 0;
}

static void lfu_destroy(void *st)
{
	struct lfu *l = st;
	if (!l) return;
	free(l->cnt); free(l->bkt); free(l->prev); free(l->next); free(l->bfreq);
	free(l->head); free(l->tail); free(l->bprev); free(l->bnext); free(l->bfree);
	free(l);
}

/* A new empty bucket of count f linked after bucket `after` (-1 = at the front). */
static int bucket_new(struct lfu *l, unsigned f, int after)
{
	CHECK(l->nbfree > 0);
	int b = l->bfree[--l->nbfree];
	l->bfreq[b] = f;
	l->head[b] = l->tail[b] = -1;
	l->bprev[b] = after;
	l->bnext[b] = after >= 0 ? l->bnext[after] : l->first;
	if (l->bnext[b] >= 0) l->bprev[l->bnext[b]] = b;
	if (after >= 0) l->bnext[after] = b; else l->first = b;
	return b;
}

static void bucket_free(struct lfu *l, int b)
{
	if (l->bprev[b] >= 0) l->bnext[l->bprev[b]] = l->bnext[b]; else l->first = l->bnext[b];
	if (l->bnext[b] >= 0) l->bprev[l->bnext[b]] = l->bprev[b];
	l->bfree[l->nbfree++] = b;
}

static void push_head(struct lfu *l, int b, int s)
{
	l->bkt[s] = b;
	l->prev[s] = -1;
	l->next[s] = l->head[b];
	if (l->head[b] >= 0) l->prev[l->head[b]] = s; else l->tail[b] = s;
	l->head[b] = s;
}

/* Take s out of its bucket; the bucket is freed when it empties. */
static void unlink_slot(struct lfu *l, int s)
{
	int b = l->bkt[s];
	if (l->prev[s] >= 0) l->next[l->prev[s]] = l->next[s]; else l->head[b] = l->next[s];
	if (l->next[s] >= 0) l->prev[l->next[s]] = l->prev[s]; else l->tail[b] = l->prev[s];
	l->bkt[s] = -1;
	if (l->head[b] < 0) bucket_free(l, b);
}

static void lfu_remove(void *st, int s)
{
	struct lfu *l = st;
	CHECK(s >= 0 && s < l->n);
	if (l->bkt[s] >= 0) unlink_slot(l, s);
}

static void lfu_insert(void *st, int s)
{
	struct lfu *l = st;
	CHECK(s >= 0 && s < l->n);
	if (l->bkt[s] >= 0) unlink_slot(l, s);
	l->cnt[s] = 1;
	int b = l->first >= 0 && l->bfreq[l->first] == 1 ? l->first : bucket_new(l, 1, -1);
	push_head(l, b, s);
}

static void lfu_touch(void *st, int s)
{
	struct lfu *l = st;
	CHECK(s >= 0 && s < l->n);
	int b = l->bkt[s];
	if (b < 0) { lfu_insert(st, s); return; }
	unsigned f = l->cnt[s] + (l->cnt[s] < 0xffffffffu);
	int nb = l->bnext[b];
	if (nb < 0 || l->bfreq[nb] != f) nb = bucket_new(l, f, b);
	unlink_slot(l, s);
	l->cnt[s] = f;
	push_head(l, nb, s);
}

static int lfu_victim(void *st, int (*evictable)(void *, int), void *arg)
{
	struct lfu *l = st;
	for (int b = l->first; b >= 0; b = l->bnext[b])
		for (int s = l->tail[b]; s >= 0; s = l->prev[s])
			if (evictable(arg, s)) return s;
	return -1;
}

const struct cache_policy_ops cache_policy_lfu = {
	.name = "lfu",
	.create = lfu_create,
	.destroy = lfu_destroy,
	.insert = lfu_insert,
	.touch = lfu_touch,
	.remove = lfu_remove,
	.victim = lfu_victim,
};
