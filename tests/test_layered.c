/* tests/test_layered.c - the layer-major order of a multi-chunk call (core/model.h,
 * DESIGN.md §4).
 *
 *   test_layered mk      models from mkmodel (tiny-ci, tiny-edge)
 *   test_layered golden  the golden checkpoints tiny-a, tiny-b (exit 77 without ../shared)
 *   test_layered reads   host-cache reads of a prompt, layer- vs chunk-major
 *
 * mk / golden: logits of every position and MTP logits of every position are
 * bitwise those of the chunk-major order (the reference: resident experts, same
 * chunk size), for chunk sizes 1, 7 and 64, without and with MTP, with resident
 * experts and through a host cache too small for one block's experts (evictions on
 * every chunk) with prefetch on and off.  On tiny-ci also: the block_out hook gives
 * the same streams per (block, position) in both orders, a layer-major call that
 * continues a sequence (p0 > 0) matches, and a stop flag ends the call with
 * NV_ECANCELED and an empty sequence.
 *
 * reads: a host cache of one block's experts plus two slots.  The experts a
 * prompt needs are the distinct (block, expert) pairs of its routing, counted from
 * the route hook of a resident run.  Layer-major, every pair is read exactly once
 * (demand misses + prefetch reads = that count), with prefetch on and off; the
 * chunk-major order reads strictly more (the cache cannot hold the blocks a chunk
 * passes through). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/config.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "offload/source.h"
#include "testutil.h"

#define NTOK 150 /* beyond the ratio-128 compression and tiny-ci's 32-token window */

struct out {
	float *lg, *mlg; /* [NTOK, V] */
};

/* Routing of a run, as a set of (block, expert) pairs (route hook). */
struct used { int E, nb; unsigned char *u; };

static void on_route(void *ctx, int blk, int p0, int S, int k, const int32_t *ids, const float *w)
{
	(void)p0;
	(void)w;
	struct used *u = ctx;
	for (int i = 0; i < S * k; i++)
		if (blk < u->nb && ids[i] >= 0 && ids[i] < u->E) u->u[(size_t)blk * u->E + ids[i]] = 1;
}

/* Hidden streams per (position, block) (block_out hook). */
struct hid { int nb; size_t MD; float *X; };

static void on_block(void *ctx, int blk, int p0, int S, const float *X)
{
	struct hid *h = ctx;
	if (blk >= h->nb) return;
	for (int s = 0; s < S; s++)
		memcpy(h->X + ((size_t)(p0 + s) * h->nb + blk) * h->MD, X + (size_t)s * h->MD, h->MD * sizeof(float));
}

struct run_opts {
	int chunk, layer, mtp, split;    /* split: first call of `split` tokens chunk-major, rest layer-major */
	const struct core_expert_src *src;
	const struct core_hooks *hooks;
};

static int run(const struct core_ckpt *ck, const int32_t *tok, const struct run_opts *ro, struct out *o,
	       struct nv_err *e)
{
	struct kern *k = kern_cpu_create();
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = ro->chunk, .experts = ro->src };
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	const int V = core_ckpt_config(ck)->vocab_size;
	int rc = core_model_create(ck, k, &mo, &m, e);
	if (!rc) rc = core_seq_create(m, NTOK + 1, &sq, e);
	if (!rc && ro->hooks) rc = core_model_set_hooks(m, ro->hooks, e);
	int p = 0;
	if (!rc && ro->split) {
		struct core_fwd_io io = { .logits = o->lg, .logits_all = 1, .mtp_tok = ro->mtp ? tok + 1 : NULL,
					  .mtp_logits = o->mlg, .mtp_all = 1 };
		rc = core_forward(m, sq, tok, ro->split, 0, &io, e);
		p = ro->split;
	}
	if (!rc) {
		struct core_fwd_io io = { .logits = o->lg + (size_t)p * V, .logits_all = 1,
					  .mtp_tok = ro->mtp ? tok + p + 1 : NULL,
					  .mtp_logits = ro->mtp ? o->mlg + (size_t)p * V : NULL, .mtp_all = 1,
					  .layer_major = ro->layer };
		rc = core_forward(m, sq, tok + p, NTOK - p, p, &io, e);
	}
	if (!rc && core_seq_pos(sq) != NTOK)
		rc = core_err_set(e, NV_EINVAL, "test", "position", NULL, "sequence at %d after the call, expected %d",
				  core_seq_pos(sq), NTOK);
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	return rc;
}

static struct offload_source *mksrc(const struct core_ckpt *ck, int slots, int prefetch)
{
	struct offload_source_opts o;
	offload_source_opts_default(&o);
	o.host_cache_slots = slots;
	o.prefetch = prefetch;
	o.allow_unlocked = 1;
	struct offload_source *s = NULL;
	struct nv_err e = {0};
	char b[2048];
	if (offload_source_create(ck, &o, &s, &e)) {
		fprintf(stderr, "FAIL: source: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	return s;
}

/* First index where a and b differ bitwise, -1 when none. */
static long differ(const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(a + i, b + i, sizeof(float))) return (long)i;
	return -1;
}

static void expect_same(const char *tag, const float *got, const float *want, size_t n, int V)
{
	long i = differ(got, want, n);
	TU_CHECK(i < 0, "%s: first difference at row %ld, vocab %ld: got %.9g, expected %.9g (chunk-major)", tag,
		 i / V, i % V, i < 0 ? 0.0 : got[i], i < 0 ? 0.0 : want[i]);
}

static int32_t *tokens(int V, unsigned seed)
{
	int32_t *t = malloc(sizeof(int32_t) * (NTOK + 1));
	uint64_t st = seed;
	for (int i = 0; i <= NTOK; i++) {
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		t[i] = (int32_t)(2 + (st >> 33) % (uint64_t)(V - 2));
	}
	return t;
}

static void checked(int rc, const char *tag, struct nv_err *e)
{
	char b[2048];
	if (rc) {
		fprintf(stderr, "FAIL %s: %s\n", tag, core_err_str(e, b, sizeof b));
		exit(1);
	}
}

/* Identity of the orders on one checkpoint. */
static void identity(const char *name, const struct core_ckpt *ck, int extras)
{
	const struct core_config *c = core_ckpt_config(ck);
	const int V = c->vocab_size, E = c->n_routed_experts;
	const size_t n = (size_t)NTOK * V;
	int32_t *tok = tokens(V, 0x1A7E ^ (unsigned)V);
	struct out ref = { calloc(n, 4), calloc(n, 4) }, got = { calloc(n, 4), calloc(n, 4) };
	struct nv_err e = {0};
	char tag[160];
	static const int chunks[] = { 1, 7, 64 };
	/* fewer slots than one block's experts: every block evicts the previous ones */
	const int small = E / 2 + 1;
	for (int ci = 0; ci < 3; ci++)
		for (int mtp = 0; mtp <= (c->num_nextn_predict_layers > 0); mtp++) {
			struct run_opts ro = { .chunk = chunks[ci], .mtp = mtp };
			snprintf(tag, sizeof tag, "%s chunk %d%s: chunk-major", name, chunks[ci], mtp ? " mtp" : "");
			checked(run(ck, tok, &ro, &ref, &e), tag, &e);
			ro.layer = 1;
			for (int v = 0; v < 3; v++) {
				struct offload_source *s = v ? mksrc(ck, small, v == 1) : NULL;
				struct core_expert_src src;
				if (s) offload_source_iface(s, &src);
				ro.src = s ? &src : NULL;
				memset(got.lg, 0xff, n * 4);
				memset(got.mlg, 0xff, n * 4);
				snprintf(tag, sizeof tag, "%s chunk %d%s layer-major, %s", name, chunks[ci], mtp ? " mtp" : "",
					 v == 0 ? "resident" : v == 1 ? "small host cache, prefetch" : "small host cache, no prefetch");
				checked(run(ck, tok, &ro, &got, &e), tag, &e);
				expect_same(tag, got.lg, ref.lg, n, V);
				if (mtp) {
					char t2[200];
					snprintf(t2, sizeof t2, "%s: MTP logits", tag);
					expect_same(t2, got.mlg, ref.mlg, n, V);
				}
				if (s) {
					struct offload_source_stats st;
					offload_source_stats(s, &st);
					TU_CHECK(st.cache.evictions > 0, "%s: the cache of %d slots evicted nothing", tag, small);
				}
				offload_source_destroy(s);
			}
		}
	if (extras) {
		/* continuation: 40 tokens chunk-major, then 110 more layer-major (p0 = 40) */
		struct run_opts ro = { .chunk = 7, .mtp = 1 };
		checked(run(ck, tok, &ro, &ref, &e), "continuation reference", &e);
		ro.layer = 1;
		ro.split = 40;
		checked(run(ck, tok, &ro, &got, &e), "continuation", &e);
		expect_same("continuation at p0 = 40, layer-major", got.lg, ref.lg, n, V);
		expect_same("continuation at p0 = 40, layer-major: MTP", got.mlg, ref.mlg, n, V);

		/* hooks: the same streams per (block, position) in both orders */
		const int nb = c->num_hidden_layers;
		const size_t MD = (size_t)c->hc_mult * c->hidden_size, hn = (size_t)NTOK * nb * MD;
		struct hid ha = { nb, MD, calloc(hn, 4) }, hb = { nb, MD, calloc(hn, 4) };
		struct core_hooks hk = { .ctx = &ha, .block_out = on_block };
		ro = (struct run_opts){ .chunk = 7, .hooks = &hk };
		checked(run(ck, tok, &ro, &ref, &e), "hooks, chunk-major", &e);
		hk.ctx = &hb;
		ro.layer = 1;
		checked(run(ck, tok, &ro, &got, &e), "hooks, layer-major", &e);
		long i = differ(hb.X, ha.X, hn);
		TU_CHECK(i < 0, "block_out hook: first difference at position %ld block %ld: got %.9g, expected %.9g",
			 i < 0 ? 0 : (long)(i / (long)MD) / nb, i < 0 ? 0 : (long)(i / (long)MD) % nb,
			 i < 0 ? 0.0 : hb.X[i], i < 0 ? 0.0 : ha.X[i]);
		free(ha.X);
		free(hb.X);

		/* a stop flag: NV_ECANCELED, and the sequence is empty (its blocks would
		 * be at different positions) */
		struct kern *k = kern_cpu_create();
		struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = 7 };
		struct core_model *m = NULL;
		struct core_seq *sq = NULL;
		checked(core_model_create(ck, k, &mo, &m, &e) || core_seq_create(m, NTOK + 1, &sq, &e), "stop: model", &e);
		checked(core_forward(m, sq, tok, 20, 0, &(struct core_fwd_io){ .logits = got.lg }, &e), "stop: prefix", &e);
		volatile sig_atomic_t stop = 1;
		struct core_fwd_io io = { .logits = got.lg, .layer_major = 1, .stop = &stop };
		int rc = core_forward(m, sq, tok + 20, 30, 20, &io, &e);
		TU_CHECK(rc == NV_ECANCELED, "stop flag: status %d, expected NV_ECANCELED (%d)", rc, NV_ECANCELED);
		TU_CHECK(core_seq_pos(sq) == 0, "stop flag: sequence at %d, expected 0", core_seq_pos(sq));
		core_seq_destroy(sq);
		core_model_destroy(m);
		k->destroy(k);
	}
	free(ref.lg);
	free(ref.mlg);
	free(got.lg);
	free(got.mlg);
	free(tok);
}

/* Reads of one prompt through a cache of one block's experts + 2. */
static void reads(const char *dir)
{
	struct core_ckpt *ck = tu_mkmodel_open(dir, "tiny-ci", "--experts 16");
	const struct core_config *c = core_ckpt_config(ck);
	const int V = c->vocab_size, E = c->n_routed_experts;
	int32_t *tok = tokens(V, 0x5EAD);
	struct out o = { calloc((size_t)NTOK * V, 4), calloc((size_t)NTOK * V, 4) };
	struct nv_err e = {0};
	for (int mtp = 0; mtp <= 1; mtp++) {
		const int nb = c->num_hidden_layers + mtp;
		struct used u = { E, nb, calloc((size_t)nb * E, 1) };
		struct core_hooks hk = { .ctx = &u, .route = on_route };
		struct run_opts ro = { .chunk = 16, .mtp = mtp, .hooks = &hk };
		checked(run(ck, tok, &ro, &o, &e), "reads: resident routing", &e);
		uint64_t distinct = 0;
		for (int i = 0; i < nb * E; i++) distinct += u.u[i];
		free(u.u);
		for (int pf = 0; pf <= 1; pf++) {
			uint64_t r[2] = { 0, 0 }, bytes[2] = { 0, 0 };
			for (int layer = 0; layer <= 1; layer++) {
				struct offload_source *s = mksrc(ck, E + 2, pf);
				struct core_expert_src src;
				offload_source_iface(s, &src);
				ro = (struct run_opts){ .chunk = 16, .mtp = mtp, .layer = layer, .src = &src };
				checked(run(ck, tok, &ro, &o, &e), "reads: streamed run", &e);
				struct offload_source_stats st;
				offload_source_stats(s, &st);
				r[layer] = st.cache.misses + st.cache.prefetch_inserts;
				bytes[layer] = st.cache.bytes_read;
				printf("reads%s, prefetch %s, %s-major: %llu reads (%llu misses + %llu prefetches), %llu bytes; "
				       "%llu distinct (block, expert) pairs\n", mtp ? " (MTP)" : "", pf ? "on" : "off",
				       layer ? "layer" : "chunk", (unsigned long long)r[layer],
				       (unsigned long long)st.cache.misses, (unsigned long long)st.cache.prefetch_inserts,
				       (unsigned long long)bytes[layer], (unsigned long long)distinct);
				offload_source_destroy(s);
			}
			TU_CHECK(r[1] <= distinct, "layer-major%s, prefetch %s: %llu reads, expected at most one per used "
				 "(block, expert) pair = %llu", mtp ? " + MTP" : "", pf ? "on" : "off",
				 (unsigned long long)r[1], (unsigned long long)distinct);
			TU_CHECK(r[1] >= distinct, "layer-major%s: %llu reads cannot cover %llu used pairs (stats wrong?)",
				 mtp ? " + MTP" : "", (unsigned long long)r[1], (unsigned long long)distinct);
			TU_CHECK(r[0] > r[1] && bytes[0] > bytes[1],
				 "chunk-major%s, prefetch %s: %llu reads / %llu bytes, expected more than layer-major's "
				 "%llu / %llu", mtp ? " + MTP" : "", pf ? "on" : "off", (unsigned long long)r[0],
				 (unsigned long long)bytes[0], (unsigned long long)r[1], (unsigned long long)bytes[1]);
		}
	}
	free(o.lg);
	free(o.mlg);
	free(tok);
	core_ckpt_close(ck);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "mk";
	char dir[] = "/tmp/nv_layered_XXXXXX";
	if (!strcmp(what, "golden")) {
		const char *sh = tu_require_shared();
		static const char *const cases[] = { "tiny-a", "tiny-b" };
		for (int i = 0; i < 2; i++) {
			char path[4200];
			snprintf(path, sizeof path, "%s/golden/%s/ckpt", sh, cases[i]);
			struct core_ckpt *ck;
			struct nv_err e = {0};
			struct core_ckpt_opts co = {0};
			checked(core_ckpt_open(path, &co, &ck, &e), path, &e);
			identity(cases[i], ck, 0);
			core_ckpt_close(ck);
		}
		TU_DONE();
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (!strcmp(what, "mk")) {
		static const char *const presets[] = { "tiny-ci", "tiny-edge" };
		for (int i = 0; i < 2; i++) {
			struct core_ckpt *ck = tu_mkmodel_open(dir, presets[i], NULL);
			identity(presets[i], ck, i == 0);
			core_ckpt_close(ck);
		}
	} else if (!strcmp(what, "reads")) {
		reads(dir);
	} else {
		fprintf(stderr, "usage: test_layered mk|golden|reads\n");
		return 2;
	}
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", dir);
	TU_DONE();
}
