/* tests/test_cuda_forward.c - the whole forward pass (main blocks + MTP) of a golden
 * tiny checkpoint on the CUDA backend:
 *   1. chunk invariance, bitwise: logits of 40 tokens run with chunks of 32, 5 and 1
 *      (faithful and smooth) are identical (kern.h row independence, on the GPU);
 *   2. against the CPU backend in the smooth mode (no bf16 rounding, no quantisation:
 *      only f32 summation order and exp/log differ): every logits row within 1e-4 of
 *      its max |value| (the golden smooth tolerance) and the same argmax.
 * Exit 77 without a CUDA device or without ../shared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/cuda/cuda.h"
#include "testutil.h"

#define L 40

static int run(struct core_ckpt *ck, struct kern *k, enum core_numeric num, int chunk, const int32_t *tok,
	       float *logits, float *mtp)
{
	struct nv_err e = {0};
	struct core_model_opts o = { .numeric = num, .max_chunk = 32 };
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	int rc = core_model_create(ck, k, &o, &m, &e);
	if (!rc) rc = core_seq_create(m, 64, &sq, &e);
	if (!rc) rc = core_model_set_chunk(m, chunk, &e);
	struct core_fwd_io io = { .logits = logits, .logits_all = 1, .mtp_tok = tok + 1, .mtp_logits = mtp, .mtp_all = 1 };
	if (!rc) rc = core_forward(m, sq, tok, L, 0, &io, &e);
	if (rc) {
		char buf[2048];
		fprintf(stderr, "FAIL: forward on %s: %s\n", k->name, core_err_str(&e, buf, sizeof buf));
		tu_failures++;
	}
	core_seq_destroy(sq);
	core_model_destroy(m);
	return rc;
}

static int argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b]) b = i;
	return b;
}

int main(void)
{
	const char *sh = tu_require_shared();
	if (kern_cuda_device_count() == 0) tu_skip("no CUDA device");
	char dir[4096], msg[256];
	snprintf(dir, sizeof dir, "%s/golden/tiny-a/ckpt", sh);
	struct core_ckpt_opts co = {0};
	struct core_ckpt *ck = NULL;
	struct nv_err e = {0};
	if (core_ckpt_open(dir, &co, &ck, &e)) {
		char buf[2048];
		fprintf(stderr, "SKIP: %s\n", core_err_str(&e, buf, sizeof buf));
		return 77;
	}
	const int V = core_ckpt_config(ck)->vocab_size;
	struct kern *G = NULL, *C = kern_cpu_create();
	if (kern_cuda_create(0, &G, msg, sizeof msg)) tu_skip(msg);
	int32_t tok[L + 1];
	uint32_t x = 12345;
	for (int i = 0; i <= L; i++) x = x * 1103515245u + 12345u, tok[i] = (int32_t)((x >> 8) % (uint32_t)V);
	size_t n = (size_t)L * V;
	float *ref = malloc(n * 4), *got = malloc(n * 4), *mref = malloc(n * 4), *mgot = malloc(n * 4);
	const enum core_numeric nums[2] = { CORE_NUM_FAITHFUL, CORE_NUM_SMOOTH };
	for (int t = 0; t < 2; t++) {
		if (run(ck, G, nums[t], 32, tok, ref, mref)) break;
		const int chunks[2] = { 5, 1 };
		for (int c = 0; c < 2; c++) {
			if (run(ck, G, nums[t], chunks[c], tok, got, mgot)) break;
			size_t bad = 0;
			for (size_t i = 0; i < n; i++)
				if (memcmp(&got[i], &ref[i], 4) || memcmp(&mgot[i], &mref[i], 4)) {
					if (bad < 5)
						fprintf(stderr, "FAIL chunk %d vs 32 (%s): logit %zu: got %.9g / mtp %.9g, expected %.9g / %.9g\n",
							chunks[c], core_numeric_name(nums[t]), i, got[i], mgot[i], ref[i], mref[i]);
					bad++;
				}
			printf("cuda %-8s chunk %d == chunk 32 (logits + MTP, bitwise): %s\n", core_numeric_name(nums[t]),
			       chunks[c], bad ? "FAIL" : "PASS");
			tu_failures += bad > 0;
		}
	}
	/* smooth: GPU (ref = chunk 32 from the last loop) against the CPU */
	if (!run(ck, C, CORE_NUM_SMOOTH, 32, tok, got, mgot)) {
		int bad = 0;
		double worst = 0;
		for (int pass = 0; pass < 2; pass++) {
			const float *a = pass ? mref : ref, *b = pass ? mgot : got;
			for (int r = 0; r < L; r++) {
				const float *ar = a + (size_t)r * V, *br = b + (size_t)r * V;
				double mx = 0, d = 0;
				for (int i = 0; i < V; i++) mx = fmax(mx, fabs(br[i])), d = fmax(d, fabs((double)ar[i] - br[i]));
				worst = fmax(worst, d / mx);
				if (d > 1e-4 * mx || argmax(ar, V) != argmax(br, V)) {
					if (bad < 5)
						fprintf(stderr, "FAIL smooth %s row %d: max |diff| %.3g (row max %.3g), argmax %d vs %d\n",
							pass ? "mtp" : "logits", r, d, mx, argmax(ar, V), argmax(br, V));
					bad++;
				}
			}
		}
		printf("cuda vs cpu, smooth, logits + MTP: worst row |diff|/max %.3g (bound 1e-4): %s\n", worst,
		       bad ? "FAIL" : "PASS");
		tu_failures += bad > 0;
	}
	free(ref); free(got); free(mref); free(mgot);
	C->destroy(C);
	G->destroy(G);
	core_ckpt_close(ck);
	TU_DONE();
}
