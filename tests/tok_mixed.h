/* tests/tok_mixed.h - deterministic "mixed" text for tokenizer throughput and
 * linearity checks: English prose, numbers, code, CJK, Cyrillic, emoji, special
 * tokens, whitespace runs; and the clock both measure with.  Used by
 * tests/test_tok_ref.c and tools/tokbench. */
#ifndef NV_TESTS_TOK_MIXED_H
#define NV_TESTS_TOK_MIXED_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t tm_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* n bytes (approximately, never more) of mixed UTF-8 text; malloc'ed, NUL-terminated. */
static char *tm_mixed_text(size_t n, uint64_t seed, size_t *out_n)
{
	static const char *const words[] = {
		"the", "of", "and", "memory", "bandwidth", "expert", "tokenizer", "Mixture", "latency",
		"throughput", "NVMe", "GPU", "routing", "is", "a", "to", "in", "that", "model", "DeepSeek",
		"quantization", "FP8", "cache", "prefetch", "layer", "attention", "compression", "it's",
		"don't", "x.com", "e-mail", "naïve", "café", "Ünïcödé", "straße", "résumé"};
	static const char *const other[] = {
		"你好，世界！", "深度求索公司创造。", "カタカナとひらがな", "Привет, мир", "Καλημέρα κόσμε",
		"🌍", "👨\u200d👩\u200d👧\u200d👦", "e\xcc\x81", "한국어 텍스트", "مرحبا بالعالم",
		"<\xef\xbd\x9cUser\xef\xbd\x9c>", "<think>", "</think>",
		"\n\n", "\t", "    ", "  \n", "\r\n", "1 + 1 = 2", "3.14159", "2026-02-21", "100%",
		"#include <stdio.h>\n", "int main(void) { return 0; }\n", "    for (i = 0; i < n; i++) {\n",
		"def f(x):\n    return x ** 2\n", "{\"key\": [1, 2, 3]}", "https://example.com/a?b=c"};
	char *buf = malloc(n + 1);
	size_t o = 0;
	uint64_t s = seed;
	while (buf) {
		uint64_t r = tm_next(&s);
		const char *w;
		char num[24];
		int kind = (int)(r % 100);
		if (kind < 70) w = words[(r >> 8) % (sizeof words / sizeof words[0])];
		else if (kind < 80) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)((r >> 8) % 100000000));
			w = num;
		} else w = other[(r >> 8) % (sizeof other / sizeof other[0])];
		size_t l = strlen(w);
		const char *sep = (r >> 40) % 13 == 0 ? ". " : (r >> 40) % 17 == 0 ? ",\n" : " ";
		size_t sl = strlen(sep);
		if (o + l + sl > n) break;
		memcpy(buf + o, w, l);
		o += l;
		memcpy(buf + o, sep, sl);
		o += sl;
	}
	if (buf) buf[o] = 0;
	*out_n = o;
	return buf;
}
/* Seconds on clock `id` (CLOCK_MONOTONIC: wall time; CLOCK_*_CPUTIME_ID: CPU time). */
static inline double tm_clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
