/* cli/opts.c - the one configuration struct, filled from flags with getopt_long. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cache/policy.h"
#include "offload/prefetch.h"

#define NV_STR_(x) #x
#define NV_STR(x) NV_STR_(x)

int cli_parse_size(const char *s, uint64_t *out)
{
	if (!s || !*s) return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0) return -1;
	double mul = 1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mul = 1024.0; break;
		case 'M': mul = 1024.0 * 1024; break;
		case 'G': mul = 1024.0 * 1024 * 1024; break;
		case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
		default: return -1;
		}
		end++;
		if (*end == 'i' || *end == 'I') end++;
		if (*end == 'b' || *end == 'B') end++;
		if (*end) return -1;
	}
	if (v * mul >= 18446744073709549568.0) return -1; /* past 2^64: the cast would be undefined */
	*out = (uint64_t)(v * mul);
	return 0;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_print_err(const struct nv_err *e)
{
	char buf[2048];
	fprintf(stderr, "nvmoe: error: %s\n", core_err_str(e, buf, sizeof buf));
}

enum {
	O_BACKEND = 1000, O_VRAM_BUDGET, O_HOST_CACHE, O_THREADS, O_CTX, O_SEED, O_TEMP, O_TOPP,
	O_TOPK, O_THINK, O_ALLOW_EXTRA, O_VERIFY, O_JSON, O_FORCE, O_SMOOTH, O_RAW, O_IDS,
	O_STATS, O_MAX_TOKENS, O_CHUNK, O_PROMPT_FILE, O_OUT, O_TOKENS, O_TEXT, O_FILE,
	O_THINKING_MODE, O_MODE, O_TRACE, O_VRAM, O_RAM, O_PCIE, O_DISK, O_HIT, O_IO,
	O_NO_PREFETCH, O_LOOKAHEAD, O_POLICY, O_HELP, O_NO_MLOCK, O_TOKENIZER, O_PREFILL, O_DECODE, O_REPEAT,
	O_PREFILL_ORDER, O_LAST_
};
/* struct cli_opts.given has one bit per entry of g_long (the 'p' and 'v' ones included). */
_Static_assert(O_LAST_ - 1000 + 2 <= 64, "too many options for cli_opts.given");

static const struct option g_long[] = {
	{"backend", required_argument, 0, O_BACKEND},
	{"vram-budget", required_argument, 0, O_VRAM_BUDGET},
	{"host-cache", required_argument, 0, O_HOST_CACHE},
	{"threads", required_argument, 0, O_THREADS},
	{"ctx", required_argument, 0, O_CTX},
	{"seed", required_argument, 0, O_SEED},
	{"temperature", required_argument, 0, O_TEMP},
	{"top-p", required_argument, 0, O_TOPP},
	{"top-k", required_argument, 0, O_TOPK},
	{"think", required_argument, 0, O_THINK},
	{"allow-extra", no_argument, 0, O_ALLOW_EXTRA},
	{"verify", no_argument, 0, O_VERIFY},
	{"json", no_argument, 0, O_JSON},
	{"force", no_argument, 0, O_FORCE},
	{"smooth", no_argument, 0, O_SMOOTH},
	{"raw", no_argument, 0, O_RAW},
	{"ids", optional_argument, 0, O_IDS},
	{"stats", no_argument, 0, O_STATS},
	{"max-tokens", required_argument, 0, O_MAX_TOKENS},
	{"chunk", required_argument, 0, O_CHUNK},
	{"prompt", required_argument, 0, 'p'},
	{"prompt-file", required_argument, 0, O_PROMPT_FILE},
	{"out", required_argument, 0, O_OUT},
	{"tokens", required_argument, 0, O_TOKENS},
	{"text", required_argument, 0, O_TEXT},
	{"file", required_argument, 0, O_FILE},
	{"thinking-mode", required_argument, 0, O_THINKING_MODE},
	{"tokenizer", required_argument, 0, O_TOKENIZER},
	{"mode", required_argument, 0, O_MODE},
	{"trace-experts", required_argument, 0, O_TRACE},
	{"vram", required_argument, 0, O_VRAM},
	{"ram", required_argument, 0, O_RAM},
	{"pcie", required_argument, 0, O_PCIE},
	{"disk", required_argument, 0, O_DISK},
	{"hit-rate", required_argument, 0, O_HIT},
	{"io", no_argument, 0, O_IO},
	{"no-prefetch", no_argument, 0, O_NO_PREFETCH},
	{"lookahead", required_argument, 0, O_LOOKAHEAD},
	{"policy", required_argument, 0, O_POLICY},
	{"no-mlock", no_argument, 0, O_NO_MLOCK},
	{"prefill", required_argument, 0, O_PREFILL},
	{"decode", required_argument, 0, O_DECODE},
	{"repeat", required_argument, 0, O_REPEAT},
	{"prefill-order", required_argument, 0, O_PREFILL_ORDER},
	{"verbose", no_argument, 0, 'v'},
	{"help", no_argument, 0, O_HELP},
	{0, 0, 0, 0},
};

static int bad(const char *cmd, const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "nvmoe %s: bad value '%s' for --%s (expected %s; see nvmoe %s --help)\n", cmd, val, opt,
		want, cmd);
	return 2;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) return -1;
	*out = (int)v;
	return 0;
}

static int parse_dbl(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end) return -1;
	*out = v;
	return 0;
}

int cli_opts_parse(int argc, char **argv, struct cli_opts *o)
{
	memset(o, 0, sizeof *o);
	o->backend = "auto";
	o->ctx = 4096;
	o->seed = 0;
	o->temperature = -1;
	o->top_p = -1;
	o->think = "none";
	o->max_tokens = 256;
	o->mode = "all";
	o->pcie_gbps = 25;
	o->disk_gbps = 6;
	o->hit_rate = 0.5;
	o->prefetch = 1;
	o->lookahead = -1;
	const char *cmd = argv[0];
	o->cmd = cmd;
	optind = 1;
	opterr = 0;
	int c;
	int li;
	while ((li = -1, c = getopt_long(argc, argv, ":p:vh", g_long, &li)) != -1) {
		const char *a = optarg;
		if (c == 'p' || c == 'v') /* short forms: the long option's index */
			for (li = 0; g_long[li].name && g_long[li].val != c; li++)
				;
		if (li >= 0 && g_long[li].name) o->given |= 1ull << li;
		switch (c) {
		case O_BACKEND:
			if (strcmp(a, "cpu") && strcmp(a, "cuda") && strcmp(a, "auto"))
				return bad(cmd, "backend", a, "cpu, cuda or auto");
			o->backend = a; break;
		case O_VRAM_BUDGET: if (cli_parse_size(a, &o->vram_budget)) return bad(cmd, "vram-budget", a, "a size like 16G"); break;
		case O_HOST_CACHE: if (cli_parse_size(a, &o->host_cache)) return bad(cmd, "host-cache", a, "a size like 8G"); break;
		case O_THREADS: if (parse_int(a, 0, 4096, &o->threads)) return bad(cmd, "threads", a, "an integer 0..4096"); break;
		case O_CTX: if (parse_int(a, 1, 1 << 20, &o->ctx)) return bad(cmd, "ctx", a, "an integer 1..1048576");
			o->ctx_given = 1;
			break;
		case O_SEED: {
			char *end;
			errno = 0;
			o->seed = strtoull(a, &end, 0);
			if (errno || *end) return bad(cmd, "seed", a, "an integer");
			break;
		}
		case O_TEMP: if (parse_dbl(a, &o->temperature) || o->temperature < 0) return bad(cmd, "temperature", a, "a number >= 0"); break;
		case O_TOPP: if (parse_dbl(a, &o->top_p) || o->top_p <= 0 || o->top_p > 1) return bad(cmd, "top-p", a, "a number in (0, 1]"); break;
		case O_TOPK: if (parse_int(a, 0, 1 << 30, &o->top_k)) return bad(cmd, "top-k", a, "an integer >= 0"); break;
		case O_THINK:
			if (strcmp(a, "none") && strcmp(a, "high") && strcmp(a, "max"))
				return bad(cmd, "think", a, "none, high or max");
			o->think = a; break;
		case O_ALLOW_EXTRA: o->allow_extra = 1; break;
		case O_VERIFY: o->verify = 1; break;
		case O_JSON: o->json = 1; break;
		case O_FORCE: o->force = 1; break;
		case O_SMOOTH: o->smooth = 1; break;
		case O_RAW: o->raw = 1; break;
		case O_IDS: o->ids = 1; if (a) o->ids_json = a; break;
		case O_STATS: o->stats = 1; break;
		case O_MAX_TOKENS: if (parse_int(a, 0, 1 << 20, &o->max_tokens)) return bad(cmd, "max-tokens", a, "an integer 0..1048576"); break;
		case O_CHUNK: if (parse_int(a, 1, 1 << 20, &o->chunk)) return bad(cmd, "chunk", a, "an integer 1..1048576 (omit it for the default)"); break;
		case 'p': o->prompt = a; break;
		case O_PROMPT_FILE: o->prompt_file = a; break;
		case O_OUT: o->out = a; break;
		case O_TOKENS: o->tokens = a; break;
		case O_TEXT: o->text = a; break;
		case O_FILE: o->file = a; break;
		case O_THINKING_MODE: o->thinking_mode = a; break;
		case O_TOKENIZER: o->tokenizer = a; break;
		case O_MODE: o->mode = a; break;
		case O_TRACE: o->trace_experts = a; break;
		case O_VRAM: if (cli_parse_size(a, &o->vram)) return bad(cmd, "vram", a, "a size like 24G"); break;
		case O_RAM: if (cli_parse_size(a, &o->ram) || !o->ram) return bad(cmd, "ram", a, "a size > 0 like 128G"); break;
		case O_PCIE: if (parse_dbl(a, &o->pcie_gbps) || o->pcie_gbps <= 0) return bad(cmd, "pcie", a, "GB/s > 0"); break;
		case O_DISK: if (parse_dbl(a, &o->disk_gbps) || o->disk_gbps <= 0) return bad(cmd, "disk", a, "GB/s > 0"); break;
		case O_HIT: if (parse_dbl(a, &o->hit_rate) || o->hit_rate < 0 || o->hit_rate > 1) return bad(cmd, "hit-rate", a, "a fraction in [0, 1]"); break;
		case O_IO: o->io = 1; break;
		case O_NO_PREFETCH: o->prefetch = 0; break;
		case O_LOOKAHEAD:
			if (parse_int(a, 0, OFFLOAD_MAX_LOOKAHEAD, &o->lookahead))
				return bad(cmd, "lookahead", a, "an integer 0.." NV_STR(OFFLOAD_MAX_LOOKAHEAD));
			break;
		case O_POLICY:
			if (!cache_policy_find(a)) return bad(cmd, "policy", a, cache_policy_names());
			o->policy = a;
			break;
		case O_NO_MLOCK: o->no_mlock = 1; break;
		case O_PREFILL: if (parse_int(a, 1, 1 << 16, &o->bench_prefill)) return bad(cmd, "prefill", a, "an integer 1..65536"); break;
		case O_DECODE: if (parse_int(a, 1, 1 << 16, &o->bench_decode)) return bad(cmd, "decode", a, "an integer 1..65536"); break;
		case O_REPEAT: if (parse_int(a, 1, 1000, &o->repeat)) return bad(cmd, "repeat", a, "an integer 1..1000"); break;
		case O_PREFILL_ORDER:
			if (!strcmp(a, "auto")) o->prefill_order = CLI_PREFILL_AUTO;
			else if (!strcmp(a, "chunk")) o->prefill_order = CLI_PREFILL_CHUNK;
			else if (!strcmp(a, "layer")) o->prefill_order = CLI_PREFILL_LAYER;
			else return bad(cmd, "prefill-order", a, "chunk, layer or auto");
			break;
		case 'v': o->verbose++; break;
		case 'h': case O_HELP: return 3;
		case ':':
			fprintf(stderr, "nvmoe %s: option '%s' needs a value (see nvmoe %s --help)\n", cmd,
				argv[optind - 1], cmd);
			return 2;
		default:
			fprintf(stderr, "nvmoe %s: unknown option '%s' (see nvmoe %s --help)\n", cmd,
				argv[optind - 1], cmd);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (o->nargs == CLI_MAX_ARGS) {
			fprintf(stderr, "nvmoe %s: too many arguments (see nvmoe %s --help)\n", cmd, cmd);
			return 2;
		}
		o->args[o->nargs++] = argv[i];
	}
	return 0;
}

int cli_opts_args(const struct cli_opts *o, int min, int max, const char *names)
{
	if (o->nargs < min)
		return cli_usage_err(o, "missing %s", names);
	if (o->nargs > max)
		return cli_usage_err(o, "unexpected argument '%s' (expected %s)", o->args[max], names);
	return 0;
}

int cli_opts_begin(int argc, char **argv, struct cli_opts *o, void (*usage)(FILE *), int min, int max,
		   const char *names, const char *allowed)
{
	int rc = cli_opts_parse(argc, argv, o);
	if (rc == 3) {
		usage(stdout);
		return 0;
	}
	if (rc || (rc = cli_opts_only(o, allowed)) || (rc = cli_opts_args(o, min, max, names))) return rc;
	return -1;
}

/* Is `name` one of the space-separated words of `list`? */
static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *s = list; (s = strstr(s, name)); s += n)
		if ((s == list || s[-1] == ' ') && (s[n] == ' ' || s[n] == 0)) return 1;
	return 0;
}

int cli_opts_only(const struct cli_opts *o, const char *allowed)
{
	for (int i = 0; g_long[i].name; i++)
		if ((o->given >> i & 1) && !in_list(allowed, g_long[i].name) && strcmp(g_long[i].name, "verbose"))
			return cli_usage_err(o, "option --%s does not apply to %s", g_long[i].name, o->cmd);
	return 0;
}

int cli_opts_given(const struct cli_opts *o, const char *name)
{
	for (int i = 0; g_long[i].name; i++)
		if (!strcmp(g_long[i].name, name)) return (int)(o->given >> i & 1);
	return 0;
}

int cli_usage_err(const struct cli_opts *o, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nvmoe %s: ", o->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see nvmoe %s --help)\n", o->cmd);
	return 2;
}

void cli_usage_model_opts(FILE *f)
{
	fprintf(f, "  model options (run, chat, bench, eval, golden):\n"
		   "  --backend cpu|cuda|auto  kernels (auto: CUDA when a device is present)\n"
		   "  --threads N              CPU threads (default: all cores)\n"
		   "  --host-cache SZ          stream routed experts through a host cache of SZ bytes\n"
		   "                           (0: every expert resident, views into the checkpoint)\n"
		   "  --vram-budget SZ         CUDA: GPU memory to use (expert slots get what is left)\n"
		   "  --ram SZ                 (run, chat, bench, eval) host memory for the memory plan\n"
		   "                           (default: MemAvailable, or a lower cgroup limit).  Without\n"
		   "                           --host-cache and --vram-budget the tiers follow `nvmoe plan`:\n"
		   "                           experts resident when they fit, else streamed (-v shows it)\n"
		   "  --no-prefetch, --lookahead K (0.." NV_STR(OFFLOAD_MAX_LOOKAHEAD) ")  expert prefetch of the streamed tiers\n"
		   "  --policy NAME            host-cache eviction: lru (default), lfu, s3fifo\n"
		   "  --trace-experts FILE     write the routing trace (tools/tracesim replays it)\n"
		   "  --no-mlock               allow an unlocked host cache when mlock is refused\n"
		   "  -v, --verbose            describe the expert tiers on stderr\n"
		   "  --prefill-order chunk|layer|auto  (run, chat, eval, bench) a prompt of several chunks:\n"
		   "                           each chunk through every layer, or every chunk through a layer\n"
		   "                           before the next (each streamed expert read once per prompt);\n"
		   "                           auto: layer when experts stream. Same logits either way.\n");
}

const char *cli_prefill_name(int order)
{
	return order == CLI_PREFILL_LAYER ? "layer" : order == CLI_PREFILL_CHUNK ? "chunk" : "auto";
}

int cli_prefill_layer(int order, const struct cli_experts *x, int S, int chunk)
{
	if (chunk < 1 || S <= chunk || order == CLI_PREFILL_CHUNK) return 0;
	return order == CLI_PREFILL_LAYER || cli_experts_streamed(x);
}

void cli_opts_print(const struct cli_opts *o, FILE *f)
{
	fprintf(f, "config: backend=%s threads=%d ctx=%d host_cache=%llu vram_budget=%llu ram=%llu seed=%llu"
		   " temperature=%g top_p=%g top_k=%d think=%s smooth=%d chunk=%d prefetch=%d lookahead=%d policy=%s prefill_order=%s\n",
		o->backend, o->threads, o->ctx, (unsigned long long)o->host_cache,
		(unsigned long long)o->vram_budget, (unsigned long long)o->ram, (unsigned long long)o->seed, o->temperature,
		o->top_p, o->top_k, o->think, o->smooth, o->chunk, o->prefetch, o->lookahead, o->policy ? o->policy : "lru",
		cli_prefill_name(o->prefill_order));
}
