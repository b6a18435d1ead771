/* core/forward.c - the top level of the forward pass (MODEL.md §4, §5, §11):
 * embedding, hc expansion, blocks, head, MTP; chunking of calls. */
#include <stdlib.h>
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

/* Where head() puts its rows: out [n, V] (host), or a sink fed rows of the call
 * starting at call row s. */
struct lgout {
	float *out;
	const struct core_fwd_io *io; /* io->logits_sink, or NULL */
	int s;
};

/* §4.1 step 4 / §11: hc_head -> RMSNorm -> f32 head GEMM for rows [r0, S) of X,
 * written to out (host, may be NULL: kept on the backend only) row by row, or fed
 * to the sink; *last_row (may be NULL) gets the last row in backend memory. */
static int head(struct core_model *m, const float *X, const float *fn, const float *base,
		const float *scale, const uint16_t *norm, int S, int r0, struct lgout o, const float **last_row,
		struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, V = c->vocab_size;
	const int n = S - r0;
	const int sink = o.io && o.io->logits_sink;
	if (sink && !w->lg_h && !(w->lg_h = malloc(sizeof(float) * (size_t)CORE_LOGIT_ROWS * V)))
		return core_err_set(e, NV_ENOMEM, "forward", "logits rows", NULL, "out of memory for %d x %d floats",
				    CORE_LOGIT_ROWS, V);
	k->hc_head(k, w->y, X + (size_t)r0 * M * D, fn, scale, base, n, M, D, m->eps_n, m->eps_h, m->nm);
	k->rmsnorm(k, w->y, w->y, norm, n, D, m->eps_n, m->nm);
	for (int i = 0; i < n; i += CORE_LOGIT_ROWS) {
		int nr = n - i < CORE_LOGIT_ROWS ? n - i : CORE_LOGIT_ROWS;
		k->gemm_f32(k, w->logits, V, w->y + (size_t)i * D, D, m->head, V, D, nr);
		if (last_row) *last_row = w->logits + (size_t)(nr - 1) * V;
		if (!sink) {
			if (o.out) k->download(k, o.out + (size_t)i * V, w->logits, (size_t)nr * V * sizeof(float));
			continue;
		}
		k->download(k, w->lg_h, w->logits, (size_t)nr * V * sizeof(float));
		int rc = o.io->logits_sink(o.io->sink_ctx, o.s + r0 + i, nr, w->lg_h);
		if (rc)
			return core_err_set(e, rc < 0 ? rc : NV_EIO, "forward", "logits sink", NULL,
					    "the receiver of rows %d .. %d stopped the call (status %d)", o.s + r0 + i,
					    o.s + r0 + i + nr - 1, rc);
	}
	return 0;
}

/* The main head for chunk rows [s0, s0 + n) of the call (logits of every row, or of
 * the call's last one; with logits_keep the call's last row also stays on the
 * backend for core_model_logits_b()). */
static int main_head(struct core_model *m, const struct core_fwd_io *io, int s0, int n, int last,
		     struct nv_err *e)
{
	if (!io || !(io->logits || io->logits_keep || (io->logits_all && io->logits_sink)) ||
	    !(io->logits_all || last))
		return 0;
	struct lgout o = { io->logits, NULL, s0 };
	if (io->logits_all) {
		if (io->logits_sink) o.io = io;
		else if (io->logits) o.out = io->logits + (size_t)s0 * m->c.vocab_size;
	}
	const float *row = NULL;
	int rc = head(m, m->ws.X, m->hc_head_fn, m->hc_head_base, m->hc_head_scale, m->norm, n,
		      io->logits_all ? 0 : n - 1, o, &row, e);
	if (!rc && io->logits_keep && last) m->logits_b = row;
	return rc;
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
		rc = head(m, w->X, m->mtp.hc_fn, m->mtp.hc_base, m->mtp.hc_scale, m->mtp.norm, S, all ? 0 : S - 1,
			  (struct lgout){ logits, NULL, 0 }, NULL, e);
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

static void progress(const struct core_fwd_io *io, long done, long total)
{
	if (io && io->progress) io->progress(io->progress_ctx, done, total);
}

static int stopped(const struct core_fwd_io *io, int done, int S, struct nv_err *e)
{
	if (!io || !io->stop || !*io->stop) return 0;
	return core_err_set(e, NV_ECANCELED, "forward", NULL, NULL, "stopped after %d of %d tokens", done, S);
}

/* Layer-major order (contract in model.h): every chunk through block 0, then every
 * chunk through block 1, ...; the streams of all S rows wait in host memory H
 * between blocks.  The chunk boundaries are those of the chunk-major loop. */
static int forward_layers(struct core_model *m, struct core_seq *sq, const int32_t *tok, int S, int p0,
			  const struct core_fwd_io *io, struct nv_err *e)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const struct core_config *c = &m->c;
	const int M = c->hc_mult, D = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
	const size_t MD = (size_t)M * D, bytes = (size_t)S * MD * sizeof(float);
	const int32_t *mtok = io->mtp_tok;
	const struct core_expert_src *src = m->src;
	float *H = malloc(bytes); /* (H) [S, M, D] the streams of every row of the call */
	if (!H)
		return core_err_set(e, NV_ENOMEM, "forward", "layer-major hidden states",
				    "use the chunk-major order (--prefill-order chunk) or a shorter prompt",
				    "cannot allocate %zu bytes (%.2f GiB) for %d tokens x %d x %d f32", bytes,
				    (double)bytes / (1 << 30), S, M, D);
	m->lm = (struct core_lm){ .on = 1, .tok = tok, .S = S, .nb = L + (mtok != NULL) };
	if (src->order) src->order(src->ctx, 1);
	if (src->token_known)
		for (int s = 0; s < S; s++) src->token_known(src->ctx, p0 + s, tok[s]);
	int rc = 0;
	for (int i = 0; i < L && !rc; i++) {
		for (int s0 = 0; s0 < S && !rc; s0 += m->chunk) {
			int n = S - s0 < m->chunk ? S - s0 : m->chunk, last = s0 + n == S;
			if ((rc = stopped(io, 0, S, e))) break;
			m->lm.s0 = s0;
			m->lm.n = n;
			if (i == 0) k->embed(k, w->X, m->embed, tok + s0, n, D, M);
			else k->upload(k, w->X, H + s0 * MD, n * MD * sizeof(float));
			if ((rc = block(m, sq, &m->blk[i], tok + s0, n, p0 + s0, e))) break;
			/* the last block goes straight on to the head; MTP needs the streams again */
			if (i < L - 1 || mtok) k->download(k, H + s0 * MD, w->X, n * MD * sizeof(float));
			if (i == L - 1) rc = main_head(m, io, s0, n, last, e);
			if (!rc) progress(io, (long)i * S + s0 + n, (long)m->lm.nb * S);
		}
	}
	for (int s0 = 0; s0 < S && mtok && !rc; s0 += m->chunk) {
		int n = S - s0 < m->chunk ? S - s0 : m->chunk, last = s0 + n == S;
		if ((rc = stopped(io, 0, S, e))) break;
		m->lm.s0 = s0;
		m->lm.n = n;
		k->upload(k, w->X, H + s0 * MD, n * MD * sizeof(float));
		float *ml = io->mtp_logits && (io->mtp_all || last)
				    ? (io->mtp_all ? io->mtp_logits + (size_t)s0 * V : io->mtp_logits) : NULL;
		rc = mtp(m, sq, mtok + s0, n, p0 + s0, ml, io->mtp_all, e);
		if (!rc) progress(io, (long)L * S + s0 + n, (long)m->lm.nb * S);
	}
	if (src->order) src->order(src->ctx, 0);
	m->lm.on = 0;
	free(H);
	if (rc) {
		core_seq_reset(sq); /* its blocks stopped at different positions */
		return rc;
	}
	sq->pos = p0 + S;
	if (mtok) sq->mtp_pos = p0 + S;
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
	if (io && io->layer_major && S > m->chunk) return forward_layers(m, sq, tok, S, p0, io, e);
	const struct core_expert_src *src = m->src;
	for (int s0 = 0; s0 < S; s0 += m->chunk) {
		int n = S - s0 < m->chunk ? S - s0 : m->chunk, p = p0 + s0, last = s0 + n == S;
		if ((rc = stopped(io, s0, S, e))) return rc;
		if (src->token_known)
			for (int s = 0; s < n; s++) src->token_known(src->ctx, p + s, tok[s0 + s]);
		k->embed(k, w->X, m->embed, tok + s0, n, D, M);
		for (int i = 0; i < L; i++)
			if ((rc = block(m, sq, &m->blk[i], tok + s0, n, p, e))) return rc;
		sq->pos = p + n;
		if ((rc = main_head(m, io, s0, n, last, e))) return rc;
		if (mtok) {
			float *ml = NULL;
			if (io->mtp_logits && (io->mtp_all || last))
				ml = io->mtp_all ? io->mtp_logits + (size_t)s0 * V : io->mtp_logits;
			if ((rc = mtp(m, sq, mtok + s0, n, p, ml, io->mtp_all, e))) return rc;
			sq->mtp_pos = p + n;
		}
		progress(io, s0 + n, S);
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
