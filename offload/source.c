/* offload/source.c - expert source over engine + host cache (contract in source.h).
 *
 * One mutex (mu) serializes the cache and the per-slot I/O records; the engine's
 * completion callback takes it to publish a slot's state, and cv wakes the
 * forward thread waiting for a slot.  Engine calls are made with mu released.
 */
#define _GNU_SOURCE
#include "source.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "offload/prefetch.h"
#include "offload/store.h"

/* Tensors of one expert closer than this in a shard are read as one run. */
#define MERGE_GAP (64u << 10)

struct sio {                         /* the I/O of one slot */
	struct offload_source *s;
	int slot;
	int block, expert;
	struct offload_read rd[OFFLOAD_NPARTS];
	int nrd;
	struct offload_group grp;
	uint64_t view_off[OFFLOAD_NPARTS]; /* part p at slot + view_off[p] */
	uint64_t bytes;
	int status;
	int prio;                          /* engine priority of the load */
	struct nv_err err;
	int pf_kind;                       /* OFFLOAD_PF_* of a prefetch not used yet, -1 = none */
	uint64_t pf_chunk;                 /* chunk the prefetch was made for */
	uint64_t done_bytes;               /* bytes of the load that completed */
};

/* One expert of a batch acquisition (core/expert_src.h acquire_begin). */
struct bent {
	int x, slot, own;
	int st;                            /* 0 = no slot yet, 1 = slot referenced, 2 = handed out */
};

struct offload_source {
	const struct core_ckpt *ck;
	struct offload_source_opts o;
	struct offload_store_geom g;
	struct offload_store *store;      /* NULL: HF shards */
	int store_fid;
	const struct core_tensor **hf;    /* [nblocks * nexperts * 6] (HF mode) */
	int *shard_fid;                   /* [nshards] engine file ids (HF mode) */
	uint64_t slot_size;
	struct cache_host *c;
	struct offload_engine *eng;
	struct sio *io;                   /* [nslots] */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t verified;
	uint64_t retried;
	uint64_t promoted;
	struct offload_prefetch *pf;
	int *hash_ids;                    /* [num_hash_layers * k] */
	uint64_t chunk;                   /* tokens made known since the last routing: one chunk */
	int routing_seen;
	int layer_major;                  /* a layer-major call is running (core/expert_src.h order) */
	int *cancel;                      /* [nslots] scratch for stale prefetches */
	struct bent *bat;                 /* [nexperts] the current batch */
	int nbat, bat_block;
	uint64_t pf_issued[OFFLOAD_PF_KINDS], pf_used[OFFLOAD_PF_KINDS];
	uint64_t pf_wasted_bytes, pf_cancelled, late;
	int inflight;                     /* loads in flight (busy time) */
	uint64_t busy_t0, busy_ns;
	char warning[600];
};

void offload_source_opts_default(struct offload_source_opts *o)
{
	memset(o, 0, sizeof *o);
	o->prefetch = 1;
	o->lookahead = OFFLOAD_LOOKAHEAD_DEFAULT;
	offload_engine_opts_default(&o->io);
	offload_engine_opts_env(&o->io);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- read plans */

uint64_t offload_hf_runs(const struct core_tensor *const parts[OFFLOAD_NPARTS],
			 struct offload_run runs[OFFLOAD_NPARTS], int *nruns, uint64_t view_off[OFFLOAD_NPARTS])
{
	struct { int part; int shard; uint64_t off, len; } r[OFFLOAD_NPARTS], tmp;
	for (int p = 0; p < OFFLOAD_NPARTS; p++) {
		r[p].part = p;
		r[p].shard = parts[p]->shard;
		r[p].off = parts[p]->file_offset;
		r[p].len = parts[p]->nbytes;
	}
	for (int i = 1; i < OFFLOAD_NPARTS; i++) /* by (shard, offset) */
		for (int j = i; j > 0 && (r[j].shard < r[j - 1].shard ||
					 (r[j].shard == r[j - 1].shard && r[j].off < r[j - 1].off)); j--) {
			tmp = r[j]; r[j] = r[j - 1]; r[j - 1] = tmp;
		}
	uint64_t pos = 0;
	int n = 0;
	for (int i = 0; i < OFFLOAD_NPARTS;) {
		uint64_t start = offload_align_down(r[i].off), end = r[i].off + r[i].len;
		int j = i + 1;
		while (j < OFFLOAD_NPARTS && r[j].shard == r[i].shard && r[j].off <= end + MERGE_GAP) {
			if (r[j].off + r[j].len > end) end = r[j].off + r[j].len;
			j++;
		}
		runs[n].shard = r[i].shard;
		runs[n].off = start;
		runs[n].len = end - start;
		runs[n].slot_pos = pos;
		for (int k = i; k < j; k++) view_off[r[k].part] = pos + (r[k].off - start);
		n++;
		pos += offload_align_up(end - start);
		i = j;
	}
	*nruns = n;
	return pos;
}

/* Reads for (block, expert) from the HF shards into a slot; returns the slot
 * bytes the plan needs.  io may be NULL (sizing only). */
static uint64_t hf_plan(const struct offload_source *s, int b, int x, struct sio *io, char *slot)
{
	const struct core_tensor *const *t = &s->hf[((size_t)b * (size_t)s->g.nexperts + (size_t)x) * OFFLOAD_NPARTS];
	struct offload_run runs[OFFLOAD_NPARTS];
	uint64_t voff[OFFLOAD_NPARTS];
	int n;
	uint64_t need = offload_hf_runs(t, runs, &n, voff);
	if (!io) return need;
	for (int i = 0; i < n; i++) {
		struct offload_read *rd = &io->rd[i];
		memset(rd, 0, sizeof *rd);
		rd->file = s->shard_fid[runs[i].shard];
		rd->off = runs[i].off;
		rd->len = runs[i].len;
		rd->buf = slot + runs[i].slot_pos;
	}
	memcpy(io->view_off, voff, sizeof voff);
	io->nrd = n;
	return need;
}

static void store_plan(const struct offload_source *s, int b, int x, struct sio *io, char *slot)
{
	memset(&io->rd[0], 0, sizeof io->rd[0]);
	io->rd[0].file = s->store_fid;
	io->rd[0].off = offload_store_record_offset(s->store, b, x);
	io->rd[0].len = s->g.record_size;
	io->rd[0].buf = slot;
	io->nrd = 1;
	for (int p = 0; p < OFFLOAD_NPARTS; p++) io->view_off[p] = s->g.part_off[p];
}

/* ---------------------------------------------------------------- loads */

static void on_done(struct offload_group *grp, void *arg)
{
	struct sio *io = arg;
	struct offload_source *s = io->s;
	struct nv_err err;
	int st = offload_group_status(grp, &err);
	pthread_mutex_lock(&s->mu);
	if (--s->inflight == 0) s->busy_ns += now_ns() - s->busy_t0;
	if (st == NV_ECANCELED && io->prio != OFFLOAD_PRIO_DEMAND) {
		/* a stale prefetch: forget it (its slot was never referenced) */
		cache_host_set_state(s->c, io->slot, CACHE_FAILED);
		cache_host_drop(s->c, io->slot);
		s->pf_cancelled++;
	} else if (st) {
		char nm[96];
		io->status = st;
		io->err = err;
		snprintf(io->err.object, sizeof io->err.object, "%s",
			 offload_store_expert_name(&s->g, io->block, io->expert, nm, sizeof nm));
		cache_host_set_state(s->c, io->slot, CACHE_FAILED);
	} else {
		cache_host_set_state(s->c, io->slot, CACHE_LOADED);
		cache_host_add_io(s->c, io->bytes, 0);
		io->done_bytes = io->bytes;
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* mu held (released around the submit).  Slot is LOADING for (b, x). */
static void start_load(struct offload_source *s, int slot, int b, int x, int prio, int kind)
{
	struct sio *io = &s->io[slot];
	char *mem = cache_host_slot(s->c, slot);
	if (io->pf_kind >= 0) s->pf_wasted_bytes += io->done_bytes; /* evicted before any use */
	io->pf_kind = kind;
	io->pf_chunk = s->chunk;
	io->done_bytes = 0;
	io->block = b;
	io->expert = x;
	io->status = 0;
	io->prio = prio;
	if (s->store) store_plan(s, b, x, io, mem);
	else hf_plan(s, b, x, io, mem);
	io->bytes = 0;
	for (int i = 0; i < io->nrd; i++) io->bytes += io->rd[i].len;
	memset(&io->grp, 0, sizeof io->grp);
	io->grp.done = on_done;
	io->grp.arg = io;
	if (s->inflight++ == 0) s->busy_t0 = now_ns();
	struct nv_err err;
	pthread_mutex_unlock(&s->mu);
	int rc = offload_engine_submit(s->eng, io->rd, io->nrd, prio, &io->grp, &err);
	pthread_mutex_lock(&s->mu);
	if (rc) {
		char nm[96];
		if (--s->inflight == 0) s->busy_ns += now_ns() - s->busy_t0;
		io->status = rc;
		io->err = err;
		snprintf(io->err.object, sizeof io->err.object, "%s",
			 offload_store_expert_name(&s->g, b, x, nm, sizeof nm));
		cache_host_set_state(s->c, slot, CACHE_FAILED);
	}
}

/* ---------------------------------------------------------------- interface */

/* mu held.  A demand use found slot: a prefetch not used yet becomes used. */
static void note_use(struct offload_source *s, int slot)
{
	struct sio *io = &s->io[slot];
	if (io->pf_kind >= 0) {
		s->pf_used[io->pf_kind]++;
		io->pf_kind = -1;
	}
	if (cache_host_state(s->c, slot) == CACHE_LOADING) {
		s->late++;
		if (io->prio != OFFLOAD_PRIO_DEMAND) {
			/* a prefetch is needed now: its queued reads go first */
			offload_engine_promote(s->eng, &io->grp);
			io->prio = OFFLOAD_PRIO_DEMAND;
			s->promoted++;
		}
	}
}

/* mu held (released around the checksum).  LOADED -> READY or FAILED. */
static enum cache_slot_state settle(struct offload_source *s, int slot, int b, int x)
{
	struct sio *io = &s->io[slot];
	if (cache_host_state(s->c, slot) == CACHE_LOADED) {
		int rc = 0;
		if (s->store) {
			/* Only this thread acquires, and LOADED slots are not touched by the
			 * engine: check without the lock. */
			pthread_mutex_unlock(&s->mu);
			struct nv_err ce;
			rc = offload_store_check(s->store, b, x, cache_host_slot(s->c, slot), &ce);
			pthread_mutex_lock(&s->mu);
			s->verified++;
			if (rc) { io->status = rc; io->err = ce; }
		}
		cache_host_set_state(s->c, slot, rc ? CACHE_FAILED : CACHE_READY);
	}
	return cache_host_state(s->c, slot);
}

static void fill_view(struct offload_source *s, int slot, struct core_expert_view *v)
{
	offload_store_view_at(cache_host_slot(s->c, slot), s->io[slot].view_off, v);
}

/* mu held.  Wait for any slot to change state; the time counts as stall. */
static void stall(struct offload_source *s)
{
	uint64_t t0 = now_ns();
	pthread_cond_wait(&s->cv, &s->mu);
	cache_host_add_io(s->c, 0, now_ns() - t0);
}

static int bad_id(const struct offload_source *s, int b, int x, struct nv_err *e)
{
	if (b >= 0 && b < s->g.nblocks && x >= 0 && x < s->g.nexperts) return 0;
	return core_err_set(e, NV_ERANGE, "expert source", NULL, "internal: bad expert id",
			    "block %d expert %d outside %d blocks x %d experts", b, x, s->g.nblocks, s->g.nexperts);
}

static int src_acquire(void *ctx, int b, int x, struct core_expert_view *v, struct nv_err *e)
{
	struct offload_source *s = ctx;
	if (bad_id(s, b, x, e)) return NV_ERANGE;
	pthread_mutex_lock(&s->mu);
	int own = 0;
	for (;;) {
		int hit;
		int slot = cache_host_get(s->c, b, x, CACHE_REF | CACHE_ALLOC, &hit, e);
		if (slot < 0) {
			if (slot == NV_EFIT && cache_host_nloading(s->c) > 0) {
				stall(s); /* prefetches in flight hold slots: one will free up */
				continue;
			}
			pthread_mutex_unlock(&s->mu);
			return slot;
		}
		if (!hit) {
			own = 1;
			start_load(s, slot, b, x, OFFLOAD_PRIO_DEMAND, -1);
		} else {
			note_use(s, slot);
		}
		while (cache_host_state(s->c, slot) == CACHE_LOADING) stall(s);
		struct sio *io = &s->io[slot];
		if (settle(s, slot, b, x) == CACHE_FAILED) {
			struct nv_err fe = io->err;
			int rc = io->status ? io->status : NV_EIO;
			cache_host_unref(s->c, slot);
			cache_host_drop(s->c, slot);
			if (!own) { s->retried++; continue; } /* a failed prefetch: read it again on demand */
			pthread_mutex_unlock(&s->mu);
			if (e) *e = fe;
			return rc;
		}
		CHECK(cache_host_state(s->c, slot) == CACHE_READY);
		fill_view(s, slot, v);
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
}

static void src_release(void *ctx, int b, int x)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	int hit;
	int slot = cache_host_get(s->c, b, x, 0, &hit, NULL);
	CHECK(slot >= 0 && hit); /* release without acquire is a bug in the caller */
	cache_host_unref(s->c, slot);
	pthread_mutex_unlock(&s->mu);
}

/* ---- batch acquisition: every lookup and demand read at once, hand-out in
 * arrival order */

/* mu held.  Reference a slot for batch entry t (reading it when missing); a full
 * cache leaves it for later (0).  Other errors are returned. */
static int bat_take(struct offload_source *s, struct bent *t, struct nv_err *e)
{
	int hit;
	struct nv_err fe;
	int slot = cache_host_get(s->c, s->bat_block, t->x, CACHE_REF | CACHE_ALLOC, &hit, &fe);
	if (slot == NV_EFIT) return 0;
	if (slot < 0) { if (e) *e = fe; return slot; }
	t->slot = slot;
	t->st = 1;
	t->own = !hit;
	if (!hit) start_load(s, slot, s->bat_block, t->x, OFFLOAD_PRIO_DEMAND, -1);
	else note_use(s, slot);
	return 0;
}

static int src_begin(void *ctx, int b, const int *experts, int n, struct nv_err *e)
{
	struct offload_source *s = ctx;
	if (n > s->g.nexperts) return core_err_set(e, NV_ERANGE, "expert source", NULL, "internal", "batch of %d experts", n);
	for (int i = 0; i < n; i++)
		if (bad_id(s, b, experts[i], e)) return NV_ERANGE;
	pthread_mutex_lock(&s->mu);
	CHECK(s->nbat == 0); /* end() was called */
	s->bat_block = b;
	s->nbat = n;
	int rc = 0;
	for (int i = 0; i < n; i++) s->bat[i] = (struct bent){ experts[i], -1, 0, 0 };
	/* Hits first: a miss may need a victim, and prefetched-unused slots go first -
	 * which must not be the prefetches made for this very batch (layer-major hints
	 * name the next chunk's experts; a miss of a lower id would evict them).  Only
	 * when the whole batch fits in the cache: otherwise slots are taken in id order,
	 * the order next() hands them out in, so that held hits never block it. */
	for (int i = 0; i < n && n <= cache_host_nslots(s->c); i++) {
		struct bent *t = &s->bat[i];
		int hit, slot = cache_host_get(s->c, b, t->x, CACHE_REF, &hit, NULL);
		if (slot < 0 || !hit) continue;
		t->slot = slot;
		t->st = 1;
		note_use(s, slot);
	}
	for (int i = 0; i < n && !rc; i++)
		if (s->bat[i].st == 0) rc = bat_take(s, &s->bat[i], e);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int src_next(void *ctx, int b, int want, int *got, struct core_expert_view *v, struct nv_err *e)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	CHECK(b == s->bat_block);
	for (;;) {
		int pick = -1, loading = 0, pending = 0, left = 0;
		for (int i = 0; i < s->nbat; i++) {
			struct bent *t = &s->bat[i];
			if (t->st == 2 || (want >= 0 && t->x != want)) continue;
			left++;
			if (t->st == 0) { pending++; continue; }
			if (cache_host_state(s->c, t->slot) == CACHE_LOADING) { loading++; continue; }
			pick = i;
			break;
		}
		if (!left) {
			pthread_mutex_unlock(&s->mu);
			return core_err_set(e, NV_EINVAL, "expert source", NULL, "internal: acquire_next past the batch",
					    "block %d: no expert %d left in the batch", b, want);
		}
		if (pick >= 0) {
			struct bent *t = &s->bat[pick];
			struct sio *io = &s->io[t->slot];
			if (settle(s, t->slot, b, t->x) == CACHE_FAILED) {
				struct nv_err fe = io->err;
				int rc = io->status ? io->status : NV_EIO;
				cache_host_unref(s->c, t->slot);
				cache_host_drop(s->c, t->slot);
				if (!t->own) { /* a failed prefetch: read it again on demand */
					s->retried++;
					t->st = 0;
					t->slot = -1;
					continue;
				}
				t->st = 2;
				pthread_mutex_unlock(&s->mu);
				if (e) *e = fe;
				return rc;
			}
			CHECK(cache_host_state(s->c, t->slot) == CACHE_READY);
			fill_view(s, t->slot, v);
			t->st = 2;
			*got = t->x;
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		int taken = 0;
		for (int i = 0; i < s->nbat && pending; i++) {
			struct bent *t = &s->bat[i];
			if (t->st != 0 || (want >= 0 && t->x != want)) continue;
			int rc = bat_take(s, t, e);
			if (rc) { pthread_mutex_unlock(&s->mu); return rc; }
			taken += t->st == 1;
		}
		if (taken) continue;
		if (loading || cache_host_nloading(s->c) > 0) { stall(s); continue; }
		/* nothing arrives and nothing can be read: every slot is referenced */
		int x = -1;
		for (int i = 0; i < s->nbat && x < 0; i++)
			if (s->bat[i].st == 0 && (want < 0 || s->bat[i].x == want)) x = s->bat[i].x;
		pthread_mutex_unlock(&s->mu);
		char obj[64];
		snprintf(obj, sizeof obj, "block %d expert %d", b, x);
		return core_err_set(e, NV_EFIT, "host cache", obj,
				    "the forward pass holds more experts at once than the cache has slots: raise --host-cache",
				    "host cache full: all %d slots are in use", cache_host_nslots(s->c));
	}
}

static void src_end(void *ctx, int b)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->nbat; i++)
		if (s->bat[i].st == 1) cache_host_unref(s->c, s->bat[i].slot);
	s->nbat = 0;
	pthread_mutex_unlock(&s->mu);
	(void)b;
}

/* ---- prefetch */

/* mu held.  Prefetch reads for ids of block b, tagged kind (-1: untracked); a prefetch never
 * displaces an expert in use or another prefetch (cache/host.h). */
static void prefetch_reads(struct offload_source *s, int b, const int *ids, int n, int kind)
{
	for (int i = 0; i < n; i++) {
		int x = ids[i], hit;
		if (x < 0 || x >= s->g.nexperts) continue;
		int slot = cache_host_get(s->c, b, x, CACHE_ALLOC | CACHE_PREFETCH, &hit, NULL);
		if (slot < 0) break; /* no room */
		if (!hit) {
			start_load(s, slot, b, x, OFFLOAD_PRIO_PREFETCH, kind);
			if (kind >= 0) s->pf_issued[kind]++;
		}
	}
}

static void src_hint(void *ctx, int b, const int *experts, int n, int priority)
{
	struct offload_source *s = ctx;
	if (b < 0 || b >= s->g.nblocks) return;
	pthread_mutex_lock(&s->mu);
	if (priority > 0 && s->layer_major && b < offload_prefetch_hash_layers(s->pf)) {
		/* the next chunk's experts of a hash block: exact, from its tokens */
		offload_prefetch_hash(s->pf, b, experts, n);
		if (s->o.prefetch) prefetch_reads(s, b, experts, n, OFFLOAD_PF_HASH);
	} else if (priority > 0) {
		offload_prefetch_lookahead(s->pf, b, priority, experts, n);
		if (s->o.prefetch) prefetch_reads(s, b, experts, n, OFFLOAD_PF_LOOKAHEAD);
	} else {
		prefetch_reads(s, b, experts, n, -1); /* imminent demand of a caller without batches */
	}
	pthread_mutex_unlock(&s->mu);
}

/* mu held (released around the engine calls).  Prefetches made for earlier chunks
 * whose reads are still queued will not be used by the chunk they were made for:
 * cancel them so they take no bandwidth from the current token. */
static void cancel_stale(struct offload_source *s)
{
	int n = 0, ns = cache_host_nslots(s->c);
	for (int i = 0; i < ns; i++) {
		const struct sio *io = &s->io[i];
		if (io->pf_kind >= 0 && io->prio == OFFLOAD_PRIO_PREFETCH && io->pf_chunk < s->chunk &&
		    cache_host_state(s->c, i) == CACHE_LOADING)
			s->cancel[n++] = i;
	}
	if (!n) return;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < n; i++) offload_engine_cancel(s->eng, &s->io[s->cancel[i]].grp);
	pthread_mutex_lock(&s->mu);
}

static void src_token_known(void *ctx, int pos, int token)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	if (s->routing_seen) { /* the first token of a new chunk */
		s->chunk++;
		s->routing_seen = 0;
		cancel_stale(s);
	}
	if (s->layer_major) { /* the whole call's tokens at once: hints come per chunk */
		offload_prefetch_token_seen(s->pf, pos, token);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	int k, nb = offload_prefetch_token(s->pf, pos, token, s->hash_ids, &k);
	if (s->o.prefetch)
		for (int b = 0; b < nb; b++) prefetch_reads(s, b, s->hash_ids + b * k, k, OFFLOAD_PF_HASH);
	pthread_mutex_unlock(&s->mu);
}

static void src_routed(void *ctx, int b, int p0, int S, int k, const int32_t *ids)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->routing_seen = 1;
	offload_prefetch_routed(s->pf, b, p0, S, k, ids);
	pthread_mutex_unlock(&s->mu);
}

static void src_order(void *ctx, int layer_major)
{
	struct offload_source *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->layer_major = layer_major;
	pthread_mutex_unlock(&s->mu);
}

void offload_source_iface(struct offload_source *s, struct core_expert_src *out)
{
	memset(out, 0, sizeof *out);
	out->ctx = s;
	out->acquire = src_acquire;
	out->release = src_release;
	out->hint = src_hint;
	out->token_known = src_token_known;
	out->acquire_begin = src_begin;
	out->acquire_next = src_next;
	out->acquire_end = src_end;
	out->routed = src_routed;
	out->order = src_order;
	out->lookahead = s->o.prefetch ? offload_prefetch_lookahead_depth(s->pf) : 0;
}

/* ---------------------------------------------------------------- setup */

int offload_source_create(const struct core_ckpt *ck, const struct offload_source_opts *opts,
			  struct offload_source **out, struct nv_err *e)
{
	*out = NULL;
	struct offload_source_opts dflt;
	if (!opts) { offload_source_opts_default(&dflt); opts = &dflt; }
	struct offload_source *s = calloc(1, sizeof *s);
	if (!s) return core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory");
	s->ck = ck;
	s->o = *opts;
	s->store_fid = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	const struct core_config *cfg = core_ckpt_config(ck);
	int rc = offload_store_geom_from_config(cfg, &s->g, e);
	if (rc) goto fail;
	size_t nrec = (size_t)s->g.nblocks * (size_t)s->g.nexperts;
	char path[4096];
	if (core_ckpt_has_store(ck)) {
		snprintf(path, sizeof path, "%s/%s", core_ckpt_dir(ck), CORE_STORE_FILE);
		if ((rc = offload_store_open(path, &s->g, &s->store, e))) goto fail;
		s->slot_size = s->g.record_size;
	} else {
		s->hf = calloc(nrec * OFFLOAD_NPARTS, sizeof *s->hf);
		if (!s->hf) { rc = core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory"); goto fail; }
		for (int b = 0; b < s->g.nblocks; b++)
			for (int x = 0; x < s->g.nexperts; x++) {
				for (int p = 0; p < OFFLOAD_NPARTS; p++) {
					char nm[128];
					offload_expert_tensor_name(&s->g, b, x, p, nm, sizeof nm);
					const struct core_tensor *t = core_ckpt_find(ck, nm);
					if (!t || t->nbytes != s->g.part_size[p]) {
						const char *hint = "the checkpoint is incomplete or belongs to another config";
						if (t)
							rc = core_err_set(e, NV_EFORMAT, core_ckpt_dir(ck), nm, hint,
									  "tensor has %llu bytes, expected %llu",
									  (unsigned long long)t->nbytes, (unsigned long long)s->g.part_size[p]);
						else
							rc = core_err_set(e, NV_EMISSING, core_ckpt_dir(ck), nm, hint,
									  "routed-expert tensor not found");
						goto fail;
					}
					s->hf[((size_t)b * (size_t)s->g.nexperts + (size_t)x) * OFFLOAD_NPARTS + (size_t)p] = t;
				}
				uint64_t need = hf_plan(s, b, x, NULL, NULL);
				if (need > s->slot_size) s->slot_size = need;
			}
	}
	struct cache_host_opts co = {
		.bytes = opts->host_cache_bytes,
		.nslots = opts->host_cache_slots,
		.slot_size = (size_t)s->slot_size,
		.nblocks = s->g.nblocks,
		.nexperts = s->g.nexperts,
		.policy = opts->policy,
		.allow_unlocked = opts->allow_unlocked,
		.pin = opts->pin,
		.unpin = opts->unpin,
		.pin_arg = opts->pin_arg,
	};
	if (co.nslots <= 0 && co.bytes == 0) {
		/* no bound given: every expert, or half of the machine's memory */
		uint64_t all = (uint64_t)nrec * offload_align_up(s->slot_size);
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		uint64_t half = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 2 : all;
		if (all <= half) co.nslots = (int)nrec;
		else co.bytes = half;
	}
	if ((rc = cache_host_create(&co, &s->c, e))) goto fail;
	if (cache_host_warning(s->c)[0]) snprintf(s->warning, sizeof s->warning, "%s", cache_host_warning(s->c));
	int nslots = cache_host_nslots(s->c);
	s->io = calloc((size_t)nslots, sizeof *s->io);
	if (!s->io) { rc = core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory"); goto fail; }
	for (int i = 0; i < nslots; i++) { s->io[i].s = s; s->io[i].slot = i; s->io[i].pf_kind = -1; }
	struct iovec reg = { cache_host_base(s->c), cache_host_bytes(s->c) };
	struct offload_engine_opts eo = opts->io;
	int nsh = core_ckpt_nshards(ck);
	if (eo.max_files < nsh + 1) eo.max_files = nsh + 1;
	if ((rc = offload_engine_create(&eo, &reg, 1, &s->eng, e))) goto fail;
	if (s->store) {
		if ((rc = offload_engine_open(s->eng, offload_store_path(s->store), &s->store_fid, e))) goto fail;
	} else {
		s->shard_fid = calloc((size_t)(nsh ? nsh : 1), sizeof *s->shard_fid);
		if (!s->shard_fid) { rc = core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory"); goto fail; }
		for (int i = 0; i < nsh; i++)
			if ((rc = offload_engine_open(s->eng, core_ckpt_shard_path(ck, i), &s->shard_fid[i], e))) goto fail;
	}
	struct offload_prefetch_opts po = { .lookahead = opts->lookahead, .trace_path = opts->trace_path,
					    .trace_ring = opts->trace_ring };
	if ((rc = offload_prefetch_create(ck, &po, &s->pf, e))) goto fail;
	s->hash_ids = calloc((size_t)(cfg->num_hash_layers + 1) * (size_t)cfg->num_experts_per_tok, sizeof *s->hash_ids);
	s->cancel = calloc((size_t)nslots, sizeof *s->cancel);
	s->bat = calloc((size_t)s->g.nexperts, sizeof *s->bat);
	if (!s->hash_ids || !s->cancel || !s->bat) { rc = core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory"); goto fail; }
	*out = s;
	return 0;
fail:
	offload_source_destroy(s);
	return rc;
}

void offload_source_destroy(struct offload_source *s)
{
	if (!s) return;
	offload_engine_destroy(s->eng); /* waits for reads into the cache's slots */
	cache_host_destroy(s->c);
	offload_store_close(s->store);
	free(s->io);
	offload_prefetch_close(s->pf, NULL);
	free(s->hash_ids);
	free(s->cancel);
	free(s->bat);
	free(s->hf);
	free(s->shard_fid);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

void offload_source_stats(struct offload_source *s, struct offload_source_stats *st)
{
	pthread_mutex_lock(&s->mu);
	cache_host_stats(s->c, &st->cache);
	st->verified = s->verified;
	st->retried = s->retried;
	st->promoted = s->promoted;
	for (int k = 0; k < OFFLOAD_PF_KINDS; k++) {
		st->pf_issued[k] = s->pf_issued[k];
		st->pf_used[k] = s->pf_used[k];
	}
	st->pf_wasted_bytes = s->pf_wasted_bytes;
	st->pf_cancelled = s->pf_cancelled;
	st->late = s->late;
	st->io_busy_ns = s->busy_ns + (s->inflight ? now_ns() - s->busy_t0 : 0);
	offload_prefetch_stats(s->pf, &st->pred);
	pthread_mutex_unlock(&s->mu);
	offload_engine_stats(s->eng, &st->io);
}

int offload_source_close_trace(struct offload_source *s, struct nv_err *e)
{
	pthread_mutex_lock(&s->mu);
	int rc = offload_prefetch_trace_close(s->pf, e);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int offload_source_streams(const struct offload_source *s)
{
	return (uint64_t)cache_host_nslots(s->c) < (uint64_t)s->g.nblocks * (uint64_t)s->g.nexperts;
}

int offload_source_lookahead(const struct offload_source *s)
{
	return s->o.prefetch ? offload_prefetch_lookahead_depth(s->pf) : 0;
}

const char *offload_stats_line(const struct offload_source_stats *st, uint64_t tokens, char *buf, size_t n)
{
	const struct cache_host_stats *c = &st->cache;
	uint64_t acc = c->hits + c->misses;
	int l = snprintf(buf, n, "host cache %.1f%% hit (%llu of %llu), %llu evictions, %.2f GB read", acc ? 100.0 * (double)c->hits / (double)acc : 0.0,
			 (unsigned long long)c->hits, (unsigned long long)acc, (unsigned long long)c->evictions,
			 (double)c->bytes_read / 1e9);
	static const char *const nm[OFFLOAD_PF_KINDS] = { "hash", "lookahead" };
	for (int k = 0; k < OFFLOAD_PF_KINDS && l >= 0 && (size_t)l < n; k++)
		l += snprintf(buf + l, n - (size_t)l, "; %s prefetch %llu/%llu used", nm[k], (unsigned long long)st->pf_used[k],
			      (unsigned long long)st->pf_issued[k]);
	if (l >= 0 && (size_t)l < n)
		l += tokens ? snprintf(buf + l, n - (size_t)l, ", %.2f GB wasted; stall %.2f ms/token", (double)st->pf_wasted_bytes / 1e9,
				       (double)c->wait_ns / 1e6 / (double)tokens)
			    : snprintf(buf + l, n - (size_t)l, ", %.2f GB wasted; stall %.3f s", (double)st->pf_wasted_bytes / 1e9,
				       (double)c->wait_ns / 1e9);
	return buf;
}

const char *offload_source_warning(const struct offload_source *s) { return s->warning; }
uint64_t offload_source_slot_size(const struct offload_source *s) { return s->slot_size; }

const char *offload_source_describe(struct offload_source *s, char *buf, size_t n)
{
	char io[400];
	offload_engine_describe(s->eng, io, sizeof io);
	int nslots = cache_host_nslots(s->c);
	size_t nrec = (size_t)s->g.nblocks * (size_t)s->g.nexperts;
	if (s->store)
		snprintf(buf, n, "experts: store %s (%zu records of %.2f MiB, checksummed); ",
			 offload_store_path(s->store), nrec, (double)s->g.record_size / (1 << 20));
	else
		snprintf(buf, n, "experts: %d HF shard(s) of %s (%zu experts, %.2f MiB slots); ",
			 core_ckpt_nshards(s->ck), core_ckpt_dir(s->ck), nrec, (double)s->slot_size / (1 << 20));
	size_t l = strlen(buf);
	snprintf(buf + l, n - l, "host cache %d slot(s) = %.2f GiB, %s, %s; io: %s", nslots,
		 (double)cache_host_bytes(s->c) / (1 << 30), cache_host_policy(s->c),
		 cache_host_locked(s->c) ? "locked" : "UNLOCKED", io);
	return buf;
}
