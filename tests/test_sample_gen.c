/* tests/test_sample_gen.c - run/chat's token loop (cli/gen.c), which now samples on
 * the backend (core_fwd_io.logits_keep + core_sampler_sample_k, mask list on the
 * backend), gives the ids of the host loop it replaced: logits downloaded, masked
 * on the host, sampled with
 *   - core_sampler_sample() (the host sampler): every configuration;
 *   - the sampler as it was before (sample_old.h, verbatim): every configuration
 *     whose draw it defined the same way - all but top-k without top-p, whose walk
 *     order changed from the quickselect's internal order to ascending ids.
 * Model: TINY-CI (random weights), CPU backend, two turns (the second reuses the
 * prefix, as chat does), with the chat tokenizer and with a smaller tokenizer whose
 * holes and missing top ids must be masked.  Failures print model, configuration,
 * index, got and expected.  Exit 77 without mkmodel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/gen.h"
#include "core/model.h"
#include "sample_old.h"
#include "testutil.h"

#define NTOK 40

struct gcfg {
	const char *t, *p, *k, *seed;
	int old; /* compare with the pre-change sampler */
};
static const struct gcfg g_cfgs[] = {
	{"1", "1", "0", "1", 1},
	{"0.7", "1", "0", "2", 1},
	{"1", "0.9", "0", "3", 1},
	{"0.6", "0.95", "0", "4", 1},
	{"0", "1", "0", "5", 1},
	{"1", "1", "1", "6", 1},
	{"0.8", "0.9", "20", "7", 1},
	{"1", "1", "40", "8", 0},
};

/* The host loop: feed ids[pos..n) (logits downloaded), then up to `max` tokens
 * sampled on host logits; ids appended to out (EOS stops, not appended). */
struct ref {
	struct core_model *m;
	struct core_seq *sq;
	struct core_sampler *s;
	struct old_sampler *os; /* NULL: no comparison */
	float *l;               /* [V] */
	int V, pos, tok_ids, eos;
	const struct core_tok *tok;
	int old_diff;           /* first position where the old sampler disagreed, -1 */
};

static void ref_mask(struct ref *r)
{
	for (int id = 0; id < r->V; id++) {
		size_t n;
		if (id >= r->tok_ids || !core_tok_id_bytes(r->tok, id, &n)) r->l[id] = -INFINITY;
	}
}

static int ref_run(struct ref *r, const int32_t *ids, int n, int max, int32_t *out, int *nout)
{
	struct nv_err e = {0};
	struct core_fwd_io io = { .logits = r->l };
	if (core_forward(r->m, r->sq, ids + r->pos, n - r->pos, r->pos, &io, &e)) return -1;
	r->pos = n;
	*nout = 0;
	for (int i = 0; i < max; i++) {
		ref_mask(r);
		int32_t id, oid = -1;
		if (core_sampler_sample(r->s, r->l, &id, &e)) return -1;
		if (r->os) {
			old_sampler_sample(r->os, r->l, &oid, &e);
			if (oid != id && r->old_diff < 0) r->old_diff = r->pos;
		}
		if (id == r->eos) break;
		out[(*nout)++] = id;
		if (i + 1 == max) break;
		if (core_forward(r->m, r->sq, &id, 1, r->pos, &io, &e)) return -1;
		r->pos++;
	}
	return 0;
}

static void check_ids(const char *what, const int32_t *got, int ng, const int32_t *want, int nw)
{
	int n = ng < nw ? ng : nw;
	for (int i = 0; i < n; i++)
		if (got[i] != want[i]) {
			TU_CHECK(0, "%s: index %d: got %d expected %d", what, i, got[i], want[i]);
			return;
		}
	TU_CHECK(ng == nw, "%s: %d ids, expected %d", what, ng, nw);
}

static void one(const char *model, const char *mname, const struct gcfg *c)
{
	char *argv[] = {"run", "--backend", "cpu", "--temperature", (char *)c->t, "--top-p", (char *)c->p, "--top-k",
			(char *)c->k, "--seed", (char *)c->seed, "--ctx", "256", NULL};
	struct cli_opts o;
	TU_CHECK(cli_opts_parse(13, argv, &o) == 0, "options");
	struct cli_gen g;
	struct nv_err e = {0};
	char what[256], eb[2048];
	snprintf(what, sizeof what, "%s T %s top_p %s top_k %s seed %s", mname, c->t, c->p, c->k, c->seed);
	if (cli_gen_open(&g, model, &o, &e)) {
		TU_CHECK(0, "%s: open: %s", what, core_err_str(&e, eb, sizeof eb));
		cli_gen_close(&g);
		return;
	}
	/* the reference: its own CPU backend and model on the same checkpoint */
	struct ref r = { .V = g.V, .eos = g.eos, .tok = g.tok, .old_diff = -1 };
	r.tok_ids = core_tok_n_ids(g.tok) < g.V ? core_tok_n_ids(g.tok) : g.V;
	struct kern *k = kern_cpu_create();
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL };
	struct core_sampler_cfg sc = { (float)atof(c->t), (float)atof(c->p), atoi(c->k), (uint64_t)atoll(c->seed) };
	r.l = malloc(sizeof(float) * (size_t)g.V);
	if (!k || core_model_create(g.ck, k, &mo, &r.m, &e) || core_seq_create(r.m, 256, &r.sq, &e) ||
	    core_sampler_create(g.V, &sc, &r.s, &e)) {
		TU_CHECK(0, "%s: reference set-up: %s", what, core_err_str(&e, eb, sizeof eb));
		goto out;
	}
	/* generation_config.json may not override the flags: the cli's config must be ours */
	TU_CHECK(g.scfg.temperature == sc.temperature && g.scfg.top_p == sc.top_p && g.scfg.top_k == sc.top_k,
		 "%s: cli sampler config %g %g %d", what, g.scfg.temperature, g.scfg.top_p, g.scfg.top_k);
	if (c->old) r.os = old_sampler_create(g.V, &sc);

	struct core_tok_ids ids = {0}, out = {0}, more = {0};
	struct cli_gen_stats st;
	int32_t want[2 * NTOK];
	int nw = 0;
	const char *p1 = "Hello, how are you today?", *p2 = " And then what happened?";
	int rc = cli_gen_encode(&g, p1, strlen(p1), &ids, &e);
	if (!rc) rc = cli_gen_prefill(&g, ids.v, (int)ids.n, NULL, &st, &e);
	if (!rc) rc = cli_gen_generate(&g, NTOK, NULL, NULL, NULL, &out, &st, &e);
	TU_CHECK(!rc, "%s: turn 1: %s", what, core_err_str(&e, eb, sizeof eb));
	TU_CHECK(ref_run(&r, ids.v, (int)ids.n, NTOK, want, &nw) == 0, "%s: reference turn 1", what);
	snprintf(eb, sizeof eb, "%s, turn 1", what);
	check_ids(eb, out.v, (int)out.n, want, nw);
	/* turn 2: the conversation so far + more text; the prefix is reused */
	size_t n1 = out.n;
	if (!rc && !(rc = cli_gen_encode(&g, p2, strlen(p2), &more, &e))) {
		size_t nall = ids.n + n1 + more.n;
		int32_t *all = malloc(sizeof(int32_t) * nall);
		memcpy(all, ids.v, sizeof(int32_t) * ids.n);
		memcpy(all + ids.n, out.v, sizeof(int32_t) * n1);
		memcpy(all + ids.n + n1, more.v, sizeof(int32_t) * more.n);
		out.n = 0;
		rc = cli_gen_prefill(&g, all, (int)nall, NULL, &st, &e);
		TU_CHECK(rc || st.reused > 0, "%s: turn 2 reused no prefix", what);
		if (!rc) rc = cli_gen_generate(&g, NTOK, NULL, NULL, NULL, &out, &st, &e);
		TU_CHECK(!rc, "%s: turn 2: %s", what, core_err_str(&e, eb, sizeof eb));
		/* the reference fed all but the last sampled id: feed it with the new text */
		TU_CHECK(ref_run(&r, all, (int)nall, NTOK, want, &nw) == 0, "%s: reference turn 2", what);
		snprintf(eb, sizeof eb, "%s, turn 2", what);
		check_ids(eb, out.v, (int)out.n, want, nw);
		free(all);
	}
	if (c->old)
		TU_CHECK(r.old_diff < 0, "%s: the pre-change sampler chose another id at position %d", what, r.old_diff);
	printf("%s: %zu + %zu ids equal%s\n", what, n1, out.n, c->old ? " (also to the pre-change sampler)" : "");
	core_tok_ids_free(&ids);
	core_tok_ids_free(&out);
	core_tok_ids_free(&more);
out:
	if (r.os) old_sampler_destroy(r.os);
	core_sampler_destroy(r.s);
	core_seq_destroy(r.sq);
	core_model_destroy(r.m);
	if (k) k->destroy(k);
	free(r.l);
	cli_gen_close(&g);
}

int main(void)
{
	const char *data = getenv("NV_TESTDATA"), *bd = getenv("NV_BUILD");
	char mk[4096], dir[] = "/tmp/nvmoe_sgen_XXXXXX", extra[4096], path[4200], small[4200], cmd[32768];
	snprintf(mk, sizeof mk, "%s/mkmodel", bd ? bd : "build");
	if (!data || access(mk, X_OK)) tu_skip("NV_TESTDATA or mkmodel missing");
	if (!mkdtemp(dir)) return 1;
	snprintf(extra, sizeof extra, "--tokenizer-dir %s/tok_chat", data);
	core_ckpt_close(tu_mkmodel_open(dir, "tiny-ci", extra));
	snprintf(path, sizeof path, "%s/tiny-ci", dir);
	/* 304 tokenizer ids (holes 274..299) under a vocabulary of 512 */
	snprintf(small, sizeof small, "%s/small", dir);
	snprintf(cmd, sizeof cmd, "mkdir %s && cp %s/*.json %s/*.safetensors %s/ && cp %s/tok_tiny.json %s/tokenizer.json",
		 small, path, path, small, data, small);
	TU_CHECK(system(cmd) == 0, "%s", cmd);
	for (size_t i = 0; i < sizeof g_cfgs / sizeof g_cfgs[0]; i++) {
		one(path, "tok_chat", &g_cfgs[i]);
		one(small, "tok_tiny", &g_cfgs[i]);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
	TU_DONE();
}
