/* Number formats against golden/units (bit-exact), Hadamard at 1e-6 relative. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numfmt.h"
#include "testutil.h"

static char g_dir[1024];

static void *load(const char *name, size_t want_bytes)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/%s.bin", g_dir, name);
	size_t n;
	void *b = tu_read_file(p, &n);
	if (!b || n != want_bytes) {
		fprintf(stderr, "%s: %zu bytes, expected %zu\n", p, b ? n : 0, want_bytes);
		exit(1);
	}
	return b;
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void check_qdq(const char *in, const char *out, int rows, int cols, int block, int fp4)
{
	float *x = load(in, (size_t)rows * cols * 4), *y = load(out, (size_t)rows * cols * 4);
	int bad = 0;
	for (int r = 0; r < rows; r++) {
		if (fp4) core_qdq4(x + r * cols, cols, block);
		else core_qdq8(x + r * cols, cols, block);
		for (int c = 0; c < cols; c++) {
			int i = r * cols + c;
			if (bits(x[i]) != bits(y[i]) && bad++ < 5)
				TU_CHECK(0, "%s [%d,%d]: got %a expected %a", in, r, c, x[i], y[i]);
		}
	}
	TU_CHECK(bad == 0, "%s: %d mismatches (bit-exact required)", in, bad);
	free(x);
	free(y);
}

int main(void)
{
	const char *sh = tu_shared_dir();
	if (sh) snprintf(g_dir, sizeof g_dir, "%s/golden/units", sh);
	else if (getenv("NV_TESTDATA")) snprintf(g_dir, sizeof g_dir, "%s/units", getenv("NV_TESTDATA"));
	else tu_skip("neither ../shared nor tests/data available");
	printf("units from %s\n", g_dir);

	/* E4M3 encoder: bit-exact codes. */
	float *ein = load("e4m3_in", 1020 * 4);
	int32_t *ecode = load("e4m3_code", 1020 * 4);
	for (int i = 0; i < 1020; i++) {
		int got = core_f32_to_e4m3(ein[i]);
		TU_CHECK(got == ecode[i], "e4m3[%d] in %a: got 0x%02x expected 0x%02x", i, ein[i], got, ecode[i]);
	}
	/* FP4 encoder. */
	float *fin = load("fp4_in", 513 * 4);
	int32_t *fcode = load("fp4_code", 513 * 4);
	for (int i = 0; i < 513; i++) {
		int got = core_f32_to_e2m1(fin[i]);
		TU_CHECK(got == fcode[i], "fp4[%d] in %a: got %d expected %d", i, fin[i], got, fcode[i]);
	}
	/* bf16 RNE. */
	float *bin = load("bf16_in", 1998 * 4), *bout = load("bf16_out", 1998 * 4);
	for (int i = 0; i < 1998; i++) {
		float got = core_round_bf16(bin[i]);
		int same = bits(got) == bits(bout[i]) || (isnan(got) && isnan(bout[i]));
		TU_CHECK(same, "bf16[%d] in %a: got %a expected %a", i, bin[i], got, bout[i]);
	}
	/* Decoders: every non-NaN code round-trips through its value (known property),
	 * and the table agrees with the function. */
	for (int b = 0; b < 256; b++) {
		float v = core_e4m3_to_f32((uint8_t)b);
		if ((b & 0x7f) == 0x7f) { TU_CHECK(isnan(v) && isnan(core_e4m3_table[b]), "e4m3 0x%02x not NaN", b); continue; }
		TU_CHECK(core_f32_to_e4m3(v) == b || (v == 0 && (b & 0x7f) == 0), "e4m3 0x%02x -> %a -> 0x%02x", b, v, core_f32_to_e4m3(v));
		TU_CHECK(bits(v) == bits(core_e4m3_table[b]), "e4m3 table 0x%02x: %a vs %a", b, core_e4m3_table[b], v);
	}
	TU_CHECK(core_e4m3_to_f32(0x7e) == 448.0f, "e4m3 0x7e = %a, expected 448", core_e4m3_to_f32(0x7e));
	TU_CHECK(core_e4m3_to_f32(0x01) == 0x1p-9f, "e4m3 0x01 = %a, expected 2^-9", core_e4m3_to_f32(0x01));
	for (int c = 0; c < 16; c++)
		TU_CHECK(core_f32_to_e2m1(core_e2m1_to_f32((uint8_t)c)) == c, "e2m1 code %d does not round-trip", c);
	TU_CHECK(core_e8m0_to_f32(127) == 1.0f && core_e8m0_to_f32(0) == 0x1p-127f &&
		 core_e8m0_to_f32(254) == 0x1p127f && isnan(core_e8m0_to_f32(255)), "e8m0 decode");
	/* Saturation and NaN rules of MODEL.md §10.3. */
	TU_CHECK(core_f32_to_e4m3(INFINITY) == 0x7e && core_f32_to_e4m3(-1e6f) == 0xfe &&
		 core_f32_to_e4m3(NAN) == 0x7f && core_f32_to_e4m3(0x1p-10f) == 0, "e4m3 saturation / NaN / tie-to-zero");

	check_qdq("act_fp8_b128_in", "act_fp8_b128_out", 16, 256, 128, 0);
	check_qdq("act_fp8_b64_in", "act_fp8_b64_out", 16, 128, 64, 0);
	check_qdq("act_fp4_b32_in", "act_fp4_b32_out", 16, 128, 32, 1);

	/* Hadamard: f32 butterflies vs float64 truth, tolerance 1e-6 of the row's max. */
	float *hin = load("hadamard128_in", 4 * 128 * 4);
	double *hout = load("hadamard128_out", 4 * 128 * 8);
	for (int r = 0; r < 4; r++) {
		core_hadamard(hin + r * 128, 128, 0);
		double mx = 0;
		for (int i = 0; i < 128; i++) mx = fmax(mx, fabs(hout[r * 128 + i]));
		for (int i = 0; i < 128; i++) {
			double d = fabs(hin[r * 128 + i] - hout[r * 128 + i]);
			TU_CHECK(d <= 1e-6 * mx, "hadamard[%d,%d]: got %.9g expected %.9g", r, i, hin[r * 128 + i], hout[r * 128 + i]);
		}
	}
	free(ein); free(ecode); free(fin); free(fcode); free(bin); free(bout); free(hin); free(hout);
	TU_DONE();
}
