/* core/chat.c - rendering a conversation into the DeepSeek-V4 prompt (CHAT.md
 * B.1-B.10) and reading request files. */
#include "chat.h"
#include "chat_internal.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LATEST "<\xef\xbd\x9clatest_reminder\xef\xbd\x9c>"
#define S_DSML CORE_CHAT_DSML

static const char k_think_max[] =
	"Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
	"You MUST be very thorough in your thinking and comprehensively decompose the problem to "
	"resolve the root cause, rigorously stress-testing your logic against all potential paths, "
	"edge cases, and adversarial scenarios.\n"
	"Explicitly write out your entire deliberation process, documenting every intermediate step, "
	"considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
	"unchecked.\n\n";

static const char k_tools_head[] =
	"## Tools\n\n"
	"You have access to a set of tools to help answer the user's question. You can invoke tools "
	"by writing a \"<" S_DSML "tool_calls>\" block like the following:\n\n"
	"<" S_DSML "tool_calls>\n"
	"<" S_DSML "invoke name=\"$TOOL_NAME\">\n"
	"<" S_DSML "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" S_DSML
	"parameter>\n"
	"...\n"
	"</" S_DSML "invoke>\n"
	"<" S_DSML "invoke name=\"$TOOL_NAME2\">\n"
	"...\n"
	"</" S_DSML "invoke>\n"
	"</" S_DSML "tool_calls>\n\n"
	"String parameters should be specified as is and set `string=\"true\"`. For all other types "
	"(numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
	"If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning "
	"inside <think>...</think> BEFORE any tool calls or final response.\n\n"
	"Otherwise, output directly after </think> with tool calls or final response.\n\n"
	"### Available Tool Schemas\n\n";
static const char k_tools_tail[] =
	"\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke "
	"tool calls.\n";
static const char k_rf_head[] =
	"## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

enum role { R_SYSTEM, R_USER, R_ASSISTANT, R_TOOL, R_REMINDER, R_DEVELOPER };
static const char *const k_roles[] = {"system", "user", "assistant", "tool", "latest_reminder",
				      "developer"};

static const char *const k_tasks[] = {"action", "query", "authority", "domain", "title", "read_url"};
static const char *const k_task_tok[] = {
	"<\xef\xbd\x9c" "action\xef\xbd\x9c>", "<\xef\xbd\x9cquery\xef\xbd\x9c>",
	"<\xef\xbd\x9c" "authority\xef\xbd\x9c>", "<\xef\xbd\x9c" "domain\xef\xbd\x9c>",
	"<\xef\xbd\x9ctitle\xef\xbd\x9c>", "<\xef\xbd\x9cread_url\xef\xbd\x9c>"};

enum { B_TEXT, B_RESULT };
struct blk {
	int type;
	const char *text;      /* B_TEXT */
	const cJSON *content;  /* B_RESULT: string, list of blocks, or NULL */
	const char *use_id;    /* B_RESULT: tool_call_id or "" */
	int src;               /* index of the source message (for messages) */
};

struct msg {
	enum role role;
	int src;                 /* index into context + messages */
	const cJSON *obj;        /* source message */
	const char *content;     /* NULL = absent */
	const char *reasoning;   /* NULL = absent or dropped */
	const cJSON *tool_calls, *tools, *rf;
	int task;                /* index into k_tasks, -1 none */
	int wo_eos;
	int has_blocks;
	struct blk *blk;         /* [nblk] */
	int nblk, capblk;
};

struct rctx {
	struct msg *m; /* [n] */
	int n, cap;
	int n_ctx_src;  /* source messages in context */
	struct nv_err *e;
	const struct core_chat_opts *o;
};

static void src_name(const struct rctx *r, int src, char *buf, size_t n)
{
	if (src < r->n_ctx_src) snprintf(buf, n, "context[%d]", src);
	else snprintf(buf, n, "messages[%d]", src - r->n_ctx_src);
}

static int bad(struct rctx *r, int src, const char *field, const char *hint, const char *why)
{
	char obj[128];
	src_name(r, src, obj, sizeof obj);
	if (field) {
		size_t l = strlen(obj);
		snprintf(obj + l, sizeof obj - l, ".%s", field);
	}
	return core_err_set(r->e, NV_EINVAL, "chat template", obj, hint, "%s", why);
}

/* Optional string field: absent/null -> NULL; other types are an error. */
static int str_field(struct rctx *r, int src, const cJSON *o, const char *k, const char **out)
{
	const cJSON *v = json_get(o, k);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) return 0;
	if (!cJSON_IsString(v))
		return bad(r, src, k, "flatten content parts into one string", "expected a string or null");
	size_t l = strlen(v->valuestring), ok = core_utf8_valid_prefix(v->valuestring, l);
	if (ok != l) {
		char why[96];
		snprintf(why, sizeof why, "invalid UTF-8 at byte %zu of the string", ok);
		return bad(r, src, k, "strings must be UTF-8", why);
	}
	*out = v->valuestring;
	return 0;
}

static struct msg *push_msg(struct rctx *r)
{
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 16;
		struct msg *m = realloc(r->m, (size_t)cap * sizeof *m);
		if (!m) return NULL;
		r->m = m;
		r->cap = cap;
	}
	struct msg *m = &r->m[r->n++];
	memset(m, 0, sizeof *m);
	m->task = -1;
	return m;
}

static int push_blk(struct msg *m, struct blk b)
{
	if (m->nblk == m->capblk) {
		int cap = m->capblk ? m->capblk * 2 : 4;
		struct blk *p = realloc(m->blk, (size_t)cap * sizeof *p);
		if (!p) return -1;
		m->blk = p;
		m->capblk = cap;
	}
	m->blk[m->nblk++] = b;
	return 0;
}

static int nonempty_array(const cJSON *v)
{
	return cJSON_IsArray(v) && v->child;
}

/* B.2 step 1 for one source message. */
static int merge_one(struct rctx *r, const cJSON *o, int src)
{
	if (!cJSON_IsObject(o)) return bad(r, src, NULL, NULL, "a message must be a JSON object");
	const char *role;
	int rc = str_field(r, src, o, "role", &role);
	if (rc) return rc;
	int ri = -1;
	for (int i = 0; role && i < 6; i++)
		if (!strcmp(role, k_roles[i])) ri = i;
	if (ri < 0)
		return bad(r, src, "role",
			   "roles are system, user, assistant, tool, latest_reminder, developer",
			   role ? "unknown role" : "missing role");
	const char *content = NULL;
	const cJSON *cv = json_get(o, "content");
	if (ri == R_TOOL && cJSON_IsArray(cv)) {
		/* a list of blocks: rendered at B.4 */
	} else if ((rc = str_field(r, src, o, "content", &content))) {
		return rc;
	}
	const char *task_s = NULL;
	if ((rc = str_field(r, src, o, "task", &task_s))) return rc;
	int task = -1;
	if (task_s) {
		for (int i = 0; i < 6; i++)
			if (!strcmp(task_s, k_tasks[i])) task = i;
		if (task < 0)
			return bad(r, src, "task", "tasks are action, query, authority, domain, title, read_url",
				   "unknown task");
	}
	const cJSON *wo = json_get(o, "wo_eos");
	int wo_eos = cJSON_IsTrue(wo) || (cJSON_IsNumber(wo) && wo->valuedouble != 0);
	struct msg *last = r->n ? &r->m[r->n - 1] : NULL;

	if (ri == R_TOOL) {
		struct blk b = {B_RESULT, NULL, NULL, "", src};
		const char *id = NULL;
		if ((rc = str_field(r, src, o, "tool_call_id", &id))) return rc;
		if (id) b.use_id = id;
		b.content = cv && !cJSON_IsNull(cv) ? cv : NULL;
		if (!(last && last->role == R_USER && last->has_blocks)) {
			last = push_msg(r);
			if (!last) goto oom;
			last->role = R_USER;
			last->src = src;
			last->obj = o;
			last->has_blocks = 1;
		}
		if (push_blk(last, b)) goto oom;
		return 0;
	}
	if (ri == R_USER) {
		struct blk b = {B_TEXT, content ? content : "", NULL, NULL, src};
		if (!(last && last->role == R_USER && last->has_blocks && last->task < 0)) {
			last = push_msg(r);
			if (!last) goto oom;
			last->role = R_USER;
			last->src = src;
			last->obj = o;
			last->content = content;
			last->has_blocks = 1;
			last->task = task;
			last->wo_eos = wo_eos;
		}
		if (push_blk(last, b)) goto oom;
		return 0;
	}
	struct msg *m = push_msg(r);
	if (!m) goto oom;
	m->role = (enum role)ri;
	m->src = src;
	m->obj = o;
	m->content = content;
	m->task = task;
	m->wo_eos = wo_eos;
	if ((rc = str_field(r, src, o, "reasoning_content", &m->reasoning))) return rc;
	m->tool_calls = json_get(o, "tool_calls");
	if (m->tool_calls && !cJSON_IsNull(m->tool_calls) && !cJSON_IsArray(m->tool_calls))
		return bad(r, src, "tool_calls", NULL, "expected a list");
	m->tools = json_get(o, "tools");
	if (m->tools && !cJSON_IsNull(m->tools) && !cJSON_IsArray(m->tools))
		return bad(r, src, "tools", NULL, "expected a list");
	m->rf = json_get(o, "response_format");
	if (m->rf && cJSON_IsNull(m->rf)) m->rf = NULL;
	return 0;
oom:
	return core_err_set(r->e, NV_ENOMEM, "chat template", NULL, NULL, "out of memory");
}

/* Call id of a tool call: its "id", else function.id. */
static const char *call_id(const cJSON *call)
{
	const cJSON *id = json_get(call, "id");
	if (cJSON_IsString(id)) return id->valuestring;
	id = json_get(json_get(call, "function"), "id");
	return cJSON_IsString(id) ? id->valuestring : NULL;
}

/* B.2 step 2: tool results in call order (stable, unknown ids as index 0).
 * -1 when out of memory. */
static int sort_results(struct rctx *r)
{
	const cJSON *calls = NULL;
	for (int i = 0; i < r->n; i++) {
		struct msg *m = &r->m[i];
		if (m->role == R_ASSISTANT && nonempty_array(m->tool_calls)) calls = m->tool_calls;
		if (m->role != R_USER) continue;
		int nres = 0;
		for (int k = 0; k < m->nblk; k++) nres += m->blk[k].type == B_RESULT;
		if (nres < 2) continue;
		/* stable sort of the result blocks, put back into their slots */
		int *pos = malloc((size_t)nres * sizeof *pos), *key = malloc((size_t)nres * sizeof *key);
		struct blk *res = malloc((size_t)nres * sizeof *res), *tmp = malloc((size_t)nres * sizeof *tmp);
		int *tkey = malloc((size_t)nres * sizeof *tkey);
		if (!pos || !key || !res || !tmp || !tkey) {
			free(pos); free(key); free(res); free(tmp); free(tkey);
			return -1;
		}
		int j = 0;
		for (int k = 0; k < m->nblk; k++) {
			if (m->blk[k].type != B_RESULT) continue;
			pos[j] = k;
			res[j] = m->blk[k];
			key[j] = 0;
			int idx = 0;
			for (const cJSON *c = calls ? calls->child : NULL; c; c = c->next, idx++) {
				const char *id = call_id(c);
				if (id && !strcmp(id, res[j].use_id)) key[j] = idx; /* a repeated id: the last wins, as in a dict */
			}
			j++;
		}
		/* bottom-up merge sort: stable, O(n log n) */
		for (int w = 1; w < nres; w *= 2) {
			for (int lo = 0; lo < nres; lo += 2 * w) {
				int mid = lo + w < nres ? lo + w : nres, hi = lo + 2 * w < nres ? lo + 2 * w : nres;
				int a = lo, c = mid, o = lo;
				while (a < mid || c < hi) {
					int take_a = c >= hi || (a < mid && key[a] <= key[c]);
					int s = take_a ? a++ : c++;
					tmp[o] = res[s];
					tkey[o++] = key[s];
				}
			}
			memcpy(res, tmp, (size_t)nres * sizeof *res);
			memcpy(key, tkey, (size_t)nres * sizeof *key);
		}
		for (int a = 0; a < nres; a++) m->blk[pos[a]] = res[a];
		free(pos); free(key); free(res); free(tmp); free(tkey);
	}
	return 0;
}

static int check_utf8(struct rctx *r, int src, const char *field, const char *s)
{
	size_t l = strlen(s), ok = core_utf8_valid_prefix(s, l);
	if (ok == l) return 0;
	char why[96];
	snprintf(why, sizeof why, "invalid UTF-8 at byte %zu of the string", ok);
	return bad(r, src, field, "strings must be UTF-8", why);
}

/* A JSON value inside the prompt: all of its strings must be UTF-8. */
static int check_json_utf8(struct rctx *r, int src, const char *field, const cJSON *v)
{
	for (; v; v = v->next) {
		if (v->string && check_utf8(r, src, field, v->string)) return NV_EINVAL;
		if (cJSON_IsString(v) && check_utf8(r, src, field, v->valuestring)) return NV_EINVAL;
		if (v->child && check_json_utf8(r, src, field, v->child)) return NV_EINVAL;
	}
	return 0;
}

static int render_tools(struct rctx *r, const struct msg *m, struct sbuf *b)
{
	sb_add(b, "\n\n", 2);
	sb_adds(b, k_tools_head);
	int i = 0;
	for (const cJSON *t = m->tools->child; t; t = t->next, i++) {
		const cJSON *fn = json_get(t, "function");
		char field[48];
		snprintf(field, sizeof field, "tools[%d].function", i);
		if (!cJSON_IsObject(fn))
			return bad(r, m->src, field, "tools are {\"type\": \"function\", \"function\": {...}}",
				   "missing or not an object");
		if (check_json_utf8(r, m->src, field, fn->child)) return NV_EINVAL;
		if (i) sb_add(b, "\n", 1);
		sb_json(b, fn);
	}
	sb_adds(b, k_tools_tail);
	return 0;
}

static int render_extras(struct rctx *r, const struct msg *m, struct sbuf *b)
{
	int rc;
	if (nonempty_array(m->tools) && (rc = render_tools(r, m, b))) return rc;
	if (m->rf) {
		if (check_json_utf8(r, m->src, "response_format", m->rf)) return NV_EINVAL;
		sb_add(b, "\n\n", 2);
		sb_adds(b, k_rf_head);
		sb_json(b, m->rf);
	}
	return 0;
}

/* B.7: PARAMS of one call. */
static int render_params(struct rctx *r, const struct msg *m, int ci, const cJSON *args, struct sbuf *b)
{
	cJSON *parsed = NULL;
	const cJSON *obj = NULL;
	char field[64];
	snprintf(field, sizeof field, "tool_calls[%d].function.arguments", ci);
	if (cJSON_IsObject(args)) {
		obj = args;
	} else if (cJSON_IsString(args)) {
		if (check_utf8(r, m->src, field, args->valuestring)) return NV_EINVAL;
		if (core_chat_json_parse(args->valuestring, strlen(args->valuestring), "arguments", &parsed,
					 NULL) == 0 && cJSON_IsObject(parsed))
			obj = parsed;
	} else {
		return bad(r, m->src, field, NULL, "expected a JSON string (or object)");
	}
	if (!obj) { /* not a JSON object: one parameter holding the raw text */
		sb_adds(b, "<" S_DSML "parameter name=\"arguments\" string=\"true\">");
		sb_adds(b, args->valuestring);
		sb_adds(b, "</" S_DSML "parameter>");
		cJSON_Delete(parsed);
		return 0;
	}
	const cJSON **vals = NULL;
	int nk = json_dict(obj, &vals); /* a Python dict: first place, last value */
	if (nk < 0) {
		cJSON_Delete(parsed);
		return core_err_set(r->e, NV_ENOMEM, "chat template", NULL, NULL, "out of memory");
	}
	for (int i = 0; i < nk; i++) {
		const cJSON *v = vals[i];
		const char *k = v->string ? v->string : "";
		if (check_utf8(r, m->src, field, k) || check_json_utf8(r, m->src, field, v->child) ||
		    (cJSON_IsString(v) && check_utf8(r, m->src, field, v->valuestring))) {
			free(vals);
			cJSON_Delete(parsed);
			return NV_EINVAL;
		}
		if (i) sb_add(b, "\n", 1);
		sb_adds(b, "<" S_DSML "parameter name=\"");
		sb_adds(b, k);
		if (cJSON_IsString(v)) {
			sb_adds(b, "\" string=\"true\">");
			sb_adds(b, v->valuestring);
		} else {
			sb_adds(b, "\" string=\"false\">");
			sb_json(b, v);
		}
		sb_adds(b, "</" S_DSML "parameter>");
	}
	free(vals);
	cJSON_Delete(parsed);
	return 0;
}

static int render_calls(struct rctx *r, const struct msg *m, struct sbuf *b)
{
	sb_adds(b, "\n\n<" S_DSML "tool_calls>\n");
	int i = 0;
	for (const cJSON *c = m->tool_calls->child; c; c = c->next, i++) {
		const cJSON *fn = json_get(c, "function");
		const cJSON *name = json_get(fn, "name");
		char field[48];
		snprintf(field, sizeof field, "tool_calls[%d].function.name", i);
		if (!cJSON_IsString(name))
			return bad(r, m->src, field,
				   "calls are {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}",
				   "missing or not a string");
		if (check_utf8(r, m->src, field, name->valuestring)) return NV_EINVAL;
		const cJSON *args = json_get(fn, "arguments");
		if (!args) {
			snprintf(field, sizeof field, "tool_calls[%d].function", i);
			return bad(r, m->src, field, NULL, "missing \"arguments\"");
		}
		if (i) sb_add(b, "\n", 1);
		sb_adds(b, "<" S_DSML "invoke name=\"");
		sb_adds(b, name->valuestring);
		sb_adds(b, "\">\n");
		int rc = render_params(r, m, i, args, b);
		if (rc) return rc;
		sb_adds(b, "\n</" S_DSML "invoke>");
	}
	sb_adds(b, "\n</" S_DSML "tool_calls>");
	return 0;
}

static int render_user(struct rctx *r, const struct msg *m, struct sbuf *b)
{
	sb_adds(b, CORE_CHAT_USER);
	for (int k = 0; k < m->nblk; k++) {
		const struct blk *bl = &m->blk[k];
		if (k) sb_add(b, "\n\n", 2);
		if (bl->type == B_TEXT) {
			sb_adds(b, bl->text);
			continue;
		}
		sb_adds(b, "<tool_result>");
		const cJSON *c = bl->content;
		if (cJSON_IsString(c)) {
			if (check_utf8(r, bl->src, "content", c->valuestring)) return NV_EINVAL;
			sb_adds(b, c->valuestring);
		} else if (cJSON_IsArray(c)) {
			int i = 0;
			for (const cJSON *x = c->child; x; x = x->next, i++) {
				const cJSON *ty = json_get(x, "type"), *tx = json_get(x, "text");
				char field[48];
				snprintf(field, sizeof field, "content[%d]", i);
				if (i) sb_add(b, "\n\n", 2);
				if (!cJSON_IsString(ty))
					return bad(r, bl->src, field, NULL, "a content block needs a string \"type\"");
				if (!strcmp(ty->valuestring, "text")) {
					if (!cJSON_IsString(tx))
						return bad(r, bl->src, field, NULL, "a text block needs a string \"text\"");
					if (check_utf8(r, bl->src, field, tx->valuestring)) return NV_EINVAL;
					sb_adds(b, tx->valuestring);
				} else {
					if (check_utf8(r, bl->src, field, ty->valuestring)) return NV_EINVAL;
					sb_adds(b, "[Unsupported ");
					sb_adds(b, ty->valuestring);
					sb_adds(b, "]");
				}
			}
		}
		sb_adds(b, "</tool_result>");
	}
	return 0;
}

/* B.3-B.5 for message i of the (filtered) list. */
static int render_msg(struct rctx *r, int i, int last_user, int drop, struct sbuf *b)
{
	const struct msg *m = &r->m[i];
	const struct core_chat_opts *o = r->o;
	int thinking = o->mode == CORE_CHAT_MODE_THINKING, rc;
	if (i == 0 && thinking && o->effort == CORE_CHAT_EFFORT_MAX) sb_adds(b, k_think_max);
	switch (m->role) {
	case R_SYSTEM:
		if (m->content) sb_adds(b, m->content);
		if ((rc = render_extras(r, m, b))) return rc;
		break;
	case R_DEVELOPER:
		if (!m->content || !m->content[0])
			return bad(r, m->src, "content", NULL, "a developer message needs non-empty content");
		sb_adds(b, CORE_CHAT_USER);
		sb_adds(b, m->content);
		if ((rc = render_extras(r, m, b))) return rc;
		break;
	case R_USER:
		if ((rc = render_user(r, m, b))) return rc;
		break;
	case R_REMINDER:
		sb_adds(b, S_LATEST);
		if (m->content) sb_adds(b, m->content);
		break;
	case R_ASSISTANT:
		if (thinking && !(i > 0 && r->m[i - 1].task >= 0) && (!drop || i > last_user)) {
			if (m->reasoning) sb_adds(b, m->reasoning);
			sb_adds(b, CORE_CHAT_END_THINK);
		}
		if (m->content) sb_adds(b, m->content);
		if (nonempty_array(m->tool_calls) && (rc = render_calls(r, m, b))) return rc;
		if (!m->wo_eos) sb_adds(b, CORE_CHAT_EOS);
		break;
	case R_TOOL:
		CHECK(0); /* merged away by B.2 */
	}
	if (i == r->n - 1 || r->m[i + 1].role == R_ASSISTANT || r->m[i + 1].role == R_REMINDER) {
		if (m->task >= 0) {
			if (m->task == 0) {
				sb_adds(b, CORE_CHAT_ASSISTANT);
				sb_adds(b, thinking ? CORE_CHAT_THINK : CORE_CHAT_END_THINK);
			}
			sb_adds(b, k_task_tok[m->task]);
		} else if (m->role == R_USER || m->role == R_DEVELOPER) {
			sb_adds(b, CORE_CHAT_ASSISTANT);
			if (!thinking) sb_adds(b, CORE_CHAT_END_THINK);
			else if (!drop || i == last_user) sb_adds(b, CORE_CHAT_THINK);
			else sb_adds(b, CORE_CHAT_END_THINK);
		}
	}
	return 0;
}

void core_chat_opts_init(struct core_chat_opts *o)
{
	o->mode = CORE_CHAT_MODE_CHAT;
	o->effort = CORE_CHAT_EFFORT_NONE;
	o->drop_thinking = 1;
	o->add_bos = 1;
}

static void free_msgs(struct rctx *r)
{
	for (int i = 0; i < r->n; i++) free(r->m[i].blk);
	free(r->m);
	r->m = NULL;
	r->n = r->cap = 0;
}

int core_chat_render(const cJSON *messages, const cJSON *context, const struct core_chat_opts *o,
		     char **out, size_t *n, struct nv_err *e)
{
	*out = NULL;
	*n = 0;
	struct rctx r = {0};
	r.e = e;
	r.o = o;
	if (!cJSON_IsArray(messages))
		return core_err_set(e, NV_EINVAL, "chat template", "messages", NULL, "expected a list of messages");
	if (context && !cJSON_IsNull(context) && !cJSON_IsArray(context))
		return core_err_set(e, NV_EINVAL, "chat template", "context", NULL, "expected a list of messages");
	if (context && !cJSON_IsArray(context)) context = NULL;
	r.n_ctx_src = context ? cJSON_GetArraySize(context) : 0;
	int rc = 0, src = 0;
	/* the context alone, for B.5's bookkeeping: how many merged messages it makes */
	for (const cJSON *c = context ? context->child : NULL; c; c = c->next, src++)
		if ((rc = merge_one(&r, c, src))) goto out;
	int n_ctx = r.n;
	free_msgs(&r);
	src = 0;
	for (const cJSON *c = context ? context->child : NULL; c; c = c->next, src++)
		if ((rc = merge_one(&r, c, src))) goto out;
	for (const cJSON *c = messages->child; c; c = c->next, src++)
		if ((rc = merge_one(&r, c, src))) goto out;
	if (sort_results(&r)) {
		rc = core_err_set(e, NV_ENOMEM, "chat template", NULL, NULL, "out of memory");
		goto out;
	}

	int drop = o->drop_thinking;
	for (int i = 0; i < r.n; i++)
		if (nonempty_array(r.m[i].tools)) drop = 0;
	int thinking = o->mode == CORE_CHAT_MODE_THINKING;
	if (thinking && drop) { /* B.2 step 5 */
		int L = -1;
		for (int i = 0; i < r.n; i++)
			if (r.m[i].role == R_USER || r.m[i].role == R_DEVELOPER) L = i;
		int w = 0, kept_ctx = 0;
		for (int i = 0; i < r.n; i++) {
			struct msg m = r.m[i];
			if (i < L) {
				if (m.role == R_DEVELOPER) { free(m.blk); continue; }
				if (m.role == R_ASSISTANT) m.reasoning = NULL;
			}
			if (i < n_ctx) kept_ctx++;
			r.m[w++] = m;
		}
		r.n = w;
		n_ctx = kept_ctx;
	}
	int last_user = -1;
	for (int i = 0; i < r.n; i++)
		if (r.m[i].role == R_USER || r.m[i].role == R_DEVELOPER) last_user = i;

	struct sbuf b = {0};
	sb_add(&b, "", 0);
	if (o->add_bos && r.n_ctx_src == 0) sb_adds(&b, CORE_CHAT_BOS);
	for (int i = n_ctx; i < r.n; i++)
		if ((rc = render_msg(&r, i, last_user, thinking && drop, &b))) break;
	if (!rc && b.oom) rc = core_err_set(e, NV_ENOMEM, "chat template", NULL, NULL, "out of memory");
	if (rc) {
		free(b.p);
		goto out;
	}
	*out = b.p;
	*n = b.n;
out:
	free_msgs(&r);
	return rc;
}

/* ------------------------------------------------------------------------- */

int core_chat_mode_parse(const char *s, enum core_chat_mode *m, struct nv_err *e)
{
	if (!s || !strcmp(s, "chat")) *m = CORE_CHAT_MODE_CHAT;
	else if (!strcmp(s, "thinking")) *m = CORE_CHAT_MODE_THINKING;
	else
		return core_err_set(e, NV_EINVAL, "chat template", "thinking_mode", "use chat or thinking",
				    "unknown thinking mode \"%.64s\"", s);
	return 0;
}

void core_chat_req_destroy(struct core_chat_req *r)
{
	if (!r) return;
	cJSON_Delete(r->root);
	free(r);
}

static int req_bool(const cJSON *root, const char *k, int *out, const char *name, struct nv_err *e)
{
	const cJSON *v = json_get(root, k);
	if (!v || cJSON_IsNull(v)) return 0;
	if (!cJSON_IsBool(v))
		return core_err_set(e, NV_EINVAL, name, k, NULL, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

int core_chat_req_parse(const char *json, size_t n, const char *name, struct core_chat_req **out,
			struct nv_err *e)
{
	*out = NULL;
	struct core_chat_req *r = calloc(1, sizeof *r);
	if (!r) return core_err_set(e, NV_ENOMEM, name, NULL, NULL, "out of memory");
	core_chat_opts_init(&r->opts);
	int rc = core_chat_json_parse(json, n, name, &r->root, e);
	if (rc) goto fail;
	const char *hint = "expected a list of messages or {\"messages\": [...], ...}";
	if (cJSON_IsArray(r->root)) {
		r->messages = r->root;
	} else if (cJSON_IsObject(r->root)) {
		r->messages = (cJSON *)json_get(r->root, "messages");
		if (!cJSON_IsArray(r->messages)) {
			rc = core_err_set(e, NV_EINVAL, name, "messages", hint, "missing or not a list");
			goto fail;
		}
		const cJSON *mode = json_get(r->root, "thinking_mode");
		if (mode && !cJSON_IsNull(mode)) {
			if (!cJSON_IsString(mode)) {
				rc = core_err_set(e, NV_EINVAL, name, "thinking_mode", "use \"chat\" or \"thinking\"",
						  "expected a string");
				goto fail;
			}
			if ((rc = core_chat_mode_parse(mode->valuestring, &r->opts.mode, e))) goto fail;
		}
		const cJSON *eff = json_get(r->root, "reasoning_effort");
		if (eff && !cJSON_IsNull(eff)) {
			if (cJSON_IsString(eff) && !strcmp(eff->valuestring, "high")) r->opts.effort = CORE_CHAT_EFFORT_HIGH;
			else if (cJSON_IsString(eff) && !strcmp(eff->valuestring, "max")) r->opts.effort = CORE_CHAT_EFFORT_MAX;
			else {
				rc = core_err_set(e, NV_EINVAL, name, "reasoning_effort", "use null, \"high\" or \"max\"",
						  "unknown value");
				goto fail;
			}
		}
		if ((rc = req_bool(r->root, "drop_thinking", &r->opts.drop_thinking, name, e))) goto fail;
		if ((rc = req_bool(r->root, "add_default_bos_token", &r->opts.add_bos, name, e))) goto fail;
		r->context = (cJSON *)json_get(r->root, "context");
		if (r->context && cJSON_IsNull(r->context)) r->context = NULL;
		if (r->context && !cJSON_IsArray(r->context)) {
			rc = core_err_set(e, NV_EINVAL, name, "context", NULL, "expected a list of messages");
			goto fail;
		}
		cJSON *tools = (cJSON *)json_get(r->root, "tools");
		if (tools && !cJSON_IsNull(tools)) {
			/* attached to the first message, as the reference test does; a
			 * conversation without a leading system/developer message gets an
			 * empty system message to carry them */
			if (!cJSON_IsArray(tools)) {
				rc = core_err_set(e, NV_EINVAL, name, "tools", NULL, "expected a list");
				goto fail;
			}
			cJSON *first = r->messages->child;
			const cJSON *role = first ? json_get(first, "role") : NULL;
			int carrier = cJSON_IsString(role) && (!strcmp(role->valuestring, "system") ||
							      !strcmp(role->valuestring, "developer"));
			if (!carrier) {
				first = cJSON_CreateObject();
				if (!first || !cJSON_AddStringToObject(first, "role", "system") ||
				    !cJSON_AddStringToObject(first, "content", "")) {
					cJSON_Delete(first);
					rc = core_err_set(e, NV_ENOMEM, name, NULL, NULL, "out of memory");
					goto fail;
				}
				cJSON_InsertItemInArray(r->messages, 0, first);
			}
			cJSON_DetachItemViaPointer(r->root, tools);
			cJSON_DeleteItemFromObjectCaseSensitive(first, "tools");
			cJSON_AddItemToObject(first, "tools", tools);
		}
	} else {
		rc = core_err_set(e, NV_EINVAL, name, NULL, hint, "top level is neither a list nor an object");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	core_chat_req_destroy(r);
	return rc;
}
