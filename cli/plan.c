/* cli/plan.c - the memory plan (contract in plan.h): the split of `nvmoe plan`, and
 * the default of the commands that load a model. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plan.h"
#include "core/ckpt.h"
#include "core/config.h"

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
	return chunk * per_tok + 4 * (uint64_t)c->vocab_size + CLI_PLAN_LIB_WORKSPACE;
}

static double gib(uint64_t v) { return (double)v / (1024.0 * 1024 * 1024); }
static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

int cli_plan_make(const struct cli_plan_in *in, struct cli_plan *p, struct nv_err *e)
{
	memset(p, 0, sizeof *p);
	p->in = *in;
	if (!p->in.ram_from) p->in.ram_from = "--ram";
	if (!p->in.vram_from) p->in.vram_from = "--vram";
	const struct core_config *c = in->cfg;
	struct core_tensor_spec *sp;
	size_t ns;
	int rc = core_expected_tensors(c, &sp, &ns, e);
	if (rc) return rc;
	const int L = c->num_hidden_layers, k = c->num_experts_per_tok, E = c->n_routed_experts;
	for (size_t i = 0; i < ns; i++) {
		uint64_t b = core_spec_nbytes(&sp[i]);
		if (sp[i].block == 0 && sp[i].expert == 0) p->expert += b;
		if (sp[i].expert >= 0) continue;
		if (!strcmp(sp[i].name, "embed.weight")) p->embed = b;
		else if (sp[i].block >= L) p->mtp += b;
		else p->resident += b;
	}
	free(sp);
	p->n_experts = (uint64_t)L * (uint64_t)E;
	const struct kv kv = kv_bytes(c, (uint64_t)in->ctx);
	p->kv_cache = in->kv_f32 ? 2 * kv.cache : kv.cache;
	p->kv_state = kv.state;
	p->chunk = in->chunk ? (uint64_t)in->chunk
			     : (uint64_t)(in->ctx < CLI_PLAN_PREFILL_CHUNK ? in->ctx : CLI_PLAN_PREFILL_CHUNK);
	p->ws = workspace_bytes(c, p->chunk);
	p->min_slots = 2 * (uint64_t)k;
	const uint64_t seq = p->resident + p->kv_cache + p->kv_state + p->ws;
	const uint64_t ram = in->ram, vram = in->vram;
	char s[9][24];
#define SZ(i, v) cli_fmt_size(s[i], sizeof s[i], (v))

	if (in->gpu) {
		p->gpu_fixed = seq;
		p->host_fixed = p->embed + CLI_PLAN_HOST_RESERVE;
		if (vram) {
			if (vram < p->gpu_fixed + p->min_slots * p->expert)
				return core_err_set(e, NV_EFIT, "plan", p->in.vram_from,
						    "use a GPU with more memory, a smaller --ctx, or a smaller --chunk",
						    "does not fit: the GPU needs %s (resident weights %s + KV %s at %d tokens + "
						    "compressor state %s + workspace %s + %" PRIu64 " expert slots %s), %s is %s",
						    SZ(0, p->gpu_fixed + p->min_slots * p->expert), SZ(1, p->resident),
						    SZ(2, p->kv_cache), in->ctx, SZ(3, p->kv_state), SZ(4, p->ws), p->min_slots,
						    SZ(5, p->min_slots * p->expert), p->in.vram_from, SZ(6, vram));
			p->gpu_slots = min64((vram - p->gpu_fixed) / p->expert, p->n_experts);
		} else {
			p->gpu_slots = p->min_slots;
		}
		if (ram < p->host_fixed + p->min_slots * p->expert)
			return core_err_set(e, NV_EFIT, "plan", p->in.ram_from, "give more host memory (--ram)",
					    "does not fit: the host needs %s (embedding %s + reserve %s + %" PRIu64
					    " expert slots %s), %s is %s",
					    SZ(0, p->host_fixed + p->min_slots * p->expert), SZ(1, p->embed),
					    SZ(2, CLI_PLAN_HOST_RESERVE), p->min_slots, SZ(3, p->min_slots * p->expert),
					    p->in.ram_from, SZ(4, ram));
		p->host_slots = min64((ram - p->host_fixed) / p->expert, p->n_experts);
		p->stream = p->gpu_slots < p->n_experts;
		if (p->stream) {
			p->host_cache = p->host_slots * p->expert;
			p->vram_budget = vram;
		}
	} else {
		p->host_fixed = seq + p->embed + CLI_PLAN_HOST_RESERVE;
		if (ram < p->host_fixed + p->min_slots * p->expert)
			return core_err_set(e, NV_EFIT, "plan", p->in.ram_from,
					    "free memory or give more with --ram, or use a smaller --ctx or --chunk",
					    "does not fit: the CPU backend needs %s of host memory (resident weights %s + "
					    "embedding %s + KV %s at %d tokens + compressor state %s + workspace %s + reserve %s"
					    " + %" PRIu64 " expert slots %s), %s is %s",
					    SZ(0, p->host_fixed + p->min_slots * p->expert), SZ(1, p->resident),
					    SZ(2, p->embed), SZ(3, p->kv_cache), in->ctx, SZ(4, p->kv_state), SZ(5, p->ws),
					    SZ(6, CLI_PLAN_HOST_RESERVE), p->min_slots, SZ(7, p->min_slots * p->expert),
					    p->in.ram_from, SZ(8, ram));
		p->host_slots = min64((ram - p->host_fixed) / p->expert, p->n_experts);
		p->stream = p->host_slots < p->n_experts;
		if (p->stream) p->host_cache = p->host_slots * p->expert;
	}
#undef SZ
	return 0;
}

static void row(FILE *f, const char *label, uint64_t b, const char *note)
{
	char n[48];
	fprintf(f, "  %-40s %19s B %9.2f GiB%s%s\n", label, cli_fmt_count(n, sizeof n, b), gib(b), *note ? "  " : "",
		note);
}

void cli_plan_print(const struct cli_plan *p, FILE *f)
{
	const struct cli_plan_in *in = &p->in;
	char b1[48], b2[96], b3[48], note[96];
	const char *kvnote = in->kv_f32 ? "f32 (exact/smooth numerics)" : "bf16 (faithful; exact/smooth: x2)";
	if (in->gpu)
		fprintf(f, "\nGPU%s:\n", in->vram ? "" : " (no --vram given: the minimum for this context)");
	else
		fprintf(f, "\nCPU backend: every part below is host memory (%s%.2f GiB):\n",
			in->ram_probed ? "this machine: " : "", gib(in->ram));
	row(f, "resident weights (incl. head)", p->resident, "");
	snprintf(b2, sizeof b2, "KV state at %s tokens", cli_fmt_count(b1, sizeof b1, (uint64_t)in->ctx));
	row(f, b2, p->kv_cache, kvnote);
	row(f, "compressor state", p->kv_state, "");
	snprintf(b2, sizeof b2, "workspace (estimate, chunk %" PRIu64 ")", p->chunk);
	row(f, b2, p->ws, "");
	if (in->gpu) {
		snprintf(b2, sizeof b2, "expert slots: %s x %s B", cli_fmt_count(b1, sizeof b1, p->gpu_slots),
			 cli_fmt_count(b3, sizeof b3, p->expert));
		snprintf(note, sizeof note, "%.1f%% of %" PRIu64 " experts",
			 100.0 * (double)p->gpu_slots / (double)p->n_experts, p->n_experts);
		row(f, b2, p->gpu_slots * p->expert, note);
		row(f, "total", p->gpu_fixed + p->gpu_slots * p->expert, in->vram ? "" : "<- the VRAM this context needs");
		fprintf(f, "host (%s%.2f GiB):\n", in->ram_probed ? "this machine: " : "", gib(in->ram));
	}
	row(f, "embedding", p->embed, "");
	row(f, "reserve (OS, process, staging)", CLI_PLAN_HOST_RESERVE, "");
	snprintf(b2, sizeof b2, "expert cache: %s slots", cli_fmt_count(b1, sizeof b1, p->host_slots));
	snprintf(note, sizeof note, "%.1f%% of the experts", 100.0 * (double)p->host_slots / (double)p->n_experts);
	row(f, b2, p->host_slots * p->expert, note);
	if (!in->gpu)
		row(f, "total", p->host_fixed + p->host_slots * p->expert,
		    p->stream ? "experts stream (they do not all fit)" : "every expert resident");
	if (p->mtp) row(f, "(MTP block, not loaded)", p->mtp, "no speculative decoding");
}

const char *cli_plan_line(const struct cli_plan *p, char *buf, size_t n)
{
	char a[24], b[24], c[24], d[24], x[24];
	cli_fmt_count(x, sizeof x, p->n_experts);
	if (!p->stream && p->in.gpu)
		snprintf(buf, n, "experts resident in VRAM (%s with weights, KV and workspace)",
			 cli_fmt_size(a, sizeof a, p->gpu_fixed + p->n_experts * p->expert));
	else if (!p->stream)
		snprintf(buf, n, "experts resident (views into the checkpoint; %s of host memory with weights, KV and "
			 "workspace)", cli_fmt_size(a, sizeof a, p->host_fixed + p->n_experts * p->expert));
	else if (p->in.gpu)
		snprintf(buf, n, "experts stream: %s GPU slots under a VRAM budget of %s, host cache %s (%s slots) of %s"
			 " experts", cli_fmt_count(c, sizeof c, p->gpu_slots), cli_fmt_size(a, sizeof a, p->vram_budget),
			 cli_fmt_size(b, sizeof b, p->host_cache), cli_fmt_count(d, sizeof d, p->host_slots), x);
	else
		snprintf(buf, n, "experts stream through a host cache of %s (%s slots of %s experts); weights, KV and"
			 " workspace %s", cli_fmt_size(a, sizeof a, p->host_cache),
			 cli_fmt_count(d, sizeof d, p->host_slots), x,
			 cli_fmt_size(b, sizeof b, p->host_fixed - CLI_PLAN_HOST_RESERVE));
	return buf;
}

void cli_plan_json(const struct cli_plan *p, cJSON *o)
{
	cJSON_AddBoolToObject(o, "stream", p->stream);
	cJSON_AddNumberToObject(o, "host_cache_bytes", (double)p->host_cache);
	cJSON_AddNumberToObject(o, "vram_budget_bytes", (double)p->vram_budget);
	cJSON_AddNumberToObject(o, "ram_bytes", (double)p->in.ram);
	cJSON_AddStringToObject(o, "ram_from", p->in.ram_from);
	cJSON_AddNumberToObject(o, "vram_bytes", (double)p->in.vram);
	cJSON_AddNumberToObject(o, "gpu_slots", (double)p->gpu_slots);
	cJSON_AddNumberToObject(o, "host_slots", (double)p->host_slots);
	cJSON_AddNumberToObject(o, "experts", (double)p->n_experts);
	cJSON_AddNumberToObject(o, "expert_bytes", (double)p->expert);
}

/* First number of a file ("max" and absent files: no limit = UINT64_MAX). */
static uint64_t read_limit(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) return UINT64_MAX;
	char line[64] = "";
	uint64_t v = UINT64_MAX;
	if (fgets(line, sizeof line, f)) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(line, &end, 10);
		if (!errno && end != line) v = x;
	}
	fclose(f);
	return v;
}

int cli_plan_probe_ram(const char *meminfo, const char *const *cgroup, uint64_t *ram, char *from, size_t from_n,
		       struct nv_err *e)
{
	FILE *f = fopen(meminfo, "r");
	if (!f)
		return core_err_set(e, -errno, meminfo, NULL, "give the host memory nvmoe may use with --ram",
				    "cannot open: %s", strerror(errno));
	char line[256];
	unsigned long long kb = 0;
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
	fclose(f);
	if (!found)
		return core_err_set(e, NV_EFORMAT, meminfo, "MemAvailable", "give the host memory nvmoe may use with --ram",
				    "no 'MemAvailable: N kB' line");
	*ram = (uint64_t)kb * 1024;
	snprintf(from, from_n, "available RAM (MemAvailable)");
	for (int i = 0; cgroup && cgroup[i]; i++) {
		uint64_t lim = read_limit(cgroup[i]);
		if (lim < *ram) {
			*ram = lim;
			snprintf(from, from_n, "the cgroup limit (%s)", cgroup[i]);
		}
	}
	return 0;
}

int cli_plan_ram_here(uint64_t *ram, char *from, size_t from_n, struct nv_err *e)
{
	/* cgroup v2: this process's group (the path of the "0::" line) and the mount's
	 * root (a container's namespace); v1: the memory controller's root. */
	char own[4096] = "";
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (f) {
		char line[2048];
		while (fgets(line, sizeof line, f))
			if (!strncmp(line, "0::/", 4)) {
				line[strcspn(line, "\n")] = 0;
				if (line[4]) snprintf(own, sizeof own, "/sys/fs/cgroup%s/memory.max", line + 3);
			}
		fclose(f);
	}
	const char *files[] = { own[0] ? own : "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.max",
				"/sys/fs/cgroup/memory/memory.limit_in_bytes", NULL };
	return cli_plan_probe_ram("/proc/meminfo", files, ram, from, from_n, e);
}
