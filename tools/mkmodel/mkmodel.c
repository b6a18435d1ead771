/* tools/mkmodel/mkmodel.c - writes a synthetic DeepSeek-V4-Flash checkpoint.
 *
 * The output is in the exact release format (CHECKPOINT.md §1-2): config.json (HF
 * keys), shards model-0000k-of-0000N.safetensors grouped as in the release (embed;
 * one per main block; head + norm + hc_head; one per MTP block), an index with
 * metadata.total_size and weight_map, and optionally the tokenizer files.  The tensor
 * set comes from core_expected_tensors(), the values from the TINY.md §5 generator
 * (gen.c).  Tensors are written in place with pwrite by a few worker threads, each
 * with ~8 MB of buffers, so a model of any size is written with little memory; with
 * --sparse the data is not written at all (the files are sized with ftruncate), which
 * gives a release-shaped checkpoint that costs no disk space.
 *
 * Shard layout: safetensors header = 8-byte little-endian length N, N bytes of compact
 * JSON ({"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}, no __metadata__)
 * padded with spaces to a multiple of 8, then the tensors contiguous, ordered as the
 * standard writer orders them: by dtype (I64, F32, BF16, E8M0, E4M3, I8: element size
 * descending, ties by dtype), then by name (byte order); the header lists them in that
 * order.  This reproduces the released shard sizes exactly.  config.json is written last,
 * so an interrupted run never looks like a model.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/config.h"
#include "core/err.h"
#include "gen.h"
#include "presets.h"

#define MK_PIECE (8u << 20) /* bytes of output per unit of parallel work */

struct opts {
	const char *preset, *config, *out, *tok_dir;
	uint64_t seed;
	int sparse, dry_run, quiet, threads;
	struct mk_overrides ov;
};

struct shard {
	char fname[64];
	int fd;
	const struct core_tensor_spec **t; /* tensors in file order */
	size_t n;
	char *hdr;        /* padded header JSON */
	uint64_t hdr_len; /* N */
	uint64_t data;    /* tensor bytes */
};

struct plan {
	struct core_config cfg;
	struct core_tensor_spec *specs;
	size_t n;
	int nshards;
	struct shard *sh;
	int *shard_of;     /* [n] */
	uint64_t *off;     /* [n] absolute offset of each tensor in its shard */
	uint64_t total;    /* tensor bytes */
	const struct core_tensor_spec **by_name; /* [n] sorted by name */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die_err(const struct nv_err *e)
{
	char buf[2048];
	fprintf(stderr, "mkmodel: error: %s\n", core_err_str(e, buf, sizeof buf));
	exit(1);
}

/* ---- planning ---- */

/* Rank of a dtype in the standard (Rust safetensors) writer's order: its Dtype enum,
 * descending.  That is element size descending, the 1-byte types as E8M0, E4M3, I8.
 * With it the headers, and so every shard's size, equal the release's byte for byte
 * (CHECKPOINT.md §1: 172,232-byte header of layer 0, 1,059,332,516-byte shard 45). */
static int dtype_rank(enum core_dtype t)
{
	switch (t) {
	case CORE_DT_U8: return 4;
	case CORE_DT_I8: return 5;
	case CORE_DT_F8_E4M3: return 7;
	case CORE_DT_F8_E8M0: return 8;
	case CORE_DT_F16: return 11;
	case CORE_DT_BF16: return 12;
	case CORE_DT_I32: return 13;
	case CORE_DT_F32: return 15;
	case CORE_DT_I64: return 17;
	default: return 0;
	}
}

static int cmp_file_order(const void *a, const void *b)
{
	const struct core_tensor_spec *x = *(const struct core_tensor_spec *const *)a;
	const struct core_tensor_spec *y = *(const struct core_tensor_spec *const *)b;
	int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
	if (rx != ry) return rx > ry ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
	const struct core_tensor_spec *x = *(const struct core_tensor_spec *const *)a;
	const struct core_tensor_spec *y = *(const struct core_tensor_spec *const *)b;
	return strcmp(x->name, y->name);
}

static const struct core_tensor_spec *find_spec(const struct plan *p, const char *name)
{
	struct core_tensor_spec key;
	snprintf(key.name, sizeof key.name, "%s", name);
	const struct core_tensor_spec *kp = &key;
	const struct core_tensor_spec **r = bsearch(&kp, p->by_name, p->n, sizeof *p->by_name, cmp_name);
	return r ? *r : NULL;
}

/* Header JSON of one shard, padded with spaces to a multiple of 8. */
static int build_header(struct plan *p, struct shard *s, struct nv_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) return core_err_set(e, NV_ENOMEM, s->fname, NULL, NULL, "out of memory");
	uint64_t off = 0;
	fputc('{', f);
	for (size_t i = 0; i < s->n; i++) {
		const struct core_tensor_spec *t = s->t[i];
		uint64_t nb = core_spec_nbytes(t);
		fprintf(f, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name,
			core_dtype_name(t->dtype));
		for (int d = 0; d < t->ndim; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)t->shape[d]);
		fprintf(f, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
			(unsigned long long)(off + nb));
		p->off[t - p->specs] = off; /* relative for now */
		off += nb;
	}
	fputc('}', f);
	while (ftell(f) % 8) fputc(' ', f);
	if (fclose(f)) {
		free(buf);
		return core_err_set(e, NV_ENOMEM, s->fname, NULL, NULL, "out of memory");
	}
	s->hdr = buf;
	s->hdr_len = len;
	s->data = off;
	for (size_t i = 0; i < s->n; i++) p->off[s->t[i] - p->specs] += 8 + len;
	return 0;
}

/* Shards as in the release: 1 = embed, 2..L+1 = main blocks, L+2 = head, norm and
 * hc_head, then one per MTP block. */
static int make_plan(struct plan *p, struct nv_err *e)
{
	int L = p->cfg.num_hidden_layers, nmtp = p->cfg.num_nextn_predict_layers;
	p->nshards = L + 2 + nmtp;
	p->sh = calloc((size_t)p->nshards, sizeof *p->sh);
	p->shard_of = calloc(p->n, sizeof *p->shard_of);
	p->off = calloc(p->n, sizeof *p->off);
	p->by_name = calloc(p->n, sizeof *p->by_name);
	if (!p->sh || !p->shard_of || !p->off || !p->by_name)
		return core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		const struct core_tensor_spec *t = &p->specs[i];
		int s;
		if (t->block < 0) s = strcmp(t->name, "embed.weight") ? L + 1 : 0;
		else if (t->block < L) s = 1 + t->block;
		else s = L + 2 + (t->block - L);
		if (s >= p->nshards)
			return core_err_set(e, NV_EINVAL, "mkmodel", t->name, NULL,
					    "block %d outside the %d blocks of the config", t->block, L + nmtp);
		p->shard_of[i] = s;
		p->sh[s].n++;
		p->by_name[i] = t;
		p->total += core_spec_nbytes(t);
	}
	qsort(p->by_name, p->n, sizeof *p->by_name, cmp_name);
	for (size_t i = 1; i < p->n; i++)
		if (!strcmp(p->by_name[i - 1]->name, p->by_name[i]->name))
			return core_err_set(e, NV_EINVAL, "core_expected_tensors", p->by_name[i]->name, NULL,
					    "tensor listed twice");
	for (int s = 0; s < p->nshards; s++) {
		struct shard *sh = &p->sh[s];
		snprintf(sh->fname, sizeof sh->fname, "model-%05d-of-%05d.safetensors", s + 1, p->nshards);
		sh->fd = -1;
		sh->t = calloc(sh->n ? sh->n : 1, sizeof *sh->t);
		if (!sh->t) return core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
		sh->n = 0;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct shard *sh = &p->sh[p->shard_of[i]];
		sh->t[sh->n++] = &p->specs[i];
	}
	for (int s = 0; s < p->nshards; s++) {
		struct shard *sh = &p->sh[s];
		qsort(sh->t, sh->n, sizeof *sh->t, cmp_file_order);
		int rc = build_header(p, sh, e);
		if (rc) return rc;
	}
	return 0;
}

static void free_plan(struct plan *p)
{
	for (int s = 0; p->sh && s < p->nshards; s++) {
		free(p->sh[s].t);
		free(p->sh[s].hdr);
		if (p->sh[s].fd >= 0) close(p->sh[s].fd);
	}
	free(p->sh);
	free(p->shard_of);
	free(p->off);
	free(p->by_name);
	free(p->specs);
}

/* One job per tensor (a quantised weight together with its scale) in file order,
 * then split into pieces of about MK_PIECE bytes. */
static int make_jobs(const struct plan *p, struct gen_job **out, size_t *nout, struct nv_err *e)
{
	struct gen_job *jobs = calloc(p->n, sizeof *jobs);
	char *paired = calloc(p->n, 1);
	size_t nj = 0;
	if (!jobs || !paired) {
		free(jobs);
		free(paired);
		return core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
	}
	int rc = 0;
	for (int s = 0; s < p->nshards && !rc; s++) {
		const struct shard *sh = &p->sh[s];
		for (size_t i = 0; i < sh->n && !rc; i++) {
			const struct core_tensor_spec *t = sh->t[i];
			if (t->dtype == CORE_DT_F8_E8M0) continue;
			struct gen_job *j = &jobs[nj++];
			j->t = t;
			j->fd = sh->fd;
			j->file = sh->fname;
			j->off = p->off[t - p->specs];
			if (t->dtype != CORE_DT_F8_E4M3 && t->dtype != CORE_DT_I8) continue;
			char sname[sizeof t->name];
			size_t ln = strlen(t->name);
			if (ln < 7 || strcmp(t->name + ln - 7, ".weight")) {
				rc = core_err_set(e, NV_EINVAL, sh->fname, t->name, NULL,
						  "a quantised tensor whose name does not end in .weight");
				break;
			}
			snprintf(sname, sizeof sname, "%.*s.scale", (int)(ln - 7), t->name);
			const struct core_tensor_spec *sc = find_spec(p, sname);
			if (!sc || p->shard_of[sc - p->specs] != s) {
				rc = core_err_set(e, NV_EINVAL, sh->fname, t->name, NULL,
						  "no scale tensor '%s' beside it", sname);
				break;
			}
			j->scale = sc;
			j->scale_off = p->off[sc - p->specs];
			paired[sc - p->specs] = 1;
		}
	}
	for (size_t i = 0; i < p->n && !rc; i++)
		if (p->specs[i].dtype == CORE_DT_F8_E8M0 && !paired[i])
			rc = core_err_set(e, NV_EINVAL, "mkmodel", p->specs[i].name, NULL,
					  "E8M0 scale without a quantised weight");
	free(paired);
	/* Large tensors in pieces, so that threads share them (and progress is smooth). */
	size_t np = 0;
	for (size_t i = 0; i < nj && !rc; i++) np += gen_split(&jobs[i], MK_PIECE, NULL);
	struct gen_job *pieces = rc ? NULL : calloc(np, sizeof *pieces);
	if (!rc && !pieces) rc = core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
	for (size_t i = 0, k = 0; i < nj && !rc; i++) k += gen_split(&jobs[i], MK_PIECE, pieces + k);
	free(jobs);
	if (rc) return rc;
	*out = pieces;
	*nout = np;
	return 0;
}

/* ---- writing ---- */

struct run {
	const struct gen_ctx *g;
	const struct plan *p;
	const struct gen_job *jobs;
	size_t njobs;
	size_t next;       /* atomic */
	uint64_t written;  /* atomic, bytes */
	int stop;          /* atomic */
	int finished;      /* atomic, workers done */
	pthread_mutex_t mu;
	int rc;
	struct nv_err err;
};

static void *worker(void *arg)
{
	struct run *r = arg;
	struct gen_work *w = NULL;
	struct nv_err e;
	core_err_clear(&e);
	int rc = gen_work_create(r->p->specs, r->p->n, &w, &e);
	while (!rc && !__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		size_t i = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);
		if (i >= r->njobs) break;
		rc = gen_run_job(r->g, &r->jobs[i], w, &r->written, &e);
	}
	gen_work_destroy(w);
	if (rc) {
		pthread_mutex_lock(&r->mu);
		if (!r->rc) {
			r->rc = rc;
			r->err = e;
		}
		pthread_mutex_unlock(&r->mu);
		__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&r->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void progress(uint64_t done, uint64_t total, double t0, int tty, int last)
{
	double dt = now_s() - t0, mb = (double)done / 1e6;
	fprintf(stderr, "%smkmodel: %.1f / %.1f MB (%.0f%%), %.1f s, %.1f MB/s%s", tty ? "\r" : "", mb,
		(double)total / 1e6, total ? 100.0 * (double)done / (double)total : 100.0, dt,
		dt > 0 ? mb / dt : 0.0, tty && !last ? "   " : "\n");
}

static int run_jobs(const struct gen_ctx *g, const struct plan *p, const struct gen_job *jobs,
		    size_t njobs, int nthreads, int quiet, struct nv_err *e)
{
	struct run r = {.g = g, .p = p, .jobs = jobs, .njobs = njobs};
	pthread_mutex_init(&r.mu, NULL);
	pthread_t th[64];
	if (nthreads > 64) nthreads = 64;
	int started = 0;
	for (; started < nthreads; started++)
		if (pthread_create(&th[started], NULL, worker, &r)) break;
	if (!started) return core_err_set(e, -EAGAIN, "mkmodel", NULL, NULL, "cannot start a thread");
	int tty = isatty(2);
	double t0 = now_s(), last = t0;
	/* Progress: the workers only bump counters; this thread reports. */
	while (__atomic_load_n(&r.finished, __ATOMIC_ACQUIRE) < started) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		double t = now_s();
		if (!quiet && t - last >= (tty ? 0.5 : 5.0)) {
			progress(__atomic_load_n(&r.written, __ATOMIC_RELAXED), p->total, t0, tty, 0);
			last = t;
		}
	}
	for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
	pthread_mutex_destroy(&r.mu);
	if (r.rc) {
		if (e) *e = r.err;
		return r.rc;
	}
	if (!quiet) progress(r.written, p->total, t0, tty, 1);
	return 0;
}

static int write_all(int fd, const void *buf, size_t n, uint64_t off, const char *file, struct nv_err *e)
{
	const char *b = buf;
	while (n) {
		ssize_t k = pwrite(fd, b, n, (off_t)off);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0)
			return core_err_set(e, k < 0 ? -errno : NV_EIO, file, NULL, "check free disk space",
					    "write failed: %s", k < 0 ? strerror(errno) : "short write");
		b += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int path_join(char *dst, size_t n, const char *dir, const char *name)
{
	return snprintf(dst, n, "%s/%s", dir, name) >= (int)n ? NV_EINVAL : 0;
}

static int write_text(const char *dir, const char *name, const char *text, struct nv_err *e)
{
	char path[4096], tmp[4200];
	if (path_join(path, sizeof path, dir, name))
		return core_err_set(e, NV_EINVAL, dir, name, NULL, "path too long");
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) return core_err_set(e, -errno, tmp, NULL, NULL, "cannot create: %s", strerror(errno));
	int rc = write_all(fd, text, strlen(text), 0, tmp, e);
	if (close(fd) && !rc) rc = core_err_set(e, -errno, tmp, NULL, NULL, "close failed: %s", strerror(errno));
	if (!rc && rename(tmp, path))
		rc = core_err_set(e, -errno, path, NULL, NULL, "rename failed: %s", strerror(errno));
	return rc;
}

static int copy_file(const char *src, const char *dir, const char *name, struct nv_err *e)
{
	FILE *f = fopen(src, "rb");
	if (!f) return core_err_set(e, -errno, src, NULL, NULL, "cannot open: %s", strerror(errno));
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[65536];
	size_t k;
	while (m && (k = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, k, m);
	int bad = ferror(f);
	fclose(f);
	if (m) fclose(m);
	if (!buf || bad) {
		free(buf);
		return core_err_set(e, NV_EIO, src, NULL, NULL, "read failed");
	}
	if (strlen(buf) != len) { /* binary content: not expected for these JSON files */
		free(buf);
		return core_err_set(e, NV_EINVAL, src, NULL, NULL, "holds NUL bytes; not a JSON file");
	}
	int rc = write_text(dir, name, buf, e);
	free(buf);
	return rc;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* tokenizer.json (tokenizer.json, else tokenizer.reconstructed.json of the
 * directory), tokenizer_config.json, generation_config.json. */
static int write_tokenizer(const char *tok_dir, const char *out, const struct core_config *c,
			   struct nv_err *e)
{
	char src[4096];
	int rc = 0;
	if (tok_dir) {
		path_join(src, sizeof src, tok_dir, "tokenizer.json");
		if (!file_exists(src)) path_join(src, sizeof src, tok_dir, "tokenizer.reconstructed.json");
		if (!file_exists(src))
			return core_err_set(e, NV_EMISSING, tok_dir, "tokenizer.json", NULL,
					    "neither tokenizer.json nor tokenizer.reconstructed.json found");
		rc = copy_file(src, out, "tokenizer.json", e);
		path_join(src, sizeof src, tok_dir, "tokenizer_config.json");
		if (!rc && file_exists(src)) rc = copy_file(src, out, "tokenizer_config.json", e);
		path_join(src, sizeof src, tok_dir, "generation_config.json");
		if (!rc && file_exists(src)) return copy_file(src, out, "generation_config.json", e);
		if (rc) return rc;
	}
	char gen[512];
	snprintf(gen, sizeof gen,
		 "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n"
		 "  \"do_sample\": true,\n  \"temperature\": 1.0,\n  \"top_p\": 1.0,\n"
		 "  \"transformers_version\": \"4.46.3\"\n}\n",
		 c->bos_token_id, c->eos_token_id);
	return write_text(out, "generation_config.json", gen, e);
}


/* Remove model-NNNNN-of-NNNNN.safetensors files of an earlier run with another N. */
static void remove_stale_shards(const char *out, const struct plan *p)
{
	DIR *d = opendir(out);
	if (!d) return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int a, b, len = 0;
		if (sscanf(de->d_name, "model-%5d-of-%5d.safetensors%n", &a, &b, &len) != 2 ||
		    len != (int)strlen(de->d_name) || b == p->nshards)
			continue;
		char path[4096];
		if (!path_join(path, sizeof path, out, de->d_name)) unlink(path);
	}
	closedir(d);
}

static int write_index(const char *out, const struct plan *p, struct nv_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) return core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
	fprintf(f, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {\n",
		(unsigned long long)p->total);
	for (size_t i = 0; i < p->n; i++) {
		const struct core_tensor_spec *t = p->by_name[i];
		fprintf(f, "    \"%s\": \"%s\"%s\n", t->name, p->sh[p->shard_of[t - p->specs]].fname,
			i + 1 < p->n ? "," : "");
	}
	fprintf(f, "  }\n}\n");
	fclose(f);
	int rc = buf ? write_text(out, "model.safetensors.index.json", buf, e)
		     : core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL, "out of memory");
	free(buf);
	return rc;
}

static int mkdir_p(const char *dir, struct nv_err *e)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
		return core_err_set(e, NV_EINVAL, dir, NULL, NULL, "path too long");
	for (char *q = tmp + 1; *q; q++) {
		if (*q != '/') continue;
		*q = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return core_err_set(e, -errno, tmp, NULL, NULL, "cannot create directory: %s",
					    strerror(errno));
		*q = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return core_err_set(e, -errno, tmp, NULL, NULL, "cannot create directory: %s", strerror(errno));
	return 0;
}

static int write_model(const struct opts *o, struct plan *p, const char *config_text, struct nv_err *e)
{
	int rc = mkdir_p(o->out, e);
	if (rc) return rc;
	uint64_t file_bytes = 0;
	for (int s = 0; s < p->nshards; s++) file_bytes += 8 + p->sh[s].hdr_len + p->sh[s].data;
	struct statvfs vfs;
	if (!o->sparse && statvfs(o->out, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < file_bytes)
		return core_err_set(e, NV_EFIT, o->out, NULL,
				    "free space, choose another --out, or use --sparse (no data, no disk)",
				    "needs %.2f GB, %.2f GB free", (double)file_bytes / 1e9,
				    (double)vfs.f_bavail * (double)vfs.f_frsize / 1e9);
	remove_stale_shards(o->out, p);
	/* A previous config.json would make a half-written directory look complete. */
	char path[4096];
	path_join(path, sizeof path, o->out, "config.json");
	unlink(path);
	for (int s = 0; s < p->nshards; s++) {
		struct shard *sh = &p->sh[s];
		if (path_join(path, sizeof path, o->out, sh->fname))
			return core_err_set(e, NV_EINVAL, o->out, NULL, NULL, "path too long");
		sh->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (sh->fd < 0) return core_err_set(e, -errno, path, NULL, NULL, "cannot create: %s", strerror(errno));
		uint8_t len8[8];
		for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(sh->hdr_len >> (8 * i));
		rc = write_all(sh->fd, len8, 8, 0, path, e);
		if (!rc) rc = write_all(sh->fd, sh->hdr, sh->hdr_len, 8, path, e);
		if (!rc && ftruncate(sh->fd, (off_t)(8 + sh->hdr_len + sh->data)))
			rc = core_err_set(e, -errno, path, NULL, "the file system must allow files this large",
					  "cannot size to %llu bytes: %s",
					  (unsigned long long)(8 + sh->hdr_len + sh->data), strerror(errno));
		if (rc) return rc;
	}
	if (!o->sparse) {
		struct gen_ctx g = {.seed = o->seed, .hidden = p->cfg.hidden_size, .hc_mult = p->cfg.hc_mult,
				    .n_experts = p->cfg.n_routed_experts};
		struct gen_job *jobs = NULL;
		size_t nj = 0;
		rc = make_jobs(p, &jobs, &nj, e);
		if (rc) return rc;
		rc = run_jobs(&g, p, jobs, nj, o->threads, o->quiet, e);
		free(jobs);
		if (rc) return rc;
	}
	for (int s = 0; s < p->nshards; s++) {
		struct shard *sh = &p->sh[s];
		int fd = sh->fd;
		sh->fd = -1;
		if (close(fd))
			return core_err_set(e, -errno, sh->fname, NULL, NULL, "close failed: %s", strerror(errno));
	}
	rc = write_index(o->out, p, e);
	if (!rc) rc = write_tokenizer(o->tok_dir, o->out, &p->cfg, e);
	if (!rc) rc = write_text(o->out, "config.json", config_text, e);
	return rc;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mkmodel (--preset NAME | --config FILE) --out DIR [options]\n"
		"Writes a checkpoint in the release format with TINY.md §5 synthetic weights.\n"
		"  --preset NAME        one of the presets below\n"
		"  --config FILE        any HF config.json instead of a preset\n"
		"  --out DIR            output directory (created)\n"
		"  --seed N             generator seed (default 0x5EED)\n"
		"  --layers N           main blocks (compress_ratios truncated, or extended with period 2;\n"
		"                       MTP entries kept last)\n"
		"  --experts E          routed experts (num_experts_per_tok capped at E)\n"
		"  --no-mtp             no MTP block\n"
		"  --set KEY=VALUE      override a config key (VALUE is JSON; KEY a.b for nested keys)\n"
		"  --sparse             headers only, data left as holes (no disk, no generation)\n"
		"  --tokenizer-dir DIR  copy tokenizer.json (or tokenizer.reconstructed.json),\n"
		"                       tokenizer_config.json and generation_config.json from DIR\n"
		"  --threads N          generator threads (default: cores, at most 8)\n"
		"  --dry-run            print the inventory and write nothing (--out not needed)\n"
		"  --print-config       print config.json and exit\n"
		"  --quiet              no progress\n"
		"presets:\n");
	for (int i = 0; mk_preset_names[i]; i++)
		fprintf(f, "  %-12s %s\n", mk_preset_names[i], mk_preset_help(mk_preset_names[i]));
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < lo || v > hi) return -1;
	*out = v;
	return 0;
}

enum { O_PRESET = 1000, O_CONFIG, O_OUT, O_SEED, O_LAYERS, O_EXPERTS, O_NO_MTP, O_SET, O_SPARSE,
       O_TOK, O_THREADS, O_DRY, O_PRINT, O_QUIET, O_HELP };

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"preset", required_argument, 0, O_PRESET}, {"config", required_argument, 0, O_CONFIG},
		{"out", required_argument, 0, O_OUT}, {"seed", required_argument, 0, O_SEED},
		{"layers", required_argument, 0, O_LAYERS}, {"experts", required_argument, 0, O_EXPERTS},
		{"no-mtp", no_argument, 0, O_NO_MTP}, {"set", required_argument, 0, O_SET},
		{"sparse", no_argument, 0, O_SPARSE}, {"tokenizer-dir", required_argument, 0, O_TOK},
		{"threads", required_argument, 0, O_THREADS}, {"dry-run", no_argument, 0, O_DRY},
		{"print-config", no_argument, 0, O_PRINT}, {"quiet", no_argument, 0, O_QUIET},
		{"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
	};
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct opts o = {.seed = GEN_DEFAULT_SEED, .ov = {.layers = -1, .experts = -1}};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o.threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
	int print_config = 0, c;
	long v;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_PRESET: o.preset = optarg; break;
		case O_CONFIG: o.config = optarg; break;
		case O_OUT: o.out = optarg; break;
		case O_SEED: {
			char *end;
			errno = 0;
			o.seed = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end) goto bad_value;
			break;
		}
		case O_LAYERS:
			if (parse_int(optarg, 1, CORE_MAX_BLOCKS - 1, &v)) goto bad_value;
			o.ov.layers = (int)v;
			break;
		case O_EXPERTS:
			if (parse_int(optarg, 1, 1 << 16, &v)) goto bad_value;
			o.ov.experts = (int)v;
			break;
		case O_NO_MTP: o.ov.no_mtp = 1; break;
		case O_SET:
			if (o.ov.nsets == MK_MAX_SETS) goto bad_value;
			o.ov.sets[o.ov.nsets++] = optarg;
			break;
		case O_SPARSE: o.sparse = 1; break;
		case O_TOK: o.tok_dir = optarg; break;
		case O_THREADS:
			if (parse_int(optarg, 1, 64, &v)) goto bad_value;
			o.threads = (int)v;
			break;
		case O_DRY: o.dry_run = 1; break;
		case O_PRINT: print_config = 1; break;
		case O_QUIET: o.quiet = 1; break;
		case 'h':
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		continue;
	bad_value:
		fprintf(stderr, "mkmodel: error: bad value '%s' for --%s\n", optarg, lo[c - O_PRESET].name);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "mkmodel: error: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!!o.preset == !!o.config) {
		fprintf(stderr, "mkmodel: error: give exactly one of --preset NAME and --config FILE\n");
		usage(stderr);
		return 2;
	}
	if (!o.out && !o.dry_run && !print_config) {
		fprintf(stderr, "mkmodel: error: --out DIR is required (or --dry-run)\n");
		return 2;
	}

	struct nv_err e;
	core_err_clear(&e);
	cJSON *root = NULL;
	if (mk_config_build(o.preset, o.config, &o.ov, &root, &e)) die_err(&e);
	char *text = mk_config_print(root);
	cJSON_Delete(root);
	if (!text) {
		fprintf(stderr, "mkmodel: error: out of memory\n");
		return 1;
	}
	if (print_config) {
		fputs(text, stdout);
		free(text);
		return 0;
	}
	struct plan p = {0};
	if (core_config_parse(text, strlen(text), "config.json", &p.cfg, &e)) die_err(&e);
	if (core_expected_tensors(&p.cfg, &p.specs, &p.n, &e)) die_err(&e);
	if (make_plan(&p, &e)) die_err(&e);

	uint64_t hdr = 0;
	for (int s = 0; s < p.nshards; s++) hdr += 8 + p.sh[s].hdr_len;
	printf("mkmodel: %s: %zu tensors, %llu tensor bytes (%.2f GB), %d shards, %llu header bytes\n",
	       o.preset ? o.preset : o.config, p.n, (unsigned long long)p.total, (double)p.total / 1e9,
	       p.nshards, (unsigned long long)hdr);
	fflush(stdout);
	if (o.dry_run) {
		for (int s = 0; s < p.nshards; s++)
			printf("  %s: %zu tensors, %llu bytes\n", p.sh[s].fname, p.sh[s].n,
			       (unsigned long long)(8 + p.sh[s].hdr_len + p.sh[s].data));
		free_plan(&p);
		free(text);
		return 0;
	}
	double t0 = now_s();
	if (write_model(&o, &p, text, &e)) die_err(&e);
	double dt = now_s() - t0;
	printf("mkmodel: wrote %s%s in %.2f s (%.1f MB/s of tensor data), seed 0x%llx\n", o.out,
	       o.sparse ? " (sparse: headers only)" : "", dt, o.sparse ? 0.0 : (double)p.total / 1e6 / dt,
	       (unsigned long long)o.seed);
	free_plan(&p);
	free(text);
	return 0;
}
