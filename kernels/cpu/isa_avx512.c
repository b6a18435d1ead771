/* kernels/cpu/isa_avx512.c - FP4 GEMM with AVX-512 BF16 (see isa.h).
 *
 * With activation quantisation (QNT) every activation code is an E4M3 value and
 * every weight an E2M1 value, both exact in bf16, and their products exact in f32;
 * VDPBF16PS then forms sums of pairs of exact products in f32 - the same kind of
 * arithmetic as the FMA loops, in another order (free by MODEL.md §7.5).  Rows of K
 * with K % 128 == 0 are processed in groups of 4 blocks (64 weight bytes, one block
 * per 128-bit lane):
 *   nibbles -> two pshufb tables (low / high byte of the bf16 value) -> byte
 *   unpacks -> 4 vectors of 32 bf16 weights whose lane b holds block c+b at the
 *   inputs listed in g_k512 (words 2d, 2d+1 of a dword are one VDPBF16PS pair);
 *   the activation row is stored as bf16 words in the same order, each group's 128
 *   words in the first half of its own 128 floats (layout below);
 *   P = (dp(Q0,V0) then dp(Q1,V1)) + (dp(Q2,V2) then dp(Q3,V3)): lane b's four
 *   dwords are partial sums of block c+b;  acc += [sc_c x4 | .. | sc_c+3 x4] · P.
 * Without QNT (activations not bf16 values) or for other K, the AVX2 loops run. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "isa.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && \
	(__GNUC__ >= 10 || (defined(__clang__) && __clang_major__ >= 11))

#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma")))

static int use512(int K, unsigned nm) { return (nm & KERN_QNT) && K % 128 == 0; }

/* inputs k of block c+b held by word j of lane b in weight vector v */
static inline int k512(int v, int j) { return (v & 1 ? 16 : 0) + (v >= 2) + 2 * j; }

void cpu_fp4_layout_avx512(float *q, int len, int K, float *tmp, unsigned nm)
{
	if (!use512(K, nm)) {
		cpu_fp4_layout_avx2(q, len, K, tmp, nm);
		return;
	}
	/* group of 128 inputs (floats [o, o + 128)) -> 128 bf16 words [v][b][j] stored in
	 * the group's own first 64 floats: pieces handled by different threads never
	 * touch each other's bytes */
	uint16_t *t = (uint16_t *)tmp;
	for (int o = 0; o < len; o += 128) {
		for (int v = 0; v < 4; v++)
			for (int b = 0; b < 4; b++)
				for (int j = 0; j < 8; j++)
					t[32 * v + 8 * b + j] = kern_f32_to_bf16(q[o + 32 * b + k512(v, j)]);
		memcpy(q + o, t, 128 * sizeof(uint16_t));
	}
}

#define FP4_BF16_LO 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0
#define FP4_BF16_HI 0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0

AVX512_INLINE void dec4(const uint8_t *p, __m512i *v)
{
	const __m512i m = _mm512_set1_epi8(0x0F);
	const __m512i tlo = _mm512_broadcast_i32x4(_mm_setr_epi8((char)FP4_BF16_LO));
	const __m512i thi = _mm512_broadcast_i32x4(_mm_setr_epi8((char)FP4_BF16_HI));
	__m512i b = _mm512_loadu_si512((const void *)p);
	__m512i ln = _mm512_and_si512(b, m), hn = _mm512_and_si512(_mm512_srli_epi16(b, 4), m);
	__m512i a = _mm512_shuffle_epi8(tlo, ln), h = _mm512_shuffle_epi8(thi, ln);
	v[0] = _mm512_unpacklo_epi8(a, h);
	v[1] = _mm512_unpackhi_epi8(a, h);
	a = _mm512_shuffle_epi8(tlo, hn);
	h = _mm512_shuffle_epi8(thi, hn);
	v[2] = _mm512_unpacklo_epi8(a, h);
	v[3] = _mm512_unpackhi_epi8(a, h);
}

/* E8M0 x16 -> f32: b << 23, 0 -> 2^-127, 0xFF -> NaN */
AVX512_INLINE __m512 e8m0x16(const uint8_t *p)
{
	__m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
	__m512i f = _mm512_slli_epi32(e, 23);
	f = _mm512_mask_mov_epi32(f, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000));
	f = _mm512_mask_mov_epi32(f, _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(0xFF)), _mm512_set1_epi32(0x7FC00000));
	return _mm512_castsi512_ps(f);
}

static inline float e8m0(uint8_t b)
{
	uint32_t u = b == 0 ? 0x00400000u : b == 0xFF ? 0x7FC00000u : (uint32_t)b << 23;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

AVX512_INLINE __m512 grp_dot(const uint16_t *qg, const __m512i *v)
{
	const __m512 z = _mm512_setzero_ps();
	__m512 a = _mm512_dpbf16_ps(z, (__m512bh)_mm512_loadu_si512((const void *)qg), (__m512bh)v[0]);
	__m512 b = _mm512_dpbf16_ps(z, (__m512bh)_mm512_loadu_si512((const void *)(qg + 64)), (__m512bh)v[2]);
	a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512((const void *)(qg + 32)), (__m512bh)v[1]);
	b = _mm512_dpbf16_ps(b, (__m512bh)_mm512_loadu_si512((const void *)(qg + 96)), (__m512bh)v[3]);
	return _mm512_add_ps(a, b);
}

#define FP4_PF512 1024 /* bytes of weights fetched ahead (0, 1, 2, 4 KiB and L2 hints measured) */

/* One weight row against T tokens: out[t] = Σ_g [sc x4 ..]·P_g, reduced once. */
AVX512_INLINE void tile512(float *out, const uint8_t *wr, const uint8_t *sr, const uint16_t *const *qt,
			   const float *const *sat, int T, int nc)
{
	__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
	__m512i v[4];
	const __m512i rep = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
	int c = 0;
	for (; c + 16 <= nc; c += 16) {
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF512), _MM_HINT_T0);
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF512 + 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF512 + 128), _MM_HINT_T0);
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF512 + 192), _MM_HINT_T0);
		/* scales of blocks c..c+15: e8m0 · sa[(c + j)/4] */
		__m512 e16 = e8m0x16(sr + c), s16[4];
		for (int t = 0; t < T; t++)
			s16[t] = _mm512_mul_ps(e16, _mm512_permutexvar_ps(rep, _mm512_castps128_ps512(
								   _mm_loadu_ps(sat[t] + c / 4))));
#pragma GCC unroll 4
		for (int g = 0; g < 4; g++) {
			const __m512i ix = _mm512_add_epi32(rep, _mm512_set1_epi32(4 * g));
			dec4(wr + 16 * (c + 4 * g), v);
			for (int t = 0; t < T; t++) {
				__m512 P = grp_dot(qt[t] + 64 * (c + 4 * g), v);
				acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(ix, s16[t]), P, acc[t]);
			}
		}
	}
	for (; c + 4 <= nc; c += 4) {
		dec4(wr + 16 * c, v);
		float e[4];
		for (int j = 0; j < 4; j++) e[j] = e8m0(sr[c + j]);
		for (int t = 0; t < T; t++) {
			float sc = sat[t][c / 4];
			__m512 s4 = _mm512_castps128_ps512(_mm_setr_ps(e[0] * sc, e[1] * sc, e[2] * sc, e[3] * sc));
			__m512 P = grp_dot(qt[t] + 64 * c, v);
			acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(rep, s4), P, acc[t]);
		}
	}
	for (int t = 0; t < T; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/* Prefill (S > 1): R weight rows decoded once (dec4 order, 128 words per group,
 * and the blocks' E8M0 scales as f32, 4 lanes per block: the s16 lanes tile512
 * multiplies by sa) and applied to tiles of T tokens.  Per output the operations
 * are tile512's - for each group ascending acc = fma(e·sa, grp_dot, acc), then
 * reduce_add - so every row is bitwise what a call with S = 1 gives.
 * wt [R][K] words, E [R][K/8] floats. */
AVX512_INLINE void tile512b(float *out, const uint16_t *wt, const float *E, const uint16_t *const *qt,
			    const float *const *sat, const int R, const int T, int K)
{
	const int ng = K / 128;
	__m512 acc[16];
#pragma GCC unroll 16
	for (int i = 0; i < R * T; i++) acc[i] = _mm512_setzero_ps();
	for (int g = 0; g < ng; g++) {
		/* each weight vector and each activation vector loaded once per group */
		__m512i v[4][4];
		__m512 e[4];
#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const uint16_t *wg = wt + (size_t)r * K + 128 * g;
			for (int i = 0; i < 4; i++) v[r][i] = _mm512_loadu_si512((const void *)(wg + 32 * i));
			e[r] = _mm512_loadu_ps(E + (size_t)r * (K / 8) + 16 * g);
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			const __m512 sv = _mm512_set1_ps(sat[t][g]);
			const uint16_t *qg = qt[t] + 256 * g;
			const __m512i q0 = _mm512_loadu_si512((const void *)qg), q1 = _mm512_loadu_si512((const void *)(qg + 32));
			const __m512i q2 = _mm512_loadu_si512((const void *)(qg + 64)), q3 = _mm512_loadu_si512((const void *)(qg + 96));
#pragma GCC unroll 4
			for (int r = 0; r < R; r++) {
				/* grp_dot's operations, in its order */
				const __m512 z = _mm512_setzero_ps();
				__m512 a = _mm512_dpbf16_ps(z, (__m512bh)q0, (__m512bh)v[r][0]);
				__m512 b = _mm512_dpbf16_ps(z, (__m512bh)q2, (__m512bh)v[r][2]);
				a = _mm512_dpbf16_ps(a, (__m512bh)q1, (__m512bh)v[r][1]);
				b = _mm512_dpbf16_ps(b, (__m512bh)q3, (__m512bh)v[r][3]);
				acc[r * T + t] = _mm512_fmadd_ps(_mm512_mul_ps(e[r], sv), _mm512_add_ps(a, b), acc[r * T + t]);
			}
		}
	}
#pragma GCC unroll 16
	for (int i = 0; i < R * T; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

#define FP4_R 4 /* weight rows decoded per group (prefill; the switch lists R <= 4) */
#define FP4_T 2 /* tokens per tile (T <= 2 listed): 4x2 measured best of 2x3 .. 4x4 */

AVX512 void cpu_fp4_avx512(float *y, int ldy, const float *q, const float *sa, int S,
			   const struct kern_fp4w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nc = K / 32, nb = (K + 127) / 128;
	if (!use512(K, nm)) {
		cpu_fp4_avx2(y, ldy, q, sa, S, W, n0, n1, wb, nm);
		return;
	}
	if (S == 1) { /* decode: weights straight from memory, decoded in registers */
		const uint16_t *qt = (const uint16_t *)q;
		for (int n = n0; n < n1; n++) {
			const uint8_t *wr = W->w + (size_t)n * (K / 2), *sr = W->s + (size_t)n * nc;
			float out;
			tile512(&out, wr, sr, &qt, &sa, 1, nc);
			y[n] = cpu_rnd(out, nm);
		}
		return;
	}
	uint16_t *wt = (uint16_t *)wb;               /* [FP4_R][K] decoded rows */
	float *E = wb + (size_t)FP4_R * K / 2;       /* [FP4_R][K/8] block scales */
	/* tokens in blocks of about 384 KiB of activation words (L2) */
	int SB = (int)((384u << 10) / ((size_t)K * 2)) / FP4_T * FP4_T;
	if (SB < FP4_T) SB = FP4_T;
	for (int sb = 0; sb < S; sb += SB) {
		const int se = sb + SB < S ? sb + SB : S;
		for (int n = n0; n < n1; n += FP4_R) {
			const int R = n1 - n < FP4_R ? n1 - n : FP4_R;
			for (int r = 0; r < R; r++) {
				const uint8_t *wr = W->w + (size_t)(n + r) * (K / 2), *sr = W->s + (size_t)(n + r) * nc;
				__m512i v[4];
				/* the next group's row into L2 meanwhile (see isa_avx512_fp8.c dec_row) */
				const uint8_t *nx = n + FP4_R + r < n1 ? W->w + (size_t)(n + FP4_R + r) * (K / 2) : NULL;
				for (int c = 0; c < nc; c += 4) {
					if (nx) _mm_prefetch((const char *)(nx + 16 * c), _MM_HINT_T1);
					dec4(wr + 16 * c, v);
					for (int i = 0; i < 4; i++)
						_mm512_storeu_si512((void *)(wt + (size_t)r * K + 32 * c + 32 * i), v[i]);
				}
				float *Er = E + (size_t)r * (K / 8);
				const __m512i rep = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
				int c = 0;
				for (; c + 16 <= nc; c += 16) {
					__m512 e16 = e8m0x16(sr + c);
					for (int g = 0; g < 4; g++)
						_mm512_storeu_ps(Er + 4 * (c + 4 * g),
								 _mm512_permutexvar_ps(_mm512_add_epi32(rep, _mm512_set1_epi32(4 * g)), e16));
				}
				for (; c < nc; c++) {
					float e = e8m0(sr[c]);
					for (int j = 0; j < 4; j++) Er[4 * c + j] = e;
				}
			}
			for (int s0 = sb; s0 < se; s0 += FP4_T) {
				const int T = se - s0 < FP4_T ? se - s0 : FP4_T;
				const uint16_t *qt[FP4_T];
				const float *st[FP4_T];
				float out[FP4_R * FP4_T];
				for (int t = 0; t < T; t++) {
					qt[t] = (const uint16_t *)(q + (size_t)(s0 + t) * K);
					st[t] = sa + (size_t)(s0 + t) * nb;
				}
				switch (R * 8 + T) {
#define FP4_CASE(R_, T_) \
	case R_ * 8 + T_: tile512b(out, wt, E, qt, st, R_, T_, K); break;
					/* R <= FP4_R = 4, T <= FP4_T = 2 */
					FP4_CASE(1, 1) FP4_CASE(1, 2)
					FP4_CASE(2, 1) FP4_CASE(2, 2)
					FP4_CASE(3, 1) FP4_CASE(3, 2)
					FP4_CASE(4, 1) FP4_CASE(4, 2)
#undef FP4_CASE
				}
				for (int r = 0; r < R; r++)
					for (int t = 0; t < T; t++) y[(size_t)(s0 + t) * ldy + n + r] = cpu_rnd(out[r * T + t], nm);
			}
		}
	}
}

int cpu_have_avx512bf16(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx2") &&
	       __builtin_cpu_supports("fma");
}

#else
void cpu_fp4_avx512(float *y, int ldy, const float *q, const float *sa, int S, const struct kern_fp4w *W,
		    int n0, int n1, float *wb, unsigned nm)
{
	cpu_fp4_avx2(y, ldy, q, sa, S, W, n0, n1, wb, nm);
}
void cpu_fp4_layout_avx512(float *q, int len, int K, float *tmp, unsigned nm)
{
	cpu_fp4_layout_avx2(q, len, K, tmp, nm);
}
int cpu_have_avx512bf16(void) { return 0; }
#endif
