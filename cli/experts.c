/* cli/experts.c - choose and own the routed-expert source of a command. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/ckpt.h"
#include "offload/source.h"
#include "offload/store.h"

struct cli_experts {
	struct offload_source *s;
	struct core_expert_src iface;
	int stats;
};

int cli_experts_open(const struct cli_opts *o, const struct core_ckpt *ck, struct cli_experts **x,
		     const struct core_expert_src **src, struct nv_err *e)
{
	*x = NULL;
	*src = NULL;
	if (!o->host_cache && !core_ckpt_has_store(ck)) return 0; /* resident */
	struct cli_experts *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory");
	struct offload_source_opts so;
	offload_source_opts_default(&so);
	so.host_cache_bytes = o->host_cache;
	so.allow_unlocked = o->no_mlock;
	so.prefetch = o->prefetch;
	int rc = offload_source_create(ck, &so, &c->s, e);
	if (rc) { free(c); return rc; }
	offload_source_iface(c->s, &c->iface);
	c->stats = o->stats;
	if (offload_source_warning(c->s)[0]) fprintf(stderr, "nvmoe: warning: %s\n", offload_source_warning(c->s));
	if (o->verbose) {
		char buf[1200];
		fprintf(stderr, "nvmoe: %s\n", offload_source_describe(c->s, buf, sizeof buf));
	}
	*x = c;
	*src = &c->iface;
	return 0;
}

void cli_experts_close(struct cli_experts *x)
{
	if (!x) return;
	if (x->stats) {
		struct offload_source_stats st;
		offload_source_stats(x->s, &st);
		uint64_t acc = st.cache.hits + st.cache.misses;
		fprintf(stderr, "nvmoe: host cache: %llu hits, %llu misses (%.1f%% hit), %llu evictions, prefetch %llu (used %llu, wasted %llu), "
			"%.3f GB read, %.3f s waited, %llu records verified; io: %llu requests (%llu short, %llu EAGAIN, %llu errors)\n",
			(unsigned long long)st.cache.hits, (unsigned long long)st.cache.misses,
			acc ? 100.0 * (double)st.cache.hits / (double)acc : 0.0, (unsigned long long)st.cache.evictions,
			(unsigned long long)st.cache.prefetch_inserts, (unsigned long long)st.cache.prefetch_used,
			(unsigned long long)st.cache.prefetch_wasted, st.cache.bytes_read / 1e9, st.cache.wait_ns / 1e9,
			(unsigned long long)st.verified, (unsigned long long)st.io.requests,
			(unsigned long long)st.io.short_reads, (unsigned long long)st.io.eagain, (unsigned long long)st.io.errors);
	}
	offload_source_destroy(x->s);
	free(x);
}

struct vprog { double t0, last; int tty; };

static double vnow(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int vprogress(void *arg, uint64_t done, uint64_t total)
{
	struct vprog *p = arg;
	double t = vnow();
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

int cli_verify_store(const struct core_ckpt *ck)
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
	struct vprog p = { .t0 = vnow(), .tty = isatty(2) };
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
	       (double)nrec * (double)g.record_size / 1e9, vnow() - p.t0, nbad);
	offload_store_close(s);
	return nbad ? 1 : 0;
}
