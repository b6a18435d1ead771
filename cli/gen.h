/* cli/gen.h - a model loaded for generation, shared by `nvmoe run` and `nvmoe chat`.
 * cli-internal.
 *
 * Contract
 *   cli_gen_open() opens MODEL (checkpoint or converted store + tokenizer.json +
 *   optional generation_config.json), binds it to the backend with the routed-expert
 *   source of --host-cache / the expert store (cli_experts_open), creates one sequence of
 *   --ctx positions, the sampler (generation_config defaults, then the flags), a
 *   streaming detokenizer and the token mask: everything the token loop needs is
 *   allocated here, once.  Errors are returned in *e (the caller prints them).
 *
 *   The sequence remembers the ids it has been fed (hist).  cli_gen_prefill() takes
 *   the ids of a whole prompt: when the ids already fed are a proper prefix of it,
 *   only the rest is run (prefix reuse, multi-turn chat).  Otherwise, when the new
 *   prompt still shares the ids up to the start of the previous prompt's last chunk
 *   (a mark is saved there: thinking mode re-renders the previous answer without
 *   its reasoning, so the new prompt parts from the old one at the previous
 *   prompt's last token), the sequence rewinds to that mark and runs the rest;
 *   else it restarts at position 0.  The prompt is run in chunks of --chunk tokens, checking
 *   *stop between chunks, in the order of --prefill-order (cli_prefill_layer):
 *   layer-major, all chunks but the last in one call, then the mark, then the last
 *   chunk (a stopped layer-major prompt leaves the sequence empty).  After it,
 *   logits of the last prompt position are ready.
 *   cli_gen_generate() samples, emits and feeds tokens until EOS, max_tokens, *stop
 *   (set by a SIGINT handler: checked once per token) or an error.  The sampled EOS
 *   is not fed (it is fed by the next prompt, which contains it).
 *
 *   Ids the tokenizer has no string for (a model vocabulary larger than the
 *   tokenizer's id space) are never sampled (the backend's sample() masks them).
 *   The logits stay in backend memory (core_fwd_io.logits_keep): the backend
 *   samples them (core_sampler_sample_k) and only the id comes back.
 *
 *   Threads: one thread.  cli_gen_close() accepts a zeroed struct.
 */
#ifndef NV_CLI_GEN_H
#define NV_CLI_GEN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "core/chat.h"
#include "core/model.h"
#include "core/sampler.h"
#include "core/tokenizer.h"

struct cli_gen {
	const char *dir;
	struct core_ckpt *ck;
	struct kern *k;
	struct cli_experts *xs;  /* routed-expert source (cli/experts.c); NULL = resident */
	struct core_model *m;
	struct core_seq *sq;
	struct core_tok *tok;
	struct core_tok_stream *ts;
	struct core_sampler *smp;
	struct core_sampler_cfg scfg;
	const struct core_config *c;
	int V, ctx, chunk;
	int order;            /* enum cli_prefill of --prefill-order */
	int verbose;
	int progress;         /* show prompt progress on stderr (a terminal) for multi-chunk prompts */
	int32_t eos;
	int32_t *hist;        /* [ctx] ids fed so far: positions 0 .. nhist-1 */
	int nhist;
	struct core_seq_mark *mark; /* the sequence at the start of the last prompt's last chunk */
	int32_t *masked;      /* [nmasked] ids below tok_ids without a string */
	int32_t *mask_b;      /* the same in backend memory (NULL when none) */
	int nmasked;
	int tok_ids;          /* ids >= tok_ids (up to V) are masked too */
};

/* Why generation ended. */
enum cli_gen_end { CLI_GEN_EOS = 0, CLI_GEN_MAX, CLI_GEN_STOPPED };

struct cli_gen_stats {
	int prompt_tok;   /* ids of the prompt */
	int reused;       /* of which already in the sequence (prefix reuse) */
	double prompt_s;  /* time to run the prompt_tok - reused new ones */
	int layer;        /* the new ones ran layer-major (--prefill-order) */
	int gen_tok;      /* tokens sampled (EOS included) */
	double gen_s;
	enum cli_gen_end end;
};

/* Text sink: called with whole UTF-8 characters as tokens arrive. */
typedef void (*cli_gen_emit_fn)(void *ud, const char *text, size_t n);

int cli_gen_open(struct cli_gen *g, const char *model, const struct cli_opts *o, struct nv_err *e);
void cli_gen_close(struct cli_gen *g);

/* Drop the sequence state (next prefill starts at position 0). */
void cli_gen_reset(struct cli_gen *g);

/* Encode text (added tokens matched) into ids; ids is cleared first.  Checks that
 * every id fits the model's vocabulary. */
int cli_gen_encode(struct cli_gen *g, const char *text, size_t n, struct core_tok_ids *ids,
		   struct nv_err *e);

int cli_gen_prefill(struct cli_gen *g, const int32_t *ids, int n, volatile sig_atomic_t *stop,
		    struct cli_gen_stats *st, struct nv_err *e);
/* Generate up to max_tokens (>= 0) tokens; gen ids are appended to out when non-NULL. */
int cli_gen_generate(struct cli_gen *g, int max_tokens, volatile sig_atomic_t *stop,
		     cli_gen_emit_fn emit, void *ud, struct core_tok_ids *out,
		     struct cli_gen_stats *st, struct nv_err *e);

/* Chat options from --think none|high|max. */
void cli_gen_think_opts(const char *think, struct core_chat_opts *co);

/* Splits a streamed completion into reasoning and answer (text before / after
 * "</think>" in thinking mode) and shows them apart: on a tty the reasoning is dim
 * (ANSI), otherwise it sits between the marker lines CLI_MARK_REASONING and
 * CLI_MARK_ANSWER.  Text that could start "</think>" (or another marker of B.11) is
 * held back until it is decided.  Both parts are kept (for the chat history). */
#define CLI_MARK_REASONING "[reasoning]"
#define CLI_MARK_ANSWER "[answer]"
struct cli_show {
	FILE *f;
	int tty;
	int thinking;        /* currently inside the reasoning */
	int started;         /* something was shown */
	char *pend;          /* [npend] undecided text */
	size_t npend, cap_pend;
	char *reasoning, *answer;  /* NUL-terminated, grown as needed */
	size_t nr, cap_r, na, cap_a;
	int oom;
};
/* thinking: the prompt ended with <think> (the completion starts in reasoning). */
void cli_show_begin(struct cli_show *s, FILE *f, int tty, int thinking);
void cli_show_emit(void *s, const char *text, size_t n); /* a cli_gen_emit_fn */
void cli_show_end(struct cli_show *s);                    /* flush + reset colours */
void cli_show_free(struct cli_show *s);

#endif
