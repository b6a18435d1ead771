/* tests/test_lt_scale.c - the host-side rules of the cuBLASLt FP8 path
 * (kernels/cuda/lt.h), CPU only: the E8M0 -> f32 weight-scale grid against values
 * known from MODEL.md §10.4 (2^(e-127), 0xFF NaN) in cuBLASLt's padded
 * BLK128x128 layout, and which gemm_fp8 calls the path may take (act_quant on, whole
 * 128-blocks along K, 16-byte alignment).  Exact comparisons; failures print index,
 * got and expected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/lt.h"
#include "testutil.h"

static void t_known_codes(void)
{
	/* byte, value: §10.4 E8M0 = 2^(e-127) for e <= 254 */
	const struct { uint8_t b; float v; } tab[] = {
		{ 127, 1.0f }, { 128, 2.0f }, { 126, 0.5f }, { 120, 0.0078125f }, { 134, 128.0f },
		{ 0, 0x1p-127f }, { 1, 0x1p-126f }, { 254, 0x1p127f },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		float out[4];
		kern_lt_wscale_f32(out, &tab[i].b, 1, 128); /* one block, row padded to 4 */
		TU_CHECK(out[0] == tab[i].v, "code 0x%02x: got %.9g, expected %.9g", tab[i].b, out[0], tab[i].v);
		for (int j = 1; j < 4; j++) TU_CHECK(out[j] == 0.0f, "code 0x%02x: padding [%d]: got %g, expected 0", tab[i].b, j, out[j]);
	}
	uint8_t nan_code = 0xFF;
	float out[4];
	kern_lt_wscale_f32(out, &nan_code, 100, 128);
	TU_CHECK(isnan(out[0]), "code 0xff: got %g, expected NaN", out[0]);
}

static void t_layout(void)
{
	/* ceil(k/128) rounded up to 4 */
	const int ks[][2] = { { 128, 4 }, { 512, 4 }, { 640, 8 }, { 1024, 8 }, { 4096, 32 }, { 8192, 64 }, { 200, 4 }, { 4224, 36 } };
	for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
		TU_CHECK(kern_lt_ldk(ks[i][0]) == ks[i][1], "ldk(k=%d): got %d, expected %d", ks[i][0], kern_lt_ldk(ks[i][0]), ks[i][1]);
	/* n = 300 (3 block rows, the last partial), k = 640 (5 blocks, padded to 8) */
	const int n = 300, k = 640, nb = 3, kb = 5, ldk = 8;
	TU_CHECK(kern_lt_wscale_count(n, k) == (size_t)nb * ldk, "count: got %zu, expected %d", kern_lt_wscale_count(n, k), nb * ldk);
	uint8_t s[15];
	for (int i = 0; i < nb * kb; i++) s[i] = (uint8_t)(110 + 2 * i);
	float out[24];
	for (int i = 0; i < 24; i++) out[i] = -1.0f;
	kern_lt_wscale_f32(out, s, n, k);
	for (int r = 0; r < nb; r++)
		for (int j = 0; j < ldk; j++) {
			double exp = j < kb ? ldexp(1.0, s[r * kb + j] - 127) : 0.0;
			TU_CHECK(out[r * ldk + j] == exp, "grid [%d, %d]: got %.9g, expected %.9g", r, j, out[r * ldk + j], exp);
		}
}

static void t_fits(void)
{
	const uintptr_t A = 0x10000; /* 16-byte aligned */
	const unsigned F = KERN_RND | KERN_QNT, E = KERN_QNT;
	struct { int n, k, ldy; unsigned nm; uintptr_t w, s, y; int exp; const char *why; } tab[] = {
		{ 1024, 4096, 1024, F, A, A, A, 1, "wq_a faithful" },
		{ 1024, 4096, 1024, E, A, A, A, 1, "wq_a exact" },
		{ 32768, 1024, 32768, F, A, A, A, 1, "wq_b" },
		{ 4096, 8192, 4100, F, A, A, A, 1, "wo_b, wider y rows" },
		{ 1024, 4096, 1024, 0, A, A, A, 0, "smooth: no act_quant" },
		{ 1024, 4096, 1024, KERN_RND, A, A, A, 0, "RND without QNT" },
		{ 256, 200, 256, F, A, A, A, 0, "k = 200" },
		{ 256, 4160, 256, F, A, A, A, 0, "k = 4160 (32.5 blocks)" },
		{ 200, 512, 200, F, A, A, A, 0, "n = 200 (not a multiple of 16)" },
		{ 256, 512, 270, F, A, A, A, 0, "ldy = 270 (rows not 16-byte aligned)" },
		{ 256, 512, 128, F, A, A, A, 0, "ldy < n" },
		{ 256, 512, 256, F, A + 8, A, A, 0, "weight 8 bytes off" },
		{ 256, 512, 256, F, A, A, A + 4, 0, "y 4 bytes off" },
		{ 256, 512, 256, F, A, 0, A, 0, "no scales" },
		{ 0, 512, 256, F, A, A, A, 0, "n = 0" },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		int got = kern_lt_fits(tab[i].n, tab[i].k, tab[i].ldy, tab[i].nm, tab[i].w, tab[i].s, tab[i].y);
		TU_CHECK(got == tab[i].exp, "fits case %zu (%s): got %d, expected %d", i, tab[i].why, got, tab[i].exp);
	}
}

int main(void)
{
	t_known_codes();
	t_layout();
	t_fits();
	TU_DONE();
}
