/* tests/offload_testlib.h - helpers of the offload tests: pattern files whose every
 * byte is known from a formula (the independent reference), temp paths. */
#ifndef NV_OFFLOAD_TESTLIB_H
#define NV_OFFLOAD_TESTLIB_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

/* Byte i of pattern `seed`: a mix of the offset so that misplaced data shows. */
static inline uint8_t ot_byte(uint64_t i, uint32_t seed)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32);
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	return (uint8_t)(x >> 56);
}

/* A directory for test files on a real filesystem (O_DIRECT capable): the
 * build tree.  Caller frees. */
static inline char *ot_tmpdir(const char *tag)
{
	const char *b = getenv("NV_BUILD");
	char *p = malloc(4096);
	snprintf(p, 4096, "%s/ot-%s-XXXXXX", b && *b ? b : ".", tag);
	if (!mkdtemp(p)) { perror("mkdtemp"); exit(1); }
	return p;
}

static inline int ot_write_pattern(const char *path, uint64_t n, uint32_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) return -1;
	uint8_t buf[65536];
	for (uint64_t o = 0; o < n;) {
		size_t k = n - o < sizeof buf ? (size_t)(n - o) : sizeof buf;
		for (size_t i = 0; i < k; i++) buf[i] = ot_byte(o + i, seed);
		if (write(fd, buf, k) != (ssize_t)k) { close(fd); return -1; }
		o += k;
	}
	fsync(fd);
	close(fd);
	return 0;
}

/* Index of the first byte of buf[0..n) that differs from the pattern at file
 * offset off, or -1. */
static inline long long ot_check(const uint8_t *buf, uint64_t n, uint64_t off, uint32_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		if (buf[i] != ot_byte(off + i, seed)) return (long long)i;
	return -1;
}

static inline void ot_rm_rf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) { /* best effort */ }
}
#endif
