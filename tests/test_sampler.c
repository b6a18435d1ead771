/* tests/test_sampler.c - core/sampler: greedy, temperature, top-k, top-p, seeds,
 * generation_config.json defaults (MODEL.md §12).  Expected frequencies come from
 * the softmax of the chosen logits (computed here in double from the definition);
 * with a fixed seed every run draws the same ids, so the tolerances (5+ sigma)
 * cannot flake. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sampler.h"
#include "testutil.h"

#define NV 1000

static struct core_sampler *mk(float t, float p, int k, uint64_t seed)
{
	struct core_sampler_cfg c = {t, p, k, seed};
	struct core_sampler *s = NULL;
	struct nv_err e = {0};
	TU_CHECK(core_sampler_create(NV, &c, &s, &e) == 0, "create: %s", e.why);
	return s;
}

/* logits with softmax probabilities 0.5, 0.3, 0.2 at ids 7, 500, 999; the rest -inf */
static void three(float *l)
{
	for (int i = 0; i < NV; i++) l[i] = -INFINITY;
	l[7] = logf(0.5f) + 3;
	l[500] = logf(0.3f) + 3;
	l[999] = logf(0.2f) + 3;
}

static void freq(struct core_sampler *s, const float *l, int draws, double *f)
{
	struct nv_err e = {0};
	memset(f, 0, NV * sizeof *f);
	for (int i = 0; i < draws; i++) {
		int32_t id = -1;
		TU_CHECK(core_sampler_sample(s, l, &id, &e) == 0 && id >= 0 && id < NV, "draw %d: id %d", i, id);
		if (id >= 0 && id < NV) f[id] += 1.0 / draws;
	}
}

int main(void)
{
	static float l[NV];
	static double f[NV];
	struct nv_err e = {0};
	int32_t id;
	struct core_sampler *s;

	/* greedy: argmax, lowest id on ties, NaN ignored */
	for (int i = 0; i < NV; i++) l[i] = (float)(i % 97) * 0.01f;
	l[300] = 5; l[600] = 5; l[10] = NAN;
	s = mk(0, 1, 0, 1);
	TU_CHECK(core_sampler_sample(s, l, &id, &e) == 0 && id == 300, "greedy: got %d expected 300", id);
	core_sampler_destroy(s);
	s = mk(1, 1, 1, 1); /* top_k 1 is greedy too */
	TU_CHECK(core_sampler_sample(s, l, &id, &e) == 0 && id == 300, "top_k=1: got %d expected 300", id);
	core_sampler_destroy(s);

	/* T = 1: frequencies 0.5 / 0.3 / 0.2 (20000 draws: sigma <= 0.0036, tolerance 0.02) */
	three(l);
	s = mk(1, 1, 0, 12345);
	freq(s, l, 20000, f);
	TU_CHECK(fabs(f[7] - 0.5) < 0.02 && fabs(f[500] - 0.3) < 0.02 && fabs(f[999] - 0.2) < 0.02,
		 "T=1: freq %.3f %.3f %.3f expected 0.5 0.3 0.2", f[7], f[500], f[999]);
	core_sampler_destroy(s);
	/* T = 0.5: p^2 normalised = 0.658, 0.237, 0.105 */
	s = mk(0.5f, 1, 0, 99);
	freq(s, l, 20000, f);
	double z = 0.25 + 0.09 + 0.04;
	TU_CHECK(fabs(f[7] - 0.25 / z) < 0.02 && fabs(f[500] - 0.09 / z) < 0.02 && fabs(f[999] - 0.04 / z) < 0.02,
		 "T=0.5: freq %.3f %.3f %.3f expected %.3f %.3f %.3f", f[7], f[500], f[999], 0.25 / z, 0.09 / z, 0.04 / z);
	core_sampler_destroy(s);
	/* top_k 2: only the two best, renormalised 0.625 / 0.375 */
	s = mk(1, 1, 2, 5);
	freq(s, l, 20000, f);
	TU_CHECK(f[999] == 0 && fabs(f[7] - 0.625) < 0.02, "top_k=2: freq %.3f %.3f %.3f", f[7], f[500], f[999]);
	core_sampler_destroy(s);
	/* top_p 0.6: nucleus {7, 500} (0.5 < 0.6 <= 0.8); top_p 0.5: {7} alone */
	s = mk(1, 0.6f, 0, 5);
	freq(s, l, 20000, f);
	TU_CHECK(f[999] == 0 && fabs(f[7] - 0.625) < 0.02, "top_p=0.6: freq %.3f %.3f %.3f", f[7], f[500], f[999]);
	core_sampler_destroy(s);
	s = mk(1, 0.5f, 0, 5);
	freq(s, l, 2000, f);
	TU_CHECK(f[7] > 0.99999, "top_p=0.5: freq of the top id %.3f expected 1", f[7]);
	core_sampler_destroy(s);

	/* a flat distribution over all 1000 ids with top_p 0.125 (exact in binary) keeps
	 * the 125 lowest ids */
	for (int i = 0; i < NV; i++) l[i] = 0;
	s = mk(1, 0.125f, 0, 77);
	freq(s, l, 5000, f);
	int used = 0, outside = 0;
	for (int i = 0; i < NV; i++) { used += f[i] > 0; outside += f[i] > 0 && i >= 125; }
	TU_CHECK(outside == 0 && used > 115, "flat top_p=0.125: %d ids used, %d outside the first 125 (ties by id)", used, outside);
	core_sampler_destroy(s);

	/* determinism: same seed -> same sequence; another seed -> another one; reseed restarts */
	for (int i = 0; i < NV; i++) l[i] = sinf((float)i) * 2;
	int32_t a[200], b[200], c[200];
	struct core_sampler *s1 = mk(1, 0.9f, 50, 42), *s2 = mk(1, 0.9f, 50, 42), *s3 = mk(1, 0.9f, 50, 43);
	for (int i = 0; i < 200; i++) {
		core_sampler_sample(s1, l, &a[i], &e);
		core_sampler_sample(s2, l, &b[i], &e);
		core_sampler_sample(s3, l, &c[i], &e);
	}
	TU_CHECK(!memcmp(a, b, sizeof a), "same seed gave different ids");
	TU_CHECK(memcmp(a, c, sizeof a), "seeds 42 and 43 gave the same 200 ids");
	core_sampler_reseed(s1, 42);
	for (int i = 0; i < 200; i++) {
		core_sampler_sample(s1, l, &b[i], &e);
	}
	TU_CHECK(!memcmp(a, b, sizeof a), "reseed did not restart the stream");
	core_sampler_destroy(s1); core_sampler_destroy(s2); core_sampler_destroy(s3);

	/* bad input */
	for (int i = 0; i < NV; i++) l[i] = NAN;
	s = mk(1, 1, 0, 1);
	TU_CHECK(core_sampler_sample(s, l, &id, &e) == NV_EINVAL, "all-NaN logits accepted");
	core_sampler_destroy(s);
	struct core_sampler_cfg bad = {-1, 1, 0, 0};
	TU_CHECK(core_sampler_create(NV, &bad, &s, &e) == NV_EINVAL && s == NULL, "negative temperature accepted");
	bad.temperature = 1; bad.top_p = 0;
	TU_CHECK(core_sampler_create(NV, &bad, &s, &e) == NV_EINVAL, "top_p 0 accepted");
	core_sampler_destroy(NULL);

	/* defaults and generation_config.json */
	struct core_sampler_cfg cfg;
	core_sampler_cfg_default(&cfg);
	TU_CHECK(cfg.temperature == 1.0f && cfg.top_p == 1.0f && cfg.top_k == 0, "defaults");
	TU_CHECK(core_sampler_cfg_load("/nonexistent", &cfg, &e) == 0, "missing generation_config.json is fine");
	char dir[] = "/tmp/nvmoe_sampler_XXXXXX", path[64];
	if (mkdtemp(dir)) {
		snprintf(path, sizeof path, "%s/generation_config.json", dir);
		FILE *fp = fopen(path, "w");
		fputs("{\"temperature\": 0.6, \"top_p\": 0.95}", fp);
		fclose(fp);
		TU_CHECK(core_sampler_cfg_load(dir, &cfg, &e) == 0 && fabsf(cfg.temperature - 0.6f) < 1e-6f &&
			 fabsf(cfg.top_p - 0.95f) < 1e-6f, "read 0.6 / 0.95: got %g %g", cfg.temperature, cfg.top_p);
		/* larger than any small fixed buffer: a 200 KB padding key before the values */
		fp = fopen(path, "w");
		fputs("{\"_pad\": \"", fp);
		for (int i = 0; i < 200000; i++) fputc('x', fp);
		fputs("\", \"temperature\": 0.25, \"top_k\": 7}", fp);
		fclose(fp);
		TU_CHECK(core_sampler_cfg_load(dir, &cfg, &e) == 0 && fabsf(cfg.temperature - 0.25f) < 1e-6f && cfg.top_k == 7,
			 "200 KB generation_config.json: rc / temperature %g top_k %d (expected 0.25, 7): %s", cfg.temperature,
			 cfg.top_k, e.why);
		fp = fopen(path, "w");
		fputs("{\"temperature\": \"hot\"", fp);
		fclose(fp);
		TU_CHECK(core_sampler_cfg_load(dir, &cfg, &e) == NV_EINVAL, "malformed generation_config.json accepted");
		remove(path);
		rmdir(dir);
	}
	const char *sh = tu_shared_dir();
	if (sh) { /* the released file: temperature 1.0, top_p 1.0 */
		char ref[4096];
		snprintf(ref, sizeof ref, "%s/ref/deepseek-v4-flash", sh);
		cfg.temperature = 0.5f; cfg.top_p = 0.5f;
		TU_CHECK(core_sampler_cfg_load(ref, &cfg, &e) == 0 && cfg.temperature == 1.0f && cfg.top_p == 1.0f,
			 "released generation_config.json: %g %g", cfg.temperature, cfg.top_p);
	}
	TU_DONE();
}
