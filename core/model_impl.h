/* core/model_impl.h - private structures shared by core/model.c, state.c, attn.c,
 * moe.c and forward.c.  Not part of the public interface (use core/model.h).
 *
 * Every float pointer below is backend memory (kernels/kern.h) unless marked (H). */
#ifndef NV_CORE_MODEL_IMPL_H
#define NV_CORE_MODEL_IMPL_H

#include "model.h"

/* Compressor weights of one block (ratio r > 0; the indexer's has r = 4). */
struct core_comp {
	const uint16_t *wkv, *wgate; /* bf16 [c*d, D] */
	const float *ape;            /* [r, c*d] */
	const uint16_t *norm;        /* bf16 [d] */
	int r, d;
};

struct core_block {
	int idx, ratio, hash;
	const float *freq;           /* RoPE table of the block's kind [d_r/2] */
	const uint16_t *attn_norm, *ffn_norm;
	const float *hc_attn_fn, *hc_attn_base, *hc_attn_scale;
	const float *hc_ffn_fn, *hc_ffn_base, *hc_ffn_scale;
	struct kern_fp8w wq_a, wq_b, wkv, wo_a, wo_b;
	const uint16_t *q_norm, *kv_norm;
	const float *sink;           /* [H] */
	struct core_comp comp;       /* ratio > 0 */
	struct kern_fp8w iwq_b;      /* ratio 4: indexer */
	const uint16_t *iw_proj;     /* bf16 [H_I, D] */
	struct core_comp icomp;
	const uint16_t *gate_w;      /* bf16 [E, D] */
	const float *gate_bias;      /* [E], score-routed blocks */
	const int64_t *tid2eid;      /* (H) [V, k], hash blocks */
	struct kern_fp8w sh_w1, sh_w2, sh_w3;
};

struct core_mtp {
	struct kern_fp8w e_proj, h_proj;
	const uint16_t *enorm, *hnorm, *norm;
	const float *hc_fn, *hc_base, *hc_scale;
};

/* Workspaces, S = max_chunk rows. */
struct core_ws {
	float *X, *Xn, *Z;    /* [S, M*D] residual streams (Z: MTP input / h_proj out) */
	float *x, *a;         /* [S, D] sublayer input (normed) and output */
	float *post, *comb;   /* [S, M], [S, M*M] */
	float *qa;            /* [S, Q] q low-rank, then qr */
	float *q, *o;         /* [S, H*d_h] */
	float *og;            /* [S, G*R] */
	float *kt, *gt;       /* [S, 2*max(d_h, d_I)] compressor projections */
	float *kvf;           /* [S, d_h] the chunk's kv (f32) before it is stored in the ring */
	float *cu;            /* [S/4 + 2, max(d_h, d_I)] entries emitted by a compressor call (f32) */
	float *qi;            /* [S, H_I*d_I] */
	float *wi;            /* [S, H_I] */
	float *gl;            /* [S, E] gate logits */
	int32_t *ids;         /* [S, k] */
	float *wts;           /* [S, k] */
	int32_t *slots;       /* [S*k] */
	float *acc;           /* [S, D] f32 MoE sum */
	float *eacc;          /* [K + 1, S, D] per-expert outputs of a pipelined MoE, + one to sum into */
	int32_t *la_ids;      /* [S, k] router lookahead selection */
	float *la_wts;        /* [S, k] (unused weights of the lookahead routing) */
	float *g, *u, *h;     /* [S, F] shared expert */
	float *sh;            /* [S, D] */
	float *y;             /* [S, D] head input */
	float *logits;        /* [LB, V] */
	/* host */
	int32_t *ids_h, *slots_h, *hash_h; /* (H) [S*k] */
	int *cnt_h;                        /* (H) [E+1] */
	int *xs_h;                         /* (H) [E] distinct experts of a block, ascending */
	int *la_h;                         /* (H) [2E] lookahead union, marks */
	float *wts_h;                      /* (H) [S*k] */
	float *X_h;                        /* (H) [S, M*D] hooks */
	float *lg_h;                       /* (H) [LB, V] rows for a logits sink (first use) */
};

/* A layer-major call in progress (forward.c; moe.c hints the next chunk). */
struct core_lm {
	int on;
	const int32_t *tok;          /* (H) [S] the call's tokens */
	int S, s0, n;                /* call length; rows of the chunk being processed */
	int nb;                      /* blocks the call runs: L, or L + 1 with MTP */
};

#define CORE_LOGIT_ROWS 16

struct core_model {
	struct core_config c;
	const struct core_ckpt *ck;
	struct kern *k;
	unsigned nm;                 /* KERN_RND | KERN_QNT per numeric mode */
	unsigned kvnm;               /* nm | KERN_KV16 when RND (bf16 caches), else nm */
	size_t kv_es;                /* bytes per cache element: 2 (KV16) or 4 */
	enum core_numeric numeric;
	int max_chunk, chunk;
	int nblocks;
	int max_w;                   /* widest row of any op (scratch) */
	float eps_n, eps_h, gamma, limit, tau, cw;
	const uint16_t *embed, *head, *norm;
	const float *hc_head_fn, *hc_head_base, *hc_head_scale;
	struct core_block *blk;      /* [nblocks] */
	struct core_mtp mtp;         /* valid when num_nextn_predict_layers > 0 */
	float *freq_plain, *freq_yarn; /* [qk_rope_head_dim / 2] RoPE frequencies; yarn: compressed blocks */
	const struct core_expert_src *src;
	struct core_expert_src *own_src; /* resident source created by the model */
	struct core_hooks hooks;
	int have_hooks;
	struct core_lm lm;
	struct core_ws ws;
	const float *logits_b;       /* row of ws.logits kept by the last forward (logits_keep), or NULL */
};

/* Per-block sequence state.  Cache elements (ring, ccache, icache) are kv_es bytes:
 * bf16 with KERN_KV16, else f32; the compressor states are always f32 (§8.5.4). */
struct core_bstate {
	void *ring;                  /* [W + max_chunk, d_h]: W ring slots, then the chunk's kv */
	void *ccache;                /* [ctx/r + 1, d_h] */
	float *cK, *cG;              /* [c*r, c*d_h] */
	void *icache;                /* [ctx/4 + 1, d_I] */
	float *iK, *iG;              /* [8, 2*d_I] */
};

struct core_seq {
	struct core_model *m;
	int ctx;
	int pos, mtp_pos;
	unsigned epoch;              /* +1 at every reset and rewind: marks of older epochs are stale */
	struct core_bstate *b;       /* [nblocks] */
	int idx_w;                   /* widest attention list */
	int32_t *idx;                /* [S, idx_w] attention lists */
	int32_t *idx_h;              /* (H) [S, idx_w] */
	float *sc;                   /* [sc_rows, ctx/4] indexer scores */
	int sc_rows;
};

/* model.c */
void core_seq_reset_blocks(struct core_seq *sq);

/* attn.c: x = ws.x (normed) -> ws.a, for positions p0 .. p0+S-1 of block b. */
int core_attention(struct core_model *m, struct core_seq *sq, const struct core_block *b, int S, int p0,
		   struct nv_err *e);
/* moe.c: ws.x (normed) -> ws.a. */
int core_moe(struct core_model *m, const struct core_block *b, const int32_t *tok, int S, int p0,
	     struct nv_err *e);

#endif
