/* tests/test_offload_source.c - the streamed expert source against the resident
 * checkpoint, on a synthetic model (`unit`: build/mkmodel --preset tiny-ci) or the
 * golden tiny-a checkpoint (`golden`, skipped without ../shared):
 *   - bytes of every expert equal the mmapped checkpoint's, from the HF shards and
 *     from the converted store, io_uring and pread paths, with a tiny cache;
 *   - logits and MTP logits of a whole sequence are BITWISE equal to the resident
 *     run with three slots per block;
 *   - faults: corrupted record, injected EIO (and recovery), store truncated under
 *     the reader, store missing, cache full of in-use experts: each an error naming
 *     the layer or MTP block, the expert, the file and the offset. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/model.h"
#include "kernels/kern.h"
#include "offload/convert.h"
#include "offload/source.h"
#include "offload/store.h"
#include "offload_testlib.h"
#include "testutil.h"

static char g_hf[4200], g_conv[4200], g_tmp[4100];
static int32_t *g_tok;
static int g_L;

static struct core_ckpt *open_ck(const char *dir)
{
	struct core_ckpt *ck;
	struct nv_err e;
	if (core_ckpt_open(dir, NULL, &ck, &e)) {
		char b[2048];
		fprintf(stderr, "open %s: %s\n", dir, core_err_str(&e, b, sizeof b));
		exit(1);
	}
	return ck;
}

static long g_fail_count;
static struct offload_source *mk_src(const struct core_ckpt *ck, int slots, int mode, long fail_nth, struct nv_err *e)
{
	struct offload_source_opts o;
	offload_source_opts_default(&o);
	o.host_cache_slots = slots;
	o.io.mode = mode;
	o.io.fail_nth = fail_nth;
	o.io.fail_count = g_fail_count;
	struct offload_source *s = NULL;
	if (offload_source_create(ck, &o, &s, e)) return NULL;
	return s;
}

/* Every expert through the source (shuffled order) equals the resident bytes. */
static void t_bytes(const struct core_ckpt *ref, const struct core_ckpt *ck, int slots, int mode, const char *tag)
{
	struct nv_err e;
	struct offload_source *s = mk_src(ck, slots, mode, 0, &e);
	char msg[2048];
	TU_CHECK(s != NULL, "%s: source: %s", tag, core_err_str(&e, msg, sizeof msg));
	if (!s) return;
	struct core_expert_src src;
	offload_source_iface(s, &src);
	const struct core_config *c = core_ckpt_config(ref);
	struct offload_store_geom g;
	offload_store_geom_from_config(c, &g, &e);
	int nb = g.nblocks, E = g.nexperts, n = nb * E;
	int bad = 0;
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < n; i++) {
			int k = (int)(((long long)i * 7919 + round * 31) % n); /* 7919 is prime: a permutation when n is not a multiple */
			if (n % 7919 == 0) k = i;
			int b = k / E, x = k % E;
			struct core_expert_view v;
			int rc = src.acquire(src.ctx, b, x, &v, &e);
			if (rc) { TU_CHECK(0, "%s: acquire (%d,%d): %s", tag, b, x, core_err_str(&e, msg, sizeof msg)); return; }
			const uint8_t *pp[6] = {v.w1, v.w1_scale, v.w3, v.w3_scale, v.w2, v.w2_scale};
			for (int p = 0; p < OFFLOAD_NPARTS; p++) {
				char nm[128];
				offload_expert_tensor_name(&g, b, x, p, nm, sizeof nm);
				const struct core_tensor *t = core_ckpt_find(ref, nm);
				if (memcmp(pp[p], t->data, (size_t)t->nbytes)) {
					if (!bad++) TU_CHECK(0, "%s: %s differs from the checkpoint", tag, nm);
				}
			}
			src.release(src.ctx, b, x);
		}
	struct offload_source_stats st;
	offload_source_stats(s, &st);
	TU_CHECK(st.cache.misses >= (uint64_t)n && st.cache.evictions > 0, "%s: misses %llu evictions %llu (cache of %d slots)", tag,
		 (unsigned long long)st.cache.misses, (unsigned long long)st.cache.evictions, slots);
	if (core_ckpt_has_store(ck))
		TU_CHECK(st.verified == st.cache.misses, "%s: verified %llu of %llu loads", tag,
			 (unsigned long long)st.verified, (unsigned long long)st.cache.misses);
	TU_CHECK((mode == OFFLOAD_IO_PREAD) == (st.io.pool_requests == st.io.requests), "%s: pool %llu of %llu requests",
		 tag, (unsigned long long)st.io.pool_requests, (unsigned long long)st.io.requests);
	offload_source_destroy(s);
}

/* ---- forward runs */

struct used { int blk; int *seen; int E; };
static void on_route(void *ctx, int blk, int p0, int S, int k, const int32_t *ids, const float *w)
{
	(void)p0; (void)w;
	struct used *u = ctx;
	for (int i = 0; i < S * k; i++) u->seen[blk * u->E + ids[i]]++;
}

/* logits [L-1, V] and MTP logits [L-2, V] of tokens 0..L-2; returns rc, e filled. */
static int run(const struct core_ckpt *ck, const struct core_expert_src *src, float *lg, float *mlg,
	       struct used *u, struct nv_err *e)
{
	struct kern *k = kern_cpu_create();
	struct core_model_opts mo = { .numeric = CORE_NUM_FAITHFUL, .max_chunk = 16, .experts = src };
	struct core_model *m = NULL;
	struct core_seq *sq = NULL;
	int rc = core_model_create(ck, k, &mo, &m, e);
	if (!rc) rc = core_seq_create(m, g_L, &sq, e);
	if (!rc && u) {
		struct core_hooks h = { .ctx = u, .route = on_route };
		rc = core_model_set_hooks(m, &h, e);
	}
	if (!rc) {
		struct core_fwd_io io = { .logits = lg, .logits_all = 1, .mtp_tok = g_tok + 1, .mtp_logits = mlg, .mtp_all = 1 };
		rc = core_forward(m, sq, g_tok, g_L - 1, 0, &io, e);
	}
	core_seq_destroy(sq);
	core_model_destroy(m);
	k->destroy(k);
	return rc;
}

static void t_logits(const struct core_ckpt *ref, const struct core_ckpt *hf, const struct core_ckpt *conv, int **used_out)
{
	const struct core_config *c = core_ckpt_config(ref);
	int V = c->vocab_size, nb = core_cfg_nblocks(c), E = c->n_routed_experts;
	size_t n = (size_t)(g_L - 1) * (size_t)V;
	float *l0 = calloc(n, 4), *m0 = calloc(n, 4), *l1 = calloc(n, 4), *m1 = calloc(n, 4);
	struct used u = { .seen = calloc((size_t)nb * (size_t)E, sizeof(int)), .E = E };
	struct nv_err e;
	char msg[2048];
	int rc = run(ref, NULL, l0, m0, &u, &e);
	TU_CHECK(rc == 0, "resident run: %s", core_err_str(&e, msg, sizeof msg));
	struct { const struct core_ckpt *ck; int mode; const char *tag; } cases[] = {
		{ hf, OFFLOAD_IO_URING, "HF shards, io_uring" },
		{ hf, OFFLOAD_IO_PREAD, "HF shards, pread" },
		{ conv, OFFLOAD_IO_URING, "store, io_uring" },
		{ conv, OFFLOAD_IO_PREAD, "store, pread" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct offload_source *s = mk_src(cases[i].ck, 3 * nb, cases[i].mode, 0, &e);
		TU_CHECK(s != NULL, "%s: %s", cases[i].tag, core_err_str(&e, msg, sizeof msg));
		if (!s) continue;
		struct core_expert_src src;
		offload_source_iface(s, &src);
		memset(l1, 0xAB, n * 4);
		memset(m1, 0xAB, n * 4);
		rc = run(cases[i].ck, &src, l1, m1, NULL, &e);
		TU_CHECK(rc == 0, "%s: forward: %s", cases[i].tag, core_err_str(&e, msg, sizeof msg));
		size_t nm = (size_t)(g_L - 2) * (size_t)V;
		long long d = -1, dm = -1;
		for (size_t j = 0; j < n && d < 0; j++) if (memcmp(&l0[j], &l1[j], 4)) d = (long long)j;
		for (size_t j = 0; j < nm && dm < 0; j++) if (memcmp(&m0[j], &m1[j], 4)) dm = (long long)j;
		TU_CHECK(d < 0, "%s: logits not bitwise equal at %lld: got %.9g expected %.9g", cases[i].tag, d,
			 d >= 0 ? l1[d] : 0.f, d >= 0 ? l0[d] : 0.f);
		TU_CHECK(dm < 0, "%s: MTP logits not bitwise equal at %lld: got %.9g expected %.9g", cases[i].tag, dm,
			 dm >= 0 ? m1[dm] : 0.f, dm >= 0 ? m0[dm] : 0.f);
		struct offload_source_stats st;
		offload_source_stats(s, &st);
		printf("%s: %d slots for %d experts: %llu hits, %llu misses, %llu evictions, %llu verified -> bitwise %s\n",
		       cases[i].tag, 3 * nb, nb * E, (unsigned long long)st.cache.hits, (unsigned long long)st.cache.misses,
		       (unsigned long long)st.cache.evictions, (unsigned long long)st.verified, d < 0 && dm < 0 ? "equal" : "DIFFERENT");
		TU_CHECK(st.cache.evictions > 0, "%s: the cache never evicted: the test does not exercise streaming", cases[i].tag);
		offload_source_destroy(s);
	}
	free(l0); free(m0); free(l1); free(m1);
	*used_out = u.seen;
}

/* ---- faults */

static int expect_fail(const struct core_ckpt *ck, struct offload_source *s, int want_rc, const char *tag,
		       const char *const *needles)
{
	const struct core_config *c = core_ckpt_config(ck);
	size_t n = (size_t)(g_L - 1) * (size_t)c->vocab_size;
	float *l = calloc(n, 4), *m = calloc(n, 4);
	struct core_expert_src src;
	offload_source_iface(s, &src);
	struct nv_err e;
	core_err_clear(&e);
	int rc = run(ck, &src, l, m, NULL, &e);
	char msg[2048];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == want_rc, "%s: forward rc %d (%s), expected %d", tag, rc, msg, want_rc);
	for (int i = 0; needles[i]; i++)
		TU_CHECK(strstr(msg, needles[i]) != NULL, "%s: message lacks '%s': %s", tag, needles[i], msg);
	printf("%s: %s\n", tag, msg);
	free(l);
	free(m);
	return rc;
}

static void t_faults(const struct core_ckpt *ref, int *used)
{
	const struct core_config *c = core_ckpt_config(ref);
	int nb = core_cfg_nblocks(c), E = c->n_routed_experts;
	struct nv_err e;
	char msg[2048], path[4400], obj[96], off[64];
	snprintf(path, sizeof path, "%s/%s", g_conv, CORE_STORE_FILE);
	struct offload_store_geom g;
	offload_store_geom_from_config(c, &g, &e);
	struct core_ckpt *ck = open_ck(g_conv);

	/* 1. checksum: corrupt a record that layer 1 uses */
	int x = 0;
	while (x < E && !used[1 * E + x]) x++;
	TU_CHECK(x < E, "no expert of layer 1 used");
	struct offload_store *st;
	offload_store_open(path, &g, &st, &e);
	uint64_t ro = offload_store_record_offset(st, 1, x);
	offload_store_close(st);
	int fd = open(path, O_RDWR);
	uint8_t byte;
	pread(fd, &byte, 1, (off_t)(ro + 100));
	byte ^= 1;
	pwrite(fd, &byte, 1, (off_t)(ro + 100));
	struct offload_source *s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 0, &e);
	snprintf(obj, sizeof obj, "layer 1 expert %d", x);
	snprintf(off, sizeof off, "offset %llu", (unsigned long long)ro);
	const char *n1[] = { obj, path, off, "checksum", NULL };
	if (s) expect_fail(ck, s, NV_ECHECKSUM, "corrupt record", n1);
	offload_source_destroy(s);
	byte ^= 1;
	pwrite(fd, &byte, 1, (off_t)(ro + 100));
	close(fd);

	/* 2. injected EIO: from request 3 on every read fails (a dead drive), so the
	 * prefetch of an expert and its demand retry both fail */
	g_fail_count = 1000000;
	s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 3, &e);
	const char *n2[] = { " expert ", path, "offset", "Input/output error", NULL };
	if (s) {
		expect_fail(ck, s, -EIO, "injected EIO", n2);
		struct offload_source_stats sst;
		offload_source_stats(s, &sst);
		TU_CHECK(sst.io.errors >= 2 && sst.retried >= 1, "EIO: %llu failed reads, %llu retried prefetches",
			 (unsigned long long)sst.io.errors, (unsigned long long)sst.retried);
	}
	offload_source_destroy(s);
	/* a single transient error in a prefetch is retried on demand: right answer, counted */
	g_fail_count = 1;
	s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 3, &e);
	if (s) {
		const char *none[] = { NULL };
		expect_fail(ck, s, 0, "one transient EIO", none);
		struct offload_source_stats sst;
		offload_source_stats(s, &sst);
		TU_CHECK(sst.io.errors == 1 && sst.retried == 1, "transient EIO: %llu errors, %llu retried",
			 (unsigned long long)sst.io.errors, (unsigned long long)sst.retried);
	}
	offload_source_destroy(s);
	g_fail_count = 0;

	/* 3. the store shrinks under the reader: MTP experts live in the second half */
	s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 0, &e);
	if (s) {
		TU_CHECK(truncate(path, (off_t)(g.records_off + (uint64_t)(nb - 1) * (uint64_t)E * g.record_size)) == 0, "truncate");
		const char *n3[] = { "MTP block 0", path, "end of file", NULL };
		expect_fail(ck, s, NV_EFORMAT, "store shrank", n3);
	}
	offload_source_destroy(s);
	TU_CHECK(truncate(path, (off_t)g.file_size) == 0, "restore size"); /* records are zeros now: checksums fail */
	s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 0, &e);
	const char *n3b[] = { "MTP block 0", "checksum", "trailer is missing", NULL };
	if (s) expect_fail(ck, s, NV_ECHECKSUM, "zeroed records", n3b);
	offload_source_destroy(s);

	/* 4. cache full of experts in use: an error at once, not a deadlock */
	s = mk_src(ck, 2, OFFLOAD_IO_URING, 0, &e);
	if (s) {
		struct core_expert_src src;
		offload_source_iface(s, &src);
		struct core_expert_view v;
		int a = src.acquire(src.ctx, 0, 0, &v, &e), b = src.acquire(src.ctx, 0, 1, &v, &e);
		core_err_clear(&e);
		int rc = src.acquire(src.ctx, 1, 0, &v, &e);
		core_err_str(&e, msg, sizeof msg);
		TU_CHECK(a == 0 && b == 0 && rc == NV_EFIT && strstr(msg, "host cache full") && strstr(msg, "block 1 expert 0"),
			 "cache full: rc %d %d %d: %s", a, b, rc, msg);
		src.release(src.ctx, 0, 0);
		rc = src.acquire(src.ctx, 1, 0, &v, &e);
		TU_CHECK(rc == NV_ECHECKSUM || rc == 0, "after a release the acquire proceeds: rc %d", rc);
	}
	offload_source_destroy(s);

	/* 5. store missing when the source opens it */
	TU_CHECK(unlink(path) == 0, "unlink store");
	s = mk_src(ck, 3 * nb, OFFLOAD_IO_URING, 0, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(s == NULL && e.code == NV_EMISSING && strstr(msg, path) && strstr(msg, "nvmoe convert"),
		 "missing store: %s", msg);
	offload_source_destroy(s);
	core_ckpt_close(ck);
}

static void t_convert_refuse(void)
{
	struct nv_err e;
	struct offload_convert_opts o = {0};
	int rc = offload_convert(g_hf, g_conv, &o, NULL, &e);
	char msg[2048];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EINVAL && strstr(msg, "already exists") && strstr(msg, "--force"), "overwrite without --force: %s", msg);
	o.force = 1;
	rc = offload_convert(g_hf, g_hf, &o, NULL, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EINVAL && strstr(msg, "replace the source"), "--out = source: %s", msg);
	char again[4200];
	snprintf(again, sizeof again, "%s/again", g_tmp);
	rc = offload_convert(g_conv, again, &o, NULL, &e);
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == NV_EINVAL && strstr(msg, "already converted"), "converting a store: %s", msg);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "unit";
	if (!strcmp(what, "golden")) tu_require_shared(); /* skip before making a directory */
	char *dir = ot_tmpdir(what);
	snprintf(g_tmp, sizeof g_tmp, "%s", dir);
	if (!strcmp(what, "golden")) {
		const char *sh = tu_require_shared();
		snprintf(g_hf, sizeof g_hf, "%s/golden/tiny-a/ckpt", sh);
		char tp[4200];
		snprintf(tp, sizeof tp, "%s/golden/tiny-a/tokens.json", sh);
		size_t n;
		char *js = tu_read_file(tp, &n);
		if (!js) return 1;
		g_tok = malloc(sizeof(int32_t) * 4096);
		char *p = strchr(js, '[');
		while (p && *p != ']' && g_L < 4096) {
			p++;
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p) break;
			g_tok[g_L++] = (int32_t)v;
			p = end;
		}
		free(js);
	} else {
		const char *b = getenv("NV_BUILD");
		char cmd[8400];
		snprintf(g_hf, sizeof g_hf, "%s/hf", dir);
		snprintf(cmd, sizeof cmd, "'%s/mkmodel' --preset tiny-ci --out '%s' --quiet", b ? b : ".", g_hf);
		if (system(cmd)) { fprintf(stderr, "mkmodel failed: %s\n", cmd); return 1; }
		g_L = 48;
		g_tok = malloc(sizeof(int32_t) * (size_t)g_L);
		for (int i = 0; i < g_L; i++) g_tok[i] = (i * 37 + 11) % 512;
	}
	snprintf(g_conv, sizeof g_conv, "%s/conv", dir);
	struct nv_err e;
	char msg[2048];
	struct offload_convert_opts co = {0};
	struct offload_convert_result res;
	int rc = offload_convert(g_hf, g_conv, &co, &res, &e);
	if (rc) { fprintf(stderr, "convert: %s\n", core_err_str(&e, msg, sizeof msg)); return 1; }
	struct core_ckpt *ref = open_ck(g_hf), *conv = open_ck(g_conv), *hf = open_ck(g_hf);
	TU_CHECK(core_ckpt_has_store(conv) && !core_ckpt_has_store(ref), "has_store: converted %d, HF %d",
		 core_ckpt_has_store(conv), core_ckpt_has_store(ref));
	const struct core_config *c = core_ckpt_config(ref);
	int nb = core_cfg_nblocks(c);
	TU_CHECK(res.nrecords == (uint64_t)nb * (uint64_t)c->n_routed_experts, "records %llu", (unsigned long long)res.nrecords);
	/* resident tensors unchanged */
	size_t nres = 0;
	for (size_t i = 0; i < core_ckpt_ntensors(ref); i++) {
		const struct core_tensor *t = core_ckpt_tensor(ref, i), *u = core_ckpt_find(conv, t->name);
		if (strstr(t->name, ".ffn.experts.")) { TU_CHECK(!u, "expert tensor %s in the resident pack", t->name); continue; }
		nres++;
		TU_CHECK(u && u->dtype == t->dtype && u->nbytes == t->nbytes && !memcmp(u->data, t->data, (size_t)t->nbytes),
			 "resident tensor %s differs after convert", t->name);
	}
	TU_CHECK(nres == core_ckpt_ntensors(conv) && nres == res.ntensors, "resident count %zu, converted %zu, reported %llu",
		 nres, core_ckpt_ntensors(conv), (unsigned long long)res.ntensors);

	t_bytes(ref, hf, 3, OFFLOAD_IO_URING, "bytes HF uring");
	t_bytes(ref, hf, 3, OFFLOAD_IO_PREAD, "bytes HF pread");
	t_bytes(ref, conv, 3, OFFLOAD_IO_URING, "bytes store uring");
	t_bytes(ref, conv, 3, OFFLOAD_IO_PREAD, "bytes store pread");
	int *used = NULL;
	t_logits(ref, hf, conv, &used);
	t_convert_refuse();
	core_ckpt_close(conv);
	if (used) t_faults(ref, used);
	free(used);
	core_ckpt_close(ref);
	core_ckpt_close(hf);
	free(g_tok);
	ot_rm_rf(dir);
	free(dir);
	TU_DONE();
}
