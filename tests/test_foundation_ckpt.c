/* tests/test_foundation_ckpt.c - the checkpoint reader and every loader check of
 * CHECKPOINT.md §7 (the negative tests of TINY.md §7), on two sources:
 *   - a synthetic TINY-CI checkpoint written by this test (always runs);
 *   - the golden tiny-a checkpoint, copied and patched (when ../shared exists).
 * Each case writes a corrupted copy into a temp dir, opens it and asserts the error
 * message names the file, the tensor and expected vs found, with the numbers
 * computed here from the in-memory checkpoint, not from the reader.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "foundation_ckw.h"
#include "testutil.h"

static const char *g_src;     /* "synthetic" or a golden dir */
static char *g_tinyci;
static char *g_tmp;
static int g_case;

static void load_src(struct ckw *c)
{
	int rc = strcmp(g_src, "synthetic") ? ckw_from_dir(c, g_src) : ckw_from_config(c, g_tinyci, 0);
	if (rc) { fprintf(stderr, "cannot load source %s\n", g_src); exit(1); }
}

static char *fresh_dir(void)
{
	static char p[4200];
	snprintf(p, sizeof p, "%s/case%d", g_tmp, g_case++);
	return p;
}

static int open_dir(const char *dir, int allow_extra, int full, int no_mmap, struct core_ckpt **ck, char *msg,
		    size_t n)
{
	struct core_ckpt_opts o = { .allow_extra = allow_extra, .full_scan = full, .no_mmap = no_mmap };
	struct nv_err e;
	core_err_clear(&e);
	*ck = NULL;
	int rc = core_ckpt_open(dir, &o, ck, &e);
	msg[0] = 0;
	if (rc) core_err_str(&e, msg, n);
	return rc;
}

/* Expect failure with every needle (printf-formatted, NULL-terminated list) in the message. */
static void expect_fail(const char *what, const char *dir, int allow_extra, int full, ...)
{
	struct core_ckpt *ck;
	char msg[4096];
	int rc = open_dir(dir, allow_extra, full, 0, &ck, msg, sizeof msg);
	TU_CHECK(rc != 0, "[%s] %s: opened, expected an error", g_src, what);
	if (!rc) { core_ckpt_close(ck); return; }
	va_list ap;
	va_start(ap, full);
	const char *fmt;
	while ((fmt = va_arg(ap, const char *))) {
		TU_CHECK(strstr(msg, fmt) != NULL, "[%s] %s: message\n    %s\n  lacks '%s'", g_src, what, msg, fmt);
	}
	va_end(ap);
	printf("  %-28s -> %s\n", what, msg);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	static char bufs[16][512];
	static int k;
	char *b = bufs[k++ % 16];
	va_list ap;
	va_start(ap, f);
	vsnprintf(b, 512, f, ap);
	va_end(ap);
	return b;
}

static const char *commas(uint64_t v)
{
	char tmp[32];
	char *b = fmt("%s", "");
	int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), o = 0;
	for (int i = 0; i < len; i++) {
		if (i && (len - i) % 3 == 0) b[o++] = ',';
		b[o++] = tmp[i];
	}
	b[o] = 0;
	return b;
}

static struct core_config cfg_of(const struct ckw *c)
{
	struct core_config cfg;
	struct nv_err e;
	CHECK(core_config_parse(c->config, strlen(c->config), "config.json", &cfg, &e) == 0);
	return cfg;
}

static const char *shard_of(const struct ckw *c, const char *name)
{
	char sn[64];
	struct ckw_tensor *t = ckw_find((struct ckw *)c, name);
	CHECK(t);
	return fmt("%s", ckw_shard_name(c, t->shard, sn, sizeof sn));
}

static off_t fsize(const char *p)
{
	struct stat st;
	return stat(p, &st) ? -1 : st.st_size;
}

/* ---- cases ---- */

static void case_valid(void)
{
	struct ckw c;
	load_src(&c);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	for (int variant = 0; variant < 2; variant++) {
		struct core_ckpt *ck;
		char msg[2048];
		int rc = open_dir(dir, 0, 1, variant, &ck, msg, sizeof msg);
		TU_CHECK(rc == 0, "[%s] valid checkpoint (no_mmap %d): %s", g_src, variant, msg);
		if (rc) continue;
		TU_CHECK(core_ckpt_ntensors(ck) == c.n, "[%s] %zu tensors, expected %zu", g_src, core_ckpt_ntensors(ck), c.n);
		TU_CHECK(core_ckpt_nwarnings(ck) == 0, "[%s] unexpected warning: %s", g_src, core_ckpt_warning(ck, 0));
		TU_CHECK(core_ckpt_nshards(ck) == c.nshards, "[%s] %d shards, expected %d", g_src, core_ckpt_nshards(ck),
			 c.nshards);
		TU_CHECK(!core_ckpt_has_store(ck), "has_store without a store file");
		unsigned char *buf = malloc(1 << 20);
		for (size_t i = 0; i < c.n; i++) {
			const struct core_tensor *t = core_ckpt_find(ck, c.t[i].name);
			TU_CHECK(t != NULL, "[%s] find(%s) failed", g_src, c.t[i].name);
			if (!t) continue;
			TU_CHECK(t->nbytes == c.t[i].nbytes && !strcmp(core_dtype_name(t->dtype), c.t[i].dtype),
				 "[%s] %s: %llu bytes %s, expected %llu %s", g_src, t->name, (unsigned long long)t->nbytes,
				 core_dtype_name(t->dtype), (unsigned long long)c.t[i].nbytes, c.t[i].dtype);
			if (variant == 0)
				TU_CHECK(t->data && !memcmp(t->data, c.t[i].data, c.t[i].nbytes), "[%s] %s: mmap data differs",
					 g_src, t->name);
			else
				TU_CHECK(t->data == NULL, "[%s] no_mmap but data set", g_src);
			size_t n = c.t[i].nbytes < (1u << 20) ? (size_t)c.t[i].nbytes : (1u << 20);
			struct nv_err e;
			TU_CHECK(core_ckpt_pread(ck, t, 0, buf, n, &e) == 0 && !memcmp(buf, c.t[i].data, n),
				 "[%s] %s: pread differs", g_src, t->name);
		}
		/* pread past the end is an error, not a crash */
		struct nv_err e;
		const struct core_tensor *t0 = core_ckpt_tensor(ck, 0);
		TU_CHECK(core_ckpt_pread(ck, t0, t0->nbytes, buf, 1, &e) == NV_ERANGE, "pread past end accepted");
		TU_CHECK(core_ckpt_find(ck, "layers.99.nothing") == NULL, "find of an absent name");
		free(buf);
		core_ckpt_close(ck);
	}
	/* No index: the plain *.safetensors files of the directory. */
	c.no_index = 1;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	struct core_ckpt *ck;
	char msg[2048];
	TU_CHECK(open_dir(dir, 0, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] without index: %s", g_src, msg);
	if (ck) TU_CHECK(core_ckpt_ntensors(ck) == c.n, "[%s] without index: %zu tensors", g_src, core_ckpt_ntensors(ck));
	core_ckpt_close(ck);
	/* Check 16: odd header length -> every multi-byte tensor is misaligned and copied. */
	c.no_index = 0;
	c.hdr_extra = 1;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	TU_CHECK(open_dir(dir, 0, 1, 0, &ck, msg, sizeof msg) == 0, "[%s] odd header length: %s", g_src, msg);
	size_t ncopied = 0;
	for (size_t i = 0; ck && i < c.n; i++) {
		const struct core_tensor *t = core_ckpt_find(ck, c.t[i].name);
		size_t es = core_dtype_size(t->dtype);
		TU_CHECK((uintptr_t)t->data % es == 0, "[%s] %s: data %p not aligned to %zu", g_src, t->name, t->data, es);
		TU_CHECK(!memcmp(t->data, c.t[i].data, c.t[i].nbytes), "[%s] %s: copied data differs", g_src, t->name);
		ncopied += es > 1;
	}
	TU_CHECK(ncopied > 0, "no multi-byte tensor in the misaligned case");
	core_ckpt_close(ck);
	ckw_free(&c);
}

static void case_missing(void)
{
	struct ckw c;
	load_src(&c);
	ckw_remove(&c, "layers.2.attn.compressor.ape");
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("missing tensor", dir, 0, 0, "checkpoint lacks 1 tensor required by the config",
		    "e.g. 'layers.2.attn.compressor.ape' (compress_ratios[2] = 128)", dir, NULL);
	ckw_free(&c);
}

static void case_dtype(void)
{
	struct ckw c;
	load_src(&c);
	struct ckw_tensor *t = ckw_find(&c, "layers.0.attn_norm.weight");
	strcpy(t->dtype, "F32");
	t->nbytes *= 2;
	t->data = realloc(t->data, t->nbytes);
	memset(t->data, 0, t->nbytes);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("wrong dtype", dir, 0, 0, shard_of(&c, t->name),
		    "'layers.0.attn_norm.weight': dtype F32, expected BF16", NULL);
	/* F16: a dtype the reader knows but this model does not use (check 12) */
	strcpy(t->dtype, "F16");
	t->nbytes /= 2;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("F16 for BF16", dir, 0, 0, "'layers.0.attn_norm.weight': dtype F16, expected BF16", NULL);
	/* F64: not a dtype of the format (check 7) */
	strcpy(t->dtype, "F64");
	t->nbytes = 1; /* the writer sizes by its own table; the reader stops at the dtype first */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("unsupported dtype", dir, 0, 0, shard_of(&c, t->name),
		    "tensor 'layers.0.attn_norm.weight': unsupported dtype 'F64'", NULL);
	ckw_free(&c);
}

static void case_shape(void)
{
	struct ckw c;
	load_src(&c);
	struct core_config cfg = cfg_of(&c);
	struct ckw_tensor *t = ckw_find(&c, "layers.2.attn.compressor.ape");
	/* the ratio-4 shape [4, 2*head_dim] on a ratio-128 block */
	t->shape[0] = 4;
	t->shape[1] = 2 * cfg.head_dim;
	t->nbytes = 4ull * 2 * cfg.head_dim * 4;
	t->data = realloc(t->data, t->nbytes);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("wrong shape", dir, 0, 0, shard_of(&c, t->name),
		    fmt("'layers.2.attn.compressor.ape': shape [4, %d], expected [128, %d] (compress_ratios[2] = 128)",
			2 * cfg.head_dim, cfg.head_dim), NULL);
	ckw_free(&c);
}

static void case_truncated(void)
{
	struct ckw c;
	load_src(&c);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	const char *sn = shard_of(&c, "layers.0.attn.wq_a.weight");
	char *p = fmt("%s/%s", dir, sn);
	off_t full = fsize(p);
	CHECK(truncate(p, full - 100) == 0);
	expect_fail("truncated shard", dir, 0, 0, p, fmt("file is %s bytes, header needs %s", commas((uint64_t)full - 100),
							  commas((uint64_t)full)), "truncated?", NULL);
	/* header length past the end of the file */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	p = fmt("%s/%s", dir, sn);
	full = fsize(p);
	int fd = open(p, O_WRONLY);
	unsigned char l8[8];
	for (int b = 0; b < 8; b++) l8[b] = (unsigned char)((uint64_t)full >> (8 * b));
	CHECK(pwrite(fd, l8, 8, 0) == 8 && close(fd) == 0);
	expect_fail("header length past EOF", dir, 0, 0, p,
		    fmt("header length %s exceeds file size %s", commas((uint64_t)full), commas((uint64_t)full)), NULL);
	/* a file shorter than the 8-byte length */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	p = fmt("%s/%s", dir, sn);
	CHECK(truncate(p, 5) == 0);
	expect_fail("5-byte shard", dir, 0, 0, p, "file is 5 bytes, too short", NULL);
	ckw_free(&c);
}

static void patch_byte(const char *path, off_t at, unsigned char v)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, &v, 1, at) == 1 && close(fd) == 0);
}

static void case_bad_json(void)
{
	struct ckw c;
	load_src(&c);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	const char *sn = shard_of(&c, "embed.weight");
	char *p = fmt("%s/%s", dir, sn);
	patch_byte(p, 8 + 1, '#'); /* {"__metadata__"... -> {#__metadata__ */
	expect_fail("bad JSON", dir, 0, 0, p, "header is not valid JSON", NULL);
	/* invalid UTF-8 in a name */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	p = fmt("%s/%s", dir, sn);
	patch_byte(p, 8 + 3, 0xC3); /* {"_\xC3metadata... : a lead byte followed by ASCII */
	expect_fail("bad UTF-8", dir, 0, 0, p, "not valid UTF-8", NULL);
	/* the index is not JSON */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	patch_byte(fmt("%s/model.safetensors.index.json", dir), 0, 'x');
	expect_fail("bad index JSON", dir, 0, 0, "model.safetensors.index.json", "not a valid JSON object", NULL);
	ckw_free(&c);
}

static void case_offsets(void)
{
	struct ckw c;
	load_src(&c);
	/* overlap: hc_ffn_fn takes the bytes of hc_attn_fn (same size, same shard) */
	struct ckw_tensor *a = ckw_find(&c, "layers.0.hc_attn_fn"), *b = ckw_find(&c, "layers.0.hc_ffn_fn");
	CHECK(a && b && a->nbytes == b->nbytes && a->shard == b->shard);
	uint64_t ao = ckw_offset_of(&c, a->name);
	b->ofs[0] = (int64_t)ao + 4;
	b->ofs[1] = (int64_t)(ao + 4 + b->nbytes);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("overlapping offsets", dir, 0, 0, shard_of(&c, a->name), "overlaps tensor", "'layers.0.hc_attn_fn'",
		    "'layers.0.hc_ffn_fn'", NULL);
	/* out of range: past the end of the data */
	b->ofs[0] = 1ll << 40;
	b->ofs[1] = (1ll << 40) + (int64_t)b->nbytes;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("out-of-range offsets", dir, 0, 0, shard_of(&c, a->name), "'layers.0.hc_ffn_fn' ends at data offset",
		    commas((1ull << 40) + b->nbytes), "truncated?", NULL);
	/* begin > end */
	b->ofs[0] = 100;
	b->ofs[1] = 50;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("begin > end", dir, 0, 0, "'layers.0.hc_ffn_fn': data_offsets [100, 50) has begin > end", NULL);
	/* range size does not match shape x dtype */
	b->ofs[0] = (int64_t)ao;
	b->ofs[1] = (int64_t)(ao + b->nbytes - 1);
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("range size", dir, 0, 0,
		    fmt("'layers.0.hc_ffn_fn': byte range [%llu, %llu) holds %s bytes, shape [%lld, %lld] x F32 needs %s",
			(unsigned long long)ao, (unsigned long long)(ao + b->nbytes - 1), commas(b->nbytes - 1),
			(long long)b->shape[0], (long long)b->shape[1], commas(b->nbytes)), NULL);
	ckw_free(&c);
}

static void case_duplicates(void)
{
	struct ckw c;
	load_src(&c);
	struct ckw_tensor *t = ckw_find(&c, "layers.0.attn.attn_sink");
	int64_t shape[4];
	memcpy(shape, t->shape, sizeof shape);
	int shard = t->shard;
	ckw_add(&c, "layers.0.attn.attn_sink", "F32", 1, shape, shard);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("duplicate in a header", dir, 0, 0, shard_of(&c, "layers.0.attn.attn_sink"),
		    "tensor 'layers.0.attn.attn_sink' appears twice in the header", NULL);
	ckw_free(&c);
	/* across shards: norm.weight also in the embed shard */
	load_src(&c);
	t = ckw_find(&c, "norm.weight");
	memcpy(shape, t->shape, sizeof shape);
	const char *home = shard_of(&c, "norm.weight"), *other = shard_of(&c, "embed.weight");
	CHECK(strcmp(home, other));
	ckw_add(&c, "norm.weight", "BF16", 1, shape, ckw_find(&c, "embed.weight")->shard);
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("duplicate across shards", dir, 0, 0, "tensor 'norm.weight' appears in", home, other, NULL);
	ckw_free(&c);
}

static void case_index(void)
{
	struct ckw c;
	load_src(&c);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	/* a shard named by the index is missing */
	int shard = ckw_find(&c, "layers.0.attn.wq_a.weight")->shard;
	size_t cnt = 0;
	for (size_t i = 0; i < c.n; i++) cnt += c.t[i].shard == shard;
	const char *sn = shard_of(&c, "layers.0.attn.wq_a.weight");
	CHECK(unlink(fmt("%s/%s", dir, sn)) == 0);
	expect_fail("index names a missing shard", dir, 0, 0,
		    fmt("shard %s (%zu tensors in the index) not found", sn, cnt), NULL);
	/* the index points at the wrong shard */
	c.idx_name = "layers.0.attn.wq_a.weight";
	c.idx_shard = (shard + 1) % c.nshards;
	char other[64];
	ckw_shard_name(&c, c.idx_shard, other, sizeof other);
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("index points at wrong shard", dir, 0, 0, "model.safetensors.index.json",
		    fmt("index maps 'layers.0.attn.wq_a.weight' to %s but it is not in that file (it is in %s)", other, sn),
		    NULL);
	c.idx_name = NULL;
	/* total_size wrong: a warning (check 13) */
	c.total_size = 12345;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	struct core_ckpt *ck;
	char msg[2048];
	uint64_t sum = 0;
	for (size_t i = 0; i < c.n; i++) sum += c.t[i].nbytes;
	TU_CHECK(open_dir(dir, 0, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] total_size mismatch must open: %s", g_src, msg);
	if (ck) {
		const char *w = core_ckpt_warning(ck, 0);
		TU_CHECK(core_ckpt_nwarnings(ck) == 1 && strstr(w, "total_size 12,345") && strstr(w, commas(sum)),
			 "[%s] total_size warning: %s (sum %llu)", g_src, w ? w : "(none)", (unsigned long long)sum);
	}
	core_ckpt_close(ck);
	/* no index, no shards */
	dir = fresh_dir();
	mkdir(dir, 0755);
	FILE *f = fopen(fmt("%s/config.json", dir), "w");
	fputs(c.config, f);
	fclose(f);
	expect_fail("no index, no shards", dir, 0, 0, "model.safetensors.index.json: not found in", dir, NULL);
	/* no config */
	dir = fresh_dir();
	mkdir(dir, 0755);
	expect_fail("no config.json", dir, 0, 0, fmt("%s/config.json", dir), "cannot open", NULL);
	ckw_free(&c);
}

static void case_tid2eid(void)
{
	struct ckw c;
	load_src(&c);
	struct core_config cfg = cfg_of(&c);
	struct ckw_tensor *t = ckw_find(&c, "layers.1.ffn.gate.tid2eid");
	int64_t k = t->shape[1], E = cfg.n_routed_experts;
	int64_t *v = (int64_t *)t->data;
	int64_t save = v[5 * k + 1];
	v[5 * k + 1] = E;
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("tid2eid id >= E", dir, 0, 0, shard_of(&c, t->name),
		    fmt("'layers.1.ffn.gate.tid2eid' row 5 has expert id %lld (n_routed_experts = %lld)", (long long)E,
			(long long)E), NULL);
	v[5 * k + 1] = save;
	/* duplicate ids within a row: a warning */
	v[7 * k + 1] = v[7 * k + 0];
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	struct core_ckpt *ck;
	char msg[2048];
	TU_CHECK(open_dir(dir, 0, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] tid2eid duplicate must open: %s", g_src, msg);
	if (ck) {
		const char *w = core_ckpt_warning(ck, 0);
		TU_CHECK(core_ckpt_nwarnings(ck) == 1 && strstr(w, "'layers.1.ffn.gate.tid2eid': 1 row repeat") &&
			 strstr(w, fmt("row 7 (id %lld twice)", (long long)v[7 * k])),
			 "[%s] tid2eid duplicate warning: %s", g_src, w ? w : "(none)");
	}
	core_ckpt_close(ck);
	ckw_free(&c);
}

static void case_scan(void)
{
	struct ckw c;
	load_src(&c);
	struct ckw_tensor *t = ckw_find(&c, "layers.3.attn.wq_b.scale");
	int64_t r = t->shape[0] - 1, col = t->shape[1] - 1;
	t->data[r * t->shape[1] + col] = 0xFF;
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	struct core_ckpt *ck;
	char msg[2048];
	TU_CHECK(open_dir(dir, 0, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] without full scan a NaN code passes: %s",
		 g_src, msg);
	core_ckpt_close(ck);
	expect_fail("E8M0 0xFF (full scan)", dir, 0, 1, shard_of(&c, t->name),
		    fmt("'layers.3.attn.wq_b.scale' holds NaN scale code 0xFF at [%lld, %lld]", (long long)r, (long long)col),
		    NULL);
	ckw_free(&c);
	/* E4M3 0x7F, F32 NaN, BF16 Inf */
	load_src(&c);
	t = ckw_find(&c, "layers.4.attn.wkv.weight");
	t->data[1 * t->shape[1] + 2] = 0xFF;
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("E4M3 NaN (full scan)", dir, 0, 1, "'layers.4.attn.wkv.weight' holds NaN code 0xFF at [1, 2]", NULL);
	ckw_free(&c);
	load_src(&c);
	t = ckw_find(&c, "layers.5.hc_ffn_base");
	uint32_t nan = 0x7FC00000u;
	memcpy(t->data + 3 * 4, &nan, 4);
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("F32 NaN (full scan)", dir, 0, 1, "'layers.5.hc_ffn_base' holds NaN at [3]", NULL);
	ckw_free(&c);
	load_src(&c);
	t = ckw_find(&c, "norm.weight");
	t->data[2 * 9] = 0x80;
	t->data[2 * 9 + 1] = 0xFF; /* bf16 0xFF80 = -Inf */
	dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("BF16 Inf (full scan)", dir, 0, 1, "'norm.weight' holds Inf at [9]", NULL);
	ckw_free(&c);
}

static void case_config(void)
{
	struct ckw c;
	load_src(&c);
	struct core_config cfg = cfg_of(&c);
	cJSON *root = cJSON_Parse(c.config);
	cJSON *cr = cJSON_GetObjectItem(root, "compress_ratios");
	cJSON_DeleteItemFromArray(cr, cJSON_GetArraySize(cr) - 1);
	free(c.config);
	c.config = cJSON_Print(root);
	cJSON_Delete(root);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("compress_ratios one short", dir, 0, 0, "config.json",
		    fmt("compress_ratios has %d entries, expected %d (%d layers + %d MTP)", cfg.n_compress_ratios - 1,
			cfg.n_compress_ratios, cfg.num_hidden_layers, cfg.num_nextn_predict_layers), NULL);
	ckw_free(&c);
}

static void case_extra(void)
{
	struct ckw c;
	load_src(&c);
	struct core_config cfg = cfg_of(&c);
	char nm[64];
	snprintf(nm, sizeof nm, "layers.%d.attn.wq_a.weight", cfg.num_hidden_layers);
	int64_t shape[2] = {128, 256};
	ckw_add(&c, nm, "F8_E4M3", 2, shape, 0);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("extra tensor", dir, 0, 0, shard_of(&c, nm),
		    fmt("checkpoint has 1 tensor this model does not use, e.g. '%s'", nm), "--allow-extra", NULL);
	struct core_ckpt *ck;
	char msg[2048];
	TU_CHECK(open_dir(dir, 1, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] --allow-extra must open: %s", g_src, msg);
	if (ck) {
		const char *w = core_ckpt_warning(ck, 0);
		TU_CHECK(core_ckpt_nwarnings(ck) == 1 && strstr(w, nm) && strstr(w, "1 tensor this model does not use"),
			 "[%s] extra-tensor warning: %s", g_src, w ? w : "(none)");
		TU_CHECK(core_ckpt_find(ck, nm) != NULL, "the extra tensor stays readable");
	}
	core_ckpt_close(ck);
	ckw_free(&c);
}

static void case_store(void)
{
	struct ckw c;
	load_src(&c);
	/* drop every routed-expert tensor from the shards */
	size_t o = 0, dropped = 0;
	for (size_t i = 0; i < c.n; i++) {
		if (strstr(c.t[i].name, ".ffn.experts.")) { free(c.t[i].data); dropped++; continue; }
		c.t[o++] = c.t[i];
	}
	c.n = o;
	struct core_config cfg = cfg_of(&c);
	size_t want = 6 * (size_t)cfg.n_routed_experts * (size_t)core_cfg_nblocks(&cfg);
	TU_CHECK(dropped == want, "[%s] %zu expert tensors, expected %zu", g_src, dropped, want);
	char *dir = fresh_dir();
	CHECK(ckw_write(&c, dir) == 0);
	expect_fail("experts absent, no store", dir, 0, 0, fmt("checkpoint lacks %zu tensors", want), NULL);
	FILE *f = fopen(fmt("%s/%s", dir, CORE_STORE_FILE), "w");
	fclose(f);
	struct core_ckpt *ck;
	char msg[2048];
	TU_CHECK(open_dir(dir, 0, 0, 0, &ck, msg, sizeof msg) == 0, "[%s] with an expert store: %s", g_src, msg);
	if (ck) TU_CHECK(core_ckpt_has_store(ck) == 1, "has_store not set");
	core_ckpt_close(ck);
	ckw_free(&c);
}

/* core_st_parse_header on hand-written headers (checks 5-9 of one file). */
static void st_case(const char *what, const char *json, uint64_t file_size, const char *needle)
{
	struct core_tensor *t;
	size_t n;
	char *arena, msg[1024];
	struct nv_err e;
	core_err_clear(&e);
	int rc = core_st_parse_header(json, strlen(json), file_size, "x.safetensors", &t, &n, &arena, &e);
	core_err_str(&e, msg, sizeof msg);
	if (!needle) {
		TU_CHECK(rc == 0, "header %s: %s", what, msg);
		if (!rc) { free(t); free(arena); }
		return;
	}
	TU_CHECK(rc != 0 && t == NULL && arena == NULL, "header %s: accepted", what);
	if (rc) TU_CHECK(strstr(msg, needle) != NULL, "header %s: message '%s' lacks '%s'", what, msg, needle);
	else { free(t); free(arena); }
}

static void header_cases(void)
{
	const char *ok = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"I32\",\"shape\":[2,3],"
			 "\"data_offsets\":[1,25]},\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}   ";
	uint64_t fs = 8 + strlen(ok) + 25;
	st_case("valid, out of order, padded", ok, fs, NULL);
	st_case("trailing bytes", ok, fs + 3, "header accounts for");
	st_case("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 100, "tensor 'a': missing 'data_offsets'");
	st_case("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 100, "tensor 'a': missing 'dtype'");
	st_case("shape not a list", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 100,
		"'shape' is a number, expected a list");
	st_case("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 100,
		"shape[0] is not a non-negative integer");
	st_case("fractional offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 100,
		"'data_offsets' must be two non-negative integers");
	st_case("three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 100,
		"'data_offsets' must be two non-negative integers");
	st_case("entry not an object", "{\"a\":[1,2]}", 100, "tensor 'a': entry is a list, expected an object");
	st_case("top level a list", "[1,2]                   ", 100, "header is a list, expected a JSON object");
	st_case("garbage after object", "{}x", 100, "header has data after the JSON object");
	st_case("5 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 100, "5 dimensions");
	st_case("header past file", "{}", 9, "exceeds file size");
	st_case("empty header object", "{}      ", 16, NULL);
	st_case("shape overflow", "{\"a\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
		1000, "needs more than");
}

static void run_all(void)
{
	printf("source: %s\n", g_src);
	case_valid();
	case_missing();
	case_dtype();
	case_shape();
	case_truncated();
	case_bad_json();
	case_offsets();
	case_duplicates();
	case_index();
	case_tid2eid();
	case_scan();
	case_config();
	case_extra();
	case_store();
}

int main(void)
{
	char p[1024];
	const char *d = getenv("NV_TESTDATA");
	snprintf(p, sizeof p, "%s/foundation/tiny-ci-config.json", d ? d : "tests/data");
	g_tinyci = tu_read_file(p, NULL);
	if (!g_tinyci) return 1;
	g_tmp = ckw_tmpdir();
	header_cases();
	g_src = "synthetic";
	run_all();
	const char *sh = tu_shared_dir();
	if (sh) {
		static char gd[1024];
		snprintf(gd, sizeof gd, "%s/golden/tiny-a/ckpt", sh);
		g_src = gd;
		run_all();
	} else {
		printf("note: ../shared absent, golden tiny-a cases skipped\n");
	}
	ckw_rmrf(g_tmp);
	free(g_tmp);
	free(g_tinyci);
	TU_DONE();
}
