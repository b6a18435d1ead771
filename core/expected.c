/* core/expected.c - the tensor set a checkpoint of a given config must hold
 * (CHECKPOINT.md §4, TINY.md §3), generated from the config alone.
 *
 * Block i < num_hidden_layers is `layers.{i}.`, MTP block j is `mtp.{j}.` with
 * block index num_hidden_layers + j; its kind is compress_ratios[i] and it is
 * hash-routed iff i < num_hash_layers (so MTP blocks are always score-routed).
 */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Beyond this the config is not a model this runtime can hold (the release has
 * 69,187 tensors); refusing early avoids a multi-GB allocation. */
#define MAX_EXPECTED_TENSORS (1u << 24)

struct gen {
	struct core_tensor_spec *v;
	size_t n, cap;
	const char *prefix;
	int block, expert;
};

static void add(struct gen *g, const char *suffix, enum core_dtype dt, int ndim, int64_t d0, int64_t d1)
{
	if (g->n == g->cap) return; /* counted in advance; cannot happen */
	struct core_tensor_spec *s = &g->v[g->n++];
	snprintf(s->name, sizeof s->name, "%s%s", g->prefix, suffix);
	s->dtype = dt;
	s->ndim = ndim;
	s->shape[0] = d0;
	s->shape[1] = ndim > 1 ? d1 : 0;
	s->shape[2] = s->shape[3] = 0;
	s->block = g->block;
	s->expert = g->expert;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* FP8 linear: E4M3 weight [out, in] + E8M0 scales over 128x128 blocks (partial last block). */
static void fp8(struct gen *g, const char *base, int64_t out, int64_t in)
{
	char nm[80];
	snprintf(nm, sizeof nm, "%s.weight", base);
	add(g, nm, CORE_DT_F8_E4M3, 2, out, in);
	snprintf(nm, sizeof nm, "%s.scale", base);
	add(g, nm, CORE_DT_F8_E8M0, 2, cdiv(out, 128), cdiv(in, 128));
}

/* FP4 routed-expert matrix: packed E2M1 [out, in/2] as I8 + E8M0 per 32 inputs. */
static void fp4(struct gen *g, const char *base, int64_t out, int64_t in)
{
	char nm[80];
	snprintf(nm, sizeof nm, "%s.weight", base);
	add(g, nm, CORE_DT_I8, 2, out, in / 2);
	snprintf(nm, sizeof nm, "%s.scale", base);
	add(g, nm, CORE_DT_F8_E8M0, 2, out, in / 32);
}

static size_t block_count(const struct core_config *c, int i)
{
	int r = c->compress_ratios[i];
	size_t n = 28 + 1; /* every block + (tid2eid | bias) */
	if (r == 4) n += 11;
	else if (r == 128) n += 4;
	if (i >= c->num_hidden_layers) n += 10; /* MTP extras */
	return n + 6 * (size_t)c->n_routed_experts;
}

static void gen_block(struct gen *g, const struct core_config *c, int i)
{
	const int64_t D = c->hidden_size, V = c->vocab_size, M = c->hc_mult, H = c->num_attention_heads;
	const int64_t dh = c->head_dim, Q = c->q_lora_rank, G = c->o_groups, R = c->o_lora_rank;
	const int64_t E = c->n_routed_experts, k = c->num_experts_per_tok, F = c->moe_intermediate_size;
	const int64_t HI = c->index_n_heads, dI = c->index_head_dim;
	const int64_t mix = (2 + M) * M;
	const int r = c->compress_ratios[i];
	char prefix[32];
	if (i < c->num_hidden_layers) snprintf(prefix, sizeof prefix, "layers.%d.", i);
	else snprintf(prefix, sizeof prefix, "mtp.%d.", i - c->num_hidden_layers);
	g->prefix = prefix;
	g->block = i;
	g->expert = -1;

	add(g, "attn_norm.weight", CORE_DT_BF16, 1, D, 0);
	add(g, "ffn_norm.weight", CORE_DT_BF16, 1, D, 0);
	add(g, "hc_attn_fn", CORE_DT_F32, 2, mix, M * D);
	add(g, "hc_attn_base", CORE_DT_F32, 1, mix, 0);
	add(g, "hc_attn_scale", CORE_DT_F32, 1, 3, 0);
	add(g, "hc_ffn_fn", CORE_DT_F32, 2, mix, M * D);
	add(g, "hc_ffn_base", CORE_DT_F32, 1, mix, 0);
	add(g, "hc_ffn_scale", CORE_DT_F32, 1, 3, 0);
	add(g, "attn.attn_sink", CORE_DT_F32, 1, H, 0);
	add(g, "attn.q_norm.weight", CORE_DT_BF16, 1, Q, 0);
	add(g, "attn.kv_norm.weight", CORE_DT_BF16, 1, dh, 0);
	fp8(g, "attn.wq_a", Q, D);
	fp8(g, "attn.wq_b", H * dh, Q);
	fp8(g, "attn.wkv", dh, D);
	fp8(g, "attn.wo_a", G * R, H * dh / G);
	fp8(g, "attn.wo_b", D, G * R);
	if (r == 4) {
		add(g, "attn.compressor.ape", CORE_DT_F32, 2, 4, 2 * dh);
		add(g, "attn.compressor.wkv.weight", CORE_DT_BF16, 2, 2 * dh, D);
		add(g, "attn.compressor.wgate.weight", CORE_DT_BF16, 2, 2 * dh, D);
		add(g, "attn.compressor.norm.weight", CORE_DT_BF16, 1, dh, 0);
		fp8(g, "attn.indexer.wq_b", HI * dI, Q);
		add(g, "attn.indexer.weights_proj.weight", CORE_DT_BF16, 2, HI, D);
		add(g, "attn.indexer.compressor.ape", CORE_DT_F32, 2, 4, 2 * dI);
		add(g, "attn.indexer.compressor.wkv.weight", CORE_DT_BF16, 2, 2 * dI, D);
		add(g, "attn.indexer.compressor.wgate.weight", CORE_DT_BF16, 2, 2 * dI, D);
		add(g, "attn.indexer.compressor.norm.weight", CORE_DT_BF16, 1, dI, 0);
	} else if (r == 128) {
		add(g, "attn.compressor.ape", CORE_DT_F32, 2, 128, dh);
		add(g, "attn.compressor.wkv.weight", CORE_DT_BF16, 2, dh, D);
		add(g, "attn.compressor.wgate.weight", CORE_DT_BF16, 2, dh, D);
		add(g, "attn.compressor.norm.weight", CORE_DT_BF16, 1, dh, 0);
	}
	add(g, "ffn.gate.weight", CORE_DT_BF16, 2, E, D);
	if (core_cfg_is_hash(c, i)) add(g, "ffn.gate.tid2eid", CORE_DT_I64, 2, V, k);
	else add(g, "ffn.gate.bias", CORE_DT_F32, 1, E, 0);
	fp8(g, "ffn.shared_experts.w1", F, D);
	fp8(g, "ffn.shared_experts.w2", D, F);
	fp8(g, "ffn.shared_experts.w3", F, D);
	if (i >= c->num_hidden_layers) {
		fp8(g, "e_proj", D, D);
		fp8(g, "h_proj", D, D);
		add(g, "enorm.weight", CORE_DT_BF16, 1, D, 0);
		add(g, "hnorm.weight", CORE_DT_BF16, 1, D, 0);
		add(g, "norm.weight", CORE_DT_BF16, 1, D, 0);
		add(g, "hc_head_fn", CORE_DT_F32, 2, M, M * D);
		add(g, "hc_head_base", CORE_DT_F32, 1, M, 0);
		add(g, "hc_head_scale", CORE_DT_F32, 1, 1, 0);
	}
	for (int e = 0; e < c->n_routed_experts; e++) {
		char base[48];
		g->expert = e;
		snprintf(base, sizeof base, "ffn.experts.%d.w1", e);
		fp4(g, base, F, D);
		snprintf(base, sizeof base, "ffn.experts.%d.w3", e);
		fp4(g, base, F, D);
		snprintf(base, sizeof base, "ffn.experts.%d.w2", e);
		fp4(g, base, D, F);
	}
	g->expert = -1;
}

int core_expected_tensors(const struct core_config *c, struct core_tensor_spec **out, size_t *n,
			  struct nv_err *e)
{
	*out = NULL;
	*n = 0;
	int nb = core_cfg_nblocks(c);
	if (nb != c->n_compress_ratios || nb > CORE_MAX_BLOCKS)
		return core_err_set(e, NV_EINVAL, "config.json", "compress_ratios", NULL,
				    "config not validated: %d blocks, %d compress ratios", nb, c->n_compress_ratios);
	size_t total = 6;
	for (int i = 0; i < nb; i++) {
		total += block_count(c, i);
		if (total > MAX_EXPECTED_TENSORS)
			return core_err_set(e, NV_EUNSUPPORTED, "config.json", NULL, NULL,
					    "the config implies more than %u tensors (n_routed_experts = %d, %d blocks);"
					    " this build handles at most that many", MAX_EXPECTED_TENSORS,
					    c->n_routed_experts, nb);
	}
	struct gen g = { .v = malloc(total * sizeof *g.v), .cap = total };
	if (!g.v) return core_err_set(e, NV_ENOMEM, "config.json", NULL, NULL, "out of memory for %zu tensor specs", total);
	const int64_t D = c->hidden_size, V = c->vocab_size, M = c->hc_mult;
	g.prefix = "";
	g.block = -1;
	g.expert = -1;
	add(&g, "embed.weight", CORE_DT_BF16, 2, V, D);
	add(&g, "head.weight", CORE_DT_BF16, 2, V, D);
	add(&g, "norm.weight", CORE_DT_BF16, 1, D, 0);
	add(&g, "hc_head_fn", CORE_DT_F32, 2, M, M * D);
	add(&g, "hc_head_base", CORE_DT_F32, 1, M, 0);
	add(&g, "hc_head_scale", CORE_DT_F32, 1, 1, 0);
	for (int i = 0; i < nb; i++) gen_block(&g, c, i);
	CHECK(g.n == total);
	*out = g.v;
	*n = g.n;
	return 0;
}

uint64_t core_spec_nbytes(const struct core_tensor_spec *s)
{
	uint64_t v = core_dtype_size(s->dtype);
	for (int d = 0; d < s->ndim; d++) {
		if (s->shape[d] < 0) return UINT64_MAX;
		if (__builtin_mul_overflow(v, (uint64_t)s->shape[d], &v)) return UINT64_MAX;
	}
	return v;
}
