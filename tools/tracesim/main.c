/* tools/tracesim/main.c - replay a routing trace (offload/trace.h) over a range of
 * host cache sizes and eviction policies; print hit rate against cache size as a
 * table and, with --plot, as a PNG drawn by gnuplot.
 *
 *   tracesim TRACE [--sizes N,N,..] [--fractions F,F,..] [--policies lru,lfu,s3fifo]
 *            [--plot OUT.png]
 *
 * Sizes are in expert slots (--sizes) or fractions of all layers x experts
 * (--fractions, the default: 0.02 .. 1).  The policies are the runtime's own
 * (cache/), replayed through the runtime's host cache; Belady's MIN is added as the
 * upper bound.  Only demand accesses are replayed (one per token, layer and distinct
 * selected expert); the predictors' accuracy is printed from the trace's
 * predictions. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/policy.h"
#include "sim.h"

#define MAX_SIZES 64
#define MAX_POL 8

static void die(const struct nv_err *e)
{
	char b[2048];
	fprintf(stderr, "tracesim: %s\n", core_err_str(e, b, sizeof b));
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tracesim TRACE [--sizes N,N,..] [--fractions F,F,..] [--policies %s]\n"
		   "                [--plot OUT.png]\n", cache_policy_names());
}

/* comma list of doubles; returns count or -1 */
static int parse_list(const char *s, double *v, int max)
{
	int n = 0;
	while (*s) {
		char *end;
		double x = strtod(s, &end);
		if (end == s || n >= max || !(x > 0)) return -1;
		v[n++] = x;
		s = end;
		if (*s == ',') s++;
		else if (*s) return -1;
	}
	return n;
}

static int plot(const char *png, const char *trace, int nsz, const int *slots, int total, int npol,
		const char *const *pol, double rate[][MAX_POL + 1])
{
	FILE *g = popen("gnuplot 2>&1", "w");
	if (!g) return -1;
	fprintf(g, "set terminal pngcairo size 900,600 noenhanced\n");
	fprintf(g, "set output '%s'\n", png);
	fprintf(g, "set title 'host cache hit rate: %s'\n", trace);
	fprintf(g, "set xlabel 'cache size (fraction of %d experts)'\nset ylabel 'hit rate'\n", total);
	fprintf(g, "set yrange [0:1]\nset xrange [0:*]\nset grid\nset key left top\n");
	fprintf(g, "plot");
	for (int p = 0; p <= npol; p++)
		fprintf(g, "%s '-' using 1:2 with linespoints title '%s'", p ? "," : "", p < npol ? pol[p] : "belady (MIN)");
	fprintf(g, "\n");
	for (int p = 0; p <= npol; p++) {
		for (int i = 0; i < nsz; i++) fprintf(g, "%g %g\n", (double)slots[i] / total, rate[i][p]);
		fprintf(g, "e\n");
	}
	int st = pclose(g);
	return st == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "sizes", required_argument, 0, 's' }, { "fractions", required_argument, 0, 'f' },
		{ "policies", required_argument, 0, 'p' }, { "plot", required_argument, 0, 'o' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	double sz[MAX_SIZES] = { 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0 };
	int nsz = 13, frac = 1;
	const char *pols = NULL, *png = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': case 'f':
			nsz = parse_list(optarg, sz, MAX_SIZES);
			frac = c == 'f';
			if (nsz <= 0) { fprintf(stderr, "tracesim: bad --%s list '%s'\n", frac ? "fractions" : "sizes", optarg); return 2; }
			break;
		case 'p': pols = optarg; break;
		case 'o': png = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) { usage(stderr); return 2; }
	const char *path = argv[optind];

	char polbuf[256];
	snprintf(polbuf, sizeof polbuf, "%s", pols ? pols : cache_policy_names());
	const char *pol[MAX_POL];
	int npol = 0;
	for (char *save = NULL, *t = strtok_r(polbuf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		if (!cache_policy_find(t)) {
			fprintf(stderr, "tracesim: unknown policy '%s' (known: %s; belady is always added)\n", t, cache_policy_names());
			return 2;
		}
		if (npol == MAX_POL) { fprintf(stderr, "tracesim: at most %d policies\n", MAX_POL); return 2; }
		pol[npol++] = t;
	}

	struct nv_err e = {0};
	struct offload_trace *t;
	if (offload_trace_load(path, &t, &e)) die(&e);
	int32_t *keys;
	long n;
	if (sim_keys(t, &keys, &n, &e)) die(&e);
	const int L = t->h.layers, E = t->h.experts, total = L * E;
	char *seen = calloc((size_t)total, 1);
	long distinct = 0;
	for (long i = 0; i < n; i++) distinct += !seen[keys[i]], seen[keys[i]] = 1;
	free(seen);
	printf("trace %s: %ld token line(s), %ld routing record(s), %d layers x %d experts, k %d, %d hash layer(s)\n",
	       path, t->ntokens, t->n, L, E, t->h.k, t->h.hash_layers);
	printf("%ld demand accesses, %ld distinct experts; compulsory misses alone cap the hit rate at %.4f\n",
	       n, distinct, n ? 1.0 - (double)distinct / n : 0.0);
	if (n == 0) { printf("nothing to replay\n"); return 0; }

	int slots[MAX_SIZES];
	static double rate[MAX_SIZES][MAX_POL + 1];
	printf("\n%8s %7s", "slots", "frac");
	for (int p = 0; p < npol; p++) printf(" %8s", pol[p]);
	printf(" %8s\n", "belady");
	for (int i = 0; i < nsz; i++) {
		slots[i] = frac ? (int)(sz[i] * total + 0.5) : (int)sz[i];
		if (slots[i] < 1) slots[i] = 1;
		printf("%8d %7.4f", slots[i], (double)slots[i] / total);
		for (int p = 0; p <= npol; p++) {
			uint64_t h;
			int rc = p < npol ? sim_policy(pol[p], keys, n, L, E, slots[i], &h, &e)
					  : sim_belady(keys, n, total, slots[i], &h, &e);
			if (rc) die(&e);
			rate[i][p] = (double)h / n;
			printf(" %8.4f", rate[i][p]);
		}
		printf("\n");
		fflush(stdout);
	}

	printf("\npredictor accuracy (records carrying the prediction; precision = predicted ids selected;"
	       " coverage = selected ids predicted)\n");
	printf("%-10s %9s %9s %10s %9s\n", "predictor", "records", "ids", "precision", "coverage");
	for (int part = 1; part < t->h.lookahead + 2; part++) {
		struct sim_pred a;
		sim_pred_accuracy(t, part, &a);
		char nm[24];
		if (part == 1) snprintf(nm, sizeof nm, "hash");
		else snprintf(nm, sizeof nm, "lookahead%d", part - 1);
		if (!a.records) { printf("%-10s %9s\n", nm, "-"); continue; }
		printf("%-10s %9ld %9ld %10.4f %9.4f\n", nm, a.records, a.predicted,
		       a.predicted ? (double)a.correct / a.predicted : 0.0,
		       a.selected ? (double)a.correct / a.selected : 0.0);
	}

	if (png) {
		if (plot(png, path, nsz, slots, total, npol, pol, rate))
			printf("\nno plot: gnuplot failed or is missing (install gnuplot-nox; tools/install-deps.sh); the table above has the data\n");
		else
			printf("\nplot: %s\n", png);
	}
	free(keys);
	offload_trace_free(t);
	return 0;
}
