/* core/sampler.h - next-token choice from logits (MODEL.md §12).
 *
 * Contract
 *   A core_sampler owns a workspace sized once for the vocabulary (create), so
 *   core_sampler_sample() never allocates.  Policy: temperature 0 (or top_k 1) is
 *   greedy argmax (lowest id on ties); otherwise logits / max(T, 1e-5), softmax in
 *   float with double sums, optional top-k (the k largest logits, ties by lower id),
 *   optional top-p (the smallest prefix of the probability-sorted candidates whose
 *   mass reaches top_p, ties by lower id), then one categorical draw from a
 *   xoshiro256** generator seeded with cfg.seed: the same seed, config and logits
 *   give the same ids on every run and machine.  NaN logits count as -inf; if every
 *   logit is -inf/NaN the sampler returns NV_EINVAL.
 *   Defaults: temperature 1.0, top_p 1.0 (generation_config.json), top_k off;
 *   core_sampler_cfg_load() reads them from a model directory's
 *   generation_config.json when present (missing file = defaults, malformed = error).
 *   Threads: one sampler per generating sequence; no global state.
 */
#ifndef NV_CORE_SAMPLER_H
#define NV_CORE_SAMPLER_H

#include <stdint.h>
#include "err.h"

struct core_sampler_cfg {
	float temperature; /* 0 = greedy */
	float top_p;       /* (0, 1]; 1 = off */
	int top_k;         /* 0 = off */
	uint64_t seed;
};

void core_sampler_cfg_default(struct core_sampler_cfg *c);
/* Fill temperature / top_p (and top_k if given) from <dir>/generation_config.json. */
int core_sampler_cfg_load(const char *dir, struct core_sampler_cfg *c, struct nv_err *e);

struct core_sampler;
int core_sampler_create(int n_vocab, const struct core_sampler_cfg *c, struct core_sampler **out,
			struct nv_err *e);
void core_sampler_destroy(struct core_sampler *s);
/* Restart the random stream (same seed -> same draws). */
void core_sampler_reseed(struct core_sampler *s, uint64_t seed);
/* Choose an id from logits[n_vocab]; *id set on success. */
int core_sampler_sample(struct core_sampler *s, const float *logits, int32_t *id, struct nv_err *e);

#endif
