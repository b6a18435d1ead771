/* core/attn.c - one attention sublayer (MODEL.md §8), for the S tokens at positions
 * p0 .. p0+S-1, in the order of §8.10.
 *
 * KV array of the call (§8.7, unified for prefill, decode and chunks): the block's
 * ring rows [0, W) hold the window entries of positions < p0 (slot p mod W), rows
 * [W, W+S) the kv of this call's tokens; the compressed cache follows (entry j at
 * list value W + S + j).  Every query gets the decode-convention list: window part
 * of width W (positions max(0, p-W+1) .. p ascending, -1 padded), then the
 * compressed part (ratio 128: all complete entries; ratio 4: the indexer's top-k in
 * descending score order), then -1 up to the row width. */
#include <string.h>

#include "model_impl.h"

/* Compressor run (§8.5) over x for this call; emitted entries are pooled and
 * post-processed in the f32 workspace ws.cu, then stored into the cache rows
 * floor(p0/r) .. floor((p0+S)/r) - 1 (bf16 with KV16: already bf16 values there). */
static void compressor(struct core_model *m, const struct core_comp *cp, const float *freq, float *K,
		       float *G, void *cache, int indexer, int S, int p0)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int r = cp->r, d = cp->d, cd = (r == 4 ? 2 : 1) * d, dr = c->qk_rope_head_dim;
	const int D = c->hidden_size;
	k->gemm_f32(k, w->kt, cd, w->x, D, cp->wkv, cd, D, S);
	k->gemm_f32(k, w->gt, cd, w->x, D, cp->wgate, cd, D, S);
	const int w0 = p0 / r, n = (p0 + S) / r - w0;
	float *u = w->cu; /* [n, d], n <= S/4 + 1 */
	k->compress(k, u, K, G, w->kt, w->gt, cp->ape, S, p0, r, d);
	if (n == 0) return;
	k->round(k, u, (size_t)n * d, m->nm);                      /* e = bf16(u) */
	k->rmsnorm(k, u, u, cp->norm, n, d, m->eps_n, m->nm);
	k->rope(k, u, n, d, 1, d, d - dr, dr, freq, w0 * r, r, 0, m->nm); /* position w*r */
	if (!indexer) {
		k->qdq8(k, u, n, d, d - dr, 64, m->nm);
	} else {
		k->hadamard(k, u, n, d, m->nm);
		k->qdq4(k, u, n, d, d, m->nm);
	}
	k->kv_store(k, (char *)cache + (size_t)w0 * d * m->kv_es, u, (size_t)n * d, m->kvnm);
}

/* Indexer (§8.6): fills the compressed part of the lists, columns [W, W + width). */
static void indexer(struct core_model *m, struct core_seq *sq, const struct core_block *b, int S, int p0,
		    int list_w, int offset)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	struct core_bstate *st = &sq->b[b->idx];
	const int HI = c->index_n_heads, dI = c->index_head_dim, dr = c->qk_rope_head_dim, D = c->hidden_size;
	const int W = c->sliding_window;
	k->gemm_fp8(k, w->qi, HI * dI, w->qa, c->q_lora_rank, &b->iwq_b, S, m->nm);
	k->rope(k, w->qi, S, HI * dI, HI, dI, dI - dr, dr, b->freq, p0, 1, 0, m->nm);
	k->hadamard(k, w->qi, S * HI, dI, m->nm);
	k->qdq4(k, w->qi, S * HI, dI, dI, m->nm);
	compressor(m, &b->icomp, b->freq, st->iK, st->iG, st->icache, 1, S, p0); /* before scoring */
	k->gemm_bf16(k, w->wi, HI, w->x, D, b->iw_proj, HI, D, S, m->nm);
	k->scale(k, w->wi, (size_t)S * HI, m->cw, m->nm);
	const int n = (p0 + S) / 4, width = list_w - W;
	const int ld_sc = sq->ctx / 4 + 1;
	for (int s0 = 0; s0 < S; s0 += sq->sc_rows) {
		int ns = S - s0 < sq->sc_rows ? S - s0 : sq->sc_rows;
		k->idx_score(k, sq->sc, ld_sc, w->qi + (size_t)s0 * HI * dI, w->wi + (size_t)s0 * HI,
			     st->icache, n, ns, HI, dI, m->kvnm);
		k->topk(k, sq->idx + (size_t)s0 * list_w + W, list_w, sq->sc, ld_sc, ns, n, p0 + s0, 4,
			c->index_topk, width, offset);
	}
	if (m->have_hooks && m->hooks.index_sel) {
		int32_t *h = sq->idx_h;
		k->download(k, h, sq->idx, (size_t)S * list_w * sizeof(int32_t));
		for (int s = 0; s < S; s++)
			for (int j = 0; j < width; j++) {
				int32_t v = h[(size_t)s * list_w + W + j];
				h[(size_t)s * width + j] = v < 0 ? -1 : v - offset;
			}
		m->hooks.index_sel(m->hooks.ctx, b->idx, p0, S, width, h);
	}
}

/* Host-built lists: window part, ratio-128 part, -1 elsewhere (§8.7). */
static void build_lists(int32_t *L, int list_w, int S, int p0, int W, int ratio)
{
	for (int s = 0; s < S; s++) {
		int32_t *row = L + (size_t)s * list_w;
		int p = p0 + s, cnt = p + 1 < W ? p + 1 : W;
		for (int j = 0; j < list_w; j++) row[j] = -1;
		for (int j = 0; j < cnt; j++) {
			int t = p - cnt + 1 + j;
			row[j] = t >= p0 ? W + (t - p0) : t % W;
		}
		if (ratio > 4) {
			int vis = (p + 1) / ratio;
			for (int j = 0; j < vis; j++) row[W + j] = W + S + j;
		}
	}
}

int core_attention(struct core_model *m, struct core_seq *sq, const struct core_block *b, int S, int p0,
		   struct nv_err *e)
{
	(void)e;
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	struct core_bstate *st = &sq->b[b->idx];
	const int D = c->hidden_size, Q = c->q_lora_rank, H = c->num_attention_heads, dh = c->head_dim;
	const int dr = c->qk_rope_head_dim, dn = dh - dr, W = c->sliding_window, r = b->ratio;
	const int HD = H * dh;

	/* 8.1 query path */
	k->gemm_fp8(k, w->qa, Q, w->x, D, &b->wq_a, S, m->nm);
	k->rmsnorm(k, w->qa, w->qa, b->q_norm, S, Q, m->eps_n, m->nm); /* qr */
	k->gemm_fp8(k, w->q, HD, w->qa, Q, &b->wq_b, S, m->nm);
	k->head_rms(k, w->q, S * H, dh, m->eps_n, m->nm);
	k->rope(k, w->q, S, HD, H, dh, dn, dr, b->freq, p0, 1, 0, m->nm);

	/* 8.2 kv path in f32, then stored into the chunk rows after the ring */
	const size_t row = (size_t)dh * m->kv_es; /* bytes of a cache row */
	float *kvf = w->kvf;
	char *ring = st->ring, *kv = ring + (size_t)W * row;
	k->gemm_fp8(k, kvf, dh, w->x, D, &b->wkv, S, m->nm);
	k->rmsnorm(k, kvf, kvf, b->kv_norm, S, dh, m->eps_n, m->nm);
	k->rope(k, kvf, S, dh, 1, dh, dn, dr, b->freq, p0, 1, 0, m->nm);
	k->qdq8(k, kvf, S, dh, dn, 64, m->nm);
	k->kv_store(k, kv, kvf, (size_t)S * dh, m->kvnm);

	/* 8.7 lists; 8.6 indexer (ratio 4) fills their compressed part */
	const int ncmp = r ? (p0 + S) / r : 0;
	int cmp_w = r == 4 ? (c->index_topk < ncmp ? c->index_topk : ncmp) : ncmp;
	const int list_w = W + cmp_w;
	build_lists(sq->idx_h, list_w, S, p0, W, r);
	k->upload(k, sq->idx, sq->idx_h, (size_t)S * list_w * sizeof(int32_t));
	if (r == 4) indexer(m, sq, b, S, p0, list_w, W + S);

	/* 8.10 step 5: the main compressor emits before the attention */
	if (r > 0) compressor(m, &b->comp, b->freq, st->cK, st->cG, st->ccache, 0, S, p0);

	/* 8.8 sparse attention */
	struct kern_kv kvd = { st->ring, W + S, st->ccache, ncmp };
	k->attn(k, w->o, w->q, &kvd, sq->idx, list_w, b->sink, S, H, dh, m->tau, m->kvnm);

	/* 8.4 ring: the last W tokens of the call go to their slots */
	for (int t = p0 + S - W > p0 ? p0 + S - W : p0; t < p0 + S; t++)
		k->copy(k, ring + (size_t)(t % W) * row, kv + (size_t)(t - p0) * row, row);

	/* 8.9 output path */
	k->rope(k, w->o, S, HD, H, dh, dn, dr, b->freq, p0, 1, 1, m->nm);
	k->gemm_fp8_grouped(k, w->og, w->o, &b->wo_a, c->o_groups, S, m->nm);
	k->gemm_fp8(k, w->a, D, w->og, c->o_groups * c->o_lora_rank, &b->wo_b, S, m->nm);
	return 0;
}
