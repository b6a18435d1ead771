/* kernels/cpu/isa_avx2.c - AVX2 + FMA inner loops (see isa.h).  Every function is
 * compiled with a target attribute, so the file builds for baseline x86-64 and the
 * table is only used after __builtin_cpu_supports("avx2") && ("fma").
 *
 * Fixed arithmetic per output (what makes results independent of S, ranges and
 * threads): a weight block's partial sum P is an 8-lane vector built by a chain of
 * FMAs in vector order (the first a plain product), block sums are folded into an
 * 8-lane accumulator with one FMA by the block's scale, and the accumulator is
 * reduced by hsum8.  Token tiles (1 or 4 tokens per pass over a weight row) run the
 * same chain per token. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "isa.h"

#if defined(__x86_64__) || defined(__i386__)

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

AVX2_INLINE float hsum8(__m256 v)
{
	__m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	a = _mm_add_ps(a, _mm_movehl_ps(a, a));
	a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
	return _mm_cvtss_f32(a);
}

/* lanes < rem set (rem 1..7) */
AVX2_INLINE __m256i tail_mask(int rem)
{
	const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), idx);
}

/* ---- FP8 (E4M3) ---- */

/* 8 E4M3 bytes -> exact f32: sign-extended byte shifted so that the 4 exponent and
 * 3 mantissa bits land in the f32 fields (the sign extension provides bit 31), then
 * scaled by 2^(127-7); subnormal codes come out right through the f32 subnormals. */
AVX2_INLINE __m256 e4m3x8(const uint8_t *p)
{
	__m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
	v = _mm256_and_si256(_mm256_slli_epi32(v, 20), _mm256_set1_epi32((int)0x87F00000u));
	return _mm256_mul_ps(_mm256_castsi256_ps(v), _mm256_set1_ps(0x1p120f));
}

/* Row of K E4M3 weights -> wb[0 .. 8*ceil(K/8)), zero padded. */
AVX2_INLINE void fp8_row(float *wb, const uint8_t *wr, int K)
{
	int i = 0;
	for (; i + 8 <= K; i += 8) _mm256_storeu_ps(wb + i, e4m3x8(wr + i));
	if (i < K) {
		uint8_t t[8] = { 0 };
		memcpy(t, wr + i, (size_t)(K - i));
		_mm256_storeu_ps(wb + i, e4m3x8(t));
	}
}

/* E8M0 as f32: b << 23, except 0 -> 2^-127 (subnormal) and 0xFF -> NaN (the values
 * of kern_e8m0_to_f32 without a libm call). */
static inline float e8m0(uint8_t b)
{
	uint32_t u = b == 0 ? 0x00400000u : b == 0xFF ? 0x7FC00000u : (uint32_t)b << 23;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* R rows (1..2) x T tokens (1..4): out[r*T + t] = Σ_b sa_t[b]·sw_r[b]·P_b with
 * P_b = (chain over the block's even vectors) + (chain over its odd vectors); the
 * last vector of a row with K % 8 != 0 is zero padded.  Weights come decoded from
 * the row buffers wb[r] or, when fused, straight from the E4M3 bytes - the same
 * values, so every path gives every output the same operations. */
AVX2_INLINE void fp8_core(float *out, const float *const *wb, const uint8_t *const *wr, int fused,
			  const float *const *qt, const float *const *sat, const float *const *sw, int R, int T,
			  int K)
{
	const int nv = K / 8, rem = K % 8, nb = (K + 127) / 128;
	const __m256i tm = tail_mask(rem ? rem : 1);
	__m256 acc[8], P0[8], P1[8], w[2];
	for (int i = 0; i < R * T; i++) acc[i] = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		int v0 = b * 16, v1 = v0 + 16 < nv ? v0 + 16 : nv, v = v0;
		for (int i = 0; i < R * T; i++) P0[i] = P1[i] = _mm256_setzero_ps();
		for (; v + 2 <= v1; v += 2) {
			for (int r = 0; r < R; r++)
				w[r] = fused ? e4m3x8(wr[r] + 8 * v) : _mm256_loadu_ps(wb[r] + 8 * v);
			for (int r = 0; r < R; r++)
				for (int t = 0; t < T; t++)
					P0[r * T + t] = _mm256_fmadd_ps(_mm256_loadu_ps(qt[t] + 8 * v), w[r], P0[r * T + t]);
			for (int r = 0; r < R; r++)
				w[r] = fused ? e4m3x8(wr[r] + 8 * v + 8) : _mm256_loadu_ps(wb[r] + 8 * v + 8);
			for (int r = 0; r < R; r++)
				for (int t = 0; t < T; t++)
					P1[r * T + t] = _mm256_fmadd_ps(_mm256_loadu_ps(qt[t] + 8 * v + 8), w[r], P1[r * T + t]);
		}
		if (v < v1) { /* odd count: v - v0 is even */
			for (int r = 0; r < R; r++)
				w[r] = fused ? e4m3x8(wr[r] + 8 * v) : _mm256_loadu_ps(wb[r] + 8 * v);
			for (int r = 0; r < R; r++)
				for (int t = 0; t < T; t++)
					P0[r * T + t] = _mm256_fmadd_ps(_mm256_loadu_ps(qt[t] + 8 * v), w[r], P0[r * T + t]);
		}
		if (rem && b == nb - 1) {
			int odd = (nv - v0) & 1;
			for (int r = 0; r < R; r++) {
				if (fused) {
					uint8_t t8[8] = { 0 };
					memcpy(t8, wr[r] + 8 * nv, (size_t)rem);
					w[r] = e4m3x8(t8);
				} else {
					w[r] = _mm256_loadu_ps(wb[r] + 8 * nv);
				}
			}
			for (int r = 0; r < R; r++)
				for (int t = 0; t < T; t++) {
					__m256 qv = _mm256_maskload_ps(qt[t] + 8 * nv, tm);
					if (odd) P1[r * T + t] = _mm256_fmadd_ps(qv, w[r], P1[r * T + t]);
					else P0[r * T + t] = _mm256_fmadd_ps(qv, w[r], P0[r * T + t]);
				}
		}
		for (int r = 0; r < R; r++)
			for (int t = 0; t < T; t++)
				acc[r * T + t] = _mm256_fmadd_ps(_mm256_set1_ps(sat[t][b] * sw[r][b]),
								 _mm256_add_ps(P0[r * T + t], P1[r * T + t]), acc[r * T + t]);
	}
	for (int i = 0; i < R * T; i++) out[i] = hsum8(acc[i]);
}

static AVX2 void fp8_avx2(float *y, int ldy, const float *q, int ldq, const float *sa, int ldsa, int S,
			  const struct kern_fp8w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nb = (K + 127) / 128, kb = (K + 127) / 128;
	/* wb: two decoded rows [K + 8] each, then their block scales [nb] each */
	float *rowb[2] = { wb, wb + K + 8 };
	float *swb[2] = { wb + 2 * (K + 8), wb + 2 * (K + 8) + nb };
	for (int n = n0; n < n1; n += 2) {
		const int R = n1 - n < 2 ? n1 - n : 2;
		const uint8_t *wr[2];
		const float *wbc[2] = { rowb[0], rowb[1] }, *swc[2] = { swb[0], swb[1] };
		for (int r = 0; r < R; r++) {
			wr[r] = W->w + (size_t)(n + r) * K;
			const uint8_t *sr = W->s + (size_t)((n + r) / 128) * kb;
			for (int b = 0; b < nb; b++) swb[r][b] = e8m0(sr[b]);
			if (S >= 4) fp8_row(rowb[r], wr[r], K); /* decoded once for the token tiles */
		}
		int s0 = 0;
		for (; s0 + 4 <= S; s0 += 4) {
			const float *qt[4], *st[4];
			float out[4];
			for (int t = 0; t < 4; t++) {
				qt[t] = q + (size_t)(s0 + t) * ldq;
				st[t] = sa + (size_t)(s0 + t) * ldsa;
			}
			for (int r = 0; r < R; r++) {
				fp8_core(out, wbc + r, wr + r, 0, qt, st, swc + r, 1, 4, K);
				for (int t = 0; t < 4; t++) y[(size_t)(s0 + t) * ldy + n + r] = cpu_rnd(out[t], nm);
			}
		}
		for (; s0 < S; s0++) { /* single tokens (decode): two rows at a time, fused decode */
			const float *qt = q + (size_t)s0 * ldq, *st = sa + (size_t)s0 * ldsa;
			float out[2];
			if (R == 2) fp8_core(out, wbc, wr, 1, &qt, &st, swc, 2, 1, K);
			else fp8_core(out, wbc, wr, 1, &qt, &st, swc, 1, 1, K);
			for (int r = 0; r < R; r++) y[(size_t)s0 * ldy + n + r] = cpu_rnd(out[r], nm);
		}
	}
}

static AVX2 void fp8g_avx2(float *y, const float *x, const struct kern_fp8w *W, int G, int S, int n0,
			   int n1, float *wb, unsigned nm)
{
	/* the weight's block scale multiplies the block's partial sum (exact powers of
	 * two), activations unquantised: the FP8 kernel with unit activation scales */
	const int Kg = W->k, R = W->n / G, nb = (Kg + 127) / 128;
	float *ones = wb + 2 * (Kg + 8) + 2 * nb; /* after fp8_avx2's rows and scales */
	for (int b = 0; b < nb; b++) ones[b] = 1.0f;
	for (int g = n0 / R; g * R < n1; g++) {
		int a = g * R > n0 ? g * R : n0, e = (g + 1) * R < n1 ? (g + 1) * R : n1;
		fp8_avx2(y, G * R, x + (size_t)g * Kg, G * Kg, ones, 0, S, W, a, e, wb, nm);
	}
}

/* ---- FP4 (E2M1) ---- */

/* Decode.  Blocks are taken in pairs (32 weight bytes, one per 128-bit lane).  Two
 * pshufb tables give the low and high byte of each nibble's bf16 value (E2M1 values
 * are exact in bf16), byte unpacks make bf16 words, and a 16-bit shift (even words)
 * or a mask (odd words) makes f32 of them: 8 vectors per pair whose lanes 0-3 hold block c and lanes 4-7 block c+1, at
 * the inputs k listed in g_fp4_k (the activation rows are stored in that order by
 * fp4_layout_avx2).  A pair's partial-sum vector P thus holds both blocks' sums in
 * its two halves and is scaled by [sc_c x4 | sc_c+1 x4].  A last unpaired block
 * runs the same steps on 128-bit vectors. */
static const unsigned char g_fp4_k[8][4] = {
	{ 0, 4, 8, 12 }, { 2, 6, 10, 14 }, { 16, 20, 24, 28 }, { 18, 22, 26, 30 },
	{ 1, 5, 9, 13 }, { 3, 7, 11, 15 }, { 17, 21, 25, 29 }, { 19, 23, 27, 31 },
};

void cpu_fp4_layout_avx2(float *q, int len, int K, float *tmp, unsigned nm)
{
	(void)nm;
	(void)K;
	const int nc = len / 32;
	int c = 0;
	for (; c + 2 <= nc; c += 2) {
		const float *A = q + 32 * c, *B = A + 32;
		for (int v = 0; v < 8; v++)
			for (int j = 0; j < 4; j++) {
				tmp[8 * v + j] = A[g_fp4_k[v][j]];
				tmp[8 * v + 4 + j] = B[g_fp4_k[v][j]];
			}
		memcpy(q + 32 * c, tmp, 64 * sizeof(float));
	}
	if (c < nc) {
		const float *A = q + 32 * c;
		for (int v = 0; v < 8; v++)
			for (int j = 0; j < 4; j++) tmp[4 * v + j] = A[g_fp4_k[v][j]];
		memcpy(q + 32 * c, tmp, 32 * sizeof(float));
	}
}

#define FP4_BF16_LO 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0
#define FP4_BF16_HI 0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0

AVX2_INLINE void fp4_dec_pair(const uint8_t *p, __m256 *w)
{
	const __m256i m = _mm256_set1_epi8(0x0F), hm = _mm256_set1_epi32((int)0xFFFF0000u);
	const __m256i tlo = _mm256_setr_epi8((char)FP4_BF16_LO, (char)FP4_BF16_LO);
	const __m256i thi = _mm256_setr_epi8((char)FP4_BF16_HI, (char)FP4_BF16_HI);
	__m256i b = _mm256_loadu_si256((const __m256i *)p);
	__m256i ln = _mm256_and_si256(b, m), hn = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
	__m256i a = _mm256_shuffle_epi8(tlo, ln), bh = _mm256_shuffle_epi8(thi, ln);
	__m256i wl0 = _mm256_unpacklo_epi8(a, bh), wl1 = _mm256_unpackhi_epi8(a, bh);
	a = _mm256_shuffle_epi8(tlo, hn);
	bh = _mm256_shuffle_epi8(thi, hn);
	__m256i wh0 = _mm256_unpacklo_epi8(a, bh), wh1 = _mm256_unpackhi_epi8(a, bh);
	w[0] = _mm256_castsi256_ps(_mm256_slli_epi32(wl0, 16));
	w[1] = _mm256_castsi256_ps(_mm256_and_si256(wl0, hm));
	w[2] = _mm256_castsi256_ps(_mm256_slli_epi32(wl1, 16));
	w[3] = _mm256_castsi256_ps(_mm256_and_si256(wl1, hm));
	w[4] = _mm256_castsi256_ps(_mm256_slli_epi32(wh0, 16));
	w[5] = _mm256_castsi256_ps(_mm256_and_si256(wh0, hm));
	w[6] = _mm256_castsi256_ps(_mm256_slli_epi32(wh1, 16));
	w[7] = _mm256_castsi256_ps(_mm256_and_si256(wh1, hm));
}

AVX2_INLINE void fp4_dec_one(const uint8_t *p, __m128 *w)
{
	const __m128i m = _mm_set1_epi8(0x0F), hm = _mm_set1_epi32((int)0xFFFF0000u);
	const __m128i tlo = _mm_setr_epi8((char)FP4_BF16_LO), thi = _mm_setr_epi8((char)FP4_BF16_HI);
	__m128i b = _mm_loadu_si128((const __m128i *)p);
	__m128i ln = _mm_and_si128(b, m), hn = _mm_and_si128(_mm_srli_epi16(b, 4), m);
	__m128i a = _mm_shuffle_epi8(tlo, ln), bh = _mm_shuffle_epi8(thi, ln);
	__m128i wl0 = _mm_unpacklo_epi8(a, bh), wl1 = _mm_unpackhi_epi8(a, bh);
	a = _mm_shuffle_epi8(tlo, hn);
	bh = _mm_shuffle_epi8(thi, hn);
	__m128i wh0 = _mm_unpacklo_epi8(a, bh), wh1 = _mm_unpackhi_epi8(a, bh);
	w[0] = _mm_castsi128_ps(_mm_slli_epi32(wl0, 16));
	w[1] = _mm_castsi128_ps(_mm_and_si128(wl0, hm));
	w[2] = _mm_castsi128_ps(_mm_slli_epi32(wl1, 16));
	w[3] = _mm_castsi128_ps(_mm_and_si128(wl1, hm));
	w[4] = _mm_castsi128_ps(_mm_slli_epi32(wh0, 16));
	w[5] = _mm_castsi128_ps(_mm_and_si128(wh0, hm));
	w[6] = _mm_castsi128_ps(_mm_slli_epi32(wh1, 16));
	w[7] = _mm_castsi128_ps(_mm_and_si128(wh1, hm));
}

AVX2_INLINE __m256 e8m0x8(const uint8_t *p)
{
	__m256i e = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
	__m256i f = _mm256_slli_epi32(e, 23);
	f = _mm256_blendv_epi8(f, _mm256_set1_epi32(0x00400000), _mm256_cmpeq_epi32(e, _mm256_setzero_si256()));
	f = _mm256_blendv_epi8(f, _mm256_set1_epi32(0x7FC00000), _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0xFF)));
	return _mm256_castsi256_ps(f);
}

/* P = Σ_v q[8v..8v+8)·w[v], the chain every path uses for a pair */
AVX2_INLINE __m256 fp4_pair_dot(const float *qp, const __m256 *w)
{
	/* two chains (even / odd vectors): one chain of 8 was bound by the FMA latency */
	__m256 P0 = _mm256_mul_ps(_mm256_loadu_ps(qp), w[0]);
	__m256 P1 = _mm256_mul_ps(_mm256_loadu_ps(qp + 8), w[1]);
	for (int v = 2; v < 8; v += 2) {
		P0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp + 8 * v), w[v], P0);
		P1 = _mm256_fmadd_ps(_mm256_loadu_ps(qp + 8 * v + 8), w[v + 1], P1);
	}
	return _mm256_add_ps(P0, P1);
}

#define FP4_PF 1024 /* bytes of weights fetched ahead (best of 0, 1, 2, 4 KiB measured) */

/* One weight row against T tokens (1..4): out[t] = Σ_c sa_t[c/4]·sw[c]·P_c. */
AVX2_INLINE void fp4_tile(float *out, const uint8_t *wr, const uint8_t *sr, const float *const *qt,
			  const float *const *sat, int T, int nc)
{
	__m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
	__m256 w[8];
	int c = 0;
	for (; c + 8 <= nc; c += 8) {
		/* the rows of a range are contiguous: fetch ahead across row ends, which the
		 * hardware prefetcher (stopping at 4 KiB pages) does not do far enough */
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF), _MM_HINT_T0);
		_mm_prefetch((const char *)(wr + 16 * c + FP4_PF + 64), _MM_HINT_T0);
		/* scales of blocks c..c+7 per token: e8m0 · [sa[c/4] x4 | sa[c/4+1] x4] */
		__m256 e8 = e8m0x8(sr + c), s8[4];
		for (int t = 0; t < T; t++)
			s8[t] = _mm256_mul_ps(e8, _mm256_set_m128(_mm_broadcast_ss(sat[t] + c / 4 + 1),
								  _mm_broadcast_ss(sat[t] + c / 4)));
#pragma GCC unroll 4
		for (int pp = 0; pp < 4; pp++) {
			const __m256i ix = _mm256_setr_epi32(2 * pp, 2 * pp, 2 * pp, 2 * pp, 2 * pp + 1, 2 * pp + 1,
							     2 * pp + 1, 2 * pp + 1);
			fp4_dec_pair(wr + 16 * (c + 2 * pp), w);
			for (int t = 0; t < T; t++) {
				__m256 P = fp4_pair_dot(qt[t] + 32 * (c + 2 * pp), w);
				acc[t] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s8[t], ix), P, acc[t]);
			}
		}
	}
	for (; c + 2 <= nc; c += 2) {
		fp4_dec_pair(wr + 16 * c, w);
		float e0 = e8m0(sr[c]), e1 = e8m0(sr[c + 1]);
		for (int t = 0; t < T; t++) {
			__m256 sc = _mm256_set_m128(_mm_set1_ps(e1 * sat[t][(c + 1) / 4]), _mm_set1_ps(e0 * sat[t][c / 4]));
			__m256 P = fp4_pair_dot(qt[t] + 32 * c, w);
			acc[t] = _mm256_fmadd_ps(sc, P, acc[t]);
		}
	}
	float tail[4] = { 0, 0, 0, 0 };
	if (c < nc) {
		__m128 w4[8];
		fp4_dec_one(wr + 16 * c, w4);
		float e0 = e8m0(sr[c]);
		for (int t = 0; t < T; t++) {
			const float *qp = qt[t] + 32 * c;
			__m128 P = _mm_mul_ps(_mm_loadu_ps(qp), w4[0]);
			for (int v = 1; v < 8; v++) P = _mm_fmadd_ps(_mm_loadu_ps(qp + 4 * v), w4[v], P);
			P = _mm_mul_ps(_mm_set1_ps(e0 * sat[t][c / 4]), P);
			P = _mm_add_ps(P, _mm_movehl_ps(P, P));
			tail[t] = _mm_cvtss_f32(_mm_add_ss(P, _mm_shuffle_ps(P, P, 1)));
		}
	}
	for (int t = 0; t < T; t++) out[t] = hsum8(acc[t]) + tail[t];
}

AVX2 void cpu_fp4_avx2(float *y, int ldy, const float *q, const float *sa, int S,
			  const struct kern_fp4w *W, int n0, int n1, float *wb, unsigned nm)
{
	const int K = W->k, nc = K / 32, nb = (K + 127) / 128;
	(void)wb;
	for (int n = n0; n < n1; n++) {
		const uint8_t *wr = W->w + (size_t)n * (K / 2), *sr = W->s + (size_t)n * nc;
		for (int s0 = 0; s0 < S; s0 += 4) {
			int T = S - s0 < 4 ? S - s0 : 4;
			const float *qt[4], *st[4];
			float out[4];
			for (int t = 0; t < T; t++) {
				qt[t] = q + (size_t)(s0 + t) * K;
				st[t] = sa + (size_t)(s0 + t) * nb;
			}
			if (T == 4) fp4_tile(out, wr, sr, qt, st, 4, nc);
			else
				for (int t = 0; t < T; t++) fp4_tile(out + t, wr, sr, qt + t, st + t, 1, nc);
			for (int t = 0; t < T; t++) y[(size_t)(s0 + t) * ldy + n] = cpu_rnd(out[t], nm);
		}
	}
}

/* ---- dense bf16 weights ---- */

AVX2_INLINE __m256 bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* out[t] = Σ_k x_t[k]·w[k]: two accumulators (even / odd vectors), the tail vector
 * (K % 8 inputs, zero padded) in the accumulator of its parity. */
AVX2_INLINE void dense_tile(float *out, const uint16_t *wr, const float *const *xt, int T, int K)
{
	const int nv = K / 8, rem = K % 8;
	__m256 a0[4], a1[4];
	for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm256_setzero_ps();
	int v = 0;
	for (; v + 2 <= nv; v += 2) {
		__m256 w0 = bf16x8(wr + 8 * v), w1 = bf16x8(wr + 8 * v + 8);
		for (int t = 0; t < T; t++) {
			a0[t] = _mm256_fmadd_ps(_mm256_loadu_ps(xt[t] + 8 * v), w0, a0[t]);
			a1[t] = _mm256_fmadd_ps(_mm256_loadu_ps(xt[t] + 8 * v + 8), w1, a1[t]);
		}
	}
	if (v < nv) {
		__m256 w0 = bf16x8(wr + 8 * v);
		for (int t = 0; t < T; t++) a0[t] = _mm256_fmadd_ps(_mm256_loadu_ps(xt[t] + 8 * v), w0, a0[t]);
		v++;
	}
	if (rem) {
		uint16_t tw[8] = { 0 };
		memcpy(tw, wr + 8 * nv, (size_t)rem * 2);
		__m256 w0 = bf16x8(tw);
		__m256i m = tail_mask(rem);
		for (int t = 0; t < T; t++) {
			__m256 xv = _mm256_maskload_ps(xt[t] + 8 * nv, m);
			if (nv & 1) a1[t] = _mm256_fmadd_ps(xv, w0, a1[t]);
			else a0[t] = _mm256_fmadd_ps(xv, w0, a0[t]);
		}
	}
	for (int t = 0; t < T; t++) out[t] = hsum8(_mm256_add_ps(a0[t], a1[t]));
}

static AVX2 void dense_avx2(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S,
			    int n0, int n1, int rnd, float *wb)
{
	(void)wb;
	for (int n = n0; n < n1; n++) {
		const uint16_t *wr = w + (size_t)n * K;
		for (int s0 = 0; s0 < S; s0 += 4) {
			int T = S - s0 < 4 ? S - s0 : 4;
			const float *xt[4];
			float out[4];
			for (int t = 0; t < T; t++) xt[t] = x + (size_t)(s0 + t) * ldx;
			if (T == 4) dense_tile(out, wr, xt, 4, K);
			else
				for (int t = 0; t < T; t++) dense_tile(out + t, wr, xt + t, 1, K);
			for (int t = 0; t < T; t++) y[(size_t)(s0 + t) * ldy + n] = rnd ? kern_rbf16(out[t]) : out[t];
		}
	}
}

/* ---- act_quant ---- */

/* kern_act_quant_block, bit-exact: amax ignoring NaN (vmaxps returns its second
 * operand when the first is NaN), the same power-of-two scale, then E4M3 round to
 * nearest even in f32: normal codes (|v| >= 2^-6) by rounding the f32 mantissa to
 * 3 bits with integer adds (a carry bumps the exponent, as it should), subnormal
 * codes by adding and subtracting 2^14 (ulp 2^-9 there); clamping to ±448 before
 * keeps every result a finite code; NaN stays NaN. */
static AVX2 float actq_avx2(const float *x, int n, float *q)
{
	if (n % 8) return kern_act_quant_block(x, n, q);
	const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
	__m256 mx = _mm256_setzero_ps();
	for (int i = 0; i < n; i += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absm), mx);
	float amax = 0;
	{
		float m8[8];
		_mm256_storeu_ps(m8, mx);
		for (int j = 0; j < 8; j++)
			if (m8[j] > amax) amax = m8[j];
	}
	float s = kern_pow2_scale(amax, 448.0f, 1e-4f);
	const __m256 inv = _mm256_set1_ps(1.0f / s), lim = _mm256_set1_ps(448.0f), nlim = _mm256_set1_ps(-448.0f);
	const __m256 big = _mm256_set1_ps(16384.0f), tiny = _mm256_set1_ps(0x1p-6f);
	const __m256i half = _mm256_set1_epi32(0x7FFFF), one = _mm256_set1_epi32(1), keep = _mm256_set1_epi32((int)0xFFF00000u);
	for (int i = 0; i < n; i += 8) {
		__m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
		__m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
		v = _mm256_max_ps(_mm256_min_ps(v, lim), nlim);
		__m256 a = _mm256_and_ps(v, absm), sign = _mm256_andnot_ps(absm, v);
		__m256i u = _mm256_castps_si256(a);
		__m256i rn = _mm256_add_epi32(u, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(u, 20), one)));
		__m256 nr = _mm256_castsi256_ps(_mm256_and_si256(rn, keep));
		__m256 sr = _mm256_sub_ps(_mm256_add_ps(a, big), big);
		__m256 r = _mm256_blendv_ps(nr, sr, _mm256_cmp_ps(a, tiny, _CMP_LT_OQ));
		r = _mm256_or_ps(r, sign);
		r = _mm256_blendv_ps(r, _mm256_set1_ps(NAN), nan);
		_mm256_storeu_ps(q + i, r);
	}
	return s;
}

/* ---- vectors ---- */

static AVX2 float dot_avx2(const float *a, const float *b, int n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
	float r = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++) r = __builtin_fmaf(a[i], b[i], r);
	return r;
}

static AVX2 void axpy_avx2(float *y, float a, const float *x, int n)
{
	__m256 av = _mm256_set1_ps(a);
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

/* 8 bf16 -> 8 f32 (exact) */
AVX2_INLINE __m256 ld16(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static AVX2 float dot16_avx2(const float *a, const uint16_t *b, int n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld16(b + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), ld16(b + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), ld16(b + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), ld16(b + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), ld16(b + i), a0);
	float r = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++) r = __builtin_fmaf(a[i], kern_bf16_to_f32(b[i]), r);
	return r;
}

static AVX2 void axpy16_avx2(float *y, float a, const uint16_t *x, int n)
{
	__m256 av = _mm256_set1_ps(a);
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, ld16(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++) y[i] = __builtin_fmaf(a, kern_bf16_to_f32(x[i]), y[i]);
}

const struct cpu_isa cpu_isa_avx2 = {
	.name = "avx2",
	.fp8 = fp8_avx2,
	.fp8g = fp8g_avx2,
	.fp4 = cpu_fp4_avx2,
	.fp4_layout = cpu_fp4_layout_avx2,
	.dense = dense_avx2,
	.actq = actq_avx2,
	.dot = dot_avx2,
	.axpy = axpy_avx2,
	.dot16 = dot16_avx2,
	.axpy16 = axpy16_avx2,
};

#else
/* not x86: the scalar table stands in (kern_cpu_create never selects avx2 here) */
const struct cpu_isa cpu_isa_avx2 = { 0 };
#endif
