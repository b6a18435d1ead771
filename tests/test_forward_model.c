/* tests/test_forward_model.c - self-tests of the forward pass (TINY.md §6) on
 * synthetic checkpoints written by build/mkmodel (TINY-CI and variants):
 *   chunks    logits_all (and MTP logits) for chunks of 1, 7, 64 and the whole
 *             prompt are bitwise identical (faithful and smooth), prefill+decode too;
 *   state     after prefill S vs S one-token steps vs chunks of 7: the whole state
 *             (rings, compressed caches, compressor/indexer states) is bitwise equal
 *             (P1-P6, D1, D3, D4 call patterns);
 *   ring      P4: ring slots 5-31 hold positions 5-31, slots 0-4 hold 32-36;
 *   indexer   P4/P6: selection width min(40, visible), only visible entries,
 *             everything visible selected when it fits (k = 9 at S = 37);
 *   reset     S1: P6, then a new sequence in the same state object = fresh process;
 *   kinds     MTP block of ratio 4 and 128, the edge preset (partial blocks,
 *             index_head_dim == rope dim, swiglu_limit 0): chunk invariance.
 * Exact equality is the right bound: rows are computed independently of chunking
 * (kern.h contract), so any difference is a semantic bug, not rounding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model_impl.h"
#include "kernels/numeric.h"
#include "testutil.h"

static char g_tmp[256];

static struct core_ckpt *make_model(const char *preset) { return tu_mkmodel_open(g_tmp, preset, NULL); }

/* TINY.md §6 token list: pseudo-random ids in [2, V), id 7 at positions 0, 5, 300 */
static int32_t *tokens(int n, int V)
{
	int32_t *t = malloc(sizeof(int32_t) * n);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		t[i] = 2 + (int32_t)(x % (uint64_t)(V - 2));
		if (i == 0 || i == 5 || i == 300) t[i] = 7;
	}
	return t;
}

struct env {
	struct core_ckpt *ck;
	struct kern *k;
	struct core_model *m;
	struct core_seq *sq;
	const struct core_config *c;
};

static void env_open(struct env *v, struct core_ckpt *ck, enum core_numeric num, int max_chunk, int ctx)
{
	struct nv_err e = {0};
	v->ck = ck;
	v->k = kern_cpu_create();
	struct core_model_opts o = { .numeric = num, .max_chunk = max_chunk };
	if (core_model_create(ck, v->k, &o, &v->m, &e) || core_seq_create(v->m, ctx, &v->sq, &e)) {
		char b[2048];
		fprintf(stderr, "FAIL: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	v->c = core_model_config(v->m);
}

static void env_close(struct env *v)
{
	core_seq_destroy(v->sq);
	core_model_destroy(v->m);
	v->k->destroy(v->k);
}

/* forward S tokens from p0 in chunks of `chunk`, logits (all rows) and MTP logits */
static void run(struct env *v, const int32_t *tok, int S, int p0, int chunk, float *logits, float *mtp)
{
	struct nv_err e = {0};
	core_model_set_chunk(v->m, chunk, &e);
	struct core_fwd_io io = { .logits = logits, .logits_all = 1 };
	if (mtp) {
		io.mtp_tok = tok + 1;
		io.mtp_logits = mtp;
		io.mtp_all = 1;
	}
	if (core_forward(v->m, v->sq, tok, S, p0, &io, &e)) {
		char b[2048];
		fprintf(stderr, "FAIL: forward: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
}

static int same(const char *what, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t x, y;
		memcpy(&x, &a[i], 4);
		memcpy(&y, &b[i], 4);
		if (x != y || isnan(a[i])) {
			TU_CHECK(0, "%s: element %zu: got %.9g expected %.9g (bitwise)", what, i, a[i], b[i]);
			return 0;
		}
	}
	return 1;
}

/* chunks: whole / 64 / 7 / 1 and prefill+decode, bitwise */
static void test_chunks(struct core_ckpt *ck, enum core_numeric num, int S, int with_mtp, const char *tag)
{
	struct env v;
	env_open(&v, ck, num, S, S + 8);
	const int V = v.c->vocab_size;
	int32_t *tok = tokens(S + 1, V);
	float *ref = malloc(sizeof(float) * S * V), *got = malloc(sizeof(float) * S * V);
	float *mref = with_mtp ? malloc(sizeof(float) * S * V) : NULL;
	float *mgot = with_mtp ? malloc(sizeof(float) * S * V) : NULL;
	run(&v, tok, S, 0, S, ref, mref);
	int chunks[] = { 64, 7, 1 };
	for (int i = 0; i < 3; i++) {
		char what[128];
		run(&v, tok, S, 0, chunks[i], got, mgot);
		snprintf(what, sizeof what, "%s: logits_all chunk %d vs whole prompt", tag, chunks[i]);
		same(what, got, ref, (size_t)S * V);
		if (with_mtp) {
			snprintf(what, sizeof what, "%s: mtp logits chunk %d vs whole prompt", tag, chunks[i]);
			same(what, mgot, mref, (size_t)S * V);
		}
	}
	/* prefill P then one-token decode steps */
	int P = S * 2 / 3;
	run(&v, tok, P, 0, S, got, mgot);
	for (int p = P; p < S; p++) run(&v, tok + p, 1, p, 1, got + (size_t)p * V, mgot ? mgot + (size_t)p * V : NULL);
	char what[128];
	snprintf(what, sizeof what, "%s: prefill %d + decode vs whole prompt", tag, P);
	same(what, got, ref, (size_t)S * V);
	if (with_mtp) same("mtp prefill + decode", mgot, mref, (size_t)S * V);
	int finite = 1;
	for (size_t i = 0; i < (size_t)S * V; i++) finite &= isfinite(ref[i]);
	TU_CHECK(finite, "%s: non-finite logits", tag);
	printf("chunks %s: S=%d ok\n", tag, S);
	free(ref); free(got); free(mref); free(mgot); free(tok);
	env_close(&v);
}

/* Copy the whole state of a sequence (host copies). */
struct snap {
	float *buf;
	size_t n;
};

static void snap_state(struct env *v, struct snap *s, int S)
{
	const struct core_config *c = v->c;
	struct core_model *m = v->m;
	size_t W = c->sliding_window, dh = c->head_dim, dI = c->index_head_dim;
	size_t n = 0;
	for (int i = 0; i < m->nblocks; i++) {
		int r = c->compress_ratios[i], cc = r == 4 ? 2 : 1;
		n += W * dh;
		if (r) n += (size_t)(S / r) * dh + 2 * (size_t)cc * r * cc * dh;
		if (r == 4) n += (size_t)(S / 4) * dI + 2 * 16 * dI;
	}
	s->buf = malloc(n * sizeof(float));
	s->n = n;
	float *o = s->buf;
#define CP(src, cnt) do { memcpy(o, (src), (cnt) * sizeof(float)); o += (cnt); } while (0)
	/* cache rows: bf16 in the faithful mode (core_model_kv_elem_bytes), widened */
#define CPC(src, cnt) do { \
		if (core_model_kv_elem_bytes(m) == 2) \
			for (size_t i_ = 0; i_ < (cnt); i_++) o[i_] = kern_bf16_to_f32(((const uint16_t *)(src))[i_]); \
		else memcpy(o, (src), (cnt) * sizeof(float)); \
		o += (cnt); } while (0)
	for (int i = 0; i < m->nblocks; i++) {
		struct core_bstate *b = &v->sq->b[i];
		int r = c->compress_ratios[i], cc = r == 4 ? 2 : 1;
		CPC(b->ring, W * dh); /* ring slots (positions < S) */
		if (r) {
			CPC(b->ccache, (size_t)(S / r) * dh);
			CP(b->cK, (size_t)cc * r * cc * dh);
			CP(b->cG, (size_t)cc * r * cc * dh);
		}
		if (r == 4) {
			CPC(b->icache, (size_t)(S / 4) * dI);
			CP(b->iK, 16 * dI);
			CP(b->iG, 16 * dI);
		}
	}
#undef CP
#undef CPC
}

static int same_state(const char *what, const struct snap *a, const struct snap *b)
{
	if (a->n != b->n) return 0;
	/* -inf == -inf bitwise too; compare bits */
	return same(what, a->buf, b->buf, a->n);
}

/* P1-P6, D3, D4: prefill S == S steps == chunks of 7, the whole state bitwise; for
 * S below W the unwritten ring slots are zero in all runs (fresh state). */
static void test_state(struct core_ckpt *ck)
{
	int Ss[] = { 1, 3, 4, 37, 128, 130, 300 };
	for (size_t i = 0; i < sizeof Ss / sizeof Ss[0]; i++) {
		int S = Ss[i];
		struct snap a, b, c;
		struct env v;
		env_open(&v, ck, CORE_NUM_FAITHFUL, 300, 512);
		int32_t *tok = tokens(S, v.c->vocab_size);
		float *lg = malloc(sizeof(float) * S * v.c->vocab_size);
		run(&v, tok, S, 0, S, lg, NULL);
		snap_state(&v, &a, S);
		env_close(&v);
		env_open(&v, ck, CORE_NUM_FAITHFUL, 300, 512);
		run(&v, tok, 1, 0, 1, lg, NULL);
		for (int p = 1; p < S; p++) run(&v, tok + p, 1, p, 1, lg, NULL);
		snap_state(&v, &b, S);
		env_close(&v);
		env_open(&v, ck, CORE_NUM_FAITHFUL, 300, 512);
		run(&v, tok, S, 0, 7, lg, NULL);
		snap_state(&v, &c, S);
		env_close(&v);
		char what[96];
		snprintf(what, sizeof what, "state after prefill %d vs %d one-token steps", S, S);
		same_state(what, &b, &a);
		snprintf(what, sizeof what, "state after prefill %d vs chunks of 7", S);
		same_state(what, &c, &a);
		printf("state S=%d: %zu floats compared\n", S, a.n);
		free(a.buf); free(b.buf); free(c.buf); free(tok); free(lg);
	}
}

/* P4 ring contents: slot j holds the kv of the latest position p < 37 with p mod 32
 * == j; the kv of position p is ring slot p mod 32 right after step p. */
/* Block 0's ring slot j widened to f32 (the cache holds bf16 in the faithful mode). */
static void ring_row(struct env *v, int j, float *out)
{
	const size_t dh = v->c->head_dim, es = core_model_kv_elem_bytes(v->m);
	const char *r = (const char *)v->sq->b[0].ring + (size_t)j * dh * es;
	for (size_t i = 0; i < dh; i++) {
		if (es == 2) {
			uint16_t h;
			memcpy(&h, r + 2 * i, 2);
			out[i] = kern_bf16_to_f32(h);
		} else {
			memcpy(&out[i], r + 4 * i, 4);
		}
	}
}

static void test_ring(struct core_ckpt *ck)
{
	struct env v;
	env_open(&v, ck, CORE_NUM_FAITHFUL, 64, 128);
	const int W = v.c->sliding_window, dh = v.c->head_dim, S = 37;
	TU_CHECK(W == 32, "TINY-CI has W = 32, got %d", W);
	int32_t *tok = tokens(S, v.c->vocab_size);
	float *lg = malloc(sizeof(float) * S * v.c->vocab_size);
	float *kvp = malloc(sizeof(float) * S * dh); /* block 0's kv per position */
	for (int p = 0; p < S; p++) {
		run(&v, tok + p, 1, p, 1, lg, NULL);
		ring_row(&v, p % W, kvp + (size_t)p * dh);
	}
	run(&v, tok, S, 0, S, lg, NULL); /* P4 as one prefill */
	float *row = malloc(sizeof(float) * dh);
	for (int j = 0; j < W; j++) {
		int p = j < 5 ? 32 + j : j;
		char what[64];
		snprintf(what, sizeof what, "P4 ring slot %d = position %d", j, p);
		ring_row(&v, j, row);
		same(what, row, kvp + (size_t)p * dh, dh);
	}
	free(tok); free(lg); free(kvp); free(row);
	env_close(&v);
}

/* Indexer selections (hook): widths, visibility, completeness. */
struct selcap {
	int S, TI, nblk;
	int32_t *sel; /* [S, nblk, TI] */
	int *width;
};

static void cap_sel(void *ctx, int blk, int p0, int S, int width, const int32_t *sel)
{
	struct selcap *c = ctx;
	if (blk >= c->nblk) return;
	for (int s = 0; s < S; s++) {
		int32_t *o = c->sel + ((size_t)(p0 + s) * c->nblk + blk) * c->TI;
		for (int j = 0; j < c->TI; j++) o[j] = j < width ? sel[(size_t)s * width + j] : -1;
		c->width[(p0 + s) * c->nblk + blk] = width;
	}
}

static void test_indexer(struct core_ckpt *ck, int S)
{
	struct env v;
	env_open(&v, ck, CORE_NUM_FAITHFUL, S, 512);
	const struct core_config *c = v.c;
	struct selcap cap = { S, c->index_topk, c->num_hidden_layers, NULL, NULL };
	cap.sel = malloc(sizeof(int32_t) * S * cap.nblk * cap.TI);
	cap.width = calloc((size_t)S * cap.nblk, sizeof(int));
	struct core_hooks h = { &cap, NULL, NULL, cap_sel };
	struct nv_err e = {0};
	core_model_set_hooks(v.m, &h, &e);
	int32_t *tok = tokens(S, c->vocab_size);
	float *lg = malloc(sizeof(float) * S * c->vocab_size);
	run(&v, tok, S, 0, S, lg, NULL);
	int real_sel = 0;
	for (int b = 0; b < cap.nblk; b++) {
		if (c->compress_ratios[b] != 4) continue;
		for (int s = 0; s < S; s++) {
			int nv = (s + 1) / 4, kk = nv < cap.TI ? nv : cap.TI, cnt = 0, ok = 1;
			const int32_t *r = cap.sel + ((size_t)s * cap.nblk + b) * cap.TI;
			int seen[1024] = {0};
			for (int j = 0; j < cap.TI; j++) {
				if (r[j] < 0) continue;
				cnt++;
				ok &= r[j] < nv && !seen[r[j]];
				seen[r[j] < 1024 && r[j] >= 0 ? r[j] : 0] = 1;
			}
			TU_CHECK(cnt == kk && ok, "S=%d block %d query %d: %d selected (expected %d of %d visible), "
				 "all visible and distinct: %d", S, b, s, cnt, kk, nv, ok);
			real_sel += nv > cap.TI;
		}
		TU_CHECK(cap.width[(S - 1) * cap.nblk + b] == (S / 4 < cap.TI ? S / 4 : cap.TI),
			 "S=%d block %d: list width %d, expected min(T_I, floor(S/4))", S, b,
			 cap.width[(S - 1) * cap.nblk + b]);
	}
	if (S == 300) TU_CHECK(real_sel > 0, "P6 should have queries with more than T_I visible entries");
	printf("indexer S=%d ok (%d queries with a real selection)\n", S, real_sel);
	free(cap.sel); free(cap.width); free(tok); free(lg);
	env_close(&v);
}

/* S1: P6, then a new sequence (prefill 3, decode 3..7) in the same state object
 * equals the new sequence in a fresh model + state. */
static void test_reset(struct core_ckpt *ck)
{
	struct env v, f;
	env_open(&v, ck, CORE_NUM_FAITHFUL, 300, 512);
	env_open(&f, ck, CORE_NUM_FAITHFUL, 300, 512);
	const int V = v.c->vocab_size;
	int32_t *t6 = tokens(300, V), t2[8];
	for (int i = 0; i < 8; i++) t2[i] = t6[299 - i];
	float *lg = malloc(sizeof(float) * 300 * V), *a = malloc(sizeof(float) * 8 * V), *b = malloc(sizeof(float) * 8 * V);
	run(&v, t6, 300, 0, 300, lg, NULL);
	run(&v, t2, 3, 0, 300, a, NULL);
	for (int p = 3; p < 8; p++) run(&v, t2 + p, 1, p, 1, a + (size_t)p * V, NULL);
	run(&f, t2, 3, 0, 300, b, NULL);
	for (int p = 3; p < 8; p++) run(&f, t2 + p, 1, p, 1, b + (size_t)p * V, NULL);
	same("S1: new sequence after P6 vs fresh", a, b, (size_t)8 * V);
	printf("reset ok\n");
	free(t6); free(lg); free(a); free(b);
	env_close(&v);
	env_close(&f);
}

/* argv[1]: "chunks" (chunk invariance, MTP kinds, edge preset) or "state" (state,
 * ring, indexer, reset); no argument runs both. */
int main(int argc, char **argv)
{
	int chunks = argc < 2 || !strcmp(argv[1], "chunks"), state = argc < 2 || !strcmp(argv[1], "state");
	snprintf(g_tmp, sizeof g_tmp, "/tmp/nvmoe-fwd-XXXXXX");
	if (!mkdtemp(g_tmp)) return 1;
	struct core_ckpt *ci = make_model("tiny-ci");
	if (chunks) {
		test_chunks(ci, CORE_NUM_FAITHFUL, 300, 1, "tiny-ci faithful");
		test_chunks(ci, CORE_NUM_SMOOTH, 140, 0, "tiny-ci smooth");
	}
	if (state) {
		test_state(ci);
		test_ring(ci);
		test_indexer(ci, 37);
		test_indexer(ci, 300);
		test_reset(ci);
	}
	core_ckpt_close(ci);
	const char *kinds[] = { "tiny-mtp4", "tiny-mtp128", "tiny-edge" };
	for (int i = 0; i < 3 && chunks; i++) {
		struct core_ckpt *ck = make_model(kinds[i]);
		test_chunks(ck, CORE_NUM_FAITHFUL, 160, 1, kinds[i]); /* lists of up to 32 + 39 entries */
		core_ckpt_close(ck);
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
	if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
	TU_DONE();
}
