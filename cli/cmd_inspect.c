/* cli/cmd_inspect.c - `nvmoe inspect MODEL [--allow-extra] [--verify]`: runs every
 * loader check (CHECKPOINT.md §7; --verify adds the full NaN scan, check 15) and
 * prints the config, the tensor inventory by family and the byte budget. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/ckpt.h"

const char *cli_fmt_count(char *buf, size_t n, uint64_t v)
{
	return core_fmt_count(buf, n, v);
}

const char *cli_fmt_size(char *buf, size_t n, uint64_t v)
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double x = (double)v;
	int i = 0;
	while (x >= 1024 && i < 4) { x /= 1024; i++; }
	snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", x, u[i]);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmoe inspect MODEL [--allow-extra] [--verify]\n"
		   "  Validates a DeepSeek-V4 checkpoint directory (all loader checks) and prints its\n"
		   "  config, tensor inventory and byte budget.\n"
		   "  --allow-extra  tensors the config does not use are a warning, not an error\n"
		   "  --verify       also scan every tensor for NaN codes (reads the whole checkpoint)\n"
		   "                 and check the checksum of every expert-store record\n");
}

/* Family of a tensor: the name without its block prefix and expert number; the
 * tensors only MTP blocks have keep an "mtp.*." prefix. */
static void family_of(const char *name, char *out, size_t n)
{
	const char *p = name;
	int mtp = !strncmp(p, "mtp.", 4);
	if (!strncmp(p, "layers.", 7) || mtp) {
		const char *dot = strchr(p, '.');
		dot = dot ? strchr(dot + 1, '.') : NULL;
		p = dot ? dot + 1 : p;
	}
	static const char *extras[] = {"e_proj.", "h_proj.", "enorm.", "hnorm.", "norm.", "hc_head_"};
	for (size_t i = 0; mtp && i < sizeof extras / sizeof extras[0]; i++)
		if (!strncmp(p, extras[i], strlen(extras[i]))) {
			snprintf(out, n, "mtp.*.%.100s", p);
			return;
		}
	const char *ex = strstr(p, "experts.");
	if (ex && (ex == p || ex[-1] == '.') && ex[8] >= '0' && ex[8] <= '9') {
		const char *rest = strchr(ex + 8, '.');
		snprintf(out, n, "%.*sexperts.*%s", (int)(ex - p), p, rest ? rest : "");
		return;
	}
	snprintf(out, n, "%s", p);
}

struct fam { char name[128]; size_t count; uint64_t bytes; };

static void print_kinds(const struct core_config *c)
{
	static const int kinds[3] = {0, 4, 128};
	for (int k = 0; k < 3; k++) {
		int cnt = 0;
		for (int i = 0; i < c->n_compress_ratios; i++) cnt += c->compress_ratios[i] == kinds[k];
		printf("  ratio %-3d %2d block%s:", kinds[k], cnt, cnt == 1 ? " " : "s");
		for (int i = 0; i < c->n_compress_ratios; i++)
			if (c->compress_ratios[i] == kinds[k]) {
				if (i >= c->num_hidden_layers) printf(" mtp.%d", i - c->num_hidden_layers);
				else printf(" %d", i);
			}
		printf("\n");
	}
	printf("  hash-routed: blocks 0..%d (%d); score-routed: the rest, MTP included\n", c->num_hash_layers - 1,
	       c->num_hash_layers);
}

int cli_cmd_inspect(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_opts_begin(argc, argv, &o, usage, 1, 1, "MODEL", "allow-extra verify");
	if (rc >= 0) return rc;
	const char *dir = o.args[0];
	struct core_ckpt_opts co = { .allow_extra = o.allow_extra, .full_scan = o.verify };
	struct core_ckpt *ck;
	struct nv_err e;
	core_err_clear(&e);
	if (core_ckpt_open(dir, &co, &ck, &e)) {
		cli_print_err(&e);
		return 1;
	}
	const struct core_config *c = core_ckpt_config(ck);
	struct core_tensor_spec *sp;
	size_t ns;
	if (core_expected_tensors(c, &sp, &ns, &e)) {
		cli_print_err(&e);
		core_ckpt_close(ck);
		return 1;
	}
	char b1[48], b2[48], b3[48];
	printf("checkpoint: %s (%d shard%s%s)\n", dir, core_ckpt_nshards(ck), core_ckpt_nshards(ck) == 1 ? "" : "s",
	       core_ckpt_has_store(ck) ? ", expert store " CORE_STORE_FILE : "");
	printf("config: vocab %d, hidden %d, blocks %d + %d MTP, heads %d x %d (rope %d), q_lora %d, o %d x %d,\n"
	       "        window %d, experts %d (top-%d, %d shared, inter %d), indexer %d x %d top-%d,\n"
	       "        hc %d (sinkhorn %d), swiglu_limit %g, routed_scale %g, max context %s\n",
	       c->vocab_size, c->hidden_size, c->num_hidden_layers, c->num_nextn_predict_layers,
	       c->num_attention_heads, c->head_dim, c->qk_rope_head_dim, c->q_lora_rank, c->o_groups, c->o_lora_rank,
	       c->sliding_window, c->n_routed_experts, c->num_experts_per_tok, c->n_shared_experts,
	       c->moe_intermediate_size, c->index_n_heads, c->index_head_dim, c->index_topk, c->hc_mult,
	       c->hc_sinkhorn_iters, c->swiglu_limit, c->routed_scaling_factor,
	       cli_fmt_count(b1, sizeof b1, (uint64_t)c->max_position_embeddings));
	print_kinds(c);

	/* Inventory by family, in order of first appearance in the expected set. */
	size_t nt = core_ckpt_ntensors(ck);
	const struct core_tensor *t0 = core_ckpt_tensor(ck, 0);
	struct fam *fam = calloc(ns + 1, sizeof *fam);
	unsigned char *used = calloc(nt + 1, 1);
	size_t nf = 0, n_res = 0, n_routed = 0, n_found = 0;
	uint64_t b_res = 0, b_routed = 0, b_embed = 0;
	for (size_t i = 0; i < ns; i++) {
		const struct core_tensor *t = core_ckpt_find(ck, sp[i].name);
		if (!t) continue; /* routed experts living in the store */
		used[t - t0] = 1;
		n_found++;
		char f[128];
		family_of(sp[i].name, f, sizeof f);
		size_t k = 0;
		while (k < nf && strcmp(fam[k].name, f)) k++;
		if (k == nf) snprintf(fam[nf++].name, sizeof fam[0].name, "%s", f);
		fam[k].count++;
		fam[k].bytes += t->nbytes;
		if (sp[i].expert >= 0) {
			n_routed++;
			b_routed += t->nbytes;
		} else {
			n_res++;
			b_res += t->nbytes;
			if (!strcmp(sp[i].name, "embed.weight")) b_embed = t->nbytes;
		}
	}
	printf("\ntensors by family (count, bytes):\n");
	for (size_t k = 0; k < nf; k++)
		printf("  %-44s %7zu %18s\n", fam[k].name, fam[k].count, cli_fmt_count(b1, sizeof b1, fam[k].bytes));
	uint64_t total = 0;
	for (size_t i = 0; i < nt; i++) total += core_ckpt_tensor(ck, i)->nbytes;
	if (nt > n_found) {
		uint64_t xb = 0;
		for (size_t i = 0; i < nt; i++)
			if (!used[i]) xb += core_ckpt_tensor(ck, i)->nbytes;
		printf("  %-44s %7zu %18s\n", "(not used by this config)", nt - n_found, cli_fmt_count(b1, sizeof b1, xb));
	}
	int nb = core_cfg_nblocks(c);
	printf("\ntotal: %s tensors, %s bytes (%s)\n", cli_fmt_count(b1, sizeof b1, nt), cli_fmt_count(b2, sizeof b2, total),
	       cli_fmt_size(b3, sizeof b3, total));
	printf("resident: %s tensors, %s bytes (%s): everything but routed experts; of it the embedding,",
	       cli_fmt_count(b1, sizeof b1, n_res), cli_fmt_count(b2, sizeof b2, b_res), cli_fmt_size(b3, sizeof b3, b_res));
	printf(" %s bytes, stays on the host\n", cli_fmt_count(b1, sizeof b1, b_embed));
	if (core_ckpt_has_store(ck) && !n_routed)
		printf("routed: in the expert store %s (%d blocks x %d experts)\n", CORE_STORE_FILE, nb, c->n_routed_experts);
	else
		printf("routed: %s tensors, %s bytes (%s) = %d blocks x %d experts\n", cli_fmt_count(b1, sizeof b1, n_routed),
		       cli_fmt_count(b2, sizeof b2, b_routed), cli_fmt_size(b3, sizeof b3, b_routed), nb,
		       c->n_routed_experts);
	uint64_t one = 0;
	for (size_t i = 0; i < ns; i++)
		if (sp[i].block == 0 && sp[i].expert == 0) one += core_spec_nbytes(&sp[i]);
	printf("one expert: 6 tensors, %s bytes (%s); a decoded token reads %d x %d of them (%s bytes)\n",
	       cli_fmt_count(b1, sizeof b1, one), cli_fmt_size(b2, sizeof b2, one), c->num_experts_per_tok,
	       c->num_hidden_layers,
	       cli_fmt_count(b3, sizeof b3, one * (uint64_t)c->num_experts_per_tok * (uint64_t)c->num_hidden_layers));
	printf("checks: 1-14 passed; 15 (NaN scan): %s\n", o.verify ? "passed" : "not run (use --verify)");
	/* the store's header and size always (cheap); every record's checksum with --verify */
	int bad = core_ckpt_has_store(ck) ? cli_verify_store(ck, o.verify) : 0;
	size_t nw = core_ckpt_nwarnings(ck);
	printf("warnings: %zu\n", nw);
	for (size_t i = 0; i < nw; i++) printf("  warning: %s\n", core_ckpt_warning(ck, i));
	free(used);
	free(fam);
	free(sp);
	core_ckpt_close(ck);
	return bad;
}
