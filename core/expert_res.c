/* core/expert_res.c - the resident expert source: every routed expert is a view into
 * the mmapped checkpoint (made available to the backend with wmap once, at creation).
 * acquire/release are O(1) and never fail after creation. */
#include <stdio.h>
#include <stdlib.h>

#include "model_impl.h"

struct res_src {
	struct core_expert_src src;
	int nblocks, E;
	struct core_expert_view *v; /* [nblocks * E] */
};

static int res_acquire(void *ctx, int block, int expert, struct core_expert_view *out, struct nv_err *e)
{
	struct res_src *r = ctx;
	if (block < 0 || block >= r->nblocks || expert < 0 || expert >= r->E)
		return core_err_set(e, NV_ERANGE, "resident experts", NULL, NULL,
				    "block %d expert %d out of range", block, expert);
	*out = r->v[(size_t)block * r->E + expert];
	return 0;
}

static void res_release(void *ctx, int block, int expert) { (void)ctx; (void)block; (void)expert; }

int core_expert_src_resident(const struct core_ckpt *ck, struct kern *k, struct core_expert_src **out,
			     struct nv_err *e)
{
	*out = NULL;
	const struct core_config *c = core_ckpt_config(ck);
	if (core_ckpt_has_store(ck))
		return core_err_set(e, NV_EUNSUPPORTED, core_ckpt_dir(ck), CORE_STORE_FILE,
				    "use the offloading expert source for converted models",
				    "routed experts live in the expert store, not in the shards");
	struct res_src *r = calloc(1, sizeof *r);
	if (!r) return core_err_set(e, NV_ENOMEM, "resident experts", NULL, NULL, "out of memory");
	r->nblocks = core_cfg_nblocks(c);
	r->E = c->n_routed_experts;
	r->v = calloc((size_t)r->nblocks * r->E, sizeof *r->v);
	if (!r->v) {
		free(r);
		return core_err_set(e, NV_ENOMEM, "resident experts", NULL, NULL, "out of memory");
	}
	static const char *const part[6] = { "w1.weight", "w1.scale", "w3.weight", "w3.scale", "w2.weight", "w2.scale" };
	for (int b = 0; b < r->nblocks; b++)
		for (int x = 0; x < r->E; x++) {
			const uint8_t *p[6];
			for (int j = 0; j < 6; j++) {
				char name[160];
				if (b < c->num_hidden_layers)
					snprintf(name, sizeof name, "layers.%d.ffn.experts.%d.%s", b, x, part[j]);
				else
					snprintf(name, sizeof name, "mtp.%d.ffn.experts.%d.%s", b - c->num_hidden_layers, x, part[j]);
				const struct core_tensor *t = core_ckpt_find(ck, name);
				if (!t || !t->data) {
					free(r->v);
					free(r);
					return core_err_set(e, NV_EMISSING, core_ckpt_dir(ck), name, NULL,
							    t ? "tensor data not mapped" : "routed expert tensor absent");
				}
				p[j] = k->wmap(k, t->data, t->nbytes);
				if (!p[j]) {
					/* a GPU backend out of device memory: without this check the
					 * NULL views would fault inside the expert kernels */
					free(r->v);
					free(r);
					return core_err_set(e, NV_ENOMEM, core_ckpt_dir(ck), name,
							    "stream the experts through GPU slots with --vram-budget SIZE",
							    "backend '%s' could not map the routed expert weight (%llu bytes): "
							    "out of device memory", k->name, (unsigned long long)t->nbytes);
				}
			}
			struct core_expert_view *v = &r->v[(size_t)b * r->E + x];
			v->w1 = p[0]; v->w1_scale = p[1];
			v->w3 = p[2]; v->w3_scale = p[3];
			v->w2 = p[4]; v->w2_scale = p[5];
		}
	r->src.ctx = r;
	r->src.acquire = res_acquire;
	r->src.release = res_release;
	*out = &r->src;
	return 0;
}

void core_expert_src_resident_destroy(struct core_expert_src *src)
{
	if (!src) return;
	struct res_src *r = src->ctx;
	free(r->v);
	free(r);
}
