/* cli/cmd_bench_cpu.c - `nvmoe bench MODEL [--backend cpu] [--threads N] [--json]`:
 * compute throughput of the forward pass and of the FP4 expert kernel, next to the
 * machine's memory bandwidth measured in the same run.
 *
 *   memory     STREAM-style copy over two buffers far larger than the caches, by
 *              --threads threads; bandwidth = (bytes read + bytes written) / s, the
 *              STREAM convention; also a read-only sum.  Best of --repeat runs.
 *   fp4        k->moe_expert on ONE token per expert (decode: GEMVs over packed
 *              nibbles), every routed expert of every main block in turn, so the
 *              working set (all experts) exceeds the caches; bytes = expert weights
 *              + scales touched.  Best of --repeat passes after a warm-up pass.
 *              Measured on a copy of the experts in 2 MiB-aligned anonymous memory
 *              advised for huge pages (where the host cache keeps experts;
 *              fp4_kernel_gbs) and in place in the mmapped checkpoint (fp4_mmap_gbs).
 *              The memory buffers are of the same kind.  The FP4 kernel only reads,
 *              so mem_read is its like-for-like baseline; mem_bw (copy) is kept as
 *              issue 3 states its target against it.  Shared cores swing the
 *              figures between phases, so each FP4 repetition is also paired with
 *              a memory read run just before it: fp4_paired_fraction_of_mem_read
 *              (best / median / worst of the per-repetition ratios).
 *   head       k->gemm_f32 of the bf16 output head [V, D] on one token of bf16
 *              values (the decode logits GEMV, in place in the mmapped checkpoint),
 *              GB/s of head bytes; each repetition paired with a memory read run
 *              just before it (head_gemv_paired_fraction_of_mem_read).
 *   prefill GEMMs  the two dominant prefill kernels on 64 rows at once, GFLOP/s
 *              (2 per multiply-add): k->gemm_fp8 of a [F, D] FP8 weight (the
 *              shared expert's w1 shape) and k->moe_expert of one [F, D] routed
 *              expert on 64 tokens; synthetic weights (speed does not depend on
 *              the values), each timed over >= 3 calls after a warm-up call.
 *   prefill    core_forward over a --prefill token prompt (one chunk, or chunks of
 *              --chunk in the order of --prefill-order), logits of the last
 *              position; tokens/s, and the host-cache reads per prefill.
 *   decode     --decode single-token steps after the prompt, logits every step.
 * Every figure is reported as best, median and worst of the repetitions (the cores
 * may be shared).  Faithful numerics (the production mode). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/host.h"
#include "cli.h"
#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"


/* The kernel's transparent huge page mode: the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled ("always", "madvise", "never"), or
 * "unavailable". */
static void thp_mode(char *out, size_t n)
{
	snprintf(out, n, "unavailable");
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f) return;
	char line[128];
	if (fgets(line, sizeof line, f)) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b) snprintf(out, n, "%.*s", (int)(b - a - 1), a + 1);
	}
	fclose(f);
}

/* ---- memory bandwidth ---- */

struct mem_job {
	const char *src;
	char *dst;
	size_t n;
	int passes, read_only;
	uint64_t sink;
};

static void *mem_worker(void *vp)
{
	struct mem_job *j = vp;
	uint64_t acc = 0;
	for (int p = 0; p < j->passes; p++) {
		if (!j->read_only) {
			memcpy(j->dst, j->src, j->n);
		} else {
			const uint64_t *s = (const uint64_t *)j->src;
			uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
			for (size_t i = 0; i + 4 <= j->n / 8; i += 4) {
				a0 += s[i];
				a1 += s[i + 1];
				a2 += s[i + 2];
				a3 += s[i + 3];
			}
			acc += a0 ^ a1 ^ a2 ^ a3;
		}
	}
	j->sink = acc;
	return NULL;
}

/* GB/s of one run: copy (read + write bytes) or read-only, wall time from the first
 * thread's start to the last one's end.  -1 when a thread cannot be started. */
static double mem_run(char *a, char *b, size_t bytes, int nt, int passes, int read_only)
{
	pthread_t th[64];
	struct mem_job j[64];
	if (nt > 64) nt = 64;
	size_t per = bytes / (size_t)nt & ~(size_t)63;
	double t0 = cli_now();
	int started = 1, fail = 0;
	for (int i = 0; i < nt; i++)
		j[i] = (struct mem_job){ a + (size_t)i * per, b + (size_t)i * per, per, passes, read_only, 0 };
	for (int i = 1; i < nt && !fail; i++) {
		if (pthread_create(&th[i], NULL, mem_worker, &j[i])) fail = 1;
		else started++;
	}
	mem_worker(&j[0]);
	for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
	double t1 = cli_now();
	if (fail) return -1;
	double moved = (double)per * nt * passes * (read_only ? 1 : 2);
	return moved / (t1 - t0) / 1e9;
}

/* ---- FP4 expert kernel ---- */

struct fp4_res {
	struct cli_stat3 gbs;      /* experts copied into huge-page anonymous memory (host cache) */
	struct cli_stat3 mmap_gbs; /* experts read in place from the mmapped checkpoint */
	int synthetic;             /* a converted store: synthetic experts, no in-place figure */
	struct cli_stat3 paired;   /* per repetition: gbs / memory read measured just before */
	int experts;
	double bytes_per_expert, set_bytes;
};

/* Synthetic weight bytes: any byte for packed FP4/FP8 codes, E8M0 scales near 2^-7
 * (118..125) when `scales`, so products stay finite. */
static void synth_bytes(uint8_t *p, size_t n, int scales, uint64_t *st)
{
	for (size_t i = 0; i < n; i++) {
		*st = *st * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = scales ? (uint8_t)(118 + (*st >> 56) % 8) : (uint8_t)(*st >> 56);
	}
}

static float rnd_normalish(uint64_t *st)
{
	/* sum of 4 uniforms, centred: roughly N(0, 1/3), deterministic */
	float s = 0;
	for (int i = 0; i < 4; i++) {
		*st = *st * 6364136223846793005ull + 1442695040888963407ull;
		s += (float)(*st >> 40) * 0x1p-24f;
	}
	return s - 2.0f;
}

/* mbuf [mlen]: the memory-read buffer, read again right before each repetition on
 * the huge-page copy (paired ratio: both figures see the same load on shared cores). */
static int bench_fp4(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, int reps,
		     char *mbuf, size_t mlen, struct fp4_res *r, struct nv_err *e)
{
	const struct core_config *c = core_ckpt_config(ck);
	const int D = c->hidden_size, F = c->moe_intermediate_size, L = c->num_hidden_layers;
	const int E = c->n_routed_experts;
	/* A converted store has no experts in the shards: the kernel figure then runs on
	 * synthetic experts of the same shapes (the kernel's speed does not depend on the
	 * values) and the in-place figure is left out. */
	const int store = core_ckpt_has_store(ck);
	r->synthetic = store;
	struct core_expert_src *src = NULL;
	int rc = store ? 0 : core_expert_src_resident(ck, k, &src, e);
	if (rc) return rc;
	float *x = k->alloc(k, sizeof(float) * D), *acc = k->alloc(k, sizeof(float) * D);
	float *wt = k->alloc(k, sizeof(float));
	int32_t *slot = k->alloc(k, sizeof(int32_t));
	float *xh = malloc(sizeof(float) * D);
	struct kern_expert *ex = calloc((size_t)L * E, sizeof *ex), *exh = NULL;
	uint8_t *hcopy = NULL; /* [n][6 tensors, 64-byte aligned] */
	size_t hbytes = 0;
	if (!x || !acc || !wt || !slot || !xh || !ex) {
		rc = core_err_set(e, NV_ENOMEM, "bench", "fp4", NULL, "out of memory");
		goto out;
	}
	if ((rc = k->reserve(k, 64, (D > F ? D : F) + 256))) {
		rc = core_err_set(e, rc, "bench", "fp4", NULL, "backend scratch reservation failed");
		goto out;
	}
	uint64_t st = 0x5EEDull ^ o->seed;
	for (int i = 0; i < D; i++) xh[i] = rnd_normalish(&st);
	k->upload(k, x, xh, sizeof(float) * D);
	float one = 1.0f;
	int32_t zero = 0;
	k->upload(k, wt, &one, sizeof one);
	k->upload(k, slot, &zero, sizeof zero);
	for (int l = 0; l < L && !store; l++)
		for (int j = 0; j < E; j++) {
			struct core_expert_view v;
			if ((rc = src->acquire(src->ctx, l, j, &v, e))) goto out;
			ex[l * E + j] = (struct kern_expert){
				{ v.w1, v.w1_scale, F, D }, { v.w3, v.w3_scale, F, D }, { v.w2, v.w2_scale, D, F },
			};
		}
	const int n = L * E;
	r->experts = n;
	r->bytes_per_expert = 3.0 * F * (D / 2) + 2.0 * F * (D / 32) + (double)D * (F / 32);
	r->set_bytes = r->bytes_per_expert * n;
	/* passes so that each timed run moves >= 1 GB (a working set that fits the caches
	 * is reported as such by its size) */
	int passes = (int)(1e9 / r->set_bytes) + 1;
	double *v = calloc((size_t)reps * 2, sizeof *v), *pr = v + reps;
	if (!v) { rc = core_err_set(e, NV_ENOMEM, "bench", "fp4", NULL, "out of memory"); goto out; }
	/* The same experts copied into one anonymous huge-page mapping, each tensor 64-byte
	 * aligned: the memory the host cache serves experts from (cache_huge_map). */
	const size_t part[6] = { (size_t)F * (D / 2), (size_t)F * (D / 32), (size_t)F * (D / 2),
				 (size_t)F * (D / 32), (size_t)D * (F / 2), (size_t)D * (F / 32) };
	size_t per = 0;
	for (int j = 0; j < 6; j++) per += (part[j] + 63) & ~(size_t)63;
	hbytes = per * (size_t)n;
	if (!(hcopy = cache_huge_map(hbytes)) || !(exh = calloc((size_t)n, sizeof *exh))) {
		rc = core_err_set(e, NV_ENOMEM, "bench", "fp4", NULL, "cannot map %zu bytes for the expert copy", hbytes);
		free(v);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const uint8_t *srcp[6] = { ex[i].w1.w, ex[i].w1.s, ex[i].w3.w, ex[i].w3.s, ex[i].w2.w, ex[i].w2.s };
		uint8_t *dst[6], *p = hcopy + per * (size_t)i;
		for (int j = 0; j < 6; j++) {
			if (store) {
				synth_bytes(p, part[j], j & 1, &st); /* odd parts are the scales */
			} else {
				memcpy(p, srcp[j], part[j]); /* CPU backend: weights are host memory */
			}
			dst[j] = p;
			p += (part[j] + 63) & ~(size_t)63;
		}
		exh[i] = (struct kern_expert){
			{ dst[0], dst[1], F, D }, { dst[2], dst[3], F, D }, { dst[4], dst[5], D, F },
		};
	}
	const unsigned nm = KERN_RND | KERN_QNT;
	for (int lay = 0; lay < (store ? 1 : 2); lay++) {
		const struct kern_expert *xe = lay ? ex : exh;
		for (int i = 0; i < n; i++) /* warm-up: pages of the mmapped checkpoint, caches */
			k->moe_expert(k, acc, x, &xe[i], slot, 1, wt, 1, c->swiglu_limit, nm);
		for (int r_ = 0; r_ < reps; r_++) {
			double mr = lay ? 0 : mem_run(mbuf, mbuf, mlen, kern_cpu_threads(k), 4, 1);
			double t0 = cli_now();
			for (int p = 0; p < passes; p++)
				for (int i = 0; i < n; i++)
					k->moe_expert(k, acc, x, &xe[i], slot, 1, wt, 1, c->swiglu_limit, nm);
			v[r_] = r->set_bytes * passes / (cli_now() - t0) / 1e9;
			pr[r_] = mr > 0 ? v[r_] / mr : 0;
		}
		if (lay) r->mmap_gbs = cli_stat3(v, reps);
		else r->gbs = cli_stat3(v, reps), r->paired = cli_stat3(pr, reps);
	}
	free(v);
out:
	cache_huge_unmap(hcopy, hbytes);
	free(exh);
	if (src) {
		for (int l = 0; l < L && ex; l++)
			for (int j = 0; j < E; j++)
				if (ex[l * E + j].w1.w) src->release(src->ctx, l, j);
		core_expert_src_resident_destroy(src);
	}
	k->free(k, x);
	k->free(k, acc);
	k->free(k, wt);
	k->free(k, slot);
	free(xh);
	free(ex);
	return rc;
}

/* ---- prefill GEMMs (64 rows per call) ---- */

static int c_D(const struct core_ckpt *ck) { return core_ckpt_config(ck)->hidden_size; }
static int c_F(const struct core_ckpt *ck) { return core_ckpt_config(ck)->moe_intermediate_size; }

struct pgemm_res {
	struct cli_stat3 fp8, fp4; /* GFLOP/s */
	int rows;
};

static int bench_prefill_gemm(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k, int reps,
			      struct pgemm_res *r, struct nv_err *e)
{
	const struct core_config *c = core_ckpt_config(ck);
	const int D = c->hidden_size, F = c->moe_intermediate_size, S = 64;
	const size_t nw8 = (size_t)F * D, ns8 = (size_t)((F + 127) / 128) * ((D + 127) / 128);
	const size_t nw4 = (size_t)F * D / 2, ns4 = (size_t)F * D / 32;
	r->rows = S;
	uint8_t *w = malloc(nw8 + ns8 + 3 * (nw4 + ns4));
	float *xh = malloc(sizeof(float) * S * D), wth[64];
	int32_t slh[64];
	float *x = k->alloc(k, sizeof(float) * S * D), *y = k->alloc(k, sizeof(float) * S * (D > F ? D : F));
	float *wt = k->alloc(k, sizeof wth);
	int32_t *sl = k->alloc(k, sizeof slh);
	double *v = calloc((size_t)reps, sizeof *v);
	int rc = 0;
	if (!w || !xh || !x || !y || !wt || !sl || !v) {
		rc = core_err_set(e, NV_ENOMEM, "bench", "prefill gemm", NULL, "out of memory");
		goto out;
	}
	if ((rc = k->reserve(k, S, (D > F ? D : F) + 256))) {
		rc = core_err_set(e, rc, "bench", "prefill gemm", NULL, "backend scratch reservation failed");
		goto out;
	}
	uint64_t st = 0x9E3779B97F4A7C15ull ^ o->seed;
	uint8_t *p8 = w, *s8 = w + nw8, *p4 = s8 + ns8;
	synth_bytes(p8, nw8, 0, &st);
	for (size_t i = 0; i < nw8; i++)
		if ((p8[i] & 0x7F) == 0x7F) p8[i] ^= 1; /* no NaN codes */
	synth_bytes(s8, ns8, 1, &st);
	struct kern_expert ex;
	struct kern_fp4w *f4[3] = { &ex.w1, &ex.w3, &ex.w2 };
	for (int j = 0; j < 3; j++) {
		uint8_t *pw = p4 + (size_t)j * (nw4 + ns4), *ps = pw + nw4;
		synth_bytes(pw, nw4, 0, &st);
		synth_bytes(ps, ns4, 1, &st);
		*f4[j] = j < 2 ? (struct kern_fp4w){ pw, ps, F, D } : (struct kern_fp4w){ pw, ps, D, F };
	}
	for (int i = 0; i < S * D; i++) xh[i] = rnd_normalish(&st);
	for (int i = 0; i < S; i++) { wth[i] = 1.0f; slh[i] = i; }
	k->upload(k, x, xh, sizeof(float) * S * D);
	k->upload(k, wt, wth, sizeof wth);
	k->upload(k, sl, slh, sizeof slh);
	const struct kern_fp8w W8 = { p8, s8, F, D };
	const unsigned nm = KERN_RND | KERN_QNT;
	for (int pass = 0; pass < 2; pass++) {
		const double flop = pass ? 6.0 * D * F * S : 2.0 * F * D * S;
		for (int r_ = -1; r_ < reps; r_++) { /* r_ = -1: warm-up */
			int calls = 0;
			double t0 = cli_now(), t;
			do {
				if (pass) k->moe_expert(k, y, x, &ex, sl, S, wt, 1, c->swiglu_limit, nm);
				else k->gemm_fp8(k, y, F, x, D, &W8, S, nm);
				calls++;
				t = cli_now() - t0;
			} while (r_ >= 0 && (calls < 3 || t < 0.1));
			if (r_ >= 0) v[r_] = flop * calls / t / 1e9;
		}
		if (pass) r->fp4 = cli_stat3(v, reps);
		else r->fp8 = cli_stat3(v, reps);
	}
out:
	free(w);
	free(xh);
	free(v);
	k->free(k, x);
	k->free(k, y);
	k->free(k, wt);
	k->free(k, sl);
	return rc;
}

/* ---- decode head GEMV ---- */

struct head_res {
	struct cli_stat3 gbs;    /* head bytes / s */
	struct cli_stat3 paired; /* per repetition: gbs / memory read measured just before */
	double bytes;
};

/* k->gemm_f32 of the checkpoint's bf16 head [V, D] on ONE token of bf16 values (the
 * decode logits GEMV, weights read in place from the mmapped checkpoint); bytes =
 * the head's.  Each repetition (>= 3 calls, >= 0.3 s) is paired with a memory read
 * run over mbuf just before it. */
static int bench_head(const struct core_ckpt *ck, struct kern *k, int reps, const char *mbuf, size_t mlen,
		      struct head_res *r, struct nv_err *e)
{
	const struct core_tensor *t = core_ckpt_find(ck, "head.weight");
	if (!t || t->dtype != CORE_DT_BF16 || t->ndim != 2 || !t->data)
		return core_err_set(e, NV_EINVAL, "bench", "head.weight", "a checkpoint of this model has it",
				    "missing, not bf16 [V, D] or not mapped");
	const int V = (int)t->shape[0], D = (int)t->shape[1];
	r->bytes = (double)t->nbytes;
	const uint16_t *w = k->wmap(k, t->data, t->nbytes);
	float *x = k->alloc(k, sizeof(float) * D), *y = k->alloc(k, sizeof(float) * V);
	float *xh = malloc(sizeof(float) * D);
	double *v = calloc((size_t)reps * 2, sizeof *v);
	int rc = 0;
	if (!w || !x || !y || !xh || !v) {
		rc = core_err_set(e, NV_ENOMEM, "bench", "head", NULL, "out of memory");
		goto out;
	}
	if ((rc = k->reserve(k, 1, (V > D ? V : D) + 256))) {
		rc = core_err_set(e, rc, "bench", "head", NULL, "backend scratch reservation failed");
		goto out;
	}
	uint64_t st = 0x5EEDull;
	for (int i = 0; i < D; i++) xh[i] = kern_rbf16(rnd_normalish(&st)); /* faithful: bf16 values */
	k->upload(k, x, xh, sizeof(float) * D);
	for (int r_ = -1; r_ < reps; r_++) { /* r_ = -1: warm-up (pages the head in) */
		double mr = r_ >= 0 ? mem_run((char *)mbuf, (char *)mbuf, mlen, kern_cpu_threads(k), 2, 1) : 0;
		int calls = 0;
		double t0 = cli_now(), el;
		do {
			k->gemm_f32(k, y, V, x, D, w, V, D, 1);
			calls++;
			el = cli_now() - t0;
		} while (r_ >= 0 && (calls < 3 || el < 0.3));
		if (r_ >= 0) {
			v[r_] = r->bytes * calls / el / 1e9;
			v[reps + r_] = mr > 0 ? v[r_] / mr : 0;
		}
	}
	r->gbs = cli_stat3(v, reps);
	r->paired = cli_stat3(v + reps, reps);
out:
	k->free(k, x);
	k->free(k, y);
	free(xh);
	free(v);
	return rc;
}

/* ---- forward pass ---- */

struct fwd_res {
	struct cli_stat3 prefill, decode;
	struct cli_prefill_res pr;
};

static int bench_fwd(const struct cli_opts *o, const struct core_ckpt *ck, struct kern *k,
		     const struct core_expert_src *src, struct cli_experts *xs, int P, int N,
		     int reps, struct fwd_res *r, struct nv_err *e)
{
	const struct core_config *c = core_ckpt_config(ck);
	const int V = c->vocab_size;
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)(P + N));
	float *lg = malloc(sizeof(float) * (size_t)V);
	double *vp = calloc((size_t)reps, sizeof(double)), *vd = calloc((size_t)reps, sizeof(double));
	int rc;
	if (!tok || !lg || !vp || !vd) {
		rc = core_err_set(e, NV_ENOMEM, "bench", "forward", NULL, "out of memory");
		goto out;
	}
	uint64_t st = 0xBE7Cull ^ o->seed;
	for (int i = 0; i < P + N; i++) {
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		tok[i] = (int32_t)((st >> 33) % (uint64_t)V);
	}
	const int chunk = o->chunk > 0 && o->chunk < P ? o->chunk : P;
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = chunk, .experts = src };
	if ((rc = core_model_create(ck, k, &mo, &m, e))) goto out;
	if ((rc = core_seq_create(m, P + N + 1, &sq, e))) goto out;
	if ((rc = cli_experts_reserve(xs, e))) goto out;
	struct core_fwd_io io = { .logits = lg };
	struct core_fwd_io pio = { .logits = lg, .layer_major = cli_prefill_layer(o->prefill_order, xs, P, chunk) };
	cli_prefill_res_begin(&r->pr, o, pio.layer_major, chunk);
	/* warm-up: a short prompt pages in every resident weight and most experts */
	int pw = P < 8 ? P : 8;
	if ((rc = core_forward(m, sq, tok, pw, 0, &io, e))) goto out;
	for (int r_ = 0; r_ < reps; r_++) {
		double t0 = cli_now();
		cli_prefill_res_add(&r->pr, xs, 0);
		if ((rc = core_forward(m, sq, tok, P, 0, &pio, e))) goto out;
		cli_prefill_res_add(&r->pr, xs, 1);
		double t1 = cli_now();
		for (int i = 0; i < N; i++)
			if ((rc = core_forward(m, sq, tok + P + i, 1, P + i, &io, e))) goto out;
		double t2 = cli_now();
		vp[r_] = P / (t1 - t0);
		vd[r_] = N / (t2 - t1);
	}
	r->prefill = cli_stat3(vp, reps);
	r->decode = cli_stat3(vd, reps);
out:
	core_seq_destroy(sq);
	core_model_destroy(m);
	free(tok);
	free(lg);
	free(vp);
	free(vd);
	return rc;
}

/* ---- the command ---- */

int cli_bench_cpu(const struct cli_opts *o, cJSON *js)
{
	struct nv_err e = {0};
	struct core_ckpt *ck = NULL;
	struct kern *k = NULL;
	struct cli_experts *xs = NULL;
	const struct core_expert_src *src = NULL;
	char *a = NULL, *b = NULL;
	int ret = 1;
	const int reps = o->repeat > 0 ? o->repeat : 3;
	const int P = o->bench_prefill > 0 ? o->bench_prefill : 64;
	const int N = o->bench_decode > 0 ? o->bench_decode : 16;
	struct core_ckpt_opts co = { .allow_extra = o->allow_extra };
	if (core_ckpt_open(o->args[0], &co, &ck, &e)) goto err;
	struct cli_opts oc = *o;
	oc.backend = "cpu"; /* this is the CPU benchmark, whatever `auto` would pick */
	if (cli_backend_create(&oc, &k, &e)) goto err;
	/* Routed experts: the memory plan for bench_fwd's sequence, or the tiers the flags ask for. */
	if (cli_experts_open_auto(o, ck, k, P + N + 1, o->chunk > 0 && o->chunk < P ? o->chunk : P, &xs, &src, &e) ||
	    cli_backend_check_experts(k, src, &e))
		goto err;
	const int nt = kern_cpu_threads(k);
	const char *isa = kern_cpu_isa(k);
	char thp[32];
	thp_mode(thp, sizeof thp);
	FILE *tf = o->json ? stderr : stdout; /* progress goes to stderr with --json */
	fprintf(tf, "nvmoe bench %s: backend %s (%s), %d thread(s), faithful numerics, THP %s, best / median / worst of %d\n",
		o->args[0], k->name, isa, nt, thp, reps);

	/* memory: 2 x 256 MiB, 4 passes per run (2 GiB of copy traffic per run), in the
	 * same huge-page memory as the FP4 working set so that the ratio compares like
	 * with like */
	const size_t mb = (size_t)256 << 20;
	a = cache_huge_map(mb);
	b = cache_huge_map(mb);
	if (!a || !b) { core_err_set(&e, NV_ENOMEM, "bench", "memory", NULL, "cannot allocate 2 x 256 MiB"); goto err; }
	memset(a, 1, mb);
	memset(b, 2, mb);
	double *v = calloc((size_t)reps * 2, sizeof *v);
	if (!v) { core_err_set(&e, NV_ENOMEM, "bench", "memory", NULL, "out of memory"); goto err; }
	for (int i = 0; i < reps; i++) {
		v[i] = mem_run(a, b, mb, nt, 4, 0);
		v[reps + i] = mem_run(a, b, mb, nt, 4, 1);
		if (v[i] < 0 || v[reps + i] < 0) {
			free(v);
			core_err_set(&e, NV_ENOMEM, "bench", "memory", "try fewer --threads", "cannot start %d threads", nt);
			goto err;
		}
	}
	struct cli_stat3 mcopy = cli_stat3(v, reps), mread = cli_stat3(v + reps, reps);
	free(v);
	cache_huge_unmap(b, mb);
	b = NULL;
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f GB/s\n", "memory copy (read+write bytes)", mcopy.best, mcopy.med, mcopy.worst);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f GB/s\n", "memory read", mread.best, mread.med, mread.worst);

	struct fp4_res f4 = {0};
	if (bench_fp4(o, ck, k, reps, a, mb, &f4, &e)) goto err;
	char lbl[96];
	snprintf(lbl, sizeof lbl, "FP4 experts, 1 token (%d experts, %.0f MB)", f4.experts, f4.set_bytes / 1e6);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f GB/s  = %.2f of copy bandwidth (%.2f of read)\n", lbl, f4.gbs.best,
		f4.gbs.med, f4.gbs.worst, f4.gbs.best / mcopy.best, f4.gbs.best / mread.best);
	if (f4.synthetic)
		fprintf(tf, "  %-44s\n", "  (converted store: synthetic experts of the model's shapes; no in-place figure)");
	else
		fprintf(tf, "  %-44s %8.2f %8.2f %8.2f GB/s  = %.2f of copy bandwidth (%.2f of read)\n",
			"  same, in place in the mmapped checkpoint", f4.mmap_gbs.best, f4.mmap_gbs.med, f4.mmap_gbs.worst,
			f4.mmap_gbs.best / mcopy.best, f4.mmap_gbs.best / mread.best);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f\n", "FP4 / memory read, paired per repetition", f4.paired.best,
		f4.paired.med, f4.paired.worst);

	struct head_res hd = {0};
	if (bench_head(ck, k, reps, a, mb, &hd, &e)) goto err;
	cache_huge_unmap(a, mb);
	a = NULL;
	snprintf(lbl, sizeof lbl, "head GEMV, 1 token (F32 GEMM, %.0f MB bf16)", hd.bytes / 1e6);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f GB/s  = %.2f of read\n", lbl, hd.gbs.best, hd.gbs.med, hd.gbs.worst,
		hd.gbs.best / mread.best);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f\n", "head / memory read, paired per repetition", hd.paired.best,
		hd.paired.med, hd.paired.worst);

	struct pgemm_res pg = {0};
	if (bench_prefill_gemm(o, ck, k, reps, &pg, &e)) goto err;
	snprintf(lbl, sizeof lbl, "FP8 GEMM %dx%d, %d rows", c_F(ck), c_D(ck), pg.rows);
	fprintf(tf, "  %-44s %8.1f %8.1f %8.1f GFLOP/s\n", lbl, pg.fp8.best, pg.fp8.med, pg.fp8.worst);
	snprintf(lbl, sizeof lbl, "FP4 expert, %d tokens", pg.rows);
	fprintf(tf, "  %-44s %8.1f %8.1f %8.1f GFLOP/s\n", lbl, pg.fp4.best, pg.fp4.med, pg.fp4.worst);

	struct fwd_res fr = {0};
	if (bench_fwd(o, ck, k, src, xs, P, N, reps, &fr, &e)) goto err;
	snprintf(lbl, sizeof lbl, "prefill (%d-token prompt)", P);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f tok/s\n", lbl, fr.prefill.best, fr.prefill.med, fr.prefill.worst);
	cli_prefill_res_print(&fr.pr, tf, js, reps);
	snprintf(lbl, sizeof lbl, "decode (%d steps)", N);
	fprintf(tf, "  %-44s %8.2f %8.2f %8.2f tok/s\n", lbl, fr.decode.best, fr.decode.med, fr.decode.worst);

	cJSON_AddStringToObject(js, "model", o->args[0]);
	cJSON_AddStringToObject(js, "backend", k->name);
	cJSON_AddStringToObject(js, "isa", isa);
	cJSON_AddNumberToObject(js, "threads", nt);
	cJSON_AddNumberToObject(js, "repeat", reps);
	cJSON_AddNumberToObject(js, "prefill_len", P);
	cJSON_AddNumberToObject(js, "decode_len", N);
	cli_js_stat3(js, "prefill_tok_s", fr.prefill);
	cli_js_stat3(js, "decode_tok_s", fr.decode);
	cli_js_stat3(js, "mem_bw_gbs", mcopy);
	cli_js_stat3(js, "mem_read_gbs", mread);
	cli_js_stat3(js, "fp4_kernel_gbs", f4.gbs);
	cJSON_AddNumberToObject(js, "fp4_fraction_of_mem_bw", f4.gbs.best / mcopy.best);
	cJSON_AddNumberToObject(js, "fp4_fraction_of_mem_read", f4.gbs.best / mread.best);
	cli_js_stat3(js, "fp4_paired_fraction_of_mem_read", f4.paired);
	cJSON_AddBoolToObject(js, "fp4_synthetic_experts", f4.synthetic);
	cli_js_stat3(js, "fp4_mmap_gbs", f4.mmap_gbs);
	cJSON_AddNumberToObject(js, "fp4_mmap_fraction_of_mem_bw", f4.mmap_gbs.best / mcopy.best);
	cJSON_AddNumberToObject(js, "fp4_mmap_fraction_of_mem_read", f4.mmap_gbs.best / mread.best);
	cJSON_AddStringToObject(js, "thp", thp);
	cJSON_AddNumberToObject(js, "prefill_gemm_rows", pg.rows);
	cli_js_stat3(js, "prefill_fp8_gemm_gflops", pg.fp8);
	cli_js_stat3(js, "head_gemv_gbs", hd.gbs);
	cJSON_AddNumberToObject(js, "head_gemv_fraction_of_mem_read", hd.gbs.best / mread.best);
	cli_js_stat3(js, "head_gemv_paired_fraction_of_mem_read", hd.paired);
	cli_js_stat3(js, "prefill_fp4_expert_gflops", pg.fp4);
	cJSON_AddNumberToObject(js, "fp4_experts", f4.experts);
	cJSON_AddNumberToObject(js, "fp4_bytes_per_expert", f4.bytes_per_expert);
	cJSON_AddNumberToObject(js, "fp4_working_set_bytes", f4.set_bytes);
	/* Tier statistics over every forward token of the run (warm-up, prefills, decodes):
	 * host_cache, prefetch, stall_ms_per_token, io; zeros when experts are resident. */
	const int fwd_tokens = (P < 8 ? P : 8) + reps * (P + N);
	cli_experts_json(xs, js, (uint64_t)fwd_tokens);
	cJSON_AddNumberToObject(js, "stall_tokens", fwd_tokens);
	if (xs) {
		char line[600];
		fprintf(tf, "  %s\n", cli_experts_stats_line(xs, (uint64_t)fwd_tokens, line, sizeof line));
	}
	ret = 0;
	goto out;
err:
	cli_print_err(&e);
out:
	cache_huge_unmap(a, (size_t)256 << 20);
	cache_huge_unmap(b, (size_t)256 << 20);
	if (cli_experts_close(xs)) ret = 1;
	if (k) k->destroy(k);
	core_ckpt_close(ck);
	return ret;
}
