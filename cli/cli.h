/* cli/cli.h - the nvmoe program: subcommands and the one configuration struct.
 *
 * Contract
 *   Every subcommand is `int cli_cmd_<name>(int argc, char **argv)` with argv[0] the
 *   subcommand name; it returns the process exit status (0 ok, 1 failure, 2 usage).
 *   Options are parsed once into struct cli_opts by cli_opts_parse() (getopt_long);
 *   positional arguments are left in opts->args.  Only cli/ prints and exits.
 */
#ifndef NV_CLI_H
#define NV_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "core/err.h"

#define CLI_MAX_ARGS 8

struct cli_opts {
	/* common (DESIGN.md §6) */
	const char *backend;      /* cpu | cuda | auto */
	uint64_t vram_budget;     /* bytes, 0 = all */
	uint64_t host_cache;      /* bytes, 0 = no limit (everything resident) */
	int threads;              /* 0 = all cores */
	int ctx;                  /* max context (tokens) */
	int ctx_given;            /* --ctx was on the command line (else the default may be lowered) */
	uint64_t seed;
	double temperature;       /* <0: from generation_config.json */
	double top_p;             /* <0: from generation_config.json */
	int top_k;                /* 0 = off */
	const char *think;        /* none | high | max */
	int allow_extra;
	int verify;
	int json;
	int force;
	int smooth;               /* numeric mode: no activation quantisation, no bf16 rounding */
	int raw;
	int ids;
	int stats;
	int max_tokens;
	int chunk;                /* prefill chunk (tokens), 0 = the command's default */
	const char *prompt;       /* -p */
	const char *prompt_file;
	const char *out;          /* --out */
	const char *tokens;       /* --tokens FILE */
	const char *text;         /* --text */
	const char *file;         /* --file */
	const char *ids_json;     /* --ids JSON (detokenize) */
	const char *thinking_mode;/* template parse --thinking-mode */
	const char *tokenizer;    /* --tokenizer DIR|FILE (template render --ids) */
	const char *mode;         /* golden --mode smooth|exact|faithful|all */
	const char *trace_experts;/* --trace-experts FILE */
	uint64_t vram;            /* plan */
	uint64_t ram;             /* plan; run, chat, bench, eval: host memory for the memory plan (0 = probe) */
	double pcie_gbps, disk_gbps, hit_rate; /* plan */
	int io;                   /* bench --io */
	int prefetch;             /* 1 on (default), 0 off */
	int lookahead;            /* router lookahead depth, -1 = default */
	const char *policy;       /* host-cache eviction policy: lru (default), lfu, s3fifo */
	int verbose;
	int no_mlock;             /* host cache may run unlocked (warning) when mlock is refused */
	int bench_prefill;        /* bench: prompt tokens (0 = default) */
	int bench_decode;         /* bench: decode steps (0 = default) */
	int repeat;               /* bench: repetitions of each measurement (0 = default) */
	int prefill_order;        /* enum cli_prefill: order of a multi-chunk prompt */
	const char *cmd;          /* argv[0] of the subcommand, for messages */
	uint64_t given;           /* options given (bit = index in opts.c's table) */
	int nargs;
	const char *args[CLI_MAX_ARGS];
};

/* Parse argv (argv[0] = subcommand).  Returns 0; 2 after printing a usage error;
 * 3 when --help/-h was given (the command prints its usage and exits 0). */
int cli_opts_parse(int argc, char **argv, struct cli_opts *o);
/* Check the positional arguments after cli_opts_parse: min..max of them, named by
 * `names` ("MODEL", "MODEL [IDS_JSON]") in the message.  0 ok; 2 after one line on
 * stderr naming what is missing or extra ("nvmoe CMD: missing MODEL (see nvmoe CMD
 * --help)").  Every subcommand uses it so that usage errors read the same. */
int cli_opts_args(const struct cli_opts *o, int min, int max, const char *names);
/* The prologue of a subcommand: cli_opts_parse, --help (usage(stdout), status 0),
 * then cli_opts_args(o, min, max, names).  -1 to go on, else the exit status to
 * return at once (the message is printed). */
int cli_opts_begin(int argc, char **argv, struct cli_opts *o, void (*usage)(FILE *), int min, int max,
		   const char *names, const char *allowed);
/* Usage error (2) when an option was given that is not among the space-separated long
 * names of `allowed` (--help and --verbose are always allowed), e.g. `inspect --ctx`:
 * options mean something to a command or are refused, never silently ignored. */
int cli_opts_only(const struct cli_opts *o, const char *allowed);
/* 1 when the long option `name` ("host-cache") was on the command line. */
int cli_opts_given(const struct cli_opts *o, const char *name);
/* --prefill-order: the order of a prompt longer than one chunk (core/model.h):
 * chunk-major, layer-major, or auto = layer-major when the prompt spans more than
 * one chunk and routed experts are streamed (cli_experts_streamed); the logits are
 * the same either way. */
enum cli_prefill { CLI_PREFILL_AUTO = 0, CLI_PREFILL_CHUNK, CLI_PREFILL_LAYER };
/* 1 = run S prompt tokens in chunks of `chunk` layer-major under `order` (enum
 * cli_prefill; x may be NULL). */
struct cli_experts;
int cli_prefill_layer(int order, const struct cli_experts *x, int S, int chunk);
/* "chunk" | "layer" | "auto" */
const char *cli_prefill_name(int order);
/* Option sets of cli_opts_only: loading a model for the forward pass, and generating. */
#define CLI_OPTS_MODEL "backend threads host-cache vram-budget no-prefetch lookahead policy trace-experts no-mlock " \
	"allow-extra chunk smooth stats"
#define CLI_OPTS_GEN "ctx seed temperature top-p top-k think max-tokens raw"
/* run, chat, eval, bench: the commands whose expert tiers default to the memory plan */
#define CLI_OPTS_AUTO "ram"
/* run, chat, eval, bench (commands whose prompts are prefilled in chunks) */
#define CLI_OPTS_PREFILL "prefill-order"
/* A usage error that is not about the positional arguments: prints "nvmoe CMD: <msg>
 * (see nvmoe CMD --help)" to stderr and returns 2. */
int cli_usage_err(const struct cli_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The options of every command that loads a model (backend, threads, expert tiers),
 * for the --help texts: one block, so that they read the same everywhere. */
void cli_usage_model_opts(FILE *f);
/* Print the effective configuration (rule 7) to f. */
void cli_opts_print(const struct cli_opts *o, FILE *f);
/* "12G", "512M", "4096" -> bytes.  0 ok, -1 malformed. */
int cli_parse_size(const char *s, uint64_t *out);
/* Seconds on the monotonic clock (durations, throughput). */
double cli_now(void);
/* Print an error in the house format: "nvmoe: <file>: <object>: <why> (hint: ...)". */
void cli_print_err(const struct nv_err *e);

/* Routed experts for a model (cli/experts.c): NULL *src = resident (no --host-cache
 * and no expert store); otherwise the streamed source of offload/source.h bounded
 * by --host-cache.  *x owns it; close with cli_experts_close (prints statistics
 * with --stats).  The checkpoint must outlive *x. */
struct cli_experts;
struct core_ckpt;
struct core_expert_src;
int cli_experts_open(const struct cli_opts *o, const struct core_ckpt *ck, struct cli_experts **x,
		     const struct core_expert_src **src, struct nv_err *e);
/* The same for backend k: on a GPU backend, --vram-budget, --host-cache or a store
 * give GPU expert slots (cache/gpu) whose views are device memory; without them the
 * experts stay resident (NULL *src).  k must outlive *x.  After the model and its
 * sequence exist, cli_experts_reserve() sizes the slots to what the budget leaves
 * (no-op without slots; otherwise the first acquire does it). */
struct kern;
int cli_experts_open_k(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, struct cli_experts **x,
		       const struct core_expert_src **src, struct nv_err *e);
/* The default of run, chat, bench and eval: when neither --host-cache nor
 * --vram-budget is given, the sizes come from the memory plan (cli/plan.h) for a
 * sequence of ctx tokens prefilled in chunks of `chunk` (0 = the plan's default):
 * RAM = --ram or the RAM available (MemAvailable, lowered to a cgroup limit); VRAM =
 * free device memory less a margin.  Everything fits: resident as with
 * cli_experts_open_k; otherwise the experts stream through the plan's host cache
 * (unlocked with a warning when RLIMIT_MEMLOCK refuses it) and, on a GPU, GPU slots
 * under the plan's VRAM budget.  A plan that does not fit is an error (NV_EFIT,
 * the numbers and a hint).  Explicit flags: exactly cli_experts_open_k.  *x is
 * always set on success (resident: no tiers, *src NULL); -v prints the choice. */
int cli_experts_open_auto(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, int ctx, int chunk,
			  struct cli_experts **x, const struct core_expert_src **src, struct nv_err *e);
/* "memory plan: <where the experts live, sizes> (auto from RAM x (source), VRAM y)",
 * or "memory plan: explicit: --host-cache ..., --vram-budget ..." (x may be NULL). */
const char *cli_experts_plan_line(const struct cli_experts *x, char *buf, size_t n);
/* bench --json key memory_plan {auto, stream, host_cache_bytes, vram_budget_bytes,
 * and with auto: ram_bytes, ram_from, vram_bytes, gpu_slots, host_slots, experts,
 * expert_bytes}; x may be NULL. */
struct cJSON;
void cli_experts_plan_json(const struct cli_experts *x, struct cJSON *root);
/* The effective --host-cache and --vram-budget (the flags', or the plan's); x may be NULL (zeros). */
void cli_experts_sizes(const struct cli_experts *x, uint64_t *host_cache, uint64_t *vram_budget);
int cli_experts_reserve(struct cli_experts *x, struct nv_err *e);
/* GPU-slot statistics (bench): 0 and the figures, or -1 when x has no GPU slots. */
struct cache_gpu_stats;
int cli_experts_gpu_stats(const struct cli_experts *x, struct cache_gpu_stats *st, int *nslots, int *pinned);
/* Closes x (NULL ok), publishing the --trace-experts trace: returns 1 after printing
 * when that failed, else 0. */
int cli_experts_close(struct cli_experts *x);
/* One statistics line (offload_stats_line) for `run --stats` and the REPL's /stats;
 * tokens = decoded tokens to spread the stall over (0 = omit). */
const char *cli_experts_stats_line(struct cli_experts *x, uint64_t tokens, char *buf, size_t n);
/* 1 when routed experts stream during a prefill: a host cache with fewer slots than
 * the model has routed experts, or GPU slots fewer than that; 0 for resident experts
 * (x NULL) or a cache that holds them all. */
int cli_experts_streamed(const struct cli_experts *x);
/* Host-cache counters so far (zeros without a host cache): bytes read, demand
 * misses, prefetch reads. */
void cli_experts_reads(struct cli_experts *x, uint64_t *bytes_read, uint64_t *misses, uint64_t *prefetches);
/* bench --json keys: host_cache {hits, misses, evictions, bytes_read}, prefetch
 * {hash {issued, used, predicted, correct}, lookahead {...}, wasted_bytes, cancelled,
 * lookahead_depth}, stall_ms_per_token, io {bytes, seconds}, memory_plan {...}.  x may be NULL
 * (resident: zeros). */
struct cJSON;
void cli_experts_json(struct cli_experts *x, struct cJSON *root, uint64_t tokens);
/* inspect of a converted model: open the expert store (header, geometry, size; prints
 * the error); with `records`, also check the checksum of every record, printing bad
 * records and a summary.  0 when all is good, else 1. */
int cli_verify_store(const struct core_ckpt *ck, int records);

/* Subcommands (one line each; implementations in cli/cmd_<name>.c). */
int cli_cmd_convert(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);
int cli_bench_io(const struct cli_opts *o); /* bench --io (cli/cmd_bench_io.c) */
/* bench --backend cuda (cli/cmd_bench_gpu.c): adds its keys to `js`; 0 ok, else exit status. */
struct cJSON;
int cli_bench_gpu(const struct cli_opts *o, struct cJSON *js);
/* Best (max), median and worst (min) of n rates (sorts v); added to a bench JSON
 * object as key, key_median, key_worst (cli/cmd_bench.c). */
struct cli_stat3 { double best, med, worst; };
struct cli_stat3 cli_stat3(double *v, int n);
void cli_js_stat3(struct cJSON *js, const char *key, struct cli_stat3 s);
/* Prefill order and host-cache reads of the bench's prefills (cli/cmd_bench.c):
 * begin() records the choice; add(x, 0) before and add(x, 1) after each prefill
 * accumulate the reads in between; print() shows one line and adds the JSON keys
 * prefill_order, prefill_chunk and prefill_host_cache {bytes_read, misses,
 * prefetches} (means per prefill over n prefills). */
struct cli_prefill_res {
	int layer, chunk, order;
	uint64_t b0, m0, p0;
	double bytes, misses, prefetches;
};
void cli_prefill_res_begin(struct cli_prefill_res *r, const struct cli_opts *o, int layer, int chunk);
void cli_prefill_res_add(struct cli_prefill_res *r, struct cli_experts *x, int after);
void cli_prefill_res_print(const struct cli_prefill_res *r, FILE *f, struct cJSON *js, int n);
/* bench (compute): adds its keys to `js` (cli/cmd_bench_cpu.c); 0 ok, else exit status. */
struct cJSON;
int cli_bench_cpu(const struct cli_opts *o, struct cJSON *js);
/* The kernel backend chosen by --backend / --threads (cli/backend.c); NULL + *e. */
struct kern;
int cli_cmd_inspect(int argc, char **argv);
int cli_cmd_plan(int argc, char **argv);

/* "159,609,485,896" / "148.65 GiB" into buf; return buf (cli/cmd_inspect.c). */
const char *cli_fmt_count(char *buf, size_t n, uint64_t v);
const char *cli_fmt_size(char *buf, size_t n, uint64_t v);
int cli_cmd_golden(int argc, char **argv);
int cli_cmd_eval(int argc, char **argv);
int cli_cmd_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int cli_cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */
int cli_cmd_template(int argc, char **argv);   /* cmd_template.c */
int cli_cmd_run(int argc, char **argv);        /* cmd_run.c */
int cli_cmd_chat(int argc, char **argv);       /* cmd_chat.c */

/* The kernel backend chosen by o->backend (cli/backend.c): cpu, cuda, or auto (cuda
 * when a device is present).  0 and *out, or an error (no device, no CUDA build). */
struct kern;
int cli_backend_create(const struct cli_opts *o, struct kern **out, struct nv_err *e);
/* Error when backend k cannot use the expert source src (NULL = resident: always
 * fine): host-cache / expert-store views are host memory, which only the CPU backend
 * reads; a GPU backend needs the GPU expert slots of cli_experts_open_k. */
struct core_expert_src;
int cli_backend_check_experts(const struct kern *k, const struct core_expert_src *src, struct nv_err *e);

#endif
