/* tools/mkmodel/presets.c - configurations (see presets.h). */
#include "presets.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* The released config.json (../shared/ref/deepseek-v4-flash/config.json, newest
 * revision), embedded so that the tool needs no shared data. */
static const char g_release_json[] =
	"{\n"
	"  \"architectures\": [\n"
	"    \"DeepseekV4ForCausalLM\"\n"
	"  ],\n"
	"  \"attention_bias\": false,\n"
	"  \"attention_dropout\": 0.0,\n"
	"  \"bos_token_id\": 0,\n"
	"  \"eos_token_id\": 1,\n"
	"  \"expert_dtype\": \"fp4\",\n"
	"  \"hc_eps\": 1e-06,\n"
	"  \"hc_mult\": 4,\n"
	"  \"hc_sinkhorn_iters\": 20,\n"
	"  \"head_dim\": 512,\n"
	"  \"hidden_act\": \"silu\",\n"
	"  \"hidden_size\": 4096,\n"
	"  \"index_head_dim\": 128,\n"
	"  \"index_n_heads\": 64,\n"
	"  \"index_topk\": 512,\n"
	"  \"initializer_range\": 0.02,\n"
	"  \"max_position_embeddings\": 1048576,\n"
	"  \"model_type\": \"deepseek_v4\",\n"
	"  \"moe_intermediate_size\": 2048,\n"
	"  \"n_routed_experts\": 256,\n"
	"  \"n_shared_experts\": 1,\n"
	"  \"norm_topk_prob\": true,\n"
	"  \"num_attention_heads\": 64,\n"
	"  \"num_experts_per_tok\": 6,\n"
	"  \"num_hidden_layers\": 43,\n"
	"  \"num_hash_layers\": 3,\n"
	"  \"num_key_value_heads\": 1,\n"
	"  \"num_nextn_predict_layers\": 1,\n"
	"  \"o_groups\": 8,\n"
	"  \"o_lora_rank\": 1024,\n"
	"  \"q_lora_rank\": 1024,\n"
	"  \"qk_rope_head_dim\": 64,\n"
	"  \"quantization_config\": {\n"
	"    \"activation_scheme\": \"dynamic\",\n"
	"    \"fmt\": \"e4m3\",\n"
	"    \"quant_method\": \"fp8\",\n"
	"    \"scale_fmt\": \"ue8m0\",\n"
	"    \"weight_block_size\": [\n"
	"      128,\n"
	"      128\n"
	"    ]\n"
	"  },\n"
	"  \"rms_norm_eps\": 1e-06,\n"
	"  \"rope_scaling\": {\n"
	"    \"beta_fast\": 32,\n"
	"    \"beta_slow\": 1,\n"
	"    \"factor\": 16,\n"
	"    \"original_max_position_embeddings\": 65536,\n"
	"    \"type\": \"yarn\"\n"
	"  },\n"
	"  \"rope_theta\": 10000,\n"
	"  \"routed_scaling_factor\": 1.5,\n"
	"  \"scoring_func\": \"sqrtsoftplus\",\n"
	"  \"sliding_window\": 128,\n"
	"  \"swiglu_limit\": 10.0,\n"
	"  \"tie_word_embeddings\": false,\n"
	"  \"topk_method\": \"noaux_tc\",\n"
	"  \"torch_dtype\": \"bfloat16\",\n"
	"  \"transformers_version\": \"4.57.1\",\n"
	"  \"use_cache\": true,\n"
	"  \"vocab_size\": 129280,\n"
	"  \"compress_rope_theta\": 160000,\n"
	"  \"compress_ratios\": [0, 0, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 0]\n"
	"}\n";

/* TINY-CI, TINY.md §3, verbatim. */
static const char g_tiny_ci_json[] =
	"{\n"
	"  \"architectures\": [\"DeepseekV4ForCausalLM\"], \"model_type\": \"deepseek_v4\",\n"
	"  \"vocab_size\": 512, \"hidden_size\": 256, \"num_hidden_layers\": 6, \"num_nextn_predict_layers\": 1,\n"
	"  \"num_hash_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 1,\n"
	"  \"head_dim\": 256, \"qk_rope_head_dim\": 64, \"q_lora_rank\": 128, \"o_groups\": 2, \"o_lora_rank\": 128,\n"
	"  \"sliding_window\": 32, \"compress_ratios\": [0, 4, 128, 0, 4, 128, 0],\n"
	"  \"rope_theta\": 10000, \"compress_rope_theta\": 160000,\n"
	"  \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 16, \"original_max_position_embeddings\": 65536,\n"
	"                   \"beta_fast\": 32, \"beta_slow\": 1},\n"
	"  \"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"n_shared_experts\": 1,\n"
	"  \"moe_intermediate_size\": 128, \"scoring_func\": \"sqrtsoftplus\", \"norm_topk_prob\": true,\n"
	"  \"routed_scaling_factor\": 1.5, \"swiglu_limit\": 10.0, \"topk_method\": \"noaux_tc\",\n"
	"  \"index_n_heads\": 4, \"index_head_dim\": 128, \"index_topk\": 40,\n"
	"  \"hc_mult\": 4, \"hc_sinkhorn_iters\": 20, \"hc_eps\": 1e-06, \"rms_norm_eps\": 1e-06,\n"
	"  \"max_position_embeddings\": 1024, \"bos_token_id\": 0, \"eos_token_id\": 1,\n"
	"  \"hidden_act\": \"silu\", \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\",\n"
	"  \"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\", \"quant_method\": \"fp8\",\n"
	"                          \"scale_fmt\": \"ue8m0\", \"weight_block_size\": [128, 128]}\n"
	"}\n";

struct preset {
	const char *name;
	const char *base;  /* JSON text */
	const char *help;
	const char *sets[40];
};

#define TINY_A_KEYS \
	"hidden_size=256", "num_hidden_layers=6", "num_nextn_predict_layers=1", "num_hash_layers=2", \
	"compress_ratios=[0, 4, 128, 4, 128, 0, 0]", "num_attention_heads=4", "head_dim=128", \
	"qk_rope_head_dim=64", "q_lora_rank=128", "o_groups=2", "o_lora_rank=128", "sliding_window=8", \
	"index_n_heads=16", "index_head_dim=128", "moe_intermediate_size=128", \
	"routed_scaling_factor=1.5", "max_position_embeddings=4096"

static const struct preset g_presets[] = {
	{"tiny-ci", g_tiny_ci_json, "TINY.md §3: 585 tensors, 11,242,256 bytes, 9 shards", {NULL}},
	{"tiny-wide", g_tiny_ci_json, "TINY.md §4: 1,057 tensors, 67,368,312 bytes",
	 {"vocab_size=2048", "hidden_size=512", "num_hidden_layers=7", "num_hash_layers=3",
	  "num_attention_heads=8", "head_dim=512", "q_lora_rank=256", "o_groups=4", "o_lora_rank=128",
	  "sliding_window=128", "compress_ratios=[0, 0, 4, 128, 4, 128, 4, 0]", "n_routed_experts=16",
	  "num_experts_per_tok=4", "moe_intermediate_size=256", "index_n_heads=8", "index_head_dim=128",
	  "index_topk=64", "max_position_embeddings=2048", NULL}},
	{"tiny-a-like", g_release_json, "the golden tiny-a config (TINY.md §2) with generated weights",
	 {TINY_A_KEYS, "vocab_size=512", "index_topk=8", "n_routed_experts=8", "num_experts_per_tok=2",
	  "swiglu_limit=10.0", NULL}},
	{"tiny-b-like", g_release_json, "the golden tiny-b config (TINY.md §2) with generated weights",
	 {TINY_A_KEYS, "vocab_size=768", "index_topk=16", "n_routed_experts=16", "num_experts_per_tok=4",
	  "swiglu_limit=2.0", NULL}},
	{"tiny-mtp4", g_tiny_ci_json, "TINY-CI with a ratio-4 MTP block",
	 {"compress_ratios=[0, 4, 128, 0, 4, 128, 4]", NULL}},
	{"tiny-mtp128", g_tiny_ci_json, "TINY-CI with a ratio-128 MTP block",
	 {"compress_ratios=[0, 4, 128, 0, 4, 128, 128]", NULL}},
	{"tiny-edge", g_tiny_ci_json,
	 "TINY-CI edge cases: partial 128-blocks (3 heads x head_dim 192), index_head_dim == "
	 "qk_rope_head_dim, swiglu_limit 0, ratio-4 MTP",
	 {"num_attention_heads=3", "head_dim=192", "index_n_heads=3", "index_head_dim=64",
	  "swiglu_limit=0.0", "compress_ratios=[0, 4, 128, 0, 4, 128, 4]", NULL}},
	{"demo", g_release_json,
	 "small model with the real vocabulary (129280) for the real tokenizer: ~145 MB",
	 {"hidden_size=256", "num_hidden_layers=4", "num_hash_layers=1", "num_attention_heads=4",
	  "head_dim=128", "q_lora_rank=128", "o_groups=2", "o_lora_rank=128", "sliding_window=64",
	  "compress_ratios=[0, 4, 128, 4, 0]", "n_routed_experts=16", "num_experts_per_tok=4",
	  "moe_intermediate_size=256", "index_n_heads=4", "index_head_dim=128", "index_topk=64",
	  "max_position_embeddings=65536", NULL}},
	{"full", g_release_json,
	 "release dimensions; use --layers N --experts E [--no-mtp] to make it smaller", {NULL}},
	{"release", g_release_json,
	 "the released inventory (69,187 tensors, 159.6 GB; use --sparse); no overrides", {NULL}},
};

const char *const mk_preset_names[] = {
	"tiny-ci", "tiny-wide", "tiny-a-like", "tiny-b-like", "tiny-mtp4", "tiny-mtp128", "tiny-edge",
	"demo", "full", "release", NULL,
};

static const struct preset *find_preset(const char *name)
{
	for (size_t i = 0; i < sizeof g_presets / sizeof g_presets[0]; i++)
		if (!strcmp(g_presets[i].name, name)) return &g_presets[i];
	return NULL;
}

const char *mk_preset_help(const char *name)
{
	const struct preset *p = find_preset(name);
	return p ? p->help : NULL;
}

/* KEY=VALUE; KEY "a.b" addresses a nested object; VALUE is JSON, else a string. */
static int apply_set(cJSON *root, const char *kv, struct nv_err *e)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return core_err_set(e, NV_EINVAL, "--set", kv, "write --set KEY=VALUE, e.g. --set swiglu_limit=0",
				    "expected KEY=VALUE");
	char key[128];
	size_t kn = (size_t)(eq - kv);
	if (kn >= sizeof key)
		return core_err_set(e, NV_EINVAL, "--set", kv, NULL, "key too long");
	memcpy(key, kv, kn);
	key[kn] = 0;
	cJSON *obj = root;
	char *leaf = key, *dot = strchr(key, '.');
	if (dot) {
		*dot = 0;
		leaf = dot + 1;
		obj = cJSON_GetObjectItemCaseSensitive(root, key);
		if (!cJSON_IsObject(obj)) {
			obj = cJSON_CreateObject();
			if (!obj) return NV_ENOMEM;
			cJSON_AddItemToObject(root, key, obj);
		}
	}
	cJSON *val = cJSON_Parse(eq + 1);
	if (!val) val = cJSON_CreateString(eq + 1);
	if (!val) return NV_ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(obj, leaf))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, leaf, val);
	else
		cJSON_AddItemToObject(obj, leaf, val);
	return 0;
}

static int get_int(const cJSON *root, const char *key, int *out, struct nv_err *e)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!cJSON_IsNumber(it))
		return core_err_set(e, NV_EINVAL, "config", key, NULL, "missing or not a number");
	*out = (int)it->valuedouble;
	return 0;
}

static void set_int(cJSON *root, const char *key, int v)
{
	cJSON *n = cJSON_CreateNumber(v);
	if (cJSON_GetObjectItemCaseSensitive(root, key))
		cJSON_ReplaceItemInObjectCaseSensitive(root, key, n);
	else
		cJSON_AddItemToObject(root, key, n);
}

/* --layers N: keep the first N main entries of compress_ratios; beyond the old
 * count, repeat the pattern with period 2 (entry i = entry i-2), which continues
 * the released 4/128 alternation.  MTP entries stay last.  --no-mtp drops them. */
static int apply_layers(cJSON *root, int layers, int no_mtp, struct nv_err *e)
{
	int L = 0, nmtp = 0, nhash = 0;
	int rc = get_int(root, "num_hidden_layers", &L, e);
	if (!rc) rc = get_int(root, "num_nextn_predict_layers", &nmtp, e);
	if (!rc) rc = get_int(root, "num_hash_layers", &nhash, e);
	if (rc) return rc;
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(root, "compress_ratios");
	int n = cJSON_GetArraySize(cr);
	if (!cJSON_IsArray(cr) || n != L + nmtp)
		return core_err_set(e, NV_EINVAL, "config", "compress_ratios", NULL,
				    "has %d entries, expected %d (num_hidden_layers %d + num_nextn_predict_layers %d)",
				    n, L + nmtp, L, nmtp);
	int NL = layers >= 0 ? layers : L, NM = no_mtp ? 0 : nmtp;
	if (NL < 1 || NL + NM > 1000)
		return core_err_set(e, NV_EINVAL, "--layers", NULL, NULL, "%d layers is out of range", NL);
	int *r = calloc((size_t)(NL + NM), sizeof *r);
	if (!r) return NV_ENOMEM;
	for (int i = 0; i < NL; i++)
		r[i] = i < L ? cJSON_GetArrayItem(cr, i)->valueint : (i >= 2 ? r[i - 2] : 0);
	for (int j = 0; j < NM; j++) r[NL + j] = cJSON_GetArrayItem(cr, L + j)->valueint;
	cJSON *arr = cJSON_CreateIntArray(r, NL + NM);
	free(r);
	if (!arr) return NV_ENOMEM;
	cJSON_ReplaceItemInObjectCaseSensitive(root, "compress_ratios", arr);
	set_int(root, "num_hidden_layers", NL);
	set_int(root, "num_nextn_predict_layers", NM);
	if (nhash > NL) set_int(root, "num_hash_layers", NL);
	return 0;
}

int mk_config_build(const char *preset, const char *config_file, const struct mk_overrides *ov,
		    cJSON **out, struct nv_err *e)
{
	const struct preset *p = NULL;
	char *text = NULL;
	const char *src;
	if (preset) {
		p = find_preset(preset);
		if (!p)
			return core_err_set(e, NV_EINVAL, "--preset", preset, "see mkmodel --help for the list",
					    "unknown preset");
		src = p->base;
		if (!strcmp(p->name, "release") &&
		    (ov->layers >= 0 || ov->experts >= 0 || ov->no_mtp || ov->nsets))
			return core_err_set(e, NV_EINVAL, "--preset release", NULL,
					    "use --preset full for a modified release shape",
					    "the release preset takes no overrides");
	} else {
		FILE *f = fopen(config_file, "rb");
		if (!f)
			return core_err_set(e, NV_EMISSING, config_file, NULL, NULL, "cannot open: %s",
					    strerror(errno));
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		text = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
		size_t got = text ? fread(text, 1, (size_t)sz, f) : 0;
		fclose(f);
		if (!text) return core_err_set(e, NV_ENOMEM, config_file, NULL, NULL, "cannot read");
		text[got] = 0;
		src = text;
	}
	cJSON *root = cJSON_Parse(src);
	free(text);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return core_err_set(e, NV_EINVAL, preset ? "preset" : config_file, NULL, NULL,
				    "not a JSON object");
	}
	int rc = 0;
	for (int i = 0; p && !rc && p->sets[i]; i++) rc = apply_set(root, p->sets[i], e);
	if (!rc && (ov->layers >= 0 || ov->no_mtp)) rc = apply_layers(root, ov->layers, ov->no_mtp, e);
	if (!rc && ov->experts >= 0) {
		int k = 0;
		rc = get_int(root, "num_experts_per_tok", &k, e);
		if (!rc) {
			set_int(root, "n_routed_experts", ov->experts);
			if (k > ov->experts) set_int(root, "num_experts_per_tok", ov->experts);
		}
	}
	for (int i = 0; !rc && i < ov->nsets; i++) rc = apply_set(root, ov->sets[i], e);
	if (rc) {
		cJSON_Delete(root);
		return rc == NV_ENOMEM ? core_err_set(e, rc, "mkmodel", NULL, NULL, "out of memory") : rc;
	}
	*out = root;
	return 0;
}

/* ---- printing in the style of the released file ---- */

static int is_float_key(const char *k)
{
	static const char *const keys[] = {"attention_dropout", "swiglu_limit", "routed_scaling_factor",
					   "temperature", "top_p", NULL};
	for (int i = 0; k && keys[i]; i++)
		if (!strcmp(k, keys[i])) return 1;
	return 0;
}

static void pr_num(FILE *f, double v, int force_float)
{
	if (v == floor(v) && fabs(v) < 1e15) {
		fprintf(f, force_float ? "%.1f" : "%.0f", v);
		return;
	}
	char b[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, v);
		if (strtod(b, NULL) == v) break;
	}
	fputs(b, f);
}

static void pr_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
		else if (c < 0x20) fprintf(f, "\\u%04x", c);
		else fputc(c, f);
	}
	fputc('"', f);
}

static int all_numbers(const cJSON *arr)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) if (!cJSON_IsNumber(it)) return 0;
	return 1;
}

static void pr_item(FILE *f, const cJSON *it, int ind)
{
	const cJSON *c;
	/* compress_ratios on one line, as in the released file; other arrays one item a line */
	int inline_arr = cJSON_IsArray(it) && all_numbers(it) && it->string &&
			 !strcmp(it->string, "compress_ratios");
	if (cJSON_IsObject(it) || (cJSON_IsArray(it) && !inline_arr)) {
		int obj = cJSON_IsObject(it);
		if (!it->child) {
			fputs(obj ? "{}" : "[]", f);
			return;
		}
		fputs(obj ? "{\n" : "[\n", f);
		cJSON_ArrayForEach(c, it) {
			fprintf(f, "%*s", ind + 2, "");
			if (obj) {
				pr_str(f, c->string);
				fputs(": ", f);
			}
			if (cJSON_IsNumber(c) && !obj)
				pr_num(f, c->valuedouble, 0);
			else
				pr_item(f, c, ind + 2);
			fputs(c->next ? ",\n" : "\n", f);
		}
		fprintf(f, "%*s%c", ind, "", obj ? '}' : ']');
	} else if (cJSON_IsArray(it)) {
		fputc('[', f);
		cJSON_ArrayForEach(c, it) {
			pr_num(f, c->valuedouble, 0);
			if (c->next) fputs(", ", f);
		}
		fputc(']', f);
	} else if (cJSON_IsNumber(it)) {
		pr_num(f, it->valuedouble, is_float_key(it->string));
	} else if (cJSON_IsString(it)) {
		pr_str(f, it->valuestring);
	} else if (cJSON_IsBool(it)) {
		fputs(cJSON_IsTrue(it) ? "true" : "false", f);
	} else {
		fputs("null", f);
	}
}

char *mk_config_print(const cJSON *root)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f) return NULL;
	pr_item(f, root, 0);
	fputc('\n', f);
	fclose(f);
	return buf;
}
