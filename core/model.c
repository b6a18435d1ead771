/* core/model.c - binding the checkpoint's tensors to the model, RoPE tables (§8.3),
 * workspaces and per-sequence state (contract in model.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

int core_numeric_parse(const char *s, enum core_numeric *out)
{
	if (!strcmp(s, "faithful")) *out = CORE_NUM_FAITHFUL;
	else if (!strcmp(s, "exact")) *out = CORE_NUM_EXACT;
	else if (!strcmp(s, "smooth")) *out = CORE_NUM_SMOOTH;
	else return NV_EINVAL;
	return 0;
}

const char *core_numeric_name(enum core_numeric n)
{
	return n == CORE_NUM_FAITHFUL ? "faithful" : n == CORE_NUM_EXACT ? "exact" : "smooth";
}

/* ---- RoPE frequency tables (§8.3): every step one f32 operation, RNE.  Products
 * and sums of two floats are formed in double (exact) and rounded once, so the
 * compiler cannot contract them into FMAs. ---- */

static float f32mul(float a, float b) { return (float)((double)a * (double)b); }

static void rope_freqs(float *w, int dr, double base, int yarn, double factor, int orig,
		       double beta_fast, double beta_slow)
{
	float inv_dr = 1.0f / (float)dr;
	float b = (float)base;
	for (int i = 0; i < dr / 2; i++) {
		float ei = f32mul((float)(2 * i), inv_dr);
		float P = (float)pow((double)b, (double)ei);
		w[i] = 1.0f / P;
	}
	if (!yarn) return;
	double lo = floor(dr * log(orig / (beta_fast * 2 * M_PI)) / (2 * log(base)));
	double hi = ceil(dr * log(orig / (beta_slow * 2 * M_PI)) / (2 * log(base)));
	if (lo < 0) lo = 0;
	if (hi > dr - 1) hi = dr - 1;
	if (lo == hi) hi += 0.001;
	float inv_span = 1.0f / (float)(hi - lo);
	float inv_f = 1.0f / (float)factor;
	for (int i = 0; i < dr / 2; i++) {
		float ramp = f32mul((float)((double)(float)i - (double)(float)lo), inv_span);
		if (ramp < 0) ramp = 0;
		if (ramp > 1) ramp = 1;
		float smooth = (float)(1.0 - (double)ramp);
		float a = f32mul(f32mul(w[i], inv_f), (float)(1.0 - (double)smooth));
		float c = f32mul(w[i], smooth);
		w[i] = (float)((double)a + (double)c);
	}
}

void core_rope_freqs(const struct core_config *c, int yarn, float *w)
{
	rope_freqs(w, c->qk_rope_head_dim, yarn ? c->compress_rope_theta : c->rope_theta, yarn,
		   c->rope_factor, c->rope_orig_max_pos, c->beta_fast, c->beta_slow);
}

/* ---- binding ---- */

struct binder {
	const struct core_ckpt *ck;
	struct kern *k;
	struct nv_err *e;
	int err;
	char prefix[32];
};

static const struct core_tensor *find(struct binder *bd, const char *fmt, ...)
{
	char name[160], full[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s%s", bd->prefix, name);
	if (bd->err) return NULL;
	const struct core_tensor *t = core_ckpt_find(bd->ck, full);
	if (!t || !t->data) {
		bd->err = core_err_set(bd->e, NV_EMISSING, core_ckpt_dir(bd->ck), full,
				       "open the checkpoint with data mapped and the tensor set of its config",
				       t ? "tensor data not mapped" : "tensor required by the model is absent");
		return NULL;
	}
	return t;
}

static const void *wmap(struct binder *bd, const struct core_tensor *t)
{
	if (!t) return NULL;
	const void *p = bd->k->wmap(bd->k, t->data, t->nbytes);
	if (!p && !bd->err)
		bd->err = core_err_set(bd->e, NV_ENOMEM, core_ckpt_dir(bd->ck), t->name, NULL,
				       "backend '%s' could not map the weight (%llu bytes)", bd->k->name,
				       (unsigned long long)t->nbytes);
	return p;
}

#define BIND(bd, ...) wmap(bd, find(bd, __VA_ARGS__))

static struct kern_fp8w bind_fp8(struct binder *bd, const char *base)
{
	struct kern_fp8w w = {0};
	const struct core_tensor *t = find(bd, "%s.weight", base);
	w.w = wmap(bd, t);
	w.s = BIND(bd, "%s.scale", base);
	if (t) {
		w.n = (int)t->shape[0];
		w.k = (int)t->shape[1];
	}
	return w;
}

static void bind_comp(struct binder *bd, struct core_comp *c, const char *base, int r, int d)
{
	c->wkv = BIND(bd, "%s.wkv.weight", base);
	c->wgate = BIND(bd, "%s.wgate.weight", base);
	c->ape = BIND(bd, "%s.ape", base);
	c->norm = BIND(bd, "%s.norm.weight", base);
	c->r = r;
	c->d = d;
}

static void bind_block(struct core_model *m, struct binder *bd, struct core_block *b, int i)
{
	const struct core_config *c = &m->c;
	if (i < c->num_hidden_layers) snprintf(bd->prefix, sizeof bd->prefix, "layers.%d.", i);
	else snprintf(bd->prefix, sizeof bd->prefix, "mtp.%d.", i - c->num_hidden_layers);
	b->idx = i;
	b->ratio = c->compress_ratios[i];
	b->hash = core_cfg_is_hash(c, i);
	b->freq = b->ratio ? m->freq_yarn : m->freq_plain;
	b->attn_norm = BIND(bd, "attn_norm.weight");
	b->ffn_norm = BIND(bd, "ffn_norm.weight");
	b->hc_attn_fn = BIND(bd, "hc_attn_fn");
	b->hc_attn_base = BIND(bd, "hc_attn_base");
	b->hc_attn_scale = BIND(bd, "hc_attn_scale");
	b->hc_ffn_fn = BIND(bd, "hc_ffn_fn");
	b->hc_ffn_base = BIND(bd, "hc_ffn_base");
	b->hc_ffn_scale = BIND(bd, "hc_ffn_scale");
	b->wq_a = bind_fp8(bd, "attn.wq_a");
	b->wq_b = bind_fp8(bd, "attn.wq_b");
	b->wkv = bind_fp8(bd, "attn.wkv");
	b->wo_a = bind_fp8(bd, "attn.wo_a");
	b->wo_b = bind_fp8(bd, "attn.wo_b");
	b->q_norm = BIND(bd, "attn.q_norm.weight");
	b->kv_norm = BIND(bd, "attn.kv_norm.weight");
	b->sink = BIND(bd, "attn.attn_sink");
	if (b->ratio > 0) bind_comp(bd, &b->comp, "attn.compressor", b->ratio, c->head_dim);
	if (b->ratio == 4) {
		b->iwq_b = bind_fp8(bd, "attn.indexer.wq_b");
		b->iw_proj = BIND(bd, "attn.indexer.weights_proj.weight");
		bind_comp(bd, &b->icomp, "attn.indexer.compressor", 4, c->index_head_dim);
	}
	b->gate_w = BIND(bd, "ffn.gate.weight");
	if (b->hash) {
		const struct core_tensor *t = find(bd, "ffn.gate.tid2eid");
		b->tid2eid = t ? t->data : NULL;
	} else {
		b->gate_bias = BIND(bd, "ffn.gate.bias");
	}
	b->sh_w1 = bind_fp8(bd, "ffn.shared_experts.w1");
	b->sh_w2 = bind_fp8(bd, "ffn.shared_experts.w2");
	b->sh_w3 = bind_fp8(bd, "ffn.shared_experts.w3");
}

/* ---- workspaces ---- */

static int ws_alloc(struct core_model *m, struct nv_err *e)
{
	const struct core_config *c = &m->c;
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	const size_t S = m->max_chunk, M = c->hc_mult, D = c->hidden_size, K = c->num_experts_per_tok;
	const size_t dmax = c->head_dim > c->index_head_dim ? c->head_dim : c->index_head_dim;
	int fail = 0;
#define A(p, n) do { (p) = k->alloc(k, (size_t)(n) * 4); fail |= !(p); } while (0)
#define AH(p, n) do { size_t n_ = (n); (p) = calloc(n_ ? n_ : 1, 4); fail |= !(p); } while (0)
	A(w->X, S * M * D);
	A(w->Xn, S * M * D);
	A(w->Z, S * M * D);
	A(w->x, S * D);
	A(w->a, S * D);
	A(w->post, S * M);
	A(w->comb, S * M * M);
	A(w->qa, S * c->q_lora_rank);
	A(w->q, S * c->num_attention_heads * c->head_dim);
	A(w->o, S * c->num_attention_heads * c->head_dim);
	A(w->og, S * c->o_groups * c->o_lora_rank);
	A(w->kt, S * 2 * dmax);
	A(w->gt, S * 2 * dmax);
	A(w->kvf, S * c->head_dim);
	A(w->cu, (S / 4 + 2) * dmax);
	A(w->qi, S * c->index_n_heads * c->index_head_dim);
	A(w->wi, S * c->index_n_heads);
	A(w->gl, S * c->n_routed_experts);
	A(w->ids, S * K);
	A(w->wts, S * K);
	A(w->slots, S * K);
	A(w->acc, S * D);
	A(w->eacc, (K + 1) * S * D);
	A(w->la_ids, S * K);
	A(w->la_wts, S * K);
	A(w->g, S * c->moe_intermediate_size);
	A(w->u, S * c->moe_intermediate_size);
	A(w->h, S * c->moe_intermediate_size);
	A(w->sh, S * D);
	A(w->y, S * D);
	A(w->logits, (size_t)CORE_LOGIT_ROWS * c->vocab_size);
	AH(w->ids_h, S * K);
	AH(w->slots_h, S * K);
	AH(w->hash_h, S * K);
	AH(w->wts_h, S * K);
	AH(w->cnt_h, c->n_routed_experts + 1);
	AH(w->xs_h, c->n_routed_experts);
	AH(w->la_h, 2 * c->n_routed_experts);
#undef A
#undef AH
	if (fail) return core_err_set(e, NV_ENOMEM, "model", "workspace", "use a smaller --chunk",
				      "out of memory for the workspaces of %zu-token chunks", S);
	int rows = (int)(S * (M > (size_t)c->num_attention_heads ? M : (size_t)c->num_attention_heads));
	if (rows < (int)S * c->index_n_heads) rows = (int)S * c->index_n_heads;
	int r = k->reserve(k, rows, m->max_w);
	if (!r) r = k->sample_reserve(k, c->vocab_size);
	if (r) return core_err_set(e, r, "model", "kernel scratch", NULL, "backend scratch reservation failed");
	return 0;
}

static void ws_free(struct core_model *m)
{
	struct kern *k = m->k;
	struct core_ws *w = &m->ws;
	float *b[] = { w->X, w->Xn, w->Z, w->x, w->a, w->post, w->comb, w->qa, w->q, w->o, w->og, w->kt,
		       w->gt, w->kvf, w->cu, w->qi, w->wi, w->gl, w->wts, w->acc, w->eacc, w->la_wts, w->g, w->u, w->h, w->sh, w->y, w->logits };
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) k->free(k, b[i]);
	k->free(k, w->ids);
	k->free(k, w->la_ids);
	k->free(k, w->slots);
	free(w->ids_h);
	free(w->slots_h);
	free(w->hash_h);
	free(w->wts_h);
	free(w->cnt_h);
	free(w->xs_h);
	free(w->la_h);
	free(w->X_h);
	free(w->lg_h);
}

static int imax(int a, int b) { return a > b ? a : b; }

int core_model_create(const struct core_ckpt *ck, struct kern *k, const struct core_model_opts *o,
		      struct core_model **out, struct nv_err *e)
{
	*out = NULL;
	struct core_model *m = calloc(1, sizeof *m);
	if (!m) return core_err_set(e, NV_ENOMEM, "model", NULL, NULL, "out of memory");
	const struct core_config *c = core_ckpt_config(ck);
	m->c = *c;
	m->ck = ck;
	m->k = k;
	m->numeric = o ? o->numeric : CORE_NUM_FAITHFUL;
	m->nm = m->numeric == CORE_NUM_FAITHFUL ? (KERN_RND | KERN_QNT)
		: m->numeric == CORE_NUM_EXACT ? KERN_QNT : 0;
	/* bf16 caches exactly when every stored value is a bf16 value (kernels/kern.h) */
	m->kvnm = m->nm & KERN_RND ? m->nm | KERN_KV16 : m->nm;
	m->kv_es = m->kvnm & KERN_KV16 ? 2 : 4;
	m->max_chunk = o && o->max_chunk > 0 ? o->max_chunk : 64;
	m->chunk = m->max_chunk;
	m->nblocks = core_cfg_nblocks(c);
	m->eps_n = (float)c->rms_norm_eps;
	m->eps_h = (float)c->hc_eps;
	m->gamma = (float)c->routed_scaling_factor;
	m->limit = (float)c->swiglu_limit;
	m->tau = (float)pow((double)c->head_dim, -0.5);
	m->cw = (float)(pow((double)c->index_head_dim, -0.5) * pow((double)c->index_n_heads, -0.5));
	int hd = c->num_attention_heads * c->head_dim;
	m->max_w = imax(imax(c->hidden_size * c->hc_mult, hd), imax(c->o_groups * c->o_lora_rank,
		   imax(c->index_n_heads * c->index_head_dim, c->moe_intermediate_size)));
	m->max_w = imax(m->max_w, imax(c->n_routed_experts, 2 * imax(c->head_dim, c->index_head_dim)));
	m->max_w = imax(m->max_w, c->q_lora_rank) + 256;
	int rc = 0;

	int dr = c->qk_rope_head_dim;
	float *fp = malloc(sizeof(float) * dr), *fy = malloc(sizeof(float) * dr);
	m->freq_plain = k->alloc(k, sizeof(float) * dr);
	m->freq_yarn = k->alloc(k, sizeof(float) * dr);
	m->blk = calloc((size_t)m->nblocks, sizeof *m->blk);
	if (!fp || !fy || !m->freq_plain || !m->freq_yarn || !m->blk) {
		free(fp);
		free(fy);
		rc = core_err_set(e, NV_ENOMEM, "model", NULL, NULL, "out of memory");
		goto fail;
	}
	core_rope_freqs(c, 0, fp);
	core_rope_freqs(c, 1, fy);
	k->upload(k, m->freq_plain, fp, sizeof(float) * dr / 2);
	k->upload(k, m->freq_yarn, fy, sizeof(float) * dr / 2);
	free(fp);
	free(fy);

	struct binder bd = { ck, k, e, 0, "" };
	m->embed = BIND(&bd, "embed.weight");
	m->head = BIND(&bd, "head.weight");
	m->norm = BIND(&bd, "norm.weight");
	m->hc_head_fn = BIND(&bd, "hc_head_fn");
	m->hc_head_base = BIND(&bd, "hc_head_base");
	m->hc_head_scale = BIND(&bd, "hc_head_scale");
	for (int i = 0; i < m->nblocks && !bd.err; i++) bind_block(m, &bd, &m->blk[i], i);
	if (c->num_nextn_predict_layers > 0 && !bd.err) {
		snprintf(bd.prefix, sizeof bd.prefix, "mtp.0.");
		m->mtp.e_proj = bind_fp8(&bd, "e_proj");
		m->mtp.h_proj = bind_fp8(&bd, "h_proj");
		m->mtp.enorm = BIND(&bd, "enorm.weight");
		m->mtp.hnorm = BIND(&bd, "hnorm.weight");
		m->mtp.norm = BIND(&bd, "norm.weight");
		m->mtp.hc_fn = BIND(&bd, "hc_head_fn");
		m->mtp.hc_base = BIND(&bd, "hc_head_base");
		m->mtp.hc_scale = BIND(&bd, "hc_head_scale");
	}
	if (bd.err) {
		rc = bd.err;
		goto fail;
	}
	if (o && o->experts) {
		m->src = o->experts;
	} else {
		rc = core_expert_src_resident(ck, k, &m->own_src, e);
		if (rc) goto fail;
		m->src = m->own_src;
	}
	rc = ws_alloc(m, e);
	if (rc) goto fail;
	*out = m;
	return 0;
fail:
	core_model_destroy(m);
	return rc;
}

void core_model_destroy(struct core_model *m)
{
	if (!m) return;
	if (m->k) {
		ws_free(m);
		m->k->free(m->k, m->freq_plain);
		m->k->free(m->k, m->freq_yarn);
	}
	core_expert_src_resident_destroy(m->own_src);
	free(m->blk);
	free(m);
}

const struct core_config *core_model_config(const struct core_model *m) { return &m->c; }

int core_model_set_chunk(struct core_model *m, int chunk, struct nv_err *e)
{
	if (chunk < 1 || chunk > m->max_chunk)
		return core_err_set(e, NV_ERANGE, "model", "chunk", "create the model with a larger max_chunk",
				    "chunk %d outside 1..%d", chunk, m->max_chunk);
	m->chunk = chunk;
	return 0;
}

int core_model_set_hooks(struct core_model *m, const struct core_hooks *h, struct nv_err *e)
{
	if (!h) {
		m->have_hooks = 0;
		memset(&m->hooks, 0, sizeof m->hooks);
		return 0;
	}
	if (!m->ws.X_h) {
		m->ws.X_h = malloc((size_t)m->max_chunk * m->c.hc_mult * m->c.hidden_size * sizeof(float));
		if (!m->ws.X_h) return core_err_set(e, NV_ENOMEM, "model", "hooks", NULL, "out of memory");
	}
	m->hooks = *h;
	m->have_hooks = 1;
	return 0;
}

/* ---- sequence state ---- */

int core_seq_create(struct core_model *m, int ctx, struct core_seq **out, struct nv_err *e)
{
	*out = NULL;
	const struct core_config *c = &m->c;
	if (ctx < 1)
		return core_err_set(e, NV_ERANGE, "seq", "ctx", NULL, "context %d must be >= 1", ctx);
	struct core_seq *sq = calloc(1, sizeof *sq);
	if (!sq) return core_err_set(e, NV_ENOMEM, "seq", NULL, NULL, "out of memory");
	struct kern *k = m->k;
	sq->m = m;
	sq->ctx = ctx;
	sq->b = calloc((size_t)m->nblocks, sizeof *sq->b);
	int fail = !sq->b;
	const size_t W = c->sliding_window, dh = c->head_dim, dI = c->index_head_dim, S = m->max_chunk;
	int cmp_w = 0, any4 = 0;
	for (int i = 0; i < m->nblocks && !fail; i++) {
		struct core_bstate *b = &sq->b[i];
		int r = c->compress_ratios[i];
#define A(p, n) do { (p) = k->alloc(k, (size_t)(n) * 4); fail |= !(p); } while (0)
#define AC(p, n) do { (p) = k->alloc(k, (size_t)(n) * m->kv_es); fail |= !(p); } while (0)
		AC(b->ring, (W + S) * dh);
		if (r > 0) {
			int cc = r == 4 ? 2 : 1;
			AC(b->ccache, (size_t)(ctx / r + 1) * dh);
			A(b->cK, (size_t)cc * r * cc * dh);
			A(b->cG, (size_t)cc * r * cc * dh);
			cmp_w = imax(cmp_w, r == 4 ? c->index_topk : ctx / r);
		}
		if (r == 4) {
			any4 = 1;
			AC(b->icache, (size_t)(ctx / 4 + 1) * dI);
			A(b->iK, 8 * 2 * dI);
			A(b->iG, 8 * 2 * dI);
		}
	}
	sq->idx_w = (int)W + cmp_w;
	A(sq->idx, S * sq->idx_w);
	sq->idx_h = calloc(S * sq->idx_w, sizeof(int32_t));
	fail |= !sq->idx_h;
	if (any4) {
		/* indexer scores: rows processed in groups so the buffer stays ~64 MB */
		size_t ncol = (size_t)ctx / 4 + 1;
		size_t rows = (16u << 20) / ncol;
		sq->sc_rows = rows < 1 ? 1 : rows > S ? (int)S : (int)rows;
		A(sq->sc, (size_t)sq->sc_rows * ncol);
	}
#undef A
#undef AC
	if (fail) {
		core_seq_destroy(sq);
		return core_err_set(e, NV_ENOMEM, "seq", "state", "use a smaller --ctx",
				    "out of memory for the state of a %d-token context", ctx);
	}
	core_seq_reset(sq);
	*out = sq;
	return 0;
}

void core_seq_destroy(struct core_seq *sq)
{
	if (!sq) return;
	struct kern *k = sq->m->k;
	if (sq->b)
		for (int i = 0; i < sq->m->nblocks; i++) {
			struct core_bstate *b = &sq->b[i];
			void *p[] = { b->ring, b->ccache, b->cK, b->cG, b->icache, b->iK, b->iG };
			for (size_t j = 0; j < sizeof p / sizeof p[0]; j++) k->free(k, p[j]);
		}
	k->free(k, sq->idx);
	k->free(k, sq->sc);
	free(sq->idx_h);
	free(sq->b);
	free(sq);
}

/* §8.5.4: K = 0, G = -inf at every sequence start (the reference does not reset;
 * this spec requires it).  Rings and caches need no reset: they are written before
 * they are read. */
void core_seq_reset(struct core_seq *sq)
{
	struct core_model *m = sq->m;
	struct kern *k = m->k;
	const struct core_config *c = &m->c;
	for (int i = 0; i < m->nblocks; i++) {
		struct core_bstate *b = &sq->b[i];
		int r = c->compress_ratios[i], cc = r == 4 ? 2 : 1;
		if (r > 0) {
			size_t n = (size_t)cc * r * cc * c->head_dim;
			k->fill(k, b->cK, 0.0f, n);
			k->fill(k, b->cG, -INFINITY, n);
		}
		if (r == 4) {
			size_t n = 8 * 2 * (size_t)c->index_head_dim;
			k->fill(k, b->iK, 0.0f, n);
			k->fill(k, b->iG, -INFINITY, n);
		}
	}
	sq->pos = 0;
	sq->mtp_pos = 0;
	sq->epoch++;
}

int core_seq_pos(const struct core_seq *sq) { return sq->pos; }

size_t core_seq_state_bytes(const struct core_seq *sq, size_t *cache_bytes)
{
	const struct core_model *m = sq->m;
	const struct core_config *c = &m->c;
	const size_t W = c->sliding_window, dh = c->head_dim, dI = c->index_head_dim, S = m->max_chunk;
	const size_t ctx = sq->ctx, es = m->kv_es;
	size_t cache = 0, st = 0;
	for (int i = 0; i < m->nblocks; i++) {
		size_t r = c->compress_ratios[i], cc = r == 4 ? 2 : 1;
		cache += (W + S) * dh * es;
		if (r > 0) {
			cache += (ctx / r + 1) * dh * es;
			st += 2 * cc * r * cc * dh * 4;
		}
		if (r == 4) {
			cache += (ctx / 4 + 1) * dI * es;
			st += 2 * 8 * 2 * dI * 4;
		}
	}
	if (cache_bytes) *cache_bytes = cache;
	return cache + st;
}

size_t core_model_kv_elem_bytes(const struct core_model *m) { return m->kv_es; }
