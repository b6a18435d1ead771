/* cli/gen.c - loading a model for generation, prefill with prefix reuse, the token
 * loop, and the reasoning/answer display (contract in gen.h). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"

void cli_gen_think_opts(const char *think, struct core_chat_opts *co)
{
	core_chat_opts_init(co);
	if (!think || !strcmp(think, "none")) return;
	co->mode = CORE_CHAT_MODE_THINKING;
	co->effort = !strcmp(think, "max") ? CORE_CHAT_EFFORT_MAX : CORE_CHAT_EFFORT_HIGH;
}

/* The tokenizer first: it is cheap, and a missing tokenizer.json should not wait
 * for a large checkpoint to be mapped. */
static int open_tokenizer(struct cli_gen *g, const char *model, struct nv_err *e)
{
	int rc = core_tok_load(model, &g->tok, e);
	if (rc && rc == NV_EMISSING && e && !e->hint[0])
		snprintf(e->hint, sizeof e->hint, "%s",
			 "the model directory must hold tokenizer.json (mkmodel --tokenizer-dir DIR copies one)");
	return rc;
}

int cli_gen_open(struct cli_gen *g, const char *model, const struct cli_opts *o, struct nv_err *e)
{
	memset(g, 0, sizeof *g);
	g->dir = model;
	int rc;
	if ((rc = open_tokenizer(g, model, e))) return rc;
	struct core_ckpt_opts co = { .allow_extra = o->allow_extra };
	if ((rc = core_ckpt_open(model, &co, &g->ck, e))) return rc;
	g->c = core_ckpt_config(g->ck);
	g->V = g->c->vocab_size;
	g->eos = g->c->eos_token_id;
	g->ctx = o->ctx;
	if (g->c->max_position_embeddings > 0 && g->ctx > g->c->max_position_embeddings) {
		/* The default (4096) quietly fits small test models; a context the user
		 * asked for and cannot have is an error, not a silent change. */
		if (o->ctx_given)
			return core_err_set(e, NV_ERANGE, model, "--ctx", "lower --ctx (or omit it for the default)",
					    "--ctx %d exceeds the model's max_position_embeddings %d", o->ctx,
					    g->c->max_position_embeddings);
		g->ctx = g->c->max_position_embeddings;
	}
	g->chunk = o->chunk > 0 ? o->chunk : 64;
	g->order = o->prefill_order;
	g->verbose = o->verbose;
	g->progress = isatty(STDERR_FILENO);
	if (g->chunk > g->ctx) g->chunk = g->ctx;
	if ((rc = cli_backend_create(o, &g->k, e))) return rc;
	const struct core_expert_src *src = NULL;
	if ((rc = cli_experts_open_auto(o, g->ck, g->k, g->ctx, g->chunk, &g->xs, &src, e))) return rc;
	if ((rc = cli_backend_check_experts(g->k, src, e))) return rc;
	struct core_model_opts mo = { .numeric = o->smooth ? CORE_NUM_SMOOTH : CORE_NUM_FAITHFUL,
				      .max_chunk = g->chunk, .experts = src };
	if ((rc = core_model_create(g->ck, g->k, &mo, &g->m, e))) return rc;
	if ((rc = core_seq_create(g->m, g->ctx, &g->sq, e))) return rc;
	if ((rc = core_seq_mark_create(g->sq, &g->mark, e))) return rc;
	if ((rc = cli_experts_reserve(g->xs, e))) return rc; /* GPU slots take what the budget leaves */

	core_sampler_cfg_default(&g->scfg);
	if ((rc = core_sampler_cfg_load(model, &g->scfg, e))) return rc;
	if (o->temperature >= 0) g->scfg.temperature = (float)o->temperature;
	if (o->top_p >= 0) g->scfg.top_p = (float)o->top_p;
	if (o->top_k > 0) g->scfg.top_k = o->top_k;
	g->scfg.seed = o->seed;
	if ((rc = core_sampler_create(g->V, &g->scfg, &g->smp, e))) return rc;
	if ((rc = core_tok_stream_create(g->tok, 0, &g->ts, e))) return rc;

	g->hist = malloc(sizeof(int32_t) * (size_t)g->ctx);
	g->tok_ids = core_tok_n_ids(g->tok);
	if (g->tok_ids > g->V) g->tok_ids = g->V;
	int holes = 0;
	for (int id = 0; id < g->tok_ids; id++) {
		size_t n;
		holes += core_tok_id_bytes(g->tok, id, &n) == NULL;
	}
	g->masked = malloc(sizeof(int32_t) * (size_t)(holes ? holes : 1));
	if (!g->hist || !g->masked)
		return core_err_set(e, NV_ENOMEM, "generation", NULL, NULL, "out of memory for the token buffers");
	for (int id = 0; id < g->tok_ids; id++) {
		size_t n;
		if (!core_tok_id_bytes(g->tok, id, &n)) g->masked[g->nmasked++] = id;
	}
	/* the sampler runs on the backend, next to the logits: the mask goes there once */
	if (g->nmasked) {
		size_t mb = sizeof(int32_t) * (size_t)g->nmasked;
		if (!(g->mask_b = g->k->alloc(g->k, mb)))
			return core_err_set(e, NV_ENOMEM, "generation", "token mask", NULL, "out of backend memory");
		g->k->upload(g->k, g->mask_b, g->masked, mb);
	}
	if (g->eos < 0 || g->eos >= g->V)
		return core_err_set(e, NV_EINVAL, model, "config.json: eos_token_id", NULL,
				    "eos_token_id %d outside the vocabulary 0..%d", g->eos, g->V - 1);
	return 0;
}

void cli_gen_close(struct cli_gen *g)
{
	core_tok_stream_destroy(g->ts);
	core_sampler_destroy(g->smp);
	core_seq_mark_destroy(g->mark);
	core_seq_destroy(g->sq);
	core_model_destroy(g->m);
	cli_experts_close(g->xs); /* after the model, which borrows it */
	if (g->k) {
		g->k->free(g->k, g->mask_b);
		g->k->destroy(g->k);
	}
	core_ckpt_close(g->ck);
	core_tok_destroy(g->tok);
	free(g->hist);
	free(g->masked);
	memset(g, 0, sizeof *g);
}

void cli_gen_reset(struct cli_gen *g)
{
	g->nhist = 0;
	core_seq_reset(g->sq);
}

int cli_gen_encode(struct cli_gen *g, const char *text, size_t n, struct core_tok_ids *ids, struct nv_err *e)
{
	ids->n = 0;
	int rc = core_tok_encode(g->tok, text, n, 0, ids, e);
	if (rc) return rc;
	for (size_t i = 0; i < ids->n; i++)
		if (ids->v[i] >= g->V)
			return core_err_set(e, NV_ERANGE, g->dir, "tokenizer.json",
					    "use the tokenizer that belongs to this model",
					    "token id %d (prompt token %zu) is outside the model's vocabulary 0..%d",
					    ids->v[i], i, g->V - 1);
	return 0;
}

/* Prompt progress on stderr: one line rewritten in place, at most 4 times a second,
 * erased when the prompt is done.  The layer-major call reports its own fraction
 * (prog_call), which covers tokens base .. base+span of the prompt's new ones. */
struct prog {
	struct cli_gen *g;
	double t0, last;
	int total;             /* new tokens of the prompt */
	int base, span;        /* the running call's share */
	int shown;
};

static void prog_show(struct prog *pr, double frac)
{
	double now = cli_now(), dt = now - pr->t0;
	if (now - pr->last < 0.25 || dt < 0.5) return;
	pr->last = now;
	double done = frac * pr->total, rate = dt > 0 ? done / dt : 0;
	fprintf(stderr, "\r\033[2K[prompt %3.0f%%: %.0f of %d tokens, %.1f tok/s", 100 * frac, done, pr->total, rate);
	if (rate > 0) fprintf(stderr, ", about %.0f s left", (pr->total - done) / rate);
	fputc(']', stderr);
	fflush(stderr);
	pr->shown = 1;
}

static void prog_call(void *ctx, long done, long total)
{
	struct prog *pr = ctx;
	if (total > 0 && pr->total > 0)
		prog_show(pr, (pr->base + (double)done / (double)total * pr->span) / pr->total);
}

static void prog_end(struct prog *pr)
{
	if (!pr->shown) return;
	fputs("\r\033[2K", stderr);
	fflush(stderr);
}

int cli_gen_prefill(struct cli_gen *g, const int32_t *ids, int n, volatile sig_atomic_t *stop,
		    struct cli_gen_stats *st, struct nv_err *e)
{
	memset(st, 0, sizeof *st);
	st->prompt_tok = n;
	if (n < 1)
		return core_err_set(e, NV_EINVAL, "prompt", NULL, "give some text", "the prompt has no tokens");
	if (n >= g->ctx)
		return core_err_set(e, NV_ERANGE, "prompt", "context", "raise --ctx (or /clear the conversation)",
				    "the prompt has %d tokens; the context holds %d (room is needed for the answer)",
				    n, g->ctx);
	/* Reuse what the sequence has seen when it is a proper prefix (the logits of the
	 * last prompt position must come from a forward call), else go back to the mark
	 * when the prompt still shares the ids up to it (gen.h). */
	int common = 0;
	while (common < g->nhist && common < n && g->hist[common] == ids[common]) common++;
	int keep = 0, mp = g->mark ? core_seq_mark_pos(g->mark) : -1;
	if (g->nhist > 0 && common == g->nhist && g->nhist < n)
		keep = g->nhist;
	else if (mp > 0 && mp <= common && mp < n && !core_seq_rewind(g->mark, e))
		keep = g->nhist = mp;
	if (!keep) cli_gen_reset(g);
	st->reused = keep;
	double t0 = cli_now();
	st->layer = cli_prefill_layer(g->order, g->xs, n - keep, g->chunk);
	if (g->verbose)
		fprintf(stderr, "nvmoe: prefill: %d tokens in chunks of %d, %s-major (--prefill-order %s)\n", n - keep,
			g->chunk, st->layer ? "layer" : "chunk", cli_prefill_name(g->order));
	int p0 = keep;
	struct prog pr = { .g = g, .t0 = t0, .total = n - keep };
	struct prog *prp = g->progress && n - keep > g->chunk ? &pr : NULL;
	if (st->layer) {
		/* One call for every chunk but the last: each passes a layer before the
		 * next layer.  The mark needs the whole state at the last chunk's start,
		 * so that chunk runs on its own below (same chunk boundaries). */
		int last = keep + (n - keep - 1) / g->chunk * g->chunk;
		struct core_fwd_io io = { .layer_major = 1, .stop = stop, .progress = prp ? prog_call : NULL,
					  .progress_ctx = prp };
		pr.span = last - keep;
		int rc = core_forward(g->m, g->sq, ids + keep, last - keep, keep, &io, e);
		if (rc) {
			if (prp) prog_end(prp);
			st->prompt_s = cli_now() - t0;
			cli_gen_reset(g);
			return rc;
		}
		memcpy(g->hist + keep, ids + keep, sizeof(int32_t) * (size_t)(last - keep));
		g->nhist = p0 = last;
	}
	for (int p = p0; p < n; p += g->chunk) {
		int S = n - p < g->chunk ? n - p : g->chunk;
		if (p + S == n && g->mark) core_seq_mark_save(g->mark);
		struct core_fwd_io io = { .logits_keep = p + S == n };
		int rc = core_forward(g->m, g->sq, ids + p, S, p, &io, e);
		if (rc) {
			if (prp) prog_end(prp);
			cli_gen_reset(g);
			return rc;
		}
		memcpy(g->hist + p, ids + p, sizeof(int32_t) * (size_t)S);
		g->nhist = p + S;
		if (prp) prog_show(prp, (double)(p + S - keep) / (n - keep));
		if (stop && *stop && p + S < n) {
			if (prp) prog_end(prp);
			st->prompt_s = cli_now() - t0;
			return core_err_set(e, NV_ECANCELED, "prompt", NULL, NULL, "stopped after %d of %d prompt tokens",
					    p + S, n);
		}
	}
	if (prp) prog_end(prp);
	st->prompt_s = cli_now() - t0;
	return 0;
}

int cli_gen_generate(struct cli_gen *g, int max_tokens, volatile sig_atomic_t *stop, cli_gen_emit_fn emit,
		     void *ud, struct core_tok_ids *out, struct cli_gen_stats *st, struct nv_err *e)
{
	core_tok_stream_reset(g->ts);
	double t0 = cli_now();
	int rc = 0;
	st->gen_tok = 0;
	st->end = CLI_GEN_MAX;
	for (int i = 0; i < max_tokens; i++) {
		if (stop && *stop) { st->end = CLI_GEN_STOPPED; break; }
		int32_t id;
		if ((rc = core_sampler_sample_k(g->smp, g->k, core_model_logits_b(g->m), g->mask_b, g->nmasked,
						g->tok_ids, &id, e)))
			break;
		st->gen_tok++;
		if (id == g->eos) { st->end = CLI_GEN_EOS; break; }
		const char *txt;
		size_t tn;
		if ((rc = core_tok_stream_push(g->ts, id, &txt, &tn, e))) break;
		if (tn && emit) emit(ud, txt, tn);
		if (out) {
			if (out->n == out->cap) {
				size_t nc = out->cap ? out->cap * 2 : 256;
				int32_t *v = realloc(out->v, sizeof(int32_t) * nc);
				if (!v) { rc = core_err_set(e, NV_ENOMEM, "generation", NULL, NULL, "out of memory"); break; }
				out->v = v;
				out->cap = nc;
			}
			out->v[out->n++] = id;
		}
		/* The last token is not fed: nothing would read its logits.  The next
		 * prompt (chat) contains it, so the prefix stays reusable. */
		if (i + 1 == max_tokens || (stop && *stop)) {
			if (stop && *stop) st->end = CLI_GEN_STOPPED;
			break;
		}
		if (g->nhist >= g->ctx) {
			rc = core_err_set(e, NV_ERANGE, "generation", "context", "raise --ctx (or /clear the conversation)",
					  "the context of %d tokens is full", g->ctx);
			break;
		}
		struct core_fwd_io io = { .logits_keep = 1 };
		if ((rc = core_forward(g->m, g->sq, &id, 1, g->nhist, &io, e))) {
			cli_gen_reset(g);
			break;
		}
		g->hist[g->nhist++] = id;
	}
	const char *txt;
	size_t tn;
	core_tok_stream_flush(g->ts, &txt, &tn);
	if (tn && emit) emit(ud, txt, tn);
	st->gen_s = cli_now() - t0;
	return rc;
}

/* ---- reasoning / answer display ---- */

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap) return 0;
	size_t nc = *cap ? *cap : 256;
	while (nc < need) nc *= 2;
	char *p = realloc(*buf, nc);
	if (!p) return -1;
	*buf = p;
	*cap = nc;
	return 0;
}

static void keep_text(struct cli_show *s, char **buf, size_t *len, size_t *cap, const char *t, size_t n)
{
	if (grow(buf, cap, *len + n + 1)) { s->oom = 1; return; }
	memcpy(*buf + *len, t, n);
	*len += n;
	(*buf)[*len] = 0;
}

static void show_start(struct cli_show *s)
{
	if (s->started) return;
	s->started = 1;
	if (!s->thinking) return;
	fputs(s->tty ? "\033[2m" : CLI_MARK_REASONING "\n", s->f);
}

/* Show n bytes of the current part. */
static void show_out(struct cli_show *s, const char *t, size_t n)
{
	if (!n) return;
	show_start(s);
	fwrite(t, 1, n, s->f);
	if (s->thinking) keep_text(s, &s->reasoning, &s->nr, &s->cap_r, t, n);
	else keep_text(s, &s->answer, &s->na, &s->cap_a, t, n);
	fflush(s->f);
}

void cli_show_begin(struct cli_show *s, FILE *f, int tty, int thinking)
{
	memset(s, 0, sizeof *s);
	s->f = f;
	s->tty = tty;
	s->thinking = thinking;
}

void cli_show_emit(void *ud, const char *text, size_t n)
{
	struct cli_show *s = ud;
	if (grow(&s->pend, &s->cap_pend, s->npend + n + 1)) { s->oom = 1; return; }
	memcpy(s->pend + s->npend, text, n);
	s->npend += n;
	static const char end_think[] = CORE_CHAT_END_THINK;
	const size_t ne = sizeof end_think - 1;
	while (s->thinking) {
		char *hit = memmem(s->pend, s->npend, end_think, ne);
		if (!hit) break;
		show_out(s, s->pend, (size_t)(hit - s->pend));
		show_start(s);
		fputs(s->tty ? "\033[0m\n" : "\n" CLI_MARK_ANSWER "\n", s->f);
		s->thinking = 0;
		size_t rest = s->npend - (size_t)(hit - s->pend) - ne;
		memmove(s->pend, hit + ne, rest);
		s->npend = rest;
	}
	size_t hold = core_chat_holdback(s->pend, s->npend);
	show_out(s, s->pend, s->npend - hold);
	memmove(s->pend, s->pend + s->npend - hold, hold);
	s->npend = hold;
}

void cli_show_end(struct cli_show *s)
{
	show_out(s, s->pend, s->npend);
	s->npend = 0;
	if (s->thinking && s->tty && s->started) fputs("\033[0m", s->f);
	fflush(s->f);
}

void cli_show_free(struct cli_show *s)
{
	free(s->pend);
	free(s->reasoning);
	free(s->answer);
	memset(s, 0, sizeof *s);
}
