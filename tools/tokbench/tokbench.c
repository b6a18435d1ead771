/* tools/tokbench - tokenizer throughput: MB/s of core_tok_encode on one core.
 *
 *   tokbench MODEL [FILE] [--mb N] [--reps N]
 *
 * MODEL: a tokenizer.json or a directory holding one.  Without FILE it encodes N MB
 * (default 8) of deterministic mixed text (tests/tok_mixed.h: prose, numbers, code,
 * CJK, emoji, special tokens).  Prints load time, MB/s (best of reps, CPU time of
 * this thread, cold cache on the first rep), ids per byte and the cache hit rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer.h"
#include "tests/tok_mixed.h"

int main(int argc, char **argv)
{
	const char *model = NULL, *file = NULL;
	double mb = 8;
	int reps = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
		else if (!model) model = argv[i];
		else if (!file) file = argv[i];
		else { fprintf(stderr, "usage: tokbench MODEL [FILE] [--mb N] [--reps N]\n"); return 2; }
	}
	if (!model || mb <= 0 || reps < 1) { fprintf(stderr, "usage: tokbench MODEL [FILE] [--mb N] [--reps N]\n"); return 2; }
	struct nv_err e = {0};
	char buf[2048];
	struct core_tok *t;
	double w0 = tm_clock_s(CLOCK_MONOTONIC);
	if (core_tok_load(model, &t, &e)) { fprintf(stderr, "tokbench: %s\n", core_err_str(&e, buf, sizeof buf)); return 1; }
	double load = tm_clock_s(CLOCK_MONOTONIC) - w0;
	size_t n = 0;
	char *text = NULL;
	if (file) {
		FILE *f = fopen(file, "rb");
		if (!f) { perror(file); return 1; }
		fseek(f, 0, SEEK_END);
		n = (size_t)ftell(f);
		fseek(f, 0, SEEK_SET);
		text = malloc(n + 1);
		if (!text || fread(text, 1, n, f) != n) { fprintf(stderr, "tokbench: cannot read %s\n", file); return 1; }
		fclose(f);
	} else {
		text = tm_mixed_text((size_t)(mb * 1e6), 2026, &n);
	}
	double best = 1e30, first = 0;
	size_t nids = 0;
	struct core_tok_stats s0, s1;
	for (int r = 0; r < reps; r++) {
		struct core_tok_ids ids = {0};
		core_tok_get_stats(t, &s0);
		double c0 = tm_clock_s(CLOCK_THREAD_CPUTIME_ID);
		if (core_tok_encode(t, text, n, 0, &ids, &e)) { fprintf(stderr, "tokbench: %s\n", core_err_str(&e, buf, sizeof buf)); return 1; }
		double dt = tm_clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
		core_tok_get_stats(t, &s1);
		if (!r) first = dt;
		if (dt < best) best = dt;
		nids = ids.n;
		core_tok_ids_free(&ids);
	}
	printf("tokbench: %s, load %.3f s\n", file ? file : "mixed text", load);
	printf("  %zu bytes -> %zu ids (%.2f bytes/id), pieces %llu, cache hits %.1f%%\n", n, nids,
	       nids ? (double)n / nids : 0.0, (unsigned long long)(s1.pieces - s0.pieces),
	       s1.pieces > s0.pieces ? 100.0 * (s1.cache_hits - s0.cache_hits) / (s1.pieces - s0.pieces) : 0.0);
	printf("  encode: %.1f MB/s (best of %d), first run %.1f MB/s\n", n / 1e6 / best, reps, n / 1e6 / first);
	free(text);
	core_tok_destroy(t);
	return 0;
}
