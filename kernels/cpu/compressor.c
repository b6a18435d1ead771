/* kernels/cpu/compressor.c - the KV compressor (§8.5): softmax pooling of windows
 * of r tokens, streaming state, chunk-invariant.
 *
 * Token t's projection row (k_t, g_t + ape[t mod r]) comes from the call's rows when
 * t >= p0, else from the state.  Ratio 128: slot t mod r.  Ratio 4: rows [0, r) =
 * previous window, rows [r, 2r) = current window (row r + t mod r).  Before the
 * first emission the previous-window rows hold the reset values (K 0, G -inf), which
 * is exactly "absent" for window 0. */
#include <math.h>
#include <string.h>

#include "cpu.h"

struct comp {
	float *K, *G;
	const float *kt, *gt, *ape;
	int p0, r, d, cd, cur0; /* cur0 = first position of the state's current window */
};

static inline int imod(int a, int m) { return ((a % m) + m) % m; }

/* Pointers to token t's row; g from the call needs ape added (gbuf). */
static void tok_row(const struct comp *c, int t, const float **k, const float **g, float *gbuf)
{
	if (t >= c->p0) {
		const float *gr = c->gt + (size_t)(t - c->p0) * c->cd;
		const float *ap = c->ape + (size_t)imod(t, c->r) * c->cd;
		for (int i = 0; i < c->cd; i++) gbuf[i] = gr[i] + ap[i];
		*k = c->kt + (size_t)(t - c->p0) * c->cd;
		*g = gbuf;
		return;
	}
	int row;
	if (c->r != 4) row = imod(t, c->r);
	else row = t >= c->cur0 ? c->r + imod(t, c->r) : imod(t, c->r);
	*k = c->K + (size_t)row * c->cd;
	*g = c->G + (size_t)row * c->cd;
}

void cpu_compress(struct kern *k, float *u, float *Kst, float *Gst, const float *kt, const float *gt,
		  const float *ape, int S, int p0, int r, int d)
{
	const int ov = r == 4, c = 1 + ov, cd = c * d, nc = c * r; /* candidates per channel */
	struct comp C = { Kst, Gst, kt, gt, ape, p0, r, d, cd, (p0 / r) * r };
	/* scratch: candidate (k, g) pointers + g buffers [nc, cd] */
	float *gbuf = cpu_scratch(k, 0);
	const float *ck[256], *cg[256]; /* nc = 8 (ratio 4) or 128 */
	int w0 = p0 / r, w1 = (p0 + S) / r;
	for (int w = w0; w < w1; w++) {
		for (int j = 0; j < nc; j++) {
			/* ratio 4: candidates 0..r-1 = window w-1 (first half), r..2r-1 = window w */
			int t = ov ? (w - 1) * r + j : w * r + j;
			tok_row(&C, t, &ck[j], &cg[j], gbuf + (size_t)j * cd);
		}
		float *uw = u + (size_t)(w - w0) * d;
		for (int ch = 0; ch < d; ch++) {
			float mx = -INFINITY, sum = 0, acc = 0;
			for (int j = 0; j < nc; j++) {
				int col = ov && j >= r ? d + ch : ch;
				if (cg[j][col] > mx) mx = cg[j][col];
			}
			float *e = gbuf + (size_t)nc * cd; /* [nc] */
			for (int j = 0; j < nc; j++) {
				int col = ov && j >= r ? d + ch : ch;
				e[j] = expf(cg[j][col] - mx);
				sum += e[j];
			}
			for (int j = 0; j < nc; j++) {
				int col = ov && j >= r ? d + ch : ch;
				acc += (e[j] / sum) * ck[j][col];
			}
			uw[ch] = acc;
		}
	}
	/* State update equal to streaming: ratio 4 first copies the last completed
	 * window into the previous-window rows (reading the state before it changes),
	 * then the latest token of each residue goes to its slot / current row. */
	if (ov && w1 > w0) {
		int wl = w1 - 1;
		for (int i = 0; i < r; i++) {
			const float *kr, *gr;
			float *gb = gbuf + (size_t)i * cd;
			tok_row(&C, wl * r + i, &kr, &gr, gb);
			/* rows [0, r) are never a source here: window wl >= w0 is current or in the call */
			memmove(Kst + (size_t)i * cd, kr, (size_t)cd * sizeof(float));
			memmove(Gst + (size_t)i * cd, gr, (size_t)cd * sizeof(float));
		}
	}
	int tfirst = p0 + S - r > p0 ? p0 + S - r : p0;
	for (int t = tfirst; t < p0 + S; t++) {
		int row = (ov ? r : 0) + imod(t, r);
		const float *gr = gt + (size_t)(t - p0) * cd, *ap = ape + (size_t)imod(t, r) * cd;
		memcpy(Kst + (size_t)row * cd, kt + (size_t)(t - p0) * cd, (size_t)cd * sizeof(float));
		for (int i = 0; i < cd; i++) Gst[(size_t)row * cd + i] = gr[i] + ap[i];
	}
}
