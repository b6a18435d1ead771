/* offload/store.c - expert store format, writer and reader (contract in store.h). */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine.h"

_Static_assert(sizeof(struct offload_rec_trailer) == 64, "trailer is 64 bytes");
_Static_assert(sizeof(struct offload_store_hdr) <= OFFLOAD_STORE_HDR, "header fits its page");
_Static_assert(sizeof(struct offload_store_index_ent) == 16, "index entry is 16 bytes");

const char *const offload_part_names[OFFLOAD_NPARTS] = {
	"w1.weight", "w1.scale", "w3.weight", "w3.scale", "w2.weight", "w2.scale",
};

static uint64_t up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int offload_store_geom_init(struct offload_store_geom *g, int nmain, int nblocks, int nexperts,
			    int hidden, int inter, struct nv_err *e)
{
	memset(g, 0, sizeof *g);
	if (nmain < 1 || nblocks < nmain || nexperts < 1 || hidden < 32 || inter < 32 ||
	    hidden % 32 || inter % 32 || (int64_t)nblocks * nexperts > (1 << 24))
		return core_err_set(e, NV_EINVAL, "expert store", "geometry", NULL,
				    "bad geometry: %d layers, %d blocks, %d experts, hidden %d, intermediate %d",
				    nmain, nblocks, nexperts, hidden, inter);
	g->nmain = nmain;
	g->nblocks = nblocks;
	g->nexperts = nexperts;
	g->hidden = hidden;
	g->inter = inter;
	uint64_t D = (uint64_t)hidden, F = (uint64_t)inter;
	g->part_size[OFFLOAD_W1] = F * D / 2;
	g->part_size[OFFLOAD_W1S] = F * D / 32;
	g->part_size[OFFLOAD_W3] = F * D / 2;
	g->part_size[OFFLOAD_W3S] = F * D / 32;
	g->part_size[OFFLOAD_W2] = D * F / 2;
	g->part_size[OFFLOAD_W2S] = D * F / 32;
	uint64_t o = 0;
	for (int p = 0; p < OFFLOAD_NPARTS; p++) {
		g->part_off[p] = o;
		o = up(o + g->part_size[p], 64);
	}
	g->payload_size = g->part_off[OFFLOAD_W2S] + g->part_size[OFFLOAD_W2S];
	g->trailer_off = up(g->payload_size, 64);
	g->record_size = up(g->trailer_off + sizeof(struct offload_rec_trailer), OFFLOAD_ALIGN);
	uint64_t nrec = (uint64_t)nblocks * (uint64_t)nexperts;
	g->index_off = OFFLOAD_STORE_HDR;
	g->index_size = nrec * sizeof(struct offload_store_index_ent);
	g->records_off = up(g->index_off + g->index_size, OFFLOAD_ALIGN);
	g->file_size = g->records_off + nrec * g->record_size;
	char canon[160];
	int n = snprintf(canon, sizeof canon, "nvmoe-store v%u layers=%d blocks=%d experts=%d hidden=%d inter=%d fp4-e2m1+e8m0/32",
			 OFFLOAD_STORE_VERSION, nmain, nblocks, nexperts, hidden, inter);
	g->digest = XXH64(canon, (size_t)n, 0);
	return 0;
}

int offload_store_geom_from_config(const struct core_config *c, struct offload_store_geom *g,
				   struct nv_err *e)
{
	return offload_store_geom_init(g, c->num_hidden_layers, core_cfg_nblocks(c), c->n_routed_experts,
				       c->hidden_size, c->moe_intermediate_size, e);
}

void offload_store_view_at(const void *base, const uint64_t off[OFFLOAD_NPARTS], struct core_expert_view *v)
{
	const uint8_t *b = base;
	v->w1 = b + off[OFFLOAD_W1];
	v->w1_scale = b + off[OFFLOAD_W1S];
	v->w3 = b + off[OFFLOAD_W3];
	v->w3_scale = b + off[OFFLOAD_W3S];
	v->w2 = b + off[OFFLOAD_W2];
	v->w2_scale = b + off[OFFLOAD_W2S];
}

void offload_store_view(const struct offload_store_geom *g, const void *record, struct core_expert_view *v)
{
	offload_store_view_at(record, g->part_off, v);
}

const char *offload_store_expert_name(const struct offload_store_geom *g, int block, int expert,
				      char *buf, size_t n)
{
	if (block < g->nmain) snprintf(buf, n, "layer %d expert %d", block, expert);
	else snprintf(buf, n, "MTP block %d (block %d) expert %d", block - g->nmain, block, expert);
	return buf;
}

const char *offload_expert_tensor_name(const struct offload_store_geom *g, int block, int expert,
				       int part, char *buf, size_t n)
{
	if (block < g->nmain)
		snprintf(buf, n, "layers.%d.ffn.experts.%d.%s", block, expert, offload_part_names[part]);
	else
		snprintf(buf, n, "mtp.%d.ffn.experts.%d.%s", block - g->nmain, expert, offload_part_names[part]);
	return buf;
}

/* ---------------------------------------------------------------- writer */

#define WB_CHUNK (64ull << 20) /* write-back granule of the writer */

struct offload_store_writer {
	struct offload_store_geom g;
	char *path, *part_path;
	int fd;
	uint8_t *rec;                       /* [record_size] assembly buffer */
	struct offload_store_index_ent *idx; /* [nrec] */
	uint8_t *written;                   /* [nrec] */
	uint64_t nwritten;
	uint64_t wait_from, kick_from, kick_to; /* write-back window (file offsets) */
	int finished;
};

int offload_store_writer_create(const char *path, const struct offload_store_geom *g,
				struct offload_store_writer **out, struct nv_err *e)
{
	*out = NULL;
	struct offload_store_writer *w = calloc(1, sizeof *w);
	uint64_t nrec = (uint64_t)g->nblocks * (uint64_t)g->nexperts;
	if (!w) return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	w->g = *g;
	w->fd = -1;
	w->wait_from = w->kick_from = w->kick_to = g->records_off;
	w->path = strdup(path);
	w->part_path = malloc(strlen(path) + 8);
	w->idx = calloc(nrec, sizeof *w->idx);
	w->written = calloc(nrec, 1);
	if (!w->path || !w->part_path || !w->idx || !w->written ||
	    posix_memalign((void **)&w->rec, OFFLOAD_ALIGN, g->record_size)) {
		offload_store_writer_destroy(w);
		return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	}
	sprintf(w->part_path, "%s.part", path);
	w->fd = open(w->part_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int err = errno;
		core_err_set(e, -err, w->part_path, NULL, "check that the output directory is writable",
			     "cannot create: %s", strerror(err));
		offload_store_writer_destroy(w);
		return -err;
	}
	/* Reserve the space up front: a full disk fails now, not after hours. */
	int rc = posix_fallocate(w->fd, 0, (off_t)g->file_size);
	if (rc && rc != EOPNOTSUPP && rc != EINVAL) {
		char gb[32];
		snprintf(gb, sizeof gb, "%.2f GB", (double)g->file_size / 1e9);
		core_err_set(e, -rc, w->part_path, NULL, "free disk space or choose another --out directory",
			     "cannot reserve %s for the expert store: %s", gb, strerror(rc));
		offload_store_writer_destroy(w);
		return -rc;
	}
	*out = w;
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		p += k; n -= (size_t)k; off += (uint64_t)k;
	}
	return 0;
}

int offload_store_writer_put(struct offload_store_writer *w, int block, int expert,
			     const uint8_t *const parts[OFFLOAD_NPARTS], struct nv_err *e)
{
	const struct offload_store_geom *g = &w->g;
	if (block < 0 || block >= g->nblocks || expert < 0 || expert >= g->nexperts)
		return core_err_set(e, NV_ERANGE, w->path, NULL, NULL, "block %d expert %d out of range", block, expert);
	uint64_t k = (uint64_t)block * (uint64_t)g->nexperts + (uint64_t)expert;
	memset(w->rec, 0, g->record_size);
	for (int p = 0; p < OFFLOAD_NPARTS; p++)
		memcpy(w->rec + g->part_off[p], parts[p], g->part_size[p]);
	struct offload_rec_trailer t;
	memset(&t, 0, sizeof t);
	memcpy(t.magic, OFFLOAD_REC_MAGIC, 8);
	t.block = (uint32_t)block;
	t.expert = (uint32_t)expert;
	t.xxh64 = XXH64(w->rec, g->payload_size, 0);
	memcpy(w->rec + g->trailer_off, &t, sizeof t);
	uint64_t off = g->records_off + k * g->record_size;
	int rc = full_pwrite(w->fd, w->rec, g->record_size, off);
	if (rc) {
		char nm[96];
		return core_err_set(e, rc, w->part_path, offload_store_expert_name(g, block, expert, nm, sizeof nm),
				    rc == -ENOSPC ? "free disk space" : NULL,
				    "write of %llu bytes at offset %llu failed: %s",
				    (unsigned long long)g->record_size, (unsigned long long)off, strerror(-rc));
	}
	w->idx[k].offset = off;
	w->idx[k].xxh64 = t.xxh64;
	if (!w->written[k]) w->nwritten++;
	w->written[k] = 1;
	/* Keep dirty and cached pages bounded (the store can be 150 GB): start
	 * write-back every WB_CHUNK bytes, and once the previous chunk is on disk
	 * drop its pages.  Records arrive in file order from the converter. */
	uint64_t end = off + g->record_size;
	if (off != w->kick_to) { /* out of order: just kick this record */
		sync_file_range(w->fd, (off_t)off, (off_t)g->record_size, SYNC_FILE_RANGE_WRITE);
	} else if (end - w->kick_from >= WB_CHUNK) {
		sync_file_range(w->fd, (off_t)w->kick_from, (off_t)(end - w->kick_from), SYNC_FILE_RANGE_WRITE);
		if (w->kick_from > w->wait_from) {
			sync_file_range(w->fd, (off_t)w->wait_from, (off_t)(w->kick_from - w->wait_from),
					SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
			posix_fadvise(w->fd, (off_t)w->wait_from, (off_t)(w->kick_from - w->wait_from), POSIX_FADV_DONTNEED);
		}
		w->wait_from = w->kick_from;
		w->kick_from = end;
	}
	w->kick_to = end;
	return 0;
}

static void fill_header(const struct offload_store_geom *g, const void *index, struct offload_store_hdr *h)
{
	memset(h, 0, sizeof *h);
	memcpy(h->magic, OFFLOAD_STORE_MAGIC, 8);
	h->version = OFFLOAD_STORE_VERSION;
	h->header_size = OFFLOAD_STORE_HDR;
	h->nmain = (uint32_t)g->nmain;
	h->nblocks = (uint32_t)g->nblocks;
	h->nexperts = (uint32_t)g->nexperts;
	h->hidden = (uint32_t)g->hidden;
	h->inter = (uint32_t)g->inter;
	h->digest = g->digest;
	h->record_size = g->record_size;
	h->payload_size = g->payload_size;
	h->trailer_off = g->trailer_off;
	memcpy(h->part_off, g->part_off, sizeof h->part_off);
	memcpy(h->part_size, g->part_size, sizeof h->part_size);
	h->index_off = g->index_off;
	h->index_size = g->index_size;
	h->records_off = g->records_off;
	h->file_size = g->file_size;
	h->index_xxh64 = XXH64(index, g->index_size, 0);
	h->header_xxh64 = XXH64(h, offsetof(struct offload_store_hdr, header_xxh64), 0);
}

int offload_store_writer_finish(struct offload_store_writer *w, struct nv_err *e)
{
	const struct offload_store_geom *g = &w->g;
	uint64_t nrec = (uint64_t)g->nblocks * (uint64_t)g->nexperts;
	if (w->nwritten != nrec) {
		uint64_t k = 0;
		while (k < nrec && w->written[k]) k++;
		char nm[96];
		return core_err_set(e, NV_EMISSING, w->part_path,
				    offload_store_expert_name(g, (int)(k / (uint64_t)g->nexperts), (int)(k % (uint64_t)g->nexperts), nm, sizeof nm),
				    "internal: the converter skipped a record",
				    "%llu of %llu records written; this one is missing",
				    (unsigned long long)w->nwritten, (unsigned long long)nrec);
	}
	int rc = full_pwrite(w->fd, w->idx, g->index_size, g->index_off);
	if (rc == 0 && ftruncate(w->fd, (off_t)g->file_size) != 0) rc = -errno;
	if (rc == 0 && fdatasync(w->fd) != 0) rc = -errno;
	if (rc == 0) {
		/* The header goes last: until it is on disk the file has no magic. */
		uint8_t *page = calloc(1, OFFLOAD_STORE_HDR);
		if (!page) return core_err_set(e, NV_ENOMEM, w->part_path, NULL, NULL, "out of memory");
		fill_header(g, w->idx, (struct offload_store_hdr *)page);
		rc = full_pwrite(w->fd, page, OFFLOAD_STORE_HDR, 0);
		free(page);
	}
	if (rc == 0 && fsync(w->fd) != 0) rc = -errno;
	if (rc)
		return core_err_set(e, rc, w->part_path, "index and header", rc == -ENOSPC ? "free disk space" : NULL,
				    "cannot finish the store: %s", strerror(-rc));
	close(w->fd);
	w->fd = -1;
	if (rename(w->part_path, w->path) != 0) {
		int err = errno;
		return core_err_set(e, -err, w->path, NULL, NULL, "cannot rename %s: %s", w->part_path, strerror(err));
	}
	w->finished = 1;
	return 0;
}

void offload_store_writer_destroy(struct offload_store_writer *w)
{
	if (!w) return;
	if (w->fd >= 0) close(w->fd);
	if (!w->finished && w->part_path) unlink(w->part_path);
	free(w->path);
	free(w->part_path);
	free(w->rec);
	free(w->idx);
	free(w->written);
	free(w);
}

/* ---------------------------------------------------------------- reader */

struct offload_store {
	struct offload_store_geom g;
	char *path;
	struct offload_store_index_ent *idx; /* [nrec] */
};

static int full_pread(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, p + got, n - got, (off_t)(off + got));
		if (k < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		if (k == 0) break;
		got += (size_t)k;
	}
	return (int)(got == n ? 0 : 1);
}

#define HINT_RECONVERT "the store is damaged or incomplete: re-run `nvmoe convert` (with --force) from the HF checkpoint"

int offload_store_open(const char *path, const struct offload_store_geom *expect,
		       struct offload_store **out, struct nv_err *e)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return core_err_set(e, err == ENOENT ? NV_EMISSING : -err, path, NULL,
				    err == ENOENT ? "run `nvmoe convert MODEL --out DIR` to create it, or use the HF checkpoint directory" : NULL,
				    "cannot open the expert store: %s", strerror(err));
	}
	struct stat st;
	int rc = 0;
	struct offload_store *s = NULL;
	uint8_t page[OFFLOAD_STORE_HDR];
	struct offload_store_hdr h;
	if (fstat(fd, &st) != 0) { rc = core_err_set(e, -errno, path, NULL, NULL, "fstat: %s", strerror(errno)); goto done; }
	if ((uint64_t)st.st_size < OFFLOAD_STORE_HDR) {
		rc = core_err_set(e, NV_EFORMAT, path, "header", HINT_RECONVERT,
				  "file is %lld bytes, smaller than the %u-byte header (truncated?)",
				  (long long)st.st_size, OFFLOAD_STORE_HDR);
		goto done;
	}
	int k = full_pread(fd, page, sizeof page, 0);
	if (k) { rc = core_err_set(e, k < 0 ? k : NV_EIO, path, "header", NULL, "cannot read the header: %s", k < 0 ? strerror(-k) : "short read"); goto done; }
	memcpy(&h, page, sizeof h);
	if (memcmp(h.magic, OFFLOAD_STORE_MAGIC, 8)) {
		rc = core_err_set(e, NV_EFORMAT, path, "header", HINT_RECONVERT,
				  "bad magic (expected \"%s\"): not an nvmoe expert store, or an unfinished one",
				  OFFLOAD_STORE_MAGIC);
		goto done;
	}
	if (h.version != OFFLOAD_STORE_VERSION) {
		rc = core_err_set(e, NV_EUNSUPPORTED, path, "header", "re-run `nvmoe convert` with this nvmoe",
				  "store format version %u, this build reads version %u", h.version, OFFLOAD_STORE_VERSION);
		goto done;
	}
	uint64_t hx = XXH64(&h, offsetof(struct offload_store_hdr, header_xxh64), 0);
	if (hx != h.header_xxh64) {
		rc = core_err_set(e, NV_ECHECKSUM, path, "header", HINT_RECONVERT,
				  "header checksum %016llx, stored %016llx", (unsigned long long)hx,
				  (unsigned long long)h.header_xxh64);
		goto done;
	}
	s = calloc(1, sizeof *s);
	if (!s) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto done; }
	struct nv_err ge;
	if (offload_store_geom_init(&s->g, (int)h.nmain, (int)h.nblocks, (int)h.nexperts, (int)h.hidden, (int)h.inter, &ge)) {
		rc = core_err_set(e, NV_EFORMAT, path, "header", HINT_RECONVERT, "%s", ge.why);
		goto done;
	}
	const struct offload_store_geom *g = &s->g;
	if (h.record_size != g->record_size || h.payload_size != g->payload_size || h.trailer_off != g->trailer_off ||
	    memcmp(h.part_off, g->part_off, sizeof h.part_off) || memcmp(h.part_size, g->part_size, sizeof h.part_size) ||
	    h.index_off != g->index_off || h.index_size != g->index_size || h.records_off != g->records_off ||
	    h.file_size != g->file_size || h.digest != g->digest || h.header_size != OFFLOAD_STORE_HDR) {
		rc = core_err_set(e, NV_EFORMAT, path, "header", HINT_RECONVERT,
				  "layout fields disagree with the geometry they describe (record size %llu, expected %llu)",
				  (unsigned long long)h.record_size, (unsigned long long)g->record_size);
		goto done;
	}
	if (expect && expect->digest != g->digest) {
		rc = core_err_set(e, NV_EFORMAT, path, "config digest",
				  "the store was converted from a different model: re-run `nvmoe convert` for this config.json",
				  "store geometry %d layers + %d MTP x %d experts, hidden %d, intermediate %d; config.json says "
				  "%d layers + %d MTP x %d experts, hidden %d, intermediate %d",
				  g->nmain, g->nblocks - g->nmain, g->nexperts, g->hidden, g->inter,
				  expect->nmain, expect->nblocks - expect->nmain, expect->nexperts, expect->hidden, expect->inter);
		goto done;
	}
	if ((uint64_t)st.st_size != g->file_size) {
		rc = core_err_set(e, NV_EFORMAT, path, NULL, HINT_RECONVERT,
				  "file is %lld bytes, its header says %llu (%s)", (long long)st.st_size,
				  (unsigned long long)g->file_size,
				  (uint64_t)st.st_size < g->file_size ? "truncated" : "trailing garbage");
		goto done;
	}
	s->idx = malloc(g->index_size);
	s->path = strdup(path);
	if (!s->idx || !s->path) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto done; }
	k = full_pread(fd, s->idx, g->index_size, g->index_off);
	if (k) { rc = core_err_set(e, k < 0 ? k : NV_EIO, path, "index", NULL, "cannot read the index: %s", k < 0 ? strerror(-k) : "short read"); goto done; }
	uint64_t ix = XXH64(s->idx, g->index_size, 0);
	if (ix != h.index_xxh64) {
		rc = core_err_set(e, NV_ECHECKSUM, path, "index", HINT_RECONVERT,
				  "index checksum %016llx, header says %016llx", (unsigned long long)ix,
				  (unsigned long long)h.index_xxh64);
		goto done;
	}
	uint64_t nrec = (uint64_t)g->nblocks * (uint64_t)g->nexperts;
	for (uint64_t r = 0; r < nrec; r++)
		if (s->idx[r].offset != g->records_off + r * g->record_size) {
			char nm[96];
			rc = core_err_set(e, NV_EFORMAT, path,
					  offload_store_expert_name(g, (int)(r / (uint64_t)g->nexperts), (int)(r % (uint64_t)g->nexperts), nm, sizeof nm),
					  HINT_RECONVERT, "index gives offset %llu, expected %llu",
					  (unsigned long long)s->idx[r].offset, (unsigned long long)(g->records_off + r * g->record_size));
			goto done;
		}
done:
	close(fd);
	if (rc) { offload_store_close(s); return rc; }
	*out = s;
	return 0;
}

void offload_store_close(struct offload_store *s)
{
	if (!s) return;
	free(s->idx);
	free(s->path);
	free(s);
}

const struct offload_store_geom *offload_store_geometry(const struct offload_store *s) { return &s->g; }
const char *offload_store_path(const struct offload_store *s) { return s->path; }

uint64_t offload_store_record_offset(const struct offload_store *s, int block, int expert)
{
	return s->idx[(uint64_t)block * (uint64_t)s->g.nexperts + (uint64_t)expert].offset;
}

int offload_store_check(const struct offload_store *s, int block, int expert, const void *record,
			struct nv_err *e)
{
	const struct offload_store_geom *g = &s->g;
	uint64_t k = (uint64_t)block * (uint64_t)g->nexperts + (uint64_t)expert;
	const struct offload_store_index_ent *ent = &s->idx[k];
	struct offload_rec_trailer t;
	memcpy(&t, (const uint8_t *)record + g->trailer_off, sizeof t);
	int magic_ok = !memcmp(t.magic, OFFLOAD_REC_MAGIC, 8);
	int names_ok = magic_ok && t.block == (uint32_t)block && t.expert == (uint32_t)expert;
	uint64_t x = XXH64(record, g->payload_size, 0);
	if (x == ent->xxh64 && names_ok && t.xxh64 == ent->xxh64) return 0;
	char nm[96], tr[96];
	offload_store_expert_name(g, block, expert, nm, sizeof nm);
	if (!magic_ok) snprintf(tr, sizeof tr, "; its trailer is missing (zeroed or overwritten)");
	else if (!names_ok) snprintf(tr, sizeof tr, "; its trailer names block %u expert %u", t.block, t.expert);
	else tr[0] = 0;
	if (x != ent->xxh64)
		return core_err_set(e, NV_ECHECKSUM, s->path, nm, HINT_RECONVERT,
				    "record at offset %llu (%llu bytes): checksum %016llx, expected %016llx%s",
				    (unsigned long long)ent->offset, (unsigned long long)g->payload_size,
				    (unsigned long long)x, (unsigned long long)ent->xxh64, tr);
	if (!names_ok)
		return core_err_set(e, NV_EFORMAT, s->path, nm, HINT_RECONVERT,
				    "record at offset %llu (%llu bytes): payload checksum matches%s",
				    (unsigned long long)ent->offset, (unsigned long long)g->record_size, tr);
	return core_err_set(e, NV_ECHECKSUM, s->path, nm, HINT_RECONVERT,
			    "record at offset %llu: trailer checksum %016llx disagrees with the index's %016llx",
			    (unsigned long long)ent->offset, (unsigned long long)t.xxh64, (unsigned long long)ent->xxh64);
}

int offload_store_verify(const struct offload_store *s,
			 int (*progress)(void *arg, uint64_t done, uint64_t total),
			 void (*bad)(void *arg, const struct nv_err *err), void *arg,
			 int *nbad, struct nv_err *e)
{
	const struct offload_store_geom *g = &s->g;
	*nbad = 0;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return core_err_set(e, -err, s->path, NULL, NULL, "cannot open: %s", strerror(err));
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint8_t *buf = NULL;
	if (posix_memalign((void **)&buf, OFFLOAD_ALIGN, g->record_size)) {
		close(fd);
		return core_err_set(e, NV_ENOMEM, s->path, NULL, NULL, "out of memory");
	}
	int first = 0;
	uint64_t nrec = (uint64_t)g->nblocks * (uint64_t)g->nexperts;
	uint64_t total = nrec * g->record_size;
	for (uint64_t r = 0; r < nrec; r++) {
		int b = (int)(r / (uint64_t)g->nexperts), x = (int)(r % (uint64_t)g->nexperts);
		uint64_t off = s->idx[r].offset;
		struct nv_err one;
		int rc = full_pread(fd, buf, g->record_size, off);
		if (rc) {
			char nm[96];
			rc = core_err_set(&one, rc < 0 ? rc : NV_EFORMAT, s->path, offload_store_expert_name(g, b, x, nm, sizeof nm),
					  HINT_RECONVERT, "record at offset %llu (%llu bytes): %s",
					  (unsigned long long)off, (unsigned long long)g->record_size,
					  rc < 0 ? strerror(-rc) : "end of file (truncated)");
		} else {
			rc = offload_store_check(s, b, x, buf, &one);
		}
		if (rc) {
			if (!first) { first = rc; if (e) *e = one; }
			(*nbad)++;
			if (bad) bad(arg, &one);
		}
		posix_fadvise(fd, (off_t)off, (off_t)g->record_size, POSIX_FADV_DONTNEED);
		if (progress && progress(arg, (r + 1) * g->record_size, total)) {
			free(buf);
			close(fd);
			return core_err_set(e, NV_ECANCELED, s->path, NULL, NULL, "verification stopped");
		}
	}
	free(buf);
	close(fd);
	return first;
}
