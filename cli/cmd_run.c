/* cli/cmd_run.c - `nvmoe run MODEL -p TEXT`: one-shot generation.  The prompt is
 * rendered as a one-turn chat (CHAT.md B: BOS, user turn, assistant prefix, thinking
 * mode from --think) unless --raw, tokenized, prefilled, and the answer streamed to
 * stdout as tokens arrive; reasoning is kept apart from the answer (gen.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "evalio.h"
#include "gen.h"

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: nvmoe run MODEL (-p TEXT | --prompt-file FILE) [options]\n"
		"  Generates an answer to one user message and streams it to stdout.\n"
		"  MODEL: a checkpoint directory holding tokenizer.json (generation_config.json\n"
		"  optional: its temperature / top_p are the defaults).\n"
		"  -p, --prompt TEXT      the user message\n"
		"  --prompt-file FILE     read it from FILE ('-' = stdin)\n"
		"  --think none|high|max  chat mode (default), Think High, Think Max (CHAT.md B.1);\n"
		"                         reasoning is shown dimmed on a terminal, else after a\n"
		"                         '" CLI_MARK_REASONING "' line and before an '" CLI_MARK_ANSWER "' line\n"
		"  --raw                  no chat template: the text is tokenized as is (no BOS)\n"
		"  --max-tokens N         stop after N generated tokens (default 256)\n"
		"  --temperature F --top-p F --top-k N --seed N   sampling (temperature 0 = greedy)\n"
		"  --ctx N                context length (default 4096, at most the model's)\n"
		"  --chunk N              prefill chunk in tokens (default 64)\n"
		"  --smooth               no activation quantisation / bf16 rounding\n"
		"  --stats                one summary line on stderr (tokens and tok/s)\n");
	cli_usage_model_opts(f);
	return rc;
}

static char *read_stdin(size_t *n)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *p = realloc(buf, cap *= 2);
			if (!p) { free(buf); return NULL; }
			buf = p;
		}
		size_t got = fread(buf + len, 1, cap - len - 1, stdin);
		len += got;
		if (!got) break;
	}
	if (buf) buf[len] = 0;
	*n = len;
	return buf;
}

static void print_stats(const struct cli_gen_stats *st)
{
	int fresh = st->prompt_tok - st->reused;
	static const char *ends[] = { "end of sequence", "max tokens", "stopped" };
	fprintf(stderr, "nvmoe: prompt %d tokens, %.1f tok/s; generated %d tokens, %.1f tok/s (%s); %s-major prefill\n",
		st->prompt_tok, st->prompt_s > 0 ? fresh / st->prompt_s : 0.0, st->gen_tok,
		st->gen_s > 0 ? st->gen_tok / st->gen_s : 0.0, ends[st->end], st->layer ? "layer" : "chunk");
}

int cli_cmd_run(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_opts_parse(argc, argv, &o);
	if (r == 3) return usage(stdout, 0);
	if (r) return r;
	if ((r = cli_opts_only(&o, CLI_OPTS_MODEL " " CLI_OPTS_AUTO " " CLI_OPTS_GEN " " CLI_OPTS_PREFILL " prompt prompt-file")) ||
	    (r = cli_opts_args(&o, 1, 1, "MODEL")))
		return r;
	if (!o.prompt == !o.prompt_file)
		return cli_usage_err(&o, "give the prompt with -p TEXT or --prompt-file FILE (one of them)");
	struct nv_err e = {0};
	char *text = NULL, *prompt = NULL;
	size_t tn = 0, pn = 0;
	int rc = 1;
	struct cli_gen g = {0};
	struct core_tok_ids ids = {0};
	cJSON *msgs = NULL;
	struct cli_show show = {0};
	if (o.prompt) {
		text = strdup(o.prompt);
		tn = strlen(o.prompt);
	} else if (!strcmp(o.prompt_file, "-")) {
		text = read_stdin(&tn);
	} else if (cli_read_file(o.prompt_file, &text, &tn, &e)) {
		goto out;
	}
	if (!text) {
		core_err_set(&e, NV_ENOMEM, "prompt", NULL, NULL, "out of memory reading the prompt");
		goto out;
	}
	size_t bad = core_utf8_valid_prefix(text, tn);
	if (bad < tn) {
		core_err_set(&e, NV_EINVAL, o.prompt ? "-p" : o.prompt_file, "prompt",
			     "the prompt must be UTF-8 text", "invalid UTF-8 at byte %zu", bad);
		goto out;
	}
	if (cli_gen_open(&g, o.args[0], &o, &e)) goto out;

	struct core_chat_opts co;
	cli_gen_think_opts(o.think, &co);
	int thinking = !o.raw && co.mode == CORE_CHAT_MODE_THINKING;
	if (o.raw) {
		prompt = text;
		pn = tn;
		text = NULL;
	} else {
		msgs = cJSON_CreateArray();
		cJSON *m = cJSON_CreateObject();
		if (!msgs || !m || !cJSON_AddStringToObject(m, "role", "user") ||
		    !cJSON_AddStringToObject(m, "content", text)) {
			cJSON_Delete(m);
			core_err_set(&e, NV_ENOMEM, "prompt", NULL, NULL, "out of memory");
			goto out;
		}
		cJSON_AddItemToArray(msgs, m);
		if (strlen(text) != tn) {
			core_err_set(&e, NV_EINVAL, o.prompt_file, "prompt", "remove the NUL bytes",
				     "the prompt contains a NUL byte at %zu", strlen(text));
			goto out;
		}
		if (core_chat_render(msgs, NULL, &co, &prompt, &pn, &e)) goto out;
	}
	if (cli_gen_encode(&g, prompt, pn, &ids, &e)) goto out;
	struct cli_gen_stats st;
	if (cli_gen_prefill(&g, ids.v, (int)ids.n, NULL, &st, &e)) goto out;
	cli_show_begin(&show, stdout, isatty(STDOUT_FILENO), thinking);
	int grc = cli_gen_generate(&g, o.max_tokens, NULL, cli_show_emit, &show, NULL, &st, &e);
	cli_show_end(&show);
	if ((show.na || show.nr) && (show.na ? show.answer[show.na - 1] : show.reasoning[show.nr - 1]) != '\n')
		putchar('\n');
	fflush(stdout);
	if (grc) goto out;
	if (o.stats) {
		print_stats(&st);
		if (g.xs) {
			char line[600];
			if (cli_experts_streamed(g.xs))
				fprintf(stderr, "nvmoe: experts: %s\n",
					cli_experts_stats_line(g.xs, (uint64_t)st.gen_tok, line, sizeof line));
			fprintf(stderr, "nvmoe: %s\n", cli_experts_plan_line(g.xs, line, sizeof line));
		}
	}
	rc = 0;
out:
	if (rc) cli_print_err(&e);
	cli_show_free(&show);
	cJSON_Delete(msgs);
	core_tok_ids_free(&ids);
	free(prompt);
	free(text);
	cli_gen_close(&g);
	return rc;
}
