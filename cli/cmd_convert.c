/* cli/cmd_convert.c - `nvmoe convert MODEL --out DIR [--force]`. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "offload/convert.h"

/* The one global: set by SIGINT/SIGTERM so that the progress callback cancels
 * cleanly (the library then removes its temporary directory). */
static volatile sig_atomic_t g_convert_stop;

static void on_signal(int sig) { (void)sig; g_convert_stop = 1; }

struct bar {
	double t0, last;
	int tty;
	int last_decile;
	long kill_after; /* NVMOE_TEST_CONVERT_KILL_AFTER: SIGKILL self after N records (tests) */
};

static void fmt_time(char *b, size_t n, double s)
{
	if (s < 0 || s > 1e7) snprintf(b, n, "?");
	else if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
	else if (s >= 60) snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
	else snprintf(b, n, "%.0fs", s);
}

static int progress(void *arg, uint64_t done, uint64_t total, uint64_t recs, uint64_t nrecs)
{
	struct bar *b = arg;
	if (b->kill_after > 0 && recs >= (uint64_t)b->kill_after) raise(SIGKILL);
	if (g_convert_stop) return 1;
	double t = cli_now();
	int decile = total ? (int)(done * 10 / total) : 10;
	int final = done >= total;
	if (b->tty ? (t - b->last < 0.2 && !final) : (decile == b->last_decile && !final)) return 0;
	b->last = t;
	b->last_decile = decile;
	double el = t - b->t0, rate = el > 0 ? (double)done / el : 0;
	double left = rate > 0 ? (double)(total - done) / rate : -1;
	char tl[32], te[32];
	fmt_time(tl, sizeof tl, left);
	fmt_time(te, sizeof te, el);
	int w = 24, fill = total ? (int)((double)done / (double)total * w) : w;
	char barb[32];
	for (int i = 0; i < w; i++) barb[i] = i < fill ? '#' : '.';
	barb[w] = 0;
	fprintf(stderr, "%sconvert [%s] %3d%%  %.2f / %.2f GB  %.2f GB/s  experts %llu/%llu  %s %s%s",
		b->tty ? "\r" : "", barb, total ? (int)(done * 100 / total) : 100, done / 1e9, total / 1e9,
		rate / 1e9, (unsigned long long)recs, (unsigned long long)nrecs,
		final ? "took" : "left", final ? te : tl, b->tty ? "   " : "\n");
	return 0;
}

static void note(void *arg, const char *msg)
{
	struct bar *b = arg;
	fprintf(stderr, "%snvmoe convert: %s\n", b->tty ? "\n" : "", msg);
}

int cli_cmd_convert(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) {
		printf("usage: nvmoe convert MODEL --out DIR [--force] [--allow-extra]\n"
			   "  Writes the expert store (" "experts.nvmoe" ") and the resident tensors of the HF\n"
			   "  checkpoint MODEL into DIR, verifying the source as it goes.  DIR appears only\n"
			   "  when the conversion is complete; an existing DIR is replaced only with --force.\n");
		return 0;
	}
	if (rc) return rc;
	if ((rc = cli_opts_only(&o, "allow-extra force out")) || (rc = cli_opts_args(&o, 1, 1, "MODEL"))) return rc;
	if (!o.out) return cli_usage_err(&o, "missing --out DIR");
	struct bar b = { .t0 = cli_now(), .tty = isatty(2), .last_decile = -1 };
	const char *k = getenv("NVMOE_TEST_CONVERT_KILL_AFTER");
	if (k) b.kill_after = atol(k);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct offload_convert_opts co = {
		.force = o.force, .allow_extra = o.allow_extra,
		.progress = progress, .note = note, .arg = &b,
	};
	struct offload_convert_result res;
	struct nv_err e;
	core_err_clear(&e);
	rc = offload_convert(o.args[0], o.out, &co, &res, &e);
	if (b.tty) fputc('\n', stderr);
	if (rc) {
		cli_print_err(&e);
		return 1;
	}
	printf("converted %s -> %s: %llu experts in %s (%.2f GB), %llu resident tensors in %llu shard(s) (%.2f GB), %.1f s\n",
	       o.args[0], o.out, (unsigned long long)res.nrecords, "experts.nvmoe", res.store_bytes / 1e9,
	       (unsigned long long)res.ntensors, (unsigned long long)res.nshards, res.resident_bytes / 1e9,
	       cli_now() - b.t0);
	return 0;
}
