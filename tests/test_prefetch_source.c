/* tests/test_prefetch_source.c - prefetch through the streamed expert source on the
 * golden checkpoints (tiny-a, tiny-b; skipped without ../shared), prefill then
 * token-by-token decode of each case's token sequence:
 *   - hash-exact: with a cache that holds every expert (no eviction) and no
 *     lookahead, the reads issued by the hash predictor are exactly the distinct
 *     (hash layer, tid2eid[layer][token][j]) pairs of the sequence - counted here
 *     from the checkpoint's tables - and every one is used (used/issued = 1); each
 *     turns a miss into a hit: misses(off) - misses(on) = hits(on) - hits(off) = that
 *     count;
 *   - logits of the prefetching, pipelined source (lookahead 1 and 3, a cache of a
 *     third of the experts) are bitwise those of the resident run;
 *   - the routing trace written meanwhile has one record per (position, block) in
 *     the order of the model's route hook, with the hook's ids. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "offload/source.h"
#include "offload/trace.h"
#include "testutil.h"

struct hookrec { int n, cap, K; int32_t *pos, *blk, *ids; };

static void on_route(void *ctx, int blk, int p0, int S, int k, const int32_t *ids, const float *w)
{
	(void)w;
	struct hookrec *h = ctx;
	for (int s = 0; s < S; s++) {
		if (h->n == h->cap) {
			h->cap = h->cap ? 2 * h->cap : 1024;
			h->pos = realloc(h->pos, sizeof(int32_t) * (size_t)h->cap);
			h->blk = realloc(h->blk, sizeof(int32_t) * (size_t)h->cap);
			h->ids = realloc(h->ids, sizeof(int32_t) * (size_t)h->cap * (size_t)k);
		}
		h->pos[h->n] = p0 + s;
		h->blk[h->n] = blk;
		memcpy(h->ids + (size_t)h->n * (size_t)k, ids + (size_t)s * (size_t)k, sizeof(int32_t) * (size_t)k);
		h->K = k;
		h->n++;
	}
}

/* Prefill P tokens, then decode the rest one by one; logits of each call's last
 * position into lg [(1 + L - P), V].  src NULL = resident. */
static int run(const struct core_ckpt *ck, const struct core_expert_src *src, const int32_t *tok, int L, int P,
	       float *lg, struct hookrec *h, struct nv_err *e)
{
	const struct core_config *c = core_ckpt_config(ck);
	struct kern *k = kern_cpu_create();
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = 16, .experts = src };
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	int rc = core_model_create(ck, k, &mo, &m, e);
	if (!rc) rc = core_seq_create(m, L, &sq, e);
	if (!rc && h) {
		struct core_hooks hk = { .ctx = h, .route = on_route };
		rc = core_model_set_hooks(m, &hk, e);
	}
	struct core_fwd_io io = { .logits = lg };
	if (!rc) rc = core_forward(m, sq, tok, P, 0, &io, e);
	for (int p = P, i = 1; !rc && p < L; p++, i++) {
		io.logits = lg + (size_t)i * c->vocab_size;
		rc = core_forward(m, sq, tok + p, 1, p, &io, e);
	}
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	return rc;
}

static struct offload_source *mk(const struct core_ckpt *ck, int slots, int prefetch, int lookahead, const char *trace)
{
	struct offload_source_opts o;
	offload_source_opts_default(&o);
	o.host_cache_slots = slots;
	o.prefetch = prefetch;
	o.lookahead = lookahead;
	o.trace_path = trace;
	o.allow_unlocked = 1;
	struct offload_source *s = NULL;
	struct nv_err e = {0};
	char b[2048];
	TU_CHECK(offload_source_create(ck, &o, &s, &e) == 0, "source: %s", core_err_str(&e, b, sizeof b));
	return s;
}

static int run_src(const struct core_ckpt *ck, struct offload_source *s, const int32_t *tok, int L, int P, float *lg,
		   struct offload_source_stats *st, const char *tag)
{
	struct core_expert_src src;
	offload_source_iface(s, &src);
	struct nv_err e = {0};
	char b[2048];
	int rc = run(ck, &src, tok, L, P, lg, NULL, &e);
	TU_CHECK(rc == 0, "%s: forward: %s", tag, core_err_str(&e, b, sizeof b));
	offload_source_stats(s, st);
	return rc;
}

static void one_case(const char *shared, const char *name)
{
	char dir[4200], path[4300];
	snprintf(dir, sizeof dir, "%s/golden/%s/ckpt", shared, name);
	snprintf(path, sizeof path, "%s/golden/%s/tokens.json", shared, name);
	size_t n;
	char *js = tu_read_file(path, &n);
	cJSON *j = js ? cJSON_Parse(js) : NULL;
	cJSON *ta = cJSON_GetObjectItem(j, "tokens"), *pl = cJSON_GetObjectItem(j, "prefill_len");
	if (!cJSON_IsArray(ta) || !cJSON_IsNumber(pl)) { TU_CHECK(0, "%s: bad tokens.json", name); return; }
	int L = cJSON_GetArraySize(ta), P = pl->valueint;
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)L);
	for (int i = 0; i < L; i++) tok[i] = cJSON_GetArrayItem(ta, i)->valueint;
	cJSON_Delete(j);
	free(js);

	struct core_ckpt *ck;
	struct nv_err e = {0};
	char b[2048];
	if (core_ckpt_open(dir, NULL, &ck, &e)) { TU_CHECK(0, "%s: %s", dir, core_err_str(&e, b, sizeof b)); free(tok); return; }
	const struct core_config *c = core_ckpt_config(ck);
	const int V = c->vocab_size, E = c->n_routed_experts, K = c->num_experts_per_tok, H = c->num_hash_layers;
	const int nb = core_cfg_nblocks(c), all = nb * E, steps = 1 + L - P;

	/* the expected hash reads: distinct (layer, expert) over the sequence */
	char *seen = calloc((size_t)H * (size_t)E, 1);
	long want = 0;
	for (int l = 0; l < H; l++) {
		char nm[64];
		snprintf(nm, sizeof nm, "layers.%d.ffn.gate.tid2eid", l);
		const struct core_tensor *t = core_ckpt_find(ck, nm);
		TU_CHECK(t && t->data, "%s: %s absent", name, nm);
		if (!t || !t->data) continue;
		const int64_t *tab = t->data;
		for (int i = 0; i < L; i++)
			for (int q = 0; q < K; q++) {
				int64_t x = tab[(size_t)tok[i] * (size_t)K + (size_t)q];
				if (!seen[l * E + x]) { seen[l * E + x] = 1; want++; }
			}
	}
	free(seen);

	float *ref = malloc(sizeof(float) * (size_t)steps * V), *lg = malloc(sizeof(float) * (size_t)steps * V);
	struct hookrec hr = {0};
	TU_CHECK(run(ck, NULL, tok, L, P, ref, &hr, &e) == 0, "%s: resident run: %s", name, core_err_str(&e, b, sizeof b));

	/* hash-exact, no eviction */
	char tpath[256];
	snprintf(tpath, sizeof tpath, "/tmp/nvmoe_pf_%s_%d.trace", name, (int)getpid());
	struct offload_source_stats on, off;
	struct offload_source *s = mk(ck, all, 1, 0, tpath);
	if (s && !run_src(ck, s, tok, L, P, lg, &on, "prefetch on")) {
		TU_CHECK(offload_source_close_trace(s, &e) == 0, "%s: trace: %s", name, core_err_str(&e, b, sizeof b));
		TU_CHECK(on.pf_issued[OFFLOAD_PF_HASH] == (uint64_t)want && on.pf_used[OFFLOAD_PF_HASH] == (uint64_t)want,
			 "%s: hash prefetch issued %llu used %llu, expected %ld distinct (layer, expert) pairs", name,
			 (unsigned long long)on.pf_issued[OFFLOAD_PF_HASH], (unsigned long long)on.pf_used[OFFLOAD_PF_HASH], want);
		TU_CHECK(on.pf_issued[OFFLOAD_PF_LOOKAHEAD] == 0 && on.cache.evictions == 0,
			 "%s: lookahead issued %llu, evictions %llu (expected 0, 0)", name,
			 (unsigned long long)on.pf_issued[OFFLOAD_PF_LOOKAHEAD], (unsigned long long)on.cache.evictions);
		TU_CHECK(on.pred.predicted[OFFLOAD_PF_HASH] > 0 && on.pred.correct[OFFLOAD_PF_HASH] == on.pred.predicted[OFFLOAD_PF_HASH],
			 "%s: hash predictions %llu, correct %llu", name, (unsigned long long)on.pred.predicted[OFFLOAD_PF_HASH],
			 (unsigned long long)on.pred.correct[OFFLOAD_PF_HASH]);
		TU_CHECK(!memcmp(lg, ref, sizeof(float) * (size_t)steps * V), "%s: logits with hash prefetch differ", name);
	}
	offload_source_destroy(s);
	s = mk(ck, all, 0, 0, NULL);
	if (s && !run_src(ck, s, tok, L, P, lg, &off, "prefetch off")) {
		TU_CHECK(off.pf_issued[OFFLOAD_PF_HASH] == 0, "%s: prefetch off issued %llu", name,
			 (unsigned long long)off.pf_issued[OFFLOAD_PF_HASH]);
		TU_CHECK(off.cache.misses == on.cache.misses + (uint64_t)want && on.cache.hits == off.cache.hits + (uint64_t)want,
			 "%s: misses off %llu on %llu, hits off %llu on %llu: prefetched experts must be hits (%ld of them)", name,
			 (unsigned long long)off.cache.misses, (unsigned long long)on.cache.misses,
			 (unsigned long long)off.cache.hits, (unsigned long long)on.cache.hits, want);
	}
	offload_source_destroy(s);

	/* the trace of the hash run: one record per (position, block), as the hook saw */
	struct offload_trace *t = NULL;
	TU_CHECK(offload_trace_load(tpath, &t, &e) == 0, "%s: trace load: %s", name, core_err_str(&e, b, sizeof b));
	if (t) {
		TU_CHECK(t->n == hr.n && t->ntokens == L && t->h.layers == nb && t->h.k == K && t->h.hash_layers == H,
			 "%s: trace has %ld records, %ld tokens (expected %d, %d)", name, t->n, t->ntokens, hr.n, L);
		int bad = 0;
		for (long i = 0; i < t->n && i < hr.n && !bad; i++) {
			const int32_t *sel = offload_trace_ids(t, i, 0), *h = offload_trace_ids(t, i, 1);
			bad = t->pos[i] != hr.pos[i] || t->layer[i] != hr.blk[i] || t->token[i] != tok[t->pos[i]] ||
			      memcmp(sel, hr.ids + (size_t)i * K, sizeof(int32_t) * (size_t)K) ||
			      (t->layer[i] < H ? memcmp(h, sel, sizeof(int32_t) * (size_t)K) != 0 : h[0] != -1);
			TU_CHECK(!bad, "%s: trace record %ld (pos %d block %d) differs from the route hook (pos %d block %d)",
				 name, i, t->pos[i], t->layer[i], hr.pos[i], hr.blk[i]);
		}
		offload_trace_free(t);
	}
	unlink(tpath);

	/* lookahead + a small cache: bitwise logits, sane accounting */
	for (int la = 1; la <= 3; la += 2) {
		struct offload_source_stats st;
		s = mk(ck, all / 3, 1, la, NULL);
		char tag[64];
		snprintf(tag, sizeof tag, "%s lookahead %d", name, la);
		if (s && !run_src(ck, s, tok, L, P, lg, &st, tag)) {
			TU_CHECK(!memcmp(lg, ref, sizeof(float) * (size_t)steps * V), "%s: logits differ from the resident run", tag);
			TU_CHECK(st.pf_issued[OFFLOAD_PF_LOOKAHEAD] > 0 && st.pf_used[OFFLOAD_PF_LOOKAHEAD] <= st.pf_issued[OFFLOAD_PF_LOOKAHEAD] &&
				 st.pred.predicted_d[1] > 0 && st.pred.correct_d[1] <= st.pred.predicted_d[1] &&
				 (la < 3 || st.pred.predicted_d[3] > 0),
				 "%s: lookahead issued %llu used %llu, d1 predicted %llu correct %llu", tag,
				 (unsigned long long)st.pf_issued[OFFLOAD_PF_LOOKAHEAD], (unsigned long long)st.pf_used[OFFLOAD_PF_LOOKAHEAD],
				 (unsigned long long)st.pred.predicted_d[1], (unsigned long long)st.pred.correct_d[1]);
			TU_CHECK(st.cache.evictions > 0, "%s: a third of the experts must evict", tag);
		}
		offload_source_destroy(s);
	}
	free(hr.pos); free(hr.blk); free(hr.ids);
	free(ref);
	free(lg);
	free(tok);
	core_ckpt_close(ck);
}

int main(void)
{
	const char *shared = tu_require_shared();
	one_case(shared, "tiny-a");
	one_case(shared, "tiny-b");
	TU_DONE();
}
