/* tests/test_repl_show.c - the reasoning/answer display of `nvmoe run` / `nvmoe chat`
 * (cli/gen.h cli_show): a completion streamed in pieces cut at every byte position
 * (and byte by byte) must show and keep exactly the parts known in advance:
 * reasoning = text before "</think>", answer = text after it, markers or ANSI dim
 * around the reasoning, nothing held back at the end. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/gen.h"
#include "testutil.h"

/* Feed text cut at the given positions (cuts[0..nc) ascending); return the shown
 * bytes (malloc'ed) and the kept parts. */
static char *feed(const char *text, const size_t *cuts, int nc, int tty, int thinking, char **reason,
		  char **answer)
{
	char *out = NULL;
	size_t on = 0;
	FILE *f = open_memstream(&out, &on);
	struct cli_show s;
	cli_show_begin(&s, f, tty, thinking);
	size_t n = strlen(text), p = 0;
	for (int i = 0; i <= nc; i++) {
		size_t q = i < nc ? cuts[i] : n;
		cli_show_emit(&s, text + p, q - p);
		p = q;
	}
	cli_show_end(&s);
	fclose(f);
	*reason = strdup(s.reasoning ? s.reasoning : "");
	*answer = strdup(s.answer ? s.answer : "");
	cli_show_free(&s);
	return out;
}

struct tcase {
	const char *text;
	int thinking, tty;
	const char *shown, *reason, *answer;
};

static const struct tcase g_cases[] = {
	/* thinking mode, marker lines */
	{"abc</think>def", 1, 0, "[reasoning]\nabc\n[answer]\ndef", "abc", "def"},
	{"</think>only answer", 1, 0, "[reasoning]\n\n[answer]\nonly answer", "", "only answer"},
	{"still thinking </thi", 1, 0, "[reasoning]\nstill thinking </thi", "still thinking </thi", ""},
	{"a</think>b</think>c", 1, 0, "[reasoning]\na\n[answer]\nb</think>c", "a", "b</think>c"},
	{"x < y </thinker> z</think>\xe4\xbd\xa0", 1, 0, "[reasoning]\nx < y </thinker> z\n[answer]\n\xe4\xbd\xa0",
	 "x < y </thinker> z", "\xe4\xbd\xa0"},
	/* thinking mode on a terminal: dim reasoning */
	{"abc</think>def", 1, 1, "\033[2mabc\033[0m\ndef", "abc", "def"},
	{"abc", 1, 1, "\033[2mabc\033[0m", "abc", ""},
	/* chat mode: everything is answer, shown verbatim */
	{"abc</think>def", 0, 0, "abc</think>def", "", "abc</think>def"},
	{"tail <", 0, 1, "tail <", "", "tail <"},
	{"", 1, 0, "", "", ""},
};

static void check(const struct tcase *t, const size_t *cuts, int nc, const char *how)
{
	char *r, *a;
	char *out = feed(t->text, cuts, nc, t->tty, t->thinking, &r, &a);
	TU_CHECK(!strcmp(out, t->shown), "'%s' (%s, thinking %d tty %d): shown '%s', expected '%s'", t->text, how,
		 t->thinking, t->tty, out, t->shown);
	TU_CHECK(!strcmp(r, t->reason), "'%s' (%s): reasoning '%s', expected '%s'", t->text, how, r, t->reason);
	TU_CHECK(!strcmp(a, t->answer), "'%s' (%s): answer '%s', expected '%s'", t->text, how, a, t->answer);
	free(out);
	free(r);
	free(a);
}

int main(void)
{
	for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) {
		const struct tcase *t = &g_cases[i];
		size_t n = strlen(t->text);
		check(t, NULL, 0, "whole");
		for (size_t c = 0; c <= n; c++) {
			char how[32];
			snprintf(how, sizeof how, "cut at %zu", c);
			check(t, &c, 1, how);
		}
		size_t *all = malloc(sizeof(size_t) * (n + 1));
		for (size_t c = 0; c < n; c++) all[c] = c + 1;
		check(t, all, n ? (int)n - 1 : 0, "byte by byte");
		free(all);
	}
	/* Held back while undecided: after "abc</th" only "abc" may be visible. */
	char *out = NULL;
	size_t on = 0;
	FILE *f = open_memstream(&out, &on);
	struct cli_show s;
	cli_show_begin(&s, f, 0, 1);
	cli_show_emit(&s, "abc</th", 7);
	fflush(f);
	TU_CHECK(!strcmp(out, "[reasoning]\nabc"), "after 'abc</th': shown '%s', expected '[reasoning]\\nabc'", out);
	cli_show_emit(&s, "ink>z", 5);
	fflush(f);
	TU_CHECK(!strcmp(out, "[reasoning]\nabc\n[answer]\nz"), "after 'ink>z': shown '%s'", out);
	cli_show_end(&s);
	cli_show_free(&s);
	fclose(f);
	free(out);
	TU_DONE();
}
