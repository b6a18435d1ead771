/* cli/cmd_eval.c - `nvmoe eval MODEL --tokens FILE --out FILE [--chunk N] [--smooth]`:
 * teacher-forced logits for every position of a token sequence, written as raw
 * little-endian float32 [L, V] (to a temporary name, renamed on success), and the
 * mean negative log-likelihood of tokens[1..L) printed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/ckpt.h"
#include "core/model.h"
#include "evalio.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe eval MODEL --tokens FILE --out FILE [--chunk N] [--smooth]\n"
		   "  Teacher-forced logits of every position of FILE (JSON [ids...] or {\"tokens\": [...]})\n"
		   "  written as raw little-endian float32 [L, vocab]; prints the mean NLL.\n"
		   "  --chunk N   prefill chunk (default: whole sequence, at most 256)\n"
		   "  --smooth    no activation quantisation, no bf16 rounding (golden `smooth` numerics)\n"
		   "  --stats     expert-tier statistics on stderr\n"
		   "  --prefill-order chunk|layer|auto  order of the chunks (same logits; see below)\n");
	cli_usage_model_opts(f);
}

/* -log softmax(l)[t] in double */
static double nll(const float *l, int V, int t)
{
	double mx = l[0], s = 0;
	for (int v = 1; v < V; v++) if (l[v] > mx) mx = l[v];
	for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
	return log(s) + mx - (double)l[t];
}

/* The logits sink (core_fwd_io): rows go to the file as they are computed, in
 * either order, so no [L, V] buffer is needed. */
struct sink {
	FILE *f;
	const char *path;
	const int32_t *tok;
	int L, V;
	double sum;
	struct nv_err err;
};

static int put_rows(void *ctx, int s, int n, const float *rows)
{
	struct sink *k = ctx;
	if (fwrite(rows, sizeof(float) * (size_t)k->V, (size_t)n, k->f) != (size_t)n)
		return core_err_set(&k->err, NV_EIO, k->path, NULL, "check free disk space", "write failed");
	for (int i = 0; i < n; i++)
		if (s + i + 1 < k->L) k->sum += nll(rows + (size_t)i * k->V, k->V, k->tok[s + i + 1]);
	return 0;
}

int cli_cmd_eval(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_opts_begin(argc, argv, &o, usage, 1, 1, "MODEL", CLI_OPTS_MODEL " " CLI_OPTS_AUTO " " CLI_OPTS_PREFILL " tokens out");
	if (r >= 0) return r;
	if (!o.tokens) return cli_usage_err(&o, "missing --tokens FILE");
	if (!o.out) return cli_usage_err(&o, "missing --out FILE");
	struct nv_err e = {0};
	int32_t *tok = NULL;
	int L = 0, P, ret = 1;
	struct core_ckpt *ck = NULL;
	struct kern *k = NULL;
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	struct cli_experts *xs = NULL;
	const struct core_expert_src *src = NULL;
	FILE *f = NULL;
	char tmp[4096] = "";
	if (cli_read_tokens(o.tokens, &tok, &L, &P, &e)) goto err;
	struct core_ckpt_opts co = { .allow_extra = o.allow_extra };
	if (core_ckpt_open(o.args[0], &co, &ck, &e)) goto err;
	const struct core_config *c = core_ckpt_config(ck);
	const int V = c->vocab_size;
	for (int i = 0; i < L; i++)
		if (tok[i] >= V) {
			core_err_set(&e, NV_ERANGE, o.tokens, "tokens", "use token ids of this model's vocabulary",
				     "token %d at position %d is >= vocab_size %d", tok[i], i, V);
			goto err;
		}
	if (c->max_position_embeddings > 0 && L > c->max_position_embeddings) {
		core_err_set(&e, NV_ERANGE, o.tokens, "tokens", "split the sequence into windows the model can attend to",
			     "%d tokens exceed the model's max_position_embeddings %d", L, c->max_position_embeddings);
		goto err;
	}
	int chunk = o.chunk > 0 ? o.chunk : (L < 256 ? L : 256);
	if (chunk > L) chunk = L;
	if (cli_backend_create(&o, &k, &e)) goto err;
	/* Routed experts: the memory plan, or the tiers --host-cache / --vram-budget ask for. */
	if (cli_experts_open_auto(&o, ck, k, L, chunk, &xs, &src, &e) || cli_backend_check_experts(k, src, &e)) goto err;
	struct core_model_opts mo = { .numeric = o.smooth ? CORE_NUM_SMOOTH : CORE_NUM_FAITHFUL, .max_chunk = chunk,
				      .experts = src };
	if (core_model_create(ck, k, &mo, &m, &e) || core_seq_create(m, L, &sq, &e)) goto err;
	if (cli_experts_reserve(xs, &e)) goto err; /* GPU slots take what the budget leaves */
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", o.out, (int)getpid());
	f = fopen(tmp, "wb");
	if (!f) { core_err_set(&e, -errno, tmp, NULL, "check the output directory", "cannot create: %s", strerror(errno)); goto err; }
	/* One call: the model cuts it into chunks, in the order --prefill-order picks. */
	struct sink sk = { .f = f, .path = tmp, .tok = tok, .L = L, .V = V };
	struct core_fwd_io io = { .logits_all = 1, .logits_sink = put_rows, .sink_ctx = &sk,
				  .layer_major = cli_prefill_layer(o.prefill_order, xs, L, chunk) };
	if (o.verbose)
		fprintf(stderr, "nvmoe: eval: %d tokens in chunks of %d, %s-major (--prefill-order %s)\n", L, chunk,
			io.layer_major ? "layer" : "chunk", cli_prefill_name(o.prefill_order));
	if (core_forward(m, sq, tok, L, 0, &io, &e)) {
		if (sk.err.code) e = sk.err;
		goto err;
	}
	double sum = sk.sum;
	if (fclose(f)) { f = NULL; core_err_set(&e, NV_EIO, tmp, NULL, "check free disk space", "close failed"); goto err; }
	f = NULL;
	if (rename(tmp, o.out)) { core_err_set(&e, -errno, o.out, NULL, NULL, "rename failed: %s", strerror(errno)); goto err; }
	tmp[0] = 0;
	printf("eval: %d tokens, logits [%d, %d] float32 -> %s; mean NLL %.6f over %d predictions (%s numerics)\n",
	       L, L, V, o.out, L > 1 ? sum / (L - 1) : 0.0, L - 1, o.smooth ? "smooth" : "faithful");
	ret = 0;
	goto out;
err:
	cli_print_err(&e);
out:
	if (f) fclose(f);
	if (tmp[0]) unlink(tmp);
	core_seq_destroy(sq);
	core_model_destroy(m);
	if (cli_experts_close(xs)) ret = 1;
	if (k) k->destroy(k);
	core_ckpt_close(ck);
	free(tok);
	return ret;
}
