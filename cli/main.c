/* cli/main.c - `nvmoe <command> ...` dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_version(int argc, char **argv);

struct cli_cmd {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
};

/* One line per subcommand (keep in the order of DESIGN.md §6, then tools). */
static const struct cli_cmd g_cmds[] = {
	{"inspect", cli_cmd_inspect, "validate a checkpoint; print config, tensor inventory and byte budget"},
	{"plan", cli_cmd_plan, "show the memory split and decode-speed bounds for --vram/--ram/--ctx"},
	{"convert", cli_cmd_convert, "write the expert store and resident pack of an HF checkpoint"},
	{"run", cli_cmd_run, "one-shot generation: nvmoe run MODEL -p TEXT (chat template; --raw for none)"},
	{"chat", cli_cmd_chat, "the interactive chat REPL"},
	{"bench", cli_cmd_bench, "benchmarks: prefill/decode tok/s, FP4 kernel vs memory bandwidth (--io: expert reads)"},
	{"eval", cli_cmd_eval, "teacher-forced logits of a token sequence (raw float32) and mean NLL"},
	{"golden", cli_cmd_golden, "check the forward pass against a golden case directory"},
	{"tokenize", cli_cmd_tokenize, "text -> token ids (JSON array)"},
	{"detokenize", cli_cmd_detokenize, "token ids -> text"},
	{"template", cli_cmd_template, "render a chat request / parse a completion (CHAT.md)"},
	{"version", cmd_version, "print the version and build features"},
};

static int cmd_version(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) {
		printf("usage: nvmoe version\n  Prints the version and the build features.\n");
		return 0;
	}
	if (rc) return rc;
	if ((rc = cli_opts_only(&o, "")) || (rc = cli_opts_args(&o, 0, 0, "no arguments"))) return rc;
	printf("nvmoe 0.1 (cuda: %s)\n",
#ifdef NVMOE_HAVE_CUDA
	       "yes"
#else
	       "no"
#endif
	);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
		fprintf(f, "  %-11s %s\n", g_cmds[i].name, g_cmds[i].help);
	fprintf(f, "\n");
	cli_usage_model_opts(f);
	fprintf(f, "sizes accept K/M/G suffixes.  `nvmoe <command> --help` for details.\n"
		   "exit status: 0 ok, 1 failure (one `nvmoe: error:` line), 2 usage error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
		if (!strcmp(argv[1], g_cmds[i].name))
			return g_cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "nvmoe: unknown command '%s' (see nvmoe --help)\n", argv[1]);
	return 2;
}
