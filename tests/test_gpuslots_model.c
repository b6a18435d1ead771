/* tests/test_gpuslots_model.c - the GPU expert-slot layer end to end on the CPU: the
 * CPU backend reads "device" slots that are host memory filled by synchronous host
 * copies (a host implementation of struct cache_gpu_ops), so the slot layout, the part
 * offsets and sizes, merged vs per-part copies and the interface wiring are checked on
 * a real model without a GPU.  Model: TINY-CI from mkmodel (8 experts per block):
 *   resident logits == logits through 3 slots over (a) the mapped checkpoint, (b) the
 *   HF shards through a small host cache, (c) the converted store through a small host
 *   cache, bitwise; store records go over in one copy, HF experts in several.
 * Label unit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/gpu.h"
#include "core/ckpt.h"
#include "core/model.h"
#include "offload/convert.h"
#include "offload/source.h"
#include "offload/store.h"
#include "offload_testlib.h"
#include "testutil.h"

#define L 48
#define CHUNK 16

static int h_alloc(void *a, size_t n, void **d) { (void)a; *d = aligned_alloc(256, (n + 255) / 256 * 256); return *d ? 0 : -12; }
static void h_free(void *a, void *d) { (void)a; free(d); }
static int h_event_create(void *a, void **ev) { (void)a; *ev = malloc(1); return *ev ? 0 : -12; }
static void h_event_destroy(void *a, void *ev) { (void)a; free(ev); }
static int h_copy(void *a, void *dst, const void *src, size_t n) { (void)a; memcpy(dst, src, n); return 0; }
static int h_ev(void *a, void *ev) { (void)a; (void)ev; return 0; }
static int h_query(void *a, void *ev) { (void)a; (void)ev; return 1; }
static const struct cache_gpu_ops HOPS = {
	NULL, NULL, h_alloc, h_free, h_event_create, h_event_destroy, h_copy, h_ev, h_ev, h_ev, h_ev, h_query, h_ev, NULL, NULL,
};

static void fail_err(const char *what, const struct nv_err *e)
{
	char b[2048];
	fprintf(stderr, "FAIL: %s: %s\n", what, core_err_str(e, b, sizeof b));
	exit(1);
}

static void run(struct core_ckpt *ck, struct kern *k, const struct core_expert_src *src, const int32_t *tok, float *lg)
{
	struct nv_err e = {0};
	struct core_model_opts o = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = CHUNK, .experts = src };
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	if (core_model_create(ck, k, &o, &m, &e) || core_seq_create(m, L, &sq, &e)) fail_err("model", &e);
	int V = core_ckpt_config(ck)->vocab_size;
	for (int p0 = 0; p0 < L; p0 += CHUNK) {
		struct core_fwd_io io = { .logits = lg + (size_t)p0 * V, .logits_all = 1 };
		if (core_forward(m, sq, tok + p0, CHUNK, p0, &io, &e)) fail_err("forward", &e);
	}
	core_seq_destroy(sq);
	core_model_destroy(m);
}

static struct cache_gpu *slots(const struct core_ckpt *ck, const struct core_expert_src *inner, int n)
{
	struct offload_store_geom geo;
	struct nv_err e = {0};
	if (offload_store_geom_from_config(core_ckpt_config(ck), &geo, &e)) fail_err("geometry", &e);
	struct cache_gpu_opts o = { .inner = inner, .nblocks = geo.nblocks, .nexperts = geo.nexperts, .nslots = n };
	for (int p = 0; p < CACHE_GPU_NPARTS; p++) o.part_bytes[p] = (size_t)geo.part_size[p];
	struct cache_gpu *g = NULL;
	if (cache_gpu_create(&o, &HOPS, &g, &e)) fail_err("cache_gpu_create", &e);
	return g;
}

static void compare(const char *name, const float *ref, const float *got, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&ref[i], &got[i], sizeof(float))) {
			TU_CHECK(0, "%s: logit %zu: got %.9g, expected %.9g (resident)", name, i, got[i], ref[i]);
			return;
		}
}

/* One configuration: slots over inner; checks logits and the copy pattern. */
static void one(const char *name, struct core_ckpt *ck, struct kern *k, const struct core_expert_src *inner,
		const int32_t *tok, const float *ref, float *lg, size_t n, int merged)
{
	struct cache_gpu *g = slots(ck, inner, 3);
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	memset(lg, 0, n * sizeof(float));
	run(ck, k, &s, tok, lg);
	compare(name, ref, lg, n);
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	const struct core_config *c = core_ckpt_config(ck);
	TU_CHECK(st.misses >= (uint64_t)c->num_hidden_layers * (L / CHUNK),
		 "%s: %llu misses, expected at least one per block and chunk (%d)", name, (unsigned long long)st.misses,
		 c->num_hidden_layers * (L / CHUNK));
	if (merged)
		TU_CHECK(st.copies == st.misses, "%s: %llu copies for %llu misses, expected one per miss (store records)", name,
			 (unsigned long long)st.copies, (unsigned long long)st.misses);
	else
		TU_CHECK(st.copies > st.misses, "%s: %llu copies for %llu misses, expected several per miss (HF tensors)", name,
			 (unsigned long long)st.copies, (unsigned long long)st.misses);
	printf("%s: %llu hits, %llu misses, %llu copies, %.2f MB\n", name, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.copies, st.bytes_copied / 1e6);
	cache_gpu_destroy(g);
}

int main(void)
{
	char *dir = ot_tmpdir("gpuslots");
	char hf[4200], store[4200], cmd[9000];
	snprintf(hf, sizeof hf, "%s/hf", dir);
	snprintf(store, sizeof store, "%s/store", dir);
	const char *b = getenv("NV_BUILD");
	snprintf(cmd, sizeof cmd, "'%s/mkmodel' --preset tiny-ci --out '%s' --quiet", b ? b : ".", hf);
	if (system(cmd)) { fprintf(stderr, "mkmodel failed: %s\n", cmd); ot_rm_rf(dir); return 1; }
	struct nv_err e = {0};
	struct offload_convert_opts co = {0};
	if (offload_convert(hf, store, &co, NULL, &e)) { ot_rm_rf(dir); fail_err("convert", &e); }
	struct core_ckpt_opts ko = {0};
	struct core_ckpt *ck = NULL, *cs = NULL;
	if (core_ckpt_open(hf, &ko, &ck, &e) || core_ckpt_open(store, &ko, &cs, &e)) { ot_rm_rf(dir); fail_err("open", &e); }
	struct kern *k = kern_cpu_create();
	const int V = core_ckpt_config(ck)->vocab_size;
	int32_t tok[L], tok2[L];
	unsigned r = 7;
	for (int i = 0; i < L; i++) {
		r = r * 1103515245u + 12345u;
		tok[i] = (int32_t)(2 + (r >> 8) % (unsigned)(V - 2));
		tok2[i] = i ? tok[i] : (tok[i] + 1) % V;
	}
	size_t n = (size_t)L * V;
	float *ref = malloc(n * sizeof(float)), *lg = malloc(n * sizeof(float));
	run(ck, k, NULL, tok, ref);
	int finite = 1;
	for (size_t i = 0; i < n; i++) finite &= isfinite(ref[i]) != 0;
	TU_CHECK(finite, "resident logits not finite");

	/* (a) over the mapped checkpoint */
	struct core_expert_src *res = NULL;
	if (core_expert_src_resident(ck, k, &res, &e)) fail_err("resident source", &e);
	one("mapped", ck, k, res, tok, ref, lg, n, 0);
	/* the comparison can fail: another first token changes the logits */
	{
		struct cache_gpu *g = slots(ck, res, 3);
		struct core_expert_src s;
		cache_gpu_iface(g, &s);
		run(ck, k, &s, tok2, lg);
		TU_CHECK(memcmp(ref, lg, n * sizeof(float)) != 0, "another token sequence gave identical logits");
		cache_gpu_destroy(g);
	}
	core_expert_src_resident_destroy(res);

	/* (b) HF shards, (c) store: through 4 host-cache slots */
	struct core_ckpt *cks[2] = { ck, cs };
	const char *names[2] = { "hf+host cache", "store+host cache" };
	for (int i = 0; i < 2; i++) {
		struct offload_source_opts so;
		offload_source_opts_default(&so);
		so.host_cache_slots = 4;
		so.allow_unlocked = 1;
		struct offload_source *os = NULL;
		if (offload_source_create(cks[i], &so, &os, &e)) fail_err("offload source", &e);
		struct core_expert_src is;
		offload_source_iface(os, &is);
		one(names[i], cks[i], k, &is, tok, ref, lg, n, i == 1);
		offload_source_destroy(os);
	}
	k->destroy(k);
	core_ckpt_close(ck);
	core_ckpt_close(cs);
	free(ref);
	free(lg);
	ot_rm_rf(dir);
	free(dir);
	TU_DONE();
}
