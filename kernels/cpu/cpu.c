/* kernels/cpu/cpu.c - the CPU backend: memory ops, the table, the choice of inner
 * loops and the split of work over the pool.
 * B memory is host memory; wmap is the identity (weights stay in the mmap). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"

static void *cpu_alloc(struct kern *k, size_t bytes)
{
	(void)k;
	return calloc(1, bytes ? bytes : 1);
}

static void cpu_free(struct kern *k, void *p) { (void)k; free(p); }

static void cpu_memcpy(struct kern *k, void *dst, const void *src, size_t bytes)
{
	(void)k;
	if (bytes) memmove(dst, src, bytes);
}

static void cpu_fill(struct kern *k, float *dst, float v, size_t n)
{
	(void)k;
	for (size_t i = 0; i < n; i++) dst[i] = v;
}

static const void *cpu_wmap(struct kern *k, const void *host, size_t bytes)
{
	(void)k; (void)bytes;
	return host;
}

static int cpu_reserve(struct kern *k, int max_rows, int max_width)
{
	struct cpu_impl *c = k->impl;
	/* gemm_fp8: quantised rows + block scales; per-row ops: a few rows of width */
	/* per-call row buffers + per-row work areas (compressor candidates: <= 130 rows) */
	size_t need = (size_t)max_rows * ((size_t)max_width + (size_t)max_width / 32 + 4) +
		      160 * (size_t)max_width + 4096;
	if (need > c->scratch_n) {
		float *p = realloc(c->scratch, need * sizeof(float));
		if (!p) return -ENOMEM;
		c->scratch = p;
		c->scratch_n = need;
	}
	/* per thread: the inner loops' row buffers, plus one row of width (attention acc) */
	size_t tn = cpu_isa_wb_floats((size_t)max_width, 4) + (size_t)max_width + 64;
	tn = (tn + 15) & ~(size_t)15; /* 64-byte multiples keep threads off shared lines */
	if (tn > c->tscr_n) {
		float *p = NULL;
		if (posix_memalign((void **)&p, 64, tn * c->nthreads * sizeof(float))) return -ENOMEM;
		free(c->tscr);
		c->tscr = p;
		c->tscr_n = tn;
	}
	return 0;
}

static void cpu_destroy(struct kern *k)
{
	if (!k) return;
	struct cpu_impl *c = k->impl;
	if (c) {
		cpu_pool_destroy(c->pool);
		free(c->scratch);
		free(c->tscr);
		free(c->smp);
	}
	free(c);
	free(k);
}

/* ---- work split ---- */

struct par_ctx {
	cpu_range_fn fn;
	void *ctx;
	int n, chunk;
};

static void par_task(void *vp, int t, int tid)
{
	struct par_ctx *p = vp;
	int a = t * p->chunk, b = a + p->chunk < p->n ? a + p->chunk : p->n;
	if (a < b) p->fn(p->ctx, a, b, tid);
}

/* below this many multiply-adds a call runs on the driving thread alone: waking a
 * sleeping worker costs a few microseconds */
#define PAR_MIN_WORK 32768.0

void cpu_par(struct kern *k, int n, int grain, double work, cpu_range_fn fn, void *ctx)
{
	struct cpu_impl *c = k->impl;
	if (n <= 0) return;
	if (grain < 1) grain = 1;
	int units = (n + grain - 1) / grain;
	if (c->nthreads == 1 || units == 1 || work < PAR_MIN_WORK) {
		fn(ctx, 0, n, 0);
		return;
	}
	/* a few tasks per thread: the cores are shared, dynamic claiming evens out */
	int ntask = c->nthreads * 4 < units ? c->nthreads * 4 : units;
	int per = (units + ntask - 1) / ntask;
	struct par_ctx p = { fn, ctx, n, per * grain };
	ntask = (units + per - 1) / per;
	cpu_pool_run(c->pool, par_task, &p, ntask);
}

/* ---- creation ---- */

/* The inner-loop table for `want` (AUTO: the best the CPU has), into *t. */
static void pick_isa(enum kern_cpu_isa want, struct cpu_isa *t)
{
	int have2 = 0, have512 = 0;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	have2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	have512 = have2 && cpu_have_avx512bf16();
#endif
	if (want == KERN_CPU_ISA_AUTO) {
		/* diagnostic override (house rule 7: env vars only for diagnostics) */
		const char *env = getenv("NVMOE_CPU_ISA");
		want = KERN_CPU_ISA_AVX512;
		if (env && !strcmp(env, "scalar")) want = KERN_CPU_ISA_SCALAR;
		if (env && !strcmp(env, "avx2")) want = KERN_CPU_ISA_AVX2;
	}
	if (want == KERN_CPU_ISA_AVX512 && !have512) want = KERN_CPU_ISA_AVX2;
	if (want == KERN_CPU_ISA_AVX2 && !have2) want = KERN_CPU_ISA_SCALAR;
	*t = want == KERN_CPU_ISA_SCALAR ? cpu_isa_scalar : cpu_isa_avx2;
	if (want == KERN_CPU_ISA_AVX512) {
		t->name = "avx512";
		t->fp4 = cpu_fp4_avx512;
		t->fp4_layout = cpu_fp4_layout_avx512;
		t->dense = cpu_dense_avx512;
		if (cpu_have_avx512vbmi()) {
			t->fp8 = cpu_fp8_avx512;
			t->fp8g = cpu_fp8g_avx512;
			t->fp8_layout = cpu_fp8_layout_avx512;
			t->fp8g_layout = cpu_fp8g_layout_avx512;
		}
	}
}

struct kern *kern_cpu_create_opts(const struct kern_cpu_opts *o)
{
	struct kern *k = calloc(1, sizeof *k);
	struct cpu_impl *c = calloc(1, sizeof *c);
	if (!k || !c) {
		free(k);
		free(c);
		return NULL;
	}
	int n = o ? o->threads : 0;
	if (n <= 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		n = nc < 1 ? 1 : nc > 256 ? 256 : (int)nc;
	}
	c->nthreads = n;
	pick_isa(o ? o->isa : KERN_CPU_ISA_AUTO, &c->isa_tab);
	c->isa = &c->isa_tab;
	if (cpu_pool_create(n, &c->pool)) {
		free(k);
		free(c);
		return NULL;
	}
	k->name = "cpu";
	k->impl = c;
	k->alloc = cpu_alloc;
	k->free = cpu_free;
	k->upload = cpu_memcpy;
	k->download = cpu_memcpy;
	k->copy = cpu_memcpy;
	k->fill = cpu_fill;
	k->wmap = cpu_wmap;
	k->reserve = cpu_reserve;
	k->destroy = cpu_destroy;
	k->embed = cpu_embed;
	k->round = cpu_round;
	k->scale = cpu_scale;
	k->add_bcast = cpu_add_bcast;
	k->rmsnorm = cpu_rmsnorm;
	k->head_rms = cpu_head_rms;
	k->rope = cpu_rope;
	k->qdq8 = cpu_qdq8;
	k->qdq4 = cpu_qdq4;
	k->hadamard = cpu_hadamard;
	k->gemm_fp8 = cpu_gemm_fp8;
	k->gemm_fp8_grouped = cpu_gemm_fp8_grouped;
	k->gemm_bf16 = cpu_gemm_bf16;
	k->gemm_f32 = cpu_gemm_f32;
	k->hc_pre = cpu_hc_pre;
	k->hc_post = cpu_hc_post;
	k->hc_head = cpu_hc_head;
	k->compress = cpu_compress;
	k->kv_store = cpu_kv_store;
	k->idx_score = cpu_idx_score;
	k->topk = cpu_topk;
	k->attn = cpu_attn;
	k->route = cpu_route;
	k->moe_expert = cpu_moe_expert;
	k->swiglu = cpu_swiglu;
	k->add_round = cpu_add_round;
	k->sample_reserve = cpu_sample_reserve;
	k->sample = cpu_sample;
	return k;
}

struct kern *kern_cpu_create(void) { return kern_cpu_create_opts(NULL); }

int kern_cpu_threads(const struct kern *k) { return ((const struct cpu_impl *)k->impl)->nthreads; }

const char *kern_cpu_isa(const struct kern *k) { return ((const struct cpu_impl *)k->impl)->isa->name; }
