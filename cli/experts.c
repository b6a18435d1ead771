/* cli/experts.c - choose and own the routed-expert source of a command. */
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
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
	const char *trace;
};

int cli_experts_open(const struct cli_opts *o, const struct core_ckpt *ck, struct cli_experts **x,
		     const struct core_expert_src **src, struct nv_err *e)
{
	*x = NULL;
	*src = NULL;
	/* resident unless a cache bound, a converted store or a routing trace asks for the
	 * streamed source (a trace without a bound: every expert fits, or half the RAM) */
	if (!o->host_cache && !core_ckpt_has_store(ck) && !o->trace_experts) return 0;
	struct cli_experts *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "expert source", NULL, NULL, "out of memory");
	struct offload_source_opts so;
	offload_source_opts_default(&so);
	so.host_cache_bytes = o->host_cache;
	so.allow_unlocked = o->no_mlock;
	so.prefetch = o->prefetch;
	if (o->lookahead >= 0) so.lookahead = o->lookahead;
	so.trace_path = o->trace_experts;
	so.trace_ring = o->chunk > 256 ? o->chunk : 256;
	int rc = offload_source_create(ck, &so, &c->s, e);
	if (rc) { free(c); return rc; }
	offload_source_iface(c->s, &c->iface);
	c->stats = o->stats;
	c->trace = o->trace_experts;
	if (offload_source_warning(c->s)[0]) fprintf(stderr, "nvmoe: warning: %s\n", offload_source_warning(c->s));
	if (o->verbose) {
		char buf[1200];
		fprintf(stderr, "nvmoe: %s\n", offload_source_describe(c->s, buf, sizeof buf));
	}
	*x = c;
	*src = &c->iface;
	return 0;
}

const char *cli_experts_stats_line(struct cli_experts *x, uint64_t tokens, char *buf, size_t n)
{
	if (!x) {
		snprintf(buf, n, "experts resident (no host cache)");
		return buf;
	}
	struct offload_source_stats st;
	offload_source_stats(x->s, &st);
	return offload_stats_line(&st, tokens, buf, n);
}

void cli_experts_json(struct cli_experts *x, cJSON *root, uint64_t tokens)
{
	struct offload_source_stats st;
	memset(&st, 0, sizeof st);
	if (x) offload_source_stats(x->s, &st);
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
	cJSON_AddNumberToObject(pf, "lookahead_depth", x ? offload_source_lookahead(x->s) : 0);
	cJSON_AddNumberToObject(root, "stall_ms_per_token", tokens ? (double)st.cache.wait_ns / 1e6 / (double)tokens : 0.0);
	cJSON *io = cJSON_AddObjectToObject(root, "io");
	cJSON_AddNumberToObject(io, "bytes", (double)st.io.bytes);
	cJSON_AddNumberToObject(io, "seconds", (double)st.io_busy_ns / 1e9);
}

int cli_experts_close(struct cli_experts *x)
{
	if (!x) return 0;
	int rc = 0;
	struct nv_err e;
	core_err_clear(&e);
	if (x->trace && offload_source_close_trace(x->s, &e)) {
		cli_print_err(&e);
		rc = 1;
	} else if (x->trace) {
		fprintf(stderr, "nvmoe: routing trace written to %s (replay: tracesim %s)\n", x->trace, x->trace);
	}
	if (x->stats) {
		struct offload_source_stats st;
		offload_source_stats(x->s, &st);
		char line[600];
		fprintf(stderr, "nvmoe: %s; %llu late, %llu cancelled; %llu records verified; io: %llu requests (%llu short, %llu EAGAIN, %llu errors), %.3f s busy\n",
			offload_stats_line(&st, 0, line, sizeof line), (unsigned long long)st.late,
			(unsigned long long)st.pf_cancelled, (unsigned long long)st.verified,
			(unsigned long long)st.io.requests, (unsigned long long)st.io.short_reads,
			(unsigned long long)st.io.eagain, (unsigned long long)st.io.errors, (double)st.io_busy_ns / 1e9);
	}
	offload_source_destroy(x->s);
	free(x);
	return rc;
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
