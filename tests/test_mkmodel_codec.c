/* tests/test_mkmodel_codec.c - mkmodel's table encoders equal the core encoders.
 *
 * The generator encodes E2M1/E4M3 through tables built from core_f32_to_e2m1 and
 * core_f32_to_e4m3 (tools/mkmodel/gen.c explains why that is exact).  Checked here
 * against the core encoders on every float whose low mantissa bits are 0, 1 or
 * all-ones (the ends of every class, where a wrong class split would show), and on
 * 2^24 further floats spread over the whole 32-bit range.
 */
#include <stdio.h>
#include <string.h>

#include "core/numfmt.h"
#include "testutil.h"
#include "tools/mkmodel/gen.h"

static int check(const struct gen_work *w, uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	uint8_t a = gen_e2m1(w, f), b = core_f32_to_e2m1(f) & 15;
	uint8_t c = gen_e4m3(w, f), d = core_f32_to_e4m3(f);
	if (a != b) {
		TU_CHECK(0, "e2m1(0x%08x = %g): table %d, core %d", u, f, a, b);
		return 1;
	}
	if (c != d) {
		TU_CHECK(0, "e4m3(0x%08x = %g): table 0x%02x, core 0x%02x", u, f, c, d);
		return 1;
	}
	return 0;
}

int main(void)
{
	struct gen_work *w = NULL;
	struct core_tensor_spec none;
	memset(&none, 0, sizeof none);
	if (gen_work_create(&none, 0, &w, NULL)) {
		fprintf(stderr, "gen_work_create failed\n");
		return 1;
	}
	int bad = 0;
	/* class ends: top 13 bits (E4M3 classes refine E2M1 classes) x low bits 0, 1, max-1, max */
	for (uint32_t top = 0; top < (1u << 13) && bad < 10; top++) {
		uint32_t base = top << 19;
		bad += check(w, base) + check(w, base | 1) + check(w, base | 0x7FFFE) + check(w, base | 0x7FFFF);
		bad += check(w, base | 0x40000) + check(w, base | 0x3FFFF);
	}
	/* spread: odd stride over all 2^32 patterns */
	uint32_t u = 12345;
	for (uint32_t i = 0; i < (1u << 24) && bad < 10; i++, u += 0x9E3779B1u) bad += check(w, u);
	gen_work_destroy(w);
	TU_DONE();
}
