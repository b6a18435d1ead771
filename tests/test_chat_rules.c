/* tests/test_chat_rules.c - one case per rule of CHAT.md Part B (rendering B.2-B.10,
 * JSON B.9, parsing B.11), with the expected prompt written by hand from the spec.
 * Self-contained (no ../shared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/chat.h"
#include "testutil.h"

#define BOS CORE_CHAT_BOS
#define EOS CORE_CHAT_EOS
#define U CORE_CHAT_USER
#define A CORE_CHAT_ASSISTANT
#define TH "<think>"
#define ETH "</think>"
#define D "\xef\xbd\x9c" "DSML\xef\xbd\x9c"
#define LR "<\xef\xbd\x9clatest_reminder\xef\xbd\x9c>"

static const char k_think_max[] =
	"Reasoning Effort: Absolute maximum with no shortcuts permitted.\nYou MUST be very thorough in your "
	"thinking and comprehensively decompose the problem to resolve the root cause, rigorously "
	"stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
	"Explicitly write out your entire deliberation process, documenting every intermediate step, "
	"considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
	"unchecked.\n\n";

/* Print the first differing byte with some context. */
static void diff(const char *name, const char *got, size_t gn, const char *want)
{
	size_t wn = strlen(want), i = 0;
	while (i < gn && i < wn && got[i] == want[i]) i++;
	size_t from = i > 30 ? i - 30 : 0;
	TU_CHECK(0, "%s: differs at byte %zu (got %zu bytes, expected %zu)\n  got:  ...%.*s\n  want: ...%.*s", name, i,
		 gn, wn, (int)(gn - from < 90 ? gn - from : 90), got + from, (int)(wn - from < 90 ? wn - from : 90),
		 want + from);
}

/* req: a request file (JSON); want: the prompt, or NULL when an error is expected
 * whose message contains err. */
static void check_render(const char *name, const char *req, const char *want, const char *err)
{
	struct core_chat_req *r = NULL;
	struct nv_err e = {0};
	char *out = NULL, buf[2048];
	size_t n = 0;
	int rc = core_chat_req_parse(req, strlen(req), name, &r, &e);
	if (!rc) rc = core_chat_render(r->messages, r->context, &r->opts, &out, &n, &e);
	if (want) {
		TU_CHECK(rc == 0, "%s: failed: %s", name, core_err_str(&e, buf, sizeof buf));
		if (!rc && (n != strlen(want) || memcmp(out, want, n))) diff(name, out, n, want);
	} else {
		TU_CHECK(rc == NV_EINVAL, "%s: expected an error, got rc %d", name, rc);
		const char *msg = core_err_str(&e, buf, sizeof buf);
		TU_CHECK(rc == 0 || strstr(msg, err), "%s: message \"%s\" lacks \"%s\"", name, msg, err);
	}
	free(out);
	core_chat_req_destroy(r);
}

static void test_modes(void)
{
	const char *su = "[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Q\"}]";
	char req[512];
	check_render("non-think", su, BOS "S" U "Q" A ETH, NULL);
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"thinking\"}", su);
	check_render("think high", req, BOS "S" U "Q" A TH, NULL);
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"thinking\", \"reasoning_effort\": \"high\"}", su);
	check_render("effort high = none", req, BOS "S" U "Q" A TH, NULL);
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"thinking\", \"reasoning_effort\": \"max\"}", su);
	char want[2048];
	snprintf(want, sizeof want, "%s%sS%sQ%s%s", BOS, k_think_max, U, A, TH);
	check_render("think max", req, want, NULL);
	TU_CHECK(strlen(k_think_max) == 476, "Think-Max text is %zu bytes, CHAT.md says 476", strlen(k_think_max));
	/* the prefix only in thinking mode */
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"chat\", \"reasoning_effort\": \"max\"}", su);
	check_render("max ignored in chat mode", req, BOS "S" U "Q" A ETH, NULL);
	snprintf(req, sizeof req, "{\"messages\": %s, \"add_default_bos_token\": false}", su);
	check_render("no bos", req, "S" U "Q" A ETH, NULL);
	check_render("bad mode", "{\"messages\": [], \"thinking_mode\": \"deep\"}", NULL, "thinking");
	check_render("bad effort", "{\"messages\": [], \"reasoning_effort\": \"low\"}", NULL, "reasoning_effort");
	check_render("empty", "[]", BOS, NULL);
	check_render("system only", "[{\"role\": \"system\"}]", BOS, NULL);
}

static const char k_conv[] =
	"[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"u1\"},"
	" {\"role\": \"assistant\", \"reasoning_content\": \"r1\", \"content\": \"a1\"},"
	" {\"role\": \"user\", \"content\": \"u2\"},"
	" {\"role\": \"assistant\", \"reasoning_content\": \"r2\", \"content\": \"a2\"}]";

static void test_drop_thinking(void)
{
	char req[1024];
	/* B.6 row 1: chat mode, content only, every user turn ends </think> */
	check_render("chat mode history", k_conv, BOS "S" U "u1" A ETH "a1" EOS U "u2" A ETH "a2" EOS, NULL);
	/* row 2: thinking, drop (default): earlier reasoning removed */
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"thinking\"}", k_conv);
	check_render("drop thinking", req, BOS "S" U "u1" A ETH "a1" EOS U "u2" A TH "r2" ETH "a2" EOS, NULL);
	/* row 3: drop_thinking false keeps everything */
	snprintf(req, sizeof req, "{\"messages\": %s, \"thinking_mode\": \"thinking\", \"drop_thinking\": false}", k_conv);
	check_render("keep thinking", req, BOS "S" U "u1" A TH "r1" ETH "a1" EOS U "u2" A TH "r2" ETH "a2" EOS, NULL);
	/* row 3: tools anywhere force drop off */
	snprintf(req, sizeof req,
		 "{\"thinking_mode\": \"thinking\", \"messages\": [{\"role\": \"system\", \"content\": \"S\", \"tools\": "
		 "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}, {\"role\": \"user\", \"content\": \"u1\"},"
		 " {\"role\": \"assistant\", \"reasoning_content\": \"r1\", \"content\": \"a1\"},"
		 " {\"role\": \"user\", \"content\": \"u2\"}]}");
	struct core_chat_req *r;
	struct nv_err e = {0};
	char *out;
	size_t n;
	TU_CHECK(core_chat_req_parse(req, strlen(req), "tools", &r, &e) == 0, "parse");
	TU_CHECK(core_chat_render(r->messages, NULL, &r->opts, &out, &n, &e) == 0, "render");
	const char *tail = U "u1" A TH "r1" ETH "a1" EOS U "u2" A TH;
	TU_CHECK(n > strlen(tail) && !strcmp(out + n - strlen(tail), tail), "tools keep reasoning: got ...%s",
		 n > 80 ? out + n - 80 : out);
	TU_CHECK(strstr(out, "\n\n## Tools\n\n") && strstr(out, "{\"name\": \"f\"}\n\nYou MUST strictly follow"),
		 "tools block missing");
	free(out);
	core_chat_req_destroy(r);
	/* developer turns before the last user disappear; assistants lose reasoning */
	snprintf(req, sizeof req,
		 "{\"thinking_mode\": \"thinking\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"},"
		 " {\"role\": \"developer\", \"content\": \"d\"}, {\"role\": \"assistant\", \"reasoning_content\": \"r\","
		 " \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"u\"}]}");
	check_render("developer dropped", req, BOS "s" "a" EOS U "u" A TH, NULL);
	/* ... but not in chat mode, where a developer turn renders as a user turn */
	check_render("developer chat",
		     "[{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"developer\", \"content\": \"d\"},"
		     " {\"role\": \"assistant\", \"reasoning_content\": \"r\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"u\"}]",
		     BOS "s" U "d" A ETH "a" EOS U "u" A ETH, NULL);
}

static void test_roles(void)
{
	check_render("latest_reminder",
		     "[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"latest_reminder\", \"content\": \"2026-02-21,App\"},"
		     " {\"role\": \"user\", \"content\": \"q\"}]",
		     BOS "S" LR "2026-02-21,App" U "q" A ETH, NULL);
	/* a user turn directly followed by a reminder also gets the generation prompt */
	check_render("user then reminder",
		     "[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"latest_reminder\", \"content\": \"x\"}]",
		     BOS U "q" A ETH LR "x", NULL);
	check_render("developer",
		     "[{\"role\": \"developer\", \"content\": \"dev\", \"response_format\": {\"type\": \"json_object\"}}]",
		     BOS U "dev\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
			 "{\"type\": \"json_object\"}" A ETH, NULL);
	check_render("developer empty", "[{\"role\": \"developer\", \"content\": \"\"}]", NULL, "messages[0].content");
	check_render("unknown role", "[{\"role\": \"robot\", \"content\": \"x\"}]", NULL, "messages[0].role");
	check_render("missing role", "[{\"content\": \"x\"}]", NULL, "missing role");
	check_render("not an object", "[42]", NULL, "JSON object");
	check_render("content list", "[{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]", NULL, "content");
	check_render("bad utf8", "[{\"role\": \"user\", \"content\": \"a\xff\"}]", NULL, "messages[0].content: invalid UTF-8");
	check_render("not json", "{\"messages\": [", NULL, "not valid JSON");
	check_render("trailing data", "[] x", NULL, "after the JSON value");
	check_render("no messages", "{\"tools\": []}", NULL, "messages");
	check_render("wo_eos", "[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"par\", \"wo_eos\": true}]",
		     BOS U "q" A ETH "par", NULL);
	check_render("null content", "[{\"role\": \"user\", \"content\": null}, {\"role\": \"assistant\"}]",
		     BOS U A ETH EOS, NULL);
	/* context: earlier messages influence but are not rendered; no BOS */
	check_render("context",
		     "{\"context\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"u1\"},"
		     " {\"role\": \"assistant\", \"content\": \"a1\"}], \"messages\": [{\"role\": \"user\", \"content\": \"u2\"}]}",
		     U "u2" A ETH, NULL);
}

static void test_tools(void)
{
	/* tool calls: string and non-string arguments, JSON as Python prints it */
	check_render("dsml calls",
		     "[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
		     "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
		     "\"{\\\"s\\\": \\\"a \\\\\\\"b\\\\\\\" <c>\\\\n\\\", \\\"n\\\": 5, \\\"x\\\": 1.50, \\\"e\\\": 1e5, \\\"l\\\": [1, \\\"\\u00e9\\\"],"
		     " \\\"o\\\": {\\\"k\\\": null, \\\"b\\\": true}}\"}},"
		     "{\"type\": \"function\", \"function\": {\"name\": \"g\", \"arguments\": \"not json\"}}]}]",
		     BOS U "q" A ETH "\n\n<" D "tool_calls>\n<" D "invoke name=\"f\">\n"
		     "<" D "parameter name=\"s\" string=\"true\">a \"b\" <c>\n</" D "parameter>\n"
		     "<" D "parameter name=\"n\" string=\"false\">5</" D "parameter>\n"
		     "<" D "parameter name=\"x\" string=\"false\">1.5</" D "parameter>\n"
		     "<" D "parameter name=\"e\" string=\"false\">100000.0</" D "parameter>\n"
		     "<" D "parameter name=\"l\" string=\"false\">[1, \"\xc3\xa9\"]</" D "parameter>\n"
		     "<" D "parameter name=\"o\" string=\"false\">{\"k\": null, \"b\": true}</" D "parameter>\n"
		     "</" D "invoke>\n<" D "invoke name=\"g\">\n"
		     "<" D "parameter name=\"arguments\" string=\"true\">not json</" D "parameter>\n"
		     "</" D "invoke>\n</" D "tool_calls>" EOS,
		     NULL);
	check_render("call without name",
		     "[{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"arguments\": \"{}\"}}]}]", NULL,
		     "tool_calls[0].function.name");
	/* tool results: merged into one user turn, sorted by call order, user text joins */
	check_render("tool results",
		     "[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
		     "{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}},"
		     "{\"id\": \"c2\", \"type\": \"function\", \"function\": {\"name\": \"g\", \"arguments\": \"{}\"}}]},"
		     " {\"role\": \"tool\", \"tool_call_id\": \"c2\", \"content\": \"R2\"},"
		     " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": [{\"type\": \"text\", \"text\": \"R1\"}, {\"type\": \"image\"}]},"
		     " {\"role\": \"user\", \"content\": \"more\"}]",
		     BOS U "q" A ETH "\n\n<" D "tool_calls>\n<" D "invoke name=\"f\">\n\n</" D "invoke>\n<" D
		     "invoke name=\"g\">\n\n</" D "invoke>\n</" D "tool_calls>" EOS
		     U "<tool_result>R1\n\n[Unsupported image]</tool_result>\n\n<tool_result>R2</tool_result>\n\nmore" A ETH,
		     NULL);
	/* B.9 serialization of a tool schema */
	struct core_chat_req *r;
	struct nv_err e = {0};
	char *out;
	size_t n;
	const char *req = "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"t\", \"p\": {\"z\": 1, \"a\": -0,"
			  " \"f\": 1.0, \"g\": 1e-5, \"h\": 1E100, \"i\": 123456789012345678901234567890, \"j\": 0.1, \"k\": 1e16,"
			  " \"m\": 1e15, \"n\": 0.0001, \"s\": \"q\\\"\\\\/\\n\\r\\t\\b\\f\\u0001\\u007f\\u00e9\\ud83c\\udf0d\","
			  " \"a\": 2}}}], \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
	TU_CHECK(core_chat_req_parse(req, strlen(req), "b9", &r, &e) == 0, "parse b9");
	TU_CHECK(core_chat_render(r->messages, NULL, &r->opts, &out, &n, &e) == 0, "render b9: %s", e.why);
	/* top-level tools: attached to an inserted empty system message (no system given) */
	const char *want = "{\"name\": \"t\", \"p\": {\"z\": 1, \"a\": 2, \"f\": 1.0, \"g\": 1e-05, \"h\": 1e+100,"
			   " \"i\": 123456789012345678901234567890, \"j\": 0.1, \"k\": 1e+16, \"m\": 1000000000000000.0,"
			   " \"n\": 0.0001, \"s\": \"q\\\"\\\\/\\n\\r\\t\\b\\f\\u0001\x7f\xc3\xa9\xf0\x9f\x8c\x8d\"}}\n\nYou MUST";
	TU_CHECK(out && strstr(out, want), "B.9 serialization: got %s", out ? strstr(out, "{\"name\"") : "(null)");
	TU_CHECK(out && !strncmp(out, BOS "\n\n## Tools\n\n", strlen(BOS) + 12), "tools on an empty system message");
	free(out);
	core_chat_req_destroy(r);
}

static void test_tasks(void)
{
	static const struct { const char *task, *end_think, *end_chat; } t[] = {
		{"action", A TH "<\xef\xbd\x9c" "action\xef\xbd\x9c>", A ETH "<\xef\xbd\x9c" "action\xef\xbd\x9c>"},
		{"query", "<\xef\xbd\x9cquery\xef\xbd\x9c>", "<\xef\xbd\x9cquery\xef\xbd\x9c>"},
		{"authority", "<\xef\xbd\x9c" "authority\xef\xbd\x9c>", "<\xef\xbd\x9c" "authority\xef\xbd\x9c>"},
		{"domain", "<\xef\xbd\x9c" "domain\xef\xbd\x9c>", "<\xef\xbd\x9c" "domain\xef\xbd\x9c>"},
		{"read_url", "<\xef\xbd\x9cread_url\xef\xbd\x9c>", "<\xef\xbd\x9cread_url\xef\xbd\x9c>"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char req[512], want[512], name[64];
		for (int mode = 0; mode < 2; mode++) {
			snprintf(req, sizeof req,
				 "{\"thinking_mode\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"p\", \"task\": \"%s\"},"
				 " {\"role\": \"assistant\", \"reasoning_content\": \"ignored\", \"content\": \"Search\"}]}",
				 mode ? "thinking" : "chat", t[i].task);
			/* the answer to a task never gets a reasoning part */
			snprintf(want, sizeof want, "%s%sp%sSearch%s", BOS, U, mode ? t[i].end_think : t[i].end_chat, EOS);
			snprintf(name, sizeof name, "task %s (%s)", t[i].task, mode ? "thinking" : "chat");
			check_render(name, req, want, NULL);
		}
	}
	check_render("task title",
		     "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\", \"task\": \"title\"}]",
		     BOS U "hi" A ETH "hello" EOS "<\xef\xbd\x9ctitle\xef\xbd\x9c>", NULL);
	check_render("unknown task", "[{\"role\": \"user\", \"content\": \"p\", \"task\": \"summarize\"}]", NULL, "task");
	/* a user message with a task does not absorb the next user text */
	check_render("task stops merging",
		     "[{\"role\": \"user\", \"content\": \"a\", \"task\": \"query\"}, {\"role\": \"user\", \"content\": \"b\"}]",
		     BOS U "a" U "b" A ETH, NULL);
}

/* ------------------------------------------------------------------------- */

static void check_parse(const char *name, const char *text, enum core_chat_mode mode, const char *json,
			const char *err)
{
	struct core_chat_reply r;
	struct nv_err e = {0};
	char buf[2048];
	int rc = core_chat_parse_reply(text, strlen(text), mode, 0, &r, &e);
	if (json) {
		TU_CHECK(rc == 0, "%s: parse failed: %s", name, core_err_str(&e, buf, sizeof buf));
		if (rc) return;
		char *js = core_chat_reply_json(&r);
		TU_CHECK(js && !strcmp(js, json), "%s:\n  got  %s\n  want %s", name, js, json);
		free(js);
		core_chat_reply_free(&r);
	} else {
		TU_CHECK(rc == NV_EINVAL, "%s: expected malformed, got rc %d", name, rc);
		const char *msg = core_err_str(&e, buf, sizeof buf);
		TU_CHECK(rc == 0 || strstr(msg, err), "%s: message \"%s\" lacks \"%s\"", name, msg, err);
		if (!rc) core_chat_reply_free(&r);
	}
}

#define CALLS_OPEN "\n\n<" D "tool_calls>\n"
#define CALLS_CLOSE "</" D "tool_calls>"

static void test_parse(void)
{
	check_parse("thinking", "I think.</think>Answer." EOS, CORE_CHAT_MODE_THINKING,
		    "{\"role\": \"assistant\", \"content\": \"Answer.\", \"reasoning_content\": \"I think.\", \"tool_calls\": []}",
		    NULL);
	check_parse("chat", "Just text\nwith <b>html</b>." EOS, CORE_CHAT_MODE_CHAT,
		    "{\"role\": \"assistant\", \"content\": \"Just text\\nwith <b>html</b>.\", \"reasoning_content\": \"\", \"tool_calls\": []}",
		    NULL);
	const char *calls = "r</think>" CALLS_OPEN "<" D "invoke name=\"f\">\n"
			    "<" D "parameter name=\"a\" string=\"true\">x \"y\"\nz<1></" D "parameter>\n"
			    "<" D "parameter name=\"b\" string=\"false\">[1, {\"k\": 2}]</" D "parameter>\n"
			    "</" D "invoke>\n<" D "invoke name=\"g\">\n</" D "invoke>\n" CALLS_CLOSE EOS;
	check_parse("calls", calls, CORE_CHAT_MODE_THINKING,
		    "{\"role\": \"assistant\", \"content\": \"\", \"reasoning_content\": \"r\", \"tool_calls\": ["
		    "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
		    "\"{\\\"a\\\": \\\"x \\\\\\\"y\\\\\\\"\\\\nz<1>\\\", \\\"b\\\": [1, {\\\"k\\\": 2}]}\"}}, "
		    "{\"type\": \"function\", \"function\": {\"name\": \"g\", \"arguments\": \"{}\"}}]}",
		    NULL);
	/* calls without EOS at the very end are accepted (B.11 step 3) */
	check_parse("calls no eos", "c" CALLS_OPEN "<" D "invoke name=\"g\">\n</" D "invoke>\n" CALLS_CLOSE,
		    CORE_CHAT_MODE_CHAT,
		    "{\"role\": \"assistant\", \"content\": \"c\", \"reasoning_content\": \"\", \"tool_calls\": ["
		    "{\"type\": \"function\", \"function\": {\"name\": \"g\", \"arguments\": \"{}\"}}]}",
		    NULL);
	check_parse("no eos", "text", CORE_CHAT_MODE_CHAT, NULL, "does not end");
	check_parse("no </think>", "reasoning only" EOS, CORE_CHAT_MODE_THINKING, NULL, "no </think>");
	check_parse("calls before </think>", "r" CALLS_OPEN CALLS_CLOSE EOS, CORE_CHAT_MODE_THINKING, NULL,
		    "tool calls before </think>");
	check_parse("text after eos", "a" EOS "b", CORE_CHAT_MODE_CHAT, NULL, "unexpected text after");
	check_parse("think in content", "a<think>b" EOS, CORE_CHAT_MODE_CHAT, NULL, "reserved string");
	check_parse("bos in reasoning", "a" BOS "</think>b" EOS, CORE_CHAT_MODE_THINKING, NULL, "reserved string");
	check_parse("repeated key",
		    "" CALLS_OPEN "<" D "invoke name=\"f\">\n<" D "parameter name=\"a\" string=\"true\">1</" D "parameter>\n<" D
		    "parameter name=\"a\" string=\"true\">2</" D "parameter>\n</" D "invoke>\n" CALLS_CLOSE EOS,
		    CORE_CHAT_MODE_CHAT, NULL, "repeated parameter");
	check_parse("bad string attr",
		    "" CALLS_OPEN "<" D "invoke name=\"f\">\n<" D "parameter name=\"a\" string=\"yes\">1</" D "parameter>\n</" D
		    "invoke>\n" CALLS_CLOSE EOS,
		    CORE_CHAT_MODE_CHAT, NULL, "string=");
	check_parse("missing newline", "" CALLS_OPEN "<" D "invoke name=\"f\">" "</" D "invoke>\n" CALLS_CLOSE EOS,
		    CORE_CHAT_MODE_CHAT, NULL, "name=");
	check_parse("unterminated", "" CALLS_OPEN "<" D "invoke name=\"f\">\n<" D "parameter name=\"a\" string=\"true\">1",
		    CORE_CHAT_MODE_CHAT, NULL, "unterminated");
	check_parse("junk after calls", "" CALLS_OPEN CALLS_CLOSE "junk", CORE_CHAT_MODE_CHAT, NULL, "unexpected text");
	check_parse("bad utf8", "a\xc3" EOS, CORE_CHAT_MODE_CHAT, NULL, "invalid UTF-8");
	check_parse("empty", "", CORE_CHAT_MODE_CHAT, NULL, "does not end");

	struct core_chat_reply r;
	struct nv_err e = {0};
	TU_CHECK(core_chat_parse_reply("cut off", 7, CORE_CHAT_MODE_CHAT, CORE_CHAT_ALLOW_NO_EOS, &r, &e) == 0 &&
		 !strcmp(r.content, "cut off"), "ALLOW_NO_EOS");
	core_chat_reply_free(&r);

	/* holdback for streaming */
	TU_CHECK(core_chat_holdback("abc</thi", 8) == 5, "holdback </thi: %zu", core_chat_holdback("abc</thi", 8));
	TU_CHECK(core_chat_holdback("abc\n\n<", 6) == 3, "holdback \\n\\n<: %zu", core_chat_holdback("abc\n\n<", 6));
	TU_CHECK(core_chat_holdback("abc", 3) == 0, "holdback none");
	TU_CHECK(core_chat_holdback("x<\xef\xbd\x9c" "end", 7) == 6, "holdback EOS prefix");
}

/* Render an assistant turn, then parse it back: same reasoning, content, calls. */
static void test_roundtrip(void)
{
	const char *req = "{\"thinking_mode\": \"thinking\", \"drop_thinking\": false, \"add_default_bos_token\": false,"
			  " \"messages\": [{\"role\": \"assistant\", \"reasoning_content\": \"why\\nnot\", \"content\": \"ok\","
			  " \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\":"
			  " \"{\\\"q\\\": \\\"\\u4f60\\u597d\\\", \\\"n\\\": [1, 2.5]}\"}}]}]}";
	struct core_chat_req *r;
	struct nv_err e = {0};
	char *out;
	size_t n;
	TU_CHECK(core_chat_req_parse(req, strlen(req), "rt", &r, &e) == 0, "parse rt: %s", e.why);
	TU_CHECK(core_chat_render(r->messages, NULL, &r->opts, &out, &n, &e) == 0, "render rt: %s", e.why);
	struct core_chat_reply rep;
	TU_CHECK(core_chat_parse_reply(out, n, CORE_CHAT_MODE_THINKING, 0, &rep, &e) == 0, "reparse: %s", e.why);
	TU_CHECK(!strcmp(rep.reasoning, "why\nnot") && !strcmp(rep.content, "ok") && rep.n_calls == 1 &&
		 !strcmp(rep.calls[0].name, "f") && !strcmp(rep.calls[0].arguments, "{\"q\": \"你好\", \"n\": [1, 2.5]}"),
		 "round trip: reasoning \"%s\" content \"%s\" calls %d args %s", rep.reasoning, rep.content, rep.n_calls,
		 rep.n_calls ? rep.calls[0].arguments : "-");
	core_chat_reply_free(&rep);
	free(out);
	core_chat_req_destroy(r);
}

int main(void)
{
	test_modes();
	test_drop_thinking();
	test_roles();
	test_tools();
	test_tasks();
	test_parse();
	test_roundtrip();
	TU_DONE();
}
