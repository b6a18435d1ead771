/* cli/cmd_bench_gpu.c - `nvmoe bench MODEL --backend cuda [--vram-budget SZ]
 * [--host-cache SZ] [--prefill N] [--decode N] [--repeat N] [--json]`:
 *
 *   h2d        host-to-device copy bandwidth from page-locked memory (what the GPU
 *              expert slots get from a registered host cache) and from pageable
 *              memory, 256 MiB copies; best of --repeat.
 *   prefill    core_forward over a --prefill token prompt (one chunk), logits of the
 *              last position; tokens/s.
 *   decode     --decode single-token steps after the prompt, logits every step.
 * Routed experts: resident in VRAM, or through GPU expert slots when --vram-budget,
 * --host-cache or a converted store asks for streaming (cli/experts.c); then the slot
 * statistics (hit rate, bytes copied) of the measured rounds are reported too.  A
 * warm-up round comes first (it fills the slots and the host cache as far as they go).
 * Figures are best, median and worst of the repetitions.  Faithful numerics. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cache/gpu.h"
#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/kern.h"
#ifdef NVMOE_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif


int cli_bench_gpu(const struct cli_opts *o, cJSON *js)
{
	struct nv_err e = {0};
	struct core_ckpt *ck = NULL;
	struct kern *k = NULL;
	struct cli_experts *xs = NULL;
	const struct core_expert_src *src = NULL;
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	int32_t *tok = NULL;
	float *lg = NULL;
	double *v = NULL;
	int ret = 1;
	const int reps = o->repeat > 0 ? o->repeat : 3;
	const int P = o->bench_prefill > 0 ? o->bench_prefill : 64;
	const int N = o->bench_decode > 0 ? o->bench_decode : 16;
	FILE *tf = o->json ? stderr : stdout; /* progress goes to stderr with --json */

	if (cli_backend_create(o, &k, &e)) goto err;
	if (strcmp(k->name, "cuda")) {
		core_err_set(&e, NV_EUNSUPPORTED, "bench", k->name, "use --backend cuda on a machine with a CUDA device",
			     "the GPU benchmark needs the CUDA backend");
		goto err;
	}
	char dev[256] = "";
	size_t mfree = 0, mtot = 0;
#ifdef NVMOE_HAVE_CUDA
	kern_cuda_info(k, dev, sizeof dev, &mfree, &mtot);
#endif
	(void)mfree;
	fprintf(tf, "nvmoe bench %s: backend cuda (%s, %.1f GiB), faithful numerics, best / median / worst of %d\n",
		o->args[0], dev, (double)mtot / (1 << 30), reps);

	/* host -> device bandwidth: pinned and pageable */
	v = calloc((size_t)reps * 2, sizeof *v);
	if (!v) { core_err_set(&e, NV_ENOMEM, "bench", NULL, NULL, "out of memory"); goto err; }
	for (int i = 0; i < reps; i++)
		if (cache_gpu_cuda_h2d_gbs((size_t)256 << 20, 4, 1, &v[i], &e) ||
		    cache_gpu_cuda_h2d_gbs((size_t)256 << 20, 4, 0, &v[reps + i], &e))
			goto err;
	struct cli_stat3 hp = cli_stat3(v, reps), hq = cli_stat3(v + reps, reps);
	fprintf(tf, "  %-48s %8.2f %8.2f %8.2f GB/s\n", "host->device copy, page-locked (256 MiB)", hp.best, hp.med, hp.worst);
	fprintf(tf, "  %-48s %8.2f %8.2f %8.2f GB/s\n", "host->device copy, pageable (256 MiB)", hq.best, hq.med, hq.worst);
	cli_js_stat3(js, "h2d_pinned_gbs", hp);
	cli_js_stat3(js, "h2d_pageable_gbs", hq);

	/* the model, its experts as a command would have them */
	struct core_ckpt_opts co = { .allow_extra = o->allow_extra };
	if (core_ckpt_open(o->args[0], &co, &ck, &e)) goto err;
	const int chunk = o->chunk > 0 && o->chunk < P ? o->chunk : P;
	if (cli_experts_open_auto(o, ck, k, P + N + 1, chunk, &xs, &src, &e) || cli_backend_check_experts(k, src, &e))
		goto err;
	const int V = core_ckpt_config(ck)->vocab_size;
	double t0 = cli_now();
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = chunk, .experts = src };
	if (core_model_create(ck, k, &mo, &m, &e) || core_seq_create(m, P + N + 1, &sq, &e)) goto err;
	if (cli_experts_reserve(xs, &e)) goto err;
	double tload = cli_now() - t0;
	struct cache_gpu_stats s0 = {0}, s1 = {0};
	int nslots = 0, pinned = 0;
	int slots = cli_experts_gpu_stats(xs, &s0, &nslots, &pinned) == 0;
	size_t used = 0;
	uint64_t hc = 0, vb = 0; /* effective: the flags', or the memory plan's */
	cli_experts_sizes(xs, &hc, &vb);
#ifdef NVMOE_HAVE_CUDA
	used = kern_cuda_mem_used(k);
#endif
	if (slots)
		fprintf(tf, "  experts: %d GPU slots (%s host memory), --vram-budget %.2f GiB, --host-cache %.2f GiB; backend "
			"holds %.2f GiB; set-up %.1f s\n", nslots, pinned ? "page-locked" : "pageable",
			(double)vb / (1 << 30), (double)hc / (1 << 30), (double)used / (1 << 30), tload);
	else
		fprintf(tf, "  experts: resident in VRAM; backend holds %.2f GiB; set-up (upload) %.1f s\n",
			(double)used / (1 << 30), tload);

	tok = malloc(sizeof(int32_t) * (size_t)(P + N));
	lg = malloc(sizeof(float) * (size_t)V);
	if (!tok || !lg) { core_err_set(&e, NV_ENOMEM, "bench", NULL, NULL, "out of memory"); goto err; }
	uint64_t st = 0xBE7Cull ^ o->seed;
	for (int i = 0; i < P + N; i++) {
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		tok[i] = (int32_t)((st >> 33) % (uint64_t)V);
	}
	struct core_fwd_io io = { .logits = lg };
	struct core_fwd_io pio = { .logits = lg, .layer_major = cli_prefill_layer(o->prefill_order, xs, P, chunk) };
	struct cli_prefill_res pr;
	cli_prefill_res_begin(&pr, o, pio.layer_major, chunk);
	/* warm-up: the whole prompt and the decode steps once */
	if (core_forward(m, sq, tok, P, 0, &pio, &e)) goto err;
	for (int i = 0; i < N; i++)
		if (core_forward(m, sq, tok + P + i, 1, P + i, &io, &e)) goto err;
	if (slots) cli_experts_gpu_stats(xs, &s0, &nslots, &pinned);
	for (int r = 0; r < reps; r++) {
		double a = cli_now();
		cli_prefill_res_add(&pr, xs, 0);
		if (core_forward(m, sq, tok, P, 0, &pio, &e)) goto err;
		cli_prefill_res_add(&pr, xs, 1);
		double b = cli_now();
		for (int i = 0; i < N; i++)
			if (core_forward(m, sq, tok + P + i, 1, P + i, &io, &e)) goto err;
		double c = cli_now();
		v[r] = P / (b - a);
		v[reps + r] = N / (c - b);
	}
	struct cli_stat3 pf = cli_stat3(v, reps), dc = cli_stat3(v + reps, reps);
	char lbl[96];
	snprintf(lbl, sizeof lbl, "prefill (%d-token prompt)", P);
	fprintf(tf, "  %-48s %8.2f %8.2f %8.2f tok/s\n", lbl, pf.best, pf.med, pf.worst);
	cli_prefill_res_print(&pr, tf, js, reps);
	snprintf(lbl, sizeof lbl, "decode (%d steps)", N);
	fprintf(tf, "  %-48s %8.2f %8.2f %8.2f tok/s\n", lbl, dc.best, dc.med, dc.worst);
	cJSON_AddStringToObject(js, "model", o->args[0]);
	cJSON_AddStringToObject(js, "backend", k->name);
	cJSON_AddStringToObject(js, "device", dev);
	cJSON_AddNumberToObject(js, "repeat", reps);
	cJSON_AddNumberToObject(js, "prefill_len", P);
	cJSON_AddNumberToObject(js, "decode_len", N);
	cli_js_stat3(js, "prefill_tok_s", pf);
	cli_js_stat3(js, "decode_tok_s", dc);
	cJSON_AddNumberToObject(js, "backend_vram_bytes", (double)used);
	cJSON_AddStringToObject(js, "experts", slots ? "gpu-slots" : "resident");
	cli_experts_plan_json(xs, js);
	if (slots) {
		cli_experts_gpu_stats(xs, &s1, &nslots, &pinned);
		uint64_t h = s1.hits - s0.hits, mi = s1.misses - s0.misses;
		double gb = (double)(s1.bytes_copied - s0.bytes_copied) / 1e9;
		fprintf(tf, "  slots over the measured rounds: %.1f%% hits (%llu misses), %.2f GB copied, %llu refills after a "
			"pending use, %llu host waits\n", h + mi ? 100.0 * (double)h / (double)(h + mi) : 0.0,
			(unsigned long long)mi, gb, (unsigned long long)(s1.copy_waits - s0.copy_waits),
			(unsigned long long)(s1.host_waits - s0.host_waits));
		cJSON_AddNumberToObject(js, "gpu_slots", nslots);
		cJSON_AddBoolToObject(js, "host_cache_pinned", pinned);
		cJSON_AddNumberToObject(js, "vram_budget_bytes", (double)vb);
		cJSON_AddNumberToObject(js, "host_cache_bytes", (double)hc);
		cJSON_AddNumberToObject(js, "slot_hit_rate", h + mi ? (double)h / (double)(h + mi) : 0.0);
		cJSON_AddNumberToObject(js, "slot_bytes_copied", (double)(s1.bytes_copied - s0.bytes_copied));
	}
	ret = 0;
	goto out;
err:
	cli_print_err(&e);
out:
	free(v);
	free(tok);
	free(lg);
	core_seq_destroy(sq);
	core_model_destroy(m);
	cli_experts_close(xs);
	if (k) k->destroy(k);
	core_ckpt_close(ck);
	return ret;
}
