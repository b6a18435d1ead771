/* tests/test_cpudecode.c - the CPU dense GEMMs (gemm_f32: head, gate, compressors;
 * gemm_bf16) at decode and small row counts, on every optimised table the machine
 * has (avx512: VDPBF16PS on bf16-exact rows; avx2).
 *
 * For S in {1, 2, 3, 16, 17} rows (tiles of 4 tokens: full, partial, several) and
 * shapes with K % 32 != 0, odd K, K < 32 and N across several 64-column blocks and
 * tasks, three kinds of activation rows: bf16 values (faithful numerics), f32 values
 * (smooth numerics: the AVX2 fallback) and a mix of both inside one tile:
 *   1. against the plain-C table (1 thread): |got - exp| <= 1e-5 of the sum of
 *      |terms| of that output (the plain-C op on |inputs|), + 1 bf16 ulp of exp for
 *      gemm_bf16 (a single wrong term of a 4096-long sum moves an output by ~2e-4
 *      of that sum, 20x the bound);
 *   2. bitwise: the S-row call on 2 threads == each row alone (S = 1, 1 thread),
 *      and == the S-row call on 1 thread (row independence, thread invariance).
 * Also hc_pre / hc_head (their dot products are the table's), see t_hc. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint32_t rnd32(void)
{
	g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 16);
}
static float frand(void) { return ((float)(rnd32() & 0xFFFFFF) * 0x1p-24f - 0.5f) * 4.0f; }

enum { KIND_BF16, KIND_F32, KIND_MIX };
static const char *g_kind[] = { "bf16 rows", "f32 rows", "mixed rows" };

static int check_tol(const char *what, const float *got, const float *exp, const float *absum, size_t n, int rnd)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		double tol = 1e-5 * absum[i] + 1e-30;
		if (rnd) tol += ldexp(fabs(exp[i]), -7);
		double d = fabs((double)got[i] - exp[i]);
		if (!(d <= tol) && bad++ < 5)
			fprintf(stderr, "FAIL %s: index %zu: got %.9g expected %.9g (|diff| %.3g > tol %.3g)\n", what, i,
				got[i], exp[i], d, tol);
	}
	return bad;
}

static int check_bits(const char *what, const float *a, const float *b, size_t n)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4) && bad++ < 5)
			fprintf(stderr, "FAIL %s: index %zu: got %.9g expected %.9g (must be bitwise equal)\n", what, i, a[i],
				b[i]);
	return bad;
}

static struct kern *mk(int threads, enum kern_cpu_isa isa)
{
	struct kern *k = kern_cpu_create_opts(&(struct kern_cpu_opts){ threads, isa });
	if (!k || k->reserve(k, 32, 4 * 4096 + 256)) {
		fprintf(stderr, "FAIL: cannot create the CPU backend (%d threads)\n", threads);
		exit(1);
	}
	return k;
}

static void run(struct kern *k, int f32, float *y, int ldy, const float *x, int ldx, const uint16_t *w, int N, int K,
		int S)
{
	if (f32) k->gemm_f32(k, y, ldy, x, ldx, w, N, K, S);
	else k->gemm_bf16(k, y, ldy, x, ldx, w, N, K, S, KERN_RND);
}

/* One shape on one table: every S, every kind of row, both ops. */
static void t_shape(struct kern *ref, struct kern *opt2, struct kern *opt1, const char *isa, int N, int K)
{
	static const int Ss[] = { 1, 2, 3, 16, 17 };
	const int SM = 17, ldx = K + 3, ldy = N + 5; /* strides wider than the rows */
	uint16_t *w = malloc(2 * (size_t)N * K), *wa = malloc(2 * (size_t)N * K);
	float *x = malloc(sizeof(float) * SM * ldx), *xa = malloc(sizeof(float) * SM * ldx);
	float *y0 = malloc(sizeof(float) * SM * ldy), *ya = malloc(sizeof(float) * SM * ldy);
	float *y1 = malloc(sizeof(float) * SM * ldy), *y2 = malloc(sizeof(float) * SM * ldy);
	float *y3 = malloc(sizeof(float) * SM * ldy);
	for (size_t i = 0; i < (size_t)N * K; i++) {
		w[i] = kern_f32_to_bf16(frand());
		wa[i] = w[i] & 0x7FFF;
	}
	for (int kind = 0; kind < 3; kind++) {
		for (int s = 0; s < SM; s++)
			for (int i = 0; i < ldx; i++) {
				float v = frand();
				/* f32 rows: values with low mantissa bits; mixed: every third row */
				int exact = kind == KIND_BF16 || (kind == KIND_MIX && s % 3 != 1);
				x[(size_t)s * ldx + i] = exact ? kern_rbf16(v) : v;
			}
		for (size_t i = 0; i < (size_t)SM * ldx; i++) xa[i] = fabsf(x[i]);
		for (int f32 = 0; f32 < 2; f32++)
			for (unsigned si = 0; si < sizeof Ss / sizeof Ss[0]; si++) {
				const int S = Ss[si];
				char name[128];
				snprintf(name, sizeof name, "%s %s %dx%d S=%d %s", isa, f32 ? "gemm_f32" : "gemm_bf16", N, K, S,
					 g_kind[kind]);
				for (size_t i = 0; i < (size_t)SM * ldy; i++) y1[i] = y2[i] = y3[i] = y0[i] = ya[i] = 0;
				run(ref, f32, y0, ldy, x, ldx, w, N, K, S);
				ref->gemm_f32(ref, ya, ldy, xa, ldx, wa, N, K, S);
				run(opt2, f32, y1, ldy, x, ldx, w, N, K, S);
				run(opt1, f32, y2, ldy, x, ldx, w, N, K, S);
				for (int s = 0; s < S; s++)
					run(opt1, f32, y3 + (size_t)s * ldy, ldy, x + (size_t)s * ldx, ldx, w, N, K, 1);
				int bad = 0;
				for (int s = 0; s < S; s++) {
					size_t o = (size_t)s * ldy;
					bad += check_tol(name, y1 + o, y0 + o, ya + o, (size_t)N, !f32);
					bad += check_bits(name, y1 + o, y3 + o, (size_t)N);
					bad += check_bits(name, y2 + o, y3 + o, (size_t)N);
				}
				/* nothing outside the rows and columns written */
				for (int s = 0; s < SM; s++)
					for (int n = 0; n < ldy; n++)
						if ((s >= S || n >= N) && y1[(size_t)s * ldy + n] != 0 && bad++ < 5)
							fprintf(stderr, "FAIL %s: wrote y[%d, %d] outside the output\n", name, s, n);
				if (bad) tu_failures++;
				else if (kind == KIND_BF16 || S == 17)
					printf("ok   %-52s within 1e-5 of sum|terms|%s; rows bitwise = alone, 1 thread\n", name,
					       f32 ? "" : " + 1 ulp");
			}
	}
	free(w); free(wa); free(x); free(xa); free(y0); free(ya); free(y1); free(y2); free(y3);
}

/* hc_pre / hc_head (§5): the optimised table's dot products (mixes and the RMS) vs
 * plain C.  The mixes then differ by ~1e-7 relative (f32 order), which moves post
 * (in (0, 2)) and comb (Sinkhorn, entries in (0, 1)) by ~1e-6; bound 2e-5 absolute;
 * y = bf16(Σ_j pre[j]·X[j]) within 1 bf16 ulp + 1e-5·Σ_j |pre[j]·X[j]|.  A wrong
 * index or a dropped term moves the mixes by O(1).  Rows bitwise = alone. */
static int close_abs(const char *what, const float *got, const float *exp, size_t n, double tol)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - exp[i]);
		if (!(d <= tol) && bad++ < 5)
			fprintf(stderr, "FAIL %s: index %zu: got %.9g expected %.9g (|diff| %.3g > tol %.3g)\n", what, i,
				got[i], exp[i], d, tol);
	}
	return bad;
}

static void t_hc(struct kern *ref, struct kern *opt2, struct kern *opt1, const char *isa, int M, int D)
{
	static const int Ss[] = { 1, 2, 3, 16, 17 };
	const int SM = 17, MD = M * D, nmix = (2 + M) * M;
	float *X = malloc(sizeof(float) * SM * MD), *fn = malloc(sizeof(float) * (size_t)nmix * MD);
	float base[64], sc[3] = { 0.75f, 0.5f, 1.25f };
	float *y[4], *po[4], *cb[4];
	for (int i = 0; i < 4; i++) {
		y[i] = malloc(sizeof(float) * SM * D);
		po[i] = malloc(sizeof(float) * SM * M);
		cb[i] = malloc(sizeof(float) * SM * M * M);
	}
	for (size_t i = 0; i < (size_t)SM * MD; i++) X[i] = kern_rbf16(frand());
	/* |fn| ~ 1/sqrt(MD): mixes of O(1) */
	for (size_t i = 0; i < (size_t)nmix * MD; i++) fn[i] = frand() * 2.0f / sqrtf((float)MD);
	for (int i = 0; i < nmix; i++) base[i] = frand() * 0.25f;
	for (int nm = 0; nm <= KERN_RND; nm += KERN_RND)
		for (unsigned si = 0; si < sizeof Ss / sizeof Ss[0]; si++) {
			const int S = Ss[si];
			char name[128];
			int bad = 0;
			ref->hc_pre(ref, y[0], po[0], cb[0], X, fn, sc, base, S, M, D, 20, 1e-6f, 1e-6f, nm);
			opt2->hc_pre(opt2, y[1], po[1], cb[1], X, fn, sc, base, S, M, D, 20, 1e-6f, 1e-6f, nm);
			for (int s = 0; s < S; s++)
				opt1->hc_pre(opt1, y[2] + (size_t)s * D, po[2] + s * M, cb[2] + s * M * M, X + (size_t)s * MD, fn,
					     sc, base, 1, M, D, 20, 1e-6f, 1e-6f, nm);
			snprintf(name, sizeof name, "%s hc_pre M=%d D=%d S=%d%s", isa, M, D, S, nm ? " rnd" : "");
			bad += close_abs(name, po[1], po[0], (size_t)S * M, 2e-5);
			bad += close_abs(name, cb[1], cb[0], (size_t)S * M * M, 2e-5);
			for (int s = 0; s < S; s++)
				for (int d = 0; d < D; d++) {
					double e = y[0][(size_t)s * D + d], g = y[1][(size_t)s * D + d], ab = 0;
					for (int j = 0; j < M; j++) ab += fabs(1.1 * X[(size_t)s * MD + (size_t)j * D + d]); /* pre < 1.1 */
					double tol = 1e-5 * ab + (nm ? ldexp(fabs(e), -7) : 0) + 1e-30;
					if (!(fabs(g - e) <= tol) && bad++ < 5)
						fprintf(stderr, "FAIL %s y: index %d: got %.9g expected %.9g (tol %.3g)\n", name,
							s * D + d, g, e, tol);
				}
			bad += check_bits(name, y[1], y[2], (size_t)S * D);
			bad += check_bits(name, po[1], po[2], (size_t)S * M);
			bad += check_bits(name, cb[1], cb[2], (size_t)S * M * M);
			/* hc_head: fn [M, MD], base [M] */
			ref->hc_head(ref, y[0], X, fn, sc, base, S, M, D, 1e-6f, 1e-6f, nm);
			opt2->hc_head(opt2, y[1], X, fn, sc, base, S, M, D, 1e-6f, 1e-6f, nm);
			for (int s = 0; s < S; s++)
				opt1->hc_head(opt1, y[2] + (size_t)s * D, X + (size_t)s * MD, fn, sc, base, 1, M, D, 1e-6f, 1e-6f,
					      nm);
			for (size_t i = 0; i < (size_t)S * D; i++) {
				double e = y[0][i], g = y[1][i], ab = 0;
				for (int j = 0; j < M; j++) ab += fabs(1.1 * X[(i / D) * MD + (size_t)j * D + i % D]);
				double tol = 1e-5 * ab + (nm ? ldexp(fabs(e), -7) : 0) + 1e-30;
				if (!(fabs(g - e) <= tol) && bad++ < 5)
					fprintf(stderr, "FAIL %s hc_head: index %zu: got %.9g expected %.9g (tol %.3g)\n", name, i,
						g, e, tol);
			}
			bad += check_bits(name, y[1], y[2], (size_t)S * D);
			if (bad) tu_failures++;
			else if (S == 1 || S == 17)
				printf("ok   %-52s post/comb within 2e-5, y and hc_head within 1e-5 of sum|terms|%s; "
				       "rows bitwise = alone\n", name, nm ? " + 1 ulp" : "");
		}
	free(X); free(fn);
	for (int i = 0; i < 4; i++) { free(y[i]); free(po[i]); free(cb[i]); }
}

int main(void)
{
	struct kern *ref = mk(1, KERN_CPU_ISA_SCALAR);
	const enum kern_cpu_isa isas[2] = { KERN_CPU_ISA_AVX512, KERN_CPU_ISA_AVX2 };
	const char *names[2] = { "avx512", "avx2" };
	int tested = 0;
	for (int i = 0; i < 2; i++) {
		struct kern *o2 = mk(2, isas[i]), *o1 = mk(1, isas[i]);
		if (strcmp(kern_cpu_isa(o2), names[i])) {
			printf("note: no %s on this CPU (got the %s table): not tested\n", names[i], kern_cpu_isa(o2));
		} else {
			tested++;
			t_shape(ref, o2, o1, names[i], 300, 4096); /* 5 column blocks, several tasks */
			t_shape(ref, o2, o1, names[i], 70, 203);   /* K % 32 = 11, odd K */
			t_shape(ref, o2, o1, names[i], 33, 7);     /* K < 32: the tail vector only */
			t_shape(ref, o2, o1, names[i], 129, 160);  /* K % 128 = 32, nv % 4 = 1 */
			t_hc(ref, o2, o1, names[i], 4, 4096);       /* release shape: dots of 16,384 */
			t_hc(ref, o2, o1, names[i], 4, 100);        /* MD % 32 = 16: the dot's tails */
		}
		o2->destroy(o2);
		o1->destroy(o1);
	}
	ref->destroy(ref);
	if (!tested) printf("note: no optimised table: only the plain-C one exists here\n");
	TU_DONE();
}
