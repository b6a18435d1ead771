/* core/ckpt.c - the checkpoint reader: index, shards, tensor lookup and the loader
 * checks of CHECKPOINT.md §7 (contract in ckpt.h).
 *
 * Open reads every header (one pread per shard), then checks in the order of the
 * table: 1-2 config, 3 index, 4 shards, 5-10 headers (safetensors.c) and their
 * agreement with the index, 11 name set, 12 dtypes and shapes, 13 total_size,
 * 14 tid2eid, 15 (optional) NaN scan.  Only tid2eid and the full scan read data.
 */
#define _GNU_SOURCE
#include "ckpt.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define INDEX_NAME "model.safetensors.index.json"
/* The release index is ~5 MB; anything past this is not an index. */
#define INDEX_MAX_BYTES (256u << 20)

struct shard {
	char *name;        /* as in the index (relative to dir) */
	char *path;        /* dir/name */
	int fd;            /* -1 when closed */
	uint64_t size;     /* file size */
	uint64_t hdr_len;  /* N */
	void *map;         /* whole file, read-only; NULL without mmap */
	int index_count;   /* tensors the index assigns to this shard */
	char *arena;       /* tensor names of this shard */
};

struct core_ckpt {
	char *dir;
	struct core_config cfg;
	struct shard *sh;
	int nsh;
	struct core_tensor *t;  /* [nt], shard by shard in header order */
	size_t nt;
	uint32_t *hash;         /* [hcap] 1-based index into t, 0 = empty */
	size_t hcap;
	void **copies;          /* aligned copies of misaligned tensors (check 16) */
	size_t ncopies;
	char **warn;
	size_t nwarn;
	int has_store;
	int have_index;
	double index_total;     /* metadata.total_size, < 0 when absent */
};

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d) memcpy(d, s, n);
	return d;
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (!p) return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static void warnf(struct core_ckpt *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct core_ckpt *ck, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	char **w = realloc(ck->warn, (ck->nwarn + 1) * sizeof *w);
	if (!w) return;
	ck->warn = w;
	char *s = xstrdup(buf);
	if (s) ck->warn[ck->nwarn++] = s;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		if (r == 0) return NV_EFORMAT;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static void fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim)
{
	size_t o = (size_t)snprintf(buf, n, "[");
	for (int d = 0; d < ndim && o < n; d++)
		o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d ? ", " : "", shape[d]);
	if (o < n) snprintf(buf + o, n - o, "]");
}

/* Thousands separators make the byte counts of messages readable. */
static const char *commas(char *buf, size_t n, uint64_t v)
{
	return core_fmt_count(buf, n, v);
}

/* ---- name hash ---- */

static size_t hslot(const struct core_ckpt *ck, const char *name, size_t len)
{
	return (size_t)XXH3_64bits(name, len) & (ck->hcap - 1);
}

static const struct core_tensor *lookup(const struct core_ckpt *ck, const char *name)
{
	if (!ck->hcap) return NULL;
	size_t s = hslot(ck, name, strlen(name));
	while (ck->hash[s]) {
		const struct core_tensor *t = &ck->t[ck->hash[s] - 1];
		if (!strcmp(t->name, name)) return t;
		s = (s + 1) & (ck->hcap - 1);
	}
	return NULL;
}

/* Check 10 across shards: a name in two files. */
static int build_hash(struct core_ckpt *ck, struct nv_err *e)
{
	ck->hcap = 16;
	while (ck->hcap < 2 * ck->nt) ck->hcap <<= 1;
	ck->hash = calloc(ck->hcap, sizeof *ck->hash);
	if (!ck->hash) return core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory");
	for (size_t i = 0; i < ck->nt; i++) {
		const char *nm = ck->t[i].name;
		size_t s = hslot(ck, nm, strlen(nm));
		while (ck->hash[s]) {
			const struct core_tensor *o = &ck->t[ck->hash[s] - 1];
			if (!strcmp(o->name, nm))
				return core_err_set(e, NV_EFORMAT, ck->sh[ck->t[i].shard].path, nm,
						    "remove the stray copy; each tensor must be in exactly one shard",
						    "tensor '%s' appears in %s and %s", nm, ck->sh[o->shard].name,
						    ck->sh[ck->t[i].shard].name);
			s = (s + 1) & (ck->hcap - 1);
		}
		ck->hash[s] = (uint32_t)(i + 1);
	}
	return 0;
}

/* ---- index (check 3) and shard list ---- */

static int add_shard(struct core_ckpt *ck, const char *name, int *out)
{
	for (int i = 0; i < ck->nsh; i++)
		if (!strcmp(ck->sh[i].name, name)) { *out = i; return 0; }
	struct shard *s = realloc(ck->sh, (size_t)(ck->nsh + 1) * sizeof *s);
	if (!s) return NV_ENOMEM;
	ck->sh = s;
	struct shard *n = &ck->sh[ck->nsh];
	memset(n, 0, sizeof *n);
	n->fd = -1;
	n->name = xstrdup(name);
	n->path = join(ck->dir, name);
	if (!n->name || !n->path) { free(n->name); free(n->path); return NV_ENOMEM; }
	*out = ck->nsh++;
	return 0;
}

/* Shard lookup by name for the 69k index entries: a tiny hash over ≤ a few
 * hundred shard names. */
struct shard_map { int *slot; size_t cap; };

static int shard_map_find(const struct core_ckpt *ck, const struct shard_map *m, const char *name)
{
	size_t s = (size_t)XXH3_64bits(name, strlen(name)) & (m->cap - 1);
	while (m->slot[s] >= 0) {
		if (!strcmp(ck->sh[m->slot[s]].name, name)) return m->slot[s];
		s = (s + 1) & (m->cap - 1);
	}
	return -1;
}

static void shard_map_put(const struct core_ckpt *ck, struct shard_map *m, int idx)
{
	size_t s = (size_t)XXH3_64bits(ck->sh[idx].name, strlen(ck->sh[idx].name)) & (m->cap - 1);
	while (m->slot[s] >= 0) s = (s + 1) & (m->cap - 1);
	m->slot[s] = idx;
}

static int valid_shard_name(const char *s)
{
	/* Relative to the model directory, no way out of it. */
	return *s && s[0] != '/' && !strstr(s, "..") && strlen(s) < 1024;
}

static int load_index(struct core_ckpt *ck, cJSON **out_map, struct nv_err *e)
{
	*out_map = NULL;
	char *path = join(ck->dir, INDEX_NAME);
	if (!path) return core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;
	char *buf = NULL;
	cJSON *root = NULL;
	if (fd < 0) {
		int err = errno;
		if (err != ENOENT) {
			rc = core_err_set(e, -err, path, NULL, NULL, "cannot open: %s", strerror(err));
			goto out;
		}
		/* No index: every *.safetensors of the directory, in name order. */
		struct dirent **list = NULL;
		int n = scandir(ck->dir, &list, NULL, alphasort);
		if (n < 0) {
			err = errno;
			rc = core_err_set(e, -err, ck->dir, NULL, NULL, "cannot list directory: %s", strerror(err));
			goto out;
		}
		for (int i = 0; i < n; i++) {
			const char *nm = list[i]->d_name;
			size_t l = strlen(nm);
			int idx;
			if (l > 12 && !strcmp(nm + l - 12, ".safetensors") && !rc && add_shard(ck, nm, &idx))
				rc = core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory");
			free(list[i]);
		}
		free(list);
		if (!rc && ck->nsh == 0)
			rc = core_err_set(e, NV_EMISSING, INDEX_NAME, NULL,
					  "point nvmoe at the directory holding the downloaded *.safetensors shards",
					  "not found in %s (and no *.safetensors files there)", ck->dir);
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) || st.st_size > INDEX_MAX_BYTES) {
		rc = core_err_set(e, NV_EFORMAT, path, NULL, NULL, "unreadable or larger than %u bytes", INDEX_MAX_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto out; }
	if ((rc = read_full(fd, buf, (size_t)st.st_size, 0))) {
		rc = core_err_set(e, rc, path, NULL, NULL, "read failed: %s", core_err_name(rc));
		goto out;
	}
	ck->have_index = 1;
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(buf, (size_t)st.st_size, &end, 0);
	if (!root || !cJSON_IsObject(root)) {
		rc = core_err_set(e, NV_EFORMAT, path, NULL, "re-download the index file",
				  "not a valid JSON object (parse error near byte %zu)",
				  root ? (size_t)0 : end ? (size_t)(end - buf) : 0);
		goto out;
	}
	cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(wm)) {
		rc = core_err_set(e, NV_EFORMAT, path, "weight_map", "re-download the index file",
				  wm ? "'weight_map' is not an object" : "missing 'weight_map'");
		goto out;
	}
	cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	cJSON *ts = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, "total_size") : NULL;
	ck->index_total = cJSON_IsNumber(ts) ? ts->valuedouble : -1;
	/* A directory written by `nvmoe convert` names its expert store (offload/convert.c). */
	cJSON *xs = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, "nvmoe_expert_store") : NULL;
	if (cJSON_IsString(xs) && !ck->has_store) {
		rc = core_err_set(e, NV_EMISSING, ck->dir, CORE_STORE_FILE,
				  "restore the file, or convert the HF checkpoint again (nvmoe convert MODEL --out DIR --force)",
				  "the expert store %s/%s is missing (this directory was written by nvmoe convert)",
				  ck->dir, CORE_STORE_FILE);
		goto out;
	}
	/* Distinct shard names, in first-seen order. */
	struct shard_map m = { NULL, 64 };
	m.slot = malloc(m.cap * sizeof *m.slot);
	if (!m.slot) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto out; }
	for (size_t i = 0; i < m.cap; i++) m.slot[i] = -1;
	cJSON *it;
	cJSON_ArrayForEach(it, wm) {
		if (!cJSON_IsString(it) || !valid_shard_name(it->valuestring)) {
			rc = core_err_set(e, NV_EFORMAT, path, it->string, "re-download the index file",
					  "weight_map['%s'] is not a shard file name in the model directory", it->string);
			break;
		}
		int idx = shard_map_find(ck, &m, it->valuestring);
		if (idx < 0) {
			if ((size_t)ck->nsh * 2 >= m.cap) {
				/* grow and rehash */
				free(m.slot);
				m.cap *= 4;
				m.slot = malloc(m.cap * sizeof *m.slot);
				if (!m.slot) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); break; }
				for (size_t k = 0; k < m.cap; k++) m.slot[k] = -1;
				for (int k = 0; k < ck->nsh; k++) shard_map_put(ck, &m, k);
			}
			if (add_shard(ck, it->valuestring, &idx)) {
				rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
				break;
			}
			shard_map_put(ck, &m, idx);
		}
		ck->sh[idx].index_count++;
		/* Keep the shard index beside the entry for check 10. */
		it->valueint = idx;
	}
	free(m.slot);
	if (!rc && ck->nsh == 0)
		rc = core_err_set(e, NV_EFORMAT, path, NULL, "re-download the index file", "'weight_map' is empty");
	if (!rc) {
		*out_map = root;
		root = NULL;
	}
out:
	if (fd >= 0) close(fd);
	free(buf);
	free(path);
	cJSON_Delete(root);
	return rc;
}

/* ---- shards: checks 4-10 ---- */

static int open_shard(struct core_ckpt *ck, int si, const struct core_ckpt_opts *o, struct core_tensor **tens,
		      size_t *nt, struct nv_err *e)
{
	struct shard *s = &ck->sh[si];
	s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		int err = errno;
		char what[64] = "";
		if (ck->have_index) snprintf(what, sizeof what, " (%d tensors in the index)", s->index_count);
		return core_err_set(e, err == ENOENT ? NV_EMISSING : -err, s->path, NULL,
				    err == ENOENT ? "the download is incomplete: fetch the missing shard" : NULL,
				    "shard %s%s %s", s->name, what, err == ENOENT ? "not found" : strerror(err));
	}
	struct stat st;
	if (fstat(s->fd, &st)) return core_err_set(e, -errno, s->path, NULL, NULL, "stat failed: %s", strerror(errno));
	if (!S_ISREG(st.st_mode)) return core_err_set(e, NV_EFORMAT, s->path, NULL, NULL, "not a regular file");
	s->size = (uint64_t)st.st_size;
	unsigned char len8[8];
	char sz[32], hn[32];
	if (s->size < 8)
		return core_err_set(e, NV_EFORMAT, s->path, NULL, "the file is damaged or incomplete: re-download it",
				    "file is %" PRIu64 " bytes, too short for a safetensors header", s->size);
	int rc = read_full(s->fd, len8, 8, 0);
	if (rc) return core_err_set(e, rc, s->path, NULL, NULL, "read failed: %s", core_err_name(rc));
	uint64_t n = 0;
	for (int k = 7; k >= 0; k--) n = n << 8 | len8[k];
	/* Check 5. */
	if (n < 2 || n > 100000000ull || n > s->size - 8) {
		const char *why = n > s->size - 8 ? "exceeds file size" : n < 2 ? "is below the minimum" : "exceeds the limit";
		uint64_t lim = n > s->size - 8 ? s->size : n < 2 ? 2 : 100000000ull;
		return core_err_set(e, NV_EFORMAT, s->path, NULL, "the file is damaged or incomplete: re-download it",
				    "header length %s %s %s", commas(hn, sizeof hn, n), why, commas(sz, sizeof sz, lim));
	}
	s->hdr_len = n;
	char *hdr = malloc((size_t)n);
	if (!hdr) return core_err_set(e, NV_ENOMEM, s->path, NULL, NULL, "out of memory for a %" PRIu64 "-byte header", n);
	rc = read_full(s->fd, hdr, (size_t)n, 8);
	if (rc) {
		free(hdr);
		return core_err_set(e, rc, s->path, NULL, NULL, "read failed: %s", core_err_name(rc));
	}
	rc = core_st_parse_header(hdr, (size_t)n, s->size, s->path, tens, nt, &s->arena, e);
	free(hdr);
	if (rc) return rc;
	for (size_t i = 0; i < *nt; i++) (*tens)[i].shard = si;
	if (!o->no_mmap && s->size) {
		void *m = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED)
			return core_err_set(e, -errno, s->path, NULL, "retry with headers only (no mmap)",
					    "mmap of %" PRIu64 " bytes failed: %s", s->size, strerror(errno));
		s->map = m;
#ifdef MADV_HUGEPAGE
		/* expert bytes stream through the FP4 kernels: where the kernel can back
		 * file pages with 2 MiB folios (large-folio page cache, read-only THP for
		 * files) this asks for them on the pages read from now on; refused or
		 * ignored elsewhere, which is fine (4 KiB pages) */
		madvise(m, (size_t)s->size, MADV_HUGEPAGE);
#endif
	}
	return 0;
}

/* Data pointers; check 16: a tensor not aligned to its element size gets a copy. */
static int bind_data(struct core_ckpt *ck, struct nv_err *e)
{
	for (size_t i = 0; i < ck->nt; i++) {
		struct core_tensor *t = &ck->t[i];
		const struct shard *s = &ck->sh[t->shard];
		if (!s->map) continue;
		const char *p = (const char *)s->map + t->file_offset;
		size_t esz = core_dtype_size(t->dtype);
		if (t->file_offset % esz == 0) { t->data = p; continue; }
		size_t n = (size_t)t->nbytes;
		void *c = aligned_alloc(64, (n + 63) & ~(size_t)63);
		void **cs = c ? realloc(ck->copies, (ck->ncopies + 1) * sizeof *cs) : NULL;
		if (!cs) {
			free(c);
			return core_err_set(e, NV_ENOMEM, s->path, t->name, NULL, "out of memory for an aligned copy");
		}
		ck->copies = cs;
		ck->copies[ck->ncopies++] = c;
		memcpy(c, p, n);
		t->data = c;
	}
	return 0;
}

/* Check 10: index and headers agree on the shard of every name. */
static int check_index(struct core_ckpt *ck, const cJSON *idx, struct nv_err *e)
{
	char *path = join(ck->dir, INDEX_NAME);
	unsigned char *seen = calloc(ck->nt ? ck->nt : 1, 1);
	int rc = 0;
	if (!seen || !path) { rc = core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory"); goto out; }
	const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map"), *it;
	cJSON_ArrayForEach(it, wm) {
		const char *nm = it->string;
		int si = it->valueint;
		const struct core_tensor *t = lookup(ck, nm);
		if (!t || t->shard != si) {
			char where[600] = "";
			if (t) snprintf(where, sizeof where, " (it is in %s)", ck->sh[t->shard].name);
			rc = core_err_set(e, NV_EFORMAT, path, nm, "the index and the shards come from different downloads",
					  "index maps '%s' to %s but it is not in that file%s", nm, ck->sh[si].name, where);
			goto out;
		}
		size_t ti = (size_t)(t - ck->t);
		if (seen[ti]) {
			rc = core_err_set(e, NV_EFORMAT, path, nm, "re-download the index file", "index lists '%s' twice", nm);
			goto out;
		}
		seen[ti] = 1;
	}
	for (size_t i = 0; i < ck->nt; i++)
		if (!seen[i]) {
			rc = core_err_set(e, NV_EFORMAT, ck->sh[ck->t[i].shard].path, ck->t[i].name,
					  "the index and the shards come from different downloads",
					  "tensor '%s' is in %s but the index does not list it", ck->t[i].name,
					  ck->sh[ck->t[i].shard].name);
			goto out;
		}
out:
	free(seen);
	free(path);
	return rc;
}

/* Why a family is (not) expected, for messages of checks 11-12. */
static void kind_note(const struct core_config *c, const struct core_tensor_spec *s, char *buf, size_t n)
{
	buf[0] = 0;
	if (s->block < 0) return;
	if (strstr(s->name, "compressor") || strstr(s->name, "indexer"))
		snprintf(buf, n, " (compress_ratios[%d] = %d)", s->block, c->compress_ratios[s->block]);
	else if (strstr(s->name, "tid2eid") || strstr(s->name, "gate.bias"))
		snprintf(buf, n, " (block %d is %s-routed, num_hash_layers = %d)", s->block,
			 core_cfg_is_hash(c, s->block) ? "hash" : "score", c->num_hash_layers);
}

/* Checks 11 and 12. */
static int check_set(struct core_ckpt *ck, const struct core_ckpt_opts *o, struct nv_err *e)
{
	struct core_tensor_spec *sp = NULL;
	size_t ns = 0;
	int rc = core_expected_tensors(&ck->cfg, &sp, &ns, e);
	if (rc) return rc;
	unsigned char *used = calloc(ck->nt ? ck->nt : 1, 1);
	if (!used) { free(sp); return core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory"); }
	size_t nmiss = 0, first_miss = 0;
	for (size_t i = 0; i < ns; i++) {
		const struct core_tensor *t = lookup(ck, sp[i].name);
		if (t) { used[t - ck->t] = 1; continue; }
		if (ck->has_store && sp[i].expert >= 0) continue; /* lives in the expert store */
		if (!nmiss++) first_miss = i;
	}
	if (nmiss) {
		char note[128];
		kind_note(&ck->cfg, &sp[first_miss], note, sizeof note);
		rc = core_err_set(e, NV_EMISSING, ck->dir, sp[first_miss].name,
				  "the download is incomplete, or config.json belongs to another model",
				  "checkpoint lacks %zu tensor%s required by the config, e.g. '%s'%s", nmiss,
				  nmiss == 1 ? "" : "s", sp[first_miss].name, note);
		goto out;
	}
	size_t nextra = 0, first_extra = 0;
	for (size_t i = 0; i < ck->nt; i++)
		if (!used[i] && !nextra++) first_extra = i;
	if (nextra) {
		const struct core_tensor *t = &ck->t[first_extra];
		if (!o->allow_extra) {
			rc = core_err_set(e, NV_EINVAL, ck->sh[t->shard].path, t->name,
					  "check that config.json belongs to these shards, or pass --allow-extra to ignore them",
					  "checkpoint has %zu tensor%s this model does not use, e.g. '%s'", nextra,
					  nextra == 1 ? "" : "s", t->name);
			goto out;
		}
		warnf(ck, "%s: checkpoint has %zu tensor%s this model does not use, e.g. '%s' (ignored: --allow-extra)",
		      ck->sh[t->shard].name, nextra, nextra == 1 ? "" : "s", t->name);
	}
	/* Check 12. */
	for (size_t i = 0; i < ns; i++) {
		const struct core_tensor *t = lookup(ck, sp[i].name);
		if (!t) continue;
		int same = t->dtype == sp[i].dtype && t->ndim == sp[i].ndim;
		for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == sp[i].shape[d];
		if (same) continue;
		char note[128], got[96], want[96];
		kind_note(&ck->cfg, &sp[i], note, sizeof note);
		const char *hint = "config.json does not match the shards (wrong config, or a damaged conversion)";
		if (t->dtype != sp[i].dtype)
			rc = core_err_set(e, NV_EINVAL, ck->sh[t->shard].path, t->name, hint, "'%s': dtype %s, expected %s%s",
					  t->name, core_dtype_name(t->dtype), core_dtype_name(sp[i].dtype), note);
		else {
			fmt_shape(got, sizeof got, t->shape, t->ndim);
			fmt_shape(want, sizeof want, sp[i].shape, sp[i].ndim);
			rc = core_err_set(e, NV_EINVAL, ck->sh[t->shard].path, t->name, hint, "'%s': shape %s, expected %s%s",
					  t->name, got, want, note);
		}
		goto out;
	}
out:
	free(used);
	free(sp);
	return rc;
}

/* Check 14: tid2eid ids in [0, E), distinct within a row (duplicates: warning). */
static int check_tid2eid(struct core_ckpt *ck, struct nv_err *e)
{
	const int E = ck->cfg.n_routed_experts;
	for (int b = 0; b < ck->cfg.num_hash_layers; b++) {
		char nm[64];
		snprintf(nm, sizeof nm, "layers.%d.ffn.gate.tid2eid", b);
		const struct core_tensor *t = lookup(ck, nm);
		if (!t || t->ndim != 2) continue; /* checks 11-12 already passed */
		int64_t rows = t->shape[0], k = t->shape[1];
		int64_t *v = malloc(t->nbytes ? (size_t)t->nbytes : 1);
		if (!v) return core_err_set(e, NV_ENOMEM, ck->sh[t->shard].path, nm, NULL, "out of memory");
		/* pread, not the map: faulting in a mapping costs more than a copy */
		int rc = core_ckpt_pread(ck, t, 0, v, (size_t)t->nbytes, e);
		if (rc) { free(v); return rc; }
		int64_t ndup = 0, dup_row = -1, dup_id = 0;
		for (int64_t r = 0; r < rows; r++) {
			const int64_t *row = v + r * k;
			for (int64_t j = 0; j < k; j++) {
				if (row[j] < 0 || row[j] >= E) {
					rc = core_err_set(e, NV_ERANGE, ck->sh[t->shard].path, nm,
							  "the routing table is damaged: re-download this shard",
							  "'%s' row %" PRId64 " has expert id %" PRId64 " (n_routed_experts = %d)",
							  nm, r, row[j], E);
					free(v);
					return rc;
				}
			}
			int dup = 0;
			for (int64_t j = 0; j < k && !dup; j++)
				for (int64_t l = j + 1; l < k; l++)
					if (row[j] == row[l]) { dup = 1; if (dup_row < 0) { dup_row = r; dup_id = row[j]; } break; }
			ndup += dup;
		}
		free(v);
		if (ndup)
			warnf(ck, "'%s': %" PRId64 " row%s repeat an expert id, e.g. row %" PRId64 " (id %" PRId64 " twice)",
			      nm, ndup, ndup == 1 ? "" : "s", dup_row, dup_id);
	}
	return 0;
}

/* Check 15: NaN codes in the small formats, NaN/Inf in the float ones. */
static int scan_chunk(const struct core_ckpt *ck, const struct core_tensor *t, const unsigned char *p, size_t n,
		      uint64_t base, struct nv_err *e)
{
	size_t esz = core_dtype_size(t->dtype), bad = (size_t)-1;
	const char *what = NULL;
	unsigned code = 0;
	switch (t->dtype) {
	case CORE_DT_F8_E8M0: {
		const unsigned char *f = memchr(p, 0xFF, n);
		if (f) { bad = (size_t)(f - p); what = "NaN scale code"; code = 0xFF; }
		break;
	}
	case CORE_DT_F8_E4M3:
		for (size_t i = 0; i < n; i++)
			if ((p[i] & 0x7F) == 0x7F) { bad = i; what = "NaN code"; code = p[i]; break; }
		break;
	case CORE_DT_BF16: case CORE_DT_F16: {
		unsigned m = t->dtype == CORE_DT_BF16 ? 0x7F80 : 0x7C00;
		for (size_t i = 0; i + 1 < n; i += 2) {
			unsigned h = p[i] | (unsigned)p[i + 1] << 8;
			if ((h & m) == m) { bad = i; what = (h & ~(m | 0x8000)) ? "NaN" : "Inf"; break; }
		}
		break;
	}
	case CORE_DT_F32:
		for (size_t i = 0; i + 3 < n; i += 4) {
			uint32_t u = p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
			if ((u & 0x7F800000u) == 0x7F800000u) { bad = i; what = (u & 0x7FFFFFu) ? "NaN" : "Inf"; break; }
		}
		break;
	default:
		return 0;
	}
	if (bad == (size_t)-1) return 0;
	uint64_t el = (base + bad) / esz;
	int64_t idx[CORE_MAX_DIMS];
	for (int d = t->ndim - 1; d >= 0; d--) {
		int64_t s = t->shape[d] ? t->shape[d] : 1;
		idx[d] = (int64_t)(el % (uint64_t)s);
		el /= (uint64_t)s;
	}
	char at[96];
	fmt_shape(at, sizeof at, idx, t->ndim);
	if (code)
		return core_err_set(e, NV_EINVAL, ck->sh[t->shard].path, t->name, "the shard is damaged: re-download it",
				    "'%s' holds %s 0x%02X at %s", t->name, what, code, at);
	return core_err_set(e, NV_EINVAL, ck->sh[t->shard].path, t->name, "the shard is damaged: re-download it",
			    "'%s' holds %s at %s", t->name, what, at);
}

/* pread in chunks rather than the map: page faults cost more than the copy,
 * and the scan must not leave 160 GB mapped-in behind it. */
static int full_scan(const struct core_ckpt *ck, struct nv_err *e)
{
	const size_t CH = 8u << 20;
	unsigned char *buf = malloc(CH);
	if (!buf) return core_err_set(e, NV_ENOMEM, ck->dir, NULL, NULL, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < ck->nt && !rc; i++) {
		const struct core_tensor *t = &ck->t[i];
		for (uint64_t off = 0; off < t->nbytes && !rc; off += CH) {
			size_t n = (size_t)(t->nbytes - off < CH ? t->nbytes - off : CH);
			rc = core_ckpt_pread(ck, t, off, buf, n, e);
			if (!rc) rc = scan_chunk(ck, t, buf, n, off, e);
		}
	}
	free(buf);
	return rc;
}

int core_ckpt_open(const char *dir, const struct core_ckpt_opts *opts, struct core_ckpt **out, struct nv_err *e)
{
	static const struct core_ckpt_opts dflt = {0};
	const struct core_ckpt_opts *o = opts ? opts : &dflt;
	*out = NULL;
	struct core_ckpt *ck = calloc(1, sizeof *ck);
	if (!ck) return core_err_set(e, NV_ENOMEM, dir, NULL, NULL, "out of memory");
	ck->index_total = -1;
	cJSON *idx = NULL;
	struct core_tensor **per = NULL;
	size_t *per_n = NULL;
	int rc;
	ck->dir = xstrdup(dir);
	if (!ck->dir) { rc = core_err_set(e, NV_ENOMEM, dir, NULL, NULL, "out of memory"); goto fail; }
	/* Checks 1-2. */
	if ((rc = core_config_load(dir, &ck->cfg, e))) goto fail;
	char *sp = join(dir, CORE_STORE_FILE);
	struct stat st;
	ck->has_store = sp && stat(sp, &st) == 0 && S_ISREG(st.st_mode);
	free(sp);
	/* Check 3. */
	if ((rc = load_index(ck, &idx, e))) goto fail;
	/* Checks 4-10 per file. */
	per = calloc((size_t)ck->nsh, sizeof *per);
	per_n = calloc((size_t)ck->nsh, sizeof *per_n);
	if (!per || !per_n) { rc = core_err_set(e, NV_ENOMEM, dir, NULL, NULL, "out of memory"); goto fail; }
	size_t total = 0;
	for (int i = 0; i < ck->nsh; i++) {
		if ((rc = open_shard(ck, i, o, &per[i], &per_n[i], e))) goto fail;
		total += per_n[i];
	}
	ck->t = malloc((total ? total : 1) * sizeof *ck->t);
	if (!ck->t) { rc = core_err_set(e, NV_ENOMEM, dir, NULL, NULL, "out of memory"); goto fail; }
	for (int i = 0; i < ck->nsh; i++) {
		memcpy(ck->t + ck->nt, per[i], per_n[i] * sizeof *ck->t);
		ck->nt += per_n[i];
	}
	/* Check 10 across files. */
	if ((rc = build_hash(ck, e))) goto fail;
	if (idx && (rc = check_index(ck, idx, e))) goto fail;
	if ((rc = bind_data(ck, e))) goto fail;
	/* Checks 11-12. */
	if ((rc = check_set(ck, o, e))) goto fail;
	/* Check 13 (warning). */
	if (ck->have_index && ck->index_total >= 0) {
		uint64_t sum = 0;
		for (size_t i = 0; i < ck->nt; i++) sum += ck->t[i].nbytes;
		if ((double)sum != ck->index_total) {
			char a[32], b[32];
			warnf(ck, "%s: index total_size %s != sum of tensor sizes %s", INDEX_NAME,
			      commas(a, sizeof a, (uint64_t)ck->index_total), commas(b, sizeof b, sum));
		}
	}
	/* Check 14, then 15 on request. */
	if ((rc = check_tid2eid(ck, e))) goto fail;
	if (o->full_scan && (rc = full_scan(ck, e))) goto fail;
	for (int i = 0; i < ck->nsh; i++) free(per[i]);
	free(per);
	free(per_n);
	cJSON_Delete(idx);
	*out = ck;
	return 0;
fail:
	if (per)
		for (int i = 0; i < ck->nsh; i++) free(per[i]);
	free(per);
	free(per_n);
	cJSON_Delete(idx);
	core_ckpt_close(ck);
	return rc;
}

void core_ckpt_close(struct core_ckpt *ck)
{
	if (!ck) return;
	for (int i = 0; i < ck->nsh; i++) {
		struct shard *s = &ck->sh[i];
		if (s->map) munmap(s->map, (size_t)s->size);
		if (s->fd >= 0) close(s->fd);
		free(s->name);
		free(s->path);
		free(s->arena);
	}
	for (size_t i = 0; i < ck->ncopies; i++) free(ck->copies[i]);
	for (size_t i = 0; i < ck->nwarn; i++) free(ck->warn[i]);
	free(ck->copies);
	free(ck->warn);
	free(ck->sh);
	free(ck->t);
	free(ck->hash);
	free(ck->dir);
	free(ck);
}

const char *core_ckpt_dir(const struct core_ckpt *ck) { return ck->dir; }
const struct core_config *core_ckpt_config(const struct core_ckpt *ck) { return &ck->cfg; }
size_t core_ckpt_ntensors(const struct core_ckpt *ck) { return ck->nt; }
const struct core_tensor *core_ckpt_tensor(const struct core_ckpt *ck, size_t i)
{
	return i < ck->nt ? &ck->t[i] : NULL;
}
const struct core_tensor *core_ckpt_find(const struct core_ckpt *ck, const char *name) { return lookup(ck, name); }
int core_ckpt_nshards(const struct core_ckpt *ck) { return ck->nsh; }
const char *core_ckpt_shard_path(const struct core_ckpt *ck, int shard)
{
	return shard >= 0 && shard < ck->nsh ? ck->sh[shard].path : NULL;
}
int core_ckpt_has_store(const struct core_ckpt *ck) { return ck->has_store; }
size_t core_ckpt_nwarnings(const struct core_ckpt *ck) { return ck->nwarn; }
const char *core_ckpt_warning(const struct core_ckpt *ck, size_t i) { return i < ck->nwarn ? ck->warn[i] : NULL; }

int core_ckpt_pread(const struct core_ckpt *ck, const struct core_tensor *t, uint64_t off, void *buf, size_t n,
		    struct nv_err *e)
{
	if (off > t->nbytes || n > t->nbytes - off)
		return core_err_set(e, NV_ERANGE, ck->sh[t->shard].path, t->name, NULL,
				    "read of %zu bytes at %" PRIu64 " past the tensor's %" PRIu64 " bytes", n, off, t->nbytes);
	int rc = read_full(ck->sh[t->shard].fd, buf, n, t->file_offset + off);
	if (rc == NV_EFORMAT)
		return core_err_set(e, rc, ck->sh[t->shard].path, t->name, "was the file changed while nvmoe ran?",
				    "unexpected end of file reading %zu bytes at offset %" PRIu64, n, t->file_offset + off);
	if (rc)
		return core_err_set(e, rc, ck->sh[t->shard].path, t->name, "check the drive (dmesg)",
				    "read of %zu bytes at offset %" PRIu64 " failed: %s", n, t->file_offset + off,
				    core_err_name(rc));
	return 0;
}
