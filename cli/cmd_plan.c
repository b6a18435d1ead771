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
#include "plan.h"
#include "core/ckpt.h"

/* Assumptions of the model, printed with the plan. */
#define DRAM_GBPS 60.0                 /* low end of workstation DRAM (DESIGN.md §1) */

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe plan MODEL [--vram SZ] [--ram SZ] [--ctx N] [--pcie GBPS] [--disk GBPS]"
		   " [--hit-rate F] [--chunk N]\n"
		   "       [--backend cpu|cuda]\n"
		   "  Shows how GPU and host memory would be split for context N and the decode-time\n"
		   "  bounds set by moving routed experts (PCIe, NVMe, DRAM).  MODEL may hold only\n"
		   "  config.json.  Without --vram, prints the VRAM needed; without --ram, uses this\n"
		   "  machine's RAM.  --hit-rate: host-cache hit rate of expert reads (default 0.5).\n"
		   "  --backend cpu: the CPU backend's split (everything in host memory; no --vram).\n"
		   "  run, chat, bench and eval apply this plan when neither --host-cache nor\n"
		   "  --vram-budget is given (see their --ram).\n"
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

int cli_cmd_plan(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_begin(argc, argv, &o, usage, 1, 1, "MODEL",
				 "allow-extra chunk ctx vram ram pcie disk hit-rate backend");
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
	uint64_t ram = o.ram;
	int ram_probed = 0;
	if (!ram) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
		ram_probed = 1;
	}
	const int gpu = strcmp(o.backend, "cpu") != 0;
	if (!gpu && o.vram) return cli_usage_err(&o, "--vram does not apply to --backend cpu");
	struct cli_plan_in in = { .cfg = c, .gpu = gpu, .ram = ram, .ram_probed = ram_probed,
				  .ram_from = ram_probed ? "this machine's RAM" : "--ram", .vram = o.vram,
				  .ctx = o.ctx, .chunk = o.chunk };
	struct cli_plan p;
	if (cli_plan_make(&in, &p, &e)) { cli_print_err(&e); return 1; }
	const int L = c->num_hidden_layers, k = c->num_experts_per_tok;
	const uint64_t expert = p.expert, n_experts = p.n_experts, slots = p.gpu_slots, host_slots = p.host_slots;
	char b1[48], b2[48];
	printf("plan: %s, context %s tokens%s%s\n", dir, cli_fmt_count(b1, sizeof b1, (uint64_t)o.ctx),
	       gpu ? "" : ", CPU backend",
	       validated ? "" : " (config.json only: no shards found, loader checks not run)");
	cli_plan_print(&p, stdout);

	/* Decode bounds per token from data movement (MODEL.md §13.2): R bytes of
	 * routed experts; a fraction g hits the GPU slots (uniform-access estimate),
	 * of the rest a fraction h hits the host cache, the remainder comes from disk. */
	const uint64_t R = (uint64_t)L * (uint64_t)k * expert;
	const double g = (double)slots / (double)n_experts;
	printf("\ndecode, per token: %d blocks x %d experts x %s B = %s B routed (PCIe %.0f GB/s, disk %.1f GB/s,"
	       " DRAM %.0f GB/s assumed)\n", L, k, cli_fmt_count(b1, sizeof b1, expert), cli_fmt_count(b2, sizeof b2, R),
	       o.pcie_gbps, o.disk_gbps, DRAM_GBPS);
	if (gpu)
		printf("  GPU-slot hit fraction (uniform-access estimate): %.3f; host hit rate if access were uniform: %.3f\n",
		       g, (double)host_slots / (double)n_experts);
	else
		printf("  CPU backend: no PCIe; host hit rate if access were uniform: %.3f\n",
		       (double)host_slots / (double)n_experts);
	const double rates[2] = {0.0, o.hit_rate};
	for (int r = 0; r < 2; r++) {
		double h = rates[r], gg = r ? g : 0.0;
		/* on the CPU the kernels read every routed byte from DRAM; misses also write it there */
		double pcie = gpu ? (double)R * (1 - gg) : 0.0, disk = (gpu ? pcie : (double)R) * (1 - h);
		double dram = (gpu ? pcie : (double)R) + disk;
		double tp = pcie / (o.pcie_gbps * 1e9), td = disk / (o.disk_gbps * 1e9), tm = dram / (DRAM_GBPS * 1e9);
		double lo = tp > td ? tp : td;
		if (tm > lo) lo = tm;
		double hi = tp + td + tm;
		printf("  host hit rate %3.0f%%%s: disk %7.3f GB, PCIe %7.3f GB -> ", 100 * h,
		       !gpu ? "" : r ? ", GPU slots as above" : ", no GPU-slot hits  ", disk / 1e9, pcie / 1e9);
		if (hi > 0)
			printf("%9.1f .. %9.1f ms/token (%.2f .. %.2f tokens/s)\n", lo * 1e3, hi * 1e3, 1 / hi, 1 / lo);
		else
			printf("no expert transfers (every expert stays in a GPU slot)\n");
	}
	printf("  (bounds from moving routed experts only: overlapped .. serial; compute and resident-weight reads"
	       " not included)\n");
	return 0;
}
