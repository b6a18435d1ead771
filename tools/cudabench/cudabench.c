/* tools/cudabench/cudabench.c - benchmark of the CUDA backend.
 *
 *   cudabench ops        per-op time at the released shapes (decode S=1 and prefill
 *                        S=64), achieved GB/s (weight bytes) and TFLOP/s, next to the
 *                        device's ceilings measured in the same run (D2D copy,
 *                        cuBLAS BF16 GEMM, cuBLASLt FP8 GEMM)
 *   cudabench prefill    the prefill FP8 GEMM on the model's linear shapes (config.json:
 *                        wq_a, wq_b, wkv, wo_b, indexer wq_b, shared w1/w3, w2) at S = 64,
 *                        512, 4096: the own engine kernel against cuBLASLt's block-scaled
 *                        FP8 path (kern_cuda_set_gemm_lt), TFLOP/s and share of the
 *                        cuBLASLt FP8 ceiling of the same run, and the largest
 *                        |lt - own| of a row relative to that row's max |own|
 *   cudabench fwd DIR [--prefill P] [--decode N] [--chunk C]
 *                        the forward pass of a checkpoint (all experts resident on
 *                        the GPU): prefill and decode tokens per second
 * Random inputs; times are wall clock over several calls, stream synchronised. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/cuda/cuda.h"
#include "kernels/kern.h"

double cb_copy_gbs(char *msg, size_t msg_n);
double cb_bf16_tflops(char *msg, size_t msg_n);
double cb_fp8_tflops(char *msg, size_t msg_n);

/* the one backend and the random state of this tool */
static struct kern *g_dev;
static uint64_t g_rng = 88172645463325252ull;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void sync_dev(void)
{
	static float dummy_h;
	static float *dummy_d;
	if (!dummy_d) dummy_d = g_dev->alloc(g_dev, 4);
	g_dev->download(g_dev, &dummy_h, dummy_d, 4);
}

static void *rnd_dev(size_t bytes, int kind) /* kind 0: f32 N(0,1)-ish, 1: e4m3 bytes, 2: e8m0, 3: raw, 4: bf16 */
{
	uint8_t *h = malloc(bytes);
	for (size_t i = 0; i < bytes; i++) {
		g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
		h[i] = (uint8_t)g_rng;
	}
	if (kind == 0)
		for (size_t i = 0; i < bytes / 4; i++) ((float *)h)[i] = (float)((int)(h[4 * i] % 200) - 100) / 50.0f;
	if (kind == 1)
		for (size_t i = 0; i < bytes; i++) if ((h[i] & 0x7f) == 0x7f) h[i] = 0x30;
	if (kind == 2)
		for (size_t i = 0; i < bytes; i++) h[i] = (uint8_t)(120 + h[i] % 6);
	if (kind == 4)
		for (size_t i = 0; i < bytes / 2; i++) ((uint16_t *)h)[i] = (uint16_t)(0x3c00 + (((uint16_t *)h)[i] & 0x7ff));
	void *d = g_dev->alloc(g_dev, bytes);
	if (!d) {
		fprintf(stderr, "cudabench: device allocation of %zu bytes failed\n", bytes);
		exit(1);
	}
	g_dev->upload(g_dev, d, h, bytes);
	free(h);
	return d;
}

/* ---- per-op timing ---- */

struct op {
	const char *name;
	double bytes, flops; /* per call */
	void (*run)(void *ctx);
	void *ctx;
};

/* Seconds per call: two warm-up calls, then calls for about 0.3 s. */
static double time_call(const struct op *o)
{
	o->run(o->ctx);
	o->run(o->ctx);
	sync_dev();
	int it = 0;
	double t0 = now();
	do {
		o->run(o->ctx);
		it++;
		if (it % 4 == 0) sync_dev();
	} while (now() - t0 < 0.3 && it < 2000);
	sync_dev();
	return (now() - t0) / it;
}

static void report(const struct op *o, double copy_gbs, double tc_tflops)
{
	double t = time_call(o);
	double gbs = o->bytes / t / 1e9, tf = o->flops / t / 1e12;
	printf("%-40s %9.1f us  %8.1f GB/s (%4.0f%% of copy)  %7.2f TFLOP/s (%4.1f%% of BF16 cuBLAS)\n", o->name, t * 1e6,
	       gbs, copy_gbs > 0 ? 100 * gbs / copy_gbs : 0, tf, tc_tflops > 0 ? 100 * tf / tc_tflops : 0);
}

struct fp8ctx { struct kern_fp8w w; float *x, *y; int S; };
static void run_fp8(void *v) { struct fp8ctx *c = v; g_dev->gemm_fp8(g_dev, c->y, c->w.n, c->x, c->w.k, &c->w, c->S, KERN_RND | KERN_QNT); }

struct moectx { struct kern_expert ex; float *acc, *x, *wt; int32_t *slots; int n; };
static void run_moe(void *v) { struct moectx *c = v; g_dev->moe_expert(g_dev, c->acc, c->x, &c->ex, c->slots, c->n, c->wt, 1, 10.0f, KERN_RND | KERN_QNT); }

struct headctx { uint16_t *w; float *x, *y; int N, K, S; };
static void run_head(void *v) { struct headctx *c = v; g_dev->gemm_f32(g_dev, c->y, c->N, c->x, c->K, c->w, c->N, c->K, c->S); }

struct attnctx { float *o, *q, *sink; struct kern_kv kv; int32_t *idx; int n_idx, S, H, dh; };
static void run_attn(void *v)
{
	struct attnctx *c = v;
	g_dev->attn(g_dev, c->o, c->q, &c->kv, c->idx, c->n_idx, c->sink, c->S, c->H, c->dh, 0.044194173f, KERN_RND | KERN_QNT);
}

struct idxctx { float *sc, *q, *w, *ic; int32_t *sel; int n, S; };
static void run_score(void *v) { struct idxctx *c = v; g_dev->idx_score(g_dev, c->sc, c->n, c->q, c->w, c->ic, c->n, c->S, 64, 128, KERN_RND | KERN_QNT); }
static void run_topk(void *v) { struct idxctx *c = v; g_dev->topk(g_dev, c->sel, 512, c->sc, c->n, c->S, c->n, 4 * c->n, 4, 512, 512, 128); }

struct hcctx { float *y, *post, *comb, *X, *fn, *sc, *base; int S; };
static void run_hc(void *v)
{
	struct hcctx *c = v;
	g_dev->hc_pre(g_dev, c->y, c->post, c->comb, c->X, c->fn, c->sc, c->base, c->S, 4, 4096, 20, 1e-6f, 1e-6f, KERN_RND | KERN_QNT);
}

static int cmd_ops(void)
{
	char msg[256] = "";
	double copy = cb_copy_gbs(msg, sizeof msg);
	printf("ceiling: device-to-device copy %.1f GB/s (read + write)%s%s\n", copy, copy < 0 ? ": " : "", copy < 0 ? msg : "");
	double bf = cb_bf16_tflops(msg, sizeof msg);
	printf("ceiling: cuBLAS BF16 GEMM 8192^3 %.1f TFLOP/s%s%s\n", bf, bf < 0 ? ": " : "", bf < 0 ? msg : "");
	double f8 = cb_fp8_tflops(msg, sizeof msg);
	printf("ceiling: cuBLASLt FP8 GEMM 8192^3 %.1f TFLOP/s%s%s\n", f8, f8 < 0 ? ": " : "", f8 < 0 ? msg : "");
	if (g_dev->reserve(g_dev, 64 * 64, 16384 + 256)) {
		fprintf(stderr, "cudabench: reserve failed\n");
		return 1;
	}
	/* FP8 linears at released shapes [N, K] */
	const int shapes[4][2] = { { 1024, 4096 }, { 32768, 1024 }, { 4096, 8192 }, { 2048, 4096 } };
	const char *names[4] = { "wq_a", "wq_b", "wo_b", "shared w1" };
	for (int i = 0; i < 4; i++)
		for (int S = 1; S <= 64; S *= 64) {
			int N = shapes[i][0], K = shapes[i][1];
			size_t ns = (size_t)((N + 127) / 128) * (K / 128);
			struct fp8ctx c = { { rnd_dev((size_t)N * K, 1), rnd_dev(ns, 2), N, K }, rnd_dev((size_t)S * K * 4, 0),
					    rnd_dev((size_t)S * N * 4, 0), S };
			char nm[64];
			snprintf(nm, sizeof nm, "gemm_fp8 %s %dx%d S=%d", names[i], N, K, S);
			struct op o = { nm, (double)N * K + ns, 2.0 * S * N * K, run_fp8, &c };
			report(&o, copy, bf);
			g_dev->free(g_dev, (void *)c.w.w); g_dev->free(g_dev, (void *)c.w.s); g_dev->free(g_dev, c.x); g_dev->free(g_dev, c.y);
		}
	/* one routed expert, D 4096, F 2048 */
	for (int n = 1; n <= 64; n *= 64) {
		const int D = 4096, F = 2048;
		struct moectx c;
		struct kern_fp4w *w[3] = { &c.ex.w1, &c.ex.w3, &c.ex.w2 };
		for (int j = 0; j < 3; j++) {
			int N = j == 2 ? D : F, K = j == 2 ? F : D;
			*w[j] = (struct kern_fp4w){ rnd_dev((size_t)N * K / 2, 3), rnd_dev((size_t)N * K / 32, 2), N, K };
		}
		int32_t sl[64];
		float wt[64];
		for (int i = 0; i < 64; i++) sl[i] = i, wt[i] = 0.5f;
		c.slots = g_dev->alloc(g_dev, sizeof sl);
		g_dev->upload(g_dev, c.slots, sl, sizeof sl);
		c.wt = g_dev->alloc(g_dev, sizeof wt);
		g_dev->upload(g_dev, c.wt, wt, sizeof wt);
		c.x = rnd_dev((size_t)64 * D * 4, 0);
		c.acc = rnd_dev((size_t)64 * D * 4, 0);
		c.n = n;
		char nm[64];
		snprintf(nm, sizeof nm, "moe_expert 4096/2048 n=%d", n);
		struct op o = { nm, 3.0 * D * F / 2 + 3.0 * D * F / 32, 2.0 * 3 * n * D * F, run_moe, &c };
		report(&o, copy, bf);
		for (int j = 0; j < 3; j++) g_dev->free(g_dev, (void *)w[j]->w), g_dev->free(g_dev, (void *)w[j]->s);
		g_dev->free(g_dev, c.slots); g_dev->free(g_dev, c.wt); g_dev->free(g_dev, c.x); g_dev->free(g_dev, c.acc);
	}
	{ /* head: f32 GEMM on bf16 weights [129280, 4096] */
		struct headctx c = { rnd_dev((size_t)129280 * 4096 * 2, 4), rnd_dev(4096 * 4, 0), rnd_dev(129280 * 4, 0), 129280, 4096, 1 };
		struct op o = { "gemm_f32 head 129280x4096 S=1", 129280.0 * 4096 * 2, 2.0 * 129280 * 4096, run_head, &c };
		report(&o, copy, bf);
		g_dev->free(g_dev, c.w); g_dev->free(g_dev, c.x); g_dev->free(g_dev, c.y);
	}
	for (int S = 1; S <= 64; S *= 64) { /* attention: 128 window + 512 compressed entries */
		const int H = 64, dh = 512, n_idx = 640, ncmp = 4096;
		struct attnctx c;
		c.S = S, c.H = H, c.dh = dh, c.n_idx = n_idx;
		c.q = rnd_dev((size_t)S * H * dh * 4, 0);
		c.o = rnd_dev((size_t)S * H * dh * 4, 0);
		c.sink = rnd_dev(H * 4, 0);
		c.kv = (struct kern_kv){ rnd_dev((size_t)(128 + S) * dh * 4, 0), 128 + S, rnd_dev((size_t)ncmp * dh * 4, 0), ncmp };
		int32_t *idx = malloc((size_t)S * n_idx * 4);
		for (int s = 0; s < S; s++)
			for (int j = 0; j < n_idx; j++) idx[(size_t)s * n_idx + j] = j < 128 ? j : 128 + S + (j * 7) % ncmp;
		c.idx = g_dev->alloc(g_dev, (size_t)S * n_idx * 4);
		g_dev->upload(g_dev, c.idx, idx, (size_t)S * n_idx * 4);
		free(idx);
		char nm[64];
		snprintf(nm, sizeof nm, "attn H=64 dh=512 list 640 S=%d", S);
		struct op o = { nm, (double)n_idx * dh * 4 * S, 4.0 * S * H * n_idx * dh, run_attn, &c };
		report(&o, copy, bf);
		g_dev->free(g_dev, c.q); g_dev->free(g_dev, c.o); g_dev->free(g_dev, c.sink); g_dev->free(g_dev, (void *)c.kv.win);
		g_dev->free(g_dev, (void *)c.kv.cmp); g_dev->free(g_dev, c.idx);
	}
	{ /* indexer at a 64K context: 16384 compressed entries */
		const int n = 16384, S = 1;
		struct idxctx c = { rnd_dev((size_t)S * n * 4, 0), rnd_dev((size_t)S * 64 * 128 * 4, 0), rnd_dev(S * 64 * 4, 0),
				    rnd_dev((size_t)n * 128 * 4, 0), g_dev->alloc(g_dev, (size_t)S * 512 * 4), n, S };
		struct op o = { "idx_score HI=64 dI=128 n=16384 S=1", (double)n * 128 * 4, 2.0 * S * n * 64 * 128, run_score, &c };
		report(&o, copy, bf);
		struct op o2 = { "topk 512 of 16384 S=1", (double)n * 4, 0, run_topk, &c };
		report(&o2, copy, bf);
		g_dev->free(g_dev, c.sc); g_dev->free(g_dev, c.q); g_dev->free(g_dev, c.w); g_dev->free(g_dev, c.ic); g_dev->free(g_dev, c.sel);
	}
	for (int S = 1; S <= 64; S *= 64) {
		struct hcctx c = { rnd_dev((size_t)S * 4096 * 4, 0), rnd_dev(S * 4 * 4, 0), rnd_dev(S * 16 * 4, 0),
				   rnd_dev((size_t)S * 16384 * 4, 0), rnd_dev((size_t)24 * 16384 * 4, 0), rnd_dev(12, 0),
				   rnd_dev(24 * 4, 0), S };
		char nm[64];
		snprintf(nm, sizeof nm, "hc_pre M=4 D=4096 S=%d", S);
		struct op o = { nm, 24.0 * 16384 * 4 + S * 16384.0 * 4, 2.0 * S * 25 * 16384, run_hc, &c };
		report(&o, copy, bf);
		float *p[] = { c.y, c.post, c.comb, c.X, c.fn, c.sc, c.base };
		for (int i = 0; i < 7; i++) g_dev->free(g_dev, p[i]);
	}
	return 0;
}

/* ---- prefill GEMM: own kernel vs cuBLASLt block-scaled FP8 ---- */

static int cmd_prefill(void)
{
	char msg[256] = "";
	double f8 = cb_fp8_tflops(msg, sizeof msg);
	printf("ceiling: cuBLASLt FP8 GEMM 8192^3 %.1f TFLOP/s%s%s\n", f8, f8 < 0 ? ": " : "", f8 < 0 ? msg : "");
	/* the model's FP8 linears [N, K] (config.json: D 4096, Q 1024, H·d_h 32768, d_h 512,
	 * G·R 8192, H_I·d_I 8192, F 2048) */
	const struct { const char *name; int N, K; } sh[] = {
		{ "wq_a", 1024, 4096 }, { "wq_b", 32768, 1024 }, { "wkv", 512, 4096 }, { "wo_b", 4096, 8192 },
		{ "indexer wq_b", 8192, 1024 }, { "shared w1/w3", 2048, 4096 }, { "shared w2", 4096, 2048 },
	};
	const int Ss[] = { 64, 512, 4096 };
	if (g_dev->reserve(g_dev, 4096, 32768 + 256)) {
		fprintf(stderr, "cudabench: reserve failed\n");
		return 1;
	}
	int lt = kern_cuda_set_gemm_lt(g_dev, 1, msg, sizeof msg) == 0;
	kern_cuda_set_gemm_lt(g_dev, 0, NULL, 0);
	if (!lt) printf("cuBLASLt block-scaled FP8 path unavailable: %s (own kernel only)\n", msg);
	printf("%-28s %6s | %10s %8s %6s | %10s %8s %6s | %7s | %s\n", "gemm_fp8 faithful [N x K]", "S", "own us", "TFLOP/s",
	       "%ceil", "lt us", "TFLOP/s", "%ceil", "lt/own", "max|lt-own|/rowmax");
	for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
		for (size_t j = 0; j < sizeof Ss / sizeof Ss[0]; j++) {
			const int N = sh[i].N, K = sh[i].K, S = Ss[j];
			size_t ns = (size_t)((N + 127) / 128) * (K / 128);
			struct fp8ctx c = { { rnd_dev((size_t)N * K, 1), rnd_dev(ns, 2), N, K }, rnd_dev((size_t)S * K * 4, 0),
					    g_dev->alloc(g_dev, (size_t)S * N * 4), S };
			float *y_lt = g_dev->alloc(g_dev, (size_t)S * N * 4);
			if (!c.y || !y_lt) {
				fprintf(stderr, "cudabench: device allocation failed\n");
				exit(1);
			}
			char nm[64];
			snprintf(nm, sizeof nm, "%s %dx%d", sh[i].name, N, K);
			const double fl = 2.0 * S * N * K;
			struct op o = { nm, (double)N * K + ns, fl, run_fp8, &c };
			const double t_own = time_call(&o);
			double t_lt = -1, rel = -1;
			if (lt) {
				kern_cuda_set_gemm_lt(g_dev, 1, NULL, 0);
				float *y_own = c.y;
				c.y = y_lt;
				long c0 = kern_cuda_gemm_lt_calls(g_dev);
				t_lt = time_call(&o);
				if (kern_cuda_gemm_lt_calls(g_dev) == c0) t_lt = -2; /* fell back */
				c.y = y_own;
				kern_cuda_set_gemm_lt(g_dev, 0, NULL, 0);
				float *a = malloc((size_t)S * N * 4), *b = malloc((size_t)S * N * 4);
				g_dev->download(g_dev, a, y_own, (size_t)S * N * 4);
				g_dev->download(g_dev, b, y_lt, (size_t)S * N * 4);
				rel = 0;
				for (int s = 0; s < S; s++) {
					double rmax = 0, d = 0;
					for (int n = 0; n < N; n++) {
						double v = a[(size_t)s * N + n];
						rmax = fabs(v) > rmax ? fabs(v) : rmax;
						double e = fabs((double)b[(size_t)s * N + n] - v);
						d = e > d || e != e ? e : d;
					}
					double r = rmax > 0 ? d / rmax : d;
					rel = r > rel || r != r ? r : rel;
				}
				free(a);
				free(b);
			}
			const double tf_own = fl / t_own / 1e12, tf_lt = t_lt > 0 ? fl / t_lt / 1e12 : 0;
			printf("%-28s %6d | %10.1f %8.1f %5.1f%% | ", nm, S, t_own * 1e6, tf_own, f8 > 0 ? 100 * tf_own / f8 : 0);
			if (t_lt > 0)
				printf("%10.1f %8.1f %5.1f%% | %6.2fx | %.3g\n", t_lt * 1e6, tf_lt, f8 > 0 ? 100 * tf_lt / f8 : 0,
				       t_own / t_lt, rel);
			else
				printf("%10s %8s %6s | %7s | %s\n", "-", "-", "-", "-", t_lt == -2 ? "fell back to own kernel" : "n/a");
			g_dev->free(g_dev, (void *)c.w.w); g_dev->free(g_dev, (void *)c.w.s); g_dev->free(g_dev, c.x);
			g_dev->free(g_dev, c.y); g_dev->free(g_dev, y_lt);
		}
	return 0;
}

/* ---- forward pass ---- */

static int cmd_fwd(int argc, char **argv)
{
	const char *dir = argv[0];
	int P = 64, N = 32, chunk = 64;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--prefill")) P = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--decode")) N = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--chunk")) chunk = atoi(argv[i + 1]);
	}
	struct nv_err e = {0};
	struct core_ckpt_opts co = {0};
	struct core_ckpt *ck = NULL;
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	char buf[2048];
	if (core_ckpt_open(dir, &co, &ck, &e)) goto fail;
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = chunk };
	double t0 = now();
	if (core_model_create(ck, g_dev, &mo, &m, &e) || core_seq_create(m, P + N + 8, &sq, &e)) goto fail;
	sync_dev();
	printf("model %s: weights uploaded in %.1f s\n", dir, now() - t0);
	const int V = core_model_config(m)->vocab_size;
	int32_t *tok = malloc((size_t)(P + N) * 4);
	for (int i = 0; i < P + N; i++) tok[i] = (int32_t)((i * 7919u + 13) % (unsigned)V);
	float *logits = malloc((size_t)V * 4);
	struct core_fwd_io io = { .logits = logits };
	for (int rep = 0; rep < 2; rep++) { /* the first round warms up */
		t0 = now();
		if (core_forward(m, sq, tok, P, 0, &io, &e)) goto fail;
		double tp = now() - t0;
		t0 = now();
		for (int i = 0; i < N; i++)
			if (core_forward(m, sq, tok + P + i, 1, P + i, &io, &e)) goto fail;
		double td = now() - t0;
		if (rep)
			printf("forward (faithful, experts resident): prefill %d tokens %.1f tok/s (%.1f ms), decode %.2f tok/s (%.2f ms/token)\n",
			       P, P / tp, tp * 1e3, N / td, td * 1e3 / N);
	}
	free(tok);
	free(logits);
	core_seq_destroy(sq);
	core_model_destroy(m);
	core_ckpt_close(ck);
	return 0;
fail:
	fprintf(stderr, "cudabench: %s\n", core_err_str(&e, buf, sizeof buf));
	core_seq_destroy(sq);
	core_model_destroy(m);
	core_ckpt_close(ck);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "ops") && strcmp(argv[1], "prefill") && (strcmp(argv[1], "fwd") || argc < 3))) {
		fprintf(stderr, "usage: cudabench ops | cudabench prefill | cudabench fwd DIR [--prefill P] [--decode N] [--chunk C]\n");
		return 2;
	}
	char msg[256], name[128];
	if (kern_cuda_create(0, &g_dev, msg, sizeof msg)) {
		fprintf(stderr, "cudabench: %s\n", msg);
		return 77;
	}
	size_t fr, tot;
	kern_cuda_info(g_dev, name, sizeof name, &fr, &tot);
	printf("device: %s, %.1f of %.1f GiB free\n", name, fr / 1073741824.0, tot / 1073741824.0);
	int rc = !strcmp(argv[1], "ops") ? cmd_ops() : !strcmp(argv[1], "prefill") ? cmd_prefill() : cmd_fwd(argc - 2, argv + 2);
	g_dev->destroy(g_dev);
	return rc;
}
