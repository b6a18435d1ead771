/* tests/fuzz/fuzz_store.c - libFuzzer target for the expert store reader
 * (offload_store_open + offload_store_verify).
 *
 * A valid store of a tiny geometry (1 layer + 1 MTP block, 2 experts, hidden 32,
 * intermediate 32) is written once; each input edits a copy of it, so the fuzzer
 * starts from a file that passes and reaches every check.  Input: byte 0 = flags
 * (bit 0: recompute the header checksum after the edits, bit 1: recompute the index
 * checksum from the header's index fields, bit 2: cut the file to the length in
 * bytes 1-2), then 3-byte edits (little-endian u16 offset modulo the file size,
 * byte value).  Recomputing the checksums lets edits of geometry fields reach the
 * layout checks instead of stopping at the checksum.  Every refusal must come with
 * a message; a store that opens must have exactly the file size it claims. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "offload/store.h"

static uint8_t *g_base;   /* the valid store */
static size_t g_size;
static char g_path[64];   /* /proc/self/fd/N of a memfd holding the edited copy */
static int g_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	char dir[] = "/tmp/nv-fuzz-store-XXXXXX", path[128];
	struct nv_err e;
	struct offload_store_geom g;
	struct offload_store_writer *w;
	if (!mkdtemp(dir)) abort();
	snprintf(path, sizeof path, "%s/experts.nvmoe", dir);
	if (offload_store_geom_init(&g, 1, 2, 2, 32, 32, &e) || offload_store_writer_create(path, &g, &w, &e)) abort();
	uint8_t *part[OFFLOAD_NPARTS];
	for (int p = 0; p < OFFLOAD_NPARTS; p++) {
		part[p] = malloc(g.part_size[p]);
		for (uint64_t i = 0; i < g.part_size[p]; i++) part[p][i] = (uint8_t)(i * 7 + (unsigned)p);
	}
	for (int b = 0; b < 2; b++)
		for (int x = 0; x < 2; x++)
			if (offload_store_writer_put(w, b, x, (const uint8_t *const *)part, &e)) abort();
	if (offload_store_writer_finish(w, &e)) abort();
	offload_store_writer_destroy(w);
	for (int p = 0; p < OFFLOAD_NPARTS; p++) free(part[p]);
	FILE *f = fopen(path, "rb");
	if (!f) abort();
	g_size = (size_t)g.file_size;
	g_base = malloc(g_size);
	if (fread(g_base, 1, g_size, f) != g_size) abort();
	fclose(f);
	unlink(path);
	rmdir(dir);
	g_fd = memfd_create("store", 0);
	if (g_fd < 0) abort();
	snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
	/* the unedited copy must open and verify, or every input would stop early */
	struct offload_store *s;
	int nbad = 0;
	if (pwrite(g_fd, g_base, g_size, 0) != (ssize_t)g_size || offload_store_open(g_path, &g, &s, &e) ||
	    offload_store_verify(s, NULL, NULL, NULL, &nbad, &e))
		abort();
	offload_store_close(s);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	uint8_t *buf = malloc(g_size);
	memcpy(buf, g_base, g_size);
	size_t len = g_size;
	uint8_t flags = n ? data[0] : 0;
	size_t i = 1;
	if ((flags & 4) && n >= 3) {
		len = ((size_t)data[1] | (size_t)data[2] << 8) % (g_size + 1);
		i = 3;
	}
	for (; i + 3 <= n; i += 3) {
		size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % g_size;
		buf[off] = data[i + 2];
	}
	struct offload_store_hdr h;
	memcpy(&h, buf, sizeof h);
	if ((flags & 2) && h.index_off < g_size && h.index_size <= g_size - h.index_off)
		h.index_xxh64 = XXH64(buf + h.index_off, (size_t)h.index_size, 0);
	if (flags & 1) h.header_xxh64 = XXH64(&h, offsetof(struct offload_store_hdr, header_xxh64), 0);
	memcpy(buf, &h, sizeof h);

	if (ftruncate(g_fd, 0) || pwrite(g_fd, buf, len, 0) != (ssize_t)len) abort();
	struct offload_store *s = NULL;
	struct nv_err e = {0};
	int rc = offload_store_open(g_path, NULL, &s, &e);
	if (rc) {
		if (!e.why[0] || s) abort();
	} else {
		const struct offload_store_geom *g = offload_store_geometry(s);
		if (g->file_size != len) abort();
		int nbad = 0;
		rc = offload_store_verify(s, NULL, NULL, NULL, &nbad, &e);
		if (rc && (!e.why[0] || nbad < 1)) abort();
		offload_store_close(s);
	}
	free(buf);
	return 0;
}
