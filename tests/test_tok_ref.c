/* tests/test_tok_ref.c - the tokenizer against DeepSeek's reference data (../shared):
 * CHAT.md A.11 sanity vectors, the ids of the four chat test vectors
 * (encoding-tests/output_N.ids.json), round trips on a hard corpus, streaming
 * decode, the V3 file, load time, linearity and throughput. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "core/tokenizer.h"
#include "testutil.h"
#include "tok_mixed.h"

static void check_ids(struct core_tok *t, const char *what, const char *text, size_t n,
		      const int32_t *want, size_t nw)
{
	struct core_tok_ids ids = {0};
	struct nv_err e = {0};
	int rc = core_tok_encode(t, text, n, 0, &ids, &e);
	TU_CHECK(rc == 0, "%s: encode failed: %s", what, e.why);
	TU_CHECK(ids.n == nw, "%s: %zu ids, expected %zu", what, ids.n, nw);
	for (size_t i = 0; i < ids.n && i < nw; i++)
		if (ids.v[i] != want[i]) {
			TU_CHECK(0, "%s: id[%zu] got %d expected %d", what, i, ids.v[i], want[i]);
			break;
		}
	char *back;
	size_t bn;
	rc = core_tok_decode(t, want, nw, 0, &back, &bn, &e);
	TU_CHECK(rc == 0 && bn == n && !memcmp(back, text, n), "%s: decode of the expected ids differs", what);
	if (!rc) free(back);
	core_tok_ids_free(&ids);
}

/* CHAT.md A.11 */
static const struct { const char *text; int32_t ids[32]; int n; int v4_only; } k_a11[] = {
	{"", {0}, 0, 0},
	{"Hello, world! 123\nsecond line", {19923, 14, 2058, 3, 223, 6895, 201, 10930, 2562}, 9, 0},
	{"你好，世界！ Καλημέρα κόσμε 🌍",
	 {30594, 303, 3427, 1175, 51901, 25696, 29537, 11983, 122189, 2781, 30619, 73369, 238}, 13, 0},
	{"Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ",
	 {19923, 3, 223, 5464, 5008, 1175, 19, 940, 223, 19, 438, 223, 20, 6113, 257, 76589, 131, 100, 76032,
	  1628, 76589, 131, 108, 76589, 131, 98}, 26, 0},
	{"<｜begin▁of▁sentence｜><｜User｜>question<｜Assistant｜><think>reason</think>answer<｜end▁of▁sentence｜>",
	 {0, 128803, 20072, 128804, 128821, 86512, 128822, 19995, 1}, 9, 1},
	{"<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>",
	 {128803, 30594, 128804, 128821, 36101, 128822, 7624, 1}, 8, 1},
	{"｜DSML｜<｜action｜><｜query｜><｜authority｜><｜domain｜><｜title｜><｜read_url｜><｜latest_reminder｜>",
	 {128825, 128829, 128830, 128831, 128832, 128836, 128845, 128828}, 8, 1},
};

static void test_a11(struct core_tok *t, int v4)
{
	for (size_t i = 0; i < sizeof k_a11 / sizeof k_a11[0]; i++) {
		if (k_a11[i].v4_only && !v4) continue;
		char what[64];
		snprintf(what, sizeof what, "%s A.11 vector %zu", v4 ? "V4" : "V3", i);
		check_ids(t, what, k_a11[i].text, strlen(k_a11[i].text), k_a11[i].ids, (size_t)k_a11[i].n);
	}
}

static void test_vectors(struct core_tok *t, const char *ref)
{
	for (int k = 1; k <= 4; k++) {
		char p[4200], what[64];
		size_t n, jn;
		snprintf(p, sizeof p, "%s/encoding-tests/output_%d.txt", ref, k);
		char *text = tu_read_file(p, &n);
		snprintf(p, sizeof p, "%s/encoding-tests/output_%d.ids.json", ref, k);
		char *js = tu_read_file(p, &jn);
		TU_CHECK(text && js, "vector %d: files missing", k);
		if (!text || !js) continue;
		cJSON *a = cJSON_Parse(js);
		int cnt = cJSON_GetArraySize(a);
		int32_t *want = malloc((size_t)cnt * sizeof *want + 1);
		int i = 0;
		for (cJSON *c = a->child; c; c = c->next) want[i++] = (int32_t)c->valuedouble;
		static const int k_len[] = {0, 541, 53, 820, 582};
		TU_CHECK(cnt == k_len[k], "vector %d: ids file has %d ids, CHAT.md says %d", k, cnt, k_len[k]);
		snprintf(what, sizeof what, "output_%d", k);
		check_ids(t, what, text, n, want, (size_t)cnt);
		free(want);
		cJSON_Delete(a);
		free(text);
		free(js);
	}
}

static const char *const k_corpus[] = {
	"深度求索公司创造了一个大语言模型。日本語のテキスト、カタカナ、ひらがな。",
	"👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇫🇷🇩🇪 flags, ❤️‍🔥",
	"e\xcc\x81 a\xcc\x8a\xcc\x81 Z\xcd\x91\xcd\x97\xcd\x82" "a\xcc\x90\xcd\x8al\xcd\xa0g\xcd\x8c\xcd\x84o",
	"\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 \xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa\xe0\xb8\x94\xe0\xb8\xb5",
	"12345678901234567890123456789012345678901234567890 0.000001 1e-9 ٠١٢٣٤٥ ¹²³ ⅫⅪ ①②③",
	"                                                                  x\t\t\t\t\t\ty\n\n\n\n\n\n\r\n\r\n  \n  z",
	"\xc2\xa0\xc2\xa0nbsp\xe3\x80\x80ideographic\xe2\x80\x83" "em\xe1\x9a\x80ogham\xe2\x80\xa8ls\xe2\x80\xa9ps\xc2\x85nel",
	"#include <stdio.h>\nint main(int argc, char **argv) {\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
	"def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\n\nclass A(B):\n    pass\n",
	"word<｜User｜>inside<think>words</think>and<｜end▁of▁sentence｜>x<｜DSML｜ <｜fim▁hole｜>",
	"<|EOT|><|place_holder_mm_span_0021|><｜place▁holder▁no▁799｜><｜/table>｜<dsml:x</dsml:",
	"مرحبا بالعالم שלום עולם 안녕하세요 세계 Привет мир Γειά σου",
	"\x01\x02\x03\x1b[31mred\x1b[0m\x7f\xc2\x80\xc2\x9f\xef\xbb\xbf\xe1\xa0\x8e\xe2\x80\x8b\xf4\x8f\xbf\xbf",
	"a" "\xef\xb7\x90" "b\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80" "c\xe2\x80\x8d\xe2\x80\x8d",
	"'s 't 're 've 'm 'll 'd ' s''' \"\"\" ```python\n```",
	"龥龦鿿 𠀀𠀁 丂 ﹏﹏ ｆｕｌｌｗｉｄｔｈ １２３",
};

static void test_roundtrip(struct core_tok *t)
{
	struct core_tok_stream *st;
	struct nv_err e = {0};
	TU_CHECK(core_tok_stream_create(t, 0, &st, &e) == 0, "stream create");
	for (size_t i = 0; i < sizeof k_corpus / sizeof k_corpus[0]; i++) {
		const char *x = k_corpus[i];
		size_t n = strlen(x);
		for (unsigned flags = 0; flags <= CORE_TOK_NO_SPECIAL; flags++) {
			struct core_tok_ids ids = {0};
			int rc = core_tok_encode(t, x, n, flags, &ids, &e);
			TU_CHECK(rc == 0, "corpus %zu: encode failed: %s", i, e.why);
			char *back;
			size_t bn;
			rc = core_tok_decode(t, ids.v, ids.n, 0, &back, &bn, &e);
			TU_CHECK(rc == 0 && bn == n && !memcmp(back, x, n), "corpus %zu flags %u: round trip differs",
				 i, flags);
			if (!rc) free(back);
			/* streaming decode gives the same bytes, never a partial character */
			char *acc = malloc(n + 16);
			size_t an = 0;
			core_tok_stream_reset(st);
			for (size_t k = 0; k < ids.n; k++) {
				const char *p;
				size_t pn;
				core_tok_stream_push(st, ids.v[k], &p, &pn, &e);
				TU_CHECK(core_utf8_valid_prefix(p, pn) == pn, "corpus %zu: stream chunk %zu not UTF-8", i, k);
				if (an + pn <= n) memcpy(acc + an, p, pn);
				an += pn;
			}
			const char *p;
			size_t pn;
			core_tok_stream_flush(st, &p, &pn);
			TU_CHECK(pn == 0 && an == n && !memcmp(acc, x, n), "corpus %zu: stream decode differs", i);
			free(acc);
			core_tok_ids_free(&ids);
		}
	}
	core_tok_stream_destroy(st);
}

/* Encode cost of 1 MB vs 100 KB of one long word, spaces, digits, mixed text.  The
 * work counters are deterministic (bound 14x for 10x input); CPU time is a
 * lenient second check (bound 40x, min of 3 runs: a 1 MB piece's BPE scratch falls
 * out of the caches, and CI machines are shared) that a quadratic loop (100x)
 * still fails. */
static void test_linear(struct core_tok *t)
{
	static const char *const kinds[] = {"one long word", "spaces", "digits", "mixed", "newlines+spaces"};
	const size_t big = 1 << 20, small = big / 10;
	for (int k = 0; k < 5; k++) {
		double tm[2];
		uint64_t work[2];
		for (int s = 0; s < 2; s++) {
			size_t n = s ? big : small, len = n;
			char *x;
			if (k == 3) {
				x = tm_mixed_text(n, 42, &len);
			} else {
				x = malloc(n + 1);
				for (size_t i = 0; i < n; i++)
					x[i] = k == 0 ? "abcdefghijklmnopqrstuvwxyz"[i % 26 == 0 ? 0 : (i * 7) % 26]
					     : k == 1 ? ' ' : k == 2 ? (char)('0' + i % 10) : (i % 5 == 4 ? '\n' : ' ');
				x[n] = 0;
			}
			double best = 1e9;
			for (int rep = 0; rep < 3; rep++) {
				struct core_tok_stats a, b;
				struct core_tok_ids ids = {0};
				struct nv_err e = {0};
				core_tok_get_stats(t, &a);
				double c0 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
				int rc = core_tok_encode(t, x, len, 0, &ids, &e);
				double c1 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
				core_tok_get_stats(t, &b);
				TU_CHECK(rc == 0, "%s: encode failed: %s", kinds[k], e.why);
				if (c1 - c0 < best) best = c1 - c0;
				work[s] = (b.heap_ops - a.heap_ops) + (b.regex_calls - a.regex_calls) + (b.pieces - a.pieces);
				core_tok_ids_free(&ids);
			}
			tm[s] = best;
			free(x);
		}
		double wr = (double)work[1] / (double)(work[0] ? work[0] : 1);
		double tr = tm[1] / (tm[0] > 1e-4 ? tm[0] : 1e-4);
		printf("linearity %-16s work ratio %.2f, cpu %.4f s -> %.4f s (ratio %.1f)\n", kinds[k], wr, tm[0],
		       tm[1], tr);
		TU_CHECK(wr < 14, "%s: work grows %.1fx for 10x input (want ~10x)", kinds[k], wr);
		TU_CHECK(tr < 40, "%s: CPU time grows %.1fx for 10x input (want ~10x)", kinds[k], tr);
	}
}

static void test_speed(struct core_tok *t)
{
	size_t n;
	char *x = tm_mixed_text(4 << 20, 7, &n);
	struct core_tok_ids ids = {0};
	struct nv_err e = {0};
	double t0 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
	int rc = core_tok_encode(t, x, n, 0, &ids, &e);
	double t1 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
	TU_CHECK(rc == 0, "mixed: %s", e.why);
	double mbs = n / 1e6 / (t1 - t0);
	printf("throughput: %.1f MB/s on %zu bytes of mixed text (%zu ids, one core)\n", mbs, n, ids.n);
	/* the target is >= 5 MB/s; CI machines are shared, so only gross regressions fail */
	TU_CHECK(mbs > 1.0, "throughput %.2f MB/s", mbs);
	core_tok_ids_free(&ids);
	free(x);
}

int main(void)
{
	const char *sh = tu_require_shared();
	char ref[2048], p[4200];
	snprintf(ref, sizeof ref, "%s/ref/deepseek-v4-flash", sh);
	struct core_tok *t = NULL, *t3 = NULL;
	struct nv_err e = {0};
	double t0 = tm_clock_s(CLOCK_MONOTONIC), c0 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
	int rc = core_tok_load(ref, &t, &e); /* the directory: falls back to tokenizer.reconstructed.json */
	double t1 = tm_clock_s(CLOCK_MONOTONIC), c1 = tm_clock_s(CLOCK_PROCESS_CPUTIME_ID);
	char buf[2048];
	if (rc) { fprintf(stderr, "FAIL: %s\n", core_err_str(&e, buf, sizeof buf)); return 1; }
	printf("load of the V4 tokenizer: %.3f s wall, %.3f s CPU\n", t1 - t0, c1 - c0);
	/* target: well under 1 s; the bound only catches gross regressions on busy CI */
	TU_CHECK(c1 - c0 < 5.0, "loading took %.2f s of CPU (target well under 1 s)", c1 - c0);
	TU_CHECK(core_tok_n_ids(t) == 129280, "n_ids %d expected 129280", core_tok_n_ids(t));
	static const struct { const char *s; int32_t id; } ad[] = {
		{"<｜begin▁of▁sentence｜>", 0}, {"<｜end▁of▁sentence｜>", 1}, {"<｜User｜>", 128803},
		{"<｜Assistant｜>", 128804}, {"<think>", 128821}, {"</think>", 128822}, {"｜DSML｜", 128825},
		{"<|EOT|>", 128805}, {"<|place_holder_mm_span_0021|>", 128847}, {"<｜image｜>", 129279}};
	for (size_t i = 0; i < sizeof ad / sizeof ad[0]; i++)
		TU_CHECK(core_tok_added_id(t, ad[i].s) == ad[i].id, "added id of %s: got %d expected %d", ad[i].s,
			 core_tok_added_id(t, ad[i].s), ad[i].id);
	/* single-byte ids of A.4 */
	static const struct { int b; int32_t id; } by[] = {{' ', 223}, {'\n', 201}, {'A', 35}, {0, 191}, {0xFF, 190}};
	for (size_t i = 0; i < sizeof by / sizeof by[0]; i++) {
		size_t n;
		const char *s = core_tok_id_bytes(t, by[i].id, &n);
		TU_CHECK(s && n == 1 && (uint8_t)s[0] == by[i].b, "id %d should decode to byte 0x%02X", by[i].id, by[i].b);
	}
	test_a11(t, 1);
	test_vectors(t, ref);
	test_roundtrip(t);
	test_linear(t);
	test_speed(t);

	snprintf(p, sizeof p, "%s/deepseek-v3-tokenizer.json", ref);
	if (core_tok_load(p, &t3, &e)) {
		TU_CHECK(0, "V3 tokenizer: %s", core_err_str(&e, buf, sizeof buf));
	} else {
		TU_CHECK(core_tok_n_ids(t3) == 128815, "V3 n_ids %d expected 128815", core_tok_n_ids(t3));
		test_a11(t3, 0);
	}
	core_tok_destroy(t3);
	core_tok_destroy(t);
	TU_DONE();
}
