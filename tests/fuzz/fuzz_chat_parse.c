/* tests/fuzz/fuzz_chat_parse.c - libFuzzer harness for the chat format: the
 * completion parser (both modes) and, when the input is JSON, request parsing and
 * rendering.  Checks: no crash; a successful parse has no reserved strings in
 * content/reasoning and its OpenAI JSON parses back; a rendered prompt is UTF-8. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/chat.h"
#include "core/tokenizer.h"

static int has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	const char *s = (const char *)data;
	struct nv_err e = {0};
	for (int mode = 0; mode < 2; mode++)
		for (unsigned flags = 0; flags <= CORE_CHAT_ALLOW_NO_EOS; flags++) {
			struct core_chat_reply r;
			if (core_chat_parse_reply(s, n, (enum core_chat_mode)mode, flags, &r, &e)) continue;
			/* strings with an embedded NUL end early; the checks use what precedes it */
			if (has(r.content, CORE_CHAT_EOS) || has(r.content, "</think>") || has(r.reasoning, CORE_CHAT_DSML))
				abort();
			char *js = core_chat_reply_json(&r);
			cJSON *j = js ? cJSON_Parse(js) : NULL;
			if (!j) abort();
			cJSON_Delete(j);
			free(js);
			core_chat_reply_free(&r);
		}
	(void)core_chat_holdback(s, n);
	struct core_chat_req *req = NULL;
	if (core_chat_req_parse(s, n, "fuzz", &req, &e) == 0) {
		for (int mode = 0; mode < 2; mode++) {
			char *out;
			size_t on;
			req->opts.mode = (enum core_chat_mode)mode;
			req->opts.effort = mode ? CORE_CHAT_EFFORT_MAX : CORE_CHAT_EFFORT_NONE;
			if (core_chat_render(req->messages, req->context, &req->opts, &out, &on, &e) == 0) {
				if (core_utf8_valid_prefix(out, on) != on) abort();
				free(out);
			}
		}
		core_chat_req_destroy(req);
	}
	return 0;
}
