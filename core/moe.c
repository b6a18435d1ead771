/* core/moe.c - one MoE sublayer (MODEL.md §9): gate, hash or score routing, routed
 * experts obtained from the expert source, shared expert, combination.
 *
 * Every token's routed sum is formed in expert-id order whatever the batch (§9.4):
 * either the experts run in ascending id order accumulating into one f32 sum, or
 * (a source with batch acquisition, at most k experts) they run in the order their
 * bytes arrive, each into a buffer of its own, and the buffers are then added in id
 * order - the same additions, so the logits are bitwise those of a resident run.
 * The shared expert runs before the routed ones (it needs no transfer) and is added
 * last, one bf16 rounding.  After routing, the router lookahead predicts the next
 * blocks' experts for the source to prefetch (layer-major calls: the next chunk's
 * experts of the same block instead). */
#include <string.h>

#include "model_impl.h"

/* Expert x (its rows: cnt ranges of the counting sort) accumulated into out [S, D]. */
static void expert(struct core_model *m, float *out, int x, const struct core_expert_view *v, const int *cnt)
{
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int D = c->hidden_size, K = c->num_experts_per_tok, F = c->moe_intermediate_size;
	int lo = x ? cnt[x - 1] : 0, n = cnt[x] - lo;
	struct kern_expert ex = {
		{ v->w1, v->w1_scale, F, D }, { v->w3, v->w3_scale, F, D }, { v->w2, v->w2_scale, D, F },
	};
	m->k->moe_expert(m->k, out, w->x, &ex, w->slots + lo, n, w->wts, K, m->limit, m->nm);
}

/* Router lookahead (DESIGN.md §3 step 2): the gates of the next score-routed blocks
 * applied to this block's FFN input predict their experts; the union over the rows
 * goes to hint() with priority = distance.  Arithmetic only (kernel table); it
 * touches no state the numerics depend on (gl is free once this block routed). */
static void lookahead(struct core_model *m, const struct core_block *b, int S)
{
	const struct core_expert_src *src = m->src;
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int D = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
	if (!src->hint || src->lookahead <= 0 || b->idx >= c->num_hidden_layers) return;
	for (int d = 1; d <= src->lookahead; d++) {
		int t = b->idx + d;
		if (t >= c->num_hidden_layers) break; /* the MTP block has its own input */
		const struct core_block *nb = &m->blk[t];
		if (nb->hash) continue;               /* predicted exactly from the token */
		k->gemm_f32(k, w->gl, E, w->x, D, nb->gate_w, E, D, S);
		k->route(k, w->la_ids, w->la_wts, w->gl, nb->gate_bias, S, E, K, m->gamma);
		k->download(k, w->hash_h, w->la_ids, (size_t)S * K * sizeof(int32_t));
		int *u = w->la_h, *mark = w->la_h + E, nu = 0;
		memset(mark, 0, sizeof(int) * (size_t)E);
		for (int i = 0; i < S * K; i++) {
			int x = w->hash_h[i];
			if (x >= 0 && x < E && !mark[x]) mark[x] = 1, u[nu++] = x;
		}
		src->hint(src->ctx, t, u, nu, d);
	}
}

/* Layer-major calls (core/model.h): what this block needs next is its own next
 * chunk (or, at the last chunk, the next block's first one).  For a hash-routed
 * block that is known exactly from the tokens; the union goes to hint() with
 * priority 1.  Score-routed blocks get no hint: their experts of this chunk are
 * the best guess for the next, and they are cached already. */
static void hint_next(struct core_model *m, const struct core_block *b)
{
	const struct core_expert_src *src = m->src;
	const struct core_lm *lm = &m->lm;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int E = c->n_routed_experts, K = c->num_experts_per_tok;
	if (!src->hint) return;
	int s0 = lm->s0 + lm->n, t = b->idx;
	if (s0 >= lm->S) s0 = 0, t++;
	if (t >= lm->nb || t >= c->num_hidden_layers || !m->blk[t].hash || !m->blk[t].tid2eid) return;
	const struct core_block *nb = &m->blk[t];
	int n = lm->S - s0 < m->chunk ? lm->S - s0 : m->chunk;
	int *u = w->la_h, *mark = w->la_h + E, nu = 0;
	memset(mark, 0, sizeof(int) * (size_t)E);
	for (int s = 0; s < n; s++)
		for (int j = 0; j < K; j++) {
			int64_t x = nb->tid2eid[(size_t)lm->tok[s0 + s] * K + j];
			if (x >= 0 && x < E && !mark[x]) mark[x] = 1, u[nu++] = (int)x;
		}
	src->hint(src->ctx, t, u, nu, 1);
}

int core_moe(struct core_model *m, const struct core_block *b, const int32_t *tok, int S, int p0,
	     struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int D = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
	const int F = c->moe_intermediate_size;

	/* 9.1 gate */
	k->gemm_f32(k, w->gl, E, w->x, D, b->gate_w, E, D, S);
	if (b->hash) {
		for (int s = 0; s < S; s++) {
			if (tok[s] < 0 || tok[s] >= c->vocab_size)
				return core_err_set(e, NV_ERANGE, "forward", "token", NULL,
						    "token id %d at position %d outside 0..%d", tok[s], p0 + s,
						    c->vocab_size - 1);
			for (int j = 0; j < K; j++) w->hash_h[s * K + j] = (int32_t)b->tid2eid[(size_t)tok[s] * K + j];
		}
		k->upload(k, w->ids, w->hash_h, (size_t)S * K * sizeof(int32_t));
	}
	k->route(k, w->ids, w->wts, w->gl, b->hash ? NULL : b->gate_bias, S, E, K, m->gamma);
	k->download(k, w->ids_h, w->ids, (size_t)S * K * sizeof(int32_t));
	if (m->have_hooks && m->hooks.route) {
		k->download(k, w->wts_h, w->wts, (size_t)S * K * sizeof(float));
		m->hooks.route(m->hooks.ctx, b->idx, p0, S, K, w->ids_h, w->wts_h);
	}

	/* group the (token, slot) pairs by expert: counting sort, ascending token */
	int *cnt = w->cnt_h;
	memset(cnt, 0, sizeof(int) * (E + 1));
	for (int s = 0; s < S; s++)
		for (int j = 0; j < K; j++) {
			int id = w->ids_h[s * K + j], dup = 0;
			for (int i = 0; i < j; i++) dup |= w->ids_h[s * K + i] == id;
			if (id < 0 || id >= E)
				return core_err_set(e, NV_ERANGE, "forward", "expert id", NULL,
						    "block %d routed position %d to expert %d (E = %d)", b->idx,
						    p0 + s, id, E);
			if (!dup) cnt[id + 1]++; /* a repeated id keeps one contribution (§9.4) */
		}
	for (int x = 0; x < E; x++) cnt[x + 1] += cnt[x];
	int nsel = 0;
	for (int s = 0; s < S; s++)
		for (int j = 0; j < K; j++) {
			int id = w->ids_h[s * K + j], dup = 0;
			for (int i = 0; i < j; i++) dup |= w->ids_h[s * K + i] == id;
			if (!dup) w->slots_h[cnt[id]++] = s * K + j, nsel++;
		}
	/* cnt[x] is now the end of expert x's range; its start is cnt[x-1] (0 for x = 0) */
	k->upload(k, w->slots, w->slots_h, (size_t)nsel * sizeof(int32_t));

	const struct core_expert_src *src = m->src;
	if (src->routed) src->routed(src->ctx, b->idx, p0, S, K, w->ids_h);
	int *xs = w->xs_h, nx = 0; /* the distinct experts, ascending */
	for (int x = 0; x < E; x++)
		if (cnt[x] > (x ? cnt[x - 1] : 0)) xs[nx++] = x;
	const int batch = src->acquire_begin != NULL;
	int rc = 0;
	if (batch) rc = src->acquire_begin(src->ctx, b->idx, xs, nx, e);
	else if (src->hint) src->hint(src->ctx, b->idx, xs, nx, 0);
	if (!rc) {
		if (m->lm.on) hint_next(m, b);
		else lookahead(m, b, S);
	}

	/* 9.3 shared expert: computed while the routed experts load */
	if (!rc) {
		k->gemm_fp8(k, w->g, F, w->x, D, &b->sh_w1, S, m->nm);
		k->gemm_fp8(k, w->u, F, w->x, D, &b->sh_w3, S, m->nm);
		k->swiglu(k, w->h, w->g, w->u, S, F, m->nm);
		k->gemm_fp8(k, w->sh, D, w->h, F, &b->sh_w2, S, m->nm);
	}

	const size_t SD = (size_t)S * D;
	if (!rc && batch && nx <= K) {
		/* Pipelined: experts in arrival order, each into its own buffer, then the
		 * sum in id order: acc = ((0 + y_0) + y_1) + ... per row, the additions
		 * of the in-order path (rows an expert skips add +0, which changes nothing:
		 * a sum started at +0 is never -0). */
		for (int i = 0; i < nx && !rc; i++) {
			int x, j = 0;
			struct core_expert_view v;
			if ((rc = src->acquire_next(src->ctx, b->idx, -1, &x, &v, e))) break;
			while (j < nx - 1 && xs[j] != x) j++;
			CHECK(xs[j] == x);
			k->fill(k, w->eacc + (size_t)j * SD, 0.0f, SD);
			expert(m, w->eacc + (size_t)j * SD, x, &v, cnt);
			src->release(src->ctx, b->idx, x);
		}
		float *sum = w->acc, *alt = w->eacc + (size_t)K * SD, *t;
		k->fill(k, sum, 0.0f, SD);
		for (int j = 0; j < nx && !rc; j++) {
			k->add_round(k, alt, sum, w->eacc + (size_t)j * SD, SD, 0);
			t = sum, sum = alt, alt = t;
		}
		if (!rc && sum != w->acc) k->copy(k, w->acc, sum, SD * sizeof(float));
	} else if (!rc) {
		k->fill(k, w->acc, 0.0f, SD);
		for (int i = 0; i < nx && !rc; i++) {
			int x = xs[i], got = x;
			struct core_expert_view v;
			rc = batch ? src->acquire_next(src->ctx, b->idx, x, &got, &v, e)
				   : src->acquire(src->ctx, b->idx, x, &v, e);
			if (rc) break;
			CHECK(got == x);
			expert(m, w->acc, x, &v, cnt);
			src->release(src->ctx, b->idx, x);
		}
	}
	if (batch) src->acquire_end(src->ctx, b->idx);
	if (rc) return rc;

	/* 9.4 combination */
	k->add_round(k, w->a, w->acc, w->sh, (size_t)S * D, m->nm);
	return 0;
}
