/* core/config.h - the model's hyper-parameters (MODEL.md §1) read from config.json.
 *
 * Contract
 *   core_config_load() reads <dir>/config.json with the HF key names, fills a
 *   struct core_config (plain values, no pointers: copy it freely) and checks the
 *   configuration rules R1-R7 of TINY.md §1, and nothing stricter.  Errors name
 *   config.json, the key and expected vs found (CHECKPOINT.md §7 checks 1-2).
 *   core_config_parse() does the same from a buffer (used by the fuzzer).
 *   No global state; thread-safe.
 */
#ifndef NV_CORE_CONFIG_H
#define NV_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define CORE_MAX_BLOCKS 128 /* main + MTP blocks; the release has 44 */

struct core_config {
	int vocab_size;              /* V */
	int hidden_size;             /* D */
	int num_hidden_layers;       /* L (main blocks) */
	int num_nextn_predict_layers;/* MTP blocks (released 1) */
	int num_hash_layers;
	int num_attention_heads;     /* H */
	int num_key_value_heads;     /* must be 1 */
	int head_dim;                /* d_h */
	int qk_rope_head_dim;        /* d_r */
	int q_lora_rank;             /* Q */
	int o_groups;                /* G */
	int o_lora_rank;             /* R */
	int sliding_window;          /* W */
	int compress_ratios[CORE_MAX_BLOCKS]; /* one per block, MTP last */
	int n_compress_ratios;
	double rope_theta;
	double compress_rope_theta;
	double rope_factor;          /* rope_scaling.factor */
	int rope_orig_max_pos;       /* rope_scaling.original_max_position_embeddings */
	double beta_fast, beta_slow;
	int max_position_embeddings;
	int n_routed_experts;        /* E */
	int n_shared_experts;        /* must be 1 */
	int num_experts_per_tok;     /* k */
	int moe_intermediate_size;   /* F */
	double routed_scaling_factor;/* gamma */
	double swiglu_limit;         /* lambda; 0 = no clamp */
	int index_n_heads;           /* H_I */
	int index_head_dim;          /* d_I */
	int index_topk;              /* T_I */
	int hc_mult;                 /* M */
	int hc_sinkhorn_iters;       /* N_s */
	double hc_eps;
	double rms_norm_eps;
	int bos_token_id, eos_token_id;
};

int core_config_load(const char *dir, struct core_config *c, struct nv_err *e);
int core_config_parse(const char *json, size_t len, const char *fname,
		      struct core_config *c, struct nv_err *e);
/* R1-R7 of TINY.md §1; fname names the file in messages. */
int core_config_validate(const struct core_config *c, const char *fname, struct nv_err *e);

/* Derived quantities. */
static inline int core_cfg_nblocks(const struct core_config *c)
{ return c->num_hidden_layers + c->num_nextn_predict_layers; }
static inline int core_cfg_is_hash(const struct core_config *c, int block)
{ return block < c->num_hash_layers; }

#endif
