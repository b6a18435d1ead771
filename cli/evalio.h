/* cli/evalio.h - small file helpers shared by `nvmoe golden` and `nvmoe eval`:
 * token lists, whole files, comparison statistics.  cli-internal. */
#ifndef NV_CLI_EVALIO_H
#define NV_CLI_EVALIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Read a JSON token list: either [ids...] or {"tokens": [...], "prefill_len": P}.
 * *prefill gets prefill_len (or -1).  *tok is malloc'ed. */
int cli_read_tokens(const char *path, int32_t **tok, int *n, int *prefill, struct nv_err *e);
/* Whole file into a malloc'ed buffer (+1 NUL byte). */
int cli_read_file(const char *path, char **buf, size_t *n, struct nv_err *e);
/* Write n bytes to path atomically (temp name + rename). */
int cli_write_atomic(const char *path, const void *buf, size_t n, struct nv_err *e);

/* Summary of per-row relative errors. */
struct cli_rowstats {
	int n;
	double median, p90, p99, max;
	double frac_1e4, frac_1e2; /* fraction of rows with error < 1e-4 / < 1e-2 */
	int worst;                 /* row of the max */
};
/* rel[i] = max_j |a[i,j] - b[i,j]| / max_j |b[i,j]| for rows of n; fills st. */
void cli_row_rel(const float *a, const float *b, int rows, int n, double *rel, struct cli_rowstats *st);
void cli_rowstats(double *v, int n, struct cli_rowstats *st); /* sorts a copy */

#endif
