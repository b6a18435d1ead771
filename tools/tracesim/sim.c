/* tools/tracesim/sim.c - replays of key sequences (contract in sim.h). */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "cache/host.h"

int sim_keys(const struct offload_trace *t, int32_t **keys, long *n, struct nv_err *e)
{
	const int k = t->h.k, E = t->h.experts;
	int32_t *out = malloc((size_t)(t->n ? t->n : 1) * (size_t)k * sizeof *out);
	if (!out) return core_err_set(e, NV_ENOMEM, "tracesim", NULL, NULL, "out of memory");
	long m = 0;
	for (long i = 0; i < t->n; i++) {
		const int32_t *s = offload_trace_ids(t, i, 0);
		int32_t v[OFFLOAD_TRACE_MAX_K];
		int nv = 0;
		for (int j = 0; j < k; j++) {
			if (s[j] < 0) continue;
			int dup = 0;
			for (int q = 0; q < nv; q++) dup |= v[q] == s[j];
			if (!dup) v[nv++] = s[j];
		}
		for (int a = 1; a < nv; a++) /* ascending: core/moe.c's acquisition order */
			for (int b = a; b > 0 && v[b] < v[b - 1]; b--) { int32_t x = v[b]; v[b] = v[b - 1]; v[b - 1] = x; }
		for (int j = 0; j < nv; j++) out[m++] = t->layer[i] * E + v[j];
	}
	*keys = out;
	*n = m;
	return 0;
}

int sim_policy(const char *policy, const int32_t *keys, long n, int nblocks, int nexperts, int slots,
	       uint64_t *hits, struct nv_err *e)
{
	*hits = 0;
	struct cache_host_opts o = {
		.nslots = slots, .slot_size = 4096, .nblocks = nblocks, .nexperts = nexperts,
		.policy = policy, .allow_unlocked = 1,
	};
	struct cache_host *c;
	int rc = cache_host_create(&o, &c, e);
	if (rc) return rc;
	for (long i = 0; i < n; i++) {
		int hit;
		int s = cache_host_get(c, keys[i] / nexperts, keys[i] % nexperts, CACHE_REF | CACHE_ALLOC, &hit, e);
		if (s < 0) { cache_host_destroy(c); return s; }
		if (!hit) cache_host_set_state(c, s, CACHE_READY);
		cache_host_unref(c, s);
	}
	struct cache_host_stats st;
	cache_host_stats(c, &st);
	*hits = st.hits;
	cache_host_destroy(c);
	return 0;
}

/* ---- Belady: resident keys in a max-heap on their next use */

struct heap {
	int n;
	int32_t *key;   /* [slots] */
	long *nu;       /* [nkeys] next use of a resident key */
	int *pos;       /* [nkeys] heap index, -1 = not resident */
};

static void h_swap(struct heap *h, int a, int b)
{
	int32_t ka = h->key[a], kb = h->key[b];
	h->key[a] = kb; h->key[b] = ka;
	h->pos[kb] = a; h->pos[ka] = b;
}

static void h_up(struct heap *h, int i)
{
	while (i > 0) {
		int p = (i - 1) / 2;
		if (h->nu[h->key[p]] >= h->nu[h->key[i]]) break;
		h_swap(h, p, i);
		i = p;
	}
}

static void h_down(struct heap *h, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->nu[h->key[l]] > h->nu[h->key[m]]) m = l;
		if (r < h->n && h->nu[h->key[r]] > h->nu[h->key[m]]) m = r;
		if (m == i) return;
		h_swap(h, i, m);
		i = m;
	}
}

int sim_belady(const int32_t *keys, long n, int nkeys, int slots, uint64_t *hits, struct nv_err *e)
{
	*hits = 0;
	if (slots < 1 || nkeys < 1)
		return core_err_set(e, NV_EINVAL, "tracesim", "belady", NULL, "%d slots, %d keys", slots, nkeys);
	long *next = malloc((size_t)(n ? n : 1) * sizeof *next);
	long *last = malloc((size_t)nkeys * sizeof *last);
	struct heap h = { 0, malloc((size_t)slots * sizeof(int32_t)), malloc((size_t)nkeys * sizeof(long)),
			  malloc((size_t)nkeys * sizeof(int)) };
	if (!next || !last || !h.key || !h.nu || !h.pos) {
		free(next); free(last); free(h.key); free(h.nu); free(h.pos);
		return core_err_set(e, NV_ENOMEM, "tracesim", NULL, NULL, "out of memory");
	}
	for (int i = 0; i < nkeys; i++) { last[i] = n + 1; h.pos[i] = -1; }
	for (long i = n - 1; i >= 0; i--) {
		CHECK(keys[i] >= 0 && keys[i] < nkeys);
		next[i] = last[keys[i]];
		last[keys[i]] = i;
	}
	uint64_t hit = 0;
	for (long i = 0; i < n; i++) {
		int32_t k = keys[i];
		if (h.pos[k] >= 0) {
			hit++;
			h.nu[k] = next[i];
			h_up(&h, h.pos[k]);
			h_down(&h, h.pos[k]);
			continue;
		}
		if (h.n == slots) { /* evict the farthest next use */
			int32_t v = h.key[0];
			h_swap(&h, 0, --h.n);
			h.pos[v] = -1;
			h_down(&h, 0);
		}
		h.key[h.n] = k;
		h.pos[k] = h.n;
		h.nu[k] = next[i];
		h_up(&h, h.n++);
	}
	*hits = hit;
	free(next); free(last); free(h.key); free(h.nu); free(h.pos);
	return 0;
}

void sim_pred_accuracy(const struct offload_trace *t, int part, struct sim_pred *out)
{
	memset(out, 0, sizeof *out);
	const int k = t->h.k;
	for (long i = 0; i < t->n; i++) {
		const int32_t *s = offload_trace_ids(t, i, 0), *p = offload_trace_ids(t, i, part);
		if (p[0] < 0) continue;
		out->records++;
		for (int j = 0; j < k; j++) {
			if (s[j] >= 0) {
				int dup = 0;
				for (int q = 0; q < j; q++) dup |= s[q] == s[j];
				out->selected += !dup;
			}
			if (p[j] < 0) continue;
			int dup = 0, in = 0;
			for (int q = 0; q < j; q++) dup |= p[q] == p[j];
			if (dup) continue;
			for (int q = 0; q < k; q++) in |= s[q] == p[j];
			out->predicted++;
			out->correct += in;
		}
	}
}
