/* offload/prefetch.c - hash-exact and router-lookahead predictors, their scoring
 * and the routing trace (contract in prefetch.h). */
#include "prefetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "offload/trace.h"

struct offload_prefetch {
	int nblocks, E, K, H, A;
	const int64_t *tid2eid[CORE_MAX_BLOCKS]; /* [rows][tid_k], NULL = unmapped */
	int tid_rows, tid_k;
	/* [nblocks * E]: predictions pending for each block's next routing:
	 * bit 0 = hash, bit d = lookahead at distance d */
	uint32_t *mark;
	unsigned char *sel;       /* [E] scratch: routed union of one block */
	int cur_p0, cur_S;        /* positions of the last routed() call */
	struct offload_pred_stats st;
	struct offload_trace_writer *tw;
};

int offload_prefetch_create(const struct core_ckpt *ck, const struct offload_prefetch_opts *o,
			    struct offload_prefetch **out, struct nv_err *e)
{
	*out = NULL;
	const struct core_config *c = core_ckpt_config(ck);
	if (o->lookahead < 0 || o->lookahead > OFFLOAD_MAX_LOOKAHEAD)
		return core_err_set(e, NV_ERANGE, "prefetch", "lookahead", "lower --lookahead", "router lookahead %d outside 0..%d",
				    o->lookahead, OFFLOAD_MAX_LOOKAHEAD);
	struct offload_prefetch *p = calloc(1, sizeof *p);
	if (!p) return core_err_set(e, NV_ENOMEM, "prefetch", NULL, NULL, "out of memory");
	p->nblocks = core_cfg_nblocks(c);
	p->E = c->n_routed_experts;
	p->K = c->num_experts_per_tok;
	p->A = o->lookahead;
	p->mark = calloc((size_t)p->nblocks * (size_t)p->E, sizeof *p->mark);
	p->sel = calloc((size_t)p->E, 1);
	if (!p->mark || !p->sel) {
		offload_prefetch_close(p, NULL);
		return core_err_set(e, NV_ENOMEM, "prefetch", NULL, NULL, "out of memory");
	}
	/* hash tables (only when the shards are mapped; tables of the wrong shape are
	 * skipped: the forward pass reports those) */
	for (int b = 0; b < c->num_hash_layers && b < CORE_MAX_BLOCKS; b++) {
		char nm[64];
		snprintf(nm, sizeof nm, "layers.%d.ffn.gate.tid2eid", b);
		const struct core_tensor *t = core_ckpt_find(ck, nm);
		if (!t || !t->data || t->dtype != CORE_DT_I64 || t->ndim != 2 || t->shape[1] != p->K) break;
		if (b && t->shape[0] != p->tid_rows) break;
		p->tid2eid[b] = t->data;
		p->tid_rows = (int)t->shape[0];
		p->tid_k = (int)t->shape[1];
		p->H = b + 1;
	}
	if (o->trace_path) {
		struct offload_trace_hdr h = { p->nblocks, p->E, p->K, c->num_hash_layers, p->A };
		int rc = offload_trace_writer_create(o->trace_path, &h, o->trace_ring > 0 ? o->trace_ring : 256, &p->tw, e);
		if (rc) { offload_prefetch_close(p, NULL); return rc; }
	}
	*out = p;
	return 0;
}

int offload_prefetch_close(struct offload_prefetch *p, struct nv_err *e)
{
	if (!p) return 0;
	int rc = offload_trace_writer_close(p->tw, e);
	free(p->mark);
	free(p->sel);
	free(p);
	return rc;
}

int offload_prefetch_trace_close(struct offload_prefetch *p, struct nv_err *e)
{
	if (!p) return 0;
	int rc = offload_trace_writer_close(p->tw, e);
	p->tw = NULL;
	return rc;
}

int offload_prefetch_lookahead_depth(const struct offload_prefetch *p) { return p->A; }
int offload_prefetch_hash_layers(const struct offload_prefetch *p) { return p->H; }

int offload_prefetch_token(struct offload_prefetch *p, int pos, int token, int *ids, int *k_out)
{
	*k_out = p->K;
	offload_trace_token(p->tw, pos, token);
	if (token < 0 || token >= p->tid_rows) return 0;
	for (int b = 0; b < p->H; b++) {
		int32_t v[64];
		for (int j = 0; j < p->K && j < 64; j++) {
			int64_t x = p->tid2eid[b][(size_t)token * (size_t)p->tid_k + (size_t)j];
			v[j] = x >= 0 && x < p->E ? (int32_t)x : -1;
			ids[b * p->K + j] = v[j];
			if (v[j] >= 0) p->mark[(size_t)b * p->E + (size_t)v[j]] |= 1u;
		}
		offload_trace_predict(p->tw, pos, b, 0, v, p->K);
	}
	return p->H;
}

void offload_prefetch_token_seen(struct offload_prefetch *p, int pos, int token)
{
	offload_trace_token(p->tw, pos, token);
}

void offload_prefetch_hash(struct offload_prefetch *p, int block, const int *ids, int n)
{
	if (block < 0 || block >= p->H) return;
	for (int i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < p->E) p->mark[(size_t)block * p->E + (size_t)ids[i]] |= 1u;
}

void offload_prefetch_lookahead(struct offload_prefetch *p, int block, int dist, const int *ids, int n)
{
	if (block < 0 || block >= p->nblocks || dist < 1 || dist > OFFLOAD_MAX_LOOKAHEAD) return;
	for (int i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < p->E) p->mark[(size_t)block * p->E + (size_t)ids[i]] |= 1u << dist;
	if (p->tw && p->cur_S == 1 && dist <= p->A && n <= p->K) {
		int32_t v[64];
		for (int i = 0; i < n && i < 64; i++) v[i] = ids[i];
		offload_trace_predict(p->tw, p->cur_p0, block, dist, v, n);
	}
}

void offload_prefetch_routed(struct offload_prefetch *p, int block, int p0, int S, int k, const int32_t *ids)
{
	p->cur_p0 = p0;
	p->cur_S = S;
	if (block < 0 || block >= p->nblocks) return;
	for (int s = 0; s < S; s++) offload_trace_route(p->tw, p0 + s, block, ids + (size_t)s * k, k);
	memset(p->sel, 0, (size_t)p->E);
	for (int i = 0; i < S * k; i++)
		if (ids[i] >= 0 && ids[i] < p->E) p->sel[ids[i]] = 1;
	uint32_t *mk = p->mark + (size_t)block * p->E;
	for (int x = 0; x < p->E; x++) {
		uint32_t m = mk[x];
		if (!m) continue;
		int hit = p->sel[x];
		if (m & 1u) { p->st.predicted[OFFLOAD_PF_HASH]++; p->st.correct[OFFLOAD_PF_HASH] += hit; }
		if (m & ~1u) { p->st.predicted[OFFLOAD_PF_LOOKAHEAD]++; p->st.correct[OFFLOAD_PF_LOOKAHEAD] += hit; }
		for (int d = 1; d <= OFFLOAD_MAX_LOOKAHEAD; d++)
			if (m & (1u << d)) { p->st.predicted_d[d]++; p->st.correct_d[d] += hit; }
		mk[x] = 0;
	}
}

void offload_prefetch_stats(const struct offload_prefetch *p, struct offload_pred_stats *st) { *st = p->st; }
