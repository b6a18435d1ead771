/* tests/fuzz/fuzz_config.c - libFuzzer target for core_config_parse (and, for
 * configs that pass, core_expected_tensors of a bounded size). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size ? size : 1);
	if (!json) return 0;
	memcpy(json, data, size);
	struct core_config c;
	struct nv_err e;
	int rc = core_config_parse(json, size, "config.json", &c, &e);
	if (rc && !e.why[0]) abort();
	/* a config that passes must pass validation again and give a tensor set;
	 * bound the set so the fuzzer's memory limit is not the finding */
	if (!rc) {
		if (core_config_validate(&c, "config.json", &e)) abort();
		if ((int64_t)c.n_routed_experts * core_cfg_nblocks(&c) <= 4096 &&
		    (int64_t)c.vocab_size * c.hidden_size <= (1ll << 26) &&
		    (int64_t)c.num_attention_heads * c.head_dim <= (1ll << 20)) {
			struct core_tensor_spec *s;
			size_t n;
			if (core_expected_tensors(&c, &s, &n, &e) == 0) {
				for (size_t i = 0; i < n; i++)
					if (core_spec_nbytes(&s[i]) == 0 && s[i].ndim) abort();
				free(s);
			}
		}
	}
	free(json);
	return 0;
}
