#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/ckpt.h"

int tu_failures;

const char *tu_shared_dir(void)
{
	const char *s = getenv("NV_SHARED");
	struct stat st;
	if (s && stat(s, &st) == 0 && S_ISDIR(st.st_mode)) return s;
	return NULL;
}

void tu_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

const char *tu_require_shared(void)
{
	const char *s = tu_shared_dir();
	if (!s) tu_skip("../shared is absent");
	return s;
}

void *tu_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc(sz > 0 ? (size_t)sz + 1 : 1);
	if (!buf) { fclose(f); return NULL; }
	size_t got = fread(buf, 1, (size_t)sz, f);
	fclose(f);
	((char *)buf)[got] = 0;
	if (n) *n = got;
	return buf;
}

struct core_ckpt *tu_mkmodel_open(const char *dir, const char *preset, const char *extra)
{
	const char *bd = getenv("NV_BUILD");
	char cmd[1536], out[600];
	snprintf(out, sizeof out, "%s/%s", dir, preset);
	snprintf(cmd, sizeof cmd, "%s/mkmodel --preset %s %s --out %s --quiet", bd ? bd : "build", preset,
		 extra ? extra : "", out);
	if (system(cmd)) {
		fprintf(stderr, "FAIL: %s\n", cmd);
		exit(1);
	}
	struct core_ckpt *ck;
	struct nv_err e = {0};
	struct core_ckpt_opts o = {0};
	if (core_ckpt_open(out, &o, &ck, &e)) {
		char b[2048];
		fprintf(stderr, "FAIL: %s\n", core_err_str(&e, b, sizeof b));
		exit(1);
	}
	return ck;
}
