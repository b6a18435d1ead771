/* core/tokenizer.h - byte-level BPE tokenizer read from a Hugging Face tokenizer.json
 * (CHAT.md Part A).
 *
 * Contract
 *   Owns: the vocabulary, the merge table, the compiled pre-tokenizer regexes, the
 *   added-token matcher, a piece -> ids cache and the encoder's scratch buffers.
 *   core_tok_load() reads <dir>/tokenizer.json (falling back to
 *   <dir>/tokenizer.reconstructed.json) or a tokenizer file given directly;
 *   core_tok_load_mem() parses a buffer (tests, fuzzers).  Everything the format
 *   says is read from the JSON (regex patterns, merges, added tokens); features the
 *   DeepSeek file does not use (normalizers, other split behaviours, dropout, ...)
 *   are rejected with NV_EUNSUPPORTED rather than silently ignored.
 *
 *   Encoding: added tokens are matched leftmost-longest over the raw text first
 *   (unless CORE_TOK_NO_SPECIAL), the text between them goes through the Split
 *   steps one after another (each on the pieces of the previous one), the byte-level
 *   mapping and BPE (ranked merges, heap + linked list: O(n log n) per piece).
 *   Input must be valid UTF-8: anything else is rejected with NV_EINVAL and the
 *   byte offset (policy of CHAT.md A.9).  No BOS is added (A.7).
 *
 *   Decoding: id -> bytes (byte-level inverse; added tokens are their content).
 *   core_tok_decode() replaces invalid/incomplete UTF-8 by U+FFFD (maximal-subpart
 *   rule, as the reference's lossy conversion); the stream decoder holds back the
 *   bytes of an incomplete character until the next id completes it.
 *
 *   Threads: encode and pretokenize mutate the cache, scratch and regex match data of
 *   the core_tok, so one thread at a time per core_tok for those.  Decoding and the
 *   lookup functions only read immutable tables and may run from any thread at any
 *   time (also while another thread encodes).
 *   Lifetimes: returned string pointers are owned by the core_tok and valid until
 *   core_tok_destroy() (which accepts NULL).  struct core_tok_ids is owned by the
 *   caller (core_tok_ids_free()); encode appends to it, growing it when needed, so a
 *   reused vector allocates only when a longer text comes.
 */
#ifndef NV_CORE_TOKENIZER_H
#define NV_CORE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct core_tok;

/* A growable id vector owned by the caller. */
struct core_tok_ids {
	int32_t *v; /* [cap] */
	size_t n, cap;
};
void core_tok_ids_free(struct core_tok_ids *ids);

/* Load from a directory (tokenizer.json, else tokenizer.reconstructed.json) or a
 * file.  *out is NULL on failure. */
int core_tok_load(const char *path, struct core_tok **out, struct nv_err *e);
/* Load from a buffer holding tokenizer.json; name is used in error messages. */
int core_tok_load_mem(const char *json, size_t n, const char *name, struct core_tok **out,
		      struct nv_err *e);
void core_tok_destroy(struct core_tok *t);

/* Encode flags. */
#define CORE_TOK_NO_SPECIAL 1u /* added-token strings are encoded as plain text */

/* Append the ids of text[0..n) to ids.  0, NV_EINVAL (invalid UTF-8, offset in the
 * message), NV_ENOMEM, or NV_EIO for a regex engine failure. */
int core_tok_encode(struct core_tok *t, const char *text, size_t n, unsigned flags,
		    struct core_tok_ids *ids, struct nv_err *e);

/* Call fn for every piece the pre-tokenizer produces for text[0..n) (no added-token
 * matching): the pieces concatenate to the input.  For tests and diagnostics. */
typedef int (*core_tok_piece_fn)(void *ud, const char *piece, size_t n);
int core_tok_pretokenize(struct core_tok *t, const char *text, size_t n, core_tok_piece_fn fn,
			 void *ud, struct nv_err *e);

/* Number of ids (max id + 1; 129280 for DeepSeek-V4). */
int core_tok_n_ids(const struct core_tok *t);
/* Decoded bytes of one id (byte-level inverse applied); NULL for an id without a
 * string.  *n gets the length; the bytes are not NUL-terminated in general. */
const char *core_tok_id_bytes(const struct core_tok *t, int32_t id, size_t *n);
/* 1 if id is an added token marked special (skipped by CORE_TOK_SKIP_SPECIAL). */
int core_tok_is_special(const struct core_tok *t, int32_t id);
/* Id of an added token whose content is exactly s (NUL-terminated), or -1. */
int32_t core_tok_added_id(const struct core_tok *t, const char *s);
/* Longest decoded id string in bytes (to size stream buffers). */
size_t core_tok_max_id_bytes(const struct core_tok *t);

/* Decode flags. */
#define CORE_TOK_SKIP_SPECIAL 1u

/* Decode ids into a NUL-terminated malloc'ed string (*out, length *n), invalid
 * UTF-8 replaced by U+FFFD.  NV_ERANGE for an id outside the id space. */
int core_tok_decode(const struct core_tok *t, const int32_t *ids, size_t n_ids, unsigned flags,
		    char **out, size_t *n, struct nv_err *e);

/* Streaming decoder: feed ids one at a time, get the text that is complete. */
struct core_tok_stream;
int core_tok_stream_create(const struct core_tok *t, unsigned flags, struct core_tok_stream **out,
			   struct nv_err *e);
void core_tok_stream_destroy(struct core_tok_stream *s);
/* Text completed by id: *text points into the stream's buffer (valid until the next
 * call), *n bytes, always whole UTF-8 characters.  NV_ERANGE for a bad id. */
int core_tok_stream_push(struct core_tok_stream *s, int32_t id, const char **text, size_t *n,
			 struct nv_err *e);
/* End of stream: held-back bytes of an incomplete character come out as U+FFFD. */
void core_tok_stream_flush(struct core_tok_stream *s, const char **text, size_t *n);
void core_tok_stream_reset(struct core_tok_stream *s);

/* Counters of the work done by encode since load (deterministic; used to check
 * that encoding is linear in the input size). */
struct core_tok_stats {
	uint64_t pieces;        /* pre-tokenizer pieces */
	uint64_t cache_hits;
	uint64_t bpe_symbols;   /* symbols entering BPE (cache misses) */
	uint64_t heap_ops;      /* heap pushes + pops */
	uint64_t regex_calls;   /* pcre2 match calls */
};
void core_tok_get_stats(const struct core_tok *t, struct core_tok_stats *s);

/* UTF-8 validity (strict: no overlongs, surrogates or > U+10FFFF).  Returns the
 * offset of the first invalid byte, or n when all of s[0..n) is valid. */
size_t core_utf8_valid_prefix(const char *s, size_t n);

#endif
