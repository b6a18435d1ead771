/* tools/mkmodel/gen.h - the synthetic weight generator of TINY.md §5.
 *
 * Contract
 *   Given the expected tensor set of a config (core_expected_tensors()), produces the
 *   bytes of every tensor exactly as TINY.md §5 defines them: one SplitMix64 stream
 *   per tensor seeded by FNV-1a-64(name) XOR seed, approximately normal draws in
 *   row-major order of the logical tensor, a value rule chosen by the tensor's name,
 *   and the checkpoint's storage formats (F32/BF16 RNE, FP8 E4M3 with 128x128
 *   power-of-two E8M0 block scales, FP4 E2M1 with 1x32 E8M0 scales, I64 tid2eid).
 *   A quantised weight and its `.scale` tensor are produced together (one "job").
 *
 *   Output goes through a caller-supplied sink (a file descriptor and the absolute
 *   offsets of the two tensors); generation streams with bounded memory: a worker
 *   owns a struct gen_work of about 8 MB (one 128-row band of the widest FP8 weight,
 *   plus a 4 MB chunk), allocated once with gen_work_create().
 *
 *   Pure functions apart from the writes; a gen_work belongs to one thread; jobs are
 *   independent, so any number of threads may run different jobs at once.
 *   Errors: I/O errors return -errno and fill struct nv_err with the file and tensor.
 */
#ifndef NV_MKMODEL_GEN_H
#define NV_MKMODEL_GEN_H

#include <stdint.h>
#include "core/ckpt.h"
#include "core/config.h"
#include "core/err.h"

#define GEN_DEFAULT_SEED 0x5EEDull

/* ---- the PRNG and the draws (exposed for tests) ---- */
static inline uint64_t gen_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
uint64_t gen_fnv1a64(const char *s);
/* Initial state of the stream of tensor `name`. */
static inline uint64_t gen_stream_seed(const char *name, uint64_t seed)
{ return gen_fnv1a64(name) ^ seed; }
/* The state after k more draws (SplitMix64 adds a constant per draw). */
static inline uint64_t gen_skip(uint64_t state, uint64_t k) { return state + k * 0x9E3779B97F4A7C15ull; }
static inline double gen_uniform(uint64_t *st) { return (double)(gen_splitmix64(st) >> 11) * 0x1p-53; }
double gen_normal(uint64_t *st);

/* 2^k with k = ceil(log2(amax / fmax)), amax floored at `floor`; exact.  *code gets
 * the E8M0 byte 127 + k. */
float gen_pow2_scale(float amax, double fmax, float floor, uint8_t *code);

/* ---- jobs ---- */
struct gen_job {
	const struct core_tensor_spec *t;     /* the tensor (a .weight for FP8/FP4) */
	const struct core_tensor_spec *scale; /* its E8M0 .scale, or NULL */
	int fd;                               /* the shard holding both */
	uint64_t off, scale_off;              /* absolute file offsets of the data */
	const char *file;                     /* shard file name, for messages */
	int64_t r0, r1;                       /* rows [r0, r1) of dim 0 (gen_split) */
};

/* Split a whole-tensor job (r0 = r1 = 0) into row ranges of about `piece` output
 * bytes (FP8: whole 128-row bands), so that one large tensor is written by several
 * threads: every piece starts its tensor's stream at the right place (SplitMix64
 * advances its state by a constant per draw, so a position is reached in O(1)).
 * Returns the number of pieces; out (room for that many) may be NULL to count. */
size_t gen_split(const struct gen_job *j, uint64_t piece, struct gen_job *out);

/* Globals of one run: what the value rules need from the config. */
struct gen_ctx {
	uint64_t seed;
	int hidden;       /* D */
	int hc_mult;      /* M */
	int n_experts;    /* E (tid2eid shuffles 0..E-1) */
};

struct gen_work;
int gen_work_create(const struct core_tensor_spec *specs, size_t n, struct gen_work **out,
		    struct nv_err *e);
void gen_work_destroy(struct gen_work *w);

/* The table encoders the generator uses; equal to core_f32_to_e2m1 (nibble) and
 * core_f32_to_e4m3 for every float (exposed for tests). */
uint8_t gen_e2m1(const struct gen_work *w, float f);
uint8_t gen_e4m3(const struct gen_work *w, float f);

/* Generate and write one job (its rows [r0, r1)).  *written is increased by the bytes written (the
 * caller may read it from another thread for progress: it is updated with relaxed
 * atomics). */
int gen_run_job(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		uint64_t *written, struct nv_err *e);

/* The value rule of a tensor (TINY.md §5): v = add + mul * n / div.  Returns 0, or
 * NV_EINVAL for a name the generator does not know (scales, tid2eid). */
struct gen_rule { double add, mul, div; };
int gen_rule_for(const struct gen_ctx *g, const struct core_tensor_spec *t, struct gen_rule *r);

#endif
