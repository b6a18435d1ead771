/* tests/test_mkmodel.c - build/mkmodel writes loadable, deterministic checkpoints whose
 * values follow TINY.md §5.
 *
 * Independent references: the inventory totals of TINY.md §3 (585 tensors,
 * 11,242,256 bytes, 9 shards); the generator formula of TINY.md §5 recomputed here
 * from the text (SplitMix64, FNV-1a-64, the draws, the value rules, RNE to bf16, the
 * power-of-two block scales, nearest E4M3/E2M1 code by brute force over the code
 * tables decoded with the formulas of CHECKPOINT.md §6); the safetensors layout rules
 * of CHECKPOINT.md §2.1 checked on the raw bytes.  The checkpoint reader
 * (core_ckpt_open, with the full NaN scan) must accept every file.
 *
 * Usage: test_mkmodel [unit|edge|release|demo|golden]   (default: unit)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "testutil.h"

/* ---- TINY.md §5, written again from the text ---- */

static uint64_t sm64(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	uint64_t z = *s;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t stream(const char *name, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return h ^ seed;
}

static double unif(uint64_t *s) { return (double)(sm64(s) >> 11) * ldexp(1.0, -53); }

static double normal(uint64_t *s)
{
	double u1 = unif(s), u2 = unif(s), u3 = unif(s), u4 = unif(s);
	return (u1 + u2 + u3 + u4 - 2) * sqrt(3.0);
}

static uint16_t bf16_rne(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint32_t lsb = (u >> 16) & 1;
	return (uint16_t)((u + 0x7fff + lsb) >> 16);
}

/* CHECKPOINT.md §6 */
static double e4m3_val(uint8_t b)
{
	int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
	double v = e == 0 ? m * ldexp(1.0, -9) : (1 + m / 8.0) * ldexp(1.0, e - 7);
	return s ? -v : v;
}
static const double k_e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
static double e2m1_val(uint8_t nib) { return (nib & 8) ? -k_e2m1[nib & 7] : k_e2m1[nib & 7]; }

/* The code's value is (one of) the nearest to x among all finite codes. */
static int nearest_e4m3(uint8_t code, double x)
{
	if (code == 0x7f || code == 0xff) return 0;
	double d = fabs(e4m3_val(code) - x);
	for (int c = 0; c < 256; c++)
		if (c != 0x7f && c != 0xff && fabs(e4m3_val((uint8_t)c) - x) < d) return 0;
	return 1;
}
static int nearest_e2m1(uint8_t nib, double x)
{
	double d = fabs(e2m1_val(nib) - x);
	for (int c = 0; c < 16; c++)
		if (fabs(e2m1_val((uint8_t)c) - x) < d) return 0;
	return 1;
}

/* k with fmax*2^(k-1) < amax <= fmax*2^k, from log2 and checked by the property. */
static int pow2_k(double amax, double fmax)
{
	if (amax < ldexp(1.0, -20)) amax = ldexp(1.0, -20);
	int k = (int)ceil(log2(amax / fmax));
	if (fmax * ldexp(1.0, k) < amax) k++;
	if (fmax * ldexp(1.0, k - 1) >= amax) k--;
	return k;
}

/* ---- running the tool ---- */

static char g_tmp[512]; /* scratch directory of this test */

static int run(const char *args)
{
	const char *b = getenv("NV_BUILD");
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "%s/mkmodel %s --quiet > %s/out.txt 2>&1", b ? b : ".", args, g_tmp);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static char *read_out(void)
{
	char p[600];
	snprintf(p, sizeof p, "%s/out.txt", g_tmp);
	return tu_read_file(p, NULL);
}

static struct core_ckpt *open_ck(const char *dir, int scan)
{
	struct core_ckpt_opts o = {.full_scan = scan};
	struct core_ckpt *ck = NULL;
	struct nv_err e;
	core_err_clear(&e);
	if (core_ckpt_open(dir, &o, &ck, &e)) {
		char buf[2048];
		TU_CHECK(0, "core_ckpt_open(%s): %s", dir, core_err_str(&e, buf, sizeof buf));
		return NULL;
	}
	return ck;
}

static const uint8_t *tdata(struct core_ckpt *ck, const char *name, enum core_dtype dt, uint64_t nbytes)
{
	const struct core_tensor *t = core_ckpt_find(ck, name);
	TU_CHECK(t, "tensor %s missing", name);
	if (!t) return NULL;
	TU_CHECK(t->dtype == dt && t->nbytes == nbytes, "%s: dtype %d bytes %llu, expected %d %llu", name,
		 t->dtype, (unsigned long long)t->nbytes, dt, (unsigned long long)nbytes);
	return t->dtype == dt && t->nbytes == nbytes ? t->data : NULL;
}

static int files_equal(const char *a, const char *b)
{
	size_t na, nb;
	char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
	int eq = x && y && na == nb && memcmp(x, y, na) == 0;
	free(x);
	free(y);
	return eq;
}

/* ---- checks ---- */

static int cmp_off(const void *a, const void *b)
{
	const struct core_tensor *x = *(const struct core_tensor *const *)a, *y = *(const struct core_tensor *const *)b;
	return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

/* CHECKPOINT.md §2.1 on the raw bytes: N multiple of 8, JSON padded with spaces,
 * tensors contiguous from the data start to the file end, in the standard writer's
 * order (dtype group I64, F32, BF16, E8M0, E4M3, I8, then name). */
static void check_layout(struct core_ckpt *ck)
{
	static const int rank[CORE_DT_COUNT] = {[CORE_DT_I64] = 6, [CORE_DT_F32] = 5, [CORE_DT_BF16] = 4,
						[CORE_DT_F8_E8M0] = 3, [CORE_DT_F8_E4M3] = 2, [CORE_DT_I8] = 1};
	size_t nt = core_ckpt_ntensors(ck);
	const struct core_tensor **v = malloc(nt * sizeof *v);
	for (int s = 0; s < core_ckpt_nshards(ck); s++) {
		size_t n;
		unsigned char *f = tu_read_file(core_ckpt_shard_path(ck, s), &n);
		if (!f) { TU_CHECK(0, "cannot read shard %d", s); continue; }
		uint64_t N = 0;
		for (int i = 0; i < 8; i++) N |= (uint64_t)f[i] << (8 * i);
		TU_CHECK(N % 8 == 0 && 8 + N <= n, "shard %d: header length %llu", s, (unsigned long long)N);
		size_t end = 8 + N;
		while (end > 8 && f[end - 1] == ' ') end--;
		TU_CHECK(f[8] == '{' && f[end - 1] == '}' && N - (end - 8) < 8,
			 "shard %d: header not a JSON object padded with < 8 spaces", s);
		TU_CHECK(!memmem(f + 8, N, "__metadata__", 12), "shard %d: unexpected __metadata__", s);
		size_t m = 0;
		for (size_t i = 0; i < nt; i++)
			if (core_ckpt_tensor(ck, i)->shard == s) v[m++] = core_ckpt_tensor(ck, i);
		qsort(v, m, sizeof *v, cmp_off);
		uint64_t cursor = 8 + N;
		const char *hpos = (const char *)f + 8;
		for (size_t i = 0; i < m; i++) {
			TU_CHECK(v[i]->file_offset == cursor, "shard %d: %s at %llu, expected %llu (contiguous)", s,
				 v[i]->name, (unsigned long long)v[i]->file_offset, (unsigned long long)cursor);
			cursor = v[i]->file_offset + v[i]->nbytes;
			if (i) {
				const struct core_tensor *a = v[i - 1], *b = v[i];
				int ok = rank[a->dtype] > rank[b->dtype] ||
					 (rank[a->dtype] == rank[b->dtype] && strcmp(a->name, b->name) < 0);
				TU_CHECK(ok, "shard %d: %s before %s breaks the writer order", s, a->name, b->name);
			}
			/* the header lists the tensors in data order */
			char key[128];
			snprintf(key, sizeof key, "\"%s\":", v[i]->name);
			const char *k = memmem(hpos, (size_t)((const char *)f + 8 + N - hpos), key, strlen(key));
			TU_CHECK(k, "shard %d: header does not list %s in data order", s, v[i]->name);
			if (k) hpos = k + strlen(key);
		}
		TU_CHECK(cursor == n, "shard %d: tensors end at %llu, file is %zu bytes", s,
			 (unsigned long long)cursor, n);
		free(f);
	}
	free(v);
}

static void check_values(struct core_ckpt *ck, int D, int E)
{
	const uint64_t seed = 0x5EED;
	char name[96];
	/* attn_sink: F32 n */
	const uint8_t *p = tdata(ck, "layers.0.attn.attn_sink", CORE_DT_F32, 16);
	if (p) {
		uint64_t st = stream("layers.0.attn.attn_sink", seed);
		for (int i = 0; i < 4; i++) {
			float want = (float)normal(&st), got;
			memcpy(&got, p + 4 * i, 4);
			TU_CHECK(memcmp(&want, &got, 4) == 0, "attn_sink[%d] = %a, expected %a", i, got, want);
		}
	}
	/* hc_attn_fn: F32 n / sqrt(4 D) */
	p = tdata(ck, "layers.3.hc_attn_fn", CORE_DT_F32, 24ull * 4 * D * 4);
	if (p) {
		uint64_t st = stream("layers.3.hc_attn_fn", seed);
		for (int i = 0; i < 24 * 4 * D; i++) {
			float want = (float)(normal(&st) / sqrt(4.0 * D)), got;
			memcpy(&got, p + 4 * i, 4);
			if (memcmp(&want, &got, 4)) {
				TU_CHECK(0, "hc_attn_fn[%d] = %a, expected %a", i, got, want);
				break;
			}
		}
	}
	/* a norm: BF16 1 + 0.1 n */
	p = tdata(ck, "mtp.0.enorm.weight", CORE_DT_BF16, 2ull * D);
	if (p) {
		uint64_t st = stream("mtp.0.enorm.weight", seed);
		for (int i = 0; i < D; i++) {
			uint16_t want = bf16_rne((float)(1 + 0.1 * normal(&st))), got;
			memcpy(&got, p + 2 * i, 2);
			if (want != got) {
				TU_CHECK(0, "enorm[%d] = 0x%04x, expected 0x%04x", i, got, want);
				break;
			}
		}
	}
	/* embed: row 7 dims 0..127 zero, the rest n */
	const struct core_tensor *emb = core_ckpt_find(ck, "embed.weight");
	if (emb && emb->data) {
		uint64_t st = stream("embed.weight", seed);
		int bad = 0;
		for (int64_t i = 0; i < 8ll * D && !bad; i++) {
			uint16_t want = bf16_rne((float)normal(&st)), got;
			if (i / D == 7 && i % D < 128) want = 0;
			memcpy(&got, (const uint8_t *)emb->data + 2 * i, 2);
			if (want != got) {
				TU_CHECK(0, "embed[%lld] = 0x%04x, expected 0x%04x", (long long)i, got, want);
				bad = 1;
			}
		}
	}
	/* tid2eid: Fisher-Yates rows */
	const struct core_tensor *tid = core_ckpt_find(ck, "layers.1.ffn.gate.tid2eid");
	if (tid && tid->data) {
		int64_t V = tid->shape[0], k = tid->shape[1];
		uint64_t st = stream("layers.1.ffn.gate.tid2eid", seed);
		int64_t perm[4096];
		for (int64_t r = 0; r < V; r++) {
			for (int i = 0; i < E; i++) perm[i] = i;
			for (int i = E - 1; i >= 1; i--) {
				int j = (int)(unif(&st) * (i + 1));
				int64_t t = perm[i];
				perm[i] = perm[j];
				perm[j] = t;
			}
			if (memcmp(perm, (const int64_t *)tid->data + r * k, (size_t)k * 8)) {
				TU_CHECK(0, "tid2eid row %lld differs from the Fisher-Yates shuffle", (long long)r);
				break;
			}
		}
	}
	/* FP4 expert: per-32 scales and nearest codes; expert 0 w1/w3 scales + 5 */
	for (int ex = 0; ex < 2; ex++) {
		for (int w = 1; w <= 3; w++) {
			const struct core_tensor *tw, *ts;
			snprintf(name, sizeof name, "layers.2.ffn.experts.%d.w%d.weight", ex, w);
			tw = core_ckpt_find(ck, name);
			snprintf(name, sizeof name, "layers.2.ffn.experts.%d.w%d.scale", ex, w);
			ts = core_ckpt_find(ck, name);
			TU_CHECK(tw && ts && tw->data && ts->data, "expert %d w%d missing", ex, w);
			if (!tw || !ts || !tw->data || !ts->data) continue;
			int64_t rows = tw->shape[0], in = 2 * tw->shape[1];
			snprintf(name, sizeof name, "layers.2.ffn.experts.%d.w%d.weight", ex, w);
			uint64_t st = stream(name, seed);
			int bump = ex == 0 && w != 2 ? 5 : 0, bad = 0;
			float row[8192];
			for (int64_t r = 0; r < rows && !bad; r++) {
				for (int64_t x = 0; x < in; x++) row[x] = (float)(normal(&st) / sqrt((double)in));
				for (int64_t b = 0; b < in / 32 && !bad; b++) {
					float amax = 0;
					for (int x = 0; x < 32; x++) amax = fmaxf(amax, fabsf(row[b * 32 + x]));
					int k = pow2_k(amax, 6.0);
					uint8_t sc = ((const uint8_t *)ts->data)[r * (in / 32) + b];
					if (sc != 127 + k + bump) {
						TU_CHECK(0, "%s scale[%lld][%lld] = %d, expected %d", name, (long long)r,
							 (long long)b, sc, 127 + k + bump);
						bad = 1;
					}
					for (int x = 0; x < 32 && !bad; x++) {
						int64_t col = b * 32 + x;
						uint8_t byte = ((const uint8_t *)tw->data)[r * (in / 2) + col / 2];
						uint8_t nib = col & 1 ? byte >> 4 : byte & 15;
						if (!nearest_e2m1(nib, row[col] / ldexp(1.0, k))) {
							TU_CHECK(0, "%s[%lld][%lld]: code %d is not the nearest E2M1 to %g", name,
								 (long long)r, (long long)col, nib, row[col] / ldexp(1.0, k));
							bad = 1;
						}
					}
				}
			}
		}
	}
}

/* FP8 weight `name` (value n / sqrt(in)): 128x128 block scales and nearest codes,
 * partial blocks included. */
static void check_fp8(struct core_ckpt *ck, const char *name, const char *sname)
{
	const struct core_tensor *tw = core_ckpt_find(ck, name), *ts = core_ckpt_find(ck, sname);
	TU_CHECK(tw && ts && tw->data && ts->data, "%s / %s missing", name, sname);
	if (!tw || !ts || !tw->data || !ts->data) return;
	int64_t rows = tw->shape[0], cols = tw->shape[1];
	int64_t nbr = (rows + 127) / 128, nbc = (cols + 127) / 128;
	TU_CHECK(ts->shape[0] == nbr && ts->shape[1] == nbc, "%s: scale grid [%lld, %lld], expected [%lld, %lld]",
		 sname, (long long)ts->shape[0], (long long)ts->shape[1], (long long)nbr, (long long)nbc);
	float *w = malloc(sizeof(float) * (size_t)(rows * cols));
	uint64_t st = stream(name, 0x5EED);
	for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)(normal(&st) / sqrt((double)cols));
	int bad = 0;
	for (int64_t br = 0; br < nbr && !bad; br++)
		for (int64_t bc = 0; bc < nbc && !bad; bc++) {
			float amax = 0;
			for (int64_t r = br * 128; r < rows && r < br * 128 + 128; r++)
				for (int64_t c = bc * 128; c < cols && c < bc * 128 + 128; c++)
					amax = fmaxf(amax, fabsf(w[r * cols + c]));
			int k = pow2_k(amax, 448.0);
			uint8_t sc = ((const uint8_t *)ts->data)[br * nbc + bc];
			if (sc != 127 + k) {
				TU_CHECK(0, "%s[%lld][%lld] = %d, expected %d (amax %g)", sname, (long long)br,
					 (long long)bc, sc, 127 + k, amax);
				bad = 1;
			}
			for (int64_t r = br * 128; r < rows && r < br * 128 + 128 && !bad; r++)
				for (int64_t c = bc * 128; c < cols && c < bc * 128 + 128 && !bad; c++) {
					uint8_t code = ((const uint8_t *)tw->data)[r * cols + c];
					if (!nearest_e4m3(code, w[r * cols + c] / ldexp(1.0, k))) {
						TU_CHECK(0, "%s[%lld][%lld]: code 0x%02x is not the nearest E4M3 to %g", name,
							 (long long)r, (long long)c, code, w[r * cols + c] / ldexp(1.0, k));
						bad = 1;
					}
				}
		}
	free(w);
}

static void test_tiny_ci(void)
{
	char a[600], b[600], c[600], args[1400];
	snprintf(a, sizeof a, "%s/a", g_tmp);
	snprintf(b, sizeof b, "%s/b", g_tmp);
	snprintf(c, sizeof c, "%s/c", g_tmp);
	snprintf(args, sizeof args, "--preset tiny-ci --out %s", a);
	TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
	struct core_ckpt *ck = open_ck(a, 1);
	if (!ck) return;
	uint64_t total = 0;
	for (size_t i = 0; i < core_ckpt_ntensors(ck); i++) total += core_ckpt_tensor(ck, i)->nbytes;
	/* TINY.md §3 */
	TU_CHECK(core_ckpt_ntensors(ck) == 585, "%zu tensors, expected 585", core_ckpt_ntensors(ck));
	TU_CHECK(total == 11242256, "%llu tensor bytes, expected 11242256", (unsigned long long)total);
	TU_CHECK(core_ckpt_nshards(ck) == 9, "%d shards, expected 9", core_ckpt_nshards(ck));
	TU_CHECK(core_ckpt_nwarnings(ck) == 0, "%zu warnings, first: %s", core_ckpt_nwarnings(ck),
		 core_ckpt_nwarnings(ck) ? core_ckpt_warning(ck, 0) : "");
	/* release grouping: embed alone in shard 1, layer L in shard L+2, head group, MTP */
	const struct core_tensor *t = core_ckpt_find(ck, "embed.weight");
	TU_CHECK(t && strstr(core_ckpt_shard_path(ck, t->shard), "model-00001-of-00009.safetensors"),
		 "embed.weight not in shard 1");
	t = core_ckpt_find(ck, "layers.5.attn.wkv.scale");
	TU_CHECK(t && strstr(core_ckpt_shard_path(ck, t->shard), "model-00007-of-00009.safetensors"),
		 "layers.5 not in shard 7");
	t = core_ckpt_find(ck, "hc_head_scale");
	TU_CHECK(t && strstr(core_ckpt_shard_path(ck, t->shard), "model-00008-of-00009.safetensors"),
		 "hc_head_scale not in shard 8");
	t = core_ckpt_find(ck, "mtp.0.e_proj.weight");
	TU_CHECK(t && strstr(core_ckpt_shard_path(ck, t->shard), "model-00009-of-00009.safetensors"),
		 "mtp.0 not in shard 9");
	check_layout(ck);
	check_values(ck, 256, 8);
	check_fp8(ck, "layers.0.attn.wq_a.weight", "layers.0.attn.wq_a.scale");
	check_fp8(ck, "layers.4.attn.wo_a.weight", "layers.4.attn.wo_a.scale");
	check_fp8(ck, "mtp.0.h_proj.weight", "mtp.0.h_proj.scale");
	core_ckpt_close(ck);

	/* determinism: same seed, same bytes; another seed, other weights, same layout */
	snprintf(args, sizeof args, "--preset tiny-ci --out %s --threads 1", b);
	TU_CHECK(run(args) == 0, "mkmodel %s failed", args);
	snprintf(args, sizeof args, "--preset tiny-ci --out %s --seed 2", c);
	TU_CHECK(run(args) == 0, "mkmodel %s failed", args);
	static const char *const files[] = {"config.json", "model.safetensors.index.json",
					    "generation_config.json", NULL};
	char pa[700], pb[700], pc[700];
	for (int i = 0; files[i]; i++) {
		snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
		snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
		snprintf(pc, sizeof pc, "%s/%s", c, files[i]);
		TU_CHECK(files_equal(pa, pb) && files_equal(pa, pc), "%s differs between runs", files[i]);
	}
	for (int s = 1; s <= 9; s++) {
		snprintf(pa, sizeof pa, "%s/model-%05d-of-00009.safetensors", a, s);
		snprintf(pb, sizeof pb, "%s/model-%05d-of-00009.safetensors", b, s);
		snprintf(pc, sizeof pc, "%s/model-%05d-of-00009.safetensors", c, s);
		TU_CHECK(files_equal(pa, pb), "shard %d differs for the same seed", s);
		TU_CHECK(!files_equal(pa, pc), "shard %d identical for seeds 0x5EED and 2", s);
	}
	struct core_ckpt *c2 = open_ck(c, 1);
	core_ckpt_close(c2);
}

/* tiny-edge: partial 128-blocks (wq_b [576,128], wkv [192,256], wo_a [256,288],
 * indexer.wq_b [192,128]), index_head_dim == qk_rope_head_dim, ratio-4 MTP. */
static void test_edge(void)
{
	char a[600], args[800];
	snprintf(a, sizeof a, "%s/edge", g_tmp);
	snprintf(args, sizeof args, "--preset tiny-edge --out %s", a);
	TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
	struct core_ckpt *ck = open_ck(a, 1);
	if (!ck) return;
	const struct core_config *cf = core_ckpt_config(ck);
	TU_CHECK(cf->head_dim == 192 && cf->index_head_dim == cf->qk_rope_head_dim && cf->swiglu_limit == 0 &&
		 cf->compress_ratios[cf->n_compress_ratios - 1] == 4, "tiny-edge config is not the edge case");
	TU_CHECK(core_ckpt_find(ck, "mtp.0.attn.indexer.wq_b.weight") != NULL, "ratio-4 MTP lacks its indexer");
	check_layout(ck);
	check_fp8(ck, "layers.1.attn.wq_b.weight", "layers.1.attn.wq_b.scale");
	check_fp8(ck, "layers.1.attn.wkv.weight", "layers.1.attn.wkv.scale");
	check_fp8(ck, "layers.1.attn.wo_a.weight", "layers.1.attn.wo_a.scale");
	check_fp8(ck, "mtp.0.attn.indexer.wq_b.weight", "mtp.0.attn.indexer.wq_b.scale");
	core_ckpt_close(ck);
}

static uint64_t file_size(const char *dir, const char *name, uint64_t *blocks)
{
	char p[800];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (stat(p, &st)) return 0;
	if (blocks) *blocks += (uint64_t)st.st_blocks * 512;
	return (uint64_t)st.st_size;
}

/* --layers/--experts/--no-mtp on the release shape, sparse: the counts of
 * CHECKPOINT.md §4 (ratio 0 + hash 29, ratio 4 + hash 40, ratio 128 + score 33,
 * 6 per expert, 6 top level). */
static void test_overrides(void)
{
	char a[600], args[800];
	snprintf(a, sizeof a, "%s/small", g_tmp);
	snprintf(args, sizeof args, "--preset full --layers 4 --experts 8 --no-mtp --sparse --out %s", a);
	TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
	struct core_ckpt_opts o = {.no_mmap = 1};
	struct core_ckpt *ck = NULL;
	struct nv_err e;
	char buf[2048];
	if (core_ckpt_open(a, &o, &ck, &e)) {
		TU_CHECK(0, "open %s: %s", a, core_err_str(&e, buf, sizeof buf));
		return;
	}
	const struct core_config *c = core_ckpt_config(ck);
	TU_CHECK(c->num_hidden_layers == 4 && c->num_nextn_predict_layers == 0 && c->n_routed_experts == 8 &&
		 c->num_experts_per_tok == 6 && c->n_compress_ratios == 4 && c->compress_ratios[2] == 4 &&
		 c->compress_ratios[3] == 128 && c->hidden_size == 4096,
		 "overridden config wrong (L %d, mtp %d, E %d, k %d, ratios %d)", c->num_hidden_layers,
		 c->num_nextn_predict_layers, c->n_routed_experts, c->num_experts_per_tok, c->n_compress_ratios);
	size_t want = 6 + (29 + 48) * 2 + (40 + 48) + (33 + 48);
	TU_CHECK(core_ckpt_ntensors(ck) == want, "%zu tensors, expected %zu", core_ckpt_ntensors(ck), want);
	TU_CHECK(core_ckpt_nshards(ck) == 6, "%d shards, expected 6", core_ckpt_nshards(ck));
	core_ckpt_close(ck);
}

/* The released inventory, sparse: CHECKPOINT.md §1, §4.2 (69,187 tensors,
 * 159,609,485,896 tensor bytes, 46 shards, file sizes of the table in §1). */
static void test_release(void)
{
	char a[600], args[800], buf[2048];
	snprintf(a, sizeof a, "%s/release", g_tmp);
	snprintf(args, sizeof args, "--preset release --sparse --out %s", a);
	TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
	struct core_ckpt_opts o = {.no_mmap = 1};
	struct core_ckpt *ck = NULL;
	struct nv_err e;
	if (core_ckpt_open(a, &o, &ck, &e)) {
		TU_CHECK(0, "open %s: %s", a, core_err_str(&e, buf, sizeof buf));
		return;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < core_ckpt_ntensors(ck); i++) total += core_ckpt_tensor(ck, i)->nbytes;
	TU_CHECK(core_ckpt_ntensors(ck) == 69187, "%zu tensors, expected 69187", core_ckpt_ntensors(ck));
	TU_CHECK(total == 159609485896ull, "%llu tensor bytes, expected 159609485896", (unsigned long long)total);
	TU_CHECK(core_ckpt_nshards(ck) == 46, "%d shards, expected 46", core_ckpt_nshards(ck));
	core_ckpt_close(ck);
	/* Shard file sizes of CHECKPOINT.md §1 (they pin the header format too). */
	static const struct { int shard; uint64_t bytes; } sizes[] = {
		{1, 1059061856ull}, {2, 3566321192ull}, {3, 3566321192ull}, {4, 3596229272ull},
		{5, 3568768976ull}, {6, 3590024776ull}, {10, 3590024776ull}, {11, 3568768976ull},
		{12, 3590026352ull}, {13, 3568770544ull}, {43, 3568770544ull}, {44, 3590026352ull},
		{45, 1059332516ull}, {46, 3593956092ull},
	};
	char name[64];
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		snprintf(name, sizeof name, "model-%05d-of-00046.safetensors", sizes[i].shard);
		uint64_t got = file_size(a, name, NULL);
		TU_CHECK(got == sizes[i].bytes, "%s: %llu bytes, the release has %llu", name,
			 (unsigned long long)got, (unsigned long long)sizes[i].bytes);
	}
	uint64_t sum = 0, blocks = 0;
	for (int s = 1; s <= 46; s++) {
		snprintf(name, sizeof name, "model-%05d-of-00046.safetensors", s);
		sum += file_size(a, name, &blocks);
	}
	TU_CHECK(sum == 159617149040ull, "shard files sum to %llu bytes, the release to 159617149040",
		 (unsigned long long)sum);
	TU_CHECK(blocks < (64ull << 20), "sparse checkpoint occupies %llu bytes of disk", (unsigned long long)blocks);
	/* the index carries total_size */
	snprintf(name, sizeof name, "%s", "model.safetensors.index.json");
	char p[800];
	snprintf(p, sizeof p, "%s/%s", a, name);
	char *idx = tu_read_file(p, NULL);
	TU_CHECK(idx && strstr(idx, "\"total_size\": 159609485896"), "index lacks total_size 159609485896");
	free(idx);
	/* config.json: the released file, byte for byte */
	const char *sh = tu_shared_dir();
	if (sh) {
		char ref[700];
		snprintf(ref, sizeof ref, "%s/ref/deepseek-v4-flash/config.json", sh);
		snprintf(p, sizeof p, "%s/config.json", a);
		TU_CHECK(files_equal(ref, p), "%s differs from %s", p, ref);
	}
}

/* The demo model with the real tokenizer files (needs ../shared). */
static void test_demo(void)
{
	const char *sh = tu_require_shared();
	char a[600], args[1400], tok[700], p1[800], p2[800];
	snprintf(a, sizeof a, "%s/demo", g_tmp);
	snprintf(tok, sizeof tok, "%s/ref/deepseek-v4-flash", sh);
	snprintf(args, sizeof args, "--preset demo --out %s --tokenizer-dir %s", a, tok);
	TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
	struct core_ckpt *ck = open_ck(a, 0);
	if (!ck) return;
	uint64_t total = 0;
	for (size_t i = 0; i < core_ckpt_ntensors(ck); i++) total += core_ckpt_tensor(ck, i)->nbytes;
	TU_CHECK(core_ckpt_config(ck)->vocab_size == 129280, "demo vocab %d, expected 129280",
		 core_ckpt_config(ck)->vocab_size);
	TU_CHECK(total < 300000000ull, "demo is %llu bytes, meant to stay under 300 MB", (unsigned long long)total);
	core_ckpt_close(ck);
	static const char *const pairs[][2] = {{"tokenizer.reconstructed.json", "tokenizer.json"},
					       {"tokenizer_config.json", "tokenizer_config.json"},
					       {"generation_config.json", "generation_config.json"}};
	for (int i = 0; i < 3; i++) {
		snprintf(p1, sizeof p1, "%s/%s", tok, pairs[i][0]);
		snprintf(p2, sizeof p2, "%s/%s", a, pairs[i][1]);
		TU_CHECK(files_equal(p1, p2), "%s is not a copy of %s", p2, p1);
	}
}

/* tiny-a-like / tiny-b-like have the inventory of the shipped golden checkpoints
 * (names, dtypes, shapes; the golden files hold other weights and 2 shards). */
static void test_golden_like(void)
{
	const char *sh = tu_require_shared();
	for (int c = 0; c < 2; c++) {
		char a[600], args[800], g[700], buf[2048];
		snprintf(a, sizeof a, "%s/tiny-%c", g_tmp, "ab"[c]);
		snprintf(g, sizeof g, "%s/golden/tiny-%c/ckpt", sh, "ab"[c]);
		snprintf(args, sizeof args, "--preset tiny-%c-like --out %s", "ab"[c], a);
		TU_CHECK(run(args) == 0, "mkmodel %s failed: %s", args, read_out());
		struct core_ckpt *mine = open_ck(a, 1), *gold = NULL;
		struct core_ckpt_opts o = {0};
		struct nv_err e;
		if (core_ckpt_open(g, &o, &gold, &e)) {
			TU_CHECK(0, "open %s: %s", g, core_err_str(&e, buf, sizeof buf));
			core_ckpt_close(mine);
			continue;
		}
		if (mine) {
			TU_CHECK(core_ckpt_ntensors(mine) == core_ckpt_ntensors(gold), "tiny-%c: %zu tensors, golden %zu",
				 "ab"[c], core_ckpt_ntensors(mine), core_ckpt_ntensors(gold));
			for (size_t i = 0; i < core_ckpt_ntensors(gold); i++) {
				const struct core_tensor *t = core_ckpt_tensor(gold, i);
				const struct core_tensor *m = core_ckpt_find(mine, t->name);
				int same = m && m->dtype == t->dtype && m->ndim == t->ndim;
				for (int d = 0; same && d < t->ndim; d++) same = m->shape[d] == t->shape[d];
				TU_CHECK(same, "tiny-%c: %s differs from the golden checkpoint", "ab"[c], t->name);
			}
		}
		core_ckpt_close(mine);
		core_ckpt_close(gold);
	}
}

/* Bad input: one message, non-zero exit, no checkpoint. */
static void test_errors(void)
{
	char args[800], cfg[700];
	struct { const char *args; int rc; const char *msg; } cases[] = {
		{"--preset nonesuch --out %s/x", 1, "unknown preset"},
		{"--preset tiny-ci --out %s/x --set compress_ratios=[0,4]", 1, "compress_ratios"},
		{"--preset tiny-ci --out %s/x --set hidden_size=200", 1, "hidden_size"},
		{"--preset release --layers 2 --out %s/x", 1, "no overrides"},
		{"--preset tiny-ci --out %s/x --layers zero", 2, "--layers"},
		{"--out %s/x", 2, "--preset"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(args, sizeof args, cases[i].args, g_tmp);
		int rc = run(args);
		char *out = read_out();
		TU_CHECK(rc == cases[i].rc && out && strstr(out, cases[i].msg),
			 "mkmodel %s: exit %d (expected %d), output '%s' (expected to mention '%s')", args, rc,
			 cases[i].rc, out ? out : "", cases[i].msg);
		free(out);
		snprintf(cfg, sizeof cfg, "%s/x/config.json", g_tmp);
		struct stat st;
		TU_CHECK(stat(cfg, &st) != 0, "mkmodel %s left a config.json", args);
	}
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "unit";
	if (!strcmp(what, "demo") || !strcmp(what, "golden")) tu_require_shared(); /* skip before mkdtemp */
	const char *b = getenv("NV_BUILD");
	snprintf(g_tmp, sizeof g_tmp, "%s/mkmodel-test-XXXXXX", b ? b : "/tmp");
	if (!mkdtemp(g_tmp)) {
		perror("mkdtemp");
		return 1;
	}
	if (!strcmp(what, "unit")) {
		test_tiny_ci();
		test_overrides();
		test_errors();
	} else if (!strcmp(what, "edge")) {
		test_edge();
	} else if (!strcmp(what, "release")) {
		test_release();
	} else if (!strcmp(what, "demo")) {
		test_demo();
	} else if (!strcmp(what, "golden")) {
		test_golden_like();
	} else {
		fprintf(stderr, "usage: test_mkmodel [unit|edge|release|demo|golden]\n");
		return 2;
	}
	if (!tu_failures) {
		char cmd[700];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
		if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_tmp);
	}
	TU_DONE();
}
