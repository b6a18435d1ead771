/* core/chat.h - DeepSeek-V4 chat prompt format: rendering a conversation into the
 * prompt string and parsing a completion back into a message (CHAT.md Part B).
 *
 * Contract
 *   Rendering: core_chat_render() takes OpenAI-style messages as a cJSON array
 *   (borrowed, never modified) plus options and returns a malloc'ed, NUL-terminated
 *   prompt string that is exactly the reference encoder's output (B.2-B.9): tool
 *   message merging and result ordering, BOS, thinking modes (chat, Think High,
 *   Think Max prefix), drop_thinking, tools and response_format blocks, DSML tool
 *   calls, quick-instruction tasks, Python-compatible JSON inside the prompt.  The
 *   prompt is a plain string: turn it into ids with core_tok_encode() (added-token
 *   matching on).
 *   Numbers: B.9 wants each number as Python prints it after json.loads.  Trees
 *   made by core_chat_json_parse() carry every number's source lexeme (in the
 *   number node's valuestring, freed by cJSON_Delete), so integers keep their digits
 *   and floats print as Python's repr; a number node without a lexeme prints as an
 *   integer when integral, else as a float repr.
 *   core_chat_req_parse() reads a request file: a message list, or an object
 *   {"messages", "tools"?, "context"?, "thinking_mode"?, "reasoning_effort"?,
 *   "drop_thinking"?, "add_default_bos_token"?} (defaults: "chat", none, true, true;
 *   top-level "tools" are attached to the first message, as in test vector 1).
 *
 *   Parsing: core_chat_parse_reply() splits generated text (special tokens kept as
 *   text, normally ending with the EOS string) into reasoning, content and tool
 *   calls following B.11 strictly; malformed text gives NV_EINVAL with the byte
 *   offset and what was expected.  CORE_CHAT_ALLOW_NO_EOS accepts a completion cut
 *   off before EOS (max tokens reached).
 *
 *   Errors name the message ("messages[3].tool_calls[0].function.name") and the
 *   rule.  Strings must be valid UTF-8.  No global state; all functions are
 *   thread-safe on distinct objects.  Returned strings/structs are owned by the
 *   caller (free(), core_chat_reply_free(), core_chat_req_destroy(), NULL accepted).
 */
#ifndef NV_CORE_CHAT_H
#define NV_CORE_CHAT_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "err.h"

enum core_chat_mode { CORE_CHAT_MODE_CHAT = 0, CORE_CHAT_MODE_THINKING = 1 };
enum core_chat_effort { CORE_CHAT_EFFORT_NONE = 0, CORE_CHAT_EFFORT_HIGH, CORE_CHAT_EFFORT_MAX };

struct core_chat_opts {
	enum core_chat_mode mode;
	enum core_chat_effort effort;
	int drop_thinking; /* default 1; forced off when any message has tools */
	int add_bos;       /* default 1 (only when there is no context) */
};
void core_chat_opts_init(struct core_chat_opts *o);

/* The special strings of the format (UTF-8). */
#define CORE_CHAT_BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define CORE_CHAT_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define CORE_CHAT_USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"
#define CORE_CHAT_ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"
#define CORE_CHAT_THINK "<think>"
#define CORE_CHAT_END_THINK "</think>"
#define CORE_CHAT_DSML "\xef\xbd\x9c" "DSML\xef\xbd\x9c"

/* Parse JSON text keeping number lexemes (see contract).  *out owned by the caller
 * (cJSON_Delete).  name is used in messages. */
int core_chat_json_parse(const char *text, size_t n, const char *name, cJSON **out, struct nv_err *e);

/* Render messages (a cJSON array; context: earlier, already-encoded messages or
 * NULL) into *out (malloc'ed, NUL-terminated), *n bytes. */
int core_chat_render(const cJSON *messages, const cJSON *context, const struct core_chat_opts *o,
		     char **out, size_t *n, struct nv_err *e);

/* A parsed request file. */
struct core_chat_req {
	cJSON *root;             /* owned */
	cJSON *messages;         /* borrowed from root */
	cJSON *context;          /* borrowed from root, or NULL */
	struct core_chat_opts opts;
};
int core_chat_req_parse(const char *json, size_t n, const char *name, struct core_chat_req **out,
			struct nv_err *e);
void core_chat_req_destroy(struct core_chat_req *r);

/* Parse "chat" / "thinking" (NULL -> chat).  0 or NV_EINVAL. */
int core_chat_mode_parse(const char *s, enum core_chat_mode *m, struct nv_err *e);

/* A parsed completion. */
struct core_chat_call {
	char *name;
	char *arguments; /* a JSON object as text (B.11) */
};
struct core_chat_reply {
	char *content;   /* "" when none */
	char *reasoning; /* "" in chat mode */
	struct core_chat_call *calls;
	int n_calls;
};

#define CORE_CHAT_ALLOW_NO_EOS 1u

int core_chat_parse_reply(const char *text, size_t n, enum core_chat_mode mode, unsigned flags,
			  struct core_chat_reply *out, struct nv_err *e);
void core_chat_reply_free(struct core_chat_reply *r);
/* {"role": "assistant", "content", "reasoning_content", "tool_calls": [...]} in
 * OpenAI form, serialized as B.9 (malloc'ed); NULL when out of memory. */
char *core_chat_reply_json(const struct core_chat_reply *r);

/* Streaming helper: how many trailing bytes of text[0..n) could be the start of
 * "</think>", "\n\n<｜DSML｜tool_calls" or EOS, and must be held back (B.11). */
size_t core_chat_holdback(const char *text, size_t n);

#endif
