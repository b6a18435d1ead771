/* tests/fuzz/fuzz_safetensors.c - libFuzzer target for core_st_parse_header.
 *
 * Input: 8 bytes little-endian d, then the header JSON (n bytes).  The parser sees
 * a file of 8 + n + (d mod 2^40) bytes, so an input whose d equals the data length
 * reaches the checks past check 9.  Any crash, leak, UB or hang is a bug; error
 * returns are expected.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8) return 0;
	uint64_t d = 0;
	for (int k = 7; k >= 0; k--) d = d << 8 | data[k];
	size_t n = size - 8;
	/* a private copy without slack, so that ASan sees any read past the header */
	char *json = malloc(n ? n : 1);
	if (!json) return 0;
	memcpy(json, data + 8, n);
	uint64_t file_size = 8 + (uint64_t)n + (d & ((1ull << 40) - 1));
	struct core_tensor *t = NULL;
	size_t nt = 0;
	char *arena = NULL;
	struct nv_err e;
	if (core_st_parse_header(json, n, file_size, "fuzz.safetensors", &t, &nt, &arena, &e) == 0) {
		/* every returned tensor must be consistent with what was checked */
		for (size_t i = 0; i < nt; i++) {
			if (!t[i].name || t[i].file_offset + t[i].nbytes > file_size) abort();
			if (core_dtype_size(t[i].dtype) == 0) abort();
		}
	} else if (t || arena || !e.why[0]) {
		abort(); /* failure must leave nothing allocated and explain itself */
	}
	free(t);
	free(arena);
	free(json);
	return 0;
}
