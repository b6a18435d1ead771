/* cli/cmd_chat.c - `nvmoe chat MODEL`: the interactive REPL.
 *
 * Each turn appends the user message to the conversation, re-renders the whole
 * conversation (CHAT.md B), tokenizes it and runs only what the sequence has not seen
 * yet (gen.h: prefix reuse; a prompt that parts from the previous one inside its
 * last chunk - thinking mode drops the previous answer's reasoning - rewinds to a
 * mark; anything else - changed thinking mode, /load - restarts the sequence).  The answer streams as it is generated; Ctrl-C
 * stops it (SIGINT sets a flag checked once per token) and the partial answer stays
 * in the conversation.  At the prompt Ctrl-C clears the line and Ctrl-D exits.
 * Input: a line ending in '\' continues on the next line; a line holding only \"\"\"
 * opens a block closed by another such line.  Readline (with a history file) on a
 * terminal; plain lines when stdin is not one.  Errors in a turn are reported and
 * the REPL goes on. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "cli.h"
#include "evalio.h"
#include "gen.h"

/* The mutable globals of the REPL (house rule 6): the SIGINT flag the handler sets,
 * and the line readline's callback interface hands back. */
static volatile sig_atomic_t g_sigint;
static char *g_line;
static int g_line_done;

static void on_sigint(int sig)
{
	(void)sig;
	g_sigint = 1;
}

static void on_line(char *line)
{
	g_line = line;
	g_line_done = 1;
	rl_callback_handler_remove();
}

struct chat {
	struct cli_gen g;
	const struct cli_opts *o;
	cJSON *msgs;        /* the conversation (OpenAI-style messages) */
	char think[8];      /* none | high | max */
	int tty_in, tty_out;
	char hist_path[4096];
	struct core_tok_ids ids;
	char *attach;       /* /file: text that goes with the next message (NULL = none) */
	char attach_name[512];
	/* totals over the session, for /stats */
	int turns;
	long prompt_tok, reused_tok, gen_tok;
	double prompt_s, gen_s;
};

/* ---- input ---- */

enum { IN_LINE = 1, IN_EOF = 0, IN_INTR = -1 };

/* One line without its newline into *out (malloc'ed). */
static int read_line(struct chat *c, const char *prompt, char **out)
{
	*out = NULL;
	if (!c->tty_in) {
		size_t cap = 0;
		ssize_t n = getline(out, &cap, stdin);
		if (n < 0) {
			free(*out);
			*out = NULL;
			return IN_EOF;
		}
		if (n && (*out)[n - 1] == '\n') (*out)[--n] = 0;
		return IN_LINE;
	}
	g_line = NULL;
	g_line_done = 0;
	g_sigint = 0;
	/* SIGINT is only let through inside pselect(): a Ctrl-C that arrived while a key
	 * was being handled would otherwise set the flag and leave select() asleep until
	 * the next key. */
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGINT);
	rl_callback_handler_install(prompt, on_line);
	while (!g_line_done) {
		fd_set fds;
		FD_ZERO(&fds);
		FD_SET(fileno(rl_instream), &fds);
		int r = pselect(fileno(rl_instream) + 1, &fds, NULL, NULL, NULL, &waitmask);
		if (r < 0 && errno == EINTR) {
			if (g_sigint) {
				/* Ctrl-C at the prompt: drop the line, start a fresh prompt. */
				g_sigint = 0;
				rl_point = rl_end;
				rl_redisplay();
				fputs("^C\n", rl_outstream);
				fflush(rl_outstream);
				rl_replace_line("", 0);
				rl_free_line_state();
				rl_callback_sigcleanup();
				rl_callback_handler_remove();
				sigprocmask(SIG_UNBLOCK, &block, NULL);
				return IN_INTR;
			}
			continue;
		}
		if (r < 0) {
			rl_callback_handler_remove();
			sigprocmask(SIG_UNBLOCK, &block, NULL);
			return IN_EOF;
		}
		rl_callback_read_char();
	}
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	*out = g_line;
	return g_line ? IN_LINE : IN_EOF;
}

static int is_fence(const char *s)
{
	while (*s == ' ' || *s == '\t') s++;
	if (strncmp(s, "\"\"\"", 3)) return 0;
	s += 3;
	while (*s == ' ' || *s == '\t' || *s == '\r') s++;
	return !*s;
}

static int append(char **buf, size_t *n, const char *s, size_t k)
{
	char *p = realloc(*buf, *n + k + 1);
	if (!p) return -1;
	memcpy(p + *n, s, k);
	*n += k;
	p[*n] = 0;
	*buf = p;
	return 0;
}

/* A whole user input (joined continuation lines / a """ block) into *out. */
static int read_input(struct chat *c, char **out)
{
	char *line, *buf = NULL;
	size_t n = 0;
	*out = NULL;
	int r = read_line(c, "> ", &line);
	if (r != IN_LINE) return r;
	if (is_fence(line)) {
		free(line);
		for (int first = 1;; first = 0) {
			r = read_line(c, "\"\"\" ", &line);
			if (r != IN_LINE) { free(buf); return r == IN_EOF && buf ? IN_INTR : r; }
			if (is_fence(line)) { free(line); break; }
			if ((!first && append(&buf, &n, "\n", 1)) || append(&buf, &n, line, strlen(line))) {
				free(line);
				free(buf);
				return IN_INTR;
			}
			free(line);
		}
		*out = buf ? buf : strdup("");
		return IN_LINE;
	}
	for (;;) {
		size_t k = strlen(line);
		int more = k && line[k - 1] == '\\';
		if (append(&buf, &n, line, more ? k - 1 : k) || (more && append(&buf, &n, "\n", 1))) {
			free(line);
			free(buf);
			return IN_INTR;
		}
		free(line);
		if (!more) break;
		r = read_line(c, "... ", &line);
		if (r != IN_LINE) { free(buf); return r == IN_EOF ? IN_INTR : r; }
	}
	*out = buf;
	return IN_LINE;
}

/* ---- history file ---- */

static void history_open(struct chat *c)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	c->hist_path[0] = 0;
	if (xdg && *xdg) {
		char dir[4000];
		snprintf(dir, sizeof dir, "%s/nvmoe", xdg);
		mkdir(xdg, 0700);
		mkdir(dir, 0700);
		snprintf(c->hist_path, sizeof c->hist_path, "%s/history", dir);
	} else if (home && *home) {
		snprintf(c->hist_path, sizeof c->hist_path, "%s/.nvmoe_history", home);
	}
	if (!c->hist_path[0]) return;
	using_history();
	if (read_history(c->hist_path)) write_history(c->hist_path); /* create it for append_history */
}

static void history_add(struct chat *c, const char *s)
{
	if (!c->tty_in || !*s) return;
	add_history(s);
	if (c->hist_path[0]) append_history(1, c->hist_path);
}

static void history_close(struct chat *c)
{
	if (c->tty_in && c->hist_path[0]) history_truncate_file(c->hist_path, 1000);
}

/* ---- conversation ---- */

static const char *mode_name(const char *think)
{
	return strcmp(think, "none") ? "thinking" : "chat";
}

static void chat_opts(const struct chat *c, struct core_chat_opts *co)
{
	cli_gen_think_opts(c->think, co);
}

static int add_message(cJSON *msgs, const char *role, const char *content, const char *reasoning)
{
	cJSON *m = cJSON_CreateObject();
	if (!m || !cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content) ||
	    (reasoning && !cJSON_AddStringToObject(m, "reasoning_content", reasoning))) {
		cJSON_Delete(m);
		return -1;
	}
	cJSON_AddItemToArray(msgs, m);
	return 0;
}

static void drop_last(cJSON *msgs)
{
	int n = cJSON_GetArraySize(msgs);
	if (n > 0) cJSON_DeleteItemFromArray(msgs, n - 1);
}

static void dim(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dim(struct chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (c->tty_out) fputs("\033[2m", stdout);
	vprintf(fmt, ap);
	if (c->tty_out) fputs("\033[0m", stdout);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

static void report(const struct nv_err *e)
{
	char buf[2048];
	fprintf(stderr, "nvmoe chat: error: %s\n", core_err_str(e, buf, sizeof buf));
	fflush(stderr);
}

/* One user turn: render, prefill (reusing the sequence's prefix), generate. */
static void turn(struct chat *c, const char *text)
{
	struct nv_err e = {0};
	size_t tn = strlen(text), bad = core_utf8_valid_prefix(text, tn);
	if (bad < tn) {
		core_err_set(&e, NV_EINVAL, "input", NULL, "type UTF-8 text", "invalid UTF-8 at byte %zu", bad);
		report(&e);
		return;
	}
	char *full = NULL;
	if (c->attach) {
		/* The document first, the question after it: long-document prompts read best
		 * (and reuse best across questions) in that order. */
		size_t n = strlen(c->attach) + strlen(c->attach_name) + tn + 64;
		if ((full = malloc(n)))
			snprintf(full, n, "<file name=\"%s\">\n%s\n</file>\n\n%s", c->attach_name, c->attach, text);
	}
	if ((c->attach && !full) || add_message(c->msgs, "user", full ? full : text, NULL)) {
		free(full);
		core_err_set(&e, NV_ENOMEM, "input", NULL, NULL, "out of memory");
		report(&e);
		return;
	}
	free(full);
	struct core_chat_opts co;
	chat_opts(c, &co);
	char *prompt = NULL;
	size_t pn;
	struct cli_gen_stats st;
	struct cli_show show = {0};
	g_sigint = 0;
	if (core_chat_render(c->msgs, NULL, &co, &prompt, &pn, &e) || cli_gen_encode(&c->g, prompt, pn, &c->ids, &e) ||
	    cli_gen_prefill(&c->g, c->ids.v, (int)c->ids.n, &g_sigint, &st, &e)) {
		free(prompt);
		drop_last(c->msgs);
		if (!strcmp(e.file, "chat template")) snprintf(e.file, sizeof e.file, "%s", "conversation");
		if (e.code == NV_ECANCELED) dim(c, "[stopped]");
		else report(&e);
		return;
	}
	free(prompt);
	if (c->attach) {
		free(c->attach); /* it is in the conversation now */
		c->attach = NULL;
	}
	int thinking = co.mode == CORE_CHAT_MODE_THINKING;
	cli_show_begin(&show, stdout, c->tty_out, thinking);
	int rc = cli_gen_generate(&c->g, c->o->max_tokens, &g_sigint, cli_show_emit, &show, NULL, &st, &e);
	cli_show_end(&show);
	if (show.started) fputc('\n', stdout);
	if (st.end == CLI_GEN_STOPPED) dim(c, "[stopped]");
	if (rc) report(&e);
	if (add_message(c->msgs, "assistant", show.answer ? show.answer : "",
			thinking ? (show.reasoning ? show.reasoning : "") : NULL)) {
		core_err_set(&e, NV_ENOMEM, "conversation", NULL, NULL, "out of memory");
		report(&e);
	}
	cli_show_free(&show);
	int fresh = st.prompt_tok - st.reused;
	c->turns++;
	c->prompt_tok += st.prompt_tok;
	c->reused_tok += st.reused;
	c->gen_tok += st.gen_tok;
	c->prompt_s += st.prompt_s;
	c->gen_s += st.gen_s;
	dim(c, "[prompt %d tokens (%d reused), %.1f tok/s | answer %d tokens, %.1f tok/s%s]", st.prompt_tok, st.reused,
	    st.prompt_s > 0 ? fresh / st.prompt_s : 0.0, st.gen_tok, st.gen_s > 0 ? st.gen_tok / st.gen_s : 0.0,
	    st.end == CLI_GEN_MAX ? ", max tokens" : "");
	g_sigint = 0;
}

/* ---- commands ---- */

static void cmd_help(struct chat *c)
{
	(void)c;
	printf("commands:\n"
	       "  /help               this list\n"
	       "  /clear              forget the conversation\n"
	       "  /think none|high|max  chat mode, Think High, Think Max (now: %s)\n"
	       "  /stats              totals of this session\n"
	       "  /save FILE          write the conversation as JSON (nvmoe template render FILE reads it)\n"
	       "  /load FILE          read a conversation saved by /save (or any template render input)\n"
	       "  /file FILE          attach a text file to your next message (/file alone drops it)\n"
	       "  /exit               leave (also Ctrl-D)\n"
	       "input: a line ending in '\\' continues on the next line; a line holding only \"\"\"\n"
	       "opens a block that another \"\"\" line closes.  Ctrl-C stops an answer.\n", c->think);
}

static void cmd_save(struct chat *c, const char *path)
{
	struct nv_err e = {0};
	cJSON *root = cJSON_CreateObject();
	cJSON *msgs = cJSON_Duplicate(c->msgs, 1);
	if (!root || !msgs || !cJSON_AddStringToObject(root, "thinking_mode", mode_name(c->think)) ||
	    !(strcmp(c->think, "max") ? cJSON_AddNullToObject(root, "reasoning_effort")
				      : cJSON_AddStringToObject(root, "reasoning_effort", "max"))) {
		cJSON_Delete(msgs);
		goto oom;
	}
	cJSON_AddItemToObject(root, "messages", msgs);
	char *txt = cJSON_Print(root);
	if (!txt) goto oom;
	size_t n = strlen(txt);
	txt[n] = 0;
	char *full = malloc(n + 2);
	if (!full) { free(txt); goto oom; }
	memcpy(full, txt, n);
	full[n] = '\n';
	free(txt);
	if (cli_write_atomic(path, full, n + 1, &e)) report(&e);
	else dim(c, "saved %d message(s) to %s", cJSON_GetArraySize(c->msgs), path);
	free(full);
	cJSON_Delete(root);
	return;
oom:
	cJSON_Delete(root);
	core_err_set(&e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	report(&e);
}

static void cmd_load(struct chat *c, const char *path)
{
	struct nv_err e = {0};
	char *buf = NULL, *prompt = NULL;
	size_t n;
	struct core_chat_req *req = NULL;
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		core_err_set(&e, NV_EINVAL, path, NULL, "give a file written by /save", "not a regular file");
		goto out;
	}
	if (cli_read_file(path, &buf, &n, &e) || core_chat_req_parse(buf, n, path, &req, &e)) goto out;
	if (req->context) {
		core_err_set(&e, NV_EUNSUPPORTED, path, "context", "put the messages in \"messages\"",
			     "a conversation with an already-encoded \"context\" cannot be continued here");
		goto out;
	}
	/* It must render (and so can be continued) before it replaces the conversation. */
	if (core_chat_render(req->messages, NULL, &req->opts, &prompt, &n, &e)) {
		if (!strcmp(e.file, "chat template")) snprintf(e.file, sizeof e.file, "%s", path);
		goto out;
	}
	cJSON *msgs = cJSON_Duplicate(req->messages, 1);
	if (!msgs) {
		core_err_set(&e, NV_ENOMEM, path, NULL, NULL, "out of memory");
		goto out;
	}
	cJSON_Delete(c->msgs);
	c->msgs = msgs;
	snprintf(c->think, sizeof c->think, "%s",
		 req->opts.mode == CORE_CHAT_MODE_CHAT ? "none" : req->opts.effort == CORE_CHAT_EFFORT_MAX ? "max" : "high");
	dim(c, "loaded %d message(s) from %s (think: %s)", cJSON_GetArraySize(msgs), path, c->think);
out:
	if (e.code) report(&e);
	free(prompt);
	core_chat_req_destroy(req);
	free(buf);
}

/* /file PATH: read a UTF-8 text file to send with the next message. */
static void cmd_file(struct chat *c, const char *path)
{
	struct nv_err e = {0};
	if (!*path) {
		if (c->attach) dim(c, "dropped the attachment %s", c->attach_name);
		else dim(c, "no file attached (/file FILE attaches one)");
		free(c->attach);
		c->attach = NULL;
		return;
	}
	struct stat sb;
	char *buf = NULL;
	size_t n = 0;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		core_err_set(&e, NV_EINVAL, path, NULL, "give a text file", "not a regular file");
	} else if (!cli_read_file(path, &buf, &n, &e)) {
		size_t bad = core_utf8_valid_prefix(buf, n);
		if (memchr(buf, 0, n))
			core_err_set(&e, NV_EINVAL, path, NULL, "attach text files only", "binary file (NUL byte at %zu)",
				     (size_t)((char *)memchr(buf, 0, n) - buf));
		else if (bad < n)
			core_err_set(&e, NV_EINVAL, path, NULL, "convert the file to UTF-8 first", "invalid UTF-8 at byte %zu",
				     bad);
	}
	if (e.code) {
		free(buf);
		report(&e);
		return;
	}
	struct core_tok_ids ids = {0};
	int ntok = cli_gen_encode(&c->g, buf, n, &ids, &e) ? -1 : (int)ids.n;
	core_tok_ids_free(&ids);
	free(c->attach);
	c->attach = buf;
	const char *base = strrchr(path, '/');
	snprintf(c->attach_name, sizeof c->attach_name, "%s", base ? base + 1 : path);
	/* the name goes inside <file name="...">: no quote or angle bracket may end it early */
	for (char *q = c->attach_name; *q; q++)
		if (*q == '"' || *q == '<' || *q == '>') *q = '_';
	if (ntok >= 0)
		dim(c, "attached %s: %zu bytes, %d tokens; it goes with your next message", c->attach_name, n, ntok);
	else
		dim(c, "attached %s: %zu bytes; it goes with your next message", c->attach_name, n);
	if (ntok >= c->g.ctx)
		fprintf(stderr, "nvmoe chat: warning: %s has %d tokens, more than the context of %d (raise --ctx)\n",
			c->attach_name, ntok, c->g.ctx);
}

static void cmd_stats(struct chat *c)
{
	printf("turns %d; context %d of %d tokens in use\n", c->turns, c->g.nhist, c->g.ctx);
	printf("prompt: %ld tokens (%ld reused), %.1f tok/s\n", c->prompt_tok, c->reused_tok,
	       c->prompt_s > 0 ? (c->prompt_tok - c->reused_tok) / c->prompt_s : 0.0);
	printf("answers: %ld tokens, %.1f tok/s\n", c->gen_tok, c->gen_s > 0 ? c->gen_tok / c->gen_s : 0.0);
	printf("sampling: temperature %g, top-p %g, top-k %d, seed %llu; think %s; max tokens %d\n",
	       c->g.scfg.temperature, c->g.scfg.top_p, c->g.scfg.top_k, (unsigned long long)c->g.scfg.seed, c->think,
	       c->o->max_tokens);
	if (c->g.xs) {
		char line[600];
		printf("experts: %s\n", cli_experts_stats_line(c->g.xs, (uint64_t)c->gen_tok, line, sizeof line));
		printf("%s\n", cli_experts_plan_line(c->g.xs, line, sizeof line));
	}
}

/* 1 = leave the REPL. */
static int command(struct chat *c, char *line)
{
	char *arg = line + strcspn(line, " \t");
	if (*arg) *arg++ = 0;
	arg += strspn(arg, " \t");
	size_t k = strlen(arg);
	while (k && (arg[k - 1] == ' ' || arg[k - 1] == '\t' || arg[k - 1] == '\r')) arg[--k] = 0;
	const char *cmd = line + 1;
	if (!strcmp(cmd, "exit") || !strcmp(cmd, "quit")) return 1;
	if (!strcmp(cmd, "help")) {
		cmd_help(c);
	} else if (!strcmp(cmd, "clear")) {
		cJSON_Delete(c->msgs);
		c->msgs = cJSON_CreateArray();
		cli_gen_reset(&c->g);
		dim(c, "conversation cleared");
	} else if (!strcmp(cmd, "think")) {
		if (!*arg) dim(c, "think: %s", c->think);
		else if (strcmp(arg, "none") && strcmp(arg, "high") && strcmp(arg, "max"))
			fprintf(stderr, "nvmoe chat: /think takes none, high or max (got '%s')\n", arg);
		else {
			snprintf(c->think, sizeof c->think, "%s", arg);
			dim(c, "think: %s", c->think);
		}
	} else if (!strcmp(cmd, "stats")) {
		cmd_stats(c);
	} else if (!strcmp(cmd, "file")) {
		cmd_file(c, arg);
	} else if (!strcmp(cmd, "save") || !strcmp(cmd, "load")) {
		if (!*arg) fprintf(stderr, "nvmoe chat: /%s needs a FILE\n", cmd);
		else if (cmd[0] == 's') cmd_save(c, arg);
		else cmd_load(c, arg);
	} else {
		fprintf(stderr, "nvmoe chat: unknown command '/%s' (/help lists the commands)\n", cmd);
	}
	fflush(stdout);
	fflush(stderr);
	return 0;
}

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: nvmoe chat MODEL [options]\n"
		"  An interactive conversation with the model (readline; history in\n"
		"  $XDG_STATE_HOME/nvmoe/history or ~/.nvmoe_history).  /help inside lists the\n"
		"  commands.  Options as for `nvmoe run`: --think none|high|max --max-tokens N\n"
		"  --temperature F --top-p F --top-k N --seed N --ctx N --chunk N --smooth.\n");
	cli_usage_model_opts(f);
	return rc;
}

int cli_cmd_chat(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_opts_parse(argc, argv, &o);
	if (r == 3) return usage(stdout, 0);
	if (r) return r;
	if ((r = cli_opts_only(&o, CLI_OPTS_MODEL " " CLI_OPTS_AUTO " " CLI_OPTS_GEN " " CLI_OPTS_PREFILL)) || (r = cli_opts_args(&o, 1, 1, "MODEL"))) return r;
	struct chat c = { .o = &o };
	struct nv_err e = {0};
	snprintf(c.think, sizeof c.think, "%s", o.think);
	c.tty_in = isatty(STDIN_FILENO);
	c.tty_out = isatty(STDOUT_FILENO);
	if (cli_gen_open(&c.g, o.args[0], &o, &e) || !(c.msgs = cJSON_CreateArray())) {
		if (!e.code) core_err_set(&e, NV_ENOMEM, "chat", NULL, NULL, "out of memory");
		cli_print_err(&e);
		cli_gen_close(&c.g);
		return 1;
	}
	/* No SA_RESTART would make stdout writes fail with EINTR; select() returns
	 * EINTR either way, which is all the prompt loop needs. */
	struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESTART }, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	if (c.tty_in) {
		rl_catch_signals = 0;
		rl_readline_name = "nvmoe";
		history_open(&c);
	}
	const struct core_config *cf = c.g.c;
	printf("nvmoe chat: %s (%d layers, vocab %d, context %d, think %s).  /help for commands, Ctrl-D to leave.\n",
	       o.args[0], cf->num_hidden_layers, cf->vocab_size, c.g.ctx, c.think);
	fflush(stdout);
	for (;;) {
		char *in;
		r = read_input(&c, &in);
		if (r == IN_EOF) break;
		if (r == IN_INTR) continue;
		history_add(&c, in);
		size_t k = strspn(in, " \t\r\n");
		if (!in[k]) {
			free(in);
			continue;
		}
		if (in[0] == '/' && in[1] != '/') {
			int quit = command(&c, in);
			free(in);
			if (quit) break;
			continue;
		}
		turn(&c, in[0] == '/' ? in + 1 : in);
		free(in);
	}
	if (c.tty_in) fputc('\n', stdout);
	history_close(&c);
	sigaction(SIGINT, &old, NULL);
	core_tok_ids_free(&c.ids);
	free(c.attach);
	cJSON_Delete(c.msgs);
	cli_gen_close(&c.g);
	return 0;
}
