/* tests/testutil.h - small helpers shared by the C tests.
 *
 * Contract: test programs exit 0 on pass, 1 on failure, 77 when skipped (a needed
 * input such as ../shared or a GPU is absent).  Failures print index, got and
 * expected.  Paths come from the environment set by ctest (NV_SHARED, NV_TESTDATA,
 * NV_BUILD).
 */
#ifndef NV_TESTUTIL_H
#define NV_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>

extern int tu_failures;

/* $NV_SHARED (or ../shared next to the source tree); NULL when absent. */
const char *tu_shared_dir(void);
/* exit(77) with a message when the shared dir is absent; returns it otherwise. */
const char *tu_require_shared(void);
/* Read a whole file; NULL on failure (message printed). *n gets the size. */
void *tu_read_file(const char *path, size_t *n);
void tu_skip(const char *why) __attribute__((noreturn));
/* Write a model with $NV_BUILD/mkmodel --preset PRESET [EXTRA] into DIR/PRESET and open it
 * (default checkpoint options); exits 1 with the message on failure. */
struct core_ckpt;
struct core_ckpt *tu_mkmodel_open(const char *dir, const char *preset, const char *extra);

#define TU_CHECK(cond, ...) do { if (!(cond)) { tu_failures++; \
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); \
	fprintf(stderr, "\n"); } } while (0)
#define TU_DONE() do { if (tu_failures) { fprintf(stderr, "%d failure(s)\n", tu_failures); return 1; } \
	printf("ok\n"); return 0; } while (0)
#endif
