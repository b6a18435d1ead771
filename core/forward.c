/* core/forward.c - the top level of the forward pass (MODEL.md §4, §5, §11):
 * embedding, hc expansion, blocks, head, MTP; chunking of calls. */
#include <string.h>

#include "model_impl.h"

/* §4.2: one block on ws.X (in place: the result is back in ws.X). */
static int block(struct core_model *m, struct core_seq *sq, const struct core_block *b,
		 const int32_t *tok, int S, int p0, struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, it = c->hc_sinkhorn_iters;
	int rc;
	float *t;

	k->hc_pre(k, w->x, w->post, w->comb, w->X, b->hc_attn_fn, b->hc_attn_scale, b->hc_attn_base,
		  S, M, D, it, m->eps_n, m->eps_h, m->nm);
	k->rmsnorm(k, w->x, w->x, b->attn_norm, S, D, m->eps_n, m->nm);
	if ((rc = core_attention(m, sq, b, S, p0, e))) return rc;
	k->hc_post(k, w->Xn, w->a, w->X, w->post, w->comb, S, M, D, m->nm);
	t = w->X, w->X = w->Xn, w->Xn = t;

	k->hc_pre(k, w->x, w->post, w->comb, w->X, b->hc_ffn_fn, b->hc_ffn_scale, b->hc_ffn_base,
		  S, M, D, it, m->eps_n, m->eps_h, m->nm);
	k->rmsnorm(k, w->x, w->x, b->ffn_norm, S, D, m->eps_n, m->nm);
	if ((rc = core_moe(m, b, tok, S, p0, e))) return rc;
	k->hc_post(k, w->Xn, w->a, w->X, w->post, w->comb, S, M, D, m->nm);
	t = w->X, w->X = w->Xn, w->Xn = t;

	if (m->have_hooks && m->hooks.block_out) {
		k->download(k, w->X_h, w->X, (size_t)S * M * D * sizeof(float));
		m->hooks.block_out(m->hooks.ctx, b->idx, p0, S, w->X_h);
	}
	return 0;
}

/* §4.1 step 4 / §11: hc_head -> RMSNorm -> f32 head GEMM for rows [r0, S) of X,
 * written to out (host, may be NULL) row by row; returns the last row in ws.logits. */
static const float *head(struct core_model *m, const float *X, const float *fn, const float *base,
			 const float *scale, const uint16_t *norm, int S, int r0, float *out)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, V = c->vocab_size;
	const int n = S - r0;
	k->hc_head(k, w->y, X + (size_t)r0 * M * D, fn, scale, base, n, M, D, m->eps_n, m->eps_h, m->nm);
	k->rmsnorm(k, w->y, w->y, norm, n, D, m->eps_n, m->nm);
	const float *last = w->logits;
	for (int i = 0; i < n; i += CORE_LOGIT_ROWS) {
		int nr = n - i < CORE_LOGIT_ROWS ? n - i : CORE_LOGIT_ROWS;
		k->gemm_f32(k, w->logits, V, w->y + (size_t)i * D, D, m->head, V, D, nr);
		if (out) k->download(k, out + (size_t)i * V, w->logits, (size_t)nr * V * sizeof(float));
		last = w->logits + (size_t)(nr - 1) * V;
	}
	return last;
}

/* §11: Z = bf16(e_proj(RMSNorm(embed[t_{i+1}])) + h_proj(RMSNorm(X_i[j]))), then the
 * MTP block and its head.  X = the main model's final streams (ws.X). */
static int mtp(struct core_model *m, struct core_seq *sq, const int32_t *ntok, int S, int p0,
	       float *logits, int all, struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, V = c->vocab_size;
	const struct core_block *b = &m->blk[c->num_hidden_layers];
	for (int s = 0; s < S; s++)
		if (ntok[s] < 0 || ntok[s] >= V)
			return core_err_set(e, NV_ERANGE, "forward", "mtp token", NULL,
					    "token id %d for MTP position %d outside 0..%d", ntok[s], p0 + s, V - 1);
	k->embed(k, w->a, m->embed, ntok, S, D, 1);
	k->rmsnorm(k, w->a, w->a, m->mtp.enorm, S, D, m->eps_n, m->nm);
	k->gemm_fp8(k, w->x, D, w->a, D, &m->mtp.e_proj, S, m->nm);
	k->rmsnorm(k, w->Xn, w->X, m->mtp.hnorm, S * M, D, m->eps_n, m->nm);
	k->gemm_fp8(k, w->Z, D, w->Xn, D, &m->mtp.h_proj, S * M, m->nm);
	/* the main streams are no longer needed (the head has run): Z becomes ws.X */
	float *t = w->X;
	w->X = w->Z;
	w->Z = t;
	k->add_bcast(k, w->X, w->X, w->x, S, M, D, m->nm);
	int rc = block(m, sq, b, ntok, S, p0, e);
	if (!rc && logits)
		head(m, w->X, m->mtp.hc_fn, m->mtp.hc_base, m->mtp.hc_scale, m->mtp.norm, S, all ? 0 : S - 1, logits);
	return rc;
}

static int check_call(struct core_model *m, struct core_seq *sq, const int32_t *tok, int S, int p0,
		      struct nv_err *e)
{
	if (S < 1 || p0 < 0)
		return core_err_set(e, NV_EINVAL, "forward", NULL, NULL, "bad call: S = %d, p0 = %d", S, p0);
	if (p0 > 0 && p0 != sq->pos)
		return core_err_set(e, NV_EINVAL, "forward", "start position",
				    "continue at the sequence's next position or start at 0",
				    "p0 = %d but the sequence is at position %d", p0, sq->pos);
	if ((long)p0 + S > sq->ctx)
		return core_err_set(e, NV_ERANGE, "forward", "context", "raise --ctx",
				    "positions up to %ld exceed the context of %d tokens", (long)p0 + S, sq->ctx);
	for (int s = 0; s < S; s++)
		if (tok[s] < 0 || tok[s] >= m->c.vocab_size)
			return core_err_set(e, NV_ERANGE, "forward", "token", NULL,
					    "token id %d at position %d outside 0..%d", tok[s], p0 + s,
					    m->c.vocab_size - 1);
	return 0;
}

int core_forward(struct core_model *m, struct core_seq *sq, const int32_t *tok, int S, int p0,
		 const struct core_fwd_io *io, struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
	int rc = check_call(m, sq, tok, S, p0, e);
	if (rc) return rc;
	const int32_t *mtok = io ? io->mtp_tok : NULL;
	if (mtok && c->num_nextn_predict_layers < 1)
		return core_err_set(e, NV_EUNSUPPORTED, "forward", "mtp", NULL, "the model has no MTP block");
	if (io && io->logits_keep && io->mtp_logits)
		return core_err_set(e, NV_EINVAL, "forward", "logits_keep", "download the main logits instead",
				    "kept logits and MTP logits share the head's memory");
	m->logits_b = NULL;
	if (p0 == 0) core_seq_reset(sq);
	if (mtok && sq->mtp_pos != p0)
		return core_err_set(e, NV_EINVAL, "forward", "mtp position",
				    "run the MTP block at every position of the sequence",
				    "MTP state is at position %d, call starts at %d", sq->mtp_pos, p0);
	const struct core_expert_src *src = m->src;
	for (int s0 = 0; s0 < S; s0 += m->chunk) {
		int n = S - s0 < m->chunk ? S - s0 : m->chunk, p = p0 + s0, last = s0 + n == S;
		if (src->token_known)
			for (int s = 0; s < n; s++) src->token_known(src->ctx, p + s, tok[s0 + s]);
		k->embed(k, w->X, m->embed, tok + s0, n, D, M);
		for (int i = 0; i < L; i++)
			if ((rc = block(m, sq, &m->blk[i], tok + s0, n, p, e))) return rc;
		sq->pos = p + n;
		if (io && (io->logits || io->logits_keep) && (io->logits_all || last)) {
			float *out = !io->logits ? NULL : io->logits_all ? io->logits + (size_t)s0 * V : io->logits;
			const float *row = head(m, w->X, m->hc_head_fn, m->hc_head_base, m->hc_head_scale, m->norm, n,
						io->logits_all ? 0 : n - 1, out);
			if (io->logits_keep && last) m->logits_b = row;
		}
		if (mtok) {
			float *ml = NULL;
			if (io->mtp_logits && (io->mtp_all || last))
				ml = io->mtp_all ? io->mtp_logits + (size_t)s0 * V : io->mtp_logits;
			if ((rc = mtp(m, sq, mtok + s0, n, p, ml, io->mtp_all, e))) return rc;
			sq->mtp_pos = p + n;
		}
	}
	return 0;
}

int core_block_forward(struct core_model *m, struct core_seq *sq, int blk, const float *X_in,
		       const int32_t *tok, int S, int p0, float *X_out, struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const size_t MD = (size_t)c->hc_mult * c->hidden_size;
	if (blk < 0 || blk >= c->num_hidden_layers)
		return core_err_set(e, NV_ERANGE, "forward", "block", NULL, "block %d outside 0..%d", blk,
				    c->num_hidden_layers - 1);
	int rc = check_call(m, sq, tok, S, p0, e);
	if (rc) return rc;
	if (p0 == 0) core_seq_reset(sq);
	for (int s0 = 0; s0 < S; s0 += m->chunk) {
		int n = S - s0 < m->chunk ? S - s0 : m->chunk;
		k->upload(k, w->X, X_in + s0 * MD, n * MD * sizeof(float));
		if ((rc = block(m, sq, &m->blk[blk], tok + s0, n, p0 + s0, e))) return rc;
		k->download(k, X_out + s0 * MD, w->X, n * MD * sizeof(float));
		sq->pos = p0 + s0 + n;
	}
	return 0;
}

const float *core_model_logits_b(const struct core_model *m) { return m->logits_b; }
