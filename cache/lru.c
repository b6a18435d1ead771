/* cache/lru.c - least-recently-used eviction (cache/policy.h), and the policy table. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Doubly linked list over slot indices; head = most recent, tail = least. */
struct lru {
	int n;
	int head, tail;
	int *prev, *next; /* [n]; -1 = none */
	char *in;         /* [n]; slot is on the list */
};

static int lru_create(int n, void **st)
{
	struct lru *l = calloc(1, sizeof *l);
	if (!l) return NV_ENOMEM;
	l->n = n;
	l->head = l->tail = -1;
	l->prev = malloc(sizeof(int) * (size_t)(n ? n : 1));
	l->next = malloc(sizeof(int) * (size_t)(n ? n : 1));
	l->in = calloc((size_t)(n ? n : 1), 1);
	if (!l->prev || !l->next || !l->in) {
		free(l->prev); free(l->next); free(l->in); free(l);
		return NV_ENOMEM;
	}
	*st = l;
	return 0;
}

static void lru_destroy(void *st)
{
	struct lru *l = st;
	if (!l) return;
	free(l->prev); free(l->next); free(l->in); free(l);
}

static void unlink_slot(struct lru *l, int s)
{
	if (l->prev[s] >= 0) l->next[l->prev[s]] = l->next[s]; else l->head = l->next[s];
	if (l->next[s] >= 0) l->prev[l->next[s]] = l->prev[s]; else l->tail = l->prev[s];
	l->in[s] = 0;
}

static void push_front(struct lru *l, int s)
{
	l->prev[s] = -1;
	l->next[s] = l->head;
	if (l->head >= 0) l->prev[l->head] = s; else l->tail = s;
	l->head = s;
	l->in[s] = 1;
}

static void lru_insert(void *st, int s)
{
	struct lru *l = st;
	CHECK(s >= 0 && s < l->n);
	if (l->in[s]) unlink_slot(l, s);
	push_front(l, s);
}

static void lru_touch(void *st, int s)
{
	lru_insert(st, s);
}

static void lru_remove(void *st, int s)
{
	struct lru *l = st;
	CHECK(s >= 0 && s < l->n);
	if (l->in[s]) unlink_slot(l, s);
}

static int lru_victim(void *st, int (*evictable)(void *, int), void *arg)
{
	struct lru *l = st;
	for (int s = l->tail; s >= 0; s = l->prev[s])
		if (evictable(arg, s)) return s;
	return -1;
}

const struct cache_policy_ops cache_policy_lru = {
	.name = "lru",
	.create = lru_create,
	.destroy = lru_destroy,
	.insert = lru_insert,
	.touch = lru_touch,
	.remove = lru_remove,
	.victim = lru_victim,
};

/* The known policies (one line each). */
static const struct cache_policy_ops *const g_policies[] = {
	&cache_policy_lru,
	&cache_policy_lfu,
	&cache_policy_s3fifo,
};

const struct cache_policy_ops *cache_policy_find(const char *name)
{
	if (!name || !*name) return &cache_policy_lru;
	for (size_t i = 0; i < sizeof g_policies / sizeof g_policies[0]; i++)
		if (!strcmp(g_policies[i]->name, name)) return g_policies[i];
	return NULL;
}

const char *cache_policy_names(void)
{
	return "lru, lfu, s3fifo";
}
