/* cli/plan.h - the memory plan: how GPU and host memory are split between resident
 * weights, KV state, workspace, GPU expert slots and the host expert cache
 * (DESIGN.md §1-2).  `nvmoe plan` prints it; run, chat, bench and eval apply it when
 * neither --host-cache nor --vram-budget is given (cli_experts_open_auto).
 *
 * Contract
 *   cli_plan_make() is arithmetic on a config (no I/O): byte counts come from the
 *   config's expected tensor set (core_expected_tensors), equal to the checkpoint's
 *   once the loader checks pass.  The formula, per sequence of ctx tokens:
 *     expert      bytes of one routed expert (w1, w3, w2 + scales)
 *     n_experts   num_hidden_layers x n_routed_experts (the MTP block is not loaded)
 *     resident    dense weights incl. the output head, without embedding and MTP
 *     kv_cache    MODEL.md §13.1 bf16 caches (x2 with kv_f32: exact/smooth numerics)
 *     kv_state    compressor state (f32)
 *     ws          activations of one prefill chunk (f32) + vocab logits + 256 MiB
 *                 library/kernel scratch
 *     min_slots   2 x num_experts_per_tok (one layer computing, the next arriving)
 *   GPU backend: gpu_fixed = resident + kv_cache + kv_state + ws; host_fixed =
 *   embed + CLI_PLAN_HOST_RESERVE.  gpu_slots = (vram - gpu_fixed) / expert (at most
 *   n_experts; without vram: min_slots), host_slots = (ram - host_fixed) / expert (at
 *   most n_experts).
 *   CPU backend: everything is host memory: host_fixed = resident + embed + kv_cache
 *   + kv_state + ws + CLI_PLAN_HOST_RESERVE; gpu_slots = 0; host_slots as above.
 *   The experts stream (p->stream) when the slots of the tier that computes (GPU
 *   slots on the GPU, host slots on the CPU) are fewer than n_experts; then
 *   host_cache = host_slots x expert and, on the GPU, vram_budget = vram.  When they
 *   do not stream, both are 0 (everything resident, today's default).
 *   Does not fit (NV_EFIT, one message with every figure and a hint): the tier needs
 *   its fixed part plus min_slots experts.  Messages name in->ram_from / vram_from
 *   ("--ram", "available RAM (MemAvailable)", ...).
 *
 *   cli_plan_probe_ram() reads the RAM available to this process: MemAvailable of a
 *   meminfo file, lowered to a cgroup limit (v2 memory.max / v1 limit_in_bytes) when
 *   one of the given files holds a lower one.  Pure functions otherwise; no state.
 */
#ifndef NV_CLI_PLAN_H
#define NV_CLI_PLAN_H

#include <stdint.h>
#include <stdio.h>
#include "core/err.h"

#define CLI_PLAN_HOST_RESERVE (2ull << 30)   /* OS, process, staging buffers */
#define CLI_PLAN_LIB_WORKSPACE (256ull << 20) /* cuBLAS workspace, kernel scratch */
#define CLI_PLAN_PREFILL_CHUNK 512           /* chunk when none is given */

struct core_config;
struct cJSON;

struct cli_plan_in {
	const struct core_config *cfg;
	int gpu;               /* 1: CUDA backend (weights, KV, workspace, slots in VRAM); 0: CPU */
	uint64_t ram;          /* host bytes nvmoe may use (> 0) */
	int ram_probed;        /* ram was measured, not given (the table says "this machine") */
	const char *ram_from;  /* what ram is, for messages (NULL = "--ram") */
	uint64_t vram;         /* gpu: device bytes nvmoe may use; 0 = plan the minimum */
	const char *vram_from; /* NULL = "--vram" */
	int ctx;               /* tokens of the sequence (>= 1) */
	int chunk;             /* prefill chunk; 0 = min(ctx, CLI_PLAN_PREFILL_CHUNK) */
	int kv_f32;            /* exact/smooth numerics keep f32 KV caches */
};

struct cli_plan {
	struct cli_plan_in in;
	/* the model's bytes */
	uint64_t resident, embed, mtp, expert, n_experts;
	/* the sequence's bytes */
	uint64_t kv_cache, kv_state, ws, chunk;
	uint64_t min_slots;
	/* the split */
	uint64_t gpu_fixed, host_fixed; /* bytes every plan needs on each side */
	uint64_t gpu_slots, host_slots; /* expert slots (each `expert` bytes) */
	int stream;                     /* 1: routed experts stream through the tiers */
	uint64_t host_cache;            /* --host-cache equivalent (0 when resident) */
	uint64_t vram_budget;           /* --vram-budget equivalent (0 when resident or CPU) */
};

/* Fill *p from *in.  0, or NV_EFIT / a config error with *e filled. */
int cli_plan_make(const struct cli_plan_in *in, struct cli_plan *p, struct nv_err *e);
/* The memory tables of `nvmoe plan` (GPU and host, or host alone on the CPU). */
void cli_plan_print(const struct cli_plan *p, FILE *f);
/* One line: where the experts live and the sizes chosen ("experts stream through a
 * host cache of ..."); returns buf. */
const char *cli_plan_line(const struct cli_plan *p, char *buf, size_t n);
/* Keys of p added to obj: stream, host_cache_bytes, vram_budget_bytes, ram_bytes,
 * ram_from, vram_bytes, gpu_slots, host_slots, experts, expert_bytes. */
void cli_plan_json(const struct cli_plan *p, struct cJSON *obj);
/* RAM available: MemAvailable of `meminfo` ("/proc/meminfo"), lowered to the
 * smallest limit among the NULL-terminated `cgroup` files ("max" or absent files =
 * no limit).  0 and *ram, *from ("MemAvailable" or the cgroup file); NV_EMISSING /
 * NV_EFORMAT when meminfo has no MemAvailable line. */
int cli_plan_probe_ram(const char *meminfo, const char *const *cgroup, uint64_t *ram, char *from, size_t from_n,
		       struct nv_err *e);
/* The same on this machine: /proc/meminfo and the cgroup files of this process. */
int cli_plan_ram_here(uint64_t *ram, char *from, size_t from_n, struct nv_err *e);

#endif
