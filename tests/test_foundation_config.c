/* tests/test_foundation_config.c - config rules R1-R7 (TINY.md §1) and the expected
 * tensor set (CHECKPOINT.md §4), against numbers stated in the spec:
 *   release config: 69,187 tensors, 159,609,485,896 bytes, per-block counts of §4.1;
 *   TINY-CI: 585 tensors, 11,242,256 bytes;
 *   golden tiny-a / tiny-b: the set equals their checkpoints' headers (read here with
 *   cJSON directly, not with the reader under test).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/config.h"
#include "testutil.h"

static char *g_release, *g_tinyci;

static char *load(const char *name)
{
	char p[1024];
	const char *d = getenv("NV_TESTDATA");
	snprintf(p, sizeof p, "%s/foundation/%s", d ? d : "tests/data", name);
	char *s = tu_read_file(p, NULL);
	if (!s) { fprintf(stderr, "missing test data %s\n", p); exit(1); }
	return s;
}

/* Parse a config after replacing `"key": <old>` by `"key": <val>` (or deleting the key
 * when val is NULL).  Returns rc; msg gets the error string. */
static int parse_patched(const char *base, const char *key, const char *val, char *msg, size_t n)
{
	cJSON *root = cJSON_Parse(base);
	if (!root) { fprintf(stderr, "bad base json\n"); exit(1); }
	if (val) {
		cJSON *v = cJSON_Parse(val);
		if (!v) { fprintf(stderr, "bad value json %s\n", val); exit(1); }
		if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, v);
		else cJSON_AddItemToObject(root, key, v);
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(root, key);
	}
	char *txt = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	struct core_config c;
	struct nv_err e;
	core_err_clear(&e);
	int rc = core_config_parse(txt, strlen(txt), "config.json", &c, &e);
	free(txt);
	if (msg) core_err_str(&e, msg, n);
	return rc;
}

static void expect_ok(const char *base, const char *key, const char *val)
{
	char msg[2048];
	int rc = parse_patched(base, key, val, msg, sizeof msg);
	TU_CHECK(rc == 0, "%s = %s must be accepted, got: %s", key, val ? val : "(deleted)", msg);
}

static void expect_err(const char *base, const char *key, const char *val, const char *needle)
{
	char msg[2048];
	int rc = parse_patched(base, key, val, msg, sizeof msg);
	TU_CHECK(rc != 0, "%s = %s must be rejected", key, val ? val : "(deleted)");
	if (rc) TU_CHECK(strstr(msg, needle) != NULL, "%s = %s: message '%s' lacks '%s'", key,
			 val ? val : "(deleted)", msg, needle);
}

static void test_rules(void)
{
	const char *R = g_release, *T = g_tinyci;
	expect_ok(R, "vocab_size", "129280");
	expect_ok(T, "vocab_size", "512");
	/* check 1 */
	expect_err(R, "compress_ratios", NULL, "config.json: missing key 'compress_ratios'");
	expect_err(R, "hidden_size", NULL, "missing key 'hidden_size'");
	expect_err(R, "rope_scaling", NULL, "missing key 'rope_scaling.factor'");
	expect_err(R, "hidden_size", "\"4096\"", "'hidden_size' must be an integer");
	expect_err(R, "hidden_size", "4096.5", "'hidden_size' must be an integer");
	/* check 2 / R5: the spec's own example message */
	expect_err(R, "compress_ratios",
		   "[0, 0, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, "
		   "128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4]",
		   "config.json: compress_ratios has 43 entries, expected 44 (43 layers + 1 MTP)");
	expect_err(T, "compress_ratios", "[0, 4, 128, 0, 4, 16, 0]", "compress_ratios[5] is 16, expected 0, 4 or 128");
	expect_err(T, "compress_ratios", "[0, 4, 128, 0, 4, 128, -4]", "compress_ratios[6] is -4");
	/* MTP entry 4 or 128 is valid */
	expect_ok(T, "compress_ratios", "[0, 4, 128, 0, 4, 128, 4]");
	expect_ok(T, "compress_ratios", "[0, 4, 128, 0, 4, 128, 128]");
	/* R1 */
	expect_err(T, "hidden_size", "320", "'hidden_size' is 320, expected a positive multiple of 128 (R1)");
	expect_err(T, "q_lora_rank", "64", "(R1)");
	expect_err(T, "moe_intermediate_size", "192", "(R1)");
	expect_err(T, "o_lora_rank", "96", "o_groups * o_lora_rank is 2 * 96 = 192");
	expect_ok(T, "o_lora_rank", "64"); /* 2 * 64 = 128 */
	/* R2 */
	expect_err(T, "qk_rope_head_dim", "63", "(R2)");
	expect_err(T, "qk_rope_head_dim", "0", "(R2)");
	expect_err(T, "head_dim", "96", "head_dim - qk_rope_head_dim is 96 - 64 = 32");
	expect_err(T, "head_dim", "64", "(R2)");
	expect_ok(T, "head_dim", "192"); /* partial 128-block in wkv: valid */
	/* R3 */
	expect_err(T, "index_head_dim", "96", "(R3)");
	expect_err(T, "index_head_dim", "16", "(R3)");
	expect_ok(T, "index_head_dim", "64"); /* == qk_rope_head_dim: valid */
	expect_err(T, "index_head_dim", "32", "(R3)"); /* < rope dim */
	/* R4: 4 heads * 256 = 1024 over 3 groups; 3 * 128 = 384 keeps R1 */
	{
		cJSON *root = cJSON_Parse(T);
		cJSON_ReplaceItemInObjectCaseSensitive(root, "o_groups", cJSON_CreateNumber(3));
		char *txt = cJSON_PrintUnformatted(root);
		cJSON_Delete(root);
		expect_err(txt, "o_lora_rank", "128", "not divisible by o_groups = 3 (R4)");
		free(txt);
	}
	expect_ok(T, "o_groups", "8"); /* 8 * 128 = 1024 (R1); 1024 % 8 == 0; slices of half heads are fine */
	/* R6 */
	expect_err(T, "num_hash_layers", "7", "(R6)");
	expect_ok(T, "num_hash_layers", "6");
	expect_ok(T, "num_hash_layers", "0");
	expect_err(T, "num_experts_per_tok", "9", "(R6)");
	expect_err(T, "num_experts_per_tok", "0", "(R6)");
	expect_err(T, "n_shared_experts", "2", "(R6)");
	expect_ok(T, "n_shared_experts", NULL); /* absent: defaults to 1 */
	/* R7 */
	expect_err(T, "sliding_window", "0", "'sliding_window' is 0, expected >= 1 (R7)");
	expect_err(T, "hc_mult", "0", "(R7)");
	expect_err(T, "swiglu_limit", "-1", "(R7");
	expect_ok(T, "swiglu_limit", "0");
	expect_ok(T, "hc_mult", "2");
	expect_ok(T, "routed_scaling_factor", "2.5");
	expect_ok(T, "rms_norm_eps", "1e-5");
	/* num_nextn_predict_layers = 0 needs one ratio fewer */
	{
		cJSON *root = cJSON_Parse(T);
		cJSON_ReplaceItemInObjectCaseSensitive(root, "num_nextn_predict_layers", cJSON_CreateNumber(0));
		char *txt = cJSON_PrintUnformatted(root);
		cJSON_Delete(root);
		expect_err(txt, "vocab_size", "512", "compress_ratios has 7 entries, expected 6 (6 layers + 0 MTP)");
		expect_ok(txt, "compress_ratios", "[0, 4, 128, 0, 4, 128]");
		free(txt);
	}
	/* not JSON */
	struct core_config c;
	struct nv_err e;
	char msg[1024];
	int rc = core_config_parse("{\"a\": ", 6, "config.json", &c, &e);
	TU_CHECK(rc != 0 && strstr(core_err_str(&e, msg, sizeof msg), "not valid JSON"), "bad JSON: %s", msg);
	rc = core_config_parse("[1]", 3, "config.json", &c, &e);
	TU_CHECK(rc != 0 && strstr(core_err_str(&e, msg, sizeof msg), "not a JSON object"), "list: %s", msg);
	/* values read */
	rc = core_config_parse(T, strlen(T), "config.json", &c, &e);
	TU_CHECK(rc == 0, "TINY-CI parse: %s", core_err_str(&e, msg, sizeof msg));
	TU_CHECK(c.head_dim == 256 && c.index_topk == 40 && c.n_compress_ratios == 7 && c.compress_ratios[5] == 128 &&
		 c.rope_factor == 16 && c.rope_orig_max_pos == 65536 && c.beta_fast == 32 && c.beta_slow == 1 &&
		 c.swiglu_limit == 10.0 && c.routed_scaling_factor == 1.5 && c.hc_eps == 1e-6 && c.eos_token_id == 1,
		 "TINY-CI values not read back as written");
	/* load from a missing dir */
	rc = core_config_load("/nonexistent-dir-nvmoe", &c, &e);
	TU_CHECK(rc == NV_EMISSING && strstr(core_err_str(&e, msg, sizeof msg), "/nonexistent-dir-nvmoe/config.json"),
		 "missing dir: rc %d %s", rc, msg);
}

static const struct core_tensor_spec *find(const struct core_tensor_spec *s, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s[i].name, name)) return &s[i];
	return NULL;
}

static void check_shape(const struct core_tensor_spec *s, size_t n, const char *name, enum core_dtype dt,
			int64_t d0, int64_t d1)
{
	const struct core_tensor_spec *t = find(s, n, name);
	TU_CHECK(t != NULL, "expected set lacks %s", name);
	if (!t) return;
	TU_CHECK(t->dtype == dt && t->shape[0] == d0 && (t->ndim == 1 || t->shape[1] == d1),
		 "%s: got %s [%lld, %lld], expected %s [%lld, %lld]", name, core_dtype_name(t->dtype),
		 (long long)t->shape[0], (long long)t->shape[1], core_dtype_name(dt), (long long)d0, (long long)d1);
}

static void count_block(const struct core_tensor_spec *s, size_t n, int block, size_t want_n, uint64_t want_ne_bytes)
{
	size_t cnt = 0;
	uint64_t ne = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].block == block) {
			cnt++;
			if (s[i].expert < 0) ne += core_spec_nbytes(&s[i]);
		}
	TU_CHECK(cnt == want_n, "block %d: %zu tensors, expected %zu", block, cnt, want_n);
	TU_CHECK(ne == want_ne_bytes, "block %d: %llu non-expert bytes, expected %llu", block, (unsigned long long)ne,
		 (unsigned long long)want_ne_bytes);
}

static void totals(const char *json, const char *what, size_t want_n, uint64_t want_bytes,
		   struct core_tensor_spec **out, size_t *nout, struct core_config *cfg)
{
	struct nv_err e;
	char msg[1024];
	int rc = core_config_parse(json, strlen(json), "config.json", cfg, &e);
	TU_CHECK(rc == 0, "%s: %s", what, core_err_str(&e, msg, sizeof msg));
	rc = core_expected_tensors(cfg, out, nout, &e);
	TU_CHECK(rc == 0, "%s expected: %s", what, core_err_str(&e, msg, sizeof msg));
	uint64_t b = 0;
	for (size_t i = 0; i < *nout; i++) b += core_spec_nbytes(&(*out)[i]);
	TU_CHECK(*nout == want_n, "%s: %zu tensors, expected %zu", what, *nout, want_n);
	TU_CHECK(b == want_bytes, "%s: %llu bytes, expected %llu", what, (unsigned long long)b,
		 (unsigned long long)want_bytes);
	/* names unique */
	for (size_t i = 0; i < *nout && *nout < 2000; i++)
		for (size_t j = i + 1; j < *nout; j++)
			TU_CHECK(strcmp((*out)[i].name, (*out)[j].name), "%s: duplicate name %s", what, (*out)[i].name);
}

static void test_expected(void)
{
	struct core_config c;
	struct core_tensor_spec *s;
	size_t n;
	/* CHECKPOINT.md §4.2 */
	totals(g_release, "release", 69187, 159609485896ull, &s, &n, &c);
	/* §4.1 per block: tensors and non-expert bytes */
	count_block(s, n, 0, 1565, 143596888);
	count_block(s, n, 1, 1565, 143596888);
	count_block(s, n, 2, 1576, 173503576);
	count_block(s, n, 4, 1576, 167299160);
	count_block(s, n, 42, 1576, 167299160);
	count_block(s, n, 3, 1569, 146044248);
	count_block(s, n, 41, 1569, 146044248);
	count_block(s, n, 43, 1575, 171235692);
	count_block(s, n, -1, 6, 2118393876);
	uint64_t routed = 0, experts = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].expert >= 0 && s[i].block < 43) { routed += core_spec_nbytes(&s[i]); experts++; }
	TU_CHECK(routed == 147169738752ull, "release routed main bytes %llu, expected 147169738752",
		 (unsigned long long)routed);
	/* dtype counts, CHECKPOINT.md §2.1 */
	size_t dc[CORE_DT_COUNT] = {0};
	for (size_t i = 0; i < n; i++) dc[s[i].dtype]++;
	TU_CHECK(dc[CORE_DT_BF16] == 433 && dc[CORE_DT_F32] == 417 && dc[CORE_DT_F8_E4M3] == 375 &&
		 dc[CORE_DT_F8_E8M0] == 34167 && dc[CORE_DT_I8] == 33792 && dc[CORE_DT_I64] == 3,
		 "release dtype counts BF16 %zu F32 %zu E4M3 %zu E8M0 %zu I8 %zu I64 %zu, expected 433 417 375 34167 33792 3",
		 dc[CORE_DT_BF16], dc[CORE_DT_F32], dc[CORE_DT_F8_E4M3], dc[CORE_DT_F8_E8M0], dc[CORE_DT_I8], dc[CORE_DT_I64]);
	check_shape(s, n, "layers.3.attn.compressor.ape", CORE_DT_F32, 128, 512);
	check_shape(s, n, "layers.2.attn.compressor.ape", CORE_DT_F32, 4, 1024);
	check_shape(s, n, "layers.2.ffn.gate.tid2eid", CORE_DT_I64, 129280, 6);
	check_shape(s, n, "layers.3.ffn.gate.bias", CORE_DT_F32, 256, 0);
	check_shape(s, n, "mtp.0.ffn.gate.bias", CORE_DT_F32, 256, 0);
	check_shape(s, n, "layers.7.ffn.experts.255.w2.scale", CORE_DT_F8_E8M0, 4096, 64);
	check_shape(s, n, "layers.7.attn.wo_a.scale", CORE_DT_F8_E8M0, 64, 32);
	check_shape(s, n, "mtp.0.e_proj.scale", CORE_DT_F8_E8M0, 32, 32);
	TU_CHECK(!find(s, n, "layers.3.ffn.gate.tid2eid") && !find(s, n, "mtp.0.attn.compressor.ape") &&
		 !find(s, n, "layers.3.attn.indexer.wq_b.weight") && !find(s, n, "layers.2.ffn.gate.bias"),
		 "release: a family present where CHECKPOINT.md §4.1 says absent");
	free(s);

	/* TINY.md §3 */
	totals(g_tinyci, "TINY-CI", 585, 11242256, &s, &n, &c);
	check_shape(s, n, "layers.1.attn.compressor.ape", CORE_DT_F32, 4, 512);
	check_shape(s, n, "layers.2.attn.compressor.ape", CORE_DT_F32, 128, 256);
	check_shape(s, n, "layers.0.attn.wo_a.weight", CORE_DT_F8_E4M3, 256, 512);
	check_shape(s, n, "layers.0.attn.wq_b.scale", CORE_DT_F8_E8M0, 8, 1);
	check_shape(s, n, "layers.4.attn.indexer.wq_b.scale", CORE_DT_F8_E8M0, 4, 1);
	check_shape(s, n, "layers.0.ffn.experts.7.w2.weight", CORE_DT_I8, 256, 64);
	check_shape(s, n, "mtp.0.hc_head_fn", CORE_DT_F32, 4, 1024);
	/* non-expert bytes of the TINY-CI MTP block, summed from the TINY.md §3 table */
	const uint64_t mtp_ne = 2 * 512 + 2 * (24 * 1024 * 4 + 24 * 4 + 12) + 4 * 4 + 128 * 2 + 256 * 2 +
		(128 * 256 + 2) + (1024 * 128 + 8) + (256 * 256 + 4) + (256 * 512 + 8) + (256 * 256 + 4) +
		8 * 256 * 2 + 8 * 4 + 3 * (128 * 256 + 2) + 2 * (256 * 256 + 4) + 3 * 512 + 4 * 1024 * 4 + 16 + 4;
	count_block(s, n, 6, 39 + 48, mtp_ne);
	free(s);

	/* MTP of ratio 4 / 128 carries that family under mtp.0. */
	char *t4 = strdup(g_tinyci);
	char *p = strstr(t4, "[0, 4, 128, 0, 4, 128, 0]");
	CHECK(p);
	memcpy(p, "[0, 4, 128, 0, 4, 128, 4]", 25);
	totals(t4, "TINY-CI mtp4", 585 + 11, 11242256 + 512 * 256 * 2 * 2 + 4 * 512 * 4 + 512 + (512 * 128 + 4) +
	       4 * 256 * 2 + (4 * 256 * 4) + 2 * 256 * 256 * 2 + 256, &s, &n, &c);
	check_shape(s, n, "mtp.0.attn.compressor.ape", CORE_DT_F32, 4, 512);
	check_shape(s, n, "mtp.0.attn.indexer.compressor.norm.weight", CORE_DT_BF16, 128, 0);
	free(s);
	free(t4);
	cJSON *root = cJSON_Parse(g_tinyci);
	cJSON_ReplaceItemInObjectCaseSensitive(root, "compress_ratios", cJSON_Parse("[0, 4, 128, 0, 4, 128, 128]"));
	/* partial 128-blocks: head_dim 192 (wkv out), heads*head_dim/o_groups = 384 */
	cJSON_ReplaceItemInObjectCaseSensitive(root, "head_dim", cJSON_CreateNumber(192));
	char *t128 = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	struct nv_err e;
	char msg[512];
	int rc = core_config_parse(t128, strlen(t128), "config.json", &c, &e);
	TU_CHECK(rc == 0, "head_dim 192: %s", core_err_str(&e, msg, sizeof msg));
	rc = core_expected_tensors(&c, &s, &n, &e);
	TU_CHECK(rc == 0 && n == 585 + 4, "mtp128: %zu tensors, expected 589", n);
	check_shape(s, n, "mtp.0.attn.compressor.ape", CORE_DT_F32, 128, 192);
	check_shape(s, n, "layers.0.attn.wkv.scale", CORE_DT_F8_E8M0, 2, 2);       /* ceil(192/128) */
	check_shape(s, n, "layers.0.attn.wq_b.scale", CORE_DT_F8_E8M0, 6, 1);      /* 768/128 */
	check_shape(s, n, "layers.0.attn.wo_a.weight", CORE_DT_F8_E4M3, 256, 384);
	check_shape(s, n, "layers.0.attn.wo_a.scale", CORE_DT_F8_E8M0, 2, 3);
	free(s);
	free(t128);
}

/* Golden checkpoints: the generated set equals the set in their headers. */
static void test_golden(const char *shared, const char *cas)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/golden/%s/ckpt", shared, cas);
	struct core_config c;
	struct nv_err e;
	char msg[1024];
	int rc = core_config_load(p, &c, &e);
	TU_CHECK(rc == 0, "%s config: %s", cas, core_err_str(&e, msg, sizeof msg));
	if (rc) return;
	struct core_tensor_spec *s;
	size_t n;
	rc = core_expected_tensors(&c, &s, &n, &e);
	TU_CHECK(rc == 0, "%s expected", cas);
	if (rc) return;
	int *seen = calloc(n, sizeof *seen);
	size_t found = 0;
	for (int shard = 1; shard <= 2; shard++) {
		char f[1200];
		snprintf(f, sizeof f, "%s/model-0000%d-of-00002.safetensors", p, shard);
		size_t len;
		unsigned char *buf = tu_read_file(f, &len);
		if (!buf || len < 8) { TU_CHECK(0, "cannot read %s", f); free(buf); continue; }
		uint64_t hn = 0;
		for (int k = 7; k >= 0; k--) hn = hn << 8 | buf[k];
		cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hn);
		TU_CHECK(h != NULL, "%s: header not JSON", f);
		cJSON *it;
		cJSON_ArrayForEach(it, h) {
			if (!strcmp(it->string, "__metadata__")) continue;
			found++;
			const struct core_tensor_spec *t = find(s, n, it->string);
			TU_CHECK(t != NULL, "%s: %s in checkpoint but not expected", cas, it->string);
			if (!t) continue;
			seen[t - s]++;
			const char *dt = cJSON_GetObjectItem(it, "dtype")->valuestring;
			TU_CHECK(!strcmp(dt, core_dtype_name(t->dtype)), "%s %s: dtype %s expected %s", cas, t->name, dt,
				 core_dtype_name(t->dtype));
			cJSON *sh = cJSON_GetObjectItem(it, "shape");
			TU_CHECK(cJSON_GetArraySize(sh) == t->ndim, "%s %s: ndim", cas, t->name);
			for (int d = 0; d < t->ndim && d < cJSON_GetArraySize(sh); d++)
				TU_CHECK((int64_t)cJSON_GetArrayItem(sh, d)->valuedouble == t->shape[d],
					 "%s %s: shape[%d] %g expected %lld", cas, t->name, d,
					 cJSON_GetArrayItem(sh, d)->valuedouble, (long long)t->shape[d]);
		}
		cJSON_Delete(h);
		free(buf);
	}
	for (size_t i = 0; i < n; i++) TU_CHECK(seen[i] == 1, "%s: %s seen %d times", cas, s[i].name, seen[i]);
	TU_CHECK(found == n, "%s: checkpoint has %zu tensors, expected set %zu", cas, found, n);
	free(seen);
	free(s);
}

int main(void)
{
	g_release = load("release-config.json");
	g_tinyci = load("tiny-ci-config.json");
	test_rules();
	test_expected();
	const char *sh = tu_shared_dir();
	if (sh) {
		test_golden(sh, "tiny-a");
		test_golden(sh, "tiny-b");
	} else {
		printf("note: ../shared absent, golden set comparison skipped\n");
	}
	free(g_release);
	free(g_tinyci);
	TU_DONE();
}
