/* cli/cmd_template.c - `nvmoe template render|parse` (CHAT.md Part B). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evalio.h"
#include "core/chat.h"
#include "core/tokenizer.h"

/* Whole file (or stdin for "-") into a malloc'ed NUL-terminated buffer. */
static char *slurp(const char *path, size_t *n, struct nv_err *e)
{
	char *buf;
	return cli_read_file(path, &buf, n, e) ? NULL : buf;
}

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: nvmoe template render FILE [MODEL] [--ids] [--tokenizer DIR]\n"
		"       nvmoe template parse FILE --thinking-mode chat|thinking\n"
		"  render: FILE holds a message list or {\"messages\": [...], \"thinking_mode\": \"chat\"|\"thinking\",\n"
		"          \"reasoning_effort\": null|\"high\"|\"max\", \"drop_thinking\": bool,\n"
		"          \"add_default_bos_token\": bool, \"tools\"?: [...], \"context\"?: [...]}; prints the\n"
		"          prompt byte for byte, or with --ids its token ids (tokenizer from --tokenizer or\n"
		"          MODEL: a directory with tokenizer.json, or the file).\n"
		"  parse:  FILE ('-' = stdin) holds generated text (special tokens as text, ending with EOS);\n"
		"          prints the assistant message as JSON (content, reasoning_content, tool_calls).\n");
	return rc;
}

static int render(const struct cli_opts *o)
{
	const char *tokdir = o->tokenizer ? o->tokenizer : (o->nargs == 3 ? o->args[2] : NULL);
	int rc = cli_opts_args(o, 2, 3, "render FILE [MODEL]");
	if (rc) return rc;
	if (o->nargs == 3 && o->tokenizer) return cli_usage_err(o, "give the tokenizer once: --tokenizer DIR or MODEL");
	if (o->ids && !tokdir) return cli_usage_err(o, "--ids needs a tokenizer: --tokenizer DIR or a MODEL argument");
	struct nv_err e = {0};
	size_t n;
	char *buf = slurp(o->args[1], &n, &e), *prompt = NULL;
	struct core_chat_req *req = NULL;
	struct core_tok *t = NULL;
	struct core_tok_ids ids = {0};
	rc = 1;
	if (!buf) goto out;
	if (core_chat_req_parse(buf, n, o->args[1], &req, &e)) goto out;
	if (o->thinking_mode && core_chat_mode_parse(o->thinking_mode, &req->opts.mode, &e)) goto out;
	size_t pn;
	if (core_chat_render(req->messages, req->context, &req->opts, &prompt, &pn, &e)) {
		if (!strcmp(e.file, "chat template")) snprintf(e.file, sizeof e.file, "%s", o->args[1]);
		goto out;
	}
	if (!o->ids) {
		fwrite(prompt, 1, pn, stdout);
		rc = 0;
		goto out;
	}
	if (core_tok_load(tokdir, &t, &e) || core_tok_encode(t, prompt, pn, 0, &ids, &e)) goto out;
	putchar('[');
	for (size_t i = 0; i < ids.n; i++) printf(i ? ", %d" : "%d", ids.v[i]);
	printf("]\n");
	rc = 0;
out:
	if (rc) cli_print_err(&e);
	core_tok_ids_free(&ids);
	core_tok_destroy(t);
	free(prompt);
	core_chat_req_destroy(req);
	free(buf);
	return rc;
}

static int parse(const struct cli_opts *o)
{
	int rc = cli_opts_args(o, 2, 2, "parse FILE");
	if (rc) return rc;
	struct nv_err e = {0};
	enum core_chat_mode mode;
	if (!o->thinking_mode) {
		return cli_usage_err(o, "parse: --thinking-mode chat|thinking is required");
	}
	if (core_chat_mode_parse(o->thinking_mode, &mode, &e)) { cli_print_err(&e); return 2; }
	size_t n;
	char *buf = slurp(o->args[1], &n, &e);
	if (!buf) { cli_print_err(&e); return 1; }
	struct core_chat_reply r;
	rc = core_chat_parse_reply(buf, n, mode, 0, &r, &e);
	if (rc) {
		snprintf(e.file, sizeof e.file, "%s", o->args[1]);
		cli_print_err(&e);
	} else {
		char *js = core_chat_reply_json(&r);
		if (js) printf("%s\n", js);
		else fprintf(stderr, "nvmoe: error: out of memory\n");
		rc = js ? 0 : 1;
		free(js);
		core_chat_reply_free(&r);
	}
	free(buf);
	return rc ? 1 : 0;
}

int cli_cmd_template(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) return usage(stdout, 0);
	if (rc) return rc;
	if ((rc = cli_opts_only(&o, "ids tokenizer thinking-mode")) ||
	    (rc = cli_opts_args(&o, 1, CLI_MAX_ARGS, "render|parse FILE")))
		return rc;
	if (!strcmp(o.args[0], "render")) return render(&o);
	if (!strcmp(o.args[0], "parse")) return parse(&o);
	return cli_usage_err(&o, "unknown subcommand '%s' (expected render or parse)", o.args[0]);
}
