/* cli/experts.c - choose and own the routed-expert source of a command.
 *
 * CPU backend: resident views (NULL source), or the streamed source (offload/source)
 * when --host-cache is given or the model is a converted store.
 * CUDA backend: resident in VRAM (NULL source: wmap at model creation) unless
 * --vram-budget, --host-cache or a store asks for streaming; then GPU expert slots
 * (cache/gpu) over the streamed source, whose host cache is page-locked for CUDA, or
 * over host views into the mmapped checkpoint.
 * cli_experts_open_auto: without --host-cache and --vram-budget the sizes come from
 * the memory plan (cli/plan.h) of the RAM and VRAM available. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plan.h"
#include "cache/gpu.h"
#include "core/ckpt.h"
#include "core/config.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "offload/source.h"
#include "offload/store.h"
#ifdef NVMOE_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

struct cli_experts {
	struct offload_source *s;         /* streamed host tier, or NULL */
	struct core_expert_src *res;      /* host views into the checkpoint (GPU slots without a host cache) */
	struct kern hostk;                /* identity wmap for res */
	struct core_expert_src iface;     /* of s */
	struct cache_gpu *g;              /* GPU slots, or NULL */
	struct core_expert_src giface;
	struct cache_gpu_pin pin;         /* page-locking of s's pool for CUDA */
	struct kern *k;                   /* the backend (GPU slots) */
	uint64_t vram_budget;
	int stats, verbose;
	const char *trace;                /* routing trace being written, or NULL */
	const struct core_config *cfg;    /* of the checkpoint (counting experts) */
	int planned;                      /* 1: sizes from the memory plan (auto) */
	int store;                        /* 1: experts come from a converted store (always a host cache) */
	int explicit_;                    /* 1: opened by cli_experts_open_auto with explicit sizes */
	uint64_t host_cache;              /* the effective --host-cache */
	struct cli_plan plan;             /* when planned */
};

static const void *host_wmap(struct kern *k, const void *host, size_t bytes)
{
	(void)k;
	(void)bytes;
	return host;
}

static int is_gpu_backend(const struct kern *k) { return k && strcmp(k->name, "cpu") != 0; }

static int open_gpu(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, struct cli_experts *c,
		    const struct core_expert_src *inner, struct nv_err *e)
{
	struct offload_store_geom geo;
	int rc = offload_store_geom_from_config(core_ckpt_config(ck), &geo, e);
	if (rc) return rc;
	struct cache_gpu_opts go = { .inner = inner, .nblocks = geo.nblocks, .nexperts = geo.nexperts };
	for (int p = 0; p < CACHE_GPU_NPARTS; p++) go.part_bytes[p] = (size_t)geo.part_size[p];
	const char *ev = getenv("NVMOE_GPU_SLOTS"); /* diagnostics: an exact slot count */
	if (ev && *ev) go.nslots = atoi(ev);
	struct cache_gpu_ops ops;
	if ((rc = cache_gpu_cuda_ops(k, o->vram_budget, &ops, e))) return rc;
	if ((rc = cache_gpu_create(&go, &ops, &c->g, e))) return rc;
	cache_gpu_iface(c->g, &c->giface);
	return 0;
}

/* Open the tiers o asks for into c (allocated by the caller; *src NULL = resident). */
static int open_tiers(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, struct cli_experts *c,
		      const struct core_expert_src **src, struct nv_err *e)
{
	int gpu = is_gpu_backend(k);
	/* A trace without a bound still streams (every expert fits, or half the RAM). */
	int streamed = o->host_cache || core_ckpt_has_store(ck) || o->trace_experts;
	c->stats = o->stats;
	c->verbose = o->verbose;
	c->k = k;
	c->vram_budget = o->vram_budget;
	c->host_cache = o->host_cache;
	c->cfg = core_ckpt_config(ck);
	if (!streamed && !(gpu && o->vram_budget)) return 0; /* resident (in VRAM on the GPU) */
	int rc = 0;
	const struct core_expert_src *inner = NULL;
	if (streamed) {
		struct offload_source_opts so;
		offload_source_opts_default(&so);
		so.host_cache_bytes = o->host_cache;
		so.allow_unlocked = o->no_mlock;
		so.prefetch = o->prefetch;
		if (o->lookahead >= 0) so.lookahead = o->lookahead;
		so.policy = o->policy;
		so.trace_path = o->trace_experts;
		so.trace_ring = o->chunk > 256 ? o->chunk : 256;
		c->trace = o->trace_experts;
		if (gpu) {
			so.pin = cache_gpu_cuda_pin;
			so.unpin = cache_gpu_cuda_unpin;
			so.pin_arg = &c->pin;
		}
		if ((rc = offload_source_create(ck, &so, &c->s, e))) return rc;
		offload_source_iface(c->s, &c->iface);
		inner = &c->iface;
		if (offload_source_warning(c->s)[0]) fprintf(stderr, "nvmoe: warning: %s\n", offload_source_warning(c->s));
		if (gpu && c->pin.why[0])
			fprintf(stderr, "nvmoe: warning: host cache not page-locked for CUDA (%s): copies to the GPU are staged\n",
				c->pin.why);
		if (o->verbose) {
			char buf[1200];
			fprintf(stderr, "nvmoe: %s\n", offload_source_describe(c->s, buf, sizeof buf));
		}
	} else {
		c->hostk.name = "host";
		c->hostk.wmap = host_wmap;
		if ((rc = core_expert_src_resident(ck, &c->hostk, &c->res, e))) return rc;
		inner = c->res;
	}
	if (gpu) {
		if ((rc = open_gpu(o, ck, k, c, inner, e))) return rc;
		*src = &c->giface;
	} else {
		*src = inner;
	}
	return 0;
}

int cli_experts_open_k(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, struct cli_experts **x,
		       const struct core_expert_src **src, struct nv_err *e)
{
	*x = NULL;
	*src = NULL;
	int streamed = o->host_cache || core_ckpt_has_store(ck) || o->trace_experts;
	if (!streamed && !(is_gpu_backend(k) && o->vram_budget)) return 0; /* resident (in VRAM on the GPU) */
	struct cli_experts *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory");
	int rc = open_tiers(o, ck, k, c, src, e);
	if (rc) {
		*src = NULL;
		cli_experts_close(c);
		return rc;
	}
	*x = c;
	return 0;
}

/* Device bytes nvmoe may use on k's GPU: what is free now, plus what the backend
 * already holds, less the margin cache/gpu_cuda.c keeps (2%, at least 256 MiB). */
static uint64_t vram_here(struct kern *k)
{
	uint64_t v = 0;
#ifdef NVMOE_HAVE_CUDA
	if (kern_cuda_is(k)) {
		char name[128];
		size_t fr = 0, tot = 0;
		kern_cuda_info(k, name, sizeof name, &fr, &tot);
		uint64_t margin = (uint64_t)tot / 50;
		if (margin < (256ull << 20)) margin = 256ull << 20;
		uint64_t have = (uint64_t)fr + (uint64_t)kern_cuda_mem_used(k);
		v = have > margin ? have - margin : 0;
	}
#else
	(void)k;
#endif
	return v;
}

int cli_experts_open_auto(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, int ctx, int chunk,
			  struct cli_experts **x, const struct core_expert_src **src, struct nv_err *e)
{
	*x = NULL;
	*src = NULL;
	struct cli_experts *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory");
	struct cli_opts oe = *o;
	int rc = 0;
	const int gpu = is_gpu_backend(k);
	if (cli_opts_given(o, "host-cache") || cli_opts_given(o, "vram-budget")) {
		c->explicit_ = 1; /* explicit sizes win; --host-cache 0 = resident views, as ever */
	} else {
		char from[160] = "--ram";
		uint64_t ram = o->ram;
		if (!cli_opts_given(o, "ram") && (rc = cli_plan_ram_here(&ram, from, sizeof from, e))) goto fail;
		uint64_t vram = gpu ? vram_here(k) : 0;
		struct cli_plan_in in = { .cfg = core_ckpt_config(ck), .gpu = gpu, .ram = ram, .ram_probed = !o->ram,
					  .ram_from = from, .vram = vram, .vram_from = "free VRAM (less a margin)",
					  .ctx = ctx, .chunk = chunk, .kv_f32 = o->smooth };
		if ((rc = cli_plan_make(&in, &c->plan, e))) goto fail;
		/* the plan keeps no pointer into this frame */
		c->plan.in.ram_from = o->ram ? "--ram" : strstr(from, "cgroup") ? "cgroup limit" : "MemAvailable";
		c->plan.in.vram_from = "free VRAM";
		c->planned = 1;
		const struct cli_plan *p = &c->plan;
		if (core_ckpt_has_store(ck)) {
			/* a store is always read through a host cache: as many records as fit */
			struct offload_store_geom geo;
			if ((rc = offload_store_geom_from_config(core_ckpt_config(ck), &geo, e))) goto fail;
			uint64_t all = (uint64_t)geo.nblocks * (uint64_t)geo.nexperts * geo.record_size;
			uint64_t avail = ram > p->host_fixed ? ram - p->host_fixed : 0;
			oe.host_cache = p->stream ? p->host_cache : all < avail ? all : avail;
			c->store = 1;
			if (gpu && p->stream) oe.vram_budget = p->vram_budget;
			oe.no_mlock = 1;
		} else if (p->stream) {
			oe.host_cache = p->host_cache;
			if (gpu) oe.vram_budget = p->vram_budget;
			oe.no_mlock = 1; /* a default must run where RLIMIT_MEMLOCK is low: warn, not fail */
		}
	}
	if ((rc = open_tiers(&oe, ck, k, c, src, e))) goto fail;
	if (o->verbose) {
		char line[1024];
		fprintf(stderr, "nvmoe: %s\n", cli_experts_plan_line(c, line, sizeof line));
	}
	*x = c;
	return 0;
fail:
	*src = NULL;
	cli_experts_close(c);
	return rc;
}

const char *cli_experts_plan_line(const struct cli_experts *x, char *buf, size_t n)
{
	char a[24], b[24], l[600];
	if (!x || !x->planned) {
		snprintf(buf, n, "memory plan: %s: --host-cache %s, --vram-budget %s", x && x->explicit_ ? "explicit" : "none",
			 x ? cli_fmt_size(a, sizeof a, x->host_cache) : "0", x ? cli_fmt_size(b, sizeof b, x->vram_budget) : "0");
		return buf;
	}
	const struct cli_plan *p = &x->plan;
	if (p->in.gpu) cli_fmt_size(b, sizeof b, p->in.vram);
	if (x->store && !p->stream) {
		char c[24];
		snprintf(l, sizeof l, "experts read from the expert store through a host cache of %s",
			 cli_fmt_size(c, sizeof c, x->host_cache));
	} else {
		cli_plan_line(p, l, sizeof l);
	}
	snprintf(buf, n, "memory plan: %s (auto from RAM %s (%s), VRAM %s)", l,
		 cli_fmt_size(a, sizeof a, p->in.ram), p->in.ram_from, p->in.gpu ? b : "none: CPU backend");
	return buf;
}

void cli_experts_sizes(const struct cli_experts *x, uint64_t *host_cache, uint64_t *vram_budget)
{
	*host_cache = x ? x->host_cache : 0;
	*vram_budget = x ? x->vram_budget : 0;
}

void cli_experts_plan_json(const struct cli_experts *x, cJSON *root)
{
	cJSON *mp = cJSON_AddObjectToObject(root, "memory_plan");
	cJSON_AddBoolToObject(mp, "auto", x && x->planned);
	if (x && x->planned) {
		cli_plan_json(&x->plan, mp);
	} else {
		cJSON_AddBoolToObject(mp, "stream", cli_experts_streamed(x));
		cJSON_AddNumberToObject(mp, "host_cache_bytes", x ? (double)x->host_cache : 0.0);
		cJSON_AddNumberToObject(mp, "vram_budget_bytes", x ? (double)x->vram_budget : 0.0);
	}
}

int cli_experts_open(const struct cli_opts *o, const struct core_ckpt *ck, struct cli_experts **x,
		     const struct core_expert_src **src, struct nv_err *e)
{
	return cli_experts_open_k(o, ck, NULL, x, src, e);
}

int cli_experts_reserve(struct cli_experts *x, struct nv_err *e)
{
	if (!x || !x->g) return 0;
	int rc = cache_gpu_reserve(x->g, e);
	if (rc) return rc;
	if (x->verbose) {
		/* exact byte counts: tests/gpuslots.sh derives a budget from them */
		int n = cache_gpu_nslots(x->g);
		size_t sz = cache_gpu_slot_size(x->g);
		unsigned long long used = 0;
#ifdef NVMOE_HAVE_CUDA
		used = (unsigned long long)kern_cuda_mem_used(x->k);
#endif
		fprintf(stderr, "nvmoe: GPU expert slots: %d x %zu bytes (%.2f GiB) over %s%s; backend holds %llu bytes, "
			"--vram-budget %llu\n", n, sz, (double)n * (double)sz / (1 << 30),
			x->s ? "the host cache" : "the mapped checkpoint",
			x->s ? (x->pin.pinned ? " (page-locked)" : " (pageable)") : " (pageable)", used,
			(unsigned long long)x->vram_budget);
	}
	return 0;
}

int cli_experts_gpu_stats(const struct cli_experts *x, struct cache_gpu_stats *st, int *nslots, int *pinned)
{
	if (!x || !x->g) return -1;
	cache_gpu_stats(x->g, st);
	*nslots = cache_gpu_nslots(x->g);
	*pinned = x->s ? x->pin.pinned : 0;
	return 0;
}

const char *cli_experts_stats_line(struct cli_experts *x, uint64_t tokens, char *buf, size_t n)
{
	if (!x || !x->s) {
		snprintf(buf, n, "experts resident (no host cache)");
		return buf;
	}
	struct offload_source_stats st;
	offload_source_stats(x->s, &st);
	return offload_stats_line(&st, tokens, buf, n);
}

int cli_experts_streamed(const struct cli_experts *x)
{
	if (!x) return 0;
	if (x->s && offload_source_streams(x->s)) return 1;
	if (x->g) {
		int n = cache_gpu_nslots(x->g);
		const struct core_config *c = x->cfg;
		/* before reserve() sizes the slots, n is 0: count that as streaming */
		return !c || (uint64_t)n < (uint64_t)(c->num_hidden_layers + c->num_nextn_predict_layers) *
						       (uint64_t)c->n_routed_experts;
	}
	return 0;
}

void cli_experts_reads(struct cli_experts *x, uint64_t *bytes_read, uint64_t *misses, uint64_t *prefetches)
{
	struct offload_source_stats st;
	memset(&st, 0, sizeof st);
	if (x && x->s) offload_source_stats(x->s, &st);
	*bytes_read = st.cache.bytes_read;
	*misses = st.cache.misses;
	*prefetches = st.cache.prefetch_inserts;
}

void cli_experts_json(struct cli_experts *x, cJSON *root, uint64_t tokens)
{
	struct offload_source_stats st;
	memset(&st, 0, sizeof st);
	if (x && x->s) offload_source_stats(x->s, &st);
	cJSON *hc = cJSON_AddObjectToObject(root, "host_cache");
	cJSON_AddNumberToObject(hc, "hits", (double)st.cache.hits);
	cJSON_AddNumberToObject(hc, "misses", (double)st.cache.misses);
	cJSON_AddNumberToObject(hc, "evictions", (double)st.cache.evictions);
	cJSON_AddNumberToObject(hc, "bytes_read", (double)st.cache.bytes_read);
	cJSON *pf = cJSON_AddObjectToObject(root, "prefetch");
	static const char *const nm[OFFLOAD_PF_KINDS] = { "hash", "lookahead" };
	for (int k = 0; k < OFFLOAD_PF_KINDS; k++) {
		cJSON *o = cJSON_AddObjectToObject(pf, nm[k]);
		cJSON_AddNumberToObject(o, "issued", (double)st.pf_issued[k]);
		cJSON_AddNumberToObject(o, "used", (double)st.pf_used[k]);
		cJSON_AddNumberToObject(o, "predicted", (double)st.pred.predicted[k]);
		cJSON_AddNumberToObject(o, "correct", (double)st.pred.correct[k]);
	}
	cJSON_AddNumberToObject(pf, "wasted_bytes", (double)st.pf_wasted_bytes);
	cJSON_AddNumberToObject(pf, "cancelled", (double)st.pf_cancelled);
	cJSON_AddNumberToObject(pf, "lookahead_depth", x && x->s ? offload_source_lookahead(x->s) : 0);
	cJSON_AddNumberToObject(root, "stall_ms_per_token", tokens ? (double)st.cache.wait_ns / 1e6 / (double)tokens : 0.0);
	cJSON *io = cJSON_AddObjectToObject(root, "io");
	cJSON_AddNumberToObject(io, "bytes", (double)st.io.bytes);
	cJSON_AddNumberToObject(io, "seconds", (double)st.io_busy_ns / 1e9);
	cli_experts_plan_json(x, root);
}

int cli_experts_close(struct cli_experts *x)
{
	if (!x) return 0;
	int rc = 0;
	struct nv_err e;
	core_err_clear(&e);
	if (x->trace && x->s && offload_source_close_trace(x->s, &e)) {
		cli_print_err(&e);
		rc = 1;
	} else if (x->trace && x->s) { /* no source: its creation failed, nothing was written */
		fprintf(stderr, "nvmoe: routing trace written to %s (replay: tracesim %s)\n", x->trace, x->trace);
	}
	if (x->stats && x->g) {
		struct cache_gpu_stats st;
		cache_gpu_stats(x->g, &st);
		uint64_t acc = st.hits + st.misses;
		fprintf(stderr, "nvmoe: GPU slots: %d, %llu hits, %llu misses (%.1f%% hit), %llu evictions, %llu copies "
			"(%.3f GB), %llu refills after a pending use, %llu host waits\n", cache_gpu_nslots(x->g),
			(unsigned long long)st.hits, (unsigned long long)st.misses,
			acc ? 100.0 * (double)st.hits / (double)acc : 0.0, (unsigned long long)st.evictions,
			(unsigned long long)st.copies, st.bytes_copied / 1e9, (unsigned long long)st.copy_waits,
			(unsigned long long)st.host_waits);
	}
	cache_gpu_destroy(x->g); /* first: it holds views of the host tier */
	if (x->stats && x->s) {
		struct offload_source_stats st;
		offload_source_stats(x->s, &st);
		char line[600];
		fprintf(stderr, "nvmoe: expert tiers at exit: %s; %llu late, %llu cancelled; %llu records verified; io: %llu requests (%llu short, %llu EAGAIN, %llu errors), %.3f s busy\n",
			offload_stats_line(&st, 0, line, sizeof line), (unsigned long long)st.late,
			(unsigned long long)st.pf_cancelled, (unsigned long long)st.verified,
			(unsigned long long)st.io.requests, (unsigned long long)st.io.short_reads,
			(unsigned long long)st.io.eagain, (unsigned long long)st.io.errors, (double)st.io_busy_ns / 1e9);
	}
	offload_source_destroy(x->s);
	core_expert_src_resident_destroy(x->res);
	free(x);
	return rc;
}

struct vprog { double t0, last; int tty; };

static int vprogress(void *arg, uint64_t done, uint64_t total)
{
	struct vprog *p = arg;
	double t = cli_now();
	if (!p->tty || (t - p->last < 0.2 && done < total)) return 0;
	p->last = t;
	double el = t - p->t0, rate = el > 0 ? (double)done / el : 0;
	fprintf(stderr, "\rverify %3d%%  %.2f / %.2f GB  %.2f GB/s   ", total ? (int)(done * 100 / total) : 100,
		done / 1e9, total / 1e9, rate / 1e9);
	return 0;
}

static void vbad(void *arg, const struct nv_err *err)
{
	struct vprog *p = arg;
	char buf[2048];
	fprintf(stderr, "%snvmoe: bad record: %s\n", p->tty ? "\n" : "", core_err_str(err, buf, sizeof buf));
}

int cli_verify_store(const struct core_ckpt *ck, int records)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", core_ckpt_dir(ck), CORE_STORE_FILE);
	struct offload_store_geom g;
	struct offload_store *s = NULL;
	struct nv_err e;
	core_err_clear(&e);
	if (offload_store_geom_from_config(core_ckpt_config(ck), &g, &e) || offload_store_open(path, &g, &s, &e)) {
		cli_print_err(&e);
		return 1;
	}
	if (!records) {
		offload_store_close(s);
		return 0;
	}
	struct vprog p = { .t0 = cli_now(), .tty = isatty(2) };
	int nbad = 0;
	int rc = offload_store_verify(s, vprogress, vbad, &p, &nbad, &e);
	if (p.tty) fputc('\n', stderr);
	uint64_t nrec = (uint64_t)g.nblocks * (uint64_t)g.nexperts;
	if (rc && rc != NV_ECHECKSUM && rc != NV_EFORMAT && !nbad) {
		cli_print_err(&e);
		offload_store_close(s);
		return 1;
	}
	printf("expert store: %s: %llu records checked (%.2f GB, %.1f s): %d bad\n", path, (unsigned long long)nrec,
	       (double)nrec * (double)g.record_size / 1e9, cli_now() - p.t0, nbad);
	offload_store_close(s);
	return nbad ? 1 : 0;
}
