/* tests/test_perf_kernels.c - the optimised CPU backend against the plain-C one.
 *
 *   1. Each optimised op (FP8 GEMM incl. partial blocks, grouped wo_a GEMM, BF16 and
 *      F32 GEMMs, FP4 routed expert incl. an unpaired 32-block, attention, indexer
 *      scoring) on random inputs: AVX2 table (3 threads) vs the plain-C table
 *      (1 thread).  The tables may only differ by f32 summation order, so the bound
 *      is 1e-5 of the sum of |terms| of that output (computed by the plain-C op on
 *      |inputs|; a single wrong term of a 4096-long sum moves an output by ~2e-4 of
 *      it), bf16-rounded ops get one bf16 ulp of the value on top.
 *   2. Row independence and thread invariance, bitwise: S rows in one call with 3
 *      threads == S one-row calls with 1 thread, for both tables, faithful numerics.
 *   3. The pool: every task of many runs executed exactly once, any task count.
 * The AVX2 parts are skipped (with a note) on a CPU without AVX2/FMA. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/pool.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void)
{
	g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 16);
}
static float frand(void) { return ((float)(rnd32() & 0xFFFFFF) * 0x1p-24f - 0.5f) * 4.0f; }
static float bfrand(void) { return kern_rbf16(frand()); }

static void fill_bf(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = bfrand(); }
static void fill_u8(uint8_t *p, size_t n, int fp8)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)rnd32();
		if (fp8 && (b & 0x7F) == 0x7F) b ^= 1; /* no NaN codes */
		p[i] = b;
	}
}
/* E8M0 scales around 2^-4 .. 2^3 (plus the exact extremes 0 and 254 in a few) */
static void fill_e8(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(123 + rnd32() % 8);
}
static void absf(float *d, const float *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = fabsf(s[i]); }

static struct kern *g_ref, *g_opt, *g_opt1, *g_ref3; /* scalar 1 thr, avx2 3 thr, avx2 1 thr, scalar 3 thr */
static struct kern *g_512, *g_5121;                /* avx512 3 thr, 1 thr */
static int g_have_avx2, g_have_512;

/* |got - exp| <= 1e-5·absum (+ 1 bf16 ulp of exp with rounding) for n outputs */
static void check_tol(const char *what, const float *got, const float *exp, const float *absum, size_t n,
		      int rnd)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		double tol = 1e-5 * absum[i] + 1e-30;
		if (rnd) tol += ldexp(fabs(exp[i]), -7);
		double d = fabs((double)got[i] - exp[i]);
		if (!(d <= tol)) {
			if (bad++ < 5)
				fprintf(stderr, "FAIL %s: index %zu: got %.9g expected %.9g (|diff| %.3g > tol %.3g)\n", what, i,
					got[i], exp[i], d, tol);
		}
	}
	if (bad) tu_failures++;
	else printf("ok   %-44s %zu outputs within 1e-5 of sum|terms|%s\n", what, n, rnd ? " + 1 bf16 ulp" : "");
}

static void check_bits(const char *what, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4)) {
			tu_failures++;
			fprintf(stderr, "FAIL %s: index %zu: batched %.9g one-by-one %.9g (must be bitwise equal)\n", what, i,
				a[i], b[i]);
			return;
		}
	printf("ok   %-44s %zu outputs bitwise equal\n", what, n);
}

/* ---- act_quant: bit-exact ---- */

/* the AVX2 act_quant against kern_act_quant_block on random blocks spanning many
 * magnitudes, E4M3 ties and subnormal codes, ±0, NaN and ±inf entries */
static void t_actq(void)
{
	float x[128], q0[128], q1[128];
	int bad = 0, blocks = 0;
	for (int it = 0; it < 4000 && !bad; it++) {
		int n = it % 5 == 0 ? 64 : 128;
		int e = (int)(rnd32() % 60) - 30;
		for (int i = 0; i < n; i++) {
			uint32_t r = rnd32();
			float v = ldexpf(frand(), e + (int)(r % 12) - 6);
			if (r % 97 == 0) v = 0.0f;
			if (r % 101 == 0) v = -0.0f;
			if (r % 89 == 0) { /* an exact E4M3 tie of the block's largest scale */
				float m = (float)(8 + (int)(rnd32() % 8)) + 0.5f;
				v = ldexpf(m, e - 3);
			}
			x[i] = v;
		}
		if (it % 50 == 7) x[rnd32() % n] = NAN;
		if (it % 70 == 9) x[rnd32() % n] = -INFINITY;
		float s0 = kern_act_quant_block(x, n, q0);
		float s1 = cpu_isa_avx2.actq(x, n, q1);
		blocks++;
		if (memcmp(&s0, &s1, 4)) {
			fprintf(stderr, "FAIL actq block %d: scale got %.9g expected %.9g\n", it, s1, s0);
			bad = 1;
		}
		for (int i = 0; i < n && !bad; i++)
			if (memcmp(&q0[i], &q1[i], 4)) {
				fprintf(stderr, "FAIL actq block %d: index %d (x = %.9g): got %.9g expected %.9g\n", it, i, x[i], q1[i],
					q0[i]);
				bad = 1;
			}
	}
	if (bad) tu_failures++;
	else printf("ok   act_quant avx2 == kern_act_quant_block       %d blocks bitwise equal\n", blocks);
}

/* ---- GEMMs ---- */

static void t_fp8(int N, int K, int S)
{
	const int nb = (K + 127) / 128;
	uint8_t *w = malloc((size_t)N * K), *wa = malloc((size_t)N * K), *sc = malloc((size_t)((N + 127) / 128) * nb);
	float *x = malloc(sizeof(float) * S * K), *xa = malloc(sizeof(float) * S * K);
	float *y0 = malloc(sizeof(float) * S * N), *y1 = malloc(sizeof(float) * S * N), *ya = malloc(sizeof(float) * S * N);
	fill_u8(w, (size_t)N * K, 1);
	fill_e8(sc, (size_t)((N + 127) / 128) * nb);
	fill_bf(x, (size_t)S * K);
	for (size_t i = 0; i < (size_t)N * K; i++) wa[i] = w[i] & 0x7F;
	absf(xa, x, (size_t)S * K);
	struct kern_fp8w W = { w, sc, N, K }, Wa = { wa, sc, N, K };
	char name[96];
	for (int m = 0; m < 2; m++) {
		unsigned nm = m ? (KERN_QNT | KERN_RND) : KERN_QNT;
		g_ref->gemm_fp8(g_ref, y0, N, x, K, &W, S, nm);
		g_ref->gemm_fp8(g_ref, ya, N, xa, K, &Wa, S, KERN_QNT);
		if (g_have_avx2) {
			g_opt->gemm_fp8(g_opt, y1, N, x, K, &W, S, nm);
			snprintf(name, sizeof name, "gemm_fp8 %dx%d S=%d %s", N, K, S, m ? "faithful" : "exact");
			check_tol(name, y1, y0, ya, (size_t)S * N, m);
		}
	}
	free(w); free(wa); free(sc); free(x); free(xa); free(y0); free(y1); free(ya);
}

static void t_fp8g(int G, int R, int Kg, int S)
{
	const int N = G * R, nb = (Kg + 127) / 128;
	uint8_t *w = malloc((size_t)N * Kg), *wa = malloc((size_t)N * Kg), *sc = malloc((size_t)((N + 127) / 128) * nb);
	float *x = malloc(sizeof(float) * S * G * Kg), *xa = malloc(sizeof(float) * S * G * Kg);
	float *y0 = malloc(sizeof(float) * S * N), *y1 = malloc(sizeof(float) * S * N), *ya = malloc(sizeof(float) * S * N);
	fill_u8(w, (size_t)N * Kg, 1);
	fill_e8(sc, (size_t)((N + 127) / 128) * nb);
	fill_bf(x, (size_t)S * G * Kg);
	for (size_t i = 0; i < (size_t)N * Kg; i++) wa[i] = w[i] & 0x7F;
	absf(xa, x, (size_t)S * G * Kg);
	struct kern_fp8w W = { w, sc, N, Kg }, Wa = { wa, sc, N, Kg };
	g_ref->gemm_fp8_grouped(g_ref, y0, x, &W, G, S, 0);
	g_ref->gemm_fp8_grouped(g_ref, ya, xa, &Wa, G, S, 0);
	if (g_have_avx2) {
		g_opt->gemm_fp8_grouped(g_opt, y1, x, &W, G, S, 0);
		char name[96];
		snprintf(name, sizeof name, "gemm_fp8_grouped G=%d %dx%d S=%d", G, R, Kg, S);
		check_tol(name, y1, y0, ya, (size_t)S * N, 0);
	}
	free(w); free(wa); free(sc); free(x); free(xa); free(y0); free(y1); free(ya);
}

static void t_dense(int N, int K, int S)
{
	uint16_t *w = malloc(2 * (size_t)N * K), *wa = malloc(2 * (size_t)N * K);
	float *x = malloc(sizeof(float) * S * K), *xa = malloc(sizeof(float) * S * K);
	float *y0 = malloc(sizeof(float) * S * N), *y1 = malloc(sizeof(float) * S * N), *ya = malloc(sizeof(float) * S * N);
	for (size_t i = 0; i < (size_t)N * K; i++) {
		w[i] = kern_f32_to_bf16(frand());
		wa[i] = w[i] & 0x7FFF;
	}
	fill_bf(x, (size_t)S * K);
	absf(xa, x, (size_t)S * K);
	char name[96];
	g_ref->gemm_f32(g_ref, y0, N, x, K, w, N, K, S);
	g_ref->gemm_f32(g_ref, ya, N, xa, K, wa, N, K, S);
	if (g_have_avx2) {
		g_opt->gemm_f32(g_opt, y1, N, x, K, w, N, K, S);
		snprintf(name, sizeof name, "gemm_f32 %dx%d S=%d", N, K, S);
		check_tol(name, y1, y0, ya, (size_t)S * N, 0);
		g_ref->gemm_bf16(g_ref, y0, N, x, K, w, N, K, S, KERN_RND);
		g_opt->gemm_bf16(g_opt, y1, N, x, K, w, N, K, S, KERN_RND);
		snprintf(name, sizeof name, "gemm_bf16 %dx%d S=%d", N, K, S);
		check_tol(name, y1, y0, ya, (size_t)S * N, 1);
	}
	free(w); free(wa); free(x); free(xa); free(y0); free(y1); free(ya);
}

/* ---- FP4 expert ---- */

struct fp4set {
	uint8_t *w[3], *s[3];
	struct kern_expert ex, exa; /* exa: |weights| */
	uint8_t *wa[3];
};

static void fp4_make(struct fp4set *f, int D, int F)
{
	const int n[3] = { F, F, D }, k[3] = { D, D, F };
	for (int i = 0; i < 3; i++) {
		size_t nw = (size_t)n[i] * k[i] / 2, ns = (size_t)n[i] * k[i] / 32;
		f->w[i] = malloc(nw);
		f->wa[i] = malloc(nw);
		f->s[i] = malloc(ns);
		fill_u8(f->w[i], nw, 0);
		for (size_t j = 0; j < nw; j++) f->wa[i][j] = f->w[i][j] & 0x77;
		fill_e8(f->s[i], ns);
	}
	f->ex = (struct kern_expert){ { f->w[0], f->s[0], F, D }, { f->w[1], f->s[1], F, D }, { f->w[2], f->s[2], D, F } };
	f->exa = (struct kern_expert){ { f->wa[0], f->s[0], F, D }, { f->wa[1], f->s[1], F, D }, { f->wa[2], f->s[2], D, F } };
}

static void fp4_free(struct fp4set *f)
{
	for (int i = 0; i < 3; i++) { free(f->w[i]); free(f->wa[i]); free(f->s[i]); }
}

/* The FP4 GEMM itself (inner loops, on act_quant-ed rows in each table's layout):
 * bound 1e-5 of Σ|terms|, the Σ|terms| from the plain-C loop on |q| and |w|. */
static void t_fp4_gemm(int N, int K, int S, int use512)
{
	struct kern_fp4w W, Wa;
	uint8_t *w = malloc((size_t)N * K / 2), *wa = malloc((size_t)N * K / 2), *sc = malloc((size_t)N * K / 32);
	float *x = malloc(sizeof(float) * S * K), *q = malloc(sizeof(float) * S * K), *ql = malloc(sizeof(float) * S * K);
	float *qa = malloc(sizeof(float) * S * K), *sa = malloc(sizeof(float) * S * (K / 128 + 1));
	float *y0 = malloc(sizeof(float) * S * N), *y1 = malloc(sizeof(float) * S * N), *ya = malloc(sizeof(float) * S * N);
	float *wb = malloc(sizeof(float) * cpu_isa_wb_floats((size_t)K, 4)), tmp[256];
	fill_u8(w, (size_t)N * K / 2, 0);
	for (size_t i = 0; i < (size_t)N * K / 2; i++) wa[i] = w[i] & 0x77;
	fill_e8(sc, (size_t)N * K / 32);
	fill_bf(x, (size_t)S * K);
	const int nb = (K + 127) / 128;
	for (int s = 0; s < S; s++)
		for (int b = 0; b * 128 < K; b++) {
			int o = b * 128, n = K - o < 128 ? K - o : 128;
			sa[s * nb + b] = kern_act_quant_block(x + (size_t)s * K + o, n, q + (size_t)s * K + o);
		}
	absf(qa, q, (size_t)S * K);
	memcpy(ql, q, sizeof(float) * S * K);
	for (int s = 0; s < S; s++)
		(use512 ? cpu_fp4_layout_avx512 : cpu_fp4_layout_avx2)(ql + (size_t)s * K, K, K, tmp, KERN_QNT);
	W = (struct kern_fp4w){ w, sc, N, K };
	Wa = (struct kern_fp4w){ wa, sc, N, K };
	cpu_isa_scalar.fp4(y0, N, q, sa, S, &W, 0, N, wb, 0);
	cpu_isa_scalar.fp4(ya, N, qa, sa, S, &Wa, 0, N, wb, 0);
	(use512 ? cpu_fp4_avx512 : cpu_fp4_avx2)(y1, N, ql, sa, S, &W, 0, N, wb, KERN_QNT);
	char name[96];
	snprintf(name, sizeof name, "fp4 GEMM %s %dx%d S=%d", use512 ? "avx512" : "avx2", N, K, S);
	check_tol(name, y1, y0, ya, (size_t)S * N, 0);
	free(w); free(wa); free(sc); free(x); free(q); free(ql); free(qa); free(sa); free(y0); free(y1); free(ya); free(wb);
}

/* The whole routed expert (two chained FP4 GEMMs).  The first GEMM's reorder error
 * (~1e-6) can move one act_quant code of h by one E4M3 step (2^-3 of that term), so
 * the bound is 1e-3 of Σ|terms| (from the plain-C expert on |x| and |weights|; a
 * wrong 32-block would move an output by ~1/(K/32) of it). */
static void t_fp4(int D, int F, int S)
{
	struct fp4set f;
	fp4_make(&f, D, F);
	float *x = malloc(sizeof(float) * S * D), *xa = malloc(sizeof(float) * S * D);
	float *a0 = calloc((size_t)S * D, 4), *a1 = calloc((size_t)S * D, 4), *aa = calloc((size_t)S * D, 4);
	float wt[64];
	int32_t slots[64];
	fill_bf(x, (size_t)S * D);
	absf(xa, x, (size_t)S * D);
	for (int s = 0; s < S; s++) { slots[s] = s; wt[s] = 0.5f + 0.01f * s; }
	/* limit 0: no clamps, so silu(|g|)·|u| bounds |silu(g)·u| */
	g_ref->moe_expert(g_ref, a0, x, &f.ex, slots, S, wt, 1, 0.0f, KERN_QNT);
	g_ref->moe_expert(g_ref, aa, xa, &f.exa, slots, S, wt, 1, 0.0f, KERN_QNT);
	struct kern *ko[2] = { g_have_avx2 ? g_opt : NULL, g_have_512 ? g_512 : NULL };
	for (int i = 0; i < 2; i++) {
		if (!ko[i]) continue;
		memset(a1, 0, sizeof(float) * S * D);
		ko[i]->moe_expert(ko[i], a1, x, &f.ex, slots, S, wt, 1, 0.0f, KERN_QNT);
		int bad = 0;
		for (size_t j = 0; j < (size_t)S * D; j++) {
			double tol = 1e-3 * aa[j], d = fabs((double)a1[j] - a0[j]);
			if (!(d <= tol) && bad++ < 5)
				fprintf(stderr, "FAIL moe_expert %s D=%d F=%d S=%d: index %zu: got %.9g expected %.9g (tol %.3g)\n",
					kern_cpu_isa(ko[i]), D, F, S, j, a1[j], a0[j], tol);
		}
		if (bad) tu_failures++;
		else printf("ok   moe_expert %-6s D=%d F=%d S=%-9d %d outputs within 1e-3 of sum|terms|\n", kern_cpu_isa(ko[i]),
			    D, F, S, S * D);
	}
	free(x); free(xa); free(a0); free(a1); free(aa);
	fp4_free(&f);
}

/* ---- attention, indexer ---- */

static void t_attn(int S, int H, int dh, int nwin, int ncmp)
{
	const int n_idx = nwin + ncmp + 5;
	float *q = malloc(sizeof(float) * S * H * dh), *win = malloc(sizeof(float) * nwin * dh);
	float *cmp = malloc(sizeof(float) * (ncmp + 1) * dh), *sink = malloc(sizeof(float) * H);
	float *o0 = malloc(sizeof(float) * S * H * dh), *o1 = malloc(sizeof(float) * S * H * dh);
	float *mx = malloc(sizeof(float) * S * H * dh);
	int32_t *idx = malloc(sizeof(int32_t) * S * n_idx);
	fill_bf(q, (size_t)S * H * dh);
	fill_bf(win, (size_t)nwin * dh);
	fill_bf(cmp, (size_t)ncmp * dh);
	for (int h = 0; h < H; h++) sink[h] = frand();
	float vmax = 0;
	for (int i = 0; i < nwin * dh; i++) vmax = fmaxf(vmax, fabsf(win[i]));
	for (int i = 0; i < ncmp * dh; i++) vmax = fmaxf(vmax, fabsf(cmp[i]));
	for (int s = 0; s < S; s++)
		for (int j = 0; j < n_idx; j++)
			idx[s * n_idx + j] = j == 0 ? 0 : (rnd32() % 7 == 0 ? -1 : (int32_t)(rnd32() % (nwin + ncmp)));
	struct kern_kv kv = { win, nwin, cmp, ncmp };
	for (int i = 0; i < S * H * dh; i++) mx[i] = vmax; /* outputs are convex combinations */
	g_ref->attn(g_ref, o0, q, &kv, idx, n_idx, sink, S, H, dh, 0.0625f, 0);
	if (g_have_avx2) {
		g_opt->attn(g_opt, o1, q, &kv, idx, n_idx, sink, S, H, dh, 0.0625f, 0);
		char name[96];
		snprintf(name, sizeof name, "attn S=%d H=%d dh=%d list %d", S, H, dh, n_idx);
		/* scores differ by ~1e-6 relative, exp() propagates it: 1e-5 of max|v| */
		check_tol(name, o1, o0, mx, (size_t)S * H * dh, 0);
	}
	free(q); free(win); free(cmp); free(sink); free(o0); free(o1); free(mx); free(idx);
}

static void t_score(int S, int n, int HI, int dI)
{
	float *q = malloc(sizeof(float) * S * HI * dI), *w = malloc(sizeof(float) * S * HI);
	float *ic = malloc(sizeof(float) * n * dI), *qa = malloc(sizeof(float) * S * HI * dI);
	float *wa = malloc(sizeof(float) * S * HI), *ica = malloc(sizeof(float) * n * dI);
	float *s0 = malloc(sizeof(float) * S * n), *s1 = malloc(sizeof(float) * S * n), *sa = malloc(sizeof(float) * S * n);
	fill_bf(q, (size_t)S * HI * dI);
	fill_bf(w, (size_t)S * HI);
	fill_bf(ic, (size_t)n * dI);
	absf(qa, q, (size_t)S * HI * dI);
	absf(wa, w, (size_t)S * HI);
	absf(ica, ic, (size_t)n * dI);
	g_ref->idx_score(g_ref, s0, n, q, w, ic, n, S, HI, dI, 0);
	g_ref->idx_score(g_ref, sa, n, qa, wa, ica, n, S, HI, dI, 0);
	if (g_have_avx2) {
		g_opt->idx_score(g_opt, s1, n, q, w, ic, n, S, HI, dI, 0);
		char name[96];
		snprintf(name, sizeof name, "idx_score S=%d n=%d HI=%d dI=%d", S, n, HI, dI);
		check_tol(name, s1, s0, sa, (size_t)S * n, 0);
	}
	free(q); free(w); free(ic); free(qa); free(wa); free(ica); free(s0); free(s1); free(sa);
}

/* ---- invariance: S rows at once (3 threads) == one row at a time (1 thread) ---- */

static void t_invariance(struct kern *kb, struct kern *k1, const char *tag)
{
	const int S = 7, D = 640, F = 224, N = 301, K = 581; /* w1: K%128 == 0, w2: 7 blocks; K % 8 tail */
	const unsigned nm = KERN_QNT | KERN_RND;
	char name[96];
	/* FP8 GEMM */
	uint8_t *w8 = malloc((size_t)N * K), *s8 = malloc(3 * 5);
	float *x = malloc(sizeof(float) * S * K), *yb = malloc(sizeof(float) * S * N), *y1 = malloc(sizeof(float) * S * N);
	fill_u8(w8, (size_t)N * K, 1);
	fill_e8(s8, 15);
	fill_bf(x, (size_t)S * K);
	struct kern_fp8w W = { w8, s8, N, K };
	kb->gemm_fp8(kb, yb, N, x, K, &W, S, nm);
	for (int s = 0; s < S; s++) k1->gemm_fp8(k1, y1 + s * N, N, x + s * K, K, &W, 1, nm);
	snprintf(name, sizeof name, "%s gemm_fp8 rows vs one-by-one", tag);
	check_bits(name, yb, y1, (size_t)S * N);
	/* dense */
	uint16_t *wb = malloc(2 * (size_t)N * K);
	for (size_t i = 0; i < (size_t)N * K; i++) wb[i] = kern_f32_to_bf16(frand());
	kb->gemm_f32(kb, yb, N, x, K, wb, N, K, S);
	for (int s = 0; s < S; s++) k1->gemm_f32(k1, y1 + s * N, N, x + s * K, K, wb, N, K, 1);
	snprintf(name, sizeof name, "%s gemm_f32 rows vs one-by-one", tag);
	check_bits(name, yb, y1, (size_t)S * N);
	/* FP4 expert, tokens routed to it: 5 of the 7 rows, topk 2 */
	struct fp4set f;
	fp4_make(&f, D, F);
	float *xe = malloc(sizeof(float) * S * D), *ab = calloc((size_t)S * D, 4), *a1 = calloc((size_t)S * D, 4);
	float wt[14];
	int32_t slots[5] = { 1, 4, 7, 8, 13 }; /* slot = s*2 + j */
	fill_bf(xe, (size_t)S * D);
	for (int i = 0; i < 14; i++) wt[i] = 0.25f + 0.05f * i;
	kb->moe_expert(kb, ab, xe, &f.ex, slots, 5, wt, 2, 7.0f, nm);
	for (int i = 0; i < 5; i++) k1->moe_expert(k1, a1, xe, &f.ex, slots + i, 1, wt, 2, 7.0f, nm);
	snprintf(name, sizeof name, "%s moe_expert batch vs one-by-one", tag);
	check_bits(name, ab, a1, (size_t)S * D);
	/* attention */
	const int H = 5, dh = 192, nwin = 40, n_idx = 70;
	float *q = malloc(sizeof(float) * S * H * dh), *kvw = malloc(sizeof(float) * nwin * dh), sink[5];
	float *ob = malloc(sizeof(float) * S * H * dh), *o1 = malloc(sizeof(float) * S * H * dh);
	int32_t *idx = malloc(sizeof(int32_t) * S * n_idx);
	fill_bf(q, (size_t)S * H * dh);
	fill_bf(kvw, (size_t)nwin * dh);
	for (int h = 0; h < H; h++) sink[h] = frand();
	for (int i = 0; i < S * n_idx; i++) idx[i] = i % n_idx == 0 ? 0 : (int32_t)(rnd32() % (nwin + 1)) - 1;
	struct kern_kv kv = { kvw, nwin, NULL, 0 };
	kb->attn(kb, ob, q, &kv, idx, n_idx, sink, S, H, dh, 0.07f, nm);
	for (int s = 0; s < S; s++)
		k1->attn(k1, o1 + s * H * dh, q + s * H * dh, &kv, idx + s * n_idx, n_idx, sink, 1, H, dh, 0.07f, nm);
	snprintf(name, sizeof name, "%s attn rows vs one-by-one", tag);
	check_bits(name, ob, o1, (size_t)S * H * dh);
	/* indexer scores */
	const int HI = 8, dI = 64, n = 45;
	float *qi = malloc(sizeof(float) * S * HI * dI), *wi = malloc(sizeof(float) * S * HI), *ic = malloc(sizeof(float) * n * dI);
	float *sb = malloc(sizeof(float) * S * n), *s1 = malloc(sizeof(float) * S * n);
	fill_bf(qi, (size_t)S * HI * dI);
	fill_bf(wi, (size_t)S * HI);
	fill_bf(ic, (size_t)n * dI);
	kb->idx_score(kb, sb, n, qi, wi, ic, n, S, HI, dI, nm);
	for (int s = 0; s < S; s++) k1->idx_score(k1, s1 + s * n, n, qi + s * HI * dI, wi + s * HI, ic, n, 1, HI, dI, nm);
	snprintf(name, sizeof name, "%s idx_score rows vs one-by-one", tag);
	check_bits(name, sb, s1, (size_t)S * n);
	free(w8); free(s8); free(x); free(yb); free(y1); free(wb); free(xe); free(ab); free(a1);
	free(q); free(kvw); free(ob); free(o1); free(idx); free(qi); free(wi); free(ic); free(sb); free(s1);
	fp4_free(&f);
}

/* ---- pool ---- */

struct pool_ctx { atomic_int *hits; };
static void pool_task(void *vp, int t, int tid)
{
	struct pool_ctx *c = vp;
	(void)tid;
	atomic_fetch_add(&c->hits[t], 1);
}

static void t_pool(void)
{
	struct cpu_pool *p;
	if (cpu_pool_create(4, &p)) { TU_CHECK(0, "cpu_pool_create(4) failed"); return; }
	atomic_int hits[97];
	int bad = 0;
	for (int run = 0; run < 3000 && !bad; run++) {
		int nt = 1 + run % 97;
		for (int i = 0; i < nt; i++) atomic_init(&hits[i], 0);
		struct pool_ctx c = { hits };
		cpu_pool_run(p, pool_task, &c, nt);
		for (int i = 0; i < nt; i++)
			if (atomic_load(&hits[i]) != 1) {
				fprintf(stderr, "FAIL pool: run %d, task %d of %d executed %d times (expected 1)\n", run, i, nt,
					atomic_load(&hits[i]));
				bad = 1;
				break;
			}
	}
	cpu_pool_destroy(p);
	if (bad) tu_failures++;
	else printf("ok   pool: 3000 runs of 1..97 tasks on 4 threads, each task exactly once\n");
}

static struct kern *mk(int threads, enum kern_cpu_isa isa)
{
	struct kern_cpu_opts o = { threads, isa };
	struct kern *k = kern_cpu_create_opts(&o);
	if (!k || k->reserve(k, 64, 4096 + 256)) {
		fprintf(stderr, "FAIL: cannot create the CPU backend (%d threads)\n", threads);
		exit(1);
	}
	return k;
}

int main(void)
{
	g_ref = mk(1, KERN_CPU_ISA_SCALAR);
	g_ref3 = mk(3, KERN_CPU_ISA_SCALAR);
	g_opt = mk(3, KERN_CPU_ISA_AVX2);
	g_opt1 = mk(1, KERN_CPU_ISA_AVX2);
	TU_CHECK(kern_cpu_threads(g_opt) == 3, "threads: got %d expected 3", kern_cpu_threads(g_opt));
	TU_CHECK(!strcmp(kern_cpu_isa(g_ref), "scalar"), "isa: got %s expected scalar", kern_cpu_isa(g_ref));
	g_have_avx2 = !strcmp(kern_cpu_isa(g_opt), "avx2");
	if (!g_have_avx2) printf("note: no AVX2/FMA on this CPU: only the plain-C table is tested\n");
	g_512 = mk(3, KERN_CPU_ISA_AVX512);
	g_5121 = mk(1, KERN_CPU_ISA_AVX512);
	g_have_512 = !strcmp(kern_cpu_isa(g_512), "avx512");
	if (!g_have_512) printf("note: no AVX-512 BF16 on this CPU: the avx512 table is not tested\n");

	t_pool();
	if (g_have_avx2) t_actq();
	t_fp8(300, 4096, 5);  /* 3 row blocks, the last partial */
	t_fp8(130, 203, 3);   /* partial 128-block and a K % 8 tail */
	t_fp8g(4, 64, 384, 3);
	t_dense(129, 4096, 6);
	t_dense(33, 203, 5);  /* odd K: tail vector */
	if (g_have_avx2) {
		t_fp4_gemm(2048, 4096, 1, 0); /* release w1 shape, decode */
		t_fp4_gemm(100, 4096, 6, 0);  /* a tile of 4 + 2 single rows */
		t_fp4_gemm(33, 224, 5, 0);    /* K/32 = 7: pairs and an unpaired block */
		t_fp4_gemm(40, 320, 2, 0);    /* K/32 = 10: a group of 8 + a pair */
	}
	if (g_have_512) {
		t_fp4_gemm(2048, 4096, 1, 1); /* groups of 16 blocks */
		t_fp4_gemm(100, 2048, 6, 1);  /* a tile of 4 + 2 single rows */
		t_fp4_gemm(33, 384, 5, 1);    /* K/32 = 12: groups of 4 after none of 16 */
		t_fp4_gemm(40, 640, 2, 1);    /* K/32 = 20: one group of 16 + one of 4 */
		t_fp4_gemm(20, 224, 3, 1);    /* K % 128 != 0: the AVX2 loops */
	}
	t_fp4(4096, 2048, 1); /* release shape, decode */
	t_fp4(4096, 2048, 6); /* a tile of 4 + 2 single rows */
	t_fp4(320, 224, 5);   /* K/32 = 10 and 7: pairs, a group of 8, an unpaired block */
	t_fp4(640, 384, 5);   /* K % 128 == 0: the avx512 table's BF16 path in both GEMMs */
	t_attn(3, 4, 512, 128, 40);
	t_attn(2, 3, 192, 20, 0);
	t_score(3, 100, 64, 128);
	t_score(1, 7, 5, 72);
	t_invariance(g_ref3, g_ref, "scalar");
	if (g_have_avx2) t_invariance(g_opt, g_opt1, "avx2");
	if (g_have_512) t_invariance(g_512, g_5121, "avx512");
	g_ref->destroy(g_ref);
	g_ref3->destroy(g_ref3);
	g_opt->destroy(g_opt);
	g_opt1->destroy(g_opt1);
	g_512->destroy(g_512);
	g_5121->destroy(g_5121);
	TU_DONE();
}
