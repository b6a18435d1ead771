/* core/sampler.h - next-token choice from logits (MODEL.md §12).
 *
 * Contract
 *   A core_sampler owns a workspace sized once for the vocabulary (create), so
 *   sampling never allocates.  Policy: temperature 0 (or top_k 1) is greedy argmax
 *   (lowest id on ties); otherwise x = (l - max) / max(T, 1e-5) in f32, weights
 *   exp(x) in double, optional top-k (the k largest x, ties by lower id), optional
 *   top-p (the smallest prefix of the x-sorted candidates whose mass reaches top_p
 *   of the top-k mass, ties by lower id), then one categorical draw.  The exact
 *   definition - summation orders, which walk the draw takes - is that of sample()
 *   in kernels/kern.h: core_sampler_sample() computes it on host logits,
 *   core_sampler_sample_k() has the backend compute it where the logits are (one
 *   id crosses to the host).  Both take the draw u from the same xoshiro256**
 *   stream seeded with cfg.seed (53 bits, one draw per sampled token, none when
 *   greedy), so the same seed, config and logits give the same ids on every run,
 *   machine and backend (the GPU up to sums rounding at a boundary, kern.h).
 *   NaN logits count as -inf; if every logit is -inf/NaN (or masked) the sampler
 *   returns NV_EINVAL (after consuming the draw).
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
/* Choose an id from logits[n_vocab] (host); *id set on success. */
int core_sampler_sample(struct core_sampler *s, const float *logits, int32_t *id, struct nv_err *e);
/* The same choice by backend k from logits_b [n_vocab] (backend memory, e.g.
 * core_model_logits_b()), with ids in mask_b [n_mask] (backend memory) and ids >=
 * v_valid never chosen.  k must have sample scratch for n_vocab (k->sample_reserve;
 * core_model_create() reserves the model's vocabulary). */
struct kern;
int core_sampler_sample_k(struct core_sampler *s, struct kern *k, const float *logits_b, const int32_t *mask_b,
			  int n_mask, int v_valid, int32_t *id, struct nv_err *e);

#endif
