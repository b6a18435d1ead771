/* cli/cmd_bench.c - `nvmoe bench ...`: dispatches `--io` to the I/O benchmark
 * (cli/cmd_bench_io.c); the decode/prefill benchmark goes here when it lands. */
#include <stdio.h>

#include "cli.h"

int cli_cmd_bench(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) {
		printf("usage: nvmoe bench --io MODEL [--json]\n"
		       "  --io   expert-read throughput of the io engine at queue depths 1-64, next to fio\n"
		       "         (raw O_DIRECT) and a mmap reader, from a cold page cache\n");
		return 0;
	}
	if (rc) return rc;
	if (o.io) return cli_bench_io(&o);
	fprintf(stderr, "nvmoe bench: only the I/O benchmark (--io) is available in this build\n");
	return 2;
}
