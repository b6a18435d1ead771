/* tests/test_cuda_ops.c - every kernel-table op on the CUDA backend against the CPU
 * backend (the reference), on fresh random inputs, like ggml's test-backend-ops.
 *
 * Tolerances (MODEL.md §10.8):
 *   exact  bit-identical: embedding, elementwise ops without exp, RoPE, quantisers,
 *          Hadamard, hc_post, compressor state, top-k / index lists, and every GEMM on
 *          the reference path (kern_cuda_set_gemm_ref: the CPU's order on the GPU);
 *   bf16   rounded outputs: |ulp| <= 1 (or |diff| <= 2^-16 of the row's max |value|,
 *          for cancelled sums), and at most 2% + 2 elements off by one ulp;
 *   f32    unrounded outputs: |diff| <= rel * the row's max |value|.
 * Row independence: GEMMs, attention, scores, norms, hc and experts are also run row
 * by row on the GPU and must be bitwise equal to the batched call.
 * Failures print op, index, got and expected.  Exit 77 without a CUDA device;
 * `--probe` only answers that question (0 = device present).
 * The CPU reference is the SCALAR isa (the order the GEMM reference path reproduces).
 * Each group of ops runs in a child process (see main): a CUDA fault or a hung kernel
 * in one group is reported and the other groups still run.  `--only a,b` runs some
 * groups (`--list`); `--inproc` runs them in this process (for compute-sanitizer);
 * `--fake` runs the whole test with a second scalar CPU backend in
 * place of the GPU (no device needed: checks the test's own buffers and indexing).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/cuda/cuda.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

static struct kern *C, *G;
static int g_fake; /* --fake: G is a second (scalar) CPU backend: checks the test itself */

/* the CUDA backend's reference GEMM path (bitwise the CPU's order) on / off */
static void set_ref(int on)
{
	if (kern_cuda_is(G)) kern_cuda_set_gemm_ref(G, on);
}
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

/* ---- random data ---- */

static uint64_t rnext(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}
static double urand(void) { return (double)(rnext() >> 11) * 0x1p-53; }
static float nrand(void)
{
	double u = urand() + 1e-12, v = urand();
	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}
static float *fvec(size_t n, float sd, int bf)
{
	float *p = malloc(n * sizeof(float) + 4);
	for (size_t i = 0; i < n; i++) p[i] = bf ? kern_rbf16(nrand() * sd) : nrand() * sd;
	return p;
}
static uint16_t *bvec(size_t n, float mean, float sd)
{
	uint16_t *p = malloc(n * 2 + 2);
	for (size_t i = 0; i < n; i++) p[i] = kern_f32_to_bf16(mean + nrand() * sd);
	return p;
}
/* E4M3 bytes without the NaN codes */
static uint8_t *e4vec(size_t n)
{
	uint8_t *p = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t b;
		do b = (uint8_t)rnext(); while ((b & 0x7f) == 0x7f);
		p[i] = b;
	}
	return p;
}
static uint8_t *u8vec(size_t n, int lo, int hi)
{
	uint8_t *p = malloc(n + 1);
	for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(lo + (int)(rnext() % (uint64_t)(hi - lo + 1)));
	return p;
}

/* ---- device buffers ---- */

static void *ddup(const void *h, size_t bytes)
{
	void *d = G->alloc(G, bytes);
	if (!d) { fprintf(stderr, "FAIL: device alloc of %zu bytes\n", bytes); exit(1); }
	G->upload(G, d, h, bytes);
	return d;
}
static void *down(const void *d, size_t bytes)
{
	void *h = malloc(bytes + 4);
	G->download(G, h, d, bytes);
	return h;
}

/* ---- comparison ---- */

enum { EXACT, BF16, F32 };

static double ulpd(float a, float b)
{
	if (a == b) return 0;
	if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : 1e30;
	int32_t ia, ib;
	memcpy(&ia, &a, 4);
	memcpy(&ib, &b, 4);
	int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia, ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
	return fabs((double)(oa - ob)) / 65536.0;
}

/* got vs exp, rows of `cols` (stride ld); mode EXACT/BF16/F32 (rel). 1 = pass. */
static int cmp(const char *op, const float *got, const float *exp, int rows, int cols, int ld, int mode, double rel)
{
	long bad = 0, off1 = 0, n = 0;
	double worst = 0;
	for (int r = 0; r < rows; r++) {
		double rmax = 0;
		for (int c = 0; c < cols; c++) rmax = fmax(rmax, fabs(exp[(size_t)r * ld + c]));
		for (int c = 0; c < cols; c++) {
			float g = got[(size_t)r * ld + c], e = exp[(size_t)r * ld + c];
			double d = fabs((double)g - e);
			int ok;
			n++;
			if (mode == EXACT) {
				ok = g == e || (isnan(g) && isnan(e));
				if (ok && g == 0 && signbit(g) != signbit(e)) ok = 1; /* -0 == +0 */
			} else if (mode == BF16) {
				double u = ulpd(g, e);
				ok = u <= 1 || d <= rmax * 0x1p-16;
				if (u > 0) off1++;
				if (u > worst && u < 1e29) worst = u;
			} else {
				ok = d <= rel * rmax || g == e;
				if (rmax > 0 && d / rmax > worst) worst = d / rmax;
			}
			if (!ok || isnan(g) != isnan(e)) {
				if (bad < 5)
					fprintf(stderr, "FAIL %s: index [%d, %d]: got %.9g, expected %.9g (row max %.3g)\n", op, r, c,
						g, e, rmax);
				bad++;
			}
		}
	}
	int pass = bad == 0 && (mode != BF16 || off1 <= n / 50 + 2);
	if (bad == 0 && !pass) fprintf(stderr, "FAIL %s: %ld of %ld elements differ by one ulp (allowed %ld)\n", op, off1, n, n / 50 + 2);
	printf("%-44s %8ld elems  %s  %s\n", op, n,
	       mode == EXACT ? "exact        " : mode == BF16 ? "bf16 ulp     " : "f32 rel      ", pass ? "PASS" : "FAIL");
	if (mode != EXACT && off1) printf("    (%ld differ; worst %s %.3g)\n", off1 + 0, mode == BF16 ? "ulp" : "rel", worst);
	else if (mode == F32 && worst > 0) printf("    (worst rel %.3g)\n", worst);
	if (!pass) tu_failures++;
	return pass;
}

static int cmp_i32(const char *op, const int32_t *got, const int32_t *exp, size_t n)
{
	long bad = 0;
	for (size_t i = 0; i < n; i++)
		if (got[i] != exp[i]) {
			if (bad < 5) fprintf(stderr, "FAIL %s: index %zu: got %d, expected %d\n", op, i, got[i], exp[i]);
			bad++;
		}
	printf("%-44s %8zu elems  exact         %s\n", op, n, bad ? "FAIL" : "PASS");
	if (bad) tu_failures++;
	return !bad;
}

static const char *nmname(unsigned nm)
{
	return nm == (KERN_RND | KERN_QNT) ? "faithful" : nm == KERN_QNT ? "exact" : nm == KERN_RND ? "rnd" : "smooth";
}
static int mode_of(unsigned nm) { return (nm & KERN_RND) ? BF16 : F32; }
static const unsigned NMS[3] = { KERN_RND | KERN_QNT, KERN_QNT, 0 };

/* ---- elementwise ---- */

static void t_elementwise(void)
{
	const int S = 5, M = 3, D = 96, V = 64;
	uint16_t *emb = bvec((size_t)V * D, 0, 1);
	int32_t tok[5] = { 3, 0, 63, 17, 3 };
	float *Xc = malloc(sizeof(float) * S * M * D);
	void *embd = ddup(emb, (size_t)V * D * 2);
	float *Xd = G->alloc(G, sizeof(float) * S * M * D);
	C->embed(C, Xc, emb, tok, S, D, M);
	G->embed(G, Xd, embd, tok, S, D, M);
	float *Xg = down(Xd, sizeof(float) * S * M * D);
	cmp("embed", Xg, Xc, S, M * D, M * D, EXACT, 0);
	/* wmap: one upload per host pointer */
	const void *w1 = G->wmap(G, emb, (size_t)V * D * 2), *w2 = G->wmap(G, emb, (size_t)V * D * 2);
	TU_CHECK(w1 && w1 == w2, "wmap: same host pointer mapped twice gave %p and %p", w1, w2);
	uint16_t *back = down(w1, (size_t)V * D * 2);
	TU_CHECK(!memcmp(back, emb, (size_t)V * D * 2), "wmap: device copy differs from the host bytes");
	free(back);
	free(Xg); free(Xc); free(emb);
	G->free(G, Xd); G->free(G, embd);

	const size_t n = 10007;
	const int rs = 7, rm = 3, rn = 400;
	float *a = fvec(n, 3, 0), *b = fvec(n, 3, 0), *c = malloc(n * 4), *h;
	float *ad = ddup(a, n * 4), *bd = ddup(b, n * 4), *cd = G->alloc(G, n * 4);
	for (int v = 0; v < 2; v++) {
		unsigned nm = v ? 0 : KERN_RND;
		char nmm[64];
		memcpy(c, a, n * 4);
		G->upload(G, cd, a, n * 4);
		C->round(C, c, n, nm | KERN_QNT);
		G->round(G, cd, n, nm | KERN_QNT);
		h = down(cd, n * 4);
		snprintf(nmm, sizeof nmm, "round (%s)", nmname(nm));
		cmp(nmm, h, c, 1, (int)n, (int)n, EXACT, 0);
		free(h);
		C->scale(C, c, n, 0.3f, nm);
		G->scale(G, cd, n, 0.3f, nm);
		h = down(cd, n * 4);
		snprintf(nmm, sizeof nmm, "scale (%s)", nmname(nm));
		cmp(nmm, h, c, 1, (int)n, (int)n, EXACT, 0);
		free(h);
		C->add_bcast(C, c, a, b, rs, rm, rn, nm);
		G->add_bcast(G, cd, ad, bd, rs, rm, rn, nm);
		h = down(cd, n * 4);
		snprintf(nmm, sizeof nmm, "add_bcast (%s)", nmname(nm));
		cmp(nmm, h, c, rs * rm, rn, rn, EXACT, 0);
		free(h);
		C->add_round(C, c, a, b, n, nm);
		G->add_round(G, cd, ad, bd, n, nm);
		h = down(cd, n * 4);
		snprintf(nmm, sizeof nmm, "add_round (%s)", nmname(nm));
		cmp(nmm, h, c, 1, (int)n, (int)n, EXACT, 0);
		free(h);
		C->swiglu(C, c, a, b, 1, (int)n, nm);
		G->swiglu(G, cd, ad, bd, 1, (int)n, nm);
		h = down(cd, n * 4);
		snprintf(nmm, sizeof nmm, "swiglu (%s)", nmname(nm));
		cmp(nmm, h, c, 1, (int)n, (int)n, mode_of(nm), 1e-6);
		free(h);
	}
	C->fill(C, c, -INFINITY, n);
	G->fill(G, cd, -INFINITY, n);
	h = down(cd, n * 4);
	cmp("fill", h, c, 1, (int)n, (int)n, EXACT, 0);
	free(h);
	free(a); free(b); free(c);
	G->free(G, ad); G->free(G, bd); G->free(G, cd);
}

/* ---- norms, RoPE, quantisers ---- */

static void t_norms(void)
{
	const int dims[2][2] = { { 7, 4096 }, { 9, 128 } };
	for (int t = 0; t < 2; t++)
		for (int v = 0; v < 2; v++) {
			const int rows = dims[t][0], n = dims[t][1];
			unsigned nm = v ? 0 : KERN_RND | KERN_QNT;
			float *x = fvec((size_t)rows * n, 2, !v), *y = malloc((size_t)rows * n * 4);
			uint16_t *w = bvec(n, 1, 0.2f);
			float *xd = ddup(x, (size_t)rows * n * 4), *yd = G->alloc(G, (size_t)rows * n * 4);
			void *wd = ddup(w, n * 2);
			char op[64];
			C->rmsnorm(C, y, x, w, rows, n, 1e-6f, nm);
			G->rmsnorm(G, yd, xd, wd, rows, n, 1e-6f, nm);
			float *h = down(yd, (size_t)rows * n * 4);
			snprintf(op, sizeof op, "rmsnorm %dx%d (%s)", rows, n, nmname(nm));
			cmp(op, h, y, rows, n, n, mode_of(nm), 1e-5);
			/* in place and row by row: bitwise the batched result */
			for (int r = 0; r < rows; r++) G->rmsnorm(G, xd + (size_t)r * n, xd + (size_t)r * n, wd, 1, n, 1e-6f, nm);
			float *h2 = down(xd, (size_t)rows * n * 4);
			snprintf(op, sizeof op, "rmsnorm row-by-row in place (%s)", nmname(nm));
			cmp(op, h2, h, rows, n, n, EXACT, 0);
			free(h); free(h2);
			G->upload(G, xd, x, (size_t)rows * n * 4);
			C->head_rms(C, x, rows, n, 1e-6f, nm);
			G->head_rms(G, xd, rows, n, 1e-6f, nm);
			h = down(xd, (size_t)rows * n * 4);
			snprintf(op, sizeof op, "head_rms %dx%d (%s)", rows, n, nmname(nm));
			cmp(op, h, x, rows, n, n, mode_of(nm), 1e-5);
			free(h); free(x); free(y); free(w);
			G->free(G, xd); G->free(G, yd); G->free(G, wd);
		}
}

static void t_rope(void)
{
	const int rows = 5, nh = 4, hs = 128, dr = 64, off = 64, ld = nh * hs;
	float freq[32];
	for (int i = 0; i < dr / 2; i++) freq[i] = 1.0f / (float)pow(10000.0, (double)(2 * i) / dr);
	float *fd = ddup(freq, sizeof freq);
	for (int v = 0; v < 4; v++) {
		unsigned nm = v & 1 ? 0 : KERN_RND;
		int inv = v >> 1;
		float *x = fvec((size_t)rows * ld, 1, 1);
		float *xd = ddup(x, (size_t)rows * ld * 4);
		C->rope(C, x, rows, ld, nh, hs, off, dr, freq, 70001, inv ? 1 : 4, inv, nm);
		G->rope(G, xd, rows, ld, nh, hs, off, dr, fd, 70001, inv ? 1 : 4, inv, nm);
		float *h = down(xd, (size_t)rows * ld * 4);
		char op[64];
		snprintf(op, sizeof op, "rope %s (%s)", inv ? "inverse" : "forward", nmname(nm));
		cmp(op, h, x, rows, ld, ld, EXACT, 0);
		free(h); free(x);
		G->free(G, xd);
	}
	G->free(G, fd);
}

static void t_quant(void)
{
	const int rows = 4, ld = 600, len = 448;
	for (int b = 0; b < 2; b++) {
		int block = b ? 128 : 64;
		float *x = fvec((size_t)rows * ld, 4, 1);
		x[5] = 0; x[6] = 1e-7f; x[7] = -5000.0f; /* small, saturating */
		float *xd = ddup(x, (size_t)rows * ld * 4);
		C->qdq8(C, x, rows, ld, len, block, KERN_QNT);
		G->qdq8(G, xd, rows, ld, len, block, KERN_QNT);
		float *h = down(xd, (size_t)rows * ld * 4);
		cmp(block == 64 ? "qdq8 block 64" : "qdq8 block 128", h, x, rows, ld, ld, EXACT, 0);
		free(h); free(x);
		G->free(G, xd);
	}
	float *x = fvec(6 * 128, 2, 1);
	float *xd = ddup(x, 6 * 128 * 4);
	C->qdq4(C, x, 6, 128, 128, KERN_QNT);
	G->qdq4(G, xd, 6, 128, 128, KERN_QNT);
	float *h = down(xd, 6 * 128 * 4);
	cmp("qdq4", h, x, 6, 128, 128, EXACT, 0);
	free(h);
	for (int v = 0; v < 2; v++) {
		unsigned nm = v ? 0 : KERN_RND;
		float *y = fvec(5 * 128, 1, 1);
		float *yd = ddup(y, 5 * 128 * 4);
		C->hadamard(C, y, 5, 128, nm);
		G->hadamard(G, yd, 5, 128, nm);
		h = down(yd, 5 * 128 * 4);
		cmp(v ? "hadamard (smooth)" : "hadamard (rnd)", h, y, 5, 128, 128, EXACT, 0);
		free(h); free(y);
		G->free(G, yd);
	}
	free(x);
	G->free(G, xd);
}

/* ---- GEMMs ---- */

/* Run a GEMM-like op on the GPU three ways: tensor cores batched, tensor cores row by
 * row (bitwise equal), reference path (bitwise CPU). */
typedef void (*gemm_fn)(struct kern *k, void *ctx, float *y, const float *x, int S);

static void gemm_check(const char *name, gemm_fn fn, void *ctx, const float *x, int S, int xcols, int ycols,
		       int mode, double rel)
{
	size_t xb = (size_t)S * xcols * 4, yb = (size_t)S * ycols * 4;
	float *yc = calloc(1, yb), *xd = ddup(x, xb), *yd = G->alloc(G, yb);
	char op[128];
	fn(C, ctx, yc, x, S);
	fn(G, ctx, yd, xd, S);
	float *h = down(yd, yb);
	snprintf(op, sizeof op, "%s S=%d", name, S);
	cmp(op, h, yc, S, ycols, ycols, mode, rel);
	for (int s = 0; s < S; s++) fn(G, ctx, yd + (size_t)s * ycols, xd + (size_t)s * xcols, 1);
	float *h1 = down(yd, yb);
	snprintf(op, sizeof op, "%s row by row == batched", name);
	cmp(op, h1, h, S, ycols, ycols, EXACT, 0);
	set_ref(1);
	fn(G, ctx, yd, xd, S);
	set_ref(0);
	float *h2 = down(yd, yb);
	snprintf(op, sizeof op, "%s reference path == CPU", name);
	cmp(op, h2, yc, S, ycols, ycols, EXACT, 0);
	free(h); free(h1); free(h2); free(yc);
	G->free(G, xd); G->free(G, yd);
}

struct fp8ctx {
	struct kern_fp8w wc, wg; /* host (CPU), device */
	int G;
	unsigned nm;
};

static void run_fp8(struct kern *k, void *v, float *y, const float *x, int S)
{
	struct fp8ctx *c = v;
	const struct kern_fp8w *W = k == C ? &c->wc : &c->wg;
	k->gemm_fp8(k, y, W->n, x, W->k, W, S, c->nm);
}

static void run_fp8g(struct kern *k, void *v, float *y, const float *x, int S)
{
	struct fp8ctx *c = v;
	k->gemm_fp8_grouped(k, y, x, k == C ? &c->wc : &c->wg, c->G, S, c->nm);
}

static void fp8_make(struct fp8ctx *c, int N, int K)
{
	size_t ns = (size_t)((N + 127) / 128) * ((K + 127) / 128);
	uint8_t *w = e4vec((size_t)N * K), *s = u8vec(ns, 118, 124);
	c->wc = (struct kern_fp8w){ w, s, N, K };
	c->wg = (struct kern_fp8w){ ddup(w, (size_t)N * K), ddup(s, ns), N, K };
}

static void fp8_free(struct fp8ctx *c)
{
	free((void *)c->wc.w); free((void *)c->wc.s);
	G->free(G, (void *)c->wg.w); G->free(G, (void *)c->wg.s);
}

static void t_gemm_fp8(void)
{
	const int cfg[4][3] = { { 200, 256, 1 }, { 300, 512, 37 }, { 1024, 1024, 70 }, { 130, 4096, 3 } };
	for (int i = 0; i < 4; i++)
		for (int v = 0; v < 3; v++) {
			struct fp8ctx c = { .nm = NMS[v] };
			int N = cfg[i][0], K = cfg[i][1], S = cfg[i][2];
			fp8_make(&c, N, K);
			float *x = fvec((size_t)S * K, 1, NMS[v] & KERN_RND);
			char name[96];
			snprintf(name, sizeof name, "gemm_fp8 %dx%d (%s)", N, K, nmname(NMS[v]));
			gemm_check(name, run_fp8, &c, x, S, K, N, mode_of(NMS[v]), 2e-6);
			free(x);
			fp8_free(&c);
		}
	/* strided rows: ldx > K, ldy > N (the core passes sub-rows of wider buffers) */
	struct fp8ctx c = { .nm = KERN_RND | KERN_QNT };
	const int N = 256, K = 256, S = 9, ldx = 300, ldy = 270;
	fp8_make(&c, N, K);
	float *x = fvec((size_t)S * ldx, 1, 1), *yc = calloc((size_t)S * ldy, 4);
	float *xd = ddup(x, (size_t)S * ldx * 4), *yd = ddup(yc, (size_t)S * ldy * 4);
	C->gemm_fp8(C, yc, ldy, x, ldx, &c.wc, S, c.nm);
	G->gemm_fp8(G, yd, ldy, xd, ldx, &c.wg, S, c.nm);
	float *h = down(yd, (size_t)S * ldy * 4);
	cmp("gemm_fp8 strided ldx/ldy (faithful)", h, yc, S, ldy, ldy, BF16, 0);
	free(h); free(x); free(yc);
	G->free(G, xd); G->free(G, yd);
	fp8_free(&c);
}

static void t_gemm_grouped(void)
{
	const int cfg[2][3] = { { 2, 128, 256 }, { 4, 64, 200 } }; /* G, R, Kg (200: not a multiple of 32) */
	for (int i = 0; i < 2; i++)
		for (int v = 0; v < 2; v++) {
			struct fp8ctx c = { .nm = v ? 0 : KERN_RND | KERN_QNT, .G = cfg[i][0] };
			int R = cfg[i][1], Kg = cfg[i][2], S = 19;
			fp8_make(&c, c.G * R, Kg);
			float *x = fvec((size_t)S * c.G * Kg, 1, !v);
			char name[96];
			snprintf(name, sizeof name, "gemm_fp8_grouped G=%d %dx%d (%s)", c.G, R, Kg, nmname(c.nm));
			gemm_check(name, run_fp8g, &c, x, S, c.G * Kg, c.G * R, mode_of(c.nm), 2e-6);
			free(x);
			fp8_free(&c);
		}
}

struct densectx {
	const uint16_t *wc, *wg;
	int N, K, f32;
	unsigned nm;
};

static void run_dense(struct kern *k, void *v, float *y, const float *x, int S)
{
	struct densectx *c = v;
	const uint16_t *w = k == C ? c->wc : c->wg;
	if (c->f32) k->gemm_f32(k, y, c->N, x, c->K, w, c->N, c->K, S);
	else k->gemm_bf16(k, y, c->N, x, c->K, w, c->N, c->K, S, c->nm);
}

static void t_gemm_dense(void)
{
	const int cfg[3][3] = { { 64, 256, 10 }, { 40, 100, 5 }, { 512, 1024, 33 } };
	for (int i = 0; i < 3; i++)
		for (int v = 0; v < 3; v++) {
			struct densectx c = { .N = cfg[i][0], .K = cfg[i][1], .f32 = v == 2, .nm = v ? 0 : KERN_RND };
			uint16_t *w = bvec((size_t)c.N * c.K, 0, 0.05f);
			c.wc = w;
			c.wg = ddup(w, (size_t)c.N * c.K * 2);
			float *x = fvec((size_t)cfg[i][2] * c.K, 1, v == 0);
			char name[96];
			snprintf(name, sizeof name, "%s %dx%d%s", c.f32 ? "gemm_f32" : "gemm_bf16", c.N, c.K,
				 c.f32 ? "" : v ? " (smooth)" : " (rnd)");
			gemm_check(name, run_dense, &c, x, cfg[i][2], c.K, c.N, v == 0 ? BF16 : F32, 2e-6);
			free(x); free(w);
			G->free(G, (void *)c.wg);
		}
}

/* ---- hyper-connections ---- */

static void t_hc(void)
{
	const int Ds[2] = { 256, 4096 };
	for (int t = 0; t < 2; t++)
		for (int v = 0; v < 2; v++) {
			const int S = 3, M = 4, D = Ds[t], MD = M * D, nmix = (2 + M) * M;
			unsigned nm = v ? 0 : KERN_RND | KERN_QNT;
			float *X = fvec((size_t)S * MD, 1, !v), *fn = fvec((size_t)nmix * MD, 0.02f, 0);
			float sc[3] = { 0.7f, 0.9f, 1.3f }, *base = fvec(nmix, 0.5f, 0);
			float *y = malloc((size_t)S * D * 4), *post = malloc(S * M * 4), *comb = malloc(S * M * M * 4);
			float *Xd = ddup(X, (size_t)S * MD * 4), *fnd = ddup(fn, (size_t)nmix * MD * 4), *scd = ddup(sc, 12);
			float *based = ddup(base, nmix * 4), *yd = G->alloc(G, (size_t)S * D * 4);
			float *postd = G->alloc(G, S * M * 4), *combd = G->alloc(G, S * M * M * 4);
			char op[96];
			C->hc_pre(C, y, post, comb, X, fn, sc, base, S, M, D, 20, 1e-6f, 1e-6f, nm);
			G->hc_pre(G, yd, postd, combd, Xd, fnd, scd, based, S, M, D, 20, 1e-6f, 1e-6f, nm);
			float *h = down(yd, (size_t)S * D * 4), *hp = down(postd, S * M * 4), *hc = down(combd, S * M * M * 4);
			snprintf(op, sizeof op, "hc_pre y D=%d (%s)", D, nmname(nm));
			cmp(op, h, y, S, D, D, mode_of(nm), 1e-5);
			snprintf(op, sizeof op, "hc_pre post D=%d (%s)", D, nmname(nm));
			cmp(op, hp, post, S, M, M, F32, 1e-5);
			snprintf(op, sizeof op, "hc_pre comb D=%d (%s)", D, nmname(nm));
			cmp(op, hc, comb, S, M * M, M * M, F32, 1e-5);
			for (int s = 0; s < S; s++)
				G->hc_pre(G, yd + (size_t)s * D, postd + s * M, combd + s * M * M, Xd + (size_t)s * MD, fnd, scd,
					  based, 1, M, D, 20, 1e-6f, 1e-6f, nm);
			float *h1 = down(yd, (size_t)S * D * 4);
			snprintf(op, sizeof op, "hc_pre row by row == batched (%s)", nmname(nm));
			cmp(op, h1, h, S, D, D, EXACT, 0);
			free(h1);
			/* hc_post on the CPU's post/comb: exact */
			float *f = fvec((size_t)S * D, 1, !v), *Xo = malloc((size_t)S * MD * 4);
			float *fd = ddup(f, (size_t)S * D * 4), *Xod = G->alloc(G, (size_t)S * MD * 4);
			G->upload(G, postd, post, S * M * 4);
			G->upload(G, combd, comb, S * M * M * 4);
			C->hc_post(C, Xo, f, X, post, comb, S, M, D, nm);
			G->hc_post(G, Xod, fd, Xd, postd, combd, S, M, D, nm);
			float *ho = down(Xod, (size_t)S * MD * 4);
			snprintf(op, sizeof op, "hc_post D=%d (%s)", D, nmname(nm));
			cmp(op, ho, Xo, S, MD, MD, EXACT, 0);
			/* hc_head: fn [M, MD], base [M] */
			C->hc_head(C, y, X, fn, sc, base, S, M, D, 1e-6f, 1e-6f, nm);
			G->hc_head(G, yd, Xd, fnd, scd, based, S, M, D, 1e-6f, 1e-6f, nm);
			free(h);
			h = down(yd, (size_t)S * D * 4);
			snprintf(op, sizeof op, "hc_head D=%d (%s)", D, nmname(nm));
			cmp(op, h, y, S, D, D, mode_of(nm), 1e-5);
			free(h); free(hp); free(hc); free(ho); free(f); free(Xo);
			free(X); free(fn); free(base); free(y); free(post); free(comb);
			void *ds[] = { Xd, fnd, scd, based, yd, postd, combd, fd, Xod };
			for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) G->free(G, ds[i]);
		}
}

/* ---- compressor ---- */

static void t_compress(void)
{
	const int ratios[2] = { 4, 128 };
	for (int t = 0; t < 2; t++) {
		const int r = ratios[t], d = 64, c = r == 4 ? 2 : 1, cd = c * d, nst = c * r * cd;
		const int calls[][2] = { { 0, 13 }, { 13, 1 }, { 14, 2 }, { 16, 250 }, { 266, 1 }, { 267, 130 } };
		const int ncall = 6, total = 397;
		float *kt = fvec((size_t)total * cd, 1, 0), *gt = fvec((size_t)total * cd, 1, 0), *ape = fvec((size_t)r * cd, 0.3f, 0);
		float *Kc = malloc(nst * 4), *Gc = malloc(nst * 4);
		for (int i = 0; i < nst; i++) Kc[i] = 0, Gc[i] = -INFINITY;
		float *ktd = ddup(kt, (size_t)total * cd * 4), *gtd = ddup(gt, (size_t)total * cd * 4), *aped = ddup(ape, (size_t)r * cd * 4);
		float *Kd = ddup(Kc, nst * 4), *Gd = ddup(Gc, nst * 4), *K1 = ddup(Kc, nst * 4), *G1 = ddup(Gc, nst * 4);
		const int nw = total / r + 1;
		float *uc = calloc((size_t)nw * d, 4), *ud = G->alloc(G, (size_t)nw * d * 4), *u1 = G->alloc(G, (size_t)nw * d * 4);
		for (int i = 0; i < ncall; i++) {
			int p0 = calls[i][0], S = calls[i][1];
			float *off = uc + (size_t)(p0 / r) * d;
			C->compress(C, off, Kc, Gc, kt + (size_t)p0 * cd, gt + (size_t)p0 * cd, ape, S, p0, r, d);
			G->compress(G, ud + (size_t)(p0 / r) * d, Kd, Gd, ktd + (size_t)p0 * cd, gtd + (size_t)p0 * cd, aped, S, p0, r, d);
		}
		/* token by token on the GPU: same entries bitwise */
		for (int p = 0; p < total; p++)
			G->compress(G, u1 + (size_t)(p / r) * d, K1, G1, ktd + (size_t)p * cd, gtd + (size_t)p * cd, aped, 1, p, r, d);
		const int ne = total / r;
		float *hu = down(ud, (size_t)ne * d * 4), *hu1 = down(u1, (size_t)ne * d * 4);
		float *hK = down(Kd, nst * 4), *hG = down(Gd, nst * 4), *hK1 = down(K1, nst * 4), *hG1 = down(G1, nst * 4);
		char op[96];
		snprintf(op, sizeof op, "compress r=%d entries", r);
		cmp(op, hu, uc, ne, d, d, F32, 1e-5);
		snprintf(op, sizeof op, "compress r=%d state K", r);
		cmp(op, hK, Kc, c * r, cd, cd, EXACT, 0);
		snprintf(op, sizeof op, "compress r=%d state G", r);
		cmp(op, hG, Gc, c * r, cd, cd, EXACT, 0);
		snprintf(op, sizeof op, "compress r=%d token-by-token == chunked", r);
		cmp(op, hu1, hu, ne, d, d, EXACT, 0);
		snprintf(op, sizeof op, "compress r=%d state after streaming", r);
		cmp(op, hK1, hK, c * r, cd, cd, EXACT, 0);
		cmp(op, hG1, hG, c * r, cd, cd, EXACT, 0);
		free(hu); free(hu1); free(hK); free(hG); free(hK1); free(hG1);
		free(kt); free(gt); free(ape); free(Kc); free(Gc); free(uc);
		void *ds[] = { ktd, gtd, aped, Kd, Gd, K1, G1, ud, u1 };
		for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) G->free(G, ds[i]);
	}
}

/* ---- indexer ---- */

static void t_indexer(void)
{
	for (int v = 0; v < 2; v++) {
		const int S = 3, HI = 16, dI = 128, n = 300, ld = 320;
		unsigned nm = v ? 0 : KERN_RND | KERN_QNT;
		float *q = fvec((size_t)S * HI * dI, 1, !v), *w = fvec(S * HI, 0.1f, !v), *ic = fvec((size_t)n * dI, 1, !v);
		float *sc = calloc((size_t)S * ld, 4);
		float *qd = ddup(q, (size_t)S * HI * dI * 4), *wd = ddup(w, S * HI * 4), *icd = ddup(ic, (size_t)n * dI * 4);
		float *scd = ddup(sc, (size_t)S * ld * 4);
		C->idx_score(C, sc, ld, q, w, ic, n, S, HI, dI, nm);
		G->idx_score(G, scd, ld, qd, wd, icd, n, S, HI, dI, nm);
		float *h = down(scd, (size_t)S * ld * 4);
		char op[64];
		snprintf(op, sizeof op, "idx_score (%s)", nmname(nm));
		cmp(op, h, sc, S, n, ld, mode_of(nm), 1e-5);
		for (int s = 0; s < S; s++)
			G->idx_score(G, scd + (size_t)s * ld, ld, qd + (size_t)s * HI * dI, wd + s * HI, icd, n, 1, HI, dI, nm);
		float *h1 = down(scd, (size_t)S * ld * 4);
		snprintf(op, sizeof op, "idx_score row by row == batched (%s)", nmname(nm));
		cmp(op, h1, h, S, n, ld, EXACT, 0);
		if (nm & KERN_RND) { /* bf16 cache (KERN_KV16) holding the same bf16 values */
			uint16_t *i16 = malloc((size_t)n * dI * 2);
			for (size_t i = 0; i < (size_t)n * dI; i++) i16[i] = kern_f32_to_bf16(ic[i]);
			void *i16d = ddup(i16, (size_t)n * dI * 2);
			G->idx_score(G, scd, ld, qd, wd, i16d, n, S, HI, dI, nm | KERN_KV16);
			float *h2 = down(scd, (size_t)S * ld * 4);
			cmp("idx_score bf16 cache == f32 cache (faithful)", h2, h, S, n, ld, EXACT, 0);
			free(h2); free(i16); G->free(G, i16d);
		}
		free(h); free(h1); free(q); free(w); free(ic); free(sc);
		G->free(G, qd); G->free(G, wd); G->free(G, icd); G->free(G, scd);
	}
	/* top-k: integer scores (many exact ties), float scores, short rows */
	const int cfg[3][6] = { /* S, n, p0, kmax, width, ties */ { 6, 3000, 11990, 512, 520, 1 },
				{ 4, 20000, 79996, 512, 512, 0 }, { 5, 5, 14, 8, 9, 1 } };
	for (int i = 0; i < 3; i++) {
		const int S = cfg[i][0], n = cfg[i][1], p0 = cfg[i][2], kmax = cfg[i][3], width = cfg[i][4], ld = n + 3;
		float *sc = malloc((size_t)S * ld * 4);
		for (size_t j = 0; j < (size_t)S * ld; j++)
			sc[j] = cfg[i][5] ? (float)(rnext() % 20) - 5.0f : kern_rbf16(nrand());
		sc[1] = -0.0f;
		sc[2] = 0.0f;
		int32_t *ic = malloc((size_t)S * width * 4), *ig;
		float *scd = ddup(sc, (size_t)S * ld * 4);
		int32_t *idd = G->alloc(G, (size_t)S * width * 4);
		C->topk(C, ic, width, sc, ld, S, n, p0, 4, kmax, width, 17);
		G->topk(G, idd, width, scd, ld, S, n, p0, 4, kmax, width, 17);
		ig = down(idd, (size_t)S * width * 4);
		char op[64];
		snprintf(op, sizeof op, "topk n=%d kmax=%d%s", n, kmax, cfg[i][5] ? " (ties)" : "");
		cmp_i32(op, ig, ic, (size_t)S * width);
		free(ig); free(ic); free(sc);
		G->free(G, scd); G->free(G, idd);
	}
}

/* ---- attention ---- */

static void t_attn(void)
{
	const int dhs[2] = { 512, 128 };
	for (int t = 0; t < 2; t++)
		for (int v = 0; v < 2; v++) {
			const int S = 3, H = 4, dh = dhs[t], nwin = 16, ncmp = 200, nidx = 16 + 150;
			unsigned nm = v ? 0 : KERN_RND | KERN_QNT;
			float *q = fvec((size_t)S * H * dh, 1, !v), *win = fvec((size_t)nwin * dh, 1, !v);
			float *cmpv = fvec((size_t)ncmp * dh, 1, !v), *sink = fvec(H, 1, 0);
			int32_t *idx = malloc((size_t)S * nidx * 4);
			for (int s = 0; s < S; s++)
				for (int j = 0; j < nidx; j++) {
					int32_t e = j < 16 ? (int32_t)(rnext() % nwin) : (int32_t)(nwin + rnext() % ncmp);
					if (j > 0 && rnext() % 5 == 0) e = -1;
					if (s == 1 && j >= 64 && j < 128) e = -1; /* a block of padding only */
					idx[(size_t)s * nidx + j] = e;
				}
			float *o = malloc((size_t)S * H * dh * 4);
			float *qd = ddup(q, (size_t)S * H * dh * 4), *wind = ddup(win, (size_t)nwin * dh * 4);
			float *cmpd = ddup(cmpv, (size_t)ncmp * dh * 4), *sinkd = ddup(sink, H * 4);
			int32_t *idxd = ddup(idx, (size_t)S * nidx * 4);
			float *od = G->alloc(G, (size_t)S * H * dh * 4);
			const float tau = (float)pow(dh, -0.5);
			struct kern_kv kc = { win, nwin, cmpv, ncmp }, kg = { wind, nwin, cmpd, ncmp };
			C->attn(C, o, q, &kc, idx, nidx, sink, S, H, dh, tau, nm);
			G->attn(G, od, qd, &kg, idxd, nidx, sinkd, S, H, dh, tau, nm);
			float *h = down(od, (size_t)S * H * dh * 4);
			char op[64];
			snprintf(op, sizeof op, "attn dh=%d (%s)", dh, nmname(nm));
			cmp(op, h, o, S * H, dh, dh, mode_of(nm), 1e-5);
			for (int s = 0; s < S; s++)
				G->attn(G, od + (size_t)s * H * dh, qd + (size_t)s * H * dh, &kg, idxd + (size_t)s * nidx, nidx, sinkd,
					1, H, dh, tau, nm);
			float *h1 = down(od, (size_t)S * H * dh * 4);
			snprintf(op, sizeof op, "attn row by row == batched (%s)", nmname(nm));
			cmp(op, h1, h, S * H, dh, dh, EXACT, 0);
			if (nm & KERN_RND) { /* bf16 kv (KERN_KV16) holding the same bf16 values */
				uint16_t *w16 = malloc((size_t)nwin * dh * 2), *c16 = malloc((size_t)ncmp * dh * 2);
				for (size_t i = 0; i < (size_t)nwin * dh; i++) w16[i] = kern_f32_to_bf16(win[i]);
				for (size_t i = 0; i < (size_t)ncmp * dh; i++) c16[i] = kern_f32_to_bf16(cmpv[i]);
				void *w16d = ddup(w16, (size_t)nwin * dh * 2), *c16d = ddup(c16, (size_t)ncmp * dh * 2);
				struct kern_kv k16 = { w16d, nwin, c16d, ncmp };
				G->attn(G, od, qd, &k16, idxd, nidx, sinkd, S, H, dh, tau, nm | KERN_KV16);
				float *h2 = down(od, (size_t)S * H * dh * 4);
				snprintf(op, sizeof op, "attn dh=%d bf16 kv == f32 kv (%s)", dh, nmname(nm));
				cmp(op, h2, h, S * H, dh, dh, EXACT, 0);
				/* kv_store: bf16 RNE bits of values that are not all bf16 */
				float *src = fvec(1000, 3, 0);
				void *srcd = ddup(src, 4000), *dst = G->alloc(G, 2000);
				G->kv_store(G, dst, srcd, 1000, nm | KERN_KV16);
				uint16_t *b16 = down(dst, 2000);
				for (int i = 0; i < 1000; i++)
					if (b16[i] != kern_f32_to_bf16(src[i])) {
						fprintf(stderr, "FAIL kv_store KV16 [%d]: got 0x%04x expected 0x%04x\n", i, b16[i],
							kern_f32_to_bf16(src[i]));
						tu_failures++;
						break;
					}
				free(h2); free(w16); free(c16); free(src); free(b16);
				G->free(G, w16d); G->free(G, c16d); G->free(G, srcd); G->free(G, dst);
			}
			free(h); free(h1); free(q); free(win); free(cmpv); free(sink); free(idx); free(o);
			void *ds[] = { qd, wind, cmpd, sinkd, idxd, od };
			for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) G->free(G, ds[i]);
		}
}

/* ---- MoE ---- */

static void t_route(void)
{
	const int S = 5, E = 256, K = 6;
	float *l = fvec((size_t)S * E, 2, 0), *bias = fvec(E, 0.1f, 0);
	int32_t *idc = malloc(S * K * 4);
	float *wc = malloc(S * K * 4);
	float *ld = ddup(l, (size_t)S * E * 4), *bd = ddup(bias, E * 4), *wd = G->alloc(G, S * K * 4);
	int32_t *idd = G->alloc(G, S * K * 4);
	C->route(C, idc, wc, l, bias, S, E, K, 1.5f);
	G->route(G, idd, wd, ld, bd, S, E, K, 1.5f);
	int32_t *ig = down(idd, S * K * 4);
	float *wg = down(wd, S * K * 4);
	/* ids must match unless the two scores are within 1e-6 (a near tie, §10.8) */
	int bad = 0;
	for (int i = 0; i < S * K; i++)
		if (ig[i] != idc[i]) {
			float a = bias[ig[i]] + sqrtf(log1pf(expf(l[(i / K) * E + ig[i]])));
			float b = bias[idc[i]] + sqrtf(log1pf(expf(l[(i / K) * E + idc[i]])));
			if (fabsf(a - b) > 1e-6f * fabsf(b)) {
				fprintf(stderr, "FAIL route: index %d: got expert %d, expected %d\n", i, ig[i], idc[i]);
				bad++;
			}
		}
	printf("%-44s %8d elems  exact*        %s\n", "route ids (score)", S * K, bad ? "FAIL" : "PASS");
	tu_failures += bad > 0;
	if (!bad) cmp("route weights (score)", wg, wc, S, K, K, F32, 1e-6);
	/* hash: ids given */
	G->upload(G, idd, idc, S * K * 4);
	C->route(C, idc, wc, l, NULL, S, E, K, 1.5f);
	G->route(G, idd, wd, ld, NULL, S, E, K, 1.5f);
	free(wg);
	wg = down(wd, S * K * 4);
	cmp("route weights (hash)", wg, wc, S, K, K, F32, 1e-6);
	free(ig); free(wg); free(l); free(bias); free(idc); free(wc);
	G->free(G, ld); G->free(G, bd); G->free(G, wd); G->free(G, idd);
}

struct fp4pair {
	struct kern_fp4w h, d;
};

static void fp4_make(struct fp4pair *p, int N, int K)
{
	uint8_t *w = u8vec((size_t)N * K / 2, 0, 255), *s = u8vec((size_t)N * K / 32, 121, 125);
	p->h = (struct kern_fp4w){ w, s, N, K };
	p->d = (struct kern_fp4w){ ddup(w, (size_t)N * K / 2), ddup(s, (size_t)N * K / 32), N, K };
}

static void fp4_free(struct fp4pair *p)
{
	free((void *)p->h.w); free((void *)p->h.s);
	G->free(G, (void *)p->d.w); G->free(G, (void *)p->d.s);
}

static void t_moe(void)
{
	const int cfg[2][4] = { /* D, F, S, topk */ { 512, 256, 6, 2 }, { 256, 128, 300, 1 } };
	for (int t = 0; t < 2; t++)
		for (int v = 0; v < 3; v++)
			for (int lim = 0; lim < 2; lim++) {
				if (t == 1 && (v || lim)) continue;
				const int D = cfg[t][0], F = cfg[t][1], S = cfg[t][2], K = cfg[t][3];
				unsigned nm = NMS[v];
				float limit = lim ? 0.0f : 10.0f;
				struct fp4pair w1, w3, w2;
				fp4_make(&w1, F, D);
				fp4_make(&w3, F, D);
				fp4_make(&w2, D, F);
				struct kern_expert ec = { w1.h, w3.h, w2.h }, eg = { w1.d, w3.d, w2.d };
				float *x = fvec((size_t)S * D, 1, nm & KERN_RND), *wt = malloc(S * K * 4);
				for (int i = 0; i < S * K; i++) wt[i] = (float)(0.2 + urand());
				int32_t *slots = malloc(S * K * 4);
				int n = 0;
				for (int s = 0; s < S; s++)
					if (S > 10 || s != 2) slots[n++] = s * K + (int)(rnext() % K);
				float *acc = calloc((size_t)S * D, 4);
				float *xd = ddup(x, (size_t)S * D * 4), *wtd = ddup(wt, S * K * 4), *accd = ddup(acc, (size_t)S * D * 4);
				int32_t *sld = ddup(slots, n * 4);
				float *acc1 = ddup(acc, (size_t)S * D * 4), *acc2 = ddup(acc, (size_t)S * D * 4);
				C->moe_expert(C, acc, x, &ec, slots, n, wt, K, limit, nm);
				G->moe_expert(G, accd, xd, &eg, sld, n, wtd, K, limit, nm);
				float *h = down(accd, (size_t)S * D * 4);
				char op[96];
				snprintf(op, sizeof op, "moe_expert %dx%d n=%d limit %g (%s)", D, F, n, limit, nmname(nm));
				cmp(op, h, acc, S, D, D, mode_of(nm), 1e-5);
				for (int i = 0; i < n; i++) G->moe_expert(G, acc1, xd, &eg, sld + i, 1, wtd, K, limit, nm);
				float *h1 = down(acc1, (size_t)S * D * 4);
				snprintf(op, sizeof op, "moe_expert row by row == batched (%s)", nmname(nm));
				cmp(op, h1, h, S, D, D, EXACT, 0);
				set_ref(1);
				G->moe_expert(G, acc2, xd, &eg, sld, n, wtd, K, limit, nm);
				set_ref(0);
				float *h2 = down(acc2, (size_t)S * D * 4);
				/* the CPU's GEMM order; silu's expf may still differ in the last bit */
				snprintf(op, sizeof op, "moe_expert reference path vs CPU (%s)", nmname(nm));
				cmp(op, h2, acc, S, D, D, mode_of(nm), 1e-6);
				/* a second expert accumulates on top (expert order of §9.4) */
				C->moe_expert(C, acc, x, &ec, slots, n, wt, K, limit, nm);
				G->moe_expert(G, accd, xd, &eg, sld, n, wtd, K, limit, nm);
				float *h3 = down(accd, (size_t)S * D * 4);
				snprintf(op, sizeof op, "moe_expert accumulate (%s)", nmname(nm));
				cmp(op, h3, acc, S, D, D, F32, (nm & KERN_RND) ? 0x1p-7 : 1e-5);
				free(h); free(h1); free(h2); free(h3);
				free(x); free(wt); free(slots); free(acc);
				void *ds[] = { xd, wtd, accd, sld, acc1, acc2 };
				for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) G->free(G, ds[i]);
				fp4_free(&w1); fp4_free(&w3); fp4_free(&w2);
			}
}

/* ---- memory ops, and the ops of the table not exercised above ---- */

static void t_memory(void)
{
	/* alloc() returns zeroed memory (kern.h); upload/download/copy round trip */
	const size_t n = 70001;
	float *z = G->alloc(G, n * 4);
	float *h = down(z, n * 4);
	size_t nz = 0;
	for (size_t i = 0; i < n; i++) nz += h[i] != 0;
	TU_CHECK(nz == 0, "alloc: %zu of %zu floats not zero (first: %g)", nz, n, h[0]);
	printf("%-44s %8zu elems  exact         %s\n", "alloc zeroed", n, nz ? "FAIL" : "PASS");
	free(h);
	float *a = fvec(n, 2, 0), *bd = G->alloc(G, n * 4);
	G->upload(G, z, a, n * 4);
	G->copy(G, bd, z, n * 4);
	h = down(bd, n * 4);
	cmp("upload + copy + download", h, a, 1, (int)n, (int)n, EXACT, 0);
	free(h);
	/* kv_store without KV16: the f32 bits (a copy) */
	float *src = fvec(1000, 3, 0);
	float *srcd = ddup(src, 4000), *dst = G->alloc(G, 4000), *dstc = malloc(4000);
	C->kv_store(C, dstc, src, 1000, KERN_RND);
	G->kv_store(G, dst, srcd, 1000, KERN_RND);
	h = down(dst, 4000);
	cmp("kv_store f32 cache", h, dstc, 1, 1000, 1000, EXACT, 0);
	free(h); free(src); free(dstc); free(a);
	G->free(G, z); G->free(G, bd); G->free(G, srcd); G->free(G, dst);
	/* reserve() again, larger: the workspace is replaced and GEMMs still agree */
	TU_CHECK(G->reserve(G, 2048, 24000) == 0, "reserve(2048, 24000) failed");
	struct fp8ctx c = { .nm = KERN_RND | KERN_QNT };
	fp8_make(&c, 64, 22016);
	float *x = fvec((size_t)3 * 22016, 1, 1);
	gemm_check("gemm_fp8 after a larger reserve, K=22016", run_fp8, &c, x, 3, 22016, 64, BF16, 0);
	free(x);
	fp8_free(&c);
}

/* Row counts past the 65535 limit of gridDim.y/z (S*H rows of the indexer queries,
 * long prefill chunks): every row must be processed. */
static void t_bigrows(void)
{
	const int R = 70001;
	float *x = fvec((size_t)R * 64, 2, 1);
	float *xd = ddup(x, (size_t)R * 64 * 4);
	C->qdq4(C, x, R, 64, 64, KERN_QNT);
	G->qdq4(G, xd, R, 64, 64, KERN_QNT);
	float *h = down(xd, (size_t)R * 64 * 4);
	cmp("qdq4 70001 rows", h, x, R, 64, 64, EXACT, 0);
	free(h);
	C->qdq8(C, x, R, 64, 64, 64, KERN_QNT);
	G->qdq8(G, xd, R, 64, 64, 64, KERN_QNT);
	h = down(xd, (size_t)R * 64 * 4);
	cmp("qdq8 70001 rows", h, x, R, 64, 64, EXACT, 0);
	free(h);
	C->hadamard(C, x, R, 64, KERN_RND);
	G->hadamard(G, xd, R, 64, KERN_RND);
	h = down(xd, (size_t)R * 64 * 4);
	cmp("hadamard 70001 rows", h, x, R, 64, 64, EXACT, 0);
	free(h);
	/* attention: S = 70001 queries, one head of 32, lists of 2 */
	const int dh = 32, nwin = 8, nidx = 2;
	float *win = fvec((size_t)nwin * dh, 1, 1), *sink = fvec(1, 1, 0), *o = malloc((size_t)R * dh * 4);
	int32_t *idx = malloc((size_t)R * nidx * 4);
	for (int s = 0; s < R; s++) idx[2 * s] = s % nwin, idx[2 * s + 1] = (s / nwin) % nwin;
	struct kern_kv kc = { win, nwin, NULL, 0 };
	float *wind = ddup(win, (size_t)nwin * dh * 4), *sinkd = ddup(sink, 4), *od = G->alloc(G, (size_t)R * dh * 4);
	int32_t *idxd = ddup(idx, (size_t)R * nidx * 4);
	struct kern_kv kg = { wind, nwin, NULL, 0 };
	C->attn(C, o, x, &kc, idx, nidx, sink, R, 1, dh, 0.17f, KERN_RND);
	G->attn(G, od, xd, &kg, idxd, nidx, sinkd, R, 1, dh, 0.17f, KERN_RND);
	h = down(od, (size_t)R * dh * 4);
	cmp("attn 70001 queries", h, o, R, dh, dh, BF16, 0);
	free(h);
	/* indexer scores: S = 70001 rows, one head of 32, 3 entries */
	float *sc = malloc((size_t)R * 3 * 4), *scd = G->alloc(G, (size_t)R * 3 * 4);
	float *w = fvec(R, 0.5f, 1), *wd = ddup(w, (size_t)R * 4);
	C->idx_score(C, sc, 3, x, w, win, 3, R, 1, 32, KERN_RND);
	G->idx_score(G, scd, 3, xd, wd, wind, 3, R, 1, 32, KERN_RND);
	h = down(scd, (size_t)R * 3 * 4);
	cmp("idx_score 70001 rows", h, sc, R, 3, 3, BF16, 0);
	free(h); free(sc); free(w); free(x); free(win); free(sink); free(o); free(idx);
	void *ds[] = { xd, wind, sinkd, od, idxd, scd, wd };
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) G->free(G, ds[i]);
}

/* ---- driver: one child process per group ----
 * A CUDA fault is sticky (every later call in the process fails) and cu_fatal aborts,
 * so each group runs in a child of its own: one device run reports every broken op.
 * The parent never touches CUDA (a CUDA context does not survive fork).  Children run
 * with NVMOE_CUDA_SYNC=1, so a faulting kernel is named by the op that launched it,
 * and under alarm() so a hung kernel becomes a reported TIMEOUT. */

struct group {
	const char *name;
	void (*fn)(void);
};
static const struct group GROUPS[] = {
	{ "elementwise", t_elementwise }, { "memory", t_memory }, { "norms", t_norms }, { "rope", t_rope },
	{ "quant", t_quant }, { "gemm_fp8", t_gemm_fp8 }, { "gemm_grouped", t_gemm_grouped },
	{ "gemm_dense", t_gemm_dense }, { "hc", t_hc }, { "compress", t_compress }, { "indexer", t_indexer },
	{ "attn", t_attn }, { "route", t_route }, { "moe", t_moe }, { "bigrows", t_bigrows },
};
#define NGROUPS ((int)(sizeof GROUPS / sizeof GROUPS[0]))

static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !strncmp(p, name, n)) return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

/* In the child: 0 pass, 1 fail, 77 no device. */
static int run_group(const struct group *g, int secs)
{
	alarm((unsigned)secs);
	struct kern_cpu_opts co = { .threads = 0, .isa = KERN_CPU_ISA_SCALAR };
	if (g_fake) {
		/* NVMOE_FAKE_ISA=avx2|avx512: a second order of summation, to see the tolerances
		 * hold against a backend whose reductions differ (the "reference path" and
		 * "row by row" checks then compare isas and may fail: ignore those) */
		const char *fi = getenv("NVMOE_FAKE_ISA");
		struct kern_cpu_opts fo = { .threads = 0,
					    .isa = fi && !strcmp(fi, "avx2")     ? KERN_CPU_ISA_AVX2 :
						   fi && !strcmp(fi, "avx512") ? KERN_CPU_ISA_AVX512 : KERN_CPU_ISA_SCALAR };
		G = kern_cpu_create_opts(&fo);
	} else {
		if (kern_cuda_device_count() == 0) return 77;
		char msg[256];
		if (kern_cuda_create(0, &G, msg, sizeof msg)) {
			printf("skip: %s\n", msg);
			return 77;
		}
	}
	C = kern_cpu_create_opts(&co); /* the reference order the GEMM ref path reproduces */
	if (!C || C->reserve(C, 1024, 24000) || G->reserve(G, 1024, 24000)) {
		fprintf(stderr, "FAIL: backend set-up (reserve)\n");
		tu_failures++;
		return 1;
	}
	printf("== %s\n", g->name);
	fflush(stdout);
	g->fn();
	C->destroy(C);
	G->destroy(G);
	fflush(stdout);
	fflush(stderr);
	return tu_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int probe = 0, inproc = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--probe")) probe = 1;
		else if (!strcmp(argv[i], "--fake")) g_fake = 1;
		else if (!strcmp(argv[i], "--inproc")) inproc = 1;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
		else if (!strcmp(argv[i], "--list")) {
			for (int j = 0; j < NGROUPS; j++) printf("%s\n", GROUPS[j].name);
			return 0;
		} else {
			fprintf(stderr, "usage: test_cuda_ops [--probe | --list | [--fake] [--inproc] [--only GROUP[,GROUP...]]]\n");
			return 2;
		}
	}
	if (probe) { /* in process: nothing forks after this */
		if (kern_cuda_device_count() == 0) {
			printf("skip: no CUDA device\n");
			return 77;
		}
		char msg[256];
		if (kern_cuda_create(0, &G, msg, sizeof msg)) {
			printf("skip: %s\n", msg);
			return 77;
		}
		char name[128];
		size_t fr, tot;
		kern_cuda_info(G, name, sizeof name, &fr, &tot);
		printf("device: %s, %.1f of %.1f GiB free\n", name, fr / 1073741824.0, tot / 1073741824.0);
		G->destroy(G);
		return 0;
	}
	setenv("NVMOE_CUDA_SYNC", "1", 0);
	const char *ts = getenv("NVMOE_TEST_GROUP_TIMEOUT");
	int secs = ts && atoi(ts) > 0 ? atoi(ts) : 120;
	int nfail = 0, npass = 0, nrun = 0, base = 0;
	char failed[1024] = "";
	for (int i = 0; i < NGROUPS; i++) {
		const struct group *g = &GROUPS[i];
		if (only && !in_list(only, g->name)) continue;
		if (inproc) { /* under compute-sanitizer: one process, the tool sees every kernel */
			if (run_group(g, secs) == 77) {
				printf("skip: no CUDA device\n");
				return 77;
			}
			nrun++;
			int bad = tu_failures > base; /* tu_failures is cumulative in one process */
			base = tu_failures;
			printf("group %-14s %s\n", g->name, bad ? "FAIL" : "PASS");
			if (bad) {
				nfail++;
				size_t l = strlen(failed);
				snprintf(failed + l, sizeof failed - l, "%s%s", l ? "," : "", g->name);
			} else {
				npass++;
			}
			continue;
		}
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) _exit(run_group(g, secs));
		int st = 0;
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR) { perror("waitpid"); return 1; }
		nrun++;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			if (nrun == 1) {
				printf("skip: no CUDA device\n");
				return 77;
			}
			printf("group %-14s SKIP (device vanished?)\n", g->name);
			nfail++;
			continue;
		}
		const char *what = NULL;
		char buf[96];
		if (WIFEXITED(st)) {
			what = WEXITSTATUS(st) == 0 ? NULL : "FAIL";
		} else if (WIFSIGNALED(st)) {
			int sig = WTERMSIG(st);
			snprintf(buf, sizeof buf, "%s (signal %d%s)", sig == SIGALRM ? "TIMEOUT" : "CRASH", sig,
				 sig == SIGABRT ? ": a CUDA error, the op is named above" :
				 sig == SIGALRM ? ": a hung kernel?" : "");
			what = buf;
		} else {
			what = "FAIL (unknown status)";
		}
		if (what) {
			printf("group %-14s %s\n", g->name, what);
			nfail++;
			size_t l = strlen(failed);
			snprintf(failed + l, sizeof failed - l, "%s%s", l ? "," : "", g->name);
		} else {
			printf("group %-14s PASS\n", g->name);
			npass++;
		}
	}
	if (!nrun) {
		fprintf(stderr, "no group matches --only %s (see --list)\n", only ? only : "");
		return 2;
	}
	printf("test_cuda_ops: %d groups passed, %d failed%s%s\n", npass, nfail, nfail ? ": " : "", failed);
	return nfail ? 1 : 0;
}
