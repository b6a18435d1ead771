/* cache/policy.h - eviction policies of the expert caches, behind one small interface.
 *
 * Contract
 *   A policy orders the slots it tracks (integers 0..nslots-1) and nothing else:
 *   the cache tells it when a slot starts holding an expert that was used
 *   (insert), is used again (touch) or stops holding it (remove), and asks it for
 *   a victim.  Reference counts, loading state and prefetched-but-unused slots are
 *   the cache's business: victim() walks its candidates from most to least
 *   evictable and returns the first one for which evictable(arg, slot) is true, or
 *   -1 when none is.  Calls are serialized by the cache (no locking here); state
 *   is created by create() and freed by destroy() (which accepts NULL).
 *   New policies add a struct cache_policy_ops in a file of their own and a line in
 *   g_policies (cache/lru.c).  Known: lru (lru.c), lfu (lfu.c, in-cache counts,
 *   LRU among equal counts), s3fifo (s3fifo.c, the adaptive one: a small probation
 *   FIFO, a main FIFO with lazy reinsertion and a ghost list of evicted keys).
 *   Policies that remember keys after eviction (ghosts) set insert_key; the cache
 *   then calls it instead of insert, with key = block * nexperts + expert.
 */
#ifndef NV_CACHE_POLICY_H
#define NV_CACHE_POLICY_H

struct cache_policy_ops {
	const char *name;
	int (*create)(int nslots, void **state);      /* 0 or NV_ENOMEM */
	void (*destroy)(void *state);
	void (*insert)(void *state, int slot);
	void (*touch)(void *state, int slot);
	void (*remove)(void *state, int slot);
	int (*victim)(void *state, int (*evictable)(void *arg, int slot), void *arg);
	/* Optional (NULL = use insert): insert, telling which key the slot now holds. */
	void (*insert_key)(void *state, int slot, int key);
};

extern const struct cache_policy_ops cache_policy_lru;
extern const struct cache_policy_ops cache_policy_lfu;
extern const struct cache_policy_ops cache_policy_s3fifo;

/* By name ("lru", "lfu", "s3fifo"); NULL or "" = lru; NULL when unknown. */
const struct cache_policy_ops *cache_policy_find(const char *name);
/* Comma-separated list of the known names, for messages. */
const char *cache_policy_names(void);

#endif
