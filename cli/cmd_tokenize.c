/* cli/cmd_tokenize.c - `nvmoe tokenize` and `nvmoe detokenize` (CHAT.md Part A). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "cli.h"
#include "evalio.h"
#include "core/tokenizer.h"

/* Whole file (or stdin for "-") into a malloc'ed NUL-terminated buffer. */
static char *slurp(const char *path, size_t *n, struct nv_err *e)
{
	char *buf;
	return cli_read_file(path, &buf, n, e) ? NULL : buf;
}

static void print_ids(const int32_t *v, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", v[i]);
	printf("]\n");
}

static int usage_tok(FILE *f, int rc)
{
	fprintf(f, "usage: nvmoe tokenize MODEL (--text T | --file F) [--raw] [--stats]\n"
		   "  MODEL: a directory with tokenizer.json (or tokenizer.reconstructed.json), or the file.\n"
		   "  Prints the ids as a JSON array.  Added-token strings (<｜User｜>, ...) become their\n"
		   "  ids; --raw encodes them as plain text.  --stats prints timing to stderr.\n");
	return rc;
}

int cli_cmd_tokenize(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) return usage_tok(stdout, 0);
	if (rc) return rc;
	if ((rc = cli_opts_only(&o, "text file raw stats")) || (rc = cli_opts_args(&o, 1, 1, "MODEL"))) return rc;
	if ((!o.text) == (!o.file)) return cli_usage_err(&o, "give exactly one of --text or --file");
	struct nv_err e = {0};
	struct core_tok *t = NULL;
	double t0 = cli_now();
	if (core_tok_load(o.args[0], &t, &e)) { cli_print_err(&e); return 1; }
	double t1 = cli_now();
	size_t n = 0;
	char *text = NULL;
	if (o.file) {
		text = slurp(o.file, &n, &e);
		if (!text) { cli_print_err(&e); core_tok_destroy(t); return 1; }
	}
	struct core_tok_ids ids = {0};
	double t2 = cli_now();
	rc = core_tok_encode(t, text ? text : o.text, text ? n : strlen(o.text), o.raw ? CORE_TOK_NO_SPECIAL : 0,
			     &ids, &e);
	double t3 = cli_now();
	if (rc) {
		if (o.file) snprintf(e.object, sizeof e.object, "%s", o.file);
		cli_print_err(&e);
	} else {
		print_ids(ids.v, ids.n);
		if (o.stats) {
			size_t bytes = text ? n : strlen(o.text);
			fprintf(stderr, "load %.3f s; %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", t1 - t0, bytes,
				ids.n, t3 - t2, (t3 - t2) > 0 ? bytes / 1e6 / (t3 - t2) : 0.0);
		}
	}
	core_tok_ids_free(&ids);
	free(text);
	core_tok_destroy(t);
	return rc ? 1 : 0;
}

static int usage_detok(FILE *f, int rc)
{
	fprintf(f, "usage: nvmoe detokenize MODEL --ids=JSON | --file F | IDS_JSON\n"
		   "  Prints the text of a JSON array of ids, byte for byte (no newline added);\n"
		   "  invalid UTF-8 comes out as U+FFFD.\n");
	return rc;
}

int cli_cmd_detokenize(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_parse(argc, argv, &o);
	if (rc == 3) return usage_detok(stdout, 0);
	if (rc) return rc;
	if ((rc = cli_opts_only(&o, "ids file")) || (rc = cli_opts_args(&o, 1, 2, "MODEL"))) return rc;
	const char *json = o.ids_json;
	if (!json && o.nargs == 2) json = o.args[1];
	if (o.nargs < 1 || o.nargs > 2 || (!json && !o.file) || (json && o.file) ||
	    (o.ids_json && o.nargs == 2)) {
		return cli_usage_err(&o, "give the ids once: --ids=JSON, --file F or an argument");
	}
	struct nv_err e = {0};
	size_t n = 0;
	char *buf = NULL;
	const char *src = o.file ? o.file : "--ids";
	if (o.file && !(buf = slurp(o.file, &n, &e))) { cli_print_err(&e); return 1; }
	cJSON *arr = cJSON_Parse(buf ? buf : json);
	int32_t *ids = NULL;
	int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
	rc = 1;
	if (count < 0) {
		core_err_set(&e, NV_EINVAL, src, NULL, "write the ids as a JSON array, e.g. [0, 19923]",
			     "not a JSON array of ids");
		goto out;
	}
	ids = malloc(((size_t)count + 1) * sizeof *ids);
	int i = 0;
	for (const cJSON *c = arr->child; c; c = c->next, i++) {
		if (!cJSON_IsNumber(c) || c->valuedouble != (double)(int32_t)c->valuedouble) {
			core_err_set(&e, NV_EINVAL, src, NULL, "ids are integers",
				     "element %d is not an integer id", i);
			goto out;
		}
		ids[i] = (int32_t)c->valuedouble;
	}
	struct core_tok *t = NULL;
	if (core_tok_load(o.args[0], &t, &e)) goto out;
	char *text;
	size_t tn;
	if (!core_tok_decode(t, ids, (size_t)count, 0, &text, &tn, &e)) {
		fwrite(text, 1, tn, stdout);
		free(text);
		rc = 0;
	}
	core_tok_destroy(t);
out:
	if (rc) cli_print_err(&e);
	free(ids);
	cJSON_Delete(arr);
	free(buf);
	return rc;
}
