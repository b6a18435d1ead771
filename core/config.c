/* core/config.c - config.json (HF key names, MODEL.md §1) -> struct core_config,
 * and the configuration rules R1-R7 of TINY.md §1 (CHECKPOINT.md §7 checks 1-2).
 *
 * Required keys are the ones the tensor set or the numerics depend on; a missing
 * one is an error naming it.  Defaults exist only where the release fixes the
 * value by format (n_shared_experts and num_key_value_heads = 1, BOS 0, EOS 1).
 * Keys the runtime does not use (scoring_func, quantization_config, ...) are not
 * checked: check 2 is R1-R7 and nothing stricter.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_NAME "config.json"
/* config.json is small; a larger file is not a config (and would hide a mistake). */
#define CFG_MAX_BYTES (16u << 20)

struct reader {
	const cJSON *root;
	const char *fname;
	struct nv_err *e;
};

static const cJSON *get_path(const cJSON *root, const char *key)
{
	/* "a.b" looks up nested objects (rope_scaling.factor). */
	const char *dot = strchr(key, '.');
	if (!dot) return cJSON_GetObjectItemCaseSensitive(root, key);
	char head[64];
	size_t n = (size_t)(dot - key);
	if (n >= sizeof head) return NULL;
	memcpy(head, key, n);
	head[n] = 0;
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, head);
	if (!cJSON_IsObject(o)) return NULL;
	return get_path(o, dot + 1);
}

static int missing(struct reader *r, const char *key)
{
	return core_err_set(r->e, NV_EMISSING, r->fname, NULL, "the file is not a DeepSeek-V4 config, or it is incomplete",
			    "missing key '%s'", key);
}

/* Integer key: a JSON number with an integral value that fits an int. */
static int get_int(struct reader *r, const char *key, int *out, const int *dflt)
{
	const cJSON *it = get_path(r->root, key);
	if (!it) {
		if (dflt) { *out = *dflt; return 0; }
		return missing(r, key);
	}
	if (!cJSON_IsNumber(it))
		return core_err_set(r->e, NV_EINVAL, r->fname, NULL, NULL, "'%s' must be an integer, found a %s", key,
				    cJSON_IsString(it) ? "string" : cJSON_IsBool(it) ? "boolean" :
				    cJSON_IsArray(it) ? "list" : cJSON_IsObject(it) ? "object" : "null");
	double v = it->valuedouble;
	if (!(v == floor(v)) || v < (double)INT_MIN || v > (double)INT_MAX)
		return core_err_set(r->e, NV_EINVAL, r->fname, NULL, NULL, "'%s' must be an integer, found %.17g", key, v);
	*out = (int)v;
	return 0;
}

static int get_dbl(struct reader *r, const char *key, double *out, const double *dflt)
{
	const cJSON *it = get_path(r->root, key);
	if (!it) {
		if (dflt) { *out = *dflt; return 0; }
		return missing(r, key);
	}
	if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
		return core_err_set(r->e, NV_EINVAL, r->fname, NULL, NULL, "'%s' must be a finite number", key);
	*out = it->valuedouble;
	return 0;
}

static int read_ratios(struct reader *r, struct core_config *c)
{
	const char *key = "compress_ratios";
	const cJSON *a = get_path(r->root, key);
	if (!a) return missing(r, key);
	if (!cJSON_IsArray(a))
		return core_err_set(r->e, NV_EINVAL, r->fname, NULL, NULL, "'%s' must be a list of integers", key);
	int n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, a) {
		if (n == CORE_MAX_BLOCKS)
			return core_err_set(r->e, NV_EUNSUPPORTED, r->fname, NULL, NULL,
					    "'%s' has more than %d entries (this build handles at most %d blocks)",
					    key, CORE_MAX_BLOCKS, CORE_MAX_BLOCKS);
		double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
		if (!(v == floor(v)) || v < INT_MIN || v > INT_MAX)
			return core_err_set(r->e, NV_EINVAL, r->fname, NULL, NULL,
					    "compress_ratios[%d] is not an integer", n);
		c->compress_ratios[n++] = (int)v;
	}
	c->n_compress_ratios = n;
	return 0;
}

int core_config_parse(const char *json, size_t len, const char *fname, struct core_config *c,
		      struct nv_err *e)
{
	if (!fname) fname = CFG_NAME;
	memset(c, 0, sizeof *c);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		size_t at = end && end >= json ? (size_t)(end - json) : 0;
		return core_err_set(e, NV_EINVAL, fname, NULL, "re-download config.json or fix its syntax",
				    "not valid JSON (parse error near byte %zu)", at);
	}
	int rc = 0;
	if (!cJSON_IsObject(root)) {
		rc = core_err_set(e, NV_EINVAL, fname, NULL, NULL, "top level is not a JSON object");
		goto out;
	}
	struct reader r = { root, fname, e };
	static const int one = 1, zero = 0;
#define I(key, dst) do { if ((rc = get_int(&r, key, dst, NULL))) goto out; } while (0)
#define ID(key, dst, d) do { if ((rc = get_int(&r, key, dst, d))) goto out; } while (0)
#define D(key, dst) do { if ((rc = get_dbl(&r, key, dst, NULL))) goto out; } while (0)
	I("vocab_size", &c->vocab_size);
	I("hidden_size", &c->hidden_size);
	I("num_hidden_layers", &c->num_hidden_layers);
	I("num_nextn_predict_layers", &c->num_nextn_predict_layers);
	I("num_hash_layers", &c->num_hash_layers);
	I("num_attention_heads", &c->num_attention_heads);
	ID("num_key_value_heads", &c->num_key_value_heads, &one);
	I("head_dim", &c->head_dim);
	I("qk_rope_head_dim", &c->qk_rope_head_dim);
	I("q_lora_rank", &c->q_lora_rank);
	I("o_groups", &c->o_groups);
	I("o_lora_rank", &c->o_lora_rank);
	I("sliding_window", &c->sliding_window);
	if ((rc = read_ratios(&r, c))) goto out;
	D("rope_theta", &c->rope_theta);
	D("compress_rope_theta", &c->compress_rope_theta);
	D("rope_scaling.factor", &c->rope_factor);
	I("rope_scaling.original_max_position_embeddings", &c->rope_orig_max_pos);
	D("rope_scaling.beta_fast", &c->beta_fast);
	D("rope_scaling.beta_slow", &c->beta_slow);
	I("max_position_embeddings", &c->max_position_embeddings);
	I("n_routed_experts", &c->n_routed_experts);
	ID("n_shared_experts", &c->n_shared_experts, &one);
	I("num_experts_per_tok", &c->num_experts_per_tok);
	I("moe_intermediate_size", &c->moe_intermediate_size);
	D("routed_scaling_factor", &c->routed_scaling_factor);
	D("swiglu_limit", &c->swiglu_limit);
	I("index_n_heads", &c->index_n_heads);
	I("index_head_dim", &c->index_head_dim);
	I("index_topk", &c->index_topk);
	I("hc_mult", &c->hc_mult);
	I("hc_sinkhorn_iters", &c->hc_sinkhorn_iters);
	D("hc_eps", &c->hc_eps);
	D("rms_norm_eps", &c->rms_norm_eps);
	ID("bos_token_id", &c->bos_token_id, &zero);
	ID("eos_token_id", &c->eos_token_id, &one);
#undef I
#undef ID
#undef D
	rc = core_config_validate(c, fname, e);
out:
	cJSON_Delete(root);
	return rc;
}

static int is_pow2(int v) { return v > 0 && (v & (v - 1)) == 0; }

int core_config_validate(const struct core_config *c, const char *fname, struct nv_err *e)
{
	if (!fname) fname = CFG_NAME;
	const char *rule_hint = "see TINY.md §1 for the configuration rules";
/* The message names the key itself (CHECKPOINT.md §7 wording), so object stays empty. */
#define BAD(key, ...) return core_err_set(e, NV_EINVAL, fname, NULL, rule_hint, __VA_ARGS__)
	/* R7 first: the other rules divide by some of these. */
	static const struct { const char *key; size_t off; } pos[] = {
		{"vocab_size", offsetof(struct core_config, vocab_size)},
		{"num_hidden_layers", offsetof(struct core_config, num_hidden_layers)},
		{"num_attention_heads", offsetof(struct core_config, num_attention_heads)},
		{"sliding_window", offsetof(struct core_config, sliding_window)},
		{"index_n_heads", offsetof(struct core_config, index_n_heads)},
		{"index_topk", offsetof(struct core_config, index_topk)},
		{"hc_mult", offsetof(struct core_config, hc_mult)},
		{"hc_sinkhorn_iters", offsetof(struct core_config, hc_sinkhorn_iters)},
	};
	for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
		int v;
		memcpy(&v, (const char *)c + pos[i].off, sizeof v);
		if (v < 1) BAD(pos[i].key, "'%s' is %d, expected >= 1 (R7)", pos[i].key, v);
	}
	if (c->num_nextn_predict_layers < 0)
		BAD("num_nextn_predict_layers", "'num_nextn_predict_layers' is %d, expected >= 0 (R7)",
		    c->num_nextn_predict_layers);
	if (!(c->swiglu_limit >= 0))
		BAD("swiglu_limit", "'swiglu_limit' is %g, expected >= 0 (R7; 0 means no clamp)", c->swiglu_limit);

	/* R1: input widths of the FP8/FP4 GEMMs. */
	if (c->hidden_size <= 0 || c->hidden_size % 128)
		BAD("hidden_size", "'hidden_size' is %d, expected a positive multiple of 128 (R1)", c->hidden_size);
	if (c->q_lora_rank <= 0 || c->q_lora_rank % 128)
		BAD("q_lora_rank", "'q_lora_rank' is %d, expected a positive multiple of 128 (R1)", c->q_lora_rank);
	if (c->moe_intermediate_size <= 0 || c->moe_intermediate_size % 128)
		BAD("moe_intermediate_size", "'moe_intermediate_size' is %d, expected a positive multiple of 128 (R1)",
		    c->moe_intermediate_size);
	int64_t gr = (int64_t)c->o_groups * c->o_lora_rank;
	if (c->o_groups <= 0 || c->o_lora_rank <= 0 || gr % 128 || gr > INT_MAX)
		BAD("o_lora_rank", "o_groups * o_lora_rank is %d * %d = %lld, expected a positive multiple of 128 (R1)",
		    c->o_groups, c->o_lora_rank, (long long)gr);

	/* R2: RoPE pairs; non-RoPE part in whole FP8 blocks of 64. */
	if (c->qk_rope_head_dim < 2 || c->qk_rope_head_dim % 2)
		BAD("qk_rope_head_dim", "'qk_rope_head_dim' is %d, expected an even number >= 2 (R2)", c->qk_rope_head_dim);
	int64_t dn = (int64_t)c->head_dim - c->qk_rope_head_dim;
	if (dn <= 0 || dn % 64)
		BAD("head_dim", "head_dim - qk_rope_head_dim is %d - %d = %lld, expected a positive multiple of 64 (R2)",
		    c->head_dim, c->qk_rope_head_dim, (long long)dn);

	/* R3: indexer Hadamard size. */
	if (!is_pow2(c->index_head_dim) || c->index_head_dim < 32 || c->index_head_dim < c->qk_rope_head_dim)
		BAD("index_head_dim", "'index_head_dim' is %d, expected a power of two >= 32 and >= qk_rope_head_dim = %d (R3)",
		    c->index_head_dim, c->qk_rope_head_dim);

	/* R4: head outputs cut into o_groups equal slices. */
	int64_t hd = (int64_t)c->num_attention_heads * c->head_dim;
	if (hd % c->o_groups)
		BAD("o_groups", "num_attention_heads * head_dim = %lld is not divisible by o_groups = %d (R4)",
		    (long long)hd, c->o_groups);

	/* R5: one kind per block, MTP blocks included. */
	int64_t nb = (int64_t)c->num_hidden_layers + c->num_nextn_predict_layers;
	if (c->n_compress_ratios != nb) {
		char what[96];
		if (c->num_nextn_predict_layers)
			snprintf(what, sizeof what, "%d layers + %d MTP", c->num_hidden_layers, c->num_nextn_predict_layers);
		else
			snprintf(what, sizeof what, "%d layers + 0 MTP", c->num_hidden_layers);
		BAD("compress_ratios", "compress_ratios has %d entries, expected %lld (%s) (R5)",
		    c->n_compress_ratios, (long long)nb, what);
	}
	for (int i = 0; i < c->n_compress_ratios; i++) {
		int v = c->compress_ratios[i];
		if (v != 0 && v != 4 && v != 128)
			BAD("compress_ratios", "compress_ratios[%d] is %d, expected 0, 4 or 128 (R5)", i, v);
	}

	/* R6: routing. */
	if (c->num_hash_layers < 0 || c->num_hash_layers > c->num_hidden_layers)
		BAD("num_hash_layers", "'num_hash_layers' is %d, expected 0..num_hidden_layers = %d (R6)",
		    c->num_hash_layers, c->num_hidden_layers);
	if (c->n_routed_experts < 1 || c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->n_routed_experts)
		BAD("num_experts_per_tok", "num_experts_per_tok is %d with n_routed_experts = %d, expected 1 <= k <= E (R6)",
		    c->num_experts_per_tok, c->n_routed_experts);
	if (c->n_shared_experts != 1)
		BAD("n_shared_experts", "'n_shared_experts' is %d, expected 1 (R6)", c->n_shared_experts);
#undef BAD
	return 0;
}

int core_config_load(const char *dir, struct core_config *c, struct nv_err *e)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, CFG_NAME) >= (int)sizeof path)
		return core_err_set(e, NV_EINVAL, dir, NULL, NULL, "path too long");
	FILE *f = fopen(path, "rb");
	if (!f) {
		int err = errno;
		return core_err_set(e, err == ENOENT ? NV_EMISSING : -err, path, NULL,
				    "point nvmoe at the model directory (the one holding config.json and the *.safetensors shards)",
				    "cannot open: %s", strerror(err));
	}
	char *buf = malloc(CFG_MAX_BYTES + 1);
	if (!buf) { fclose(f); return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); }
	size_t n = fread(buf, 1, CFG_MAX_BYTES + 1, f);
	int rerr = ferror(f);
	fclose(f);
	int rc;
	if (rerr)
		rc = core_err_set(e, NV_EIO, path, NULL, NULL, "read error");
	else if (n > CFG_MAX_BYTES)
		rc = core_err_set(e, NV_EINVAL, path, NULL, NULL, "larger than %u bytes: not a config file", CFG_MAX_BYTES);
	else
		rc = core_config_parse(buf, n, path, c, e);
	free(buf);
	return rc;
}
