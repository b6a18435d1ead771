/* tests/test_forward_kernels.c - the CPU kernels (kernels/cpu) against independent
 * references and the golden units.
 *   - numeric helpers vs ../shared/golden/units (bit-exact; skipped when absent)
 *     and vs MODEL.md Appendix A constants (always);
 *   - every GEMM, norm, attention, top-k, compressor, routing and expert kernel vs a
 *     plain double-precision reference written from the spec's formulas (brute-force
 *     E4M3 rounding, unblocked softmax, direct window pooling), random inputs.
 * Tolerances: 1e-5 relative to the row's max |value| for f32-vs-double (f32 sums
 * of <= 1024 terms), bit-exact for selections, codecs and tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

static uint64_t g_rng = 0x1234567887654321ull;
static double urand(void) /* [0, 1) */
{
	g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
	return (double)(g_rng >> 11) * 0x1p-53;
}
static float nrand(void) { return (float)((urand() - 0.5) * 4); }
static float bfrand(void) { return kern_rbf16(nrand()); }

/* ---- independent references ---- */

/* nearest E4M3 value by brute force over all finite codes, ties to the even code */
static double ref_e4m3(double x)
{
	if (x > 448) x = 448;
	if (x < -448) x = -448;
	double best = 0, bd = INFINITY;
	int bc = 0;
	for (int c = 0; c < 256; c++) {
		if ((c & 0x7f) == 0x7f) continue;
		int e = (c >> 3) & 15, m = c & 7;
		double v = (e ? (1 + m / 8.0) * ldexp(1, e - 7) : m * ldexp(1, -9)) * ((c & 0x80) ? -1 : 1);
		double d = fabs(v - x);
		if (d < bd || (d == bd && (c & 1) == 0 && (bc & 1))) { bd = d; best = v; bc = c; }
	}
	return best;
}

static double ref_scale(double amax, double fmax, double floor_)
{
	if (amax < floor_) amax = floor_;
	double s = ldexp(1, -140);
	while (s * fmax < amax) s *= 2;
	return s;
}

/* act_quant reference: q (dequantised) per block of 128 */
static void ref_actq(const float *x, int K, double *q, int qnt)
{
	for (int o = 0; o < K; o += 128) {
		int n = K - o < 128 ? K - o : 128;
		double amax = 0;
		for (int i = 0; i < n; i++) amax = fmax(amax, fabs(x[o + i]));
		double s = ref_scale(amax, 448, 1e-4);
		for (int i = 0; i < n; i++) q[o + i] = qnt ? ref_e4m3(x[o + i] / s) * s : x[o + i];
	}
}

static double e4m3v(uint8_t b) { int e = (b >> 3) & 15, m = b & 7; return (e ? (1 + m / 8.0) * ldexp(1, e - 7) : m * ldexp(1, -9)) * ((b & 0x80) ? -1 : 1); }

/* random FP8 weight [n, k] with scales in 2^-3 .. 2^0 */
static struct kern_fp8w rand_fp8(int n, int k)
{
	struct kern_fp8w W = { malloc((size_t)n * k), malloc((size_t)((n + 127) / 128) * ((k + 127) / 128)), n, k };
	uint8_t *w = (uint8_t *)W.w, *s = (uint8_t *)W.s;
	for (size_t i = 0; i < (size_t)n * k; i++) { w[i] = (uint8_t)(urand() * 256); if ((w[i] & 0x7f) == 0x7f) w[i] = 0x3c; }
	for (int i = 0; i < ((n + 127) / 128) * ((k + 127) / 128); i++) s[i] = (uint8_t)(124 + (int)(urand() * 4));
	return W;
}

static double fp8w(const struct kern_fp8w *W, int n, int k)
{
	return e4m3v(W->w[(size_t)n * W->k + k]) * ldexp(1, W->s[(n / 128) * ((W->k + 127) / 128) + k / 128] - 127);
}

static void check_rows(const char *what, const float *got, const double *ref, int rows, int n, double tol)
{
	for (int r = 0; r < rows; r++) {
		double mx = 0, md = 0;
		int at = 0;
		for (int j = 0; j < n; j++) {
			mx = fmax(mx, fabs(ref[(size_t)r * n + j]));
			double d = fabs(got[(size_t)r * n + j] - ref[(size_t)r * n + j]);
			if (!(d <= md)) { md = d; at = j; }
		}
		if (!(md <= tol * fmax(mx, 1e-30))) {
			TU_CHECK(0, "%s: row %d col %d: got %.8g expected %.8g (row max %.3g, tol %.1e)", what, r, at,
				 got[(size_t)r * n + at], ref[(size_t)r * n + at], mx, tol);
			return;
		}
	}
}

/* ---- tests ---- */

static void t_gemm_fp8(struct kern *k)
{
	const int S = 3, N = 200, K = 384; /* partial output block (200 = 128 + 72) */
	struct kern_fp8w W = rand_fp8(N, K);
	float *x = malloc(sizeof(float) * S * K), *y = malloc(sizeof(float) * S * N);
	double *q = malloc(sizeof(double) * K), *ref = malloc(sizeof(double) * S * N);
	for (int i = 0; i < S * K; i++) x[i] = bfrand();
	for (int i = 0; i < K; i++) x[i] *= 1e-6f; /* row 0: first block below the act_quant floor */
	for (int qnt = 0; qnt < 2; qnt++) {
		for (int s = 0; s < S; s++) {
			ref_actq(x + s * K, K, q, qnt);
			for (int n = 0; n < N; n++) {
				double a = 0;
				for (int j = 0; j < K; j++) a += q[j] * fp8w(&W, n, j);
				ref[s * N + n] = a;
			}
		}
		k->gemm_fp8(k, y, N, x, K, &W, S, qnt ? KERN_QNT : 0);
		check_rows(qnt ? "gemm_fp8 (act_quant)" : "gemm_fp8 (no act_quant)", y, ref, S, N, 1e-5);
	}
	/* RND: the output is the bf16 rounding of the f32 result */
	k->gemm_fp8(k, y, N, x, K, &W, S, KERN_QNT | KERN_RND);
	for (int i = 0; i < S * N; i++) TU_CHECK(y[i] == kern_rbf16(y[i]), "gemm_fp8 RND output %d not bf16", i);
	free((void *)W.w); free((void *)W.s); free(x); free(y); free(q); free(ref);
}

static void t_grouped(struct kern *k)
{
	const int S = 2, G = 2, R = 130, Kg = 96; /* partial blocks in both dimensions */
	struct kern_fp8w W = rand_fp8(G * R, Kg);
	float *x = malloc(sizeof(float) * S * G * Kg), *y = malloc(sizeof(float) * S * G * R);
	double *ref = malloc(sizeof(double) * S * G * R);
	for (int i = 0; i < S * G * Kg; i++) x[i] = bfrand();
	for (int s = 0; s < S; s++)
		for (int g = 0; g < G; g++)
			for (int r = 0; r < R; r++) {
				double a = 0;
				for (int j = 0; j < Kg; j++) a += (double)x[s * G * Kg + g * Kg + j] * fp8w(&W, g * R + r, j);
				ref[s * G * R + g * R + r] = a;
			}
	k->gemm_fp8_grouped(k, y, x, &W, G, S, KERN_QNT); /* QNT must not quantise wo_a's input */
	check_rows("gemm_fp8_grouped (wo_a)", y, ref, S, G * R, 1e-5);
	free((void *)W.w); free((void *)W.s); free(x); free(y); free(ref);
}

static void t_dense_norm(struct kern *k)
{
	const int S = 3, N = 50, K = 256;
	uint16_t *w = malloc(2 * N * K), *nw = malloc(2 * K);
	float *x = malloc(4 * S * K), *y = malloc(4 * S * N), *z = malloc(4 * S * K);
	double *ref = malloc(8 * S * K);
	for (int i = 0; i < N * K; i++) w[i] = kern_f32_to_bf16(nrand());
	for (int i = 0; i < K; i++) nw[i] = kern_f32_to_bf16(nrand());
	for (int i = 0; i < S * K; i++) x[i] = bfrand();
	for (int s = 0; s < S; s++)
		for (int n = 0; n < N; n++) {
			double a = 0;
			for (int j = 0; j < K; j++) a += (double)x[s * K + j] * kern_bf16_to_f32(w[n * K + j]);
			ref[s * N + n] = a;
		}
	k->gemm_f32(k, y, N, x, K, w, N, K, S);
	check_rows("gemm_f32", y, ref, S, N, 1e-5);
	k->gemm_bf16(k, y, N, x, K, w, N, K, S, 0);
	check_rows("gemm_bf16", y, ref, S, N, 1e-5);
	for (int s = 0; s < S; s++) {
		double ss = 0;
		for (int j = 0; j < K; j++) ss += (double)x[s * K + j] * x[s * K + j];
		double r = 1 / sqrt(ss / K + 1e-6);
		for (int j = 0; j < K; j++) ref[s * K + j] = kern_bf16_to_f32(nw[j]) * x[s * K + j] * r;
	}
	k->rmsnorm(k, z, x, nw, S, K, 1e-6f, 0);
	check_rows("rmsnorm", z, ref, S, K, 1e-5);
	memcpy(z, x, 4 * S * K);
	k->head_rms(k, z, S * 2, K / 2, 1e-6f, 0);
	for (int r = 0; r < S * 2; r++) {
		double ss = 0;
		for (int j = 0; j < K / 2; j++) ss += (double)x[r * K / 2 + j] * x[r * K / 2 + j];
		for (int j = 0; j < K / 2; j++) ref[r * K / 2 + j] = x[r * K / 2 + j] / sqrt(ss / (K / 2) + 1e-6);
	}
	check_rows("head_rms", z, ref, S * 2, K / 2, 1e-5);
	free(w); free(nw); free(x); free(y); free(z); free(ref);
}

/* attention: plain softmax in double over the list (blocks do not matter without RND) */
static void t_attn(struct kern *k)
{
	const int S = 2, H = 3, dh = 64, nw = 100, nc = 60, n_idx = 150;
	float *kvw = malloc(4 * nw * dh), *kvc = malloc(4 * nc * dh), *q = malloc(4 * S * H * dh), *o = malloc(4 * S * H * dh);
	float sink[3] = { 0.5f, -1.0f, 2.0f };
	int32_t *idx = malloc(4 * S * n_idx);
	double *ref = malloc(8 * S * H * dh), *sc = malloc(8 * n_idx);
	for (int i = 0; i < nw * dh; i++) kvw[i] = bfrand();
	for (int i = 0; i < nc * dh; i++) kvc[i] = bfrand();
	for (int i = 0; i < S * H * dh; i++) q[i] = bfrand();
	for (int s = 0; s < S; s++)
		for (int j = 0; j < n_idx; j++)
			idx[s * n_idx + j] = j == 0 ? s : (urand() < 0.2 ? -1 : (int)(urand() * (nw + nc)));
	for (int j = 64; j < 128; j++) idx[n_idx + j] = -1; /* a block of padding only */
	const float tau = 0.125f;
	for (int s = 0; s < S; s++)
		for (int h = 0; h < H; h++) {
			double mx = sink[h];
			for (int j = 0; j < n_idx; j++) {
				int e = idx[s * n_idx + j];
				if (e < 0) { sc[j] = -INFINITY; continue; }
				const float *kr = e < nw ? kvw + e * dh : kvc + (e - nw) * dh;
				double d = 0;
				for (int i = 0; i < dh; i++) d += (double)q[(s * H + h) * dh + i] * kr[i];
				sc[j] = d * tau;
				mx = fmax(mx, sc[j]);
			}
			double l = exp(sink[h] - mx);
			for (int i = 0; i < dh; i++) ref[(s * H + h) * dh + i] = 0;
			for (int j = 0; j < n_idx; j++) {
				int e = idx[s * n_idx + j];
				if (e < 0) continue;
				double p = exp(sc[j] - mx);
				l += p;
				const float *kr = e < nw ? kvw + e * dh : kvc + (e - nw) * dh;
				for (int i = 0; i < dh; i++) ref[(s * H + h) * dh + i] += p * kr[i];
			}
			for (int i = 0; i < dh; i++) ref[(s * H + h) * dh + i] /= l;
		}
	struct kern_kv kv = { kvw, nw, kvc, nc };
	k->attn(k, o, q, &kv, idx, n_idx, sink, S, H, dh, tau, 0);
	check_rows("attn (3 blocks of 64, padding, sink)", o, ref, S * H, dh, 1e-5);
	k->attn(k, o, q, &kv, idx, n_idx, sink, S, H, dh, tau, KERN_RND);
	check_rows("attn RND (bf16 probabilities, 1e-2)", o, ref, S * H, dh, 1e-2);
	free(kvw); free(kvc); free(q); free(o); free(idx); free(ref); free(sc);
}

/* top-k: ties by index, visibility, padding, offset */
static void t_topk(struct kern *k)
{
	const int S = 5, n = 90, kmax = 16, width = 16, p0 = 40;
	float *sc = malloc(4 * S * n);
	int32_t *idx = malloc(4 * S * width);
	for (int i = 0; i < S * n; i++) sc[i] = (float)(int)(urand() * 6); /* many exact ties */
	k->topk(k, idx, width, sc, n, S, n, p0, 4, kmax, width, 1000);
	for (int s = 0; s < S; s++) {
		int nv = (p0 + s + 1) / 4, kk = nv < kmax ? nv : kmax;
		int used[128] = {0};
		for (int j = 0; j < kk; j++) {
			/* reference: the best unused entry by (value desc, index asc) */
			int b = -1;
			for (int t = 0; t < nv; t++)
				if (!used[t] && (b < 0 || sc[s * n + t] > sc[s * n + b])) b = t;
			used[b] = 1;
			TU_CHECK(idx[s * width + j] == b + 1000, "topk row %d rank %d: got %d expected %d", s, j,
				 idx[s * width + j] - 1000, b);
		}
		for (int j = kk; j < width; j++) TU_CHECK(idx[s * width + j] == -1, "topk row %d pad %d: %d", s, j, idx[s * width + j]);
	}
	free(sc); free(idx);
}

/* compressor: streaming in uneven chunks vs direct pooling of §8.5.2 in double */
static void t_compress(struct kern *k, int r)
{
	const int d = 8, c = r == 4 ? 2 : 1, cd = c * d, T = r == 4 ? 23 : 300;
	float *kt = malloc(4 * T * cd), *gt = malloc(4 * T * cd), *ape = malloc(4 * r * cd);
	float *K = malloc(4 * c * r * cd), *G = malloc(4 * c * r * cd), *u = malloc(4 * (T / r + 1) * d);
	int nw = T / r;
	double *ref = malloc(8 * (nw + 1) * d);
	float *got = malloc(4 * (nw + 1) * d);
	for (int i = 0; i < T * cd; i++) { kt[i] = nrand(); gt[i] = nrand(); }
	for (int i = 0; i < r * cd; i++) ape[i] = nrand();
	for (int w = 0; w < nw; w++)
		for (int ch = 0; ch < d; ch++) {
			double gs[256], ks[256], mx = -INFINITY, sum = 0, acc = 0;
			int nc = 0;
			if (r == 4) {
				for (int t = (w - 1) * r; t < w * r; t++, nc++) {
					if (t < 0) { gs[nc] = -INFINITY; ks[nc] = 0; continue; }
					gs[nc] = (double)gt[t * cd + ch] + ape[(t % r) * cd + ch];
					ks[nc] = kt[t * cd + ch];
				}
				for (int t = w * r; t < (w + 1) * r; t++, nc++) {
					gs[nc] = (double)gt[t * cd + d + ch] + ape[(t % r) * cd + d + ch];
					ks[nc] = kt[t * cd + d + ch];
				}
			} else {
				for (int t = w * r; t < (w + 1) * r; t++, nc++) {
					gs[nc] = (double)gt[t * cd + ch] + ape[(t % r) * cd + ch];
					ks[nc] = kt[t * cd + ch];
				}
			}
			for (int j = 0; j < nc; j++) mx = fmax(mx, gs[j]);
			for (int j = 0; j < nc; j++) sum += exp(gs[j] - mx);
			for (int j = 0; j < nc; j++) acc += exp(gs[j] - mx) / sum * ks[j];
			ref[w * d + ch] = acc;
		}
	int chunks[] = { 1, 3, 7, 64, 1000 };
	for (int ci = 0; ci < 5; ci++) {
		k->fill(k, K, 0, (size_t)c * r * cd);
		k->fill(k, G, -INFINITY, (size_t)c * r * cd);
		for (int p0 = 0; p0 < T; p0 += chunks[ci]) {
			int S = T - p0 < chunks[ci] ? T - p0 : chunks[ci];
			k->compress(k, u, K, G, kt + p0 * cd, gt + p0 * cd, ape, S, p0, r, d);
			int w0 = p0 / r, n = (p0 + S) / r - w0;
			memcpy(got + w0 * d, u, 4 * n * d);
		}
		char what[64];
		snprintf(what, sizeof what, "compress r=%d chunk %d", r, chunks[ci]);
		check_rows(what, got, ref, nw, d, 1e-5);
	}
	free(kt); free(gt); free(ape); free(K); free(G); free(u); free(ref); free(got);
}

/* routing and one routed FP4 expert */
static void t_moe(struct kern *k)
{
	const int S = 3, E = 8, K = 2, D = 256, F = 128;
	float lg[3 * 8], bias[8], w[6], x[3 * 256], acc[3 * 256];
	int32_t ids[6];
	for (int i = 0; i < S * E; i++) lg[i] = nrand();
	for (int i = 0; i < E; i++) bias[i] = nrand() * 0.1f;
	lg[0] = lg[1] = 3.0f; bias[0] = bias[1] = 0; /* a tie: lower id first */
	k->route(k, ids, w, lg, bias, S, E, K, 1.5f);
	for (int s = 0; s < S; s++) {
		double a[8];
		int used[8] = {0};
		for (int e = 0; e < E; e++) a[e] = sqrt(log1p(exp((double)lg[s * E + e])));
		double sum = 0;
		for (int j = 0; j < K; j++) {
			int b = -1;
			for (int e = 0; e < E; e++)
				if (!used[e] && (b < 0 || (float)a[e] + bias[e] > (float)a[b] + bias[b])) b = e;
			used[b] = 1;
			TU_CHECK(ids[s * K + j] == b, "route row %d rank %d: got %d expected %d", s, j, ids[s * K + j], b);
			sum += a[b];
		}
		for (int j = 0; j < K; j++)
			TU_CHECK(fabs(w[s * K + j] - a[ids[s * K + j]] / sum * 1.5) < 1e-6, "route weight %d %d: %g", s, j, w[s * K + j]);
	}
	/* FP4 expert with clamps */
	uint8_t *w1 = malloc(F * D / 2), *w3 = malloc(F * D / 2), *w2 = malloc(D * F / 2);
	uint8_t *s1 = malloc(F * D / 32), *s3 = malloc(F * D / 32), *s2 = malloc(D * F / 32);
	for (int i = 0; i < F * D / 2; i++) { w1[i] = (uint8_t)(urand() * 256); w3[i] = (uint8_t)(urand() * 256); w2[i] = (uint8_t)(urand() * 256); }
	for (int i = 0; i < F * D / 32; i++) { s1[i] = 122 + (uint8_t)(urand() * 3); s3[i] = 122 + (uint8_t)(urand() * 3); s2[i] = 122 + (uint8_t)(urand() * 3); }
	struct kern_expert ex = { { w1, s1, F, D }, { w3, s3, F, D }, { w2, s2, D, F } };
	for (int i = 0; i < S * D; i++) x[i] = bfrand();
	int32_t slots[2] = { 0 * K + 1, 2 * K + 0 }; /* rows 0 and 2 */
	float wt[6] = { 0, 0.7f, 0, 0, 1.3f, 0 };
	static const float e2[16] = { 0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6 };
	for (int qnt = 0; qnt < 2; qnt++) {
		double ref[3 * 256] = {0};
		const float lim = 2.0f;
		for (int i = 0; i < 2; i++) {
			int s = slots[i] / K;
			double q[256], g[128], u[128], hq[128], hv[128];
			float hf[128];
			ref_actq(x + s * D, D, q, qnt);
			for (int f = 0; f < F; f++) {
				double a = 0, b = 0;
				for (int j = 0; j < D; j++) {
					int nb = (j & 1) ? w1[f * D / 2 + j / 2] >> 4 : w1[f * D / 2 + j / 2] & 15;
					int nb3 = (j & 1) ? w3[f * D / 2 + j / 2] >> 4 : w3[f * D / 2 + j / 2] & 15;
					a += q[j] * e2[nb] * ldexp(1, s1[f * D / 32 + j / 32] - 127);
					b += q[j] * e2[nb3] * ldexp(1, s3[f * D / 32 + j / 32] - 127);
				}
				g[f] = fmin(a, lim);
				u[f] = fmax(fmin(b, lim), -lim);
				hv[f] = wt[slots[i]] * (g[f] / (1 + exp(-g[f])) * u[f]);
				hf[f] = (float)hv[f];
			}
			ref_actq(hf, F, hq, qnt);
			for (int dd = 0; dd < D; dd++) {
				double a = 0;
				for (int j = 0; j < F; j++) {
					int nb = (j & 1) ? w2[dd * F / 2 + j / 2] >> 4 : w2[dd * F / 2 + j / 2] & 15;
					a += hq[j] * e2[nb] * ldexp(1, s2[dd * F / 32 + j / 32] - 127);
				}
				ref[s * D + dd] += a;
			}
		}
		memset(acc, 0, sizeof acc);
		k->moe_expert(k, acc, x, &ex, slots, 2, wt, K, 2.0f, qnt ? KERN_QNT : 0);
		/* act_quant of h may flip an FP8 code between f32 and double h: allow 1e-3 with QNT */
		check_rows(qnt ? "moe_expert (act_quant, clamps)" : "moe_expert (clamps)", acc, ref, S, D, qnt ? 1e-3 : 1e-5);
	}
	free(w1); free(w3); free(w2); free(s1); free(s3); free(s2);
}

static void t_hc_post(struct kern *k)
{
	const int S = 2, M = 4, D = 32;
	float f[64], R[256], post[8], comb[32], Xo[256];
	double ref[256];
	for (int i = 0; i < S * D; i++) f[i] = bfrand();
	for (int i = 0; i < S * M * D; i++) R[i] = bfrand();
	for (int i = 0; i < S * M; i++) post[i] = nrand();
	for (int i = 0; i < S * M * M; i++) comb[i] = (float)urand();
	for (int s = 0; s < S; s++)
		for (int kk = 0; kk < M; kk++)
			for (int d = 0; d < D; d++) {
				double a = (double)post[s * M + kk] * f[s * D + d];
				for (int j = 0; j < M; j++) a += (double)comb[s * 16 + j * M + kk] * R[s * M * D + j * D + d];
				ref[s * M * D + kk * D + d] = a;
			}
	k->hc_post(k, Xo, f, R, post, comb, S, M, D, 0);
	check_rows("hc_post", Xo, ref, S, M * D, 1e-6);
}

/* ---- golden units (bit-exact) ---- */

static void *unit(const char *name, size_t *n)
{
	const char *sh = tu_shared_dir();
	if (!sh) return NULL;
	char p[1024];
	snprintf(p, sizeof p, "%s/golden/units/%s.bin", sh, name);
	return tu_read_file(p, n);
}

static void t_units(struct kern *k)
{
	size_t n, m;
	float *in = unit("e4m3_in", &n);
	int32_t *code = unit("e4m3_code", &m);
	if (!in || !code) {
		printf("golden units absent: skipped the unit files\n");
		free(in); free(code);
		return;
	}
	for (size_t i = 0; i < n / 4; i++)
		TU_CHECK(kern_f32_to_e4m3(in[i]) == code[i], "e4m3(%g): got 0x%02x expected 0x%02x", in[i], kern_f32_to_e4m3(in[i]), code[i]);
	free(in); free(code);
	in = unit("fp4_in", &n);
	code = unit("fp4_code", &m);
	for (size_t i = 0; in && code && i < n / 4; i++)
		TU_CHECK(kern_f32_to_e2m1(in[i]) == code[i], "e2m1(%g): got %d expected %d", in[i], kern_f32_to_e2m1(in[i]), code[i]);
	free(in); free(code);
	float *out;
	in = unit("bf16_in", &n);
	out = unit("bf16_out", &m);
	for (size_t i = 0; in && out && i < n / 4; i++)
		TU_CHECK(kern_rbf16(in[i]) == out[i] || (isnan(in[i]) && isnan(out[i])), "bf16(%g): got %g expected %g", in[i], kern_rbf16(in[i]), out[i]);
	free(in); free(out);
	const char *qn[3] = { "act_fp8_b128", "act_fp8_b64", "act_fp4_b32" };
	int len[3] = { 256, 128, 128 }, blk[3] = { 128, 64, 32 };
	for (int t = 0; t < 3; t++) {
		char a[64], b[64];
		snprintf(a, sizeof a, "%s_in", qn[t]);
		snprintf(b, sizeof b, "%s_out", qn[t]);
		in = unit(a, &n);
		out = unit(b, &m);
		if (!in || !out) continue;
		if (t < 2) k->qdq8(k, in, 16, len[t], len[t], blk[t], KERN_QNT);
		else k->qdq4(k, in, 16, len[t], len[t], KERN_QNT);
		for (int i = 0; i < 16 * len[t]; i++)
			if (in[i] != out[i]) { TU_CHECK(0, "%s [%d]: got %g expected %g", qn[t], i, in[i], out[i]); break; }
		free(in); free(out);
	}
	in = unit("hadamard128_in", &n);
	double *hd = unit("hadamard128_out", &m);
	if (in && hd) {
		k->hadamard(k, in, 4, 128, 0);
		check_rows("hadamard128 (f32 vs float64)", in, hd, 4, 128, 1e-6);
	}
	free(in); free(hd);
	/* rope tables and cos/sin: f32 tables bit-exact; the rope kernel applied to the
	 * pair (1, 0) gives (cos, sin) exactly */
	int32_t *pos = unit("rope_positions", &n);
	struct core_config c = { .qk_rope_head_dim = 64, .rope_theta = 10000, .compress_rope_theta = 160000,
				 .rope_factor = 16, .rope_orig_max_pos = 65536, .beta_fast = 32, .beta_slow = 1 };
	for (int y = 0; y < 2 && pos; y++) {
		float fr[32], x[64 * 64];
		core_rope_freqs(&c, y, fr);
		float *ft = unit(y ? "rope_freqs_yarn_f32" : "rope_freqs_plain_f32", &m);
		float *ct = unit(y ? "rope_cos_yarn_f32" : "rope_cos_plain_f32", &m);
		float *st = unit(y ? "rope_sin_yarn_f32" : "rope_sin_plain_f32", &m);
		for (int i = 0; ft && i < 32; i++) TU_CHECK(fr[i] == ft[i], "rope freq %s[%d]: got %a expected %a", y ? "yarn" : "plain", i, fr[i], ft[i]);
		for (int pi = 0; pi < 64 && ct && st; pi++) {
			for (int i = 0; i < 32; i++) { x[2 * i] = 1; x[2 * i + 1] = 0; }
			k->rope(k, x, 1, 64, 1, 64, 0, 64, fr, pos[pi], 1, 0, 0);
			for (int i = 0; i < 32; i++)
				TU_CHECK(x[2 * i] == ct[pi * 32 + i] && x[2 * i + 1] == st[pi * 32 + i],
					 "rope %s p=%d i=%d: got (%a, %a) expected (%a, %a)", y ? "yarn" : "plain", pos[pi], i,
					 x[2 * i], x[2 * i + 1], ct[pi * 32 + i], st[pi * 32 + i]);
		}
		free(ft); free(ct); free(st);
	}
	free(pos);
	/* Sinkhorn via hc_pre: D = 1, M = 4, x = 1 so the mixes are fn[i][0] * rho */
	double *mix = unit("sinkhorn_mixes", &n), *scl = unit("sinkhorn_scale", &m), *base = unit("sinkhorn_base", &m);
	double *pre = unit("sinkhorn_pre", &m), *post = unit("sinkhorn_post", &m), *comb = unit("sinkhorn_comb", &m);
	if (mix && scl && base && pre && post && comb) {
		for (int r = 0; r < 8; r++) {
			float X[4] = { 1, 1, 1, 1 }, fn[24 * 4] = {0}, sc3[3], b24[24], y[1], po[4], cb[16];
			double rho = 1 / sqrt(1 + 1e-6);
			for (int i = 0; i < 24; i++) { fn[i * 4] = (float)(mix[r * 24 + i] / rho); b24[i] = (float)base[i]; }
			for (int i = 0; i < 3; i++) sc3[i] = (float)scl[i];
			k->hc_pre(k, y, po, cb, X, fn, sc3, b24, 1, 4, 1, 20, 1e-6f, 1e-6f, 0);
			double pr = 0;
			for (int j = 0; j < 4; j++) pr += pre[r * 4 + j];
			check_rows("hc_pre post", po, post + r * 4, 1, 4, 1e-5);
			check_rows("hc_pre comb (Sinkhorn)", cb, comb + r * 16, 1, 16, 1e-5);
			double yref[1] = { pr };
			check_rows("hc_pre y (sum of pre)", y, yref, 1, 1, 1e-5);
		}
	}
	free(mix); free(scl); free(base); free(pre); free(post); free(comb);
}

/* MODEL.md Appendix A: a few table entries, known in advance from the spec */
static void t_appendix(void)
{
	struct core_config c = { .qk_rope_head_dim = 64, .rope_theta = 10000, .compress_rope_theta = 160000,
				 .rope_factor = 16, .rope_orig_max_pos = 65536, .beta_fast = 32, .beta_slow = 1 };
	float p[32], y[32];
	core_rope_freqs(&c, 0, p);
	core_rope_freqs(&c, 1, y);
	struct { int yarn, i; uint32_t bits; } v[] = {
		{ 0, 1, 0x3f3ff911 }, { 0, 8, 0x3dcccccd }, { 0, 31, 0x390bd472 }, { 1, 1, 0x3f300a3a },
		{ 1, 15, 0x3b6e4237 }, { 1, 16, 0x3b147ae1 }, { 1, 24, 0x37a3d708 }, { 1, 25, 0x36b443d0 }, { 1, 31, 0x35187c4d },
	};
	for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) {
		float f = v[j].yarn ? y[v[j].i] : p[v[j].i];
		uint32_t b;
		memcpy(&b, &f, 4);
		TU_CHECK(b == v[j].bits, "Appendix A %s[%d]: got 0x%08x expected 0x%08x", v[j].yarn ? "yarn" : "plain", v[j].i, b, v[j].bits);
	}
}

int main(void)
{
	struct kern *k = kern_cpu_create();
	if (!k || k->reserve(k, 64, 4096)) return 1;
	t_appendix();
	t_gemm_fp8(k);
	t_grouped(k);
	t_dense_norm(k);
	t_attn(k);
	t_topk(k);
	t_compress(k, 4);
	t_compress(k, 128);
	t_moe(k);
	t_hc_post(k);
	t_units(k);
	k->destroy(k);
	TU_DONE();
}
