/* offload/convert.c - HF checkpoint -> expert store + resident pack (contract in convert.h). */
#define _GNU_SOURCE
#include "convert.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "offload/store.h"

#define MARKER ".nvmoe-convert-partial"
#define INDEX_NAME "model.safetensors.index.json"

static const char *const g_copy_files[] = {
	"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "chat_template.jinja", "tokenizer.model",
};

struct conv {
	const struct offload_convert_opts *o;
	struct core_ckpt *ck;
	char *tmp;                 /* <out>.tmp-XXXXXX */
	uint64_t done, total, recs, nrecs;
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p) ? -1 : 0;
}

static void rm_rf(const char *p)
{
	nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void note(const struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct conv *c, const char *fmt, ...)
{
	if (!c->o->note) return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	c->o->note(c->o->arg, buf);
}

static int tick(struct conv *c, uint64_t bytes, struct nv_err *e)
{
	c->done += bytes;
	if (c->o->progress && c->o->progress(c->o->arg, c->done, c->total, c->recs, c->nrecs))
		return core_err_set(e, NV_ECANCELED, c->tmp, NULL, NULL, "conversion stopped by the user");
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int werr(struct nv_err *e, int rc, const char *path)
{
	return core_err_set(e, rc, path, NULL, rc == -ENOSPC ? "free disk space or choose another --out" : NULL,
			    "write failed: %s", strerror(-rc));
}

/* ---- NaN scan of copied bytes (CHECKPOINT.md §7 check 15) */

static int scan(const struct core_ckpt *ck, const struct core_tensor *t, const uint8_t *p, size_t n,
		uint64_t base, struct nv_err *e)
{
	size_t bad = (size_t)-1, esz = core_dtype_size(t->dtype);
	const char *what = NULL;
	switch (t->dtype) {
	case CORE_DT_F8_E8M0: {
		const uint8_t *f = memchr(p, 0xFF, n);
		if (f) { bad = (size_t)(f - p); what = "NaN scale code 0xFF"; }
		break;
	}
	case CORE_DT_F8_E4M3:
		for (size_t i = 0; i < n; i++)
			if ((p[i] & 0x7F) == 0x7F) { bad = i; what = "NaN code 0x7F/0xFF"; break; }
		break;
	case CORE_DT_BF16:
		for (size_t i = 0; i + 1 < n; i += 2)
			if (((p[i] | (unsigned)p[i + 1] << 8) & 0x7F80) == 0x7F80) { bad = i; what = "NaN or Inf"; break; }
		break;
	case CORE_DT_F32:
		for (size_t i = 0; i + 3 < n; i += 4) {
			uint32_t u = p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
			if ((u & 0x7F800000u) == 0x7F800000u) { bad = i; what = "NaN or Inf"; break; }
		}
		break;
	default:
		return 0;
	}
	if (bad == (size_t)-1) return 0;
	return core_err_set(e, NV_EINVAL, core_ckpt_shard_path(ck, t->shard), t->name,
			    "the source shard is damaged: re-download it",
			    "'%s' holds %s at element %llu (byte %llu of the tensor)", t->name, what,
			    (unsigned long long)((base + bad) / esz), (unsigned long long)(base + bad));
}

/* Tensor bytes: the mapped view, or a read into *tmp (grown as needed). */
static const uint8_t *tensor_data(const struct core_ckpt *ck, const struct core_tensor *t, uint8_t **tmp,
				  size_t *tmpn, struct nv_err *e)
{
	if (t->data) return t->data;
	if (*tmpn < t->nbytes) {
		uint8_t *p = realloc(*tmp, (size_t)t->nbytes);
		if (!p) { core_err_set(e, NV_ENOMEM, t->name, NULL, NULL, "out of memory"); return NULL; }
		*tmp = p;
		*tmpn = (size_t)t->nbytes;
	}
	if (core_ckpt_pread(ck, t, 0, *tmp, (size_t)t->nbytes, e)) return NULL;
	return *tmp;
}

/* ---- resident pack */

static int is_expert(const char *name) { return strstr(name, ".ffn.experts.") != NULL; }

static int cmp_res(const void *a, const void *b)
{
	const struct core_tensor *x = *(const struct core_tensor *const *)a, *y = *(const struct core_tensor *const *)b;
	size_t ex = core_dtype_size(x->dtype), ey = core_dtype_size(y->dtype);
	if (ex != ey) return ex > ey ? -1 : 1; /* largest element first: every tensor stays aligned */
	return strcmp(x->name, y->name);
}

static int write_shard(struct conv *c, const struct core_tensor **t, size_t n, const char *fname,
		       struct nv_err *e)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", c->tmp, fname);
	cJSON *h = cJSON_CreateObject();
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
		cJSON_AddStringToObject(o, "dtype", core_dtype_name(t[i]->dtype));
		for (int d = 0; d < t[i]->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i]->shape[d]));
		cJSON_AddItemToObject(o, "shape", sh);
		cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
		cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t[i]->nbytes)));
		cJSON_AddItemToObject(o, "data_offsets", of);
		cJSON_AddItemToObject(h, t[i]->name, o);
		off += t[i]->nbytes;
	}
	char *js = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	if (!js) return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	size_t jn = strlen(js), pn = (jn + 7) & ~(size_t)7;
	char *hdr = malloc(8 + pn);
	if (!hdr) { free(js); return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); }
	for (int k = 0; k < 8; k++) hdr[k] = (char)(((uint64_t)pn >> (8 * k)) & 0xFF);
	memcpy(hdr + 8, js, jn);
	memset(hdr + 8 + jn, ' ', pn - jn);
	free(js);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) { int err = errno; free(hdr); return core_err_set(e, -err, path, NULL, NULL, "cannot create: %s", strerror(err)); }
	int rc = write_all(fd, hdr, 8 + pn);
	free(hdr);
	if (rc) { close(fd); return werr(e, rc, path); }
	uint8_t *tmp = NULL;
	size_t tmpn = 0;
	const size_t CH = 64u << 20;
	for (size_t i = 0; i < n && !rc; i++) {
		const uint8_t *p = tensor_data(c->ck, t[i], &tmp, &tmpn, e);
		if (!p) { rc = e ? e->code : NV_EIO; break; }
		for (uint64_t o = 0; o < t[i]->nbytes && !rc; o += CH) {
			size_t k = (size_t)(t[i]->nbytes - o < CH ? t[i]->nbytes - o : CH);
			if ((rc = scan(c->ck, t[i], p + o, k, o, e))) break;
			if ((rc = write_all(fd, p + o, k))) { werr(e, rc, path); break; }
			rc = tick(c, k, e);
		}
	}
	free(tmp);
	if (!rc && fsync(fd)) rc = werr(e, -errno, path);
	close(fd);
	return rc;
}

static int write_resident(struct conv *c, const struct core_tensor **res, size_t nres,
			  struct offload_convert_result *out, struct nv_err *e)
{
	uint64_t lim = c->o->shard_bytes ? c->o->shard_bytes : (4ull << 30);
	qsort(res, nres, sizeof *res, cmp_res);
	/* cut into shards of at most lim bytes (a bigger tensor gets a shard of its own) */
	size_t *start = calloc(nres + 1, sizeof *start);
	if (!start) return core_err_set(e, NV_ENOMEM, c->tmp, NULL, NULL, "out of memory");
	size_t ns = 0;
	uint64_t acc = 0;
	for (size_t i = 0; i < nres; i++) {
		if (i == 0 || acc + res[i]->nbytes > lim) { start[ns++] = i; acc = 0; }
		acc += res[i]->nbytes;
	}
	start[ns] = nres;
	cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *wm = cJSON_CreateObject();
	uint64_t total = 0;
	int rc = 0;
	for (size_t s = 0; s < ns && !rc; s++) {
		char fname[64];
		snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, ns);
		for (size_t i = start[s]; i < start[s + 1]; i++) {
			cJSON_AddStringToObject(wm, res[i]->name, fname);
			total += res[i]->nbytes;
		}
		rc = write_shard(c, res + start[s], start[s + 1] - start[s], fname, e);
	}
	free(start);
	if (rc) { cJSON_Delete(root); cJSON_Delete(meta); cJSON_Delete(wm); return rc; }
	cJSON_AddNumberToObject(meta, "total_size", (double)total);
	cJSON_AddStringToObject(meta, "nvmoe_expert_store", CORE_STORE_FILE);
	cJSON_AddItemToObject(root, "metadata", meta);
	cJSON_AddItemToObject(root, "weight_map", wm);
	char *js = cJSON_Print(root);
	cJSON_Delete(root);
	if (!js) return core_err_set(e, NV_ENOMEM, c->tmp, NULL, NULL, "out of memory");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", c->tmp, INDEX_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) { int err = errno; free(js); return core_err_set(e, -err, path, NULL, NULL, "cannot create: %s", strerror(err)); }
	rc = write_all(fd, js, strlen(js));
	free(js);
	if (!rc && fsync(fd)) rc = -errno;
	close(fd);
	if (rc) return werr(e, rc, path);
	out->resident_bytes = total;
	out->ntensors = nres;
	out->nshards = ns;
	return 0;
}

/* ---- expert store */

static int write_store(struct conv *c, const struct offload_store_geom *g, struct offload_convert_result *out,
		       struct nv_err *e)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", c->tmp, CORE_STORE_FILE);
	struct offload_store_writer *w;
	int rc = offload_store_writer_create(path, g, &w, e);
	if (rc) return rc;
	uint8_t *tmp[OFFLOAD_NPARTS] = {0};
	size_t tmpn[OFFLOAD_NPARTS] = {0};
	for (int b = 0; b < g->nblocks && !rc; b++)
		for (int x = 0; x < g->nexperts && !rc; x++) {
			const uint8_t *parts[OFFLOAD_NPARTS];
			for (int p = 0; p < OFFLOAD_NPARTS && !rc; p++) {
				char nm[128];
				offload_expert_tensor_name(g, b, x, p, nm, sizeof nm);
				const struct core_tensor *t = core_ckpt_find(c->ck, nm);
				if (!t || t->nbytes != g->part_size[p]) {
					rc = core_err_set(e, NV_EFORMAT, core_ckpt_dir(c->ck), nm, NULL,
							  "routed-expert tensor %s", t ? "has the wrong size" : "not found");
					break;
				}
				parts[p] = tensor_data(c->ck, t, &tmp[p], &tmpn[p], e);
				if (!parts[p]) { rc = e ? e->code : NV_EIO; break; }
				rc = scan(c->ck, t, parts[p], (size_t)t->nbytes, 0, e);
			}
			if (!rc) rc = offload_store_writer_put(w, b, x, parts, e);
			if (!rc) {
				c->recs++;
				rc = tick(c, g->payload_size, e);
			}
		}
	for (int p = 0; p < OFFLOAD_NPARTS; p++) free(tmp[p]);
	if (!rc) rc = offload_store_writer_finish(w, e);
	offload_store_writer_destroy(w);
	if (!rc) out->store_bytes = g->file_size;
	return rc;
}

/* ---- files and directories */

static int copy_file(const char *src, const char *dst, int required, struct nv_err *e)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		if (!required && errno == ENOENT) return 0;
		int err = errno;
		return core_err_set(e, -err, src, NULL, NULL, "cannot open: %s", strerror(err));
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) { int err = errno; close(in); return core_err_set(e, -err, dst, NULL, NULL, "cannot create: %s", strerror(err)); }
	char buf[1 << 16];
	int rc = 0;
	for (;;) {
		ssize_t k = read(in, buf, sizeof buf);
		if (k < 0) { if (errno == EINTR) continue; rc = core_err_set(e, -errno, src, NULL, NULL, "read failed: %s", strerror(errno)); break; }
		if (k == 0) break;
		int w = write_all(out, buf, (size_t)k);
		if (w) { rc = werr(e, w, dst); break; }
	}
	if (!rc && fsync(out)) rc = werr(e, -errno, dst);
	close(in);
	close(out);
	return rc;
}

static void fsync_dir(const char *d)
{
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) { fsync(fd); close(fd); }
}

/* Remove <out>.tmp-* directories left by conversions whose writer is dead. */
static void clean_stale(const struct conv *c, const char *out)
{
	char parent[PATH_MAX], base[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", out);
	char *sl = strrchr(parent, '/');
	if (sl) { snprintf(base, sizeof base, "%s", sl + 1); if (sl == parent) sl[1] = 0; else *sl = 0; }
	else { snprintf(base, sizeof base, "%s", parent); snprintf(parent, sizeof parent, "."); }
	DIR *d = opendir(parent);
	if (!d) return;
	size_t bl = strlen(base);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, base, bl) || strncmp(de->d_name + bl, ".tmp-", 5)) continue;
		char p[PATH_MAX + 300], m[PATH_MAX + 330];
		snprintf(p, sizeof p, "%s/%s", parent, de->d_name);
		snprintf(m, sizeof m, "%s/%s", p, MARKER);
		FILE *f = fopen(m, "r");
		if (!f) continue; /* not ours */
		long pid = 0;
		int got = fscanf(f, "%ld", &pid);
		fclose(f);
		if (got == 1 && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue; /* still running */
		note(c, "removing %s, left by an interrupted conversion", p);
		rm_rf(p);
	}
	closedir(d);
}

int offload_convert(const char *src, const char *out, const struct offload_convert_opts *o,
		    struct offload_convert_result *res, struct nv_err *e)
{
	struct offload_convert_opts dflt = {0};
	struct offload_convert_result r0;
	if (!o) o = &dflt;
	if (!res) res = &r0;
	memset(res, 0, sizeof *res);
	struct conv c = { .o = o };
	struct stat st;
	char rsrc[PATH_MAX], rout[PATH_MAX];
	int out_exists = stat(out, &st) == 0;
	if (out_exists && !o->force)
		return core_err_set(e, NV_EINVAL, out, NULL, "pass --force to replace it, or choose another --out",
				    "output %s already exists", S_ISDIR(st.st_mode) ? "directory" : "file");
	if (!realpath(src, rsrc))
		return core_err_set(e, errno == ENOENT ? NV_EMISSING : -errno, src, NULL, NULL,
				    "cannot open the model directory: %s", strerror(errno));
	if (out_exists && realpath(out, rout)) {
		size_t l = strlen(rout);
		if (!strcmp(rsrc, rout) || (!strncmp(rsrc, rout, l) && rsrc[l] == '/'))
			return core_err_set(e, NV_EINVAL, out, NULL, "choose an --out outside the source",
					    "--out would replace the source checkpoint %s", src);
	}
	clean_stale(&c, out);

	struct core_ckpt_opts co = { .allow_extra = o->allow_extra };
	int rc = core_ckpt_open(src, &co, &c.ck, e);
	if (rc) return rc;
	if (core_ckpt_has_store(c.ck)) {
		core_ckpt_close(c.ck);
		return core_err_set(e, NV_EINVAL, src, NULL, "convert the original HF checkpoint instead",
				    "already converted (it holds %s)", CORE_STORE_FILE);
	}
	for (size_t i = 0; i < core_ckpt_nwarnings(c.ck); i++) note(&c, "warning: %s", core_ckpt_warning(c.ck, i));
	struct offload_store_geom g;
	if ((rc = offload_store_geom_from_config(core_ckpt_config(c.ck), &g, e))) goto done;
	size_t nt = core_ckpt_ntensors(c.ck), nres = 0;
	const struct core_tensor **resv = calloc(nt ? nt : 1, sizeof *resv);
	if (!resv) { rc = core_err_set(e, NV_ENOMEM, src, NULL, NULL, "out of memory"); goto done; }
	uint64_t resb = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct core_tensor *t = core_ckpt_tensor(c.ck, i);
		if (is_expert(t->name)) continue;
		resv[nres++] = t;
		resb += t->nbytes;
	}
	c.nrecs = (uint64_t)g.nblocks * (uint64_t)g.nexperts;
	c.total = resb + c.nrecs * g.payload_size;

	size_t ol = strlen(out);
	c.tmp = malloc(ol + 16);
	if (!c.tmp) { free(resv); rc = core_err_set(e, NV_ENOMEM, out, NULL, NULL, "out of memory"); goto done; }
	snprintf(c.tmp, ol + 16, "%s.tmp-XXXXXX", out);
	if (!mkdtemp(c.tmp)) {
		int err = errno;
		free(c.tmp);
		c.tmp = NULL;
		free(resv);
		rc = core_err_set(e, -err, out, NULL, "check that the parent directory exists and is writable",
				  "cannot create a temporary directory next to it: %s", strerror(err));
		goto done;
	}
	chmod(c.tmp, 0755);
	{
		char m[PATH_MAX];
		snprintf(m, sizeof m, "%s/%s", c.tmp, MARKER);
		FILE *f = fopen(m, "w");
		if (f) { fprintf(f, "%ld\n", (long)getpid()); fclose(f); }
	}
	rc = write_resident(&c, resv, nres, res, e);
	free(resv);
	if (rc) goto done;
	for (size_t i = 0; i < sizeof g_copy_files / sizeof g_copy_files[0] && !rc; i++) {
		char a[PATH_MAX], b[PATH_MAX];
		snprintf(a, sizeof a, "%s/%s", src, g_copy_files[i]);
		snprintf(b, sizeof b, "%s/%s", c.tmp, g_copy_files[i]);
		rc = copy_file(a, b, i == 0, e);
	}
	if (rc) goto done;
	/* The store last: its rename inside tmp marks the end of the data. */
	if ((rc = write_store(&c, &g, res, e))) goto done;
	res->nrecords = c.nrecs;
	{
		char m[PATH_MAX];
		snprintf(m, sizeof m, "%s/%s", c.tmp, MARKER);
		unlink(m);
	}
	fsync_dir(c.tmp);
	char old[PATH_MAX] = "";
	if (stat(out, &st) == 0) {
		if (!o->force) { rc = core_err_set(e, NV_EINVAL, out, NULL, "pass --force to replace it", "output appeared while converting"); goto done; }
		snprintf(old, sizeof old, "%s.old-%ld", out, (long)getpid());
		if (rename(out, old)) {
			int err = errno;
			rc = core_err_set(e, -err, out, NULL, NULL, "cannot move the old output aside: %s", strerror(err));
			old[0] = 0;
			goto done;
		}
	}
	if (rename(c.tmp, out)) {
		int err = errno;
		if (old[0]) rename(old, out);
		rc = core_err_set(e, -err, out, NULL, NULL, "cannot rename %s into place: %s", c.tmp, strerror(err));
		goto done;
	}
	free(c.tmp);
	c.tmp = NULL;
	if (old[0]) rm_rf(old);
	{
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", out);
		char *sl = strrchr(parent, '/');
		if (sl) { if (sl == parent) sl[1] = 0; else *sl = 0; } else snprintf(parent, sizeof parent, ".");
		fsync_dir(parent);
	}
done:
	if (c.tmp) { rm_rf(c.tmp); free(c.tmp); }
	core_ckpt_close(c.ck);
	return rc;
}
