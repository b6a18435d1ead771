/* tests/test_tok_tiny.c - tokenizer checks that need no ../shared: a hand-made
 * tokenizer (tests/data/tok_tiny.json, see make_tok_tiny.py) with DeepSeek's
 * pre-tokenizer.  Expected ids are derived by hand from its 16 merges; expected
 * pieces are the examples of CHAT.md A.3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer.h"
#include "testutil.h"

static struct core_tok *g_tok;

#define B(c) (2 + (c)) /* id of a single byte in tok_tiny.json */

static void expect_ids(const char *text, size_t n, unsigned flags, const int32_t *want, size_t nw)
{
	struct core_tok_ids ids = {0};
	struct nv_err e = {0};
	int rc = core_tok_encode(g_tok, text, n, flags, &ids, &e);
	TU_CHECK(rc == 0, "encode \"%s\": rc %d (%s)", text, rc, e.why);
	if (rc) return;
	TU_CHECK(ids.n == nw, "encode \"%s\": %zu ids, expected %zu", text, ids.n, nw);
	for (size_t i = 0; i < ids.n && i < nw; i++)
		TU_CHECK(ids.v[i] == want[i], "encode \"%s\": id[%zu] got %d expected %d", text, i, ids.v[i], want[i]);
	/* decoding gives the text back */
	char *back;
	size_t bn;
	rc = core_tok_decode(g_tok, ids.v, ids.n, 0, &back, &bn, &e);
	TU_CHECK(rc == 0 && bn == n && !memcmp(back, text, n), "decode(encode(\"%s\")) differs", text);
	if (!rc) free(back);
	core_tok_ids_free(&ids);
}
#define EXPECT(text, flags, ...) do { const int32_t w_[] = {__VA_ARGS__}; \
	expect_ids(text, strlen(text), flags, w_, sizeof w_ / sizeof w_[0]); } while (0)

struct pieces {
	char buf[16][64];
	int n;
};
static int collect(void *ud, const char *p, size_t n)
{
	struct pieces *ps = ud;
	if (ps->n < 16 && n < 64) {
		memcpy(ps->buf[ps->n], p, n);
		ps->buf[ps->n][n] = 0;
	}
	ps->n++;
	return 0;
}

/* want: pieces separated by '|' (none of the examples contains one) */
static void expect_pieces(const char *text, const char *want)
{
	struct pieces ps = {.n = 0};
	struct nv_err e = {0};
	int rc = core_tok_pretokenize(g_tok, text, strlen(text), collect, &ps, &e);
	TU_CHECK(rc == 0, "pretokenize \"%s\": %s", text, e.why);
	char got[512] = "";
	for (int i = 0; i < ps.n && i < 16; i++) {
		if (i) strcat(got, "|");
		strcat(got, ps.buf[i]);
	}
	TU_CHECK(!strcmp(got, want), "pieces of \"%s\": got \"%s\" expected \"%s\"", text, got, want);
}

static void test_pieces(void)
{
	expect_pieces("12345", "123|45");
	expect_pieces("1 + 1 = 2", "1| +| |1| =| |2");
	expect_pieces("abc   123", "abc|   |123");
	expect_pieces("a  \n  b", "a|  \n| | b");
	expect_pieces("你好，世界！", "你好|，|世界|！");
	expect_pieces("x.com", "x|.com");
	expect_pieces("it's", "it|'s");
	expect_pieces(" #include", " #|include");
	expect_pieces(" _name", " _|name");
	expect_pieces("   foo", "  | foo");
	expect_pieces("a;\n", "a|;\n");
	expect_pieces("x >;\n\ny", "x| >;\n\n|y");
	expect_pieces("hello world", "hello| world");
	expect_pieces("trailing  ", "trailing|  ");
	/* ² and ① are \p{N}: cut out by step 1 */
	expect_pieces("x²①y", "x|²①|y");
	/* Oniguruma's \s excludes U+180E (PCRE2's would make the first two one piece) */
	expect_pieces("\xe1\xa0\x8e\n", "\xe1\xa0\x8e|\n");
	/* U+3000 is whitespace; U+9FA6 is outside the CJK class of step 2 */
	expect_pieces("a\xe3\x80\x80" "b", "a|\xe3\x80\x80" "b");
	expect_pieces("\xe9\xbe\xa5\xe9\xbe\xa6", "\xe9\xbe\xa5|\xe9\xbe\xa6");
}

static void test_ids(void)
{
	EXPECT("", 0, );
	EXPECT("hello world", 0, 261, 266);
	EXPECT("aaaaa", 0, 269, 269, B('a'));          /* leftmost first at equal rank */
	EXPECT("     x", 0, 268, B(' '), B('x'));     /* 5 spaces: "    " + " x" */
	EXPECT("    x", 0, 267, B(' '), B(' '), B('x')); /* "   " = [ĠĠ, Ġ] */
	EXPECT("12345", 0, 271, B('4'), B('5'));
	EXPECT("你好", 0, 273, B(0xE5), B(0xA5), B(0xBD));
	EXPECT("<\xef\xbd\x9cUser\xef\xbd\x9c>hello<think>x</think><\xef\xbd\x9c" "eos\xef\xbd\x9c>", 0,
	       302, 261, 300, B('x'), 301, 1);
	/* leftmost-longest: "<｜Us" is a token, "<｜User｜>" a longer one */
	EXPECT("<\xef\xbd\x9cUsa", 0, 303, B('a'));
	EXPECT("a<\xef\xbd\x9cUser\xef\xbd\x9c>", 0, B('a'), 302);
	/* special-token text inside a word still matches (CHAT.md A.6) */
	EXPECT("ab<think>cd", 0, B('a'), B('b'), 300, B('c'), B('d'));
	/* with matching off, added-token text is plain text */
	EXPECT("<think>", CORE_TOK_NO_SPECIAL, B('<'), B('t'), B('h'), B('i'), B('n'), B('k'), B('>'));
	{
		const char nul[] = {'a', 0, 'b'};
		const int32_t w[] = {B('a'), B(0), B('b')};
		expect_ids(nul, 3, 0, w, 3);
	}
}

static void test_decode(void)
{
	struct nv_err e = {0};
	char *s;
	size_t n;
	/* lone lead byte -> U+FFFD; skip-special drops ids 0/1 but keeps <think> */
	int32_t a[] = {B(0xE4), B('x')};
	TU_CHECK(core_tok_decode(g_tok, a, 2, 0, &s, &n, &e) == 0, "decode");
	TU_CHECK(n == 4 && !memcmp(s, "\xef\xbf\xbdx", 4), "E4 x -> got %zu bytes", n);
	free(s);
	int32_t b[] = {0, 261, 300, 1};
	TU_CHECK(core_tok_decode(g_tok, b, 4, CORE_TOK_SKIP_SPECIAL, &s, &n, &e) == 0, "decode");
	TU_CHECK(!strcmp(s, "hello<think>"), "skip special: got \"%s\"", s);
	free(s);
	int32_t bad[] = {5, 100000};
	TU_CHECK(core_tok_decode(g_tok, bad, 2, 0, &s, &n, &e) == NV_ERANGE, "bad id accepted");
	int32_t gap[] = {280}; /* between the merges (<= 273) and the added tokens (>= 300) */
	TU_CHECK(core_tok_decode(g_tok, gap, 1, 0, &s, &n, &e) == NV_ERANGE, "id without a string accepted");

	/* streaming: 你 = E4 BD A0 arrives byte by byte */
	struct core_tok_stream *st;
	TU_CHECK(core_tok_stream_create(g_tok, 0, &st, &e) == 0, "stream create");
	const char *t;
	core_tok_stream_push(st, B(0xE4), &t, &n, &e);
	TU_CHECK(n == 0, "held back: got %zu bytes", n);
	core_tok_stream_push(st, B(0xBD), &t, &n, &e);
	TU_CHECK(n == 0, "held back: got %zu bytes", n);
	core_tok_stream_push(st, B(0xA0), &t, &n, &e);
	TU_CHECK(n == 3 && !memcmp(t, "你", 3), "completed char: got %zu bytes", n);
	core_tok_stream_push(st, B(0xE5), &t, &n, &e);
	core_tok_stream_push(st, B('z'), &t, &n, &e); /* breaks the sequence */
	TU_CHECK(n == 4 && !memcmp(t, "\xef\xbf\xbdz", 4), "broken sequence: got %zu bytes", n);
	core_tok_stream_push(st, B(0xF0), &t, &n, &e);
	core_tok_stream_flush(st, &t, &n);
	TU_CHECK(n == 3 && !memcmp(t, "\xef\xbf\xbd", 3), "flush of a held byte: got %zu bytes", n);
	TU_CHECK(core_tok_stream_push(st, -1, &t, &n, &e) == NV_ERANGE, "stream accepted id -1");
	core_tok_stream_destroy(st);

	TU_CHECK(core_tok_added_id(g_tok, "<think>") == 300, "added id of <think>");
	TU_CHECK(core_tok_added_id(g_tok, "<thin") == -1, "prefix is not a token");
	TU_CHECK(core_tok_is_special(g_tok, 0) && !core_tok_is_special(g_tok, 300), "special flags");
	TU_CHECK(core_tok_n_ids(g_tok) == 304, "n_ids %d expected 304", core_tok_n_ids(g_tok));
}

static void test_bad_text(void)
{
	static const char *const bad[] = {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe4\xbd", "\xf4\x90\x80\x80"};
	static const size_t at[] = {1, 0, 0, 0, 0};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct core_tok_ids ids = {0};
		struct nv_err e = {0};
		int rc = core_tok_encode(g_tok, bad[i], strlen(bad[i]), 0, &ids, &e);
		char want[64];
		snprintf(want, sizeof want, "byte offset %zu", at[i]);
		TU_CHECK(rc == NV_EINVAL && strstr(e.why, "invalid UTF-8") && strstr(e.why, want),
			 "bad UTF-8 case %zu: rc %d why \"%s\"", i, rc, e.why);
		core_tok_ids_free(&ids);
	}
}

/* Loader errors: each a clear message, never a crash. */
static void expect_load_fail(const char *json, int code, const char *needle)
{
	struct core_tok *t = (struct core_tok *)1;
	struct nv_err e = {0};
	int rc = core_tok_load_mem(json, strlen(json), "x.json", &t, &e);
	char buf[2048];
	TU_CHECK(rc == code && t == NULL && strstr(core_err_str(&e, buf, sizeof buf), needle),
		 "load of bad json: rc %d (want %d), message \"%s\" (want \"%s\")", rc, code,
		 core_err_str(&e, buf, sizeof buf), needle);
}

static void test_bad_files(const char *tiny, size_t n)
{
	struct nv_err e = {0};
	struct core_tok *t;
	TU_CHECK(core_tok_load("/nonexistent/dir", &t, &e) < 0 && t == NULL, "missing path loaded");
	TU_CHECK(strstr(e.why, "cannot access") != NULL, "missing path message: %s", e.why);
	TU_CHECK(core_tok_load("/", &t, &e) == NV_EMISSING, "directory without tokenizer.json: %s", e.why);
	expect_load_fail("{\"model\": ", NV_EINVAL, "not valid JSON");
	expect_load_fail("[1, 2]", NV_EINVAL, "not a JSON object");
	expect_load_fail("{}", NV_EINVAL, "missing \"model\"");
	expect_load_fail("{\"model\": {\"type\": \"WordPiece\"}}", NV_EUNSUPPORTED, "only \"BPE\"");
	/* truncations of the real file: all fail cleanly */
	for (size_t cut = 1; cut < n; cut += n / 37 + 1) {
		char *p = malloc(cut + 1);
		memcpy(p, tiny, cut);
		p[cut] = 0;
		t = NULL;
		int rc = core_tok_load_mem(p, cut, "cut.json", &t, &e);
		TU_CHECK(rc < 0 && t == NULL, "truncated at %zu bytes: loaded (rc %d)", cut, rc);
		free(p);
	}
	/* edits of the good file */
	struct { const char *from, *to; int code; const char *needle; } ed[] = {
		{"\"h e\"", "\"h q\"", NV_EINVAL, "merged symbol"},
		{"\"h e\"", "\"he\"", NV_EINVAL, "separated by one space"},
		{"\"behavior\": \"Isolated\"", "\"behavior\": \"Contiguous\"", NV_EUNSUPPORTED, "Isolated or Removed"},
		{"\"Regex\": \"\\\\p{N}{1,3}\"", "\"Regex\": \"\\\\p{N\"", NV_EINVAL, "cannot compile"},
		{"\"dropout\": null", "\"dropout\": 0.1", NV_EUNSUPPORTED, "dropout"},
		{"\"lstrip\": false", "\"lstrip\": true", NV_EUNSUPPORTED, "lstrip"},
		{"\"ĉ\": 11", "\"ĉx\": 11", NV_EINVAL, "byte 0x09"},
	};
	for (size_t i = 0; i < sizeof ed / sizeof ed[0]; i++) {
		const char *at = strstr(tiny, ed[i].from);
		TU_CHECK(at != NULL, "edit %zu: \"%s\" not in tok_tiny.json", i, ed[i].from);
		if (!at) continue;
		size_t fl = strlen(ed[i].from), tl = strlen(ed[i].to);
		char *p = malloc(n + tl + 1);
		size_t pre = (size_t)(at - tiny);
		memcpy(p, tiny, pre);
		memcpy(p + pre, ed[i].to, tl);
		strcpy(p + pre + tl, at + fl);
		expect_load_fail(p, ed[i].code, ed[i].needle);
		free(p);
	}
}

int main(void)
{
	const char *dir = getenv("NV_TESTDATA");
	char path[4096];
	snprintf(path, sizeof path, "%s/tok_tiny.json", dir ? dir : "tests/data");
	size_t n;
	char *tiny = tu_read_file(path, &n);
	if (!tiny) return 1;
	struct nv_err e = {0};
	if (core_tok_load(path, &g_tok, &e)) {
		char buf[2048];
		fprintf(stderr, "FAIL: %s\n", core_err_str(&e, buf, sizeof buf));
		return 1;
	}
	test_pieces();
	test_ids();
	test_decode();
	test_bad_text();
	test_bad_files(tiny, n);
	core_tok_destroy(g_tok);
	free(tiny);
	TU_DONE();
}
