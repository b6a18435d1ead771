/* offload/trace.c - routing trace writer and reader (format in trace.h). */
#define _GNU_SOURCE
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- writer */

struct offload_trace_writer {
	struct offload_trace_hdr h;
	FILE *f;
	char *path, *tmp;
	int ring;
	int32_t *ppos;   /* [ring][layers][A+1] position the prediction is for, -1 = none */
	int32_t *pids;   /* [ring][layers][A+1][k] */
	int err;         /* first write error (-errno) */
};

static size_t pidx(const struct offload_trace_writer *w, int pos, int layer, int dist)
{
	return ((size_t)(pos % w->ring) * (size_t)w->h.layers + (size_t)layer) * (size_t)(w->h.lookahead + 1) +
	       (size_t)dist;
}

static int hdr_check(const struct offload_trace_hdr *h, const char *file, struct nv_err *e)
{
	if (h->layers < 1 || h->experts < 1 || h->k < 1 || h->k > OFFLOAD_TRACE_MAX_K || h->hash_layers < 0 ||
	    h->hash_layers > h->layers || h->lookahead < 0 || h->lookahead > OFFLOAD_TRACE_MAX_LOOKAHEAD)
		return core_err_set(e, NV_EINVAL, file, "trace header", NULL,
				    "bad geometry: layers %d, experts %d, k %d (1..%d), hash %d, lookahead %d (0..%d)",
				    h->layers, h->experts, h->k, OFFLOAD_TRACE_MAX_K, h->hash_layers, h->lookahead,
				    OFFLOAD_TRACE_MAX_LOOKAHEAD);
	return 0;
}

int offload_trace_writer_create(const char *path, const struct offload_trace_hdr *h, int ring,
				struct offload_trace_writer **out, struct nv_err *e)
{
	*out = NULL;
	int rc = hdr_check(h, path, e);
	if (rc) return rc;
	if (ring < 1) ring = 1;
	struct offload_trace_writer *w = calloc(1, sizeof *w);
	if (!w) return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	w->h = *h;
	w->ring = ring;
	size_t np = (size_t)ring * (size_t)h->layers * (size_t)(h->lookahead + 1);
	w->ppos = malloc(np * sizeof *w->ppos);
	w->pids = malloc(np * (size_t)h->k * sizeof *w->pids);
	w->path = strdup(path);
	w->tmp = malloc(strlen(path) + 5);
	if (!w->ppos || !w->pids || !w->path || !w->tmp) {
		offload_trace_writer_abort(w);
		return core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory");
	}
	for (size_t i = 0; i < np; i++) w->ppos[i] = -1;
	sprintf(w->tmp, "%s.tmp", path);
	w->f = fopen(w->tmp, "w");
	if (!w->f) {
		int err = errno;
		offload_trace_writer_abort(w);
		return core_err_set(e, -err, path, NULL, "choose a writable path for --trace-experts",
				    "cannot create the trace file: %s", strerror(err));
	}
	if (fprintf(w->f, "nvmoe-trace 1 layers=%d experts=%d k=%d hash=%d lookahead=%d\n", h->layers,
		    h->experts, h->k, h->hash_layers, h->lookahead) < 0)
		w->err = -errno;
	*out = w;
	return 0;
}

void offload_trace_token(struct offload_trace_writer *w, int pos, int token)
{
	if (!w || pos < 0) return;
	/* a new use of this ring slot: its old predictions are stale */
	for (int l = 0; l < w->h.layers; l++)
		for (int d = 0; d <= w->h.lookahead; d++) {
			size_t i = pidx(w, pos, l, d);
			if (w->ppos[i] != pos) w->ppos[i] = -1;
		}
	if (fprintf(w->f, "t %d %d\n", pos, token) < 0 && !w->err) w->err = -errno;
}

void offload_trace_predict(struct offload_trace_writer *w, int pos, int layer, int dist,
			   const int32_t *ids, int n)
{
	if (!w || pos < 0 || layer < 0 || layer >= w->h.layers || dist < 0 || dist > w->h.lookahead) return;
	size_t i = pidx(w, pos, layer, dist);
	int32_t *p = w->pids + i * (size_t)w->h.k;
	for (int j = 0; j < w->h.k; j++) p[j] = j < n ? ids[j] : -1;
	w->ppos[i] = pos;
}

static void put_ids(struct offload_trace_writer *w, const char *tag, const int32_t *ids, int n)
{
	fputs(tag, w->f);
	int first = 1;
	for (int j = 0; j < n; j++) {
		if (ids[j] < 0) continue;
		fprintf(w->f, first ? "%d" : ",%d", ids[j]);
		first = 0;
	}
}

void offload_trace_route(struct offload_trace_writer *w, int pos, int layer, const int32_t *ids, int n)
{
	if (!w || pos < 0 || layer < 0 || layer >= w->h.layers) return;
	fprintf(w->f, "r %d %d", pos, layer);
	put_ids(w, " s=", ids, n < w->h.k ? n : w->h.k);
	for (int d = 0; d <= w->h.lookahead; d++) {
		size_t i = pidx(w, pos, layer, d);
		if (w->ppos[i] != pos) continue;
		char tag[16];
		if (d == 0) snprintf(tag, sizeof tag, " h=");
		else snprintf(tag, sizeof tag, " d%d=", d);
		put_ids(w, tag, w->pids + i * (size_t)w->h.k, w->h.k);
		w->ppos[i] = -1;
	}
	if (fputc('\n', w->f) == EOF && !w->err) w->err = -errno;
}

void offload_trace_writer_abort(struct offload_trace_writer *w)
{
	if (!w) return;
	if (w->f) {
		fclose(w->f);
		unlink(w->tmp);
	}
	free(w->ppos); free(w->pids); free(w->path); free(w->tmp);
	free(w);
}

int offload_trace_writer_close(struct offload_trace_writer *w, struct nv_err *e)
{
	if (!w) return 0;
	int rc = w->err;
	if (fflush(w->f) && !rc) rc = -errno;
	if (fclose(w->f) && !rc) rc = -errno;
	w->f = NULL;
	if (!rc && rename(w->tmp, w->path)) rc = -errno;
	if (rc) {
		unlink(w->tmp);
		core_err_set(e, rc, w->path, NULL, "check the disk space and the path of --trace-experts",
			     "cannot write the expert trace: %s", strerror(-rc));
	}
	free(w->ppos); free(w->pids); free(w->path); free(w->tmp);
	free(w);
	return rc;
}

/* ---------------------------------------------------------------- reader */

void offload_trace_free(struct offload_trace *t)
{
	if (!t) return;
	free(t->pos); free(t->layer); free(t->token); free(t->ids);
	free(t);
}

/* "e,e,e" into out[0..max); -1 fills the rest.  0, or -1 on a malformed list. */
static int parse_ids(const char *s, int E, int32_t *out, int max)
{
	int n = 0;
	for (int j = 0; j < max; j++) out[j] = -1;
	while (*s) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v >= E || n >= max) return -1;
		out[n++] = (int32_t)v;
		s = end;
		if (*s == ',') s++;
		else if (*s) return -1;
	}
	return n > 0 ? 0 : -1;
}

static int parse_hdr(const char *line, struct offload_trace_hdr *h)
{
	int ver, used = 0;
	if (sscanf(line, "nvmoe-trace %d layers=%d experts=%d k=%d hash=%d lookahead=%d%n", &ver, &h->layers,
		   &h->experts, &h->k, &h->hash_layers, &h->lookahead, &used) != 6)
		return -1;
	if (ver != 1) return -2;
	return line[used] == 0 || line[used] == '\n' ? 0 : -1;
}

int offload_trace_load(const char *path, struct offload_trace **out, struct nv_err *e)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		int err = errno;
		return core_err_set(e, -err, path, NULL, NULL, "cannot open the trace: %s", strerror(err));
	}
	struct offload_trace *t = calloc(1, sizeof *t);
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0, rcap = 0;
	int32_t *tok_by_pos = NULL;
	long npos = 0;
	int rc = 0;
	if (!t) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto done; }
	ssize_t len;
	int have_hdr = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
		if (len == 0 || line[0] == '#') continue;
		char obj[48];
		snprintf(obj, sizeof obj, "line %ld", lineno);
		if (!have_hdr) {
			int hr = parse_hdr(line, &t->h);
			if (hr == -2) { rc = core_err_set(e, NV_EUNSUPPORTED, path, obj, NULL, "unsupported trace version"); goto done; }
			if (hr) {
				rc = core_err_set(e, NV_EFORMAT, path, obj, "a trace starts with 'nvmoe-trace 1 layers=L experts=E k=K hash=H lookahead=A'",
						  "not an nvmoe trace header: '%.80s'", line);
				goto done;
			}
			if ((rc = hdr_check(&t->h, path, e))) goto done;
			have_hdr = 1;
			continue;
		}
		const struct offload_trace_hdr *h = &t->h;
		if (line[0] == 't' && line[1] == ' ') {
			int pos, tok, used = 0;
			if (sscanf(line, "t %d %d%n", &pos, &tok, &used) != 2 || line[used] || pos < 0 || tok < 0) {
				rc = core_err_set(e, NV_EFORMAT, path, obj, "expected 't POS TOKEN'", "malformed token line '%.80s'", line);
				goto done;
			}
			if (pos >= npos) {
				long nn = npos ? npos : 256;
				while (nn <= pos) nn *= 2;
				int32_t *p = realloc(tok_by_pos, (size_t)nn * sizeof *p);
				if (!p) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto done; }
				for (long i = npos; i < nn; i++) p[i] = -1;
				tok_by_pos = p;
				npos = nn;
			}
			tok_by_pos[pos] = tok;
			t->ntokens++;
			continue;
		}
		if (line[0] != 'r' || line[1] != ' ') {
			rc = core_err_set(e, NV_EFORMAT, path, obj, "lines are 't POS TOKEN' or 'r POS LAYER s=...'",
					  "unknown line '%.80s'", line);
			goto done;
		}
		if (t->n == rcap) {
			long nc = rcap ? rcap * 2 : 1024;
			size_t stride = (size_t)(h->lookahead + 2) * (size_t)h->k;
			int32_t *a = realloc(t->pos, (size_t)nc * sizeof *a);
			if (a) t->pos = a;
			int32_t *b = realloc(t->layer, (size_t)nc * sizeof *b);
			if (b) t->layer = b;
			int32_t *c = realloc(t->token, (size_t)nc * sizeof *c);
			if (c) t->token = c;
			int32_t *d = realloc(t->ids, (size_t)nc * stride * sizeof *d);
			if (d) t->ids = d;
			if (!a || !b || !c || !d) { rc = core_err_set(e, NV_ENOMEM, path, NULL, NULL, "out of memory"); goto done; }
			rcap = nc;
		}
		long i = t->n;
		int pos, layer, used = 0;
		if (sscanf(line, "r %d %d%n", &pos, &layer, &used) != 2 || pos < 0 || layer < 0 || layer >= h->layers) {
			rc = core_err_set(e, NV_EFORMAT, path, obj, "expected 'r POS LAYER s=...' with LAYER below the header's layers",
					  "malformed routing line '%.80s'", line);
			goto done;
		}
		t->pos[i] = pos;
		t->layer[i] = layer;
		t->token[i] = pos < npos ? tok_by_pos[pos] : -1;
		int32_t *ids = (int32_t *)offload_trace_ids(t, i, 0);
		for (int j = 0; j < (h->lookahead + 2) * h->k; j++) ids[j] = -1;
		int have_s = 0;
		char *save = NULL;
		for (char *f2 = strtok_r(line + used, " ", &save); f2; f2 = strtok_r(NULL, " ", &save)) {
			char *eq = strchr(f2, '=');
			int part = -1;
			if (eq) {
				*eq = 0;
				if (!strcmp(f2, "s")) part = 0;
				else if (!strcmp(f2, "h")) part = 1;
				else if (f2[0] == 'd') {
					char *end;
					long d = strtol(f2 + 1, &end, 10);
					if (end != f2 + 1 && !*end && d >= 1 && d <= h->lookahead) part = 1 + (int)d;
				}
			}
			if (part < 0 || parse_ids(eq + 1, h->experts, ids + (size_t)part * (size_t)h->k, h->k)) {
				rc = core_err_set(e, NV_EFORMAT, path, obj,
						  "fields are s=, h= or d1..dA= followed by comma-separated expert ids below the header's experts (at most k)",
						  "malformed field in '%.80s'", line);
				goto done;
			}
			have_s |= part == 0;
		}
		if (!have_s) {
			rc = core_err_set(e, NV_EFORMAT, path, obj, NULL, "routing line without s=");
			goto done;
		}
		t->n++;
	}
	if (!have_hdr) rc = core_err_set(e, NV_EFORMAT, path, NULL, "write traces with --trace-experts", "empty file: no trace header");
done:
	free(line);
	free(tok_by_pos);
	fclose(f);
	if (rc) { offload_trace_free(t); return rc; }
	*out = t;
	return 0;
}
