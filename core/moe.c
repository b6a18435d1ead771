/* core/moe.c - one MoE sublayer (MODEL.md §9): gate, hash or score routing, routed
 * experts obtained from the expert source, shared expert, combination.
 *
 * Experts run in ascending id order, each on the rows routed to it, accumulating
 * into an f32 sum per token, so every token's sum is formed in expert-id order
 * whatever the batch (§9.4); the shared expert is added last, one bf16 rounding. */
#include <string.h>

#include "model_impl.h"

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
	k->fill(k, w->acc, 0.0f, (size_t)S * D);

	const struct core_expert_src *src = m->src;
	if (src->hint) {
		int used[256], nu = 0;
		for (int x = 0; x < E && nu < 256; x++)
			if (cnt[x] > (x ? cnt[x - 1] : 0)) used[nu++] = x;
		src->hint(src->ctx, b->idx, used, nu, 0);
	}
	for (int x = 0; x < E; x++) {
		int lo = x ? cnt[x - 1] : 0, n = cnt[x] - lo;
		if (n == 0) continue;
		struct core_expert_view v;
		int rc = src->acquire(src->ctx, b->idx, x, &v, e);
		if (rc) return rc;
		struct kern_expert ex = {
			{ v.w1, v.w1_scale, F, D }, { v.w3, v.w3_scale, F, D }, { v.w2, v.w2_scale, D, F },
		};
		k->moe_expert(k, w->acc, w->x, &ex, w->slots + lo, n, w->wts, K, m->limit, m->nm);
		src->release(src->ctx, b->idx, x);
	}

	/* 9.3 shared expert, 9.4 combination */
	k->gemm_fp8(k, w->g, F, w->x, D, &b->sh_w1, S, m->nm);
	k->gemm_fp8(k, w->u, F, w->x, D, &b->sh_w3, S, m->nm);
	k->swiglu(k, w->h, w->g, w->u, S, F, m->nm);
	k->gemm_fp8(k, w->sh, D, w->h, F, &b->sh_w2, S, m->nm);
	k->add_round(k, w->a, w->acc, w->sh, (size_t)S * D, m->nm);
	return 0;
}
