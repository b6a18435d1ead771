/* tests/test_core_seqmark.c - marks and rewinding (core/model.h) on TINY-CI
 * (window 32, ratio-4 and ratio-128 compressors, indexer, MTP block).
 *
 * Reference, independent of marks: one fresh sequence fed A[0..p) then B, logits of
 * every B position and the MTP logits.  Under test: A[0..p), save, a different
 * continuation A[p..p+n) long enough to overwrite the whole ring and to complete
 * compressor windows of both ratios, rewind, then B.  The logits must be bitwise
 * those of the reference: rows are computed independently of chunking, so any
 * difference means the rewound state is not the state at p.  Marks at p = 133
 * (mid window of both ratios), 128 (right on a ratio-128 boundary) and 3 (before
 * the first window), in the faithful (bf16 caches) and smooth (f32) modes.
 * With MTP the state at p already holds the token at p (the MTP row of position p-1
 * reads it), so the continuations share that token and part after it.
 * Stale marks are refused: after a reset, and after a rewind to another mark. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model.h"
#include "testutil.h"

static char g_tmp[256];

static void die(const char *what, struct nv_err *e)
{
	char b[2048];
	fprintf(stderr, "FAIL: %s: %s\n", what, core_err_str(e, b, sizeof b));
	exit(1);
}

static void toks(int32_t *t, int n, int V, uint64_t x)
{
	for (int i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		t[i] = 2 + (int32_t)(x % (uint64_t)(V - 2));
	}
}

/* Forward tok[0..S) from p0 in chunks of 7 with MTP fed (mtp token of position s is
 * tok[s+1]); logits / mtp [S, V] when given. */
static void fwd(struct core_model *m, struct core_seq *sq, const int32_t *tok, int S, int p0, float *lg, float *mtp)
{
	struct nv_err e = {0};
	struct core_fwd_io io = { .logits = lg, .logits_all = 1, .mtp_tok = tok + 1, .mtp_logits = mtp, .mtp_all = 1 };
	if (core_forward(m, sq, tok, S, p0, &io, &e)) die("forward", &e);
}

static int same(const char *what, int p, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4) || isnan(a[i])) {
			TU_CHECK(0, "%s, mark at %d: element %zu: got %.9g expected %.9g (bitwise)", what, p, i, a[i], b[i]);
			return 0;
		}
	return 1;
}

static void check_mode(struct core_ckpt *ck, enum core_numeric num)
{
	struct nv_err e = {0};
	struct kern *k = kern_cpu_create();
	struct core_model_opts o = { .numeric = num, .max_chunk = 7 };
	struct core_model *m;
	struct core_seq *sq;
	struct core_seq_mark *mk, *mk2;
	if (core_model_create(ck, k, &o, &m, &e) || core_seq_create(m, 1024, &sq, &e) ||
	    core_seq_mark_create(sq, &mk, &e) || core_seq_mark_create(sq, &mk2, &e))
		die("create", &e);
	const int V = core_model_config(m)->vocab_size, NA = 300, NB = 20;
	int32_t *a = malloc(sizeof(int32_t) * (NA + 1)), *b = malloc(sizeof(int32_t) * (NA + NB + 1));
	float *ref = malloc(sizeof(float) * NB * V), *got = malloc(sizeof(float) * NB * V);
	float *rmtp = malloc(sizeof(float) * NB * V), *gmtp = malloc(sizeof(float) * NB * V);
	toks(a, NA + 1, V, 0x9E3779B97F4A7C15ull);
	const int marks[] = { 133, 128, 3 };
	for (int t = 0; t < 3; t++) {
		int p = marks[t];
		/* reference: A[0..p) then B, one sequence; B's MTP token for its last row is b[p+NB] */
		memcpy(b, a, sizeof(int32_t) * p);
		toks(b + p, NB + 1, V, 0xD1B54A32D192ED03ull + (uint64_t)t);
		/* The MTP row of position p-1 reads the token at p, so both runs must agree
		 * on it; they part from p+1 on. */
		b[p] = a[p];
		fwd(m, sq, b, p, 0, NULL, NULL);
		fwd(m, sq, b + p, NB, p, ref, rmtp);

		fwd(m, sq, a, p, 0, NULL, NULL);
		core_seq_mark_save(mk);
		TU_CHECK(core_seq_mark_pos(mk) == p, "mark position %d, expected %d", core_seq_mark_pos(mk), p);
		fwd(m, sq, a + p, NA - p, p, NULL, NULL); /* 167..297 tokens: ring and windows overwritten */
		if (core_seq_rewind(mk, &e)) die("rewind", &e);
		TU_CHECK(core_seq_pos(sq) == p, "position after rewind %d, expected %d", core_seq_pos(sq), p);
		fwd(m, sq, b + p, NB, p, got, gmtp);
		same("logits after rewind", p, got, ref, (size_t)NB * V);
		same("MTP logits after rewind", p, gmtp, rmtp, (size_t)NB * V);
		/* the mark stays valid after a rewind: again, from further on */
		if (core_seq_rewind(mk, &e)) die("second rewind", &e);
		fwd(m, sq, b + p, NB, p, got, gmtp);
		same("logits after a second rewind", p, got, ref, (size_t)NB * V);
	}
	/* stale: a reset (p0 == 0) since the save */
	fwd(m, sq, a, 40, 0, NULL, NULL);
	core_seq_mark_save(mk);
	fwd(m, sq, a, 50, 0, NULL, NULL);
	TU_CHECK(core_seq_mark_pos(mk) == -1, "mark survives a reset: position %d", core_seq_mark_pos(mk));
	TU_CHECK(core_seq_rewind(mk, &e) == NV_EINVAL && strstr(e.why, "stale"), "rewind after reset: %s", e.why);
	TU_CHECK(core_seq_pos(sq) == 50, "a refused rewind moved the sequence to %d", core_seq_pos(sq));
	/* stale: a rewind to another mark since the save */
	core_seq_mark_save(mk);  /* at 50 */
	fwd(m, sq, a + 50, 10, 50, NULL, NULL);
	core_seq_mark_save(mk2); /* at 60 */
	if (core_seq_rewind(mk, &e)) die("rewind to 50", &e);
	TU_CHECK(core_seq_mark_pos(mk2) == -1 && core_seq_rewind(mk2, &e) == NV_EINVAL,
		 "the mark at 60 is still usable after a rewind to 50");
	core_seq_mark_destroy(mk);
	core_seq_mark_destroy(mk2);
	core_seq_mark_destroy(NULL);
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	free(a); free(b); free(ref); free(got); free(rmtp); free(gmtp);
}

int main(void)
{
	snprintf(g_tmp, sizeof g_tmp, "/tmp/nv-seqmark-XXXXXX");
	if (!mkdtemp(g_tmp)) return 1;
	struct core_ckpt *ck = tu_mkmodel_open(g_tmp, "tiny-ci", NULL);
	check_mode(ck, CORE_NUM_FAITHFUL);
	check_mode(ck, CORE_NUM_SMOOTH);
	core_ckpt_close(ck);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
	if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
	TU_DONE();
}
