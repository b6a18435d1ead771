/* cli/cmd_bench.c - `nvmoe bench ...`: `--io` goes to the I/O benchmark
 * (cli/cmd_bench_io.c); otherwise the compute benchmark (cli/cmd_bench_cpu.c, or
 * cli/cmd_bench_gpu.c with --backend cuda).
 * The compute benchmark's results are one JSON object that each part fills with its
 * own keys, printed once with --json (later parts add keys the same way). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct cli_stat3 cli_stat3(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_dbl);
	struct cli_stat3 s = { v[n - 1], n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0] };
	return s;
}

void cli_js_stat3(cJSON *js, const char *key, struct cli_stat3 s)
{
	char k[96];
	cJSON_AddNumberToObject(js, key, s.best);
	snprintf(k, sizeof k, "%s_median", key);
	cJSON_AddNumberToObject(js, k, s.med);
	snprintf(k, sizeof k, "%s_worst", key);
	cJSON_AddNumberToObject(js, k, s.worst);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe bench MODEL [--backend cpu|cuda] [--threads N] [--json]\n"
		   "                   [--host-cache SZ] [--vram-budget SZ] [--no-prefetch] [--lookahead K]\n"
		   "                   [--prefill N] [--decode N] [--repeat N]\n"
		   "       nvmoe bench --io MODEL [--json]\n"
		   "  compute: prefill and decode tokens/s, bytes/s of the FP4 expert kernel next to\n"
		   "           the memory bandwidth measured in the same run (copy and read)\n"
		   "  --threads N   CPU threads (default: all cores)\n"
		   "  --prefill N   prompt length (default 64)   --decode N   decode steps (default 16)\n"
		   "  --repeat N    repetitions of each measurement; best, median, worst (default 3)\n"
		   "  --json        one JSON object on stdout (keys decode_tok_s, prefill_tok_s,\n"
		   "                fp4_kernel_gbs, mem_bw_gbs, fp4_fraction_of_mem_bw, threads, ...)\n"
		   "  --io          expert-read throughput of the io engine at queue depths 1-64, next\n"
		   "                to fio (raw O_DIRECT) and a mmap reader, from a cold page cache\n");
}

int cli_cmd_bench(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_begin(argc, argv, &o, usage, 1, 1, "MODEL",
				 CLI_OPTS_MODEL " json io prefill decode repeat seed");
	if (rc >= 0) return rc;
	if (o.io) return cli_bench_io(&o);
	cJSON *js = cJSON_CreateObject();
	if (!js) {
		fprintf(stderr, "nvmoe bench: out of memory\n");
		return 1;
	}
	rc = o.backend && !strcmp(o.backend, "cuda") ? cli_bench_gpu(&o, js) : cli_bench_cpu(&o, js);
	if (!rc && o.json) {
		char *s = cJSON_Print(js);
		if (s) printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(js);
	return rc;
}
