/* tests/test_sample_cuda.c - kern.h sample() on the CUDA backend against the CPU
 * backend's (kernels/cpu/sample.c, itself checked against the host sampler by
 * test_sample), on the same logits and the same u.
 *
 *   ops     V in {1, 7, 1000, 129280}, every configuration and logits kind of
 *           sample_ref.h, mask list and v_valid in device memory, random u plus 0
 *           and 1 - 2^-53.  Greedy configurations (T 0, top_k 1), rows without a
 *           candidate and +inf rows must give the same id.  Sampled ids must be
 *           equal except where the long-double evaluation of the definition shows
 *           r = u * total (or the top-p threshold) within 1e-9 (relative) of a
 *           running sum: the GPU sums in another order (kern.h).  Such cases are
 *           printed and counted; among random u they must stay rare (<= 1 in 1000).
 *           A second pass puts u exactly on CPU boundaries to show the counting at
 *           work.  The logits must be left unchanged (const).
 *   model   TINY-CI on the CUDA backend: core_forward keeps the last logits row on
 *           the device (logits_keep) and downloads it; core_sampler_sample_k on
 *           the device row vs core_sampler_sample on the host copy with the same
 *           seed (u replayed with the generator of sample_old.h), 30 steps x 4
 *           configurations, same boundary rule.
 *   timing  microseconds per sample() call for V = 129280 (printed, not checked).
 * Exit 77 without a CUDA device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/model.h"
#include "core/sampler.h"
#include "kernels/cuda/cuda.h"
#include "kernels/kern.h"
#include "sample_old.h"
#include "sample_ref.h"
#include "testutil.h"

#define VMAX 129280
#define REL 1e-9L

static struct kern *C, *G;
static struct sr_ent *g_ws;
static long g_rand, g_near_rand, g_near_adv;

static int greedy(const struct kern_sample *sp) { return sp->temperature == 0 || sp->top_k == 1; }

/* CPU id a vs GPU id b for row h (masked host copy): 0 ok, 1 near a boundary, -1 bad */
static int judge(int32_t a, int32_t b, const float *h, int V, const struct kern_sample *sp)
{
	if (a == b) return 0;
	if (greedy(sp) || a < 0 || b < 0) return -1;
	int near;
	sr_eval(h, V, sp, REL, &near, NULL, g_ws);
	return near ? 1 : -1;
}

static void t_ops(void)
{
	static const int Vs[] = {1, 7, 1000, VMAX};
	float *l = malloc(sizeof(float) * VMAX), *h = malloc(sizeof(float) * VMAX), *back = malloc(sizeof(float) * VMAX);
	int32_t *mask = malloc(sizeof(int32_t) * (VMAX / 10 + 8));
	float *dl = G->alloc(G, sizeof(float) * VMAX);
	int32_t *dm = G->alloc(G, sizeof(int32_t) * (VMAX / 10 + 8));
	for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
		const int V = Vs[vi], draws = V > 100000 ? 6 : V > 500 ? 20 : 50;
		for (int ci = 0; ci < SR_NCFG; ci++) {
			const struct sr_cfg *c = &sr_cfgs[ci];
			for (int kind = 0; kind < SR_NKIND; kind++) {
				int nm, vv;
				sr_logits(kind, V, l, mask, &nm, &vv);
				sr_apply_mask(h, l, V, mask, nm, vv);
				G->upload(G, dl, l, sizeof(float) * V);
				if (nm) G->upload(G, dm, mask, sizeof(int32_t) * nm);
				for (int d = 0; d < draws; d++) {
					struct kern_sample sp = {c->t, c->p, c->k, d == 0 ? 0 : d == 1 ? 1 - 0x1p-53 : sr_unif()};
					int32_t a = -7, b = -7;
					C->sample(C, &a, l, V, mask, nm, vv, &sp);
					G->sample(G, &b, dl, V, dm, nm, vv, &sp);
					int j = judge(a, b, h, V, &sp);
					g_rand += d > 1;
					if (j == 1) {
						if (d > 1) g_near_rand++;
						printf("near a boundary: V %d cfg %d %s u %.17g: cuda %d, cpu %d\n", V, ci,
						       sr_kind_name[kind], sp.u, b, a);
					}
					TU_CHECK(j >= 0, "V %d cfg %d (T %g p %g k %d) %s draw %d u %.17g: got %d expected %d", V, ci,
						 c->t, c->p, c->k, sr_kind_name[kind], d, sp.u, b, a);
				}
				G->download(G, back, dl, sizeof(float) * V);
				TU_CHECK(!memcmp(back, l, sizeof(float) * V), "V %d cfg %d %s: sample() changed the logits", V, ci,
					 sr_kind_name[kind]);
			}
		}
	}
	/* u on the CPU's boundaries of an id-order walk (T 1, no cut): r = c_j exactly */
	const int V = 1000;
	struct kern_sample sp = {1, 1, 0, 0};
	int nm, vv;
	sr_logits(SR_GAUSS, V, l, mask, &nm, &vv);
	float m = -INFINITY;
	for (int i = 0; i < V; i++) m = l[i] > m ? l[i] : m;
	double *cum = malloc(sizeof(double) * V), t = 0;
	for (int i = 0; i < V; i++) cum[i] = t += exp((double)((l[i] - m) * 1.0f));
	G->upload(G, dl, l, sizeof(float) * V);
	int adv = 0;
	for (int j = 0; j + 1 < V; j += 7) {
		sp.u = cum[j] / t;
		if (sp.u >= 1) continue;
		int32_t a, b;
		C->sample(C, &a, l, V, NULL, 0, V, &sp);
		G->sample(G, &b, dl, V, NULL, 0, V, &sp);
		int r = judge(a, b, l, V, &sp);
		adv++;
		g_near_adv += r == 1;
		TU_CHECK(r >= 0, "boundary u %.17g (j %d): got %d expected %d, not near a boundary", sp.u, j, b, a);
	}
	printf("ops: %ld random u, %ld differing near a boundary; %d u on CPU boundaries, %ld of them differing\n",
	       g_rand, g_near_rand, adv, g_near_adv);
	TU_CHECK(g_near_rand * 1000 <= g_rand, "%ld of %ld random draws near a boundary: more than rounding explains",
		 g_near_rand, g_rand);
	free(cum);
	/* timing, V = VMAX */
	sr_logits(SR_GAUSS, VMAX, l, mask, &nm, &vv);
	G->upload(G, dl, l, sizeof(float) * VMAX);
	G->upload(G, dm, mask, sizeof(int32_t) * nm);
	static const struct sr_cfg tc[] = {{0, 1, 0}, {1, 1, 0}, {1, 1, 40}, {1, 0.95f, 0}, {0.8f, 0.9f, 40}};
	for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
		struct kern_sample s2 = {tc[i].t, tc[i].p, tc[i].k, 0.5};
		int32_t b;
		G->sample(G, &b, dl, VMAX, dm, nm, vv, &s2); /* warm-up */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int r = 0; r < 50; r++) G->sample(G, &b, dl, VMAX, dm, nm, vv, &s2);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 50 / 1e3;
		printf("timing V %d T %g top_p %g top_k %d: %.1f us per call (id included)\n", VMAX, tc[i].t, tc[i].p,
		       tc[i].k, us);
	}
	G->free(G, dl);
	G->free(G, dm);
	free(l); free(h); free(back); free(mask);
}

static void t_model(void)
{
	const char *bd = getenv("NV_BUILD");
	char mk[4096], dir[] = "/tmp/nvmoe_scuda_XXXXXX", cmd[4200];
	snprintf(mk, sizeof mk, "%s/mkmodel", bd ? bd : "build");
	if (access(mk, X_OK) || !mkdtemp(dir)) {
		printf("model part skipped: no mkmodel\n");
		return;
	}
	struct core_ckpt *ck = tu_mkmodel_open(dir, "tiny-ci", "");
	const int V = core_ckpt_config(ck)->vocab_size;
	static const struct sr_cfg mc[] = {{1, 1, 0}, {0.7f, 0.9f, 0}, {1, 1, 40}, {0.8f, 0.9f, 20}};
	float *hl = malloc(sizeof(float) * V);
	long near = 0, steps = 0;
	for (size_t ci = 0; ci < sizeof mc / sizeof mc[0]; ci++) {
		struct nv_err e = {0};
		char eb[2048];
		struct core_model *m = NULL;
		struct core_seq *sq = NULL;
		struct core_sampler *sh = NULL, *sk = NULL;
		struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL };
		struct core_sampler_cfg sc = {mc[ci].t, mc[ci].p, mc[ci].k, 100 + ci};
		if (core_model_create(ck, G, &mo, &m, &e) || core_seq_create(m, 128, &sq, &e) ||
		    core_sampler_create(V, &sc, &sh, &e) || core_sampler_create(V, &sc, &sk, &e)) {
			TU_CHECK(0, "model set-up: %s", core_err_str(&e, eb, sizeof eb));
			break;
		}
		struct old_sampler *ur = old_sampler_create(V, &sc); /* the same generator: replays u */
		int32_t ids[12];
		for (int i = 0; i < 12; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
		struct core_fwd_io io = { .logits = hl, .logits_keep = 1 };
		int rc = core_forward(m, sq, ids, 12, 0, &io, &e);
		int pos = 12;
		for (int s = 0; s < 30 && !rc; s++) {
			const float *lb = core_model_logits_b(m);
			TU_CHECK(lb != NULL, "logits_keep left no row");
			if (!lb) break;
			int32_t a = -7, b = -7;
			struct kern_sample sp = {sc.temperature, sc.top_p, sc.top_k, 0};
			sp.u = (double)(old_next_u64(ur) >> 11) * (1.0 / 9007199254740992.0);
			int r1 = core_sampler_sample(sh, hl, &a, &e);
			int r2 = core_sampler_sample_k(sk, G, lb, NULL, 0, V, &b, &e);
			TU_CHECK(!r1 && !r2, "model cfg %zu step %d: rc %d %d", ci, s, r1, r2);
			int j = judge(a, b, hl, V, &sp);
			near += j == 1;
			steps++;
			TU_CHECK(j >= 0, "model cfg %zu step %d: got %d expected %d", ci, s, b, a);
			rc = core_forward(m, sq, &a, 1, pos++, &io, &e);
		}
		TU_CHECK(!rc, "model cfg %zu: forward: %s", ci, core_err_str(&e, eb, sizeof eb));
		old_sampler_destroy(ur);
		core_sampler_destroy(sh);
		core_sampler_destroy(sk);
		core_seq_destroy(sq);
		core_model_destroy(m);
	}
	printf("model: %ld steps, %ld differing near a boundary\n", steps, near);
	free(hl);
	core_ckpt_close(ck);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
	if (kern_cuda_device_count() == 0) {
		printf("skip: no CUDA device\n");
		return 77;
	}
	char msg[256];
	if (kern_cuda_create(0, &G, msg, sizeof msg)) {
		printf("skip: %s\n", msg);
		return 77;
	}
	struct kern_cpu_opts o = {1, KERN_CPU_ISA_AUTO};
	C = kern_cpu_create_opts(&o);
	g_ws = malloc(sizeof *g_ws * VMAX);
	if (!C || C->sample_reserve(C, VMAX) || G->sample_reserve(G, VMAX)) {
		fprintf(stderr, "FAIL: backend set-up\n");
		return 1;
	}
	t_ops();
	t_model();
	free(g_ws);
	C->destroy(C);
	G->destroy(G);
	TU_DONE();
}
