/* cli/cmd_bench_io.c - `nvmoe bench --io MODEL [--json]`: expert-read throughput of
 * the io engine (random (block, expert) order, queue depths 1, 4, 16, 64) next to
 * the raw O_DIRECT rate of the same file(s) measured by fio in the same run, and a
 * mmap reader touching the same bytes through the page cache; each from a cold
 * page cache (posix_fadvise DONTNEED, checked with mincore).
 * NVMOE_BENCH_IO_BYTES (diagnostic) caps the bytes read per measurement. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/ckpt.h"
#include "offload/engine.h"
#include "offload/source.h"
#include "offload/store.h"

static const int g_qds[] = {1, 4, 16, 64};
#define NQD (int)(sizeof g_qds / sizeof g_qds[0])

struct xrd { int nrd; int file[OFFLOAD_NPARTS]; uint64_t off[OFFLOAD_NPARTS], len[OFFLOAD_NPARTS], pos[OFFLOAD_NPARTS]; };

struct item {
	struct offload_read rd[OFFLOAD_NPARTS];
	struct offload_group grp;
	struct bio *b;
	int buf;
};

struct bio {
	int nfiles;
	char **paths;
	uint64_t *sizes;
	struct xrd *x;            /* [n] experts in random order */
	int n;                    /* experts read per measurement */
	uint64_t slot;            /* bytes of one expert buffer */
	uint64_t bytes;           /* data bytes per measurement */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int *doneq, ndone;        /* completed buffer indices */
	double worst_resident;    /* max fraction of pages resident after a drop */
	int drop_ok;
};

/* Drop the files' cached pages; returns the fraction still resident (mincore). */
static double drop_cache(struct bio *b)
{
	uint64_t res = 0, tot = 0;
	long pg = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < b->nfiles; i++) {
		int fd = open(b->paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) continue;
		if (posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) b->drop_ok = 0;
		if (b->sizes[i]) {
			void *m = mmap(NULL, b->sizes[i], PROT_READ, MAP_SHARED, fd, 0);
			if (m != MAP_FAILED) {
				size_t np = (b->sizes[i] + (uint64_t)pg - 1) / (uint64_t)pg;
				unsigned char *v = malloc(np);
				if (v && mincore(m, b->sizes[i], v) == 0)
					for (size_t k = 0; k < np; k++) res += v[k] & 1;
				tot += np;
				free(v);
				munmap(m, b->sizes[i]);
			}
		}
		close(fd);
	}
	double f = tot ? (double)res / (double)tot : 0;
	if (f > b->worst_resident) b->worst_resident = f;
	return f;
}

static void on_done(struct offload_group *g, void *arg)
{
	struct item *it = arg;
	(void)g;
	pthread_mutex_lock(&it->b->mu);
	it->b->doneq[it->b->ndone++] = it->buf;
	pthread_cond_signal(&it->b->cv);
	pthread_mutex_unlock(&it->b->mu);
}

/* One measurement through the engine at queue depth qd; GB/s or < 0 on error. */
static double run_engine(struct bio *b, int qd, int mode, struct nv_err *e, char *desc, size_t dn)
{
	struct offload_engine_opts o;
	offload_engine_opts_default(&o);
	offload_engine_opts_env(&o); /* NVMOE_IO_REQUEST etc. (diagnostics) */
	o.queue_depth = qd;
	o.mode = mode;
	/* enough experts in flight to keep qd requests busy */
	int nbuf = (int)(((uint64_t)qd * o.request_size + b->slot - 1) / b->slot) + 1;
	if (nbuf > b->n) nbuf = b->n;
	size_t pool = (size_t)nbuf * b->slot;
	uint8_t *mem = mmap(NULL, pool, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	struct item *it = calloc((size_t)nbuf, sizeof *it);
	b->doneq = calloc((size_t)nbuf, sizeof(int));
	b->ndone = 0;
	struct offload_engine *g = NULL;
	double rate = -1;
	struct iovec reg = { mem, pool };
	if (mem == MAP_FAILED || !it || !b->doneq) { core_err_set(e, NV_ENOMEM, "bench", NULL, NULL, "out of memory"); goto out; }
	if (offload_engine_create(&o, &reg, 1, &g, e)) goto out;
	int fid[256];
	for (int i = 0; i < b->nfiles; i++)
		if (offload_engine_open(g, b->paths[i], &fid[i], e)) goto out;
	if (desc) offload_engine_describe(g, desc, dn);
	drop_cache(b);
	int next = 0, inflight = 0, err = 0;
	double t0 = cli_now();
	pthread_mutex_lock(&b->mu);
	for (int k = 0; k < nbuf; k++) b->doneq[b->ndone++] = k;
	for (;;) {
		while (b->ndone == 0) pthread_cond_wait(&b->cv, &b->mu);
		int k = b->doneq[--b->ndone];
		pthread_mutex_unlock(&b->mu);
		struct item *x = &it[k];
		if (x->b) {
			inflight--;
			struct nv_err ge;
			if (offload_group_status(&x->grp, &ge)) { if (!err) *e = ge; err = 1; }
		}
		if (next < b->n && !err) {
			const struct xrd *r = &b->x[next++];
			x->b = b;
			x->buf = k;
			memset(&x->grp, 0, sizeof x->grp);
			x->grp.done = on_done;
			x->grp.arg = x;
			for (int j = 0; j < r->nrd; j++)
				x->rd[j] = (struct offload_read){ .file = fid[r->file[j]], .off = r->off[j], .len = r->len[j],
								  .buf = mem + (size_t)k * b->slot + r->pos[j] };
			inflight++;
			if (offload_engine_submit(g, x->rd, r->nrd, OFFLOAD_PRIO_DEMAND, &x->grp, e)) { err = 1; inflight--; }
		} else {
			x->b = NULL;
		}
		pthread_mutex_lock(&b->mu);
		if (inflight == 0 && (next >= b->n || err)) break;
	}
	pthread_mutex_unlock(&b->mu);
	double dt = cli_now() - t0;
	if (!err) rate = (double)b->bytes / dt / 1e9;
out:
	offload_engine_destroy(g);
	if (mem != MAP_FAILED) munmap(mem, pool);
	free(it);
	free(b->doneq);
	b->doneq = NULL;
	return rate;
}

/* The same bytes through mmap (page cache, readahead as the kernel does it). */
static double run_mmap(struct bio *b, struct nv_err *e)
{
	uint8_t **maps = calloc((size_t)b->nfiles, sizeof *maps);
	uint8_t *dst = malloc(b->slot);
	double rate = -1;
	int ok = maps && dst;
	for (int i = 0; ok && i < b->nfiles; i++) {
		int fd = open(b->paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) { core_err_set(e, -errno, b->paths[i], NULL, NULL, "open: %s", strerror(errno)); ok = 0; break; }
		maps[i] = mmap(NULL, b->sizes[i], PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (maps[i] == MAP_FAILED) { maps[i] = NULL; core_err_set(e, -errno, b->paths[i], NULL, NULL, "mmap failed"); ok = 0; }
	}
	if (ok) {
		drop_cache(b);
		double t0 = cli_now();
		for (int k = 0; k < b->n; k++) {
			const struct xrd *r = &b->x[k];
			for (int j = 0; j < r->nrd; j++) {
				uint64_t len = r->len[j];
				if (r->off[j] + len > b->sizes[r->file[j]]) len = b->sizes[r->file[j]] - r->off[j];
				memcpy(dst + r->pos[j], maps[r->file[j]] + r->off[j], (size_t)len);
			}
		}
		rate = (double)b->bytes / (cli_now() - t0) / 1e9;
	}
	for (int i = 0; maps && i < b->nfiles; i++) if (maps[i]) munmap(maps[i], b->sizes[i]);
	free(maps);
	free(dst);
	return rate;
}

/* fio randread, O_DIRECT, io_uring, bs = request size, at depth qd over the same
 * file(s) and the same number of bytes.  GB/s, or < 0 (why in note). */
static double run_fio(struct bio *b, int qd, size_t bs, char *note, size_t nn)
{
	size_t cap = 256;
	for (int i = 0; i < b->nfiles; i++) cap += strlen(b->paths[i]) * 2 + 2;
	char *files = malloc(cap), *cmd = malloc(cap + 512);
	size_t o = 0;
	for (int i = 0; i < b->nfiles; i++) {
		if (i) files[o++] = ':';
		for (const char *p = b->paths[i]; *p; p++) {
			if (*p == ':' || *p == '\'') { snprintf(note, nn, "path with ':' or quote"); free(files); free(cmd); return -1; }
			files[o++] = *p;
		}
	}
	files[o] = 0;
	uint64_t io = b->bytes / bs * bs;
	if (io < bs) io = bs;
	snprintf(cmd, cap + 512,
		 "fio --name=nvmoe-raw --filename='%s' --readonly --rw=randread --bs=%zu --direct=1 --ioengine=io_uring"
		 " --iodepth=%d --io_size=%llu --norandommap --randrepeat=0 --output-format=json 2>&1",
		 files, bs, qd, (unsigned long long)io);
	free(files);
	drop_cache(b);
	FILE *f = popen(cmd, "r");
	free(cmd);
	if (!f) { snprintf(note, nn, "cannot run fio"); return -1; }
	size_t n = 0, c2 = 1 << 16;
	char *out = malloc(c2);
	size_t k;
	while (out && (k = fread(out + n, 1, c2 - n - 1, f)) > 0) {
		n += k;
		if (n + 1 >= c2) { c2 *= 2; out = realloc(out, c2); }
	}
	int st = pclose(f);
	if (!out) return -1;
	out[n] = 0;
	char *js = strchr(out, '{');
	cJSON *root = js ? cJSON_Parse(js) : NULL;
	double rate = -1;
	cJSON *jobs = cJSON_GetObjectItemCaseSensitive(root, "jobs");
	cJSON *j0 = cJSON_GetArrayItem(jobs, 0);
	cJSON *rd = cJSON_GetObjectItemCaseSensitive(j0, "read");
	cJSON *bw = cJSON_GetObjectItemCaseSensitive(rd, "bw_bytes");
	cJSON *er = cJSON_GetObjectItemCaseSensitive(j0, "error");
	if (cJSON_IsNumber(bw) && bw->valuedouble > 0 && (!cJSON_IsNumber(er) || er->valueint == 0)) rate = bw->valuedouble / 1e9;
	else snprintf(note, nn, "fio failed (exit %d): %.200s", st, out);
	cJSON_Delete(root);
	free(out);
	return rate;
}

/* Reads of every expert of the model, in a random order. */
static int plan(struct core_ckpt *ck, struct bio *b, int *is_store, struct nv_err *e)
{
	const struct core_config *c = core_ckpt_config(ck);
	struct offload_store_geom g;
	int rc = offload_store_geom_from_config(c, &g, e);
	if (rc) return rc;
	int n = g.nblocks * g.nexperts;
	b->x = calloc((size_t)n, sizeof *b->x);
	if (!b->x) return core_err_set(e, NV_ENOMEM, "bench", NULL, NULL, "out of memory");
	*is_store = core_ckpt_has_store(ck);
	struct offload_store *s = NULL;
	if (*is_store) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", core_ckpt_dir(ck), CORE_STORE_FILE);
		if ((rc = offload_store_open(path, &g, &s, e))) return rc;
		b->nfiles = 1;
		b->paths = calloc(1, sizeof *b->paths);
		b->paths[0] = strdup(path);
		b->slot = g.record_size;
	} else {
		b->nfiles = core_ckpt_nshards(ck);
		if (b->nfiles > 256) return core_err_set(e, NV_EUNSUPPORTED, core_ckpt_dir(ck), NULL, NULL, "more than 256 shards");
		b->paths = calloc((size_t)b->nfiles, sizeof *b->paths);
		for (int i = 0; i < b->nfiles; i++) b->paths[i] = strdup(core_ckpt_shard_path(ck, i));
	}
	b->sizes = calloc((size_t)b->nfiles, sizeof *b->sizes);
	for (int i = 0; i < b->nfiles; i++) {
		struct stat st;
		if (stat(b->paths[i], &st)) return core_err_set(e, -errno, b->paths[i], NULL, NULL, "stat: %s", strerror(errno));
		b->sizes[i] = (uint64_t)st.st_size;
	}
	for (int k = 0; k < n; k++) {
		int bl = k / g.nexperts, x = k % g.nexperts;
		struct xrd *r = &b->x[k];
		if (s) {
			r->nrd = 1;
			r->file[0] = 0;
			r->off[0] = offload_store_record_offset(s, bl, x);
			r->len[0] = g.record_size;
			r->pos[0] = 0;
		} else {
			const struct core_tensor *t[OFFLOAD_NPARTS];
			for (int p = 0; p < OFFLOAD_NPARTS; p++) {
				char nm[128];
				offload_expert_tensor_name(&g, bl, x, p, nm, sizeof nm);
				if (!(t[p] = core_ckpt_find(ck, nm)))
					return core_err_set(e, NV_EMISSING, core_ckpt_dir(ck), nm, NULL, "tensor not found");
			}
			struct offload_run runs[OFFLOAD_NPARTS];
			uint64_t voff[OFFLOAD_NPARTS];
			uint64_t need = offload_hf_runs(t, runs, &r->nrd, voff);
			if (need > b->slot) b->slot = need;
			for (int j = 0; j < r->nrd; j++) {
				r->file[j] = runs[j].shard;
				r->off[j] = runs[j].off;
				r->len[j] = runs[j].len;
				r->pos[j] = runs[j].slot_pos;
			}
		}
	}
	offload_store_close(s);
	/* random order (fixed seed: runs are comparable) */
	uint64_t z = 0x9E3779B97F4A7C15ull;
	for (int k = n - 1; k > 0; k--) {
		z ^= z << 13; z ^= z >> 7; z ^= z << 17;
		int j = (int)(z % (uint64_t)(k + 1));
		struct xrd t = b->x[k]; b->x[k] = b->x[j]; b->x[j] = t;
	}
	b->n = n;
	const char *cap = getenv("NVMOE_BENCH_IO_BYTES");
	uint64_t limit = cap ? strtoull(cap, NULL, 0) : 0;
	b->bytes = 0;
	for (int k = 0; k < n; k++) {
		uint64_t eb = 0;
		for (int j = 0; j < b->x[k].nrd; j++) eb += b->x[k].len[j];
		if (limit && b->bytes + eb > limit && k > 0) { b->n = k; break; }
		b->bytes += eb;
	}
	return 0;
}

int cli_bench_io(const struct cli_opts *o)
{
	if (o->nargs != 1) {
		fprintf(stderr, "usage: nvmoe bench --io MODEL [--json]\n");
		return 2;
	}
	struct nv_err e;
	core_err_clear(&e);
	struct core_ckpt *ck = NULL;
	struct core_ckpt_opts co = { .no_mmap = 1, .allow_extra = o->allow_extra };
	if (core_ckpt_open(o->args[0], &co, &ck, &e)) { cli_print_err(&e); return 1; }
	struct bio b;
	memset(&b, 0, sizeof b);
	b.drop_ok = 1;
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	int is_store = 0, ret = 1;
	if (plan(ck, &b, &is_store, &e)) { cli_print_err(&e); goto out; }
	struct offload_engine_opts eo;
	offload_engine_opts_default(&eo);
	offload_engine_opts_env(&eo);
	double eng[NQD], fio[NQD], fio1[NQD], fior[NQD], pread_rate;
	size_t rbs = (size_t)offload_align_up(b.slot); /* one expert per request */
	char fnote[400] = "", desc[512] = "", pdesc[512] = "";
	if (!o->json)
		fprintf(stderr, "nvmoe bench --io: %d experts in random order, %.2f GB per measurement, %s\n", b.n, b.bytes / 1e9,
			is_store ? "expert store" : "HF shards");
	for (int i = 0; i < NQD; i++) {
		eng[i] = run_engine(&b, g_qds[i], OFFLOAD_IO_AUTO, &e, i == NQD - 1 ? desc : NULL, sizeof desc);
		if (eng[i] < 0) { cli_print_err(&e); goto out; }
		/* raw rate: the better of fio with the engine's request size and with whole experts */
		fio1[i] = run_fio(&b, g_qds[i], eo.request_size, fnote, sizeof fnote);
		fior[i] = rbs > eo.request_size ? run_fio(&b, g_qds[i], rbs, fnote, sizeof fnote) : -1;
		fio[i] = fio1[i] > fior[i] ? fio1[i] : fior[i];
		if (!o->json)
			fprintf(stderr, "  qd %2d: engine %.2f GB/s, fio %.2f / %.2f GB/s (1 MiB / expert-size blocks)\n", g_qds[i],
				eng[i], fio1[i], fior[i]);
	}
	pread_rate = run_engine(&b, 16, OFFLOAD_IO_PREAD, &e, pdesc, sizeof pdesc);
	double mm = run_mmap(&b, &e);
	if (mm < 0) { cli_print_err(&e); goto out; }
	int best = 0;
	for (int i = 1; i < NQD; i++) if (eng[i] > eng[best]) best = i;
	double fio_best = -1;
	for (int i = 0; i < NQD; i++) if (fio[i] > fio_best) fio_best = fio[i];
	if (o->json) {
		cJSON *r = cJSON_CreateObject(), *ea = cJSON_CreateArray();
		cJSON_AddStringToObject(r, "model", o->args[0]);
		cJSON_AddStringToObject(r, "source", is_store ? "store" : "hf");
		cJSON_AddNumberToObject(r, "experts", b.n);
		cJSON_AddNumberToObject(r, "bytes_per_run", (double)b.bytes);
		cJSON_AddNumberToObject(r, "request_size", (double)eo.request_size);
		cJSON_AddNumberToObject(r, "expert_read_size", (double)rbs);
		cJSON_AddStringToObject(r, "engine_path", desc);
		for (int i = 0; i < NQD; i++) {
			cJSON *x = cJSON_CreateObject();
			cJSON_AddNumberToObject(x, "qd", g_qds[i]);
			cJSON_AddNumberToObject(x, "engine_gbps", eng[i]);
			if (fio[i] >= 0) cJSON_AddNumberToObject(x, "fio_gbps", fio[i]);
			else cJSON_AddNullToObject(x, "fio_gbps");
			if (fio1[i] >= 0) cJSON_AddNumberToObject(x, "fio_request_size_gbps", fio1[i]);
			if (fior[i] >= 0) cJSON_AddNumberToObject(x, "fio_expert_size_gbps", fior[i]);
			if (fio[i] > 0) cJSON_AddNumberToObject(x, "engine_over_fio", eng[i] / fio[i]);
			cJSON_AddItemToArray(ea, x);
		}
		cJSON_AddItemToObject(r, "runs", ea);
		if (fio_best < 0) cJSON_AddStringToObject(r, "fio_note", fnote);
		cJSON_AddNumberToObject(r, "pread_pool_gbps", pread_rate);
		cJSON_AddNumberToObject(r, "mmap_gbps", mm);
		cJSON_AddNumberToObject(r, "best_qd", g_qds[best]);
		cJSON_AddNumberToObject(r, "best_engine_gbps", eng[best]);
		if (fio[best] > 0) cJSON_AddNumberToObject(r, "best_engine_over_fio", eng[best] / fio[best]);
		if (fio_best > 0) cJSON_AddNumberToObject(r, "best_engine_over_best_fio", eng[best] / fio_best);
		cJSON_AddNumberToObject(r, "engine_over_mmap", eng[best] / mm);
		cJSON *cc = cJSON_CreateObject();
		cJSON_AddBoolToObject(cc, "fadvise_ok", b.drop_ok);
		cJSON_AddNumberToObject(cc, "max_resident_after_drop", b.worst_resident);
		cJSON_AddBoolToObject(cc, "cold", b.drop_ok && b.worst_resident < 0.01);
		cJSON_AddItemToObject(r, "cold_cache", cc);
		char *s = cJSON_Print(r);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(r);
	} else {
		printf("expert reads: %s, %d experts (random order), %.2f GB per run, %zu KiB requests\n",
		       is_store ? "expert store" : "HF shards", b.n, b.bytes / 1e9, eo.request_size >> 10);
		printf("engine: %s\n", desc);
		printf("%4s  %12s  %14s  %14s  %11s\n", "qd", "engine GB/s", "fio 1MiB GB/s", "fio expert GB/s", "engine/fio");
		for (int i = 0; i < NQD; i++) {
			char f1[32] = "-", fr[32] = "-", ra[32] = "-";
			if (fio1[i] > 0) snprintf(f1, sizeof f1, "%.3f", fio1[i]);
			if (fior[i] > 0) snprintf(fr, sizeof fr, "%.3f", fior[i]);
			if (fio[i] > 0) snprintf(ra, sizeof ra, "%.3f", eng[i] / fio[i]);
			printf("%4d  %12.3f  %14s  %14s  %11s\n", g_qds[i], eng[i], f1, fr, ra);
		}
		printf("(engine/fio: against the better fio block size at that depth)\n");
		if (fio_best < 0) printf("fio: %s\n", fnote);
		printf("pread pool (qd 16): %.3f GB/s\n", pread_rate);
		printf("mmap (page cache): %.3f GB/s\n", mm);
		printf("best engine qd %d: %.3f GB/s", g_qds[best], eng[best]);
		if (fio[best] > 0) printf(" = %.3f x fio at that qd", eng[best] / fio[best]);
		if (fio_best > 0) printf(", %.3f x best fio", eng[best] / fio_best);
		printf(", %.2f x mmap\n", eng[best] / mm);
		printf("cold cache: posix_fadvise(DONTNEED) %s; at most %.1f%% of pages resident after a drop%s\n",
		       b.drop_ok ? "ok" : "FAILED", 100 * b.worst_resident,
		       b.drop_ok && b.worst_resident < 0.01 ? "" : " (NOT cold: mmap numbers are optimistic)");
	}
	ret = 0;
out:
	for (int i = 0; i < b.nfiles && b.paths; i++) free(b.paths[i]);
	free(b.paths);
	free(b.sizes);
	free(b.x);
	core_ckpt_close(ck);
	return ret;
}
