/* kernels/cpu/isa_avx512_fp8.c - FP8 GEMMs with AVX-512 BF16 + VBMI (see isa.h).
 *
 * With activation quantisation (QNT) the activation codes are E4M3 values, and
 * the weights are E4M3 values: both exact in bf16, their products exact in f32,
 * so VDPBF16PS forms sums of exact products in f32 - the FMA loops' arithmetic in
 * another order (free by MODEL.md §7.5).  The grouped wo_a GEMM takes bf16
 * activations as they are (with RND every activation is a bf16 value, kern.h):
 * a bf16 times an E4M3 value is exact in f32 too.
 *
 * Weights: 64 E4M3 bytes -> two VPERMI2B lookups (low / high byte of the bf16 of
 * the magnitude, 128-entry tables) -> sign bit -> byte unpacks -> two vectors of
 * 32 bf16 words.  The unpacks work inside 128-bit lanes, so in each 64-input
 * chunk word 32h + 8L + j of the pair holds input 16L + 8h + j; activations are
 * stored as bf16 words in that order (cpu_fp8_layout_avx512 / fp8g_layout).
 *
 * Prefill (S > 1): a group of up to 4 weight rows is decoded once into per-thread
 * scratch and applied to every token in tiles of up to 3 tokens, tokens taken in
 * blocks that stay in L2.  Per output the operations are always the same,
 * whatever the tile, the group, S or the thread:
 *   for each 128-block b ascending:
 *     P = 0; P = dp(P, q[32j..], w[32j..]) for j = 0..3    (16-lane chain)
 *     acc = fma(set1(sa[b]·sw[b]), P, acc)
 *   y = rnd(reduce_add(acc)).
 * Without QNT (resp. RND), for K % 128 != 0, or on a CPU without VBMI, the AVX2
 * loops run instead. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "isa.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && \
	(__GNUC__ >= 10 || (defined(__clang__) && __clang_major__ >= 11))

#define V512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16,avx512vbmi")))
#define V512 __attribute__((target("avx512f,avx512bw,avx512bf16,avx512vbmi,avx2,fma")))

/* bf16 of the E4M3 magnitude m (0..127), low and high byte; 0x7F (NaN) decodes
 * as 480, finite (a valid checkpoint has none) */
static const uint8_t g_e4m3_lo[128] = {
	0x00, 0x00, 0x80, 0xC0, 0x00, 0x20, 0x40, 0x60, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
	0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
};
static const uint8_t g_e4m3_hi[128] = {
	0x00, 0x3B, 0x3B, 0x3B, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C, 0x3C,
	0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D, 0x3D,
	0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E, 0x3E,
	0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F, 0x3F,
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
	0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43,
};

static int use_fp8(int K, unsigned nm) { return (nm & KERN_QNT) && K % 128 == 0; }
static int use_fp8g(int K, unsigned nm) { return (nm & KERN_RND) && K % 128 == 0; }

static inline float e8m0(uint8_t b)
{
	uint32_t u = b == 0 ? 0x00400000u : b == 0xFF ? 0x7FC00000u : (uint32_t)b << 23;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* 64 bf16 words of a 64-input chunk (natural order, src) -> the decode order */
static void chunk_order(uint16_t *dst, const uint16_t *src)
{
	for (int h = 0; h < 2; h++)
		for (int L = 0; L < 4; L++)
			for (int j = 0; j < 8; j++) dst[32 * h + 8 * L + j] = src[16 * L + 8 * h + j];
}

/* Row of K E4M3 activation codes (floats, q) -> K bf16 words in the decode order,
 * in place in the row's first K/2 floats (each chunk is read before it is written,
 * and a chunk's words never reach floats not yet read). */
void cpu_fp8_layout_avx512(float *q, int K, unsigned nm)
{
	if (!use_fp8(K, nm)) return;
	uint16_t t[64], *d = (uint16_t *)q;
	for (int o = 0; o < K; o += 64) {
		for (int j = 0; j < 64; j++) t[j] = kern_f32_to_bf16(q[o + j]); /* exact: E4M3 values */
		chunk_order(d + o, t);
	}
}

/* x [S, G*Kg] (bf16 values) -> xs [S, G*Kg] bf16 words in the decode order; 0 when
 * the AVX-512 path does not apply (fp8g then reads x). */
int cpu_fp8g_layout_avx512(uint16_t *xs, const float *x, int Kg, int G, int s0, int s1, unsigned nm)
{
	if (!use_fp8g(Kg, nm)) return 0;
	uint16_t t[64];
	const size_t ld = (size_t)G * Kg;
	for (int s = s0; s < s1; s++)
		for (size_t o = 0; o < ld; o += 64) {
			for (int j = 0; j < 64; j++) t[j] = kern_f32_to_bf16(x[s * ld + o + j]);
			chunk_order(xs + s * ld + o, t);
		}
	return 1;
}

/* Row of K E4M3 weights -> K bf16 words (decode order) at d; fetches the row at
 * `next` (the next group's, or NULL) into L2 meanwhile: the group's tiles then run
 * while it arrives, instead of the decode waiting for memory. */
V512_INLINE void dec_row(uint16_t *d, const uint8_t *w, const uint8_t *next, int K, __m512i tl0, __m512i tl1,
			 __m512i th0, __m512i th1)
{
	const __m512i sgn = _mm512_set1_epi8((char)0x80);
	for (int o = 0; o < K; o += 64) {
		if (next) _mm_prefetch((const char *)(next + o), _MM_HINT_T1);
		__m512i b = _mm512_loadu_si512((const void *)(w + o));
		__m512i lo = _mm512_permutex2var_epi8(tl0, b, tl1);
		__m512i hi = _mm512_permutex2var_epi8(th0, b, th1);
		hi = _mm512_ternarylogic_epi32(hi, b, sgn, 0xF8); /* hi | (b & 0x80) */
		_mm512_storeu_si512((void *)(d + o), _mm512_unpacklo_epi8(lo, hi));
		_mm512_storeu_si512((void *)(d + o + 32), _mm512_unpackhi_epi8(lo, hi));
	}
}

/* R decoded rows (stride K words) x T tokens: out[r*T + t], see the file comment.
 * sw [R][nb] weight scales, sat[t][b] activation scales (ldsa 0: all 1); shared:
 * the R rows lie in one 128-row block, so their scales are sw[0][b] (the same
 * products sa·sw either way). */
V512_INLINE void fp8_tile(float *out, const uint16_t *wt, const float *sw, const uint16_t *const *qt,
			  const float *const *sat, const int R, const int T, const int shared, int K)
{
	const int nb = K / 128;
	__m512 acc[16];
#pragma GCC unroll 16
	for (int i = 0; i < R * T; i++) acc[i] = _mm512_setzero_ps();
	for (int b = 0; b < nb; b++) {
		__m512 P[16];
#pragma GCC unroll 16
		for (int i = 0; i < R * T; i++) P[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
		for (int j = 0; j < 4; j++) {
			__m512i w[4];
#pragma GCC unroll 4
			for (int r = 0; r < R; r++) w[r] = _mm512_loadu_si512((const void *)(wt + (size_t)r * K + 128 * b + 32 * j));
#pragma GCC unroll 4
			for (int t = 0; t < T; t++) {
				__m512i q = _mm512_loadu_si512((const void *)(qt[t] + 128 * b + 32 * j));
#pragma GCC unroll 4
				for (int r = 0; r < R; r++)
					P[r * T + t] = _mm512_dpbf16_ps(P[r * T + t], (__m512bh)q, (__m512bh)w[r]);
			}
		}
		if (shared) { /* the rows' scales are equal: one product per token */
			const __m512 swv = _mm512_set1_ps(sw[b]);
#pragma GCC unroll 4
			for (int t = 0; t < T; t++) {
				const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(sat[t][b]), swv);
#pragma GCC unroll 4
				for (int r = 0; r < R; r++) acc[r * T + t] = _mm512_fmadd_ps(sc, P[r * T + t], acc[r * T + t]);
			}
		} else {
#pragma GCC unroll 4
			for (int r = 0; r < R; r++)
#pragma GCC unroll 4
				for (int t = 0; t < T; t++)
					acc[r * T + t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(sat[t][b]), _mm512_set1_ps(sw[r * nb + b])),
									 P[r * T + t], acc[r * T + t]);
		}
	}
#pragma GCC unroll 16
	for (int i = 0; i < R * T; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

#define FP8_R 4 /* weight rows decoded per group (the switch in fp8_run lists R <= 4) */
#define FP8_T 3 /* tokens per tile (T <= 3 listed): 4x3 measured best of 4x2 .. 4x4 */

/* The blocked driver: q rows of bf16 words (stride ldq words), sa [S][ldsa] (ldsa 0:
 * one shared row of ones), outputs y[s*ldy + n] for n in [n0, n1).
 * wb: [FP8_R][K] words of decoded rows, then [FP8_R][nb] scales, then nb ones. */
V512_INLINE void fp8_run(float *y, int ldy, const uint16_t *q, size_t ldq, const float *sa, int ldsa, int S,
			 const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nb = K / 128;
	const __m512i tl0 = _mm512_loadu_si512((const void *)g_e4m3_lo), tl1 = _mm512_loadu_si512((const void *)(g_e4m3_lo + 64));
	const __m512i th0 = _mm512_loadu_si512((const void *)g_e4m3_hi), th1 = _mm512_loadu_si512((const void *)(g_e4m3_hi + 64));
	uint16_t *wt = (uint16_t *)wb;
	float *sw = wb + (size_t)FP8_R * K / 2;
	/* tokens in blocks of about 384 KiB of activations, so that a block stays in L2
	 * while every row group of the range runs over it */
	int SB = (int)((384u << 10) / ((size_t)K * 2)) / FP8_T * FP8_T;
	if (SB < FP8_T) SB = FP8_T;
	for (int sb = 0; sb < S; sb += SB) {
		const int se = sb + SB < S ? sb + SB : S;
		for (int n = n0; n < n1; n += FP8_R) {
			const int R = n1 - n < FP8_R ? n1 - n : FP8_R, shared = n / 128 == (n + R - 1) / 128;
			for (int r = 0; r < R; r++) {
				const uint8_t *nx = n + FP8_R + r < n1 ? W->w + (size_t)(n + FP8_R + r) * K : NULL;
				dec_row(wt + (size_t)r * K, W->w + (size_t)(n + r) * K, nx, K, tl0, tl1, th0, th1);
				const uint8_t *sr = W->s + (size_t)((n + r) / 128) * nb;
				for (int b = 0; b < nb; b++) sw[r * nb + b] = e8m0(sr[b]);
			}
			for (int s0 = sb; s0 < se; s0 += FP8_T) {
				const int T = se - s0 < FP8_T ? se - s0 : FP8_T;
				const uint16_t *qt[FP8_T];
				const float *st[FP8_T];
				float out[FP8_R * FP8_T];
				for (int t = 0; t < T; t++) {
					qt[t] = q + (size_t)(s0 + t) * ldq;
					st[t] = sa + (size_t)(s0 + t) * ldsa;
				}
				switch (R * 8 + T) {
#define FP8_CASE(R_, T_) \
	case R_ * 8 + T_: \
		if (shared) fp8_tile(out, wt, sw, qt, st, R_, T_, 1, K); \
		else fp8_tile(out, wt, sw, qt, st, R_, T_, 0, K); \
		break;
					/* R <= FP8_R = 4, T <= FP8_T = 3 */
					FP8_CASE(1, 1) FP8_CASE(1, 2) FP8_CASE(1, 3)
					FP8_CASE(2, 1) FP8_CASE(2, 2) FP8_CASE(2, 3)
					FP8_CASE(3, 1) FP8_CASE(3, 2) FP8_CASE(3, 3)
					FP8_CASE(4, 1) FP8_CASE(4, 2) FP8_CASE(4, 3)
#undef FP8_CASE
				}
				for (int r = 0; r < R; r++)
					for (int t = 0; t < T; t++) y[(size_t)(s0 + t) * ldy + n + r] = cpu_rnd(out[r * T + t], nm);
			}
		}
	}
}

V512 void cpu_fp8_avx512(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
			 const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm)
{
	if (!use_fp8(W->k, nm)) {
		cpu_isa_avx2.fp8(y, ldy, q, ldq, sa, ldsa, S, W, n0, n1, wb, nm);
		return;
	}
	/* rows of bf16 words: ldq floats = 2·ldq words */
	fp8_run(y, ldy, (const uint16_t *)q, 2 * (size_t)ldq, sa, ldsa, S, W, n0, n1, wb, nm);
}

/* x: the words cpu_fp8g_layout_avx512 wrote when it returned 1, else the f32 rows */
V512 void cpu_fp8g_avx512(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0, int n1,
			  float *wb, unsigned nm)
{
	const int Kg = W->k, R = W->n / G, nb = Kg / 128;
	if (!use_fp8g(Kg, nm)) {
		cpu_isa_avx2.fp8g(y, x, W, G, S, n0, n1, wb, nm);
		return;
	}
	float *ones = wb + (size_t)FP8_R * Kg / 2 + (size_t)FP8_R * nb;
	for (int b = 0; b < nb; b++) ones[b] = 1.0f;
	const uint16_t *xs = (const uint16_t *)x;
	for (int g = n0 / R; g * R < n1; g++) {
		int a = g * R > n0 ? g * R : n0, e = (g + 1) * R < n1 ? (g + 1) * R : n1;
		fp8_run(y, G * R, xs + (size_t)g * Kg, (size_t)G * Kg, ones, 0, S, W, a, e, wb, nm);
	}
}

int cpu_have_avx512vbmi(void)
{
	__builtin_cpu_init();
	return cpu_have_avx512bf16() && __builtin_cpu_supports("avx512vbmi");
}

#else
void cpu_fp8_layout_avx512(float *q, int K, unsigned nm) { (void)q; (void)K; (void)nm; }
int cpu_fp8g_layout_avx512(uint16_t *xs, const float *x, int Kg, int G, int s0, int s1, unsigned nm)
{
	(void)xs; (void)x; (void)Kg; (void)G; (void)s0; (void)s1; (void)nm;
	return 0;
}
void cpu_fp8_avx512(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
		    const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm)
{
	cpu_isa_avx2.fp8(y, ldy, q, ldq, sa, ldsa, S, W, n0, n1, wb, nm);
}
void cpu_fp8g_avx512(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0, int n1,
		     float *wb, unsigned nm)
{
	cpu_isa_avx2.fp8g(y, x, W, G, S, n0, n1, wb, nm);
}
int cpu_have_avx512vbmi(void) { return 0; }
#endif
