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
	const int64_t *tid2eid[CORE_MAX_BLOCKS]; /* [V][k] per hash layer, NULL when unmapped */
	int tid_rows, tid_k;
	char warning[600];
};

void offload_source_opts_default(struct offload_source_opts *o)
{
	memset(o, 0, sizeof *o);
	o->prefetch = 1;
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
	if (st) {
		char nm[96];
		io->status = st;
		io->err = err;
		snprintf(io->err.object, sizeof io->err.object, "%s",
			 offload_store_expert_name(&s->g, io->block, io->expert, nm, sizeof nm));
		cache_host_set_state(s->c, io->slot, CACHE_FAILED);
	} else {
		cache_host_set_state(s->c, io->slot, CACHE_LOADED);
		cache_host_add_io(s->c, io->bytes, 0);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* mu held (released around the submit).  Slot is LOADING for (b, x). */
static void start_load(struct offload_source *s, int slot, int b, int x, int prio)
{
	struct sio *io = &s->io[slot];
	char *mem = cache_host_slot(s->c, slot);
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
	struct nv_err err;
	pthread_mutex_unlock(&s->mu);
	int rc = offload_engine_submit(s->eng, io->rd, io->nrd, prio, &io->grp, &err);
	pthread_mutex_lock(&s->mu);
	if (rc) {
		char nm[96];
		io->status = rc;
		io->err = err;
		snprintf(io->err.object, sizeof io->err.object, "%s",
			 offload_store_expert_name(&s->g, b, x, nm, sizeof nm));
		cache_host_set_state(s->c, slot, CACHE_FAILED);
	}
}

/* ---------------------------------------------------------------- interface */

static int src_acquire(void *ctx, int b, int x, struct core_expert_view *v, struct nv_err *e)
{
	struct offload_source *s = ctx;
	if (b < 0 || b >= s->g.nblocks || x < 0 || x >= s->g.nexperts)
		return core_err_set(e, NV_ERANGE, "expert source", NULL, "internal: bad expert id",
				    "block %d expert %d outside %d blocks x %d experts", b, x, s->g.nblocks, s->g.nexperts);
	pthread_mutex_lock(&s->mu);
	int own = 0;
	for (;;) {
		int hit;
		int slot = cache_host_get(s->c, b, x, CACHE_REF | CACHE_ALLOC, &hit, e);
		if (slot < 0) {
			if (slot == NV_EFIT && cache_host_nloading(s->c) > 0) {
				/* prefetches in flight hold slots: one will free up */
				uint64_t t0 = now_ns();
				pthread_cond_wait(&s->cv, &s->mu);
				cache_host_add_io(s->c, 0, now_ns() - t0);
				continue;
			}
			pthread_mutex_unlock(&s->mu);
			return slot;
		}
		if (!hit) {
			own = 1;
			start_load(s, slot, b, x, OFFLOAD_PRIO_DEMAND);
		}
		if (cache_host_state(s->c, slot) == CACHE_LOADING) {
			if (s->io[slot].prio != OFFLOAD_PRIO_DEMAND) {
				/* a prefetch is needed now: its queued reads go first */
				offload_engine_promote(s->eng, &s->io[slot].grp);
				s->io[slot].prio = OFFLOAD_PRIO_DEMAND;
				s->promoted++;
			}
			uint64_t t0 = now_ns();
			while (cache_host_state(s->c, slot) == CACHE_LOADING) pthread_cond_wait(&s->cv, &s->mu);
			cache_host_add_io(s->c, 0, now_ns() - t0);
		}
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
		if (cache_host_state(s->c, slot) == CACHE_FAILED) {
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
		const uint8_t *m = cache_host_slot(s->c, slot);
		v->w1 = m + io->view_off[OFFLOAD_W1];
		v->w1_scale = m + io->view_off[OFFLOAD_W1S];
		v->w3 = m + io->view_off[OFFLOAD_W3];
		v->w3_scale = m + io->view_off[OFFLOAD_W3S];
		v->w2 = m + io->view_off[OFFLOAD_W2];
		v->w2_scale = m + io->view_off[OFFLOAD_W2S];
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

static void src_hint(void *ctx, int b, const int *experts, int n, int priority)
{
	struct offload_source *s = ctx;
	(void)priority;
	if (b < 0 || b >= s->g.nblocks) return;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < n; i++) {
		int x = experts[i], hit;
		if (x < 0 || x >= s->g.nexperts) continue;
		int slot = cache_host_get(s->c, b, x, CACHE_ALLOC | CACHE_PREFETCH, &hit, NULL);
		if (slot < 0) break; /* no room: a hint never evicts experts in use */
		if (!hit) start_load(s, slot, b, x, OFFLOAD_PRIO_PREFETCH);
	}
	pthread_mutex_unlock(&s->mu);
}

static void src_token_known(void *ctx, int pos, int token)
{
	struct offload_source *s = ctx;
	(void)pos;
	if (!s->o.prefetch || token < 0 || token >= s->tid_rows) return;
	const struct core_config *c = core_ckpt_config(s->ck);
	int ids[64];
	for (int b = 0; b < c->num_hash_layers && b < CORE_MAX_BLOCKS; b++) {
		if (!s->tid2eid[b]) continue;
		int k = s->tid_k < 64 ? s->tid_k : 64;
		for (int i = 0; i < k; i++) ids[i] = (int)s->tid2eid[b][(size_t)token * (size_t)s->tid_k + (size_t)i];
		src_hint(s, b, ids, k, 0);
	}
}

void offload_source_iface(struct offload_source *s, struct core_expert_src *out)
{
	out->ctx = s;
	out->acquire = src_acquire;
	out->release = src_release;
	out->hint = src_hint;
	out->token_known = src_token_known;
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
	for (int i = 0; i < nslots; i++) { s->io[i].s = s; s->io[i].slot = i; }
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
	/* hash-layer prefetch tables (only when the shards are mapped) */
	for (int b = 0; b < cfg->num_hash_layers && b < CORE_MAX_BLOCKS; b++) {
		char nm[64];
		snprintf(nm, sizeof nm, "layers.%d.ffn.gate.tid2eid", b);
		const struct core_tensor *t = core_ckpt_find(ck, nm);
		if (!t || !t->data || t->dtype != CORE_DT_I64 || t->ndim != 2) continue;
		s->tid2eid[b] = t->data;
		s->tid_rows = (int)t->shape[0];
		s->tid_k = (int)t->shape[1];
	}
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
	pthread_mutex_unlock(&s->mu);
	offload_engine_stats(s->eng, &st->io);
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
