/* core/chat_internal.h - string buffer and Python-compatible JSON writer shared by
 * chat.c, chat_json.c and chat_parse.c.  Not a public header: include core/chat.h. */
#ifndef NV_CORE_CHAT_INTERNAL_H
#define NV_CORE_CHAT_INTERNAL_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Growable byte string; oom is sticky (checked once at the end). */
struct sbuf {
	char *p; /* [cap], NUL-terminated when n < cap */
	size_t n, cap;
	int oom;
};
void sb_add(struct sbuf *b, const char *s, size_t n);
void sb_adds(struct sbuf *b, const char *s);
/* JSON string literal of s[0..n) as json.dumps(ensure_ascii=False) writes it. */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
/* A value as json.dumps(v, ensure_ascii=False) writes it (B.9); duplicate object
 * keys are written once, at the first key's place with the last value, like a
 * Python dict. */
void sb_json(struct sbuf *b, const cJSON *v);
/* Python repr() of a float. */
void sb_py_float(struct sbuf *b, double v);
/* The members of object o as a Python dict sees them: first-occurrence order,
 * last value.  *out (malloc'ed, caller frees) gets the value nodes; returns the
 * count, or -1 when out of memory.  O(k log k). */
int json_dict(const cJSON *o, const cJSON ***out);
/* Last member named k among o's children (Python dict semantics), or NULL. */
const cJSON *json_get(const cJSON *o, const char *k);

#endif
