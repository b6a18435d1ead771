/* tests/test_sample.c - kern.h sample() on the CPU backend (kernels/cpu/sample.c)
 * against the host sampler core_sampler_sample() (issue 4's reference, tested by
 * test_sampler) and an independent long-double evaluation of the definition.
 *
 *   equality  Two samplers with the same seed and configuration, one on host
 *             logits (masked here), one through core_sampler_sample_k() on the
 *             CPU backend (mask list + v_valid): ids and return codes must be
 *             equal draw by draw (same arithmetic, same u stream), for V in {1,
 *             7, 1000, 129280}, every configuration of sample_ref.h and every
 *             logits kind (gaussian, ties, NaN/-inf, flat, peaked, no candidate).
 *   long double  the CPU op with an explicit u (random, plus 0 and 1 - 2^-53) must
 *             give the id of the long-double evaluation except where u lies within
 *             1e-12 (relative) of a boundary: such cases are printed and counted,
 *             and must stay rare among random u (at most 1 in 1000).
 *   chi-square  100000 draws on V = 7 per configuration: frequencies against the
 *             probabilities of the definition (long double); statistic below the
 *             1 - 1e-4 quantile (Wilson-Hilferty), ids of probability 0 never
 *             drawn; and a power check: the same counts against the probabilities
 *             of another temperature must exceed the bound.
 *   timing    microseconds per call at V = 129280 (printed only).
 * Failures print V, configuration, kind, draw, got and expected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sampler.h"
#include "kernels/kern.h"
#include "sample_ref.h"
#include "testutil.h"

static struct kern *K;

static struct core_sampler *mk(int V, const struct sr_cfg *c, uint64_t seed)
{
	struct core_sampler_cfg sc = {c->t, c->p, c->k, seed};
	struct core_sampler *s = NULL;
	struct nv_err e = {0};
	TU_CHECK(core_sampler_create(V, &sc, &s, &e) == 0, "sampler create: %s", e.why);
	return s;
}

static void t_equal(void)
{
	static const int Vs[] = {1, 7, 1000, 129280};
	const int VMAX = 129280;
	float *l = malloc(sizeof(float) * VMAX), *h = malloc(sizeof(float) * VMAX);
	int32_t *mask = malloc(sizeof(int32_t) * (VMAX / 10 + 8));
	struct sr_ent *ws = malloc(sizeof *ws * VMAX);
	TU_CHECK(K->sample_reserve(K, VMAX) == 0, "sample_reserve");
	long n_draw = 0, n_ld = 0, n_near = 0;
	for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
		const int V = Vs[vi], draws = V > 100000 ? 2 : V > 500 ? 12 : 40;
		for (int ci = 0; ci < SR_NCFG; ci++) {
			const struct sr_cfg *c = &sr_cfgs[ci];
			uint64_t seed = 1000 * vi + ci;
			/* one pair of samplers across all kinds: their streams must stay aligned */
			struct core_sampler *sh = mk(V, c, seed), *sk = mk(V, c, seed);
			for (int kind = 0; kind < SR_NKIND; kind++) {
				int nm, vv;
				sr_logits(kind, V, l, mask, &nm, &vv);
				sr_apply_mask(h, l, V, mask, nm, vv);
				for (int d = 0; d < draws; d++) {
					struct nv_err e1 = {0}, e2 = {0};
					int32_t a = -7, b = -7;
					int r1 = core_sampler_sample(sh, h, &a, &e1);
					int r2 = core_sampler_sample_k(sk, K, l, mask, nm, vv, &b, &e2);
					TU_CHECK(r1 == r2 && (r1 || a == b),
						 "V %d cfg %d (T %g p %g k %d) %s draw %d: got %d (rc %d) expected %d (rc %d)", V,
						 ci, c->t, c->p, c->k, sr_kind_name[kind], d, b, r2, a, r1);
					n_draw++;
					/* the op with an explicit u against the long-double definition */
					struct kern_sample sp = {c->t, c->p, c->k, sr_unif()};
					if (d == 0) sp.u = 0;                   /* the ends of [0, 1) */
					if (d == 1) sp.u = 1 - 0x1p-53;
					int32_t got = -7;
					K->sample(K, &got, l, V, mask, nm, vv, &sp);
					int near;
					int32_t want = sr_eval(h, V, &sp, 1e-12L, &near, NULL, ws);
					n_ld += d > 1;
					if (got != want && near) {
						n_near += d > 1; /* u = 1 - 2^-53 sits at the last boundary by design */
						printf("near a boundary: V %d cfg %d %s u %.17g: got %d, long double %d\n", V, ci,
						       sr_kind_name[kind], sp.u, got, want);
						continue;
					}
					TU_CHECK(got == want, "long double: V %d cfg %d (T %g p %g k %d) %s u %.17g: got %d expected %d",
						 V, ci, c->t, c->p, c->k, sr_kind_name[kind], sp.u, got, want);
				}
			}
			core_sampler_destroy(sh);
			core_sampler_destroy(sk);
		}
	}
	printf("host vs op: %ld draws equal; op vs long double: %ld random u, %ld differing near a boundary\n",
	       n_draw, n_ld, n_near);
	TU_CHECK(n_near * 1000 <= n_ld, "%ld of %ld draws near a boundary: more than chance allows", n_near, n_ld);
	free(l); free(h); free(mask); free(ws);
}

/* chi-square quantile at 1 - alpha (z = its normal quantile), Wilson-Hilferty */
static double chi2_bound(int df, double z)
{
	double a = 2.0 / (9.0 * df);
	return df * pow(1 - a + z * sqrt(a), 3);
}

/* counts [V] against probabilities [V]: the statistic; *zero_hit = draws of ids of
 * probability 0; *df = categories - 1 */
static double chi2(const long *cnt, const double *prob, int V, long n, long *zero_hit, int *df)
{
	double x = 0;
	int cats = 0;
	*zero_hit = 0;
	for (int i = 0; i < V; i++) {
		if (prob[i] <= 0) { *zero_hit += cnt[i]; continue; }
		double e = prob[i] * n;
		x += (cnt[i] - e) * (cnt[i] - e) / e;
		cats++;
	}
	*df = cats - 1;
	return x;
}

static void t_chi2(void)
{
	enum { V = 7, N = 100000 };
	const double Z = 3.719; /* alpha = 1e-4 */
	static const float l[V] = {1.0f, 0.2f, -0.5f, 1.0f, 2.1f, -3.0f, 0.7f};
	static const struct sr_cfg cf[] = {{1, 1, 0}, {0.7f, 1, 0}, {1.6f, 1, 0}, {1, 1, 3}, {0.9f, 0.8f, 0},
					   {1, 0.9f, 4}};
	struct sr_ent ws[V];
	for (size_t ci = 0; ci < sizeof cf / sizeof cf[0]; ci++) {
		const struct sr_cfg *c = &cf[ci];
		struct core_sampler *s = mk(V, c, 4242 + ci);
		long cnt[V] = {0};
		for (int d = 0; d < N; d++) {
			struct nv_err e = {0};
			int32_t id = -1;
			if (core_sampler_sample_k(s, K, l, NULL, 0, V, &id, &e) || id < 0 || id >= V) {
				TU_CHECK(0, "chi2 cfg %zu draw %d: id %d", ci, d, id);
				break;
			}
			cnt[id]++;
		}
		core_sampler_destroy(s);
		double prob[V], alt[V];
		int near, df, df2;
		long zh, zh2;
		struct kern_sample sp = {c->t, c->p, c->k, 0.5};
		sr_eval(l, V, &sp, 0, &near, prob, ws);
		double x = chi2(cnt, prob, V, N, &zh, &df);
		double bound = df > 0 ? chi2_bound(df, Z) : 0;
		printf("chi2 T %g top_p %g top_k %d: %.2f (df %d, bound %.2f)\n", c->t, c->p, c->k, x, df, bound);
		TU_CHECK(zh == 0, "chi2 cfg %zu: %ld draws of ids with probability 0", ci, zh);
		TU_CHECK(x <= bound, "chi2 cfg %zu (T %g p %g k %d): statistic %.2f above %.2f (df %d)", ci, c->t, c->p,
			 c->k, x, bound, df);
		/* power: the same counts must reject the distribution of T * 1.25 */
		sp.temperature = c->t * 1.25f;
		sr_eval(l, V, &sp, 0, &near, alt, ws);
		double x2 = chi2(cnt, alt, V, N, &zh2, &df2);
		TU_CHECK(zh2 > 0 || (df2 > 0 && x2 > chi2_bound(df2, Z)),
			 "chi2 cfg %zu: counts do not reject T*1.25 (%.2f, df %d): the test has no power", ci, x2, df2);
	}
}

/* microseconds per CPU sample() call at V = 129280 (printed, not checked) */
static void t_timing(void)
{
	const int V = 129280;
	float *l = malloc(sizeof(float) * V);
	int32_t mask[V / 10 + 8];
	int nm, vv;
	sr_logits(SR_GAUSS, V, l, mask, &nm, &vv);
	static const struct sr_cfg tc[] = {{0, 1, 0}, {1, 1, 0}, {1, 1, 40}, {1, 0.95f, 0}, {0.8f, 0.9f, 40}};
	for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
		struct kern_sample sp = {tc[i].t, tc[i].p, tc[i].k, 0.5};
		int32_t id;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int r = 0; r < 10; r++) K->sample(K, &id, l, V, mask, nm, vv, &sp);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("timing cpu V %d T %g top_p %g top_k %d: %.0f us per call\n", V, tc[i].t, tc[i].p, tc[i].k,
		       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 10 / 1e3);
	}
	free(l);
}

int main(void)
{
	struct kern_cpu_opts o = {1, KERN_CPU_ISA_AUTO};
	K = kern_cpu_create_opts(&o);
	if (!K) { fprintf(stderr, "FAIL: cpu backend\n"); return 1; }
	t_equal();
	t_chi2();
	t_timing();
	K->destroy(K);
	TU_DONE();
}
