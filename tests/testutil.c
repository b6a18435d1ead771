#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
