/* tools/mkmodel/presets.h - the configurations mkmodel can write.
 *
 * Contract
 *   mk_config_build() returns a cJSON object (caller frees with cJSON_Delete) holding
 *   an HF config.json: a named preset (or a --config file) with the command-line
 *   overrides applied in this order: --layers, --no-mtp, --experts, then every
 *   --set KEY=VALUE (KEY may be "a.b" for a nested key; VALUE is JSON, or a string).
 *   mk_config_print() renders it as 2-space-indented JSON in the style of the
 *   released file (compress_ratios on one line; the release preset's
 *   config.json is the released file byte for byte).  No validation here: the caller
 *   parses the text with core_config_parse() (R1-R7).  No global state.
 */
#ifndef NV_MKMODEL_PRESETS_H
#define NV_MKMODEL_PRESETS_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include "core/err.h"

#define MK_MAX_SETS 64

struct mk_overrides {
	int layers;     /* -1: keep */
	int experts;    /* -1: keep */
	int no_mtp;
	int nsets;
	const char *sets[MK_MAX_SETS]; /* "KEY=VALUE" */
};

/* NULL-terminated list of preset names; mk_preset_help() gives a one-line description. */
extern const char *const mk_preset_names[];
const char *mk_preset_help(const char *name);

/* preset or config_file (exactly one non-NULL). */
int mk_config_build(const char *preset, const char *config_file, const struct mk_overrides *ov,
		    cJSON **out, struct nv_err *e);
/* malloc'ed text, ending in a newline; NULL when out of memory. */
char *mk_config_print(const cJSON *root);

#endif
