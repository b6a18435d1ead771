/* cli/experts.c - choose and own the routed-expert source of a command. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "core/ckpt.h"
#include "offload/source.h"

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
