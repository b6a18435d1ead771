/* kernels/cpu/isa_avx512_dense.c - dense GEMM on bf16 weights (gemm_f32: head,
 * gate, compressors; gemm_bf16) with AVX-512 BF16 (see isa.h).
 *
 * Decode reads the bf16 head [V, D] (1 GB) once per token; the AVX2 loop widens
 * every weight to f32 and spends ~4x the instructions per byte that VDPBF16PS does,
 * which matters on shared cores.  When a token's activation row holds bf16 values
 * (every row the faithful mode feeds these GEMMs: rmsnorm / hc_head outputs are
 * rounded), x·wᵀ is a sum of products of two bf16 values, each exact in f32, and
 * VDPBF16PS adds them pairwise in f32: the same sum in another order (free by
 * MODEL.md §7.5), nothing rounded on the way in ("never rounded" holds: the
 * conversion only drops zero bits).  Rows that are not bf16-exact (smooth numerics)
 * take the AVX2 loop, one token at a time.
 * Order of one output, fixed whatever S, the tile or the range: 32-input vector v
 * (the last one zero padded) goes to accumulator v % 2, lane i of it sums the pairs
 * (2i, 2i+1) in v order; then a0 + a1 and _mm512_reduce_add_ps.
 * VDPBF16PS flushes denormal inputs and results (DAZ/FTZ): terms below 2^-126,
 * far inside the tolerance of MODEL.md §10.8.
 * Tiles of up to 4 tokens share each weight load; columns are taken in blocks of
 * 64 (<= 512 KiB of weights at K = 4096, kept in L2) so that the tiles of a larger
 * S reuse them.  Scratch wb: 4 bf16 rows of K rounded up to 32. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "isa.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && \
	(__GNUC__ >= 10 || (defined(__clang__) && __clang_major__ >= 11))

#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma")))

/* DT tokens per tile, NACC accumulators per output, NB columns per block; PFD:
 * software prefetch distance in bytes along each weight row (a decode GEMV is
 * bound by misses in flight: the file-backed head sits in 4 KiB pages, where the
 * hardware prefetchers stop at every page boundary) */
enum { DT = 4, NACC = 2, NB = 64, PFD = 1024 };

/* Writes the bf16 words of x [K] to xb [KP] (zero padded) when every value is a
 * bf16 value; returns 0 (xb partly written) otherwise. */
AVX512_INLINE int row_to_bf16(uint16_t *xb, const float *x, int K, int KP)
{
	__m512i lo = _mm512_setzero_si512();
	int i = 0;
	for (; i + 16 <= K; i += 16) {
		__m512i v = _mm512_loadu_si512((const void *)(x + i));
		lo = _mm512_or_si512(lo, v);
		_mm256_storeu_si256((__m256i *)(xb + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
	}
	if (i < K) {
		__mmask16 m = (__mmask16)((1u << (K - i)) - 1);
		__m512i v = _mm512_maskz_loadu_epi32(m, x + i);
		lo = _mm512_or_si512(lo, v);
		_mm256_storeu_si256((__m256i *)(xb + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
		i += 16;
	}
	for (; i < KP; i += 16) _mm256_storeu_si256((__m256i *)(xb + i), _mm256_setzero_si256());
	return _mm512_test_epi32_mask(lo, _mm512_set1_epi32(0xFFFF)) == 0;
}

/* out[c*DT + t] = Σ_k xb[t*KP + k]·wr[c*K + k] for columns c < C and tokens t < T
 * (C, T constants after inlining): C weight rows are streamed side by side (more
 * misses in flight when one token leaves the loop short of work); every output
 * gets the same operations whatever C and T. */
AVX512_INLINE void dtile(float *out, const uint16_t *wr, const uint16_t *xb, int KP, int K, int C, int T)
{
	__m512 acc[8][NACC];
	for (int i = 0; i < C * T; i++)
		for (int j = 0; j < NACC; j++) acc[i][j] = _mm512_setzero_ps();
	const int nv = K / 32, rem = K % 32;
	int v = 0;
	for (; v + NACC <= nv; v += NACC)
		for (int j = 0; j < NACC; j++)
			for (int c = 0; c < C; c++) {
				const uint16_t *p = wr + (size_t)c * K + 32 * (v + j);
				__m512i w = _mm512_loadu_si512((const void *)p);
				_mm_prefetch((const char *)p + PFD, _MM_HINT_T0);
				for (int t = 0; t < T; t++) {
					__m512i q = _mm512_loadu_si512((const void *)(xb + (size_t)t * KP + 32 * (v + j)));
					acc[c * T + t][j] = _mm512_dpbf16_ps(acc[c * T + t][j], (__m512bh)q, (__m512bh)w);
				}
			}
	for (; v < nv + (rem != 0); v++)
		for (int c = 0; c < C; c++) {
			const uint16_t *p = wr + (size_t)c * K + 32 * v;
			__m512i w = v < nv ? _mm512_loadu_si512((const void *)p)
					   : _mm512_maskz_loadu_epi16((__mmask32)((1u << rem) - 1), p);
			for (int t = 0; t < T; t++) {
				__m512i q = _mm512_loadu_si512((const void *)(xb + (size_t)t * KP + 32 * v));
				acc[c * T + t][v % NACC] = _mm512_dpbf16_ps(acc[c * T + t][v % NACC], (__m512bh)q, (__m512bh)w);
			}
		}
	for (int c = 0; c < C; c++)
		for (int t = 0; t < T; t++) {
			__m512 *a = acc[c * T + t];
			out[c * DT + t] = _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
		}
}

AVX512 void cpu_dense_avx512(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S,
			     int n0, int n1, int rnd, float *wb)
{
	const int KP = (K + 31) & ~31;
	uint16_t *xb = (uint16_t *)wb; /* [DT, KP] bf16 rows of the current tile */
	int ts[DT], prepped = -1, T = 0;
	for (int nb = n0; nb < n1; nb += NB) {
		const int ne = n1 - nb < NB ? n1 : nb + NB;
		for (int s0 = 0; s0 < S; s0 += DT) {
			if (prepped != s0) {
				/* the bf16-exact rows of this tile; the others run the AVX2
				 * loop on the block as one-token calls */
				T = 0;
				for (int s = s0; s < S && s < s0 + DT; s++)
					if (row_to_bf16(xb + (size_t)T * KP, x + (size_t)s * ldx, K, KP)) ts[T++] = s;
				prepped = s0;
			}
			for (int s = s0, t = 0; s < S && s < s0 + DT; s++) {
				if (t < T && ts[t] == s) {
					t++;
					continue;
				}
				cpu_isa_avx2.dense(y + (size_t)s * ldy, ldy, x + (size_t)s * ldx, ldx, w, K, 1, nb, ne, rnd,
						   NULL);
			}
			/* columns side by side: 4 with one token, else 2 (fewer loads of
			 * the token rows per product; <= 16 accumulators) */
			const int C = T == 1 ? 4 : 2;
			for (int n = nb; n < ne; n += C) {
				const uint16_t *wr = w + (size_t)n * K;
				float out[4 * DT];
				const int nc = ne - n < C ? ne - n : C;
				if (nc == C) {
					switch (T) {
					case 4: dtile(out, wr, xb, KP, K, 2, 4); break;
					case 3: dtile(out, wr, xb, KP, K, 2, 3); break;
					case 2: dtile(out, wr, xb, KP, K, 2, 2); break;
					case 1: dtile(out, wr, xb, KP, K, 4, 1); break;
					default: break;
					}
				} else
					for (int c = 0; c < nc; c++) {
						const uint16_t *r = wr + (size_t)c * K;
						switch (T) {
						case 4: dtile(out + c * DT, r, xb, KP, K, 1, 4); break;
						case 3: dtile(out + c * DT, r, xb, KP, K, 1, 3); break;
						case 2: dtile(out + c * DT, r, xb, KP, K, 1, 2); break;
						case 1: dtile(out + c * DT, r, xb, KP, K, 1, 1); break;
						default: break;
						}
					}
				for (int c = 0; c < nc; c++)
					for (int t = 0; t < T; t++) {
						float o = out[c * DT + t];
						y[(size_t)ts[t] * ldy + n + c] = rnd ? kern_rbf16(o) : o;
					}
			}
		}
	}
}

#else
void cpu_dense_avx512(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int K, int S, int n0,
		      int n1, int rnd, float *wb)
{
	cpu_isa_avx2.dense(y, ldy, x, ldx, w, K, S, n0, n1, rnd, wb);
}
#endif
