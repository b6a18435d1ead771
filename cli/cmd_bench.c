/* cli/cmd_bench.c - `nvmoe bench ...`: dispatches `--io` to the I/O benchmark
 * (cli/cmd_bench_io.c) and `MODEL --backend cuda` to the GPU benchmark
 * (cli/cmd_bench_gpu.c); the CPU decode/prefill benchmark goes here when it lands.
 * A compute benchmark fills one JSON object, printed once with --json. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_cmd_bench(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) {
		printf("usage: nvmoe bench --io MODEL [--json]\n"
		       "       nvmoe bench MODEL --backend cuda [--vram-budget SZ] [--host-cache SZ]\n"
		       "                   [--prefill N] [--decode N] [--repeat N] [--json]\n"
		       "  --io   expert-read throughput of the io engine at queue depths 1-64, next to fio\n"
		       "         (raw O_DIRECT) and a mmap reader, from a cold page cache\n"
		       "  cuda   host->device copy bandwidth (page-locked, pageable), prefill and decode\n"
		       "         tokens/s with experts resident or through GPU expert slots\n"
		       "         (--vram-budget / --host-cache / a converted store), slot statistics\n");
		return 0;
	}
	if (rc) return rc;
	if (o.io) return cli_bench_io(&o);
	if (o.nargs == 1 && o.backend && !strcmp(o.backend, "cuda")) {
		cJSON *js = cJSON_CreateObject();
		if (!js) {
			fprintf(stderr, "nvmoe bench: out of memory\n");
			return 1;
		}
		rc = cli_bench_gpu(&o, js);
		if (!rc && o.json) {
			char *s = cJSON_Print(js);
			if (s) printf("%s\n", s);
			free(s);
		}
		cJSON_Delete(js);
		return rc;
	}
	fprintf(stderr, "nvmoe bench: only the I/O benchmark (--io) and the CUDA one (--backend cuda) are available "
			"in this build\n");
	return 2;
}
