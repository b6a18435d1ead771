/* kernels/cpu/cpu.c - the reference CPU backend: memory ops and the table.
 * B memory is host memory; wmap is the identity (weights stay in the mmap). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	if (need <= c->scratch_n) return 0;
	float *p = realloc(c->scratch, need * sizeof(float));
	if (!p) return -ENOMEM;
	c->scratch = p;
	c->scratch_n = need;
	return 0;
}

static void cpu_destroy(struct kern *k)
{
	if (!k) return;
	struct cpu_impl *c = k->impl;
	if (c) free(c->scratch);
	free(c);
	free(k);
}

struct kern *kern_cpu_create(void)
{
	struct kern *k = calloc(1, sizeof *k);
	struct cpu_impl *c = calloc(1, sizeof *c);
	if (!k || !c) {
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
	k->idx_score = cpu_idx_score;
	k->topk = cpu_topk;
	k->attn = cpu_attn;
	k->route = cpu_route;
	k->moe_expert = cpu_moe_expert;
	k->swiglu = cpu_swiglu;
	k->add_round = cpu_add_round;
	return k;
}
