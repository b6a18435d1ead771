/* cli/cmd_plan.c - `nvmoe plan MODEL --vram SZ --ram SZ --ctx N [--pcie GBPS]
 * [--disk GBPS] [--hit-rate F]`: how memory would be split and what decode speed
 * the data movement allows (MODEL.md §13, DESIGN.md §1-2).  Refuses, with the
 * numbers, a plan that does not fit.
 *
 * Byte counts come from the expected tensor set of config.json (equal to the
 * checkpoint's once the loader checks pass; with shards present they are run too,
 * headers only), so a plan can be made before the download finishes.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/ckpt.h"

/* Assumptions of the model, printed with the plan. */
#define DRAM_GBPS 60.0                 /* low end of workstation DRAM (DESIGN.md §1) */
#define LIB_WORKSPACE (256ull << 20)   /* cuBLAS workspace, kernel scratch */
#define HOST_RESERVE (2ull << 30)      /* OS, process, staging buffers */
#define PREFILL_CHUNK 512              /* tokens per prefill chunk when --chunk is not given */

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe plan MODEL [--vram SZ] [--ram SZ] [--ctx N] [--pcie GBPS] [--disk GBPS]"
		   " [--hit-rate F] [--chunk N]\n"
		   "  Shows how GPU and host memory would be split for context N and the decode-time\n"
		   "  bounds set by moving routed experts (PCIe, NVMe, DRAM).  MODEL may hold only\n"
		   "  config.json.  Without --vram, prints the VRAM needed; without --ram, uses this\n"
		   "  machine's RAM.  --hit-rate: host-cache hit rate of expert reads (default 0.5).\n"
		   "  Exit status 1 when the plan does not fit.\n");
}

static int has_shards(const char *dir)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	if (!stat(p, &st)) return 1;
	DIR *d = opendir(dir);
	if (!d) return 0;
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		found = l > 12 && !strcmp(de->d_name + l - 12, ".safetensors");
	}
	closedir(d);
	return found;
}

struct kv { uint64_t cache, state; };

/* KV state of one sequence of n tokens (MODEL.md §13.1, reference layout, bf16):
 * every block a ring of W entries; ratio 4 adds n/4 main and n/4 indexer entries,
 * ratio 128 adds n/128 main entries; the compressors keep f32 state of 2 windows.
 * This is what the runtime stores in the faithful mode (bf16 caches; it adds only
 * chunk rows after each ring and one spare entry per cache, core_seq_state_bytes);
 * the exact and smooth modes keep f32 caches, twice `cache`. */
static struct kv kv_bytes(const struct core_config *c, uint64_t n)
{
	struct kv r = {0, 0};
	const uint64_t dh = (uint64_t)c->head_dim, dI = (uint64_t)c->index_head_dim;
	for (int i = 0; i < c->n_compress_ratios; i++) {
		r.cache += (uint64_t)c->sliding_window * dh * 2;
		if (c->compress_ratios[i] == 4) {
			r.cache += (n / 4) * dh * 2 + (n / 4) * dI * 2;
			r.state += 2 * (2 * 4) * (2 * dh) * 4 + 2 * (2 * 4) * (2 * dI) * 4;
		} else if (c->compress_ratios[i] == 128) {
			r.cache += (n / 128) * dh * 2;
			r.state += 2 * 128 * dh * 4;
		}
	}
	return r;
}

/* Activations of one prefill chunk (f32): hc streams, q, kv, expert hidden, indexer
 * queries, attention scores of every head over window + top-k entries, logits. */
static uint64_t workspace_bytes(const struct core_config *c, uint64_t chunk)
{
	uint64_t D = (uint64_t)c->hidden_size, M = (uint64_t)c->hc_mult, H = (uint64_t)c->num_attention_heads;
	uint64_t per_tok = 4 * (3 * M * D + 2 * H * (uint64_t)c->head_dim + (uint64_t)c->q_lora_rank +
				2 * (uint64_t)c->moe_intermediate_size * (uint64_t)c->num_experts_per_tok +
				(uint64_t)c->index_n_heads * (uint64_t)c->index_head_dim +
				H * ((uint64_t)c->sliding_window + (uint64_t)c->index_topk));
	return chunk * per_tok + 4 * (uint64_t)c->vocab_size + LIB_WORKSPACE;
}

static double gib(uint64_t v) { return (double)v / (1024.0 * 1024 * 1024); }

static void row(const char *label, uint64_t b, const char *note)
{
	char n[48];
	printf("  %-40s %19s B %9.2f GiB%s%s\n", label, cli_fmt_count(n, sizeof n, b), gib(b), *note ? "  " : "", note);
}

int cli_cmd_plan(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_begin(argc, argv, &o, usage, 1, 1, "MODEL",
				 "allow-extra chunk ctx vram ram pcie disk hit-rate");
	if (rc >= 0) return rc;
	const char *dir = o.args[0];
	struct nv_err e;
	core_err_clear(&e);
	struct core_config cfg;
	int validated = has_shards(dir);
	if (validated) {
		struct core_ckpt_opts co = { .allow_extra = o.allow_extra, .no_mmap = 1 };
		struct core_ckpt *ck;
		if (core_ckpt_open(dir, &co, &ck, &e)) { cli_print_err(&e); return 1; }
		cfg = *core_ckpt_config(ck);
		core_ckpt_close(ck);
	} else if (core_config_load(dir, &cfg, &e)) {
		cli_print_err(&e);
		return 1;
	}
	const struct core_config *c = &cfg;
	if (o.ctx > c->max_position_embeddings) {
		char b[32];
		core_err_set(&e, NV_EFIT, "plan", "--ctx", "use a smaller --ctx",
			     "--ctx %d exceeds the model's max_position_embeddings %s", o.ctx,
			     cli_fmt_count(b, sizeof b, (uint64_t)c->max_position_embeddings));
		cli_print_err(&e);
		return 1;
	}
	struct core_tensor_spec *sp;
	size_t ns;
	if (core_expected_tensors(c, &sp, &ns, &e)) { cli_print_err(&e); return 1; }
	const int L = c->num_hidden_layers, k = c->num_experts_per_tok, E = c->n_routed_experts;
	uint64_t resident = 0, embed = 0, mtp = 0, expert = 0;
	for (size_t i = 0; i < ns; i++) {
		uint64_t b = core_spec_nbytes(&sp[i]);
		if (sp[i].block == 0 && sp[i].expert == 0) expert += b;
		if (sp[i].expert >= 0) continue;
		if (!strcmp(sp[i].name, "embed.weight")) embed = b;
		else if (sp[i].block >= L) mtp += b;
		else resident += b;
	}
	free(sp);
	const uint64_t n_experts = (uint64_t)L * (uint64_t)E;
	const struct kv kv = kv_bytes(c, (uint64_t)o.ctx);
	const uint64_t chunk = o.chunk ? (uint64_t)o.chunk : (uint64_t)(o.ctx < PREFILL_CHUNK ? o.ctx : PREFILL_CHUNK);
	const uint64_t ws = workspace_bytes(c, chunk);
	const uint64_t gpu_fixed = resident + kv.cache + kv.state + ws;
	const uint64_t min_slots = 2 * (uint64_t)k; /* one layer's experts computing, the next layer's arriving */
	uint64_t ram = o.ram;
	int ram_probed = 0;
	if (!ram) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
		ram_probed = 1;
	}
	char b1[48], b2[48], b3[48];

	/* GPU */
	uint64_t slots;
	if (o.vram) {
		if (o.vram < gpu_fixed + min_slots * expert) {
			char s1[24], s2[24], s3[24], s4[24], s5[24], s6[24], s7[24];
			core_err_set(&e, NV_EFIT, "plan", "--vram",
				     "use a GPU with more memory, a smaller --ctx, or a smaller --chunk",
				     "does not fit: the GPU needs %s (resident weights %s + KV %s at %d tokens + compressor"
				     " state %s + workspace %s + %" PRIu64 " expert slots %s), --vram is %s",
				     cli_fmt_size(s1, sizeof s1, gpu_fixed + min_slots * expert),
				     cli_fmt_size(s2, sizeof s2, resident), cli_fmt_size(s3, sizeof s3, kv.cache), o.ctx,
				     cli_fmt_size(s4, sizeof s4, kv.state), cli_fmt_size(s5, sizeof s5, ws), min_slots,
				     cli_fmt_size(s6, sizeof s6, min_slots * expert), cli_fmt_size(s7, sizeof s7, o.vram));
			cli_print_err(&e);
			return 1;
		}
		slots = (o.vram - gpu_fixed) / expert;
		if (slots > n_experts) slots = n_experts;
	} else {
		slots = min_slots;
	}
	if (ram < embed + HOST_RESERVE + min_slots * expert) {
		char s1[24], s2[24], s3[24], s4[24], s5[24];
		core_err_set(&e, NV_EFIT, "plan", "--ram", "give more host memory (--ram)",
			     "does not fit: the host needs %s (embedding %s + reserve %s + %" PRIu64 " expert slots %s),"
			     " %s is %s", cli_fmt_size(s1, sizeof s1, embed + HOST_RESERVE + min_slots * expert),
			     cli_fmt_size(s2, sizeof s2, embed), cli_fmt_size(s3, sizeof s3, HOST_RESERVE), min_slots,
			     cli_fmt_size(s4, sizeof s4, min_slots * expert), ram_probed ? "this machine's RAM" : "--ram",
			     cli_fmt_size(s5, sizeof s5, ram));
		cli_print_err(&e);
		return 1;
	}
	uint64_t host_slots = (ram - embed - HOST_RESERVE) / expert;
	if (host_slots > n_experts) host_slots = n_experts;

	printf("plan: %s, context %s tokens%s\n", dir, cli_fmt_count(b1, sizeof b1, (uint64_t)o.ctx),
	       validated ? "" : " (config.json only: no shards found, loader checks not run)");
	printf("\nGPU%s:\n", o.vram ? "" : " (no --vram given: the minimum for this context)");
	row("resident weights (incl. head)", resident, "");
	snprintf(b2, sizeof b2, "KV state at %s tokens", cli_fmt_count(b1, sizeof b1, (uint64_t)o.ctx));
	row(b2, kv.cache, "bf16 (faithful; exact/smooth: x2)");
	row("compressor state", kv.state, "");
	snprintf(b2, sizeof b2, "workspace (estimate, chunk %" PRIu64 ")", chunk);
	row(b2, ws, "");
	snprintf(b2, sizeof b2, "expert slots: %s x %s B", cli_fmt_count(b1, sizeof b1, slots),
		 cli_fmt_count(b3, sizeof b3, expert));
	char note[96];
	snprintf(note, sizeof note, "%.1f%% of %" PRIu64 " experts", 100.0 * (double)slots / (double)n_experts, n_experts);
	row(b2, slots * expert, note);
	row("total", gpu_fixed + slots * expert, o.vram ? "" : "<- the VRAM this context needs");
	printf("host (%s%.2f GiB):\n", ram_probed ? "this machine: " : "", gib(ram));
	row("embedding", embed, "");
	row("reserve (OS, process, staging)", HOST_RESERVE, "");
	snprintf(b2, sizeof b2, "expert cache: %s slots", cli_fmt_count(b1, sizeof b1, host_slots));
	snprintf(note, sizeof note, "%.1f%% of the experts", 100.0 * (double)host_slots / (double)n_experts);
	row(b2, host_slots * expert, note);
	if (mtp) row("(MTP block, not loaded)", mtp, "no speculative decoding");

	/* Decode bounds per token from data movement (MODEL.md §13.2): R bytes of
	 * routed experts; a fraction g hits the GPU slots (uniform-access estimate),
	 * of the rest a fraction h hits the host cache, the remainder comes from disk. */
	const uint64_t R = (uint64_t)L * (uint64_t)k * expert;
	const double g = (double)slots / (double)n_experts;
	printf("\ndecode, per token: %d blocks x %d experts x %s B = %s B routed (PCIe %.0f GB/s, disk %.1f GB/s,"
	       " DRAM %.0f GB/s assumed)\n", L, k, cli_fmt_count(b1, sizeof b1, expert), cli_fmt_count(b2, sizeof b2, R),
	       o.pcie_gbps, o.disk_gbps, DRAM_GBPS);
	printf("  GPU-slot hit fraction (uniform-access estimate): %.3f; host hit rate if access were uniform: %.3f\n",
	       g, (double)host_slots / (double)n_experts);
	const double rates[2] = {0.0, o.hit_rate};
	for (int r = 0; r < 2; r++) {
		double h = rates[r], gg = r ? g : 0.0;
		double pcie = (double)R * (1 - gg), disk = pcie * (1 - h), dram = pcie + disk;
		double tp = pcie / (o.pcie_gbps * 1e9), td = disk / (o.disk_gbps * 1e9), tm = dram / (DRAM_GBPS * 1e9);
		double lo = tp > td ? tp : td;
		if (tm > lo) lo = tm;
		double hi = tp + td + tm;
		printf("  host hit rate %3.0f%%%s: disk %7.3f GB, PCIe %7.3f GB -> ", 100 * h,
		       r ? ", GPU slots as above" : ", no GPU-slot hits  ", disk / 1e9, pcie / 1e9);
		if (hi > 0)
			printf("%9.1f .. %9.1f ms/token (%.2f .. %.2f tokens/s)\n", lo * 1e3, hi * 1e3, 1 / hi, 1 / lo);
		else
			printf("no expert transfers (every expert stays in a GPU slot)\n");
	}
	printf("  (bounds from moving routed experts only: overlapped .. serial; compute and resident-weight reads"
	       " not included)\n");
	return 0;
}
