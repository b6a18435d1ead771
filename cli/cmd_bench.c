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

void cli_prefill_res_begin(struct cli_prefill_res *r, const struct cli_opts *o, int layer, int chunk)
{
	memset(r, 0, sizeof *r);
	r->layer = layer;
	r->chunk = chunk;
	r->order = o->prefill_order;
}

void cli_prefill_res_add(struct cli_prefill_res *r, struct cli_experts *x, int after)
{
	uint64_t b, m, p;
	cli_experts_reads(x, &b, &m, &p);
	if (!after) {
		r->b0 = b, r->m0 = m, r->p0 = p;
		return;
	}
	r->bytes += (double)(b - r->b0);
	r->misses += (double)(m - r->m0);
	r->prefetches += (double)(p - r->p0);
}

void cli_prefill_res_print(const struct cli_prefill_res *r, FILE *f, cJSON *js, int n)
{
	double d = n > 0 ? n : 1;
	fprintf(f, "  %-44s %s-major (--prefill-order %s), chunks of %d; host cache per prefill: %.3f GB read, "
		   "%.0f misses, %.0f prefetch reads\n", "  prefill order", r->layer ? "layer" : "chunk",
		cli_prefill_name(r->order), r->chunk, r->bytes / d / 1e9, r->misses / d, r->prefetches / d);
	cJSON_AddStringToObject(js, "prefill_order", r->layer ? "layer" : "chunk");
	cJSON_AddNumberToObject(js, "prefill_chunk", r->chunk);
	cJSON *h = cJSON_AddObjectToObject(js, "prefill_host_cache");
	cJSON_AddNumberToObject(h, "bytes_read", r->bytes / d);
	cJSON_AddNumberToObject(h, "misses", r->misses / d);
	cJSON_AddNumberToObject(h, "prefetches", r->prefetches / d);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe bench MODEL [--backend cpu|cuda] [--threads N] [--json]\n"
		   "                   [--host-cache SZ] [--vram-budget SZ] [--no-prefetch] [--lookahead K]\n"
		   "                   [--prefill N] [--decode N] [--repeat N] [--chunk N] [--prefill-order O]\n"
		   "       nvmoe bench --io MODEL [--json]\n"
		   "  compute: prefill and decode tokens/s, bytes/s of the FP4 expert kernel next to\n"
		   "           the memory bandwidth measured in the same run (copy and read)\n"
		   "  --threads N   CPU threads (default: all cores)\n"
		   "  --prefill N   prompt length (default 64)   --decode N   decode steps (default 16)\n"
		   "  --chunk N     prefill in chunks of N (default: one chunk of the whole prompt)\n"
		   "  --prefill-order chunk|layer|auto  order of those chunks (auto: layer when experts\n"
		   "                stream); JSON keys prefill_order, prefill_host_cache {bytes_read, ...}\n"
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
				 CLI_OPTS_MODEL " " CLI_OPTS_AUTO " " CLI_OPTS_PREFILL " json io prefill decode repeat seed");
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
