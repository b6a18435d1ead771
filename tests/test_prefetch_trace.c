/* tests/test_prefetch_trace.c - routing trace format (offload/trace.h): writer ->
 * reader round trip against the values written, the exact text of a small trace,
 * and clear errors (file, line) for malformed traces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offload/trace.h"
#include "testutil.h"

static char dir[] = "/tmp/nvmoe_trace_XXXXXX";

static void put(const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
}

/* load must fail with code `code` and a message mentioning `needle` */
static void bad(const char *name, const char *text, int code, const char *needle)
{
	put(name, text);
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	struct offload_trace *t = NULL;
	struct nv_err e = {0};
	int rc = offload_trace_load(p, &t, &e);
	char msg[2048];
	core_err_str(&e, msg, sizeof msg);
	TU_CHECK(rc == code && !t, "%s: rc %d (expected %d)", name, rc, code);
	TU_CHECK(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, msg, needle);
	TU_CHECK(strstr(msg, p) != NULL, "%s: message '%s' does not name the file", name, msg);
	offload_trace_free(t);
}

int main(void)
{
	if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
	char path[256];
	snprintf(path, sizeof path, "%s/t.trace", dir);
	struct offload_trace_hdr h = { .layers = 4, .experts = 16, .k = 2, .hash_layers = 1, .lookahead = 2 };
	struct offload_trace_writer *w;
	struct nv_err e = {0};
	TU_CHECK(offload_trace_writer_create(path, &h, 2, &w, &e) == 0, "create: %s", e.why);
	const int32_t h0[2] = { 3, 5 }, p2[2] = { 7, 9 }, p3a[2] = { 1, 2 }, p3b[2] = { 2, 11 };
	/* pos 0: hash prediction for layer 0, lookahead for 2 (d1) and 3 (d2, d1) */
	offload_trace_token(w, 0, 42);
	offload_trace_predict(w, 0, 0, 0, h0, 2);
	offload_trace_route(w, 0, 0, h0, 2);
	const int32_t s1[2] = { 4, 0 };
	offload_trace_route(w, 0, 1, s1, 2);
	offload_trace_predict(w, 0, 2, 1, p2, 2);
	offload_trace_predict(w, 0, 3, 2, p3a, 2);
	const int32_t s2[2] = { 9, 7 };
	offload_trace_route(w, 0, 2, s2, 2);
	offload_trace_predict(w, 0, 3, 1, p3b, 2);
	const int32_t s3[2] = { 2, 15 };
	offload_trace_route(w, 0, 3, s3, 2);
	/* pos 2 shares pos 0's ring slot: a prediction left for pos 0 must not leak */
	offload_trace_predict(w, 0, 1, 1, p2, 2);
	offload_trace_token(w, 2, 7);
	offload_trace_route(w, 2, 1, s1, 2);
	TU_CHECK(access(path, F_OK) != 0, "the trace appeared before close");
	TU_CHECK(offload_trace_writer_close(w, &e) == 0, "close: %s", e.why);

	static const char want[] =
		"nvmoe-trace 1 layers=4 experts=16 k=2 hash=1 lookahead=2\n"
		"t 0 42\n"
		"r 0 0 s=3,5 h=3,5\n"
		"r 0 1 s=4,0\n"
		"r 0 2 s=9,7 d1=7,9\n"
		"r 0 3 s=2,15 d1=2,11 d2=1,2\n"
		"t 2 7\n"
		"r 2 1 s=4,0\n";
	size_t n;
	char *text = tu_read_file(path, &n);
	TU_CHECK(text && n == strlen(want) && !memcmp(text, want, n), "trace text:\n%.*s\nexpected:\n%s",
		 (int)n, text ? text : "", want);
	free(text);

	struct offload_trace *t;
	TU_CHECK(offload_trace_load(path, &t, &e) == 0, "load: %s", e.why);
	if (t) {
		TU_CHECK(t->n == 5 && t->ntokens == 2, "records %ld tokens %ld, expected 5 and 2", t->n, t->ntokens);
		TU_CHECK(t->h.layers == 4 && t->h.experts == 16 && t->h.k == 2 && t->h.hash_layers == 1 &&
			 t->h.lookahead == 2, "header");
		static const int32_t pos[5] = { 0, 0, 0, 0, 2 }, lay[5] = { 0, 1, 2, 3, 1 }, tok[5] = { 42, 42, 42, 42, 7 };
		/* [record][part: s, h, d1, d2][k] */
		static const int32_t ids[5][4][2] = {
			{ { 3, 5 }, { 3, 5 }, { -1, -1 }, { -1, -1 } },
			{ { 4, 0 }, { -1, -1 }, { -1, -1 }, { -1, -1 } },
			{ { 9, 7 }, { -1, -1 }, { 7, 9 }, { -1, -1 } },
			{ { 2, 15 }, { -1, -1 }, { 2, 11 }, { 1, 2 } },
			{ { 4, 0 }, { -1, -1 }, { -1, -1 }, { -1, -1 } },
		};
		for (long i = 0; i < 5 && i < t->n; i++) {
			TU_CHECK(t->pos[i] == pos[i] && t->layer[i] == lay[i] && t->token[i] == tok[i],
				 "record %ld: pos %d layer %d token %d, expected %d %d %d", i, t->pos[i], t->layer[i],
				 t->token[i], pos[i], lay[i], tok[i]);
			for (int p = 0; p < 4; p++)
				for (int j = 0; j < 2; j++)
					TU_CHECK(offload_trace_ids(t, i, p)[j] == ids[i][p][j], "record %ld part %d id %d: %d, expected %d",
						 i, p, j, offload_trace_ids(t, i, p)[j], ids[i][p][j]);
		}
		offload_trace_free(t);
	}

	const char *H = "nvmoe-trace 1 layers=2 experts=8 k=2 hash=0 lookahead=1\n";
	char buf[512];
	bad("empty", "", NV_EFORMAT, "no trace header");
	bad("nohdr", "r 0 0 s=1,2\n", NV_EFORMAT, "line 1");
	bad("ver", "nvmoe-trace 2 layers=2 experts=8 k=2 hash=0 lookahead=1\n", NV_EUNSUPPORTED, "version");
	bad("geom", "nvmoe-trace 1 layers=2 experts=8 k=0 hash=0 lookahead=1\n", NV_EINVAL, "k 0");
	snprintf(buf, sizeof buf, "%sr 0 2 s=1,2\n", H);
	bad("layer", buf, NV_EFORMAT, "line 2");
	snprintf(buf, sizeof buf, "%s# c\nr 0 1 s=1,8\n", H);
	bad("expert", buf, NV_EFORMAT, "line 3");
	snprintf(buf, sizeof buf, "%sr 0 1 s=1,2,3\n", H);
	bad("toomany", buf, NV_EFORMAT, "line 2");
	snprintf(buf, sizeof buf, "%sr 0 1 s=1,2 d2=1\n", H);
	bad("depth", buf, NV_EFORMAT, "line 2");
	snprintf(buf, sizeof buf, "%sr 0 1 h=1\n", H);
	bad("nosel", buf, NV_EFORMAT, "without s=");
	snprintf(buf, sizeof buf, "%st 0\n", H);
	bad("tok", buf, NV_EFORMAT, "line 2");
	snprintf(buf, sizeof buf, "%sx 1 2\n", H);
	bad("kind", buf, NV_EFORMAT, "unknown line");

	struct offload_trace_writer *w2;
	TU_CHECK(offload_trace_writer_create("/nonexistent-dir/x.trace", &h, 1, &w2, &e) < 0 &&
		 strstr(e.why, "cannot create"), "unwritable path: %s", e.why);

	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) fprintf(stderr, "cleanup failed\n");
	TU_DONE();
}
