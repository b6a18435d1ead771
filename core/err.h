/* core/err.h - the one error convention of nvmoe.
 *
 * Contract
 *   Every function that can fail returns int: 0 on success, a negative value on
 *   failure (OS errors as -errno, others as one of the NV_E* codes below), and, when
 *   its `struct nv_err *` argument is non-NULL, fills it with what failed (file or
 *   operation), on which object (tensor, layer/expert, key), why, and a hint the user
 *   can act on.  Only cli/ and tools/ print errors or exit.
 *   CHECK() is for broken internal invariants only (a bug in nvmoe), never for bad
 *   input: it prints the location and aborts.
 *   Thread-safety: a struct nv_err belongs to one caller; nothing here is global.
 */
#ifndef NV_CORE_ERR_H
#define NV_CORE_ERR_H

#include <stddef.h>

enum {
	NV_EINVAL = -1000, /* malformed input: bad JSON, bad header, bad shape */
	NV_EFORMAT,        /* file is not what it claims (truncated, wrong magic) */
	NV_EMISSING,       /* required file / tensor / key absent */
	NV_ENOMEM,         /* allocation or memory limit */
	NV_ERANGE,         /* value out of range */
	NV_ECHECKSUM,      /* stored checksum does not match the data */
	NV_EIO,            /* I/O error not covered by errno */
	NV_EUNSUPPORTED,   /* valid but not implemented by this build */
	NV_ECANCELED,      /* operation stopped by the user */
	NV_EFIT,           /* a plan or budget does not fit */
};

struct nv_err {
	int code;        /* the value the failing function returned */
	char file[512];  /* file or operation that failed ("" when none) */
	char object[256];/* tensor, key, (layer, expert) ... ("" when none) */
	char why[768];   /* the cause, with expected vs found where that applies */
	char hint[384];  /* what the user can do ("" when nothing useful) */
	int is_warning;  /* unused for errors; set by checkers that collect warnings */
};

/* Fill e (if non-NULL) and return code.  file/object/hint may be NULL. */
int core_err_set(struct nv_err *e, int code, const char *file, const char *object,
		 const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Clear e (if non-NULL). */
void core_err_clear(struct nv_err *e);

/* One line "file: object: why (hint: ...)" into buf; returns buf. */
const char *core_err_str(const struct nv_err *e, char *buf, size_t n);

/* Short name of an error code ("I/O error", "bad input", strerror for -errno). */
const char *core_err_name(int code);

/* "159,609,485,896": thousands separators make byte counts in messages readable. */
const char *core_fmt_count(char *buf, size_t n, unsigned long long v);

void core_check_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define CHECK(x) do { if (!(x)) core_check_fail(#x, __FILE__, __LINE__); } while (0)

#endif
