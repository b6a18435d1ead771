/* tests/test_autoplan_plan.c - the memory plan (cli/plan.h) on the released config
 * (mkmodel --preset release --sparse: real headers, no data) against figures known
 * in advance: the model's byte counts of CHECKPOINT.md §4.2 (also checked by
 * tests/foundation_cli.sh against `nvmoe inspect`), the KV bytes of MODEL.md §13.1
 * (worked numbers), the workspace formula of plan.h evaluated here on the config's
 * dimensions, and the split formula of plan.h.  Edge cases: RAM / VRAM too small
 * (NV_EFIT with the numbers), everything fits (resident), the exact boundary, f32 KV.
 * The RAM probe reads fake meminfo / cgroup files.  Exact integers: no tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/plan.h"
#include "core/config.h"
#include "testutil.h"

#define GiB (1024ull * 1024 * 1024)
/* CHECKPOINT.md §4.2 / tests/foundation_cli.sh */
#define RESIDENT 7786897628ull /* dense weights incl. head, no embedding, no MTP */
#define EMBED 1059061760ull
#define EXPERT 13369344ull
#define NEXP (43ull * 256)
/* MODEL.md §13.1 */
#define KV_4K 33947648ull
#define KV_64K 456654848ull
#define KV_1M 7219970048ull
#define STATE 12206080ull

/* plan.h: per prefill token 4 x (3 M D + 2 H dh + q_lora + 2 I k + nI dI + H (W + topk))
 * bytes, plus 4 V logits and 256 MiB, on the released dimensions. */
static uint64_t ws(uint64_t chunk)
{
	const uint64_t D = 4096, M = 4, H = 64, dh = 512, ql = 1024, I = 2048, k = 6, nI = 64, dI = 128, W = 128,
		       topk = 512, V = 129280;
	return chunk * 4 * (3 * M * D + 2 * H * dh + ql + 2 * I * k + nI * dI + H * (W + topk)) + 4 * V + (256ull << 20);
}

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

#define EQ(got, want) do { uint64_t g_ = (got), w_ = (want); \
	TU_CHECK(g_ == w_, "%s: got %llu, expected %llu", #got, (unsigned long long)g_, (unsigned long long)w_); } while (0)

static int make(const struct core_config *c, int gpu, uint64_t ram, uint64_t vram, int ctx, int chunk, int f32,
		struct cli_plan *p, struct nv_err *e)
{
	struct cli_plan_in in = { .cfg = c, .gpu = gpu, .ram = ram, .vram = vram, .ctx = ctx, .chunk = chunk,
				  .kv_f32 = f32 };
	core_err_clear(e);
	return cli_plan_make(&in, p, e);
}

static void expect_msg(const struct nv_err *e, const char *const *want)
{
	char buf[2048];
	core_err_str(e, buf, sizeof buf);
	for (int i = 0; want[i]; i++) TU_CHECK(strstr(buf, want[i]) != NULL, "message '%s' lacks '%s'", buf, want[i]);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f)) { perror(path); exit(1); }
}

static void probe_tests(const char *dir)
{
	char mi[4096], cg[4096], cgmax[4096], none[4096];
	snprintf(mi, sizeof mi, "%s/meminfo", dir);
	snprintf(cg, sizeof cg, "%s/memory.max", dir);
	snprintf(cgmax, sizeof cgmax, "%s/memory.max.unlimited", dir);
	snprintf(none, sizeof none, "%s/absent", dir);
	write_file(mi, "MemTotal:       131072000 kB\nMemFree:         1000 kB\nMemAvailable:   100000000 kB\n");
	write_file(cg, "68719476736\n");
	write_file(cgmax, "max\n");
	uint64_t ram = 0;
	char from[256];
	struct nv_err e;
	core_err_clear(&e);
	const char *f0[] = { none, cgmax, NULL };
	TU_CHECK(cli_plan_probe_ram(mi, f0, &ram, from, sizeof from, &e) == 0, "probe without a limit failed");
	EQ(ram, 100000000ull * 1024);
	TU_CHECK(strstr(from, "MemAvailable") != NULL, "from '%s'", from);
	const char *f1[] = { cgmax, cg, NULL };
	TU_CHECK(cli_plan_probe_ram(mi, f1, &ram, from, sizeof from, &e) == 0, "probe with a cgroup limit failed");
	EQ(ram, 64 * GiB);
	TU_CHECK(strstr(from, cg) != NULL, "from '%s' does not name %s", from, cg);
	write_file(cg, "999999999999999\n"); /* a limit above MemAvailable does not count */
	TU_CHECK(cli_plan_probe_ram(mi, f1, &ram, from, sizeof from, &e) == 0, "probe failed");
	EQ(ram, 100000000ull * 1024);
	write_file(mi, "MemTotal:       131072000 kB\n");
	TU_CHECK(cli_plan_probe_ram(mi, f0, &ram, from, sizeof from, &e) == NV_EFORMAT, "no MemAvailable: not NV_EFORMAT");
	TU_CHECK(cli_plan_probe_ram(none, f0, &ram, from, sizeof from, &e) < 0, "absent meminfo accepted");
	/* this machine: some RAM, never more than MemTotal */
	TU_CHECK(cli_plan_ram_here(&ram, from, sizeof from, &e) == 0 && ram > 0, "probe of this machine failed");
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	TU_CHECK(ram <= (uint64_t)pages * (uint64_t)psz, "probed %llu > physical memory", (unsigned long long)ram);
}

int main(void)
{
	const char *b = getenv("NV_BUILD");
	if (!b) tu_skip("NV_BUILD not set");
	char dir[] = "/tmp/nvmoe-autoplan-XXXXXX";
	if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "'%s/mkmodel' --preset release --sparse --out '%s/rel' --quiet >/dev/null", b, dir);
	if (system(cmd)) { fprintf(stderr, "FAIL: %s\n", cmd); return 1; }
	struct core_config c;
	struct nv_err e;
	char rel[4200];
	snprintf(rel, sizeof rel, "%s/rel", dir);
	if (core_config_load(rel, &c, &e)) { fprintf(stderr, "FAIL: config of %s\n", rel); return 1; }
	struct cli_plan p;

	/* GPU 24 GiB, RAM 128 GiB, 64K tokens: `nvmoe plan --vram 24G --ram 128G --ctx 65536` */
	TU_CHECK(make(&c, 1, 128 * GiB, 24 * GiB, 65536, 0, 0, &p, &e) == 0, "24G/128G/64K refused");
	EQ(p.resident, RESIDENT);
	EQ(p.embed, EMBED);
	EQ(p.expert, EXPERT);
	EQ(p.n_experts, NEXP);
	EQ(p.kv_cache, KV_64K);
	EQ(p.kv_state, STATE);
	EQ(p.chunk, 512);
	EQ(p.ws, ws(512));
	EQ(p.min_slots, 12);
	uint64_t gfix = RESIDENT + KV_64K + STATE + ws(512);
	EQ(p.gpu_fixed, gfix);
	EQ(p.gpu_slots, (24 * GiB - gfix) / EXPERT);
	EQ(p.host_slots, (128 * GiB - EMBED - (2ull << 30)) / EXPERT);
	EQ(p.stream, 1);
	EQ(p.host_cache, p.host_slots * EXPERT);
	EQ(p.vram_budget, 24 * GiB);
	TU_CHECK(p.gpu_slots > 1000 && p.gpu_slots < 1300, "24 GiB should hold ~1,260 slots, got %llu",
		 (unsigned long long)p.gpu_slots);

	/* GPU 1M tokens on 48 GiB (KV 7.2 GB) */
	TU_CHECK(make(&c, 1, 128 * GiB, 48 * GiB, 1048576, 0, 0, &p, &e) == 0, "48G/1M refused");
	EQ(p.kv_cache, KV_1M);
	EQ(p.gpu_slots, (48 * GiB - (RESIDENT + KV_1M + STATE + ws(512))) / EXPERT);
	/* too small: 8 GiB at 1M tokens */
	TU_CHECK(make(&c, 1, 128 * GiB, 8 * GiB, 1048576, 0, 0, &p, &e) == NV_EFIT, "8G at 1M accepted");
	expect_msg(&e, (const char *const[]){ "--vram", "does not fit", "--vram is 8.00 GiB", "12 expert slots", NULL });
	TU_CHECK(e.hint[0], "no hint");
	/* GPU: everything fits in 200 GiB of VRAM -> resident, no budget */
	TU_CHECK(make(&c, 1, 128 * GiB, 200 * GiB, 4096, 0, 0, &p, &e) == 0, "200G refused");
	EQ(p.stream, 0);
	EQ(p.gpu_slots, NEXP);
	EQ(p.host_cache, 0);
	EQ(p.vram_budget, 0);
	/* GPU host side too small */
	TU_CHECK(make(&c, 1, 2 * GiB, 24 * GiB, 4096, 0, 0, &p, &e) == NV_EFIT, "2G of RAM accepted");
	expect_msg(&e, (const char *const[]){ "does not fit: the host needs", "--ram is 2.00 GiB", NULL });

	/* CPU 128 GiB, 4K tokens, chunk 64 (run's default): stream */
	TU_CHECK(make(&c, 0, 128 * GiB, 0, 4096, 64, 0, &p, &e) == 0, "CPU 128G refused");
	uint64_t hfix = RESIDENT + EMBED + KV_4K + STATE + ws(64) + (2ull << 30);
	EQ(p.ws, ws(64));
	EQ(p.host_fixed, hfix);
	EQ(p.gpu_slots, 0);
	EQ(p.host_slots, (128 * GiB - hfix) / EXPERT);
	EQ(p.stream, 1);
	EQ(p.host_cache, p.host_slots * EXPERT);
	EQ(p.vram_budget, 0);
	/* CPU 256 GiB: the 147 GB of experts fit -> resident */
	TU_CHECK(make(&c, 0, 256 * GiB, 0, 4096, 64, 0, &p, &e) == 0, "CPU 256G refused");
	EQ(p.stream, 0);
	EQ(p.host_slots, NEXP);
	EQ(p.host_cache, 0);
	/* the boundary: exactly enough is resident, one byte less streams with one slot fewer */
	TU_CHECK(make(&c, 0, hfix + NEXP * EXPERT, 0, 4096, 64, 0, &p, &e) == 0 && !p.stream, "exact fit not resident");
	TU_CHECK(make(&c, 0, hfix + NEXP * EXPERT - 1, 0, 4096, 64, 0, &p, &e) == 0 && p.stream, "1 byte short not streamed");
	EQ(p.host_slots, NEXP - 1);
	/* the minimum: fixed part + 12 slots */
	TU_CHECK(make(&c, 0, hfix + 12 * EXPERT, 0, 4096, 64, 0, &p, &e) == 0, "minimum refused");
	EQ(p.host_slots, 12);
	TU_CHECK(make(&c, 0, hfix + 12 * EXPERT - 1, 0, 4096, 64, 0, &p, &e) == NV_EFIT, "below the minimum accepted");
	/* CPU 8 GiB: an error with every figure */
	TU_CHECK(make(&c, 0, 8 * GiB, 0, 4096, 64, 0, &p, &e) == NV_EFIT, "CPU 8G accepted");
	expect_msg(&e, (const char *const[]){ "does not fit: the CPU backend needs", "resident weights 7.25 GiB",
					      "--ram is 8.00 GiB", "12 expert slots", NULL });
	TU_CHECK(e.hint[0] && strstr(e.hint, "--ram"), "hint '%s' does not mention --ram", e.hint);
	/* exact/smooth numerics: f32 KV caches, twice the bytes */
	TU_CHECK(make(&c, 0, 128 * GiB, 0, 65536, 0, 1, &p, &e) == 0, "f32 KV refused");
	EQ(p.kv_cache, 2 * KV_64K);
	EQ(p.host_slots, min64((128 * GiB - (RESIDENT + EMBED + 2 * KV_64K + STATE + ws(512) + (2ull << 30))) / EXPERT,
			       NEXP));
	/* the one-line summary names the choice */
	char line[600];
	TU_CHECK(make(&c, 0, 128 * GiB, 0, 4096, 64, 0, &p, &e) == 0, "CPU 128G refused");
	cli_plan_line(&p, line, sizeof line);
	TU_CHECK(strstr(line, "experts stream through a host cache of") != NULL, "line '%s'", line);
	TU_CHECK(make(&c, 0, 256 * GiB, 0, 4096, 64, 0, &p, &e) == 0, "CPU 256G refused");
	cli_plan_line(&p, line, sizeof line);
	TU_CHECK(strstr(line, "experts resident") != NULL, "line '%s'", line);

	probe_tests(dir);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) fprintf(stderr, "warning: cannot remove %s\n", dir);
	TU_DONE();
}
