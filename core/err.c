/* core/err.c - struct nv_err helpers. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_str(char *dst, size_t n, const char *src)
{
	if (!src) src = "";
	snprintf(dst, n, "%s", src);
}

int core_err_set(struct nv_err *e, int code, const char *file, const char *object,
		 const char *hint, const char *fmt, ...)
{
	if (!e) return code;
	e->code = code;
	e->is_warning = 0;
	copy_str(e->file, sizeof e->file, file);
	copy_str(e->object, sizeof e->object, object);
	copy_str(e->hint, sizeof e->hint, hint);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof e->why, fmt, ap);
	va_end(ap);
	return code;
}

void core_err_clear(struct nv_err *e)
{
	if (e) memset(e, 0, sizeof *e);
}

const char *core_err_name(int code)
{
	switch (code) {
	case 0: return "ok";
	case NV_EINVAL: return "invalid input";
	case NV_EFORMAT: return "bad format";
	case NV_EMISSING: return "missing";
	case NV_ENOMEM: return "out of memory";
	case NV_ERANGE: return "out of range";
	case NV_ECHECKSUM: return "checksum mismatch";
	case NV_EIO: return "I/O error";
	case NV_EUNSUPPORTED: return "unsupported";
	case NV_ECANCELED: return "canceled";
	case NV_EFIT: return "does not fit";
	default: break;
	}
	if (code < 0 && code > -4096) return strerror(-code);
	return "error";
}

const char *core_err_str(const struct nv_err *e, char *buf, size_t n)
{
	if (!e) { snprintf(buf, n, "unknown error"); return buf; }
	size_t o = 0;
	buf[0] = 0;
#define APP(...) do { if (o < n) { int k = snprintf(buf + o, n - o, __VA_ARGS__); if (k > 0) o += (size_t)k; } } while (0)
	if (e->file[0]) APP("%s: ", e->file);
	if (e->object[0]) APP("%s: ", e->object);
	APP("%s", e->why[0] ? e->why : core_err_name(e->code));
	if (e->hint[0]) APP(" (hint: %s)", e->hint);
#undef APP
	return buf;
}

const char *core_fmt_count(char *buf, size_t n, unsigned long long v)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof tmp, "%llu", v), o = 0;
	for (int i = 0; i < len && o + 2 < (int)n; i++) {
		if (i && (len - i) % 3 == 0) buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = 0;
	return buf;
}

void core_check_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "nvmoe: internal error: CHECK(%s) failed at %s:%d\n", expr, file, line);
	abort();
}
