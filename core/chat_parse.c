/* core/chat_parse.c - parsing a completion into reasoning, content and DSML tool
 * calls (CHAT.md B.11), and the OpenAI-form JSON of the result. */
#define _GNU_SOURCE
#include "chat.h"
#include "chat_internal.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D CORE_CHAT_DSML
static const char k_open_calls[] = "\n\n<" D "tool_calls";
static const char k_close_calls[] = "</" D "tool_calls>";
static const char k_invoke[] = "<" D "invoke";
static const char k_end_invoke[] = "</" D "invoke";
static const char k_param[] = "<" D "parameter";
static const char k_end_param[] = "/" D "parameter";

struct pstate {
	const char *s;
	size_t n;
	struct nv_err *e;
};

static const char *find(const struct pstate *p, size_t from, const char *needle)
{
	size_t ln = strlen(needle);
	if (from > p->n) return NULL;
	return memmem(p->s + from, p->n - from, needle, ln);
}

/* The earlier of two markers from `from`; *which = 0/1, -1 if neither. */
static size_t earlier(const struct pstate *p, size_t from, const char *a, const char *b, int *which)
{
	const char *x = find(p, from, a), *y = find(p, from, b);
	if (x && (!y || x <= y)) { *which = 0; return (size_t)(x - p->s); }
	if (y) { *which = 1; return (size_t)(y - p->s); }
	*which = -1;
	return p->n;
}

static int malformed(const struct pstate *p, size_t at, const char *fmt, const char *what)
{
	/* an excerpt of up to 24 bytes, cut at a character boundary */
	size_t k = p->n - at < 24 ? p->n - at : 24;
	while (k && at + k < p->n && ((unsigned char)p->s[at + k] & 0xC0) == 0x80) k--;
	char ctx[64];
	size_t o = 0;
	for (size_t i = at; i < at + k; i++) {
		unsigned char c = (unsigned char)p->s[i];
		if (c == '\n') { ctx[o++] = '\\'; ctx[o++] = 'n'; }
		else ctx[o++] = (char)(c < 0x20 ? '?' : c);
	}
	ctx[o] = 0;
	char why[256];
	snprintf(why, sizeof why, fmt, what);
	return core_err_set(p->e, NV_EINVAL, "completion", NULL,
			    "the model output does not follow the DSML format; treat it as plain text",
			    "malformed at byte %zu (\"%s...\"): %s", at, ctx, why);
}

static char *dup_range(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (!d) return NULL;
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

static int forbidden(const struct pstate *p, size_t from, size_t to, const char *what)
{
	static const char *const bad[] = {CORE_CHAT_BOS, CORE_CHAT_EOS, CORE_CHAT_THINK, CORE_CHAT_END_THINK,
					  CORE_CHAT_DSML};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *x = memmem(p->s + from, to - from, bad[i], strlen(bad[i]));
		if (x) {
			char why[160];
			snprintf(why, sizeof why, "%s contains the reserved string \"%s\"", what, bad[i]);
			return malformed(p, (size_t)(x - p->s), "%s", why);
		}
	}
	return 0;
}

static int add_call(struct core_chat_reply *r, char *name, struct sbuf *args)
{
	struct core_chat_call *c = realloc(r->calls, (size_t)(r->n_calls + 1) * sizeof *c);
	if (!c) return -1;
	r->calls = c;
	c[r->n_calls].name = name;
	c[r->n_calls].arguments = args->p;
	r->n_calls++;
	return 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* B.11 step 3, from just after "\n\n<｜DSML｜tool_calls". Returns the offset after
 * the closing tag in *end. */
static int parse_calls(struct pstate *p, size_t at, struct core_chat_reply *r, size_t *end)
{
	for (;;) {
		int w;
		size_t m = earlier(p, at, k_invoke, k_close_calls, &w);
		if (w < 0) return malformed(p, at, "%s", "expected <" D "invoke or </" D "tool_calls>");
		if (m - at != 2 || memcmp(p->s + at, ">\n", 2))
			return malformed(p, at, "%s", "expected \">\\n\" before the next tag");
		if (w == 1) {
			*end = m + strlen(k_close_calls);
			return 0;
		}
		/* invoke header: name="NAME">\n */
		at = m + strlen(k_invoke);
		size_t h = earlier(p, at, k_param, k_end_invoke, &w);
		if (w < 0) return malformed(p, at, "%s", "unterminated invoke");
		size_t q = at;
		while (q < h && is_ws(p->s[q])) q++;
		if (h - q < 9 || memcmp(p->s + q, "name=\"", 6) || memcmp(p->s + h - 3, "\">\n", 3))
			return malformed(p, at, "%s", "expected name=\"NAME\">\\n after invoke");
		char *name = dup_range(p->s + q + 6, h - 3 - (q + 6));
		struct sbuf args = {0};
		sb_add(&args, "{", 1);
		/* keys seen, to reject repeats: offsets into the text */
		size_t nkeys = 0, *koff = NULL, *klen = NULL;
		int rc = 0;
		at = h;
		while (w == 0) {
			at += strlen(k_param);
			const char *ep = find(p, at, k_end_param);
			if (!ep) { rc = malformed(p, at, "%s", "unterminated parameter"); break; }
			size_t e = (size_t)(ep - p->s);
			/* ` name="KEY" string="true|false">VALUE<` */
			const char *s = p->s + at;
			size_t len = e - at;
			const char *ks = " name=\"";
			if (len < 7 || memcmp(s, ks, 7) || s[len - 1] != '<') {
				rc = malformed(p, at, "%s", "expected  name=\"KEY\" string=\"true|false\">VALUE<");
				break;
			}
			const char *kend = memmem(s + 7, len - 7, "\" string=\"", 10);
			if (!kend) { rc = malformed(p, at, "%s", "missing string=\"true|false\""); break; }
			size_t kl = (size_t)(kend - (s + 7));
			const char *after = kend + 10;
			size_t rest = (size_t)(s + len - after);
			int is_str;
			if (rest >= 6 && !memcmp(after, "true\">", 6)) { is_str = 1; after += 6; }
			else if (rest >= 7 && !memcmp(after, "false\">", 7)) { is_str = 0; after += 7; }
			else { rc = malformed(p, (size_t)(after - p->s), "%s", "string= must be \"true\" or \"false\""); break; }
			size_t vl = (size_t)(s + len - 1 - after);
			for (size_t k = 0; k < nkeys; k++)
				if (klen[k] == kl && !memcmp(p->s + koff[k], s + 7, kl)) {
					rc = malformed(p, at, "%s", "repeated parameter name");
					break;
				}
			if (rc) break;
			size_t *a = realloc(koff, (nkeys + 1) * sizeof *a), *b2 = a ? realloc(klen, (nkeys + 1) * sizeof *b2) : NULL;
			if (a) koff = a;
			if (!a || !b2) { rc = core_err_set(p->e, NV_ENOMEM, "completion", NULL, NULL, "out of memory"); break; }
			klen = b2;
			koff[nkeys] = (size_t)(s + 7 - p->s);
			klen[nkeys++] = kl;
			if (nkeys > 1) sb_add(&args, ", ", 2);
			sb_json_str(&args, s + 7, kl);
			sb_add(&args, ": ", 2);
			if (is_str) sb_json_str(&args, after, vl);
			else sb_add(&args, after, vl);
			at = e + strlen(k_end_param);
			size_t nx = earlier(p, at, k_param, k_end_invoke, &w);
			if (w < 0) { rc = malformed(p, at, "%s", "unterminated invoke"); break; }
			if (nx - at != 2 || memcmp(p->s + at, ">\n", 2)) {
				rc = malformed(p, at, "%s", "expected \">\\n\" after a parameter");
				break;
			}
			at = nx;
		}
		free(koff);
		free(klen);
		sb_add(&args, "}", 1);
		if (!rc && (args.oom || !name || add_call(r, name, &args)))
			rc = core_err_set(p->e, NV_ENOMEM, "completion", NULL, NULL, "out of memory");
		if (rc) {
			free(name);
			free(args.p);
			return rc;
		}
		at += strlen(k_end_invoke);
	}
}

int core_chat_parse_reply(const char *text, size_t n, enum core_chat_mode mode, unsigned flags,
			  struct core_chat_reply *out, struct nv_err *e)
{
	memset(out, 0, sizeof *out);
	struct pstate p = {text, n, e};
	int rc;
	size_t bad = core_utf8_valid_prefix(text, n);
	if (bad != n)
		return core_err_set(e, NV_EINVAL, "completion", NULL, NULL, "invalid UTF-8 at byte %zu", bad);
	size_t at = 0;
	int w;
	if (mode == CORE_CHAT_MODE_THINKING) {
		size_t m = earlier(&p, 0, CORE_CHAT_END_THINK, k_open_calls, &w);
		if (w != 0)
			return malformed(&p, m < n ? m : 0, "%s",
					 w < 0 ? "no </think> ends the reasoning" : "tool calls before </think>");
		if ((rc = forbidden(&p, 0, m, "reasoning_content"))) return rc;
		out->reasoning = dup_range(text, m);
		at = m + strlen(CORE_CHAT_END_THINK);
	} else {
		out->reasoning = dup_range("", 0);
	}
	size_t m = earlier(&p, at, CORE_CHAT_EOS, k_open_calls, &w);
	if (w < 0 && !(flags & CORE_CHAT_ALLOW_NO_EOS)) {
		rc = malformed(&p, n, "%s", "the completion does not end with <\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
		goto fail;
	}
	if ((rc = forbidden(&p, at, m, "content"))) goto fail;
	out->content = dup_range(text + at, m - at);
	if (!out->reasoning || !out->content) goto oom;
	size_t end = m;
	if (w == 0) {
		end = m + strlen(CORE_CHAT_EOS);
	} else if (w == 1) {
		if ((rc = parse_calls(&p, m + strlen(k_open_calls), out, &end))) goto fail;
		if (n - end >= strlen(CORE_CHAT_EOS) && !memcmp(text + end, CORE_CHAT_EOS, strlen(CORE_CHAT_EOS)))
			end += strlen(CORE_CHAT_EOS);
	}
	if (end != n) {
		rc = malformed(&p, end, "%s", "unexpected text after the end of the message");
		goto fail;
	}
	return 0;
oom:
	rc = core_err_set(e, NV_ENOMEM, "completion", NULL, NULL, "out of memory");
fail:
	core_chat_reply_free(out);
	return rc;
}

void core_chat_reply_free(struct core_chat_reply *r)
{
	if (!r) return;
	free(r->content);
	free(r->reasoning);
	for (int i = 0; i < r->n_calls; i++) {
		free(r->calls[i].name);
		free(r->calls[i].arguments);
	}
	free(r->calls);
	memset(r, 0, sizeof *r);
}

char *core_chat_reply_json(const struct core_chat_reply *r)
{
	struct sbuf b = {0};
	const char *c = r->content ? r->content : "", *rs = r->reasoning ? r->reasoning : "";
	sb_adds(&b, "{\"role\": \"assistant\", \"content\": ");
	sb_json_str(&b, c, strlen(c));
	sb_adds(&b, ", \"reasoning_content\": ");
	sb_json_str(&b, rs, strlen(rs));
	sb_adds(&b, ", \"tool_calls\": [");
	for (int i = 0; i < r->n_calls; i++) {
		if (i) sb_add(&b, ", ", 2);
		sb_adds(&b, "{\"type\": \"function\", \"function\": {\"name\": ");
		sb_json_str(&b, r->calls[i].name, strlen(r->calls[i].name));
		sb_adds(&b, ", \"arguments\": ");
		sb_json_str(&b, r->calls[i].arguments, strlen(r->calls[i].arguments));
		sb_adds(&b, "}}");
	}
	sb_adds(&b, "]}");
	if (b.oom) { free(b.p); return NULL; }
	return b.p;
}

size_t core_chat_holdback(const char *text, size_t n)
{
	static const char *const marks[] = {CORE_CHAT_END_THINK, k_open_calls, CORE_CHAT_EOS};
	size_t best = 0;
	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
		size_t ml = strlen(marks[i]);
		/* longest proper prefix of the marker that ends text */
		for (size_t k = ml - 1; k > best; k--)
			if (k <= n && !memcmp(text + n - k, marks[i], k)) { best = k; break; }
	}
	return best;
}
