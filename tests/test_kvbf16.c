/* tests/test_kvbf16.c - the per-sequence attention state is stored in the MODEL.md
 * §13.1 layout: bf16 caches (rings, compressed caches, indexer caches) in the
 * faithful mode, f32 caches in exact/smooth (their values are not bf16), f32
 * compressor states in every mode.
 *
 *   release  a sparse release-shaped checkpoint (mkmodel --preset release --sparse),
 *            ctx 65536: the cache part must be §13.1's 456,654,848 B plus what the
 *            runtime adds on purpose (max_chunk rows per ring for the chunk being
 *            processed, one spare entry per compressed cache), the compressor
 *            states §13.1's 12,206,080 B; exact/smooth twice the cache part.
 *   tiny     tiny-ci and tiny-edge (real weights): the same accounting computed from
 *            the config, and a faithful forward of 300 tokens at chunk 7 whose
 *            logits equal those of a run at chunk 64 (the bf16 caches are read and
 *            written across chunk boundaries and ring wrap-around).
 *   kernels  on every CPU isa the machine has: attn and idx_score reading bf16
 *            caches (KERN_KV16) give bitwise the results of the same values held
 *            as f32 (lists of 3 blocks of 64 with -1 padding; RND, QNT and none),
 *            and kv_store writes bf16 RNE bits (KV16) or copies f32 bits.
 * Prints the measured bytes (before = f32 caches, after = bf16). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "kernels/numeric.h"
#include "testutil.h"

static char g_tmp[256];

static struct core_ckpt *make_model(const char *preset, const char *extra)
{
	return tu_mkmodel_open(g_tmp, preset, extra);
}

struct acct {
	size_t cache, state; /* bytes: rings + caches (with the element size), f32 states */
};

/* From the config alone (MODEL.md §8.4-§8.6, §13.1): es bytes per cache element. */
static struct acct expect(const struct core_config *c, int ctx, int max_chunk, size_t es)
{
	struct acct a = { 0, 0 };
	const size_t W = c->sliding_window, dh = c->head_dim, dI = c->index_head_dim;
	int nb = core_cfg_nblocks(c);
	for (int i = 0; i < nb; i++) {
		size_t r = c->compress_ratios[i];
		a.cache += (W + (size_t)max_chunk) * dh * es;
		if (r == 4) {
			a.cache += ((size_t)ctx / 4 + 1) * (dh + dI) * es;
			a.state += 2 * (2 * 4) * (2 * dh) * 4 + 2 * (2 * 4) * (2 * dI) * 4;
		} else if (r > 0) {
			a.cache += ((size_t)ctx / r + 1) * dh * es;
			a.state += 2 * r * dh * 4;
		}
	}
	return a;
}

static struct acct measure(struct core_ckpt *ck, enum core_numeric num, int ctx, int max_chunk)
{
	struct nv_err e = {0};
	struct kern *k = kern_cpu_create_opts(&(struct kern_cpu_opts){ .threads = 2 });
	struct core_model *m;
	struct core_seq *sq;
	struct core_model_opts o = { .numeric = num, .max_chunk = max_chunk };
	if (core_model_create(ck, k, &o, &m, &e) || core_seq_create(m, ctx, &sq, &e)) {
		char b[2048];
		fprintf(stderr, "FAIL: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	struct acct a;
	size_t tot = core_seq_state_bytes(sq, &a.cache);
	a.state = tot - a.cache;
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	return a;
}

static void check(const char *what, struct acct got, struct acct exp)
{
	TU_CHECK(got.cache == exp.cache, "%s: cache bytes got %zu expected %zu", what, got.cache, exp.cache);
	TU_CHECK(got.state == exp.state, "%s: compressor state bytes got %zu expected %zu", what, got.state, exp.state);
}

static void test_release(void)
{
	struct core_ckpt *ck = make_model("release", "--sparse");
	const struct core_config *c = core_ckpt_config(ck);
	const int ctx = 65536, S = 64;
	/* §13.1 at 65,536 tokens: caches + rings 456,654,848 B, states 12,206,080 B; the
	 * runtime adds S rows to each of the 44 rings and one spare entry to each cache
	 * (21 ratio-4 blocks: main + indexer, 20 ratio-128 blocks). */
	TU_CHECK(c->sliding_window == 128 && c->head_dim == 512 && c->index_head_dim == 128 &&
		 core_cfg_nblocks(c) == 44, "release config: W %d d_h %d d_I %d blocks %d (expected 128 512 128 44)",
		 c->sliding_window, c->head_dim, c->index_head_dim, core_cfg_nblocks(c));
	struct acct spec = { 456654848u + 44u * S * 512 * 2 + (21u * (512 + 128) + 20u * 512) * 2, 12206080u };
	struct acct f = measure(ck, CORE_NUM_FAITHFUL, ctx, S);
	check("release faithful (bf16 caches)", f, spec);
	struct acct f32 = { 2 * spec.cache, spec.state };
	struct acct x = measure(ck, CORE_NUM_EXACT, ctx, S), s = measure(ck, CORE_NUM_SMOOTH, ctx, S);
	check("release exact (f32 caches)", x, f32);
	check("release smooth (f32 caches)", s, f32);
	printf("release ctx %d chunk %d: state %zu B with f32 caches (exact/smooth, and every mode before), "
	       "%zu B with bf16 caches (faithful); caches %zu -> %zu B, compressor states %zu B\n",
	       ctx, S, s.cache + s.state, f.cache + f.state, s.cache, f.cache, f.state);
	core_ckpt_close(ck);
}

static float *run_logits(struct core_ckpt *ck, enum core_numeric num, int n, int chunk)
{
	struct nv_err e = {0};
	struct kern *k = kern_cpu_create_opts(&(struct kern_cpu_opts){ .threads = 2 });
	struct core_model *m;
	struct core_seq *sq;
	struct core_model_opts o = { .numeric = num, .max_chunk = chunk };
	const struct core_config *c = core_ckpt_config(ck);
	int32_t *tok = malloc(sizeof(int32_t) * n);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		tok[i] = 2 + (int32_t)(x % (uint64_t)(c->vocab_size - 2));
	}
	float *lg = malloc(sizeof(float) * (size_t)n * c->vocab_size);
	if (core_model_create(ck, k, &o, &m, &e) || core_seq_create(m, n, &sq, &e) ||
	    core_forward(m, sq, tok, n, 0, &(struct core_fwd_io){ .logits = lg, .logits_all = 1 }, &e)) {
		char b[2048];
		fprintf(stderr, "FAIL: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	free(tok);
	return lg;
}

static void test_tiny(const char *preset)
{
	struct core_ckpt *ck = make_model(preset, "");
	const struct core_config *c = core_ckpt_config(ck);
	const int ctx = 300;
	char what[128];
	for (int S = 7; S <= 64; S += 57) {
		snprintf(what, sizeof what, "%s faithful chunk %d", preset, S);
		check(what, measure(ck, CORE_NUM_FAITHFUL, ctx, S), expect(c, ctx, S, 2));
		snprintf(what, sizeof what, "%s smooth chunk %d", preset, S);
		check(what, measure(ck, CORE_NUM_SMOOTH, ctx, S), expect(c, ctx, S, 4));
		snprintf(what, sizeof what, "%s exact chunk %d", preset, S);
		check(what, measure(ck, CORE_NUM_EXACT, ctx, S), expect(c, ctx, S, 4));
	}
	/* chunk independence (kern.h row independence) through the bf16 caches */
	float *a = run_logits(ck, CORE_NUM_FAITHFUL, ctx, 7), *b = run_logits(ck, CORE_NUM_FAITHFUL, ctx, 64);
	size_t n = (size_t)ctx * c->vocab_size;
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4)) {
			TU_CHECK(0, "%s faithful logits chunk 7 vs 64: token %zu col %zu: got %.9g expected %.9g (bitwise)",
				 preset, i / c->vocab_size, i % c->vocab_size, a[i], b[i]);
			break;
		}
	free(a);
	free(b);
	core_ckpt_close(ck);
}

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static float urand(void) /* [0, 1) */
{
	g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
	return (float)(g_rng >> 40) / (float)(1u << 24);
}

static void same_bits(const char *what, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], 4)) {
			TU_CHECK(0, "%s: element %zu: got %.9g expected %.9g (bitwise)", what, i, a[i], b[i]);
			return;
		}
}

static void test_kernels_isa(enum kern_cpu_isa isa)
{
	struct kern *k = kern_cpu_create_opts(&(struct kern_cpu_opts){ .threads = 2, .isa = isa });
	const char *nm_isa = kern_cpu_isa(k);
	const int S = 3, H = 4, dh = 200, nw = 40, nc = 70, n_idx = 170, HI = 4, dI = 64, nI = 90;
	TU_CHECK(k->reserve(k, S * H * 4, 4096) == 0, "reserve");
	float *kf = malloc(sizeof(float) * (nw + nc) * dh), *q = malloc(sizeof(float) * S * H * dh);
	uint16_t *kb = malloc(2 * (size_t)(nw + nc) * dh);
	float *o0 = malloc(sizeof(float) * S * H * dh), *o1 = malloc(sizeof(float) * S * H * dh);
	int32_t *idx = malloc(sizeof(int32_t) * S * n_idx);
	float sink[4] = { 0.5f, -1.0f, 2.0f, 0.0f };
	/* bf16 values (what the faithful mode stores), both layouts */
	for (int i = 0; i < (nw + nc) * dh; i++) {
		kf[i] = kern_rbf16((urand() - 0.5f) * 4);
		kb[i] = kern_f32_to_bf16(kf[i]);
	}
	for (int i = 0; i < S * H * dh; i++) q[i] = kern_rbf16(urand() - 0.5f);
	for (int s = 0; s < S; s++)
		for (int j = 0; j < n_idx; j++)
			idx[s * n_idx + j] = j == 0 ? s : (urand() < 0.2f ? -1 : (int)(urand() * (nw + nc)));
	for (int j = 64; j < 128; j++) idx[n_idx + j] = -1; /* a block of padding only */
	const unsigned nms[3] = { KERN_RND | KERN_QNT, KERN_QNT, 0 };
	char what[160];
	for (int t = 0; t < 3; t++) {
		struct kern_kv kvf = { kf, nw, kf + (size_t)nw * dh, nc }, kvb = { kb, nw, kb + (size_t)nw * dh, nc };
		memset(o1, 0xff, sizeof(float) * S * H * dh);
		k->attn(k, o0, q, &kvf, idx, n_idx, sink, S, H, dh, 0.07f, nms[t]);
		k->attn(k, o1, q, &kvb, idx, n_idx, sink, S, H, dh, 0.07f, nms[t] | KERN_KV16);
		snprintf(what, sizeof what, "%s attn nm %u: bf16 kv vs f32 kv", nm_isa, nms[t]);
		same_bits(what, o1, o0, (size_t)S * H * dh);
		/* indexer: kf rows reused as [nI, dI] entries */
		float w[S * HI], sc0[S * nI], sc1[S * nI];
		for (int i = 0; i < S * HI; i++) w[i] = kern_rbf16(urand());
		k->idx_score(k, sc0, nI, q, w, kf, nI, S, HI, dI, nms[t]);
		k->idx_score(k, sc1, nI, q, w, kb, nI, S, HI, dI, nms[t] | KERN_KV16);
		snprintf(what, sizeof what, "%s idx_score nm %u: bf16 cache vs f32 cache", nm_isa, nms[t]);
		same_bits(what, sc1, sc0, (size_t)S * nI);
	}
	/* kv_store: RNE bits with KV16 (also of values that are not bf16), f32 copy without */
	float src[37];
	uint16_t d16[37];
	float d32[37];
	for (int i = 0; i < 37; i++) src[i] = (urand() - 0.5f) * 1000;
	k->kv_store(k, d16, src, 37, KERN_RND | KERN_QNT | KERN_KV16);
	k->kv_store(k, d32, src, 37, KERN_QNT);
	for (int i = 0; i < 37; i++) {
		TU_CHECK(d16[i] == kern_f32_to_bf16(src[i]), "%s kv_store KV16 [%d]: got 0x%04x expected 0x%04x", nm_isa,
			 i, d16[i], kern_f32_to_bf16(src[i]));
		TU_CHECK(!memcmp(&d32[i], &src[i], 4), "%s kv_store f32 [%d]: got %.9g expected %.9g", nm_isa, i, d32[i],
			 src[i]);
	}
	printf("%s: attn, idx_score, kv_store with bf16 caches checked\n", nm_isa);
	free(kf); free(q); free(kb); free(o0); free(o1); free(idx);
	k->destroy(k);
}

int main(int argc, char **argv)
{
	snprintf(g_tmp, sizeof g_tmp, "/tmp/nv_kvbf16_XXXXXX");
	if (!mkdtemp(g_tmp)) return 1;
	const char *what = argc > 1 ? argv[1] : "all";
	if (!strcmp(what, "kernels") || !strcmp(what, "all")) {
		test_kernels_isa(KERN_CPU_ISA_SCALAR);
		test_kernels_isa(KERN_CPU_ISA_AVX2);
		test_kernels_isa(KERN_CPU_ISA_AVX512);
	}
	if (!strcmp(what, "release") || !strcmp(what, "all")) test_release();
	if (!strcmp(what, "tiny") || !strcmp(what, "all")) {
		test_tiny("tiny-ci");
		test_tiny("tiny-edge");
	}
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
	if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
	TU_DONE();
}
