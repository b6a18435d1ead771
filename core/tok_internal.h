/* core/tok_internal.h - private layout of struct core_tok, shared by tokenizer.c
 * (load, encode) and tok_decode.c.  Not a public header: include core/tokenizer.h. */
#ifndef NV_CORE_TOK_INTERNAL_H
#define NV_CORE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "tokenizer.h"

struct cJSON;

#define TOK_INV_N 324 /* byte-level symbols are U+0000..U+0143 */
#define TOK_MAX_SPLIT 8

#define TOK_F_HAS 1
#define TOK_F_ADDED 2
#define TOK_F_SPECIAL 4

/* merge (left id, right id) -> (rank, merged id); key UINT64_MAX = empty */
struct tok_pair {
	uint64_t key;
	int32_t rank, id;
};
struct tok_pairmap {
	struct tok_pair *slot; /* [mask + 1] */
	size_t mask;
};

struct tok_trie {
	int32_t child, sibling, id; /* id: added token ending here, -1 none */
	uint8_t c;
};

struct tok_split {
	pcre2_code *re;
	pcre2_match_data *md; /* one per step: steps nest while splitting */
	int jit, removed;
};

/* heap entry: key = rank << 32 | position (lowest rank, then leftmost) */
struct tok_heap {
	uint64_t key;
	int32_t id;
};

#define TOK_CACHE_SLOTS (1u << 17)
#define TOK_CACHE_ENTRIES (1u << 16)
#define TOK_CACHE_BYTES (4u << 20)
#define TOK_CACHE_IDS (1u << 20)
#define TOK_CACHE_MAX_PIECE 256

struct tok_cache_ent {
	uint64_t hash;
	uint32_t off, len, ids_off, nids;
};
struct tok_cache {
	uint32_t *slot;             /* [TOK_CACHE_SLOTS] entry index + 1, 0 = empty */
	struct tok_cache_ent *ent;  /* [TOK_CACHE_ENTRIES] */
	char *bytes;                /* [TOK_CACHE_BYTES] piece bytes */
	int32_t *ids;               /* [TOK_CACHE_IDS] piece ids */
	uint32_t n_ent, n_bytes, n_ids;
};

struct core_tok {
	char name[512];          /* file name for messages */
	int32_t n_ids;
	uint32_t fwd[256];       /* byte -> symbol code point */
	int16_t inv[TOK_INV_N];  /* symbol code point -> byte, -1 none */
	int32_t byte_id[256];    /* byte -> id of its one-symbol token */
	uint8_t *id_flags;       /* [n_ids] TOK_F_* */
	uint32_t *dec_off;       /* [n_ids + 1] offsets into dec */
	char *dec;               /* decoded bytes of all ids */
	size_t max_id_bytes;
	struct tok_pairmap merges;
	struct tok_trie *trie;   /* [cap_trie], node 0 = root */
	size_t n_trie, cap_trie, n_added;
	uint8_t first_byte[256]; /* 1 if an added token starts with this byte */
	struct tok_split split[TOK_MAX_SPLIT];
	int n_split;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit_stack;
	/* encode scratch, [scratch_cap] (heap: [3 * scratch_cap]) */
	int32_t *sym_id, *sym_prev, *sym_next;
	struct tok_heap *heap;
	size_t scratch_cap;
	struct tok_cache cache;
	struct core_tok_stats stats;
	const struct cJSON *root_tmp;    /* the cJSON tree during load only */
};

#endif
