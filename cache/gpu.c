/* cache/gpu.c - GPU expert slots over an inner host-view source (contract in gpu.h).
 * Device-independent: every device action goes through struct cache_gpu_ops. */
#include "gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

struct gslot {
	int b, x;          /* key, -1 when free */
	int refs;          /* acquires not yet released */
	int copy_pending;  /* copy_ev recorded, not yet seen complete */
	int use_pending;   /* use_ev recorded, not yet seen complete */
	int inner_held;    /* the inner source's view of (b, x) is still referenced */
	int held_pos;      /* index in held[] while inner_held */
	void *copy_ev, *use_ev;
};

struct cache_gpu {
	struct cache_gpu_opts o;
	struct cache_gpu_ops ops;
	size_t off[CACHE_GPU_NPARTS], slot_size;
	char *pool;              /* [nslots * slot_size] device memory */
	int nslots;
	struct gslot *s;         /* [nslots] */
	int *index;              /* [nblocks * nexperts] -> slot or -1 */
	int *free_stack, nfree;  /* [nslots] */
	int *held, nheld;        /* [nslots] slots with inner_held */
	const struct cache_policy_ops *pol;
	void *pol_st;
	struct cache_gpu_stats st;
	int dev_rc;              /* a device error seen in release() (reported by the next acquire) */
	struct core_expert_src iface;
};

size_t cache_gpu_layout(const size_t part_bytes[CACHE_GPU_NPARTS], size_t off[CACHE_GPU_NPARTS])
{
	size_t o = 0;
	for (int p = 0; p < CACHE_GPU_NPARTS; p++) {
		off[p] = o;
		o = (o + part_bytes[p] + CACHE_GPU_ALIGN - 1) / CACHE_GPU_ALIGN * CACHE_GPU_ALIGN;
	}
	return (o + 255) / 256 * 256; /* slots start 256-byte aligned, like cudaMalloc */
}

static const char *estr(const struct cache_gpu *g, int rc)
{
	const char *s = g->ops.errstr ? g->ops.errstr(g->ops.arg, rc) : NULL;
	return s ? s : "device operation failed";
}

static int dev_err(const struct cache_gpu *g, struct nv_err *e, int b, int x, const char *what, int rc)
{
	const char *hint = "a device fault: rerun with NVMOE_CUDA_SYNC=1 to name the failing operation";
	if (b < 0) return core_err_set(e, NV_EIO, "GPU expert slots", NULL, hint, "%s: %s", what, estr(g, rc));
	return core_err_set(e, NV_EIO, "GPU expert slots", NULL, hint, "block %d expert %d: %s: %s", b, x, what,
			    estr(g, rc));
}

/* ---------------------------------------------------------------- inner views */

static void held_add(struct cache_gpu *g, int s)
{
	g->s[s].inner_held = 1;
	g->s[s].held_pos = g->nheld;
	g->held[g->nheld++] = s;
}

static void held_drop(struct cache_gpu *g, int s)
{
	struct gslot *sl = &g->s[s];
	int last = g->held[--g->nheld];
	g->held[sl->held_pos] = last;
	g->s[last].held_pos = sl->held_pos;
	sl->inner_held = 0;
	g->o.inner->release(g->o.inner->ctx, sl->b, sl->x);
}

/* 1 when slot s's copy is known complete (querying it if needed). */
static int copy_done(struct cache_gpu *g, int s)
{
	struct gslot *sl = &g->s[s];
	if (sl->copy_pending && g->ops.query(g->ops.arg, sl->copy_ev) == 1) sl->copy_pending = 0;
	return !sl->copy_pending;
}

/* Wait for slot s's copy (host side). */
static int copy_sync(struct cache_gpu *g, int s)
{
	struct gslot *sl = &g->s[s];
	if (copy_done(g, s)) return 0;
	g->st.host_waits++;
	int rc = g->ops.sync(g->ops.arg, sl->copy_ev);
	if (!rc) sl->copy_pending = 0;
	return rc;
}

/* Release the inner views whose copies have completed. */
static void poll_held(struct cache_gpu *g)
{
	for (int i = 0; i < g->nheld;) {
		int s = g->held[i];
		if (copy_done(g, s)) held_drop(g, s); /* moves another entry to i */
		else i++;
	}
}

/* Wait for every copy still reading inner views, and release them. */
static int drain_held(struct cache_gpu *g)
{
	int rc = 0;
	while (g->nheld) {
		int s = g->held[g->nheld - 1], r = copy_sync(g, s);
		if (r && !rc) rc = r;
		held_drop(g, s); /* even on error: the inner source must get its view back */
	}
	return rc;
}

/* ---------------------------------------------------------------- pool */

/* Undo a partial or complete reserve (nothing may be in flight). */
static void pool_free(struct cache_gpu *g)
{
	for (int s = 0; s < g->nslots && g->s; s++) {
		if (g->s[s].copy_ev) g->ops.event_destroy(g->ops.arg, g->s[s].copy_ev);
		if (g->s[s].use_ev) g->ops.event_destroy(g->ops.arg, g->s[s].use_ev);
	}
	if (g->pool) g->ops.free(g->ops.arg, g->pool);
	if (g->pol_st) g->pol->destroy(g->pol_st);
	free(g->s);
	free(g->free_stack);
	free(g->held);
	g->pool = NULL;
	g->pol_st = NULL;
	g->s = NULL;
	g->free_stack = g->held = NULL;
	g->nslots = g->nfree = g->nheld = 0;
}

static int reserve_fail(struct cache_gpu *g, int rc)
{
	pool_free(g);
	return rc;
}

int cache_gpu_reserve(struct cache_gpu *g, struct nv_err *e)
{
	if (g->pool) return 0;
	uint64_t total = (uint64_t)g->o.nblocks * (uint64_t)g->o.nexperts;
	uint64_t n;
	uint64_t bytes = 0;
	if (g->o.nslots > 0) {
		n = (uint64_t)g->o.nslots;
	} else {
		bytes = g->o.bytes;
		if (!bytes) {
			int rc = g->ops.avail(g->ops.arg, &bytes);
			if (rc) return dev_err(g, e, -1, -1, "querying free device memory", rc);
		}
		n = bytes / g->slot_size;
	}
	if (n > total) n = total;
	int need = g->o.min_slots > 0 ? g->o.min_slots : 2;
	if ((uint64_t)need > total) need = (int)total;
	if (n < (uint64_t)need)
		return core_err_set(e, NV_EFIT, "GPU expert slots", "--vram-budget",
				    "raise --vram-budget, or lower --ctx / the chunk size",
				    "%.1f MiB of device memory are left for expert slots; one slot takes %.2f MiB and at "
				    "least %d are needed", (double)bytes / (1 << 20), (double)g->slot_size / (1 << 20), need);
	g->s = calloc(n, sizeof *g->s);
	g->free_stack = malloc(sizeof(int) * n);
	g->held = malloc(sizeof(int) * n);
	if (!g->s || !g->free_stack || !g->held)
		return reserve_fail(g, core_err_set(e, NV_ENOMEM, "GPU expert slots", NULL, NULL, "out of memory"));
	int rc = g->pol->create((int)n, &g->pol_st);
	if (rc) return reserve_fail(g, core_err_set(e, NV_ENOMEM, "GPU expert slots", NULL, NULL, "out of memory"));
	void *p = NULL;
	if ((rc = g->ops.alloc(g->ops.arg, (size_t)n * g->slot_size, &p)) || !p)
		return reserve_fail(g, core_err_set(e, NV_ENOMEM, "GPU expert slots", "--vram-budget", "lower --vram-budget",
				    "cannot allocate %llu slots of %.2f MiB (%.2f GiB) on the device: %s",
				    (unsigned long long)n, (double)g->slot_size / (1 << 20),
				    (double)n * (double)g->slot_size / (1 << 30), estr(g, rc)));
	g->pool = p;
	g->nslots = (int)n; /* pool_free walks the events made so far */
	for (uint64_t i = 0; i < n; i++) {
		struct gslot *sl = &g->s[i];
		sl->b = sl->x = -1;
		if ((rc = g->ops.event_create(g->ops.arg, &sl->copy_ev)) ||
		    (rc = g->ops.event_create(g->ops.arg, &sl->use_ev)))
			return reserve_fail(g, dev_err(g, e, -1, -1, "creating events", rc));
	}
	for (int i = 0; i < g->nslots; i++) g->free_stack[i] = g->nslots - 1 - i;
	g->nfree = g->nslots;
	return 0;
}

/* evictable(): unreferenced and its last use seen complete */
static int evictable_done(void *arg, int s)
{
	struct cache_gpu *g = arg;
	struct gslot *sl = &g->s[s];
	if (sl->refs) return 0;
	if (sl->use_pending && g->ops.query(g->ops.arg, sl->use_ev) == 1) sl->use_pending = 0;
	return !sl->use_pending;
}

static int evictable_any(void *arg, int s)
{
	struct cache_gpu *g = arg;
	return g->s[s].refs == 0;
}

/* A slot for a new key: a free one, else the policy's victim (one whose last use is
 * seen complete first).  Returns the slot or -1.  The slot's use_pending then says
 * whether its refill must wait (GPU side) for its last use. */
static int take_slot(struct cache_gpu *g, int *rc)
{
	*rc = 0;
	if (g->nfree) return g->free_stack[--g->nfree];
	int s = g->pol->victim(g->pol_st, evictable_done, g);
	if (s < 0) s = g->pol->victim(g->pol_st, evictable_any, g);
	if (s < 0) return -1;
	struct gslot *sl = &g->s[s];
	g->pol->remove(g->pol_st, s);
	g->index[(size_t)sl->b * (size_t)g->o.nexperts + (size_t)sl->x] = -1;
	g->st.evictions++;
	if (sl->inner_held) {
		/* the old copy may still read the old host view: it must end before the view goes */
		*rc = copy_sync(g, s);
		held_drop(g, s);
	}
	sl->copy_pending = 0;
	sl->b = sl->x = -1;
	return s;
}

static void put_free(struct cache_gpu *g, int s)
{
	g->s[s].b = g->s[s].x = -1;
	g->free_stack[g->nfree++] = s;
}

static void views(const struct cache_gpu *g, int s, struct core_expert_view *v)
{
	const uint8_t *m = (const uint8_t *)g->pool + (size_t)s * g->slot_size;
	v->w1 = m + g->off[0];
	v->w1_scale = m + g->off[1];
	v->w3 = m + g->off[2];
	v->w3_scale = m + g->off[3];
	v->w2 = m + g->off[4];
	v->w2_scale = m + g->off[5];
}

/* Copy the host parts into slot s: parts whose host addresses keep the slot's relative
 * offsets (a store record) go as one run; the gaps are < CACHE_GPU_ALIGN bytes between
 * two readable parts. */
static int fill(struct cache_gpu *g, int s, const struct core_expert_view *hv)
{
	const uint8_t *hp[CACHE_GPU_NPARTS] = { hv->w1, hv->w1_scale, hv->w3, hv->w3_scale, hv->w2, hv->w2_scale };
	char *dst = g->pool + (size_t)s * g->slot_size;
	for (int p = 0; p < CACHE_GPU_NPARTS;) {
		int q = p + 1;
		while (q < CACHE_GPU_NPARTS && hp[q] == hp[p] + (g->off[q] - g->off[p])) q++;
		size_t len = g->off[q - 1] + g->o.part_bytes[q - 1] - g->off[p];
		int rc = g->ops.copy(g->ops.arg, dst + g->off[p], hp[p], len);
		if (rc) return rc;
		g->st.copies++;
		g->st.bytes_copied += len;
		p = q;
	}
	return 0;
}

/* ---------------------------------------------------------------- interface */

static int gpu_acquire(void *ctx, int b, int x, struct core_expert_view *v, struct nv_err *e)
{
	struct cache_gpu *g = ctx;
	if (b < 0 || b >= g->o.nblocks || x < 0 || x >= g->o.nexperts)
		return core_err_set(e, NV_ERANGE, "GPU expert slots", NULL, "internal: bad expert id",
				    "block %d expert %d outside %d blocks x %d experts", b, x, g->o.nblocks, g->o.nexperts);
	int rc;
	if (!g->pool && (rc = cache_gpu_reserve(g, e))) return rc;
	if (g->dev_rc) return dev_err(g, e, b, x, "recording a use event", g->dev_rc);
	poll_held(g);
	size_t key = (size_t)b * (size_t)g->o.nexperts + (size_t)x;
	int s = g->index[key];
	if (s >= 0) {
		/* the compute stream already waited for this slot's copy when it was filled */
		g->s[s].refs++;
		g->pol->touch(g->pol_st, s);
		g->st.hits++;
		views(g, s, v);
		return 0;
	}
	s = take_slot(g, &rc);
	if (s < 0)
		return core_err_set(e, NV_EFIT, "GPU expert slots", NULL, "raise --vram-budget",
				    "block %d expert %d: all %d slots are in use", b, x, g->nslots);
	if (rc) { put_free(g, s); return dev_err(g, e, b, x, "waiting for a copy", rc); }
	struct core_expert_view hv;
	rc = g->o.inner->acquire(g->o.inner->ctx, b, x, &hv, e);
	if (rc == NV_EFIT && g->nheld) {
		/* our pending copies hold inner views: finish them and try again */
		int r2 = drain_held(g);
		if (r2) { put_free(g, s); return dev_err(g, e, b, x, "waiting for copies", r2); }
		rc = g->o.inner->acquire(g->o.inner->ctx, b, x, &hv, e);
	}
	if (rc) { put_free(g, s); return rc; } /* use_pending stays: a later refill still waits */
	struct gslot *sl = &g->s[s];
	const char *what = "ordering the copy after the slot's last use";
	if (sl->use_pending) {
		rc = g->ops.copy_wait(g->ops.arg, sl->use_ev);
		g->st.copy_waits++;
	}
	if (!rc) { what = "copying to the device"; rc = fill(g, s, &hv); }
	if (!rc) { what = "recording the copy event"; rc = g->ops.record_copy(g->ops.arg, sl->copy_ev); }
	if (!rc) sl->copy_pending = 1;
	if (!rc) { what = "ordering the compute stream after the copy"; rc = g->ops.compute_wait(g->ops.arg, sl->copy_ev); }
	if (rc) {
		/* copies may be in flight: wait for the copy stream before the view goes */
		if (!g->ops.record_copy(g->ops.arg, sl->copy_ev)) g->ops.sync(g->ops.arg, sl->copy_ev);
		sl->copy_pending = 0;
		g->o.inner->release(g->o.inner->ctx, b, x);
		put_free(g, s);
		return dev_err(g, e, b, x, what, rc);
	}
	sl->b = b;
	sl->x = x;
	sl->use_pending = 0; /* the copy is ordered after it */
	held_add(g, s);
	sl->refs = 1;
	g->index[key] = s;
	g->pol->insert(g->pol_st, s);
	g->st.misses++;
	views(g, s, v);
	return 0;
}

static void gpu_release(void *ctx, int b, int x)
{
	struct cache_gpu *g = ctx;
	CHECK(b >= 0 && b < g->o.nblocks && x >= 0 && x < g->o.nexperts);
	int s = g->index[(size_t)b * (size_t)g->o.nexperts + (size_t)x];
	CHECK(s >= 0 && g->s[s].refs > 0); /* release without acquire is a bug in the caller */
	struct gslot *sl = &g->s[s];
	sl->refs--;
	int rc = g->ops.record_compute(g->ops.arg, sl->use_ev);
	if (rc && !g->dev_rc) g->dev_rc = rc; /* the device is broken: every later acquire fails */
	sl->use_pending = rc == 0;
	if (sl->inner_held && copy_done(g, s)) held_drop(g, s);
}

static void gpu_hint(void *ctx, int b, const int *experts, int n, int priority)
{
	struct cache_gpu *g = ctx;
	/* the host tier starts its reads; copies are issued by acquire(), in order on the
	 * copy stream, so the next expert's copy overlaps this one's kernels anyway */
	if (g->o.inner->hint) g->o.inner->hint(g->o.inner->ctx, b, experts, n, priority);
}

static void gpu_token_known(void *ctx, int pos, int token)
{
	struct cache_gpu *g = ctx;
	if (g->o.inner->token_known) g->o.inner->token_known(g->o.inner->ctx, pos, token);
}

/* Routing reports go to the inner tier, whose predictors score them. */
static void gpu_routed(void *ctx, int b, int p0, int S, int k, const int32_t *ids)
{
	struct cache_gpu *g = ctx;
	if (g->o.inner->routed) g->o.inner->routed(g->o.inner->ctx, b, p0, S, k, ids);
}

/* The order of a call (layer-major) matters to the inner tier's prefetch. */
static void gpu_order(void *ctx, int layer_major)
{
	struct cache_gpu *g = ctx;
	if (g->o.inner->order) g->o.inner->order(g->o.inner->ctx, layer_major);
}

void cache_gpu_iface(struct cache_gpu *g, struct core_expert_src *out)
{
	/* optional hooks this layer does not provide stay NULL */
	memset(out, 0, sizeof *out);
	out->ctx = g;
	out->acquire = gpu_acquire;
	out->release = gpu_release;
	out->hint = gpu_hint;
	out->token_known = gpu_token_known;
	out->routed = gpu_routed;
	out->order = gpu_order;
	out->lookahead = g->o.inner->lookahead; /* lookahead hints reach the inner tier via hint() */
}

int cache_gpu_is_src(const struct core_expert_src *src) { return src && src->acquire == gpu_acquire; }

/* ---------------------------------------------------------------- setup */

int cache_gpu_create(const struct cache_gpu_opts *o, const struct cache_gpu_ops *ops, struct cache_gpu **out,
		     struct nv_err *e)
{
	*out = NULL;
	const char *why = NULL;
	if (!o->inner || !o->inner->acquire || !o->inner->release) why = "no inner expert source";
	else if (o->nblocks <= 0 || o->nexperts <= 0) why = "empty key space";
	else if (!ops->alloc || !ops->free || !ops->event_create || !ops->event_destroy || !ops->copy ||
		 !ops->record_copy || !ops->record_compute || !ops->compute_wait || !ops->copy_wait || !ops->query ||
		 !ops->sync || (!ops->avail && o->nslots <= 0 && !o->bytes))
		why = "incomplete device operations";
	const struct cache_policy_ops *pol = cache_policy_find(o->policy ? o->policy : "lru");
	if (!why && !pol) why = "unknown eviction policy";
	if (why) {
		if (ops->destroy) ops->destroy(ops->arg);
		return core_err_set(e, NV_EINVAL, "GPU expert slots", o->policy, pol ? "internal" : cache_policy_names(),
				    "%s", why);
	}
	struct cache_gpu *g = calloc(1, sizeof *g);
	if (!g) {
		if (ops->destroy) ops->destroy(ops->arg);
		return core_err_set(e, NV_ENOMEM, "GPU expert slots", NULL, NULL, "out of memory");
	}
	g->o = *o;
	g->ops = *ops;
	g->pol = pol;
	g->slot_size = cache_gpu_layout(o->part_bytes, g->off);
	size_t nkeys = (size_t)o->nblocks * (size_t)o->nexperts;
	g->index = malloc(sizeof(int) * nkeys);
	if (!g->index) {
		cache_gpu_destroy(g);
		return core_err_set(e, NV_ENOMEM, "GPU expert slots", NULL, NULL, "out of memory");
	}
	for (size_t i = 0; i < nkeys; i++) g->index[i] = -1;
	cache_gpu_iface(g, &g->iface);
	*out = g;
	return 0;
}

void cache_gpu_destroy(struct cache_gpu *g)
{
	if (!g) return;
	for (int s = 0; s < g->nslots && g->s; s++) {
		struct gslot *sl = &g->s[s];
		if (sl->use_pending && sl->use_ev) g->ops.sync(g->ops.arg, sl->use_ev);
	}
	if (g->held) drain_held(g);
	pool_free(g);
	if (g->ops.destroy) g->ops.destroy(g->ops.arg);
	free(g->index);
	free(g);
}

int cache_gpu_nslots(const struct cache_gpu *g) { return g->nslots; }
size_t cache_gpu_slot_size(const struct cache_gpu *g) { return g->slot_size; }
void cache_gpu_stats(const struct cache_gpu *g, struct cache_gpu_stats *st) { *st = g->st; }
void *cache_gpu_slot(const struct cache_gpu *g, int s) { return g->pool + (size_t)s * g->slot_size; }

int cache_gpu_lookup(const struct cache_gpu *g, int b, int x)
{
	if (b < 0 || b >= g->o.nblocks || x < 0 || x >= g->o.nexperts) return -1;
	return g->index[(size_t)b * (size_t)g->o.nexperts + (size_t)x];
}
