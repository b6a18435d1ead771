/* tests/test_cpuprefill.c - the CPU backend's blocked prefill GEMMs (weight rows
 * decoded once and applied to tiles of tokens) at awkward row counts.
 *
 * For every optimised table the machine has (avx512, avx2), every op below runs on
 * S in {1, 3, 4, 5, 7, 8, 9, 17, 64, 65} rows starting at row offsets 0, 1 and 2
 * (so a row sits at every position of a token tile), with 2 threads, and is
 * checked two ways:
 *   1. against the plain-C table (1 thread): |got - exp| <= 1e-5 of the sum of
 *      |terms| of that output (the plain-C op on |inputs|), + 1 bf16 ulp of exp when
 *      the op rounds; 1e-3 for the whole routed expert, whose first GEMM's order
 *      can move one act_quant code of h by one E4M3 step (as tests/test_perf_kernels.c);
 *   2. row independence, bitwise: each row equals the same row computed alone
 *      (S = 1, 1 thread) - whatever S, the offset, the tile, the token block.
 * Ops: FP8 GEMM (exact and faithful; K = 512 and K = 4096, whose token blocks of
 * 48 rows are crossed by S = 64, 65), grouped wo_a GEMM (faithful: bf16
 * activations), FP4 GEMM inner loops (the avx512 and avx2 ones, K/32 = 20 and 128),
 * the routed expert (moe_expert, both FP4 GEMMs chained). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/isa.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

#define MAXS 67 /* 65 rows at offset 2 */
static const int g_S[] = { 1, 3, 4, 5, 7, 8, 9, 17, 64, 65 };
#define NS ((int)(sizeof g_S / sizeof g_S[0]))

static uint64_t g_rng = 0xD1B54A32D192ED03ull;
static uint32_t rnd32(void)
{
	g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 16);
}
static float bfrand(void) { return kern_rbf16(((float)(rnd32() & 0xFFFFFF) * 0x1p-24f - 0.5f) * 4.0f); }
/* bf16 values, each 64-run scaled by its own power of two (2^-3 .. 2^3), so that
 * act_quant scales differ between rows and blocks */
static void fill_bf(float *x, size_t n)
{
	float f = 1.0f;
	for (size_t i = 0; i < n; i++) {
		if (i % 64 == 0) f = ldexpf(1.0f, (int)(rnd32() % 7) - 3);
		x[i] = bfrand() * f;
	}
}
static void fill_u8(uint8_t *p, size_t n, int fp8)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)rnd32();
		if (fp8 && (b & 0x7F) == 0x7F) b ^= 1; /* no NaN codes */
		p[i] = b;
	}
}
static void fill_e8(uint8_t *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(122 + rnd32() % 10); }
static void absf(float *d, const float *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = fabsf(s[i]); }

/* |got - exp| <= rel·absum (+ 1 bf16 ulp of exp); returns the number of bad outputs */
static int check_tol(const char *what, const float *got, const float *exp, const float *absum, size_t n, int rnd,
		     double rel)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		double tol = rel * absum[i] + 1e-30;
		if (rnd) tol += ldexp(fabs(exp[i]), -7);
		double d = fabs((double)got[i] - exp[i]);
		if (!(d <= tol) && bad++ < 5)
			fprintf(stderr, "FAIL %s: index %zu: got %.9g expected %.9g (|diff| %.3g > tol %.3g)\n", what, i, got[i],
				exp[i], d, tol);
	}
	return bad;
}

static int check_bits(const char *what, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4)) {
			fprintf(stderr, "FAIL %s: index %zu: in the call %.9g alone %.9g (must be bitwise equal)\n", what, i, a[i],
				b[i]);
			return 1;
		}
	return 0;
}

/* One op on rows [off, off + S) of its inputs, outputs at rows [0, S) of y
 * (ldy = width).  ctx holds the op's weights and inputs. */
typedef void (*op_fn)(struct kern *k, void *ctx, float *y, int off, int S, int absval);

struct sweep {
	const char *name;
	op_fn fn;
	void *ctx;
	int width;   /* outputs per row */
	int rnd;     /* rounded outputs */
	double rel;  /* tolerance, relative to Σ|terms| */
};

/* the checks of the file comment for one op on one table (kb: 2 threads, k1: 1) */
static void run_sweep(const struct sweep *w, struct kern *ref, struct kern *kb, struct kern *k1, const char *isa)
{
	const size_t W = (size_t)w->width;
	float *exp = malloc(sizeof(float) * MAXS * W), *abs_ = malloc(sizeof(float) * MAXS * W);
	float *one = malloc(sizeof(float) * MAXS * W), *got = malloc(sizeof(float) * MAXS * W);
	w->fn(ref, w->ctx, exp, 0, MAXS, 0);
	w->fn(ref, w->ctx, abs_, 0, MAXS, 1);
	for (int r = 0; r < MAXS; r++) w->fn(k1, w->ctx, one + r * W, r, 1, 0);
	int bad = 0, calls = 0;
	char what[160];
	for (int i = 0; i < NS && !bad; i++)
		for (int off = 0; off < 3 && !bad; off++) {
			const int S = g_S[i];
			if (off + S > MAXS) continue;
			w->fn(kb, w->ctx, got, off, S, 0);
			calls++;
			snprintf(what, sizeof what, "%s %s S=%d rows from %d vs plain C", isa, w->name, S, off);
			bad += check_tol(what, got, exp + off * W, abs_ + off * W, S * W, w->rnd, w->rel);
			snprintf(what, sizeof what, "%s %s S=%d rows from %d vs each row alone", isa, w->name, S, off);
			bad += check_bits(what, got, one + off * W, S * W);
		}
	if (bad) tu_failures++;
	else printf("ok   %-7s %-38s %d calls: within %.0e of sum|terms|%s, rows bitwise as alone\n", isa, w->name, calls,
		    w->rel, w->rnd ? " + 1 bf16 ulp" : "");
	free(exp); free(abs_); free(one); free(got);
}

/* ---- FP8 GEMM ---- */

struct fp8_ctx {
	struct kern_fp8w W, Wa; /* Wa: |weights| */
	float *x, *xa;          /* [MAXS, K] */
	unsigned nm;
};

static void op_fp8(struct kern *k, void *vp, float *y, int off, int S, int a)
{
	struct fp8_ctx *c = vp;
	const int K = c->W.k;
	k->gemm_fp8(k, y, c->W.n, (a ? c->xa : c->x) + (size_t)off * K, K, a ? &c->Wa : &c->W, S,
		    a ? KERN_QNT : c->nm);
}

static void fp8_make(struct fp8_ctx *c, int N, int K)
{
	const int nb = (K + 127) / 128;
	uint8_t *w = malloc((size_t)N * K), *wa = malloc((size_t)N * K), *sc = malloc((size_t)((N + 127) / 128) * nb);
	fill_u8(w, (size_t)N * K, 1);
	for (size_t i = 0; i < (size_t)N * K; i++) wa[i] = w[i] & 0x7F;
	fill_e8(sc, (size_t)((N + 127) / 128) * nb);
	c->W = (struct kern_fp8w){ w, sc, N, K };
	c->Wa = (struct kern_fp8w){ wa, sc, N, K };
	c->x = malloc(sizeof(float) * MAXS * K);
	c->xa = malloc(sizeof(float) * MAXS * K);
	fill_bf(c->x, (size_t)MAXS * K);
	absf(c->xa, c->x, (size_t)MAXS * K);
}

static void fp8_free(struct fp8_ctx *c)
{
	free((void *)c->W.w); free((void *)c->Wa.w); free((void *)c->W.s); free(c->x); free(c->xa);
}

/* ---- grouped wo_a ---- */

struct fp8g_ctx {
	struct kern_fp8w W, Wa;
	float *x, *xa; /* [MAXS, G*Kg] */
	int G;
};

static void op_fp8g(struct kern *k, void *vp, float *y, int off, int S, int a)
{
	struct fp8g_ctx *c = vp;
	const size_t ld = (size_t)c->G * c->W.k;
	/* faithful: bf16 activations, rounded outputs; the |terms| sum unrounded */
	k->gemm_fp8_grouped(k, y, (a ? c->xa : c->x) + off * ld, a ? &c->Wa : &c->W, c->G, S, a ? 0 : KERN_RND);
}

/* ---- FP4 GEMM inner loops ---- */

struct fp4_ctx {
	struct kern_fp4w W, Wa;
	float *q, *qa, *ql, *sa; /* [MAXS, K] act_quant-ed rows, |q|, in the table's layout; [MAXS, K/128] */
	float *wb;
	const struct cpu_isa *isa;
};

/* the inner loop called directly (one range, no pool): k picks plain C or the table */
static void op_fp4(struct kern *k, void *vp, float *y, int off, int S, int a)
{
	struct fp4_ctx *c = vp;
	const int K = c->W.k, nb = K / 128;
	if (!strcmp(kern_cpu_isa(k), "scalar"))
		cpu_isa_scalar.fp4(y, c->W.n, (a ? c->qa : c->q) + (size_t)off * K, c->sa + off * nb, S,
				   a ? &c->Wa : &c->W, 0, c->W.n, c->wb, 0);
	else /* two ranges, the second starting at an odd column */
		for (int h = 0; h < 2; h++) {
			int n0 = h ? c->W.n / 2 + 1 : 0, n1 = h ? c->W.n : c->W.n / 2 + 1;
			c->isa->fp4(y, c->W.n, c->ql + (size_t)off * K, c->sa + off * nb, S, &c->W, n0, n1, c->wb, KERN_QNT);
		}
}

static void fp4_make(struct fp4_ctx *c, int N, int K, const struct cpu_isa *isa)
{
	uint8_t *w = malloc((size_t)N * K / 2), *wa = malloc((size_t)N * K / 2), *sc = malloc((size_t)N * K / 32);
	fill_u8(w, (size_t)N * K / 2, 0);
	for (size_t i = 0; i < (size_t)N * K / 2; i++) wa[i] = w[i] & 0x77;
	fill_e8(sc, (size_t)N * K / 32);
	c->W = (struct kern_fp4w){ w, sc, N, K };
	c->Wa = (struct kern_fp4w){ wa, sc, N, K };
	c->q = malloc(sizeof(float) * MAXS * K);
	c->qa = malloc(sizeof(float) * MAXS * K);
	c->ql = malloc(sizeof(float) * MAXS * K);
	c->sa = malloc(sizeof(float) * MAXS * (K / 128));
	c->wb = malloc(sizeof(float) * cpu_isa_wb_floats((size_t)K, 4));
	c->isa = isa;
	float *x = malloc(sizeof(float) * K), tmp[256];
	for (int s = 0; s < MAXS; s++) {
		fill_bf(x, (size_t)K);
		for (int b = 0; b < K / 128; b++)
			c->sa[s * (K / 128) + b] = kern_act_quant_block(x + 128 * b, 128, c->q + (size_t)s * K + 128 * b);
	}
	free(x);
	absf(c->qa, c->q, (size_t)MAXS * K);
	memcpy(c->ql, c->q, sizeof(float) * MAXS * K);
	if (isa->fp4_layout)
		for (int s = 0; s < MAXS; s++) isa->fp4_layout(c->ql + (size_t)s * K, K, K, tmp, KERN_QNT);
}

static void fp4_free(struct fp4_ctx *c)
{
	free((void *)c->W.w); free((void *)c->Wa.w); free((void *)c->W.s);
	free(c->q); free(c->qa); free(c->ql); free(c->sa); free(c->wb);
}

/* ---- routed expert ---- */

struct moe_ctx {
	struct kern_expert ex, exa;
	uint8_t *bytes[9];
	float *x, *xa;   /* [MAXS, D] */
	float wt[MAXS];
	int32_t slots[MAXS];
};

static void op_moe(struct kern *k, void *vp, float *y, int off, int S, int a)
{
	struct moe_ctx *c = vp;
	const int D = c->ex.w1.k;
	memset(y, 0, sizeof(float) * S * D);
	/* limit 0 for |terms| (silu(|g|)·|u| bounds |silu(g)·u|); no clamp either way */
	k->moe_expert(k, y, (a ? c->xa : c->x) + (size_t)off * D, a ? &c->exa : &c->ex, c->slots, S, c->wt + off, 1,
		      0.0f, KERN_QNT);
}

static void moe_make(struct moe_ctx *c, int D, int F)
{
	const int n[3] = { F, F, D }, kk[3] = { D, D, F };
	struct kern_fp4w *t[3] = { &c->ex.w1, &c->ex.w3, &c->ex.w2 }, *ta[3] = { &c->exa.w1, &c->exa.w3, &c->exa.w2 };
	for (int i = 0; i < 3; i++) {
		size_t nw = (size_t)n[i] * kk[i] / 2, ns = (size_t)n[i] * kk[i] / 32;
		uint8_t *w = malloc(nw), *wa = malloc(nw), *s = malloc(ns);
		fill_u8(w, nw, 0);
		for (size_t j = 0; j < nw; j++) wa[j] = w[j] & 0x77;
		fill_e8(s, ns);
		*t[i] = (struct kern_fp4w){ w, s, n[i], kk[i] };
		*ta[i] = (struct kern_fp4w){ wa, s, n[i], kk[i] };
		c->bytes[3 * i] = w, c->bytes[3 * i + 1] = wa, c->bytes[3 * i + 2] = s;
	}
	c->x = malloc(sizeof(float) * MAXS * D);
	c->xa = malloc(sizeof(float) * MAXS * D);
	fill_bf(c->x, (size_t)MAXS * D);
	absf(c->xa, c->x, (size_t)MAXS * D);
	for (int s = 0; s < MAXS; s++) {
		c->slots[s] = s; /* topk 1: slot s is token s of the call */
		c->wt[s] = 0.5f + 0.01f * s;
	}
}

static void moe_free(struct moe_ctx *c)
{
	for (int i = 0; i < 9; i++) free(c->bytes[i]);
	free(c->x); free(c->xa);
}

static struct kern *mk(int threads, enum kern_cpu_isa isa)
{
	struct kern *k = kern_cpu_create_opts(&(struct kern_cpu_opts){ threads, isa });
	if (!k || k->reserve(k, MAXS + 8, 4096 + 256)) {
		fprintf(stderr, "FAIL: cannot create the CPU backend (%d threads)\n", threads);
		exit(1);
	}
	return k;
}

int main(void)
{
	struct kern *ref = mk(1, KERN_CPU_ISA_SCALAR);
	const enum kern_cpu_isa isas[2] = { KERN_CPU_ISA_AVX512, KERN_CPU_ISA_AVX2 };
	const char *names[2] = { "avx512", "avx2" };
	int tested = 0;
	for (int ii = 0; ii < 2; ii++) {
		struct kern *kb = mk(2, isas[ii]), *k1 = mk(1, isas[ii]);
		if (strcmp(kern_cpu_isa(kb), names[ii])) {
			printf("note: no %s table on this CPU (got %s): skipped\n", names[ii], kern_cpu_isa(kb));
			kb->destroy(kb);
			k1->destroy(k1);
			continue;
		}
		tested++;
		const struct cpu_isa *isa = ii == 0 ? NULL : &cpu_isa_avx2;
		struct fp8_ctx f8;
		const int fp8_shapes[2][2] = { { 300, 512 }, { 40, 4096 } }; /* 3 row blocks, the last partial; token blocks */
		for (int sh = 0; sh < 2; sh++) {
			fp8_make(&f8, fp8_shapes[sh][0], fp8_shapes[sh][1]);
			for (int m = 0; m < 2; m++) {
				char nm[64];
				f8.nm = m ? KERN_QNT | KERN_RND : KERN_QNT;
				snprintf(nm, sizeof nm, "gemm_fp8 %dx%d %s", f8.W.n, f8.W.k, m ? "faithful" : "exact");
				run_sweep(&(struct sweep){ nm, op_fp8, &f8, f8.W.n, m, 1e-5 }, ref, kb, k1, names[ii]);
			}
			fp8_free(&f8);
		}
		{
			struct fp8_ctx g;
			fp8_make(&g, 4 * 64, 384); /* weights [G*R, Kg] */
			float *x = malloc(sizeof(float) * MAXS * 4 * 384), *xa = malloc(sizeof(float) * MAXS * 4 * 384);
			fill_bf(x, (size_t)MAXS * 4 * 384);
			absf(xa, x, (size_t)MAXS * 4 * 384);
			struct fp8g_ctx c = { g.W, g.Wa, x, xa, 4 };
			run_sweep(&(struct sweep){ "gemm_fp8_grouped G=4 64x384 faithful", op_fp8g, &c, 4 * 64, 1, 1e-5 }, ref, kb, k1,
				  names[ii]);
			free(x); free(xa);
			fp8_free(&g);
		}
		/* FP4 inner loops: the table's own fp4 (avx512: K % 128 == 0 takes the BF16 path) */
		struct cpu_isa tab512;
		if (!isa) { /* the avx512 table's FP4 entries */
			tab512 = cpu_isa_avx2;
			tab512.fp4 = cpu_fp4_avx512;
			tab512.fp4_layout = cpu_fp4_layout_avx512;
			isa = &tab512;
		}
		const int fp4_shapes[2][2] = { { 101, 640 }, { 24, 4096 } };
		for (int sh = 0; sh < 2; sh++) {
			struct fp4_ctx f4;
			char nm[64];
			fp4_make(&f4, fp4_shapes[sh][0], fp4_shapes[sh][1], isa);
			snprintf(nm, sizeof nm, "fp4 GEMM %dx%d", f4.W.n, f4.W.k);
			run_sweep(&(struct sweep){ nm, op_fp4, &f4, f4.W.n, 0, 1e-5 }, ref, kb, k1, names[ii]);
			fp4_free(&f4);
		}
		struct moe_ctx me;
		moe_make(&me, 640, 384);
		run_sweep(&(struct sweep){ "moe_expert D=640 F=384", op_moe, &me, 640, 0, 1e-3 }, ref, kb, k1, names[ii]);
		moe_free(&me);
		kb->destroy(kb);
		k1->destroy(k1);
	}
	ref->destroy(ref);
	if (!tested) printf("note: no optimised table on this CPU: nothing to compare\n");
	TU_DONE();
}
