/* tests/fuzz/fuzz_tokenizer.c - libFuzzer harness: encode/decode round trip.
 * Tokenizer from $FUZZ_TOKENIZER (a tokenizer.json or a model directory).
 * Checks: valid UTF-8 -> encode succeeds and decode(encode(x)) == x, in both
 * added-token modes, and the stream decoder agrees; invalid UTF-8 -> NV_EINVAL;
 * decoding arbitrary ids gives valid UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer.h"

static struct core_tok *g_t;
static struct core_tok_stream *g_st;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *p = getenv("FUZZ_TOKENIZER");
	struct nv_err e = {0};
	char buf[2048];
	if (!p || core_tok_load(p, &g_t, &e) || core_tok_stream_create(g_t, 0, &g_st, &e)) {
		fprintf(stderr, "fuzz_tokenizer: set FUZZ_TOKENIZER to a tokenizer.json (%s)\n",
			p ? core_err_str(&e, buf, sizeof buf) : "unset");
		exit(2);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	const char *s = (const char *)data;
	struct nv_err e = {0};
	int valid = core_utf8_valid_prefix(s, n) == n;
	for (unsigned flags = 0; flags <= CORE_TOK_NO_SPECIAL; flags++) {
		struct core_tok_ids ids = {0};
		int rc = core_tok_encode(g_t, s, n, flags, &ids, &e);
		if (!valid) {
			if (rc != NV_EINVAL) abort();
			core_tok_ids_free(&ids);
			break;
		}
		if (rc) abort();
		char *back;
		size_t bn;
		if (core_tok_decode(g_t, ids.v, ids.n, 0, &back, &bn, &e) || bn != n || memcmp(back, s, n)) abort();
		free(back);
		size_t at = 0;
		core_tok_stream_reset(g_st);
		for (size_t i = 0; i < ids.n; i++) {
			const char *p;
			size_t pn;
			if (core_tok_stream_push(g_st, ids.v[i], &p, &pn, &e)) abort();
			if (core_utf8_valid_prefix(p, pn) != pn || at + pn > n || memcmp(p, s + at, pn)) abort();
			at += pn;
		}
		if (at != n) abort();
		core_tok_ids_free(&ids);
	}
	/* arbitrary ids: never a crash, always valid UTF-8 */
	size_t m = n / 3;
	int32_t *ids = malloc(m * sizeof *ids + 1);
	for (size_t i = 0; i < m; i++)
		ids[i] = (int32_t)((data[3 * i] | data[3 * i + 1] << 8 | data[3 * i + 2] << 16) % (core_tok_n_ids(g_t) + 2));
	char *out;
	size_t on;
	if (core_tok_decode(g_t, ids, m, 0, &out, &on, &e) == 0) {
		if (core_utf8_valid_prefix(out, on) != on) abort();
		free(out);
	}
	free(ids);
	return 0;
}
