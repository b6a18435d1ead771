/* tests/test_perf_huge.c - cache_huge_map: 2 MiB-aligned anonymous memory, writable
 * over its whole length, advised for transparent huge pages (VmFlags "hg" in
 * /proc/self/smaps) when the kernel's THP mode allows it; the host cache pool
 * comes from it (2 MiB-aligned base). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/host.h"
#include "testutil.h"

#define MiB2 ((uintptr_t)2 << 20)

static int fails;

/* THP mode word ("always", "madvise", "never") or "" when the file is absent */
static void thp_mode(char *out, size_t n)
{
	out[0] = 0;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f) return;
	char line[128];
	if (fgets(line, sizeof line, f)) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b) snprintf(out, n, "%.*s", (int)(b - a - 1), a + 1);
	}
	fclose(f);
}

/* 1 when the VMA starting at or containing p has flag "hg" (VM_HUGEPAGE), 0 when
 * not, -1 when p's VMA is not found */
static int vma_hg(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f) return -1;
	char line[512];
	int in = 0, r = -1;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			r = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return r;
}

int main(void)
{
	char thp[32];
	thp_mode(thp, sizeof thp);
	int advisable = !strcmp(thp, "always") || !strcmp(thp, "madvise");
	printf("THP mode '%s'\n", thp);
	const size_t sizes[] = { 1, 4096, ((size_t)3 << 20) + 17, (size_t)8 << 20 };
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		size_t n = sizes[i];
		unsigned char *p = cache_huge_map(n);
		if (!p) { printf("FAIL: cache_huge_map(%zu) returned NULL\n", n); fails++; continue; }
		if ((uintptr_t)p % MiB2) { printf("FAIL: size %zu: base %p not 2 MiB aligned\n", n, (void *)p); fails++; }
		/* every page writable, values read back */
		for (size_t j = 0; j < n; j += 4096) p[j] = (unsigned char)(j >> 12 | 1);
		p[n - 1] = 0xA5;
		for (size_t j = 0; j + 1 < n; j += 4096)
			if (p[j] != (unsigned char)(j >> 12 | 1)) {
				printf("FAIL: size %zu: byte %zu got %u expected %u\n", n, j, p[j], (unsigned)(j >> 12 | 1));
				fails++;
				break;
			}
		if (p[n - 1] != 0xA5) { printf("FAIL: size %zu: last byte got %u expected 165\n", n, p[n - 1]); fails++; }
		int hg = vma_hg(p);
		if (advisable && hg != 1) {
			printf("FAIL: size %zu: THP '%s' but the mapping is not advised (VmFlags hg: %d)\n", n, thp, hg);
			fails++;
		}
		cache_huge_unmap(p, n);
		if (vma_hg(p) != -1 && vma_hg(p + n - 1) != -1) {
			printf("FAIL: size %zu: mapping still present after cache_huge_unmap\n", n);
			fails++;
		}
	}
	if (cache_huge_map(0) != NULL) { printf("FAIL: cache_huge_map(0) expected NULL\n"); fails++; }
	cache_huge_unmap(NULL, 123); /* no-op */

	/* the host cache pool: 2 MiB aligned, advised */
	struct cache_host_opts o = { .nslots = 3, .slot_size = 700000, .nblocks = 2, .nexperts = 4, .allow_unlocked = 1 };
	struct cache_host *c = NULL;
	struct nv_err e;
	if (cache_host_create(&o, &c, &e)) {
		char b[1024];
		printf("FAIL: cache_host_create: %s\n", core_err_str(&e, b, sizeof b));
		return 1;
	}
	char *base = cache_host_base(c);
	if ((uintptr_t)base % MiB2) { printf("FAIL: host cache base %p not 2 MiB aligned\n", (void *)base); fails++; }
	if (cache_host_bytes(c) != 3 * ((700000 + 4095) & ~(size_t)4095)) {
		printf("FAIL: host cache bytes got %zu expected %zu\n", cache_host_bytes(c), 3 * ((700000 + 4095) & ~(size_t)4095));
		fails++;
	}
	memset(base, 0x5A, cache_host_bytes(c));
	if (advisable && vma_hg(base) != 1) { printf("FAIL: host cache pool not advised for huge pages\n"); fails++; }
	cache_host_destroy(c);
	if (!fails) printf("ok: huge mappings aligned, writable, advised (THP '%s')\n", thp);
	return fails ? 1 : 0;
}
