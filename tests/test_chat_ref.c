/* tests/test_chat_ref.c - the four official chat-encoding vectors (CHAT.md B.12):
 * render input_N.json -> output_N.txt byte for byte, tokenize -> output_N.ids.json,
 * and parse the completions quoted in B.12.  Needs ../shared (exit 77 otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "core/chat.h"
#include "core/tokenizer.h"
#include "testutil.h"

static void check_parse(const char *name, const char *text, size_t n, const char *reasoning,
			const char *content_has, int n_calls)
{
	struct core_chat_reply r;
	struct nv_err e = {0};
	int rc = core_chat_parse_reply(text, n, CORE_CHAT_MODE_THINKING, 0, &r, &e);
	TU_CHECK(rc == 0, "%s: parse failed: %s", name, e.why);
	if (rc) return;
	TU_CHECK(!strcmp(r.reasoning, reasoning), "%s: reasoning \"%s\" expected \"%s\"", name, r.reasoning, reasoning);
	TU_CHECK(content_has ? strstr(r.content, content_has) != NULL : r.content[0] == 0,
		 "%s: content \"%s\" (expected %s%s)", name, r.content, content_has ? "to contain " : "empty",
		 content_has ? content_has : "");
	TU_CHECK(r.n_calls == n_calls, "%s: %d calls, expected %d", name, r.n_calls, n_calls);
	if (n_calls == 1 && r.n_calls == 1) {
		/* arguments equal, as JSON, to {"location": "Beijing", "unit": "celsius"} */
		cJSON *a = cJSON_Parse(r.calls[0].arguments);
		cJSON *w = cJSON_Parse("{\"location\": \"Beijing\", \"unit\": \"celsius\"}");
		TU_CHECK(!strcmp(r.calls[0].name, "get_weather"), "%s: call name %s", name, r.calls[0].name);
		TU_CHECK(a && cJSON_Compare(a, w, 1), "%s: arguments %s", name, r.calls[0].arguments);
		cJSON_Delete(a);
		cJSON_Delete(w);
	}
	core_chat_reply_free(&r);
}

int main(void)
{
	const char *sh = tu_require_shared();
	char ref[2048], p[4200];
	snprintf(ref, sizeof ref, "%s/ref/deepseek-v4-flash", sh);
	struct core_tok *t = NULL;
	struct nv_err e = {0};
	char buf[2048];
	if (core_tok_load(ref, &t, &e)) { fprintf(stderr, "FAIL: %s\n", core_err_str(&e, buf, sizeof buf)); return 1; }
	static const enum core_chat_mode mode[] = {0, CORE_CHAT_MODE_THINKING, CORE_CHAT_MODE_THINKING,
						   CORE_CHAT_MODE_THINKING, CORE_CHAT_MODE_CHAT};
	for (int k = 1; k <= 4; k++) {
		size_t n, wn, in;
		snprintf(p, sizeof p, "%s/encoding-tests/input_%d.json", ref, k);
		char *input = tu_read_file(p, &n);
		snprintf(p, sizeof p, "%s/encoding-tests/output_%d.txt", ref, k);
		char *want = tu_read_file(p, &wn);
		snprintf(p, sizeof p, "%s/encoding-tests/output_%d.ids.json", ref, k);
		char *ids_js = tu_read_file(p, &in);
		if (!input || !want || !ids_js) { TU_CHECK(0, "vector %d: files missing", k); continue; }
		struct core_chat_req *r = NULL;
		char *out = NULL;
		size_t on = 0;
		int rc = core_chat_req_parse(input, n, p, &r, &e);
		TU_CHECK(rc == 0, "vector %d: request: %s", k, core_err_str(&e, buf, sizeof buf));
		if (!rc) {
			r->opts.mode = mode[k];
			rc = core_chat_render(r->messages, r->context, &r->opts, &out, &on, &e);
			TU_CHECK(rc == 0, "vector %d: render: %s", k, core_err_str(&e, buf, sizeof buf));
		}
		if (!rc) {
			size_t i = 0;
			while (i < on && i < wn && out[i] == want[i]) i++;
			TU_CHECK(on == wn && i == wn, "vector %d: differs at byte %zu (got %zu bytes, expected %zu): got \"%.40s\"",
				 k, i, on, wn, out + (i < on ? i : on));
			struct core_tok_ids ids = {0};
			TU_CHECK(core_tok_encode(t, out, on, 0, &ids, &e) == 0, "vector %d: encode", k);
			cJSON *a = cJSON_Parse(ids_js);
			size_t j = 0;
			for (cJSON *c = a ? a->child : NULL; c; c = c->next, j++)
				if (j >= ids.n || ids.v[j] != (int32_t)c->valuedouble) {
					TU_CHECK(0, "vector %d: id[%zu] got %d expected %d", k, j, j < ids.n ? ids.v[j] : -1,
						 (int)c->valuedouble);
					break;
				}
			TU_CHECK(j == ids.n, "vector %d: %zu ids, expected %zu", k, ids.n, j);
			cJSON_Delete(a);
			core_tok_ids_free(&ids);
		}
		/* B.12: the completions inside vectors 1 and 2 */
		const char *open = CORE_CHAT_ASSISTANT CORE_CHAT_THINK;
		if (k == 1) {
			const char *a = strstr(want, open), *u = a ? strstr(a, CORE_CHAT_USER) : NULL;
			TU_CHECK(a && u, "vector 1: no assistant turn");
			if (a && u) {
				a += strlen(open);
				check_parse("vector 1 call", a, (size_t)(u - a),
					    "The user wants to know the weather in Beijing. I should use the get_weather tool.", NULL, 1);
			}
		}
		if (k == 1 || k == 2) {
			const char *last = NULL;
			for (const char *q = strstr(want, open); q; q = strstr(q + 1, open)) last = q;
			TU_CHECK(last != NULL, "vector %d: no last assistant turn", k);
			if (last) {
				last += strlen(open);
				if (k == 1)
					check_parse("vector 1 answer", last, strlen(last),
						    "Got the weather data. Let me format a nice response.", "22\xc2\xb0" "C", 0);
				else
					check_parse("vector 2 answer", last, strlen(last),
						    "The user asks about the capital of France. It is Paris.",
						    "The capital of France is Paris.", 0);
			}
		}
		free(out);
		core_chat_req_destroy(r);
		free(input);
		free(want);
		free(ids_js);
	}
	core_tok_destroy(t);
	TU_DONE();
}
