/* core/seqmark.c - marks of a sequence's position and rewinding to them (model.h).
 *
 * Why this is enough: a forward call at positions >= p reads the compressed and
 * indexer cache entries of windows completed before p, which it never rewrites,
 * and writes entries of windows completed at or after p, which a rewound sequence
 * writes again before reading them (the chunked pass is bitwise the token-by-token
 * one).  What positions >= p do overwrite is the window ring and the partial-window
 * compressor states: those are what a mark copies. */
#include <stdlib.h>

#include "model_impl.h"

/* Saved copies of the overwritten state of one block (backend memory, same shapes
 * as struct core_bstate). */
struct mark_block {
	void *ring;          /* [W + max_chunk, d_h] cache elements */
	float *cK, *cG;      /* [c*r, c*d_h], ratio > 0 */
	float *iK, *iG;      /* [8, 2*d_I], ratio 4 */
};

struct core_seq_mark {
	struct core_seq *sq;
	int pos, mtp_pos;
	unsigned epoch;
	int saved;
	struct mark_block *b; /* [nblocks] */
};

static size_t ring_bytes(const struct core_model *m)
{
	const struct core_config *c = &m->c;
	return ((size_t)c->sliding_window + (size_t)m->max_chunk) * (size_t)c->head_dim * m->kv_es;
}

static size_t comp_bytes(const struct core_model *m, int r)
{
	size_t cc = r == 4 ? 2 : 1;
	return cc * (size_t)r * cc * (size_t)m->c.head_dim * sizeof(float);
}

static size_t icomp_bytes(const struct core_model *m) { return 8 * 2 * (size_t)m->c.index_head_dim * sizeof(float); }

int core_seq_mark_create(struct core_seq *sq, struct core_seq_mark **out, struct nv_err *e)
{
	*out = NULL;
	struct core_model *m = sq->m;
	struct kern *k = m->k;
	struct core_seq_mark *mk = calloc(1, sizeof *mk);
	if (!mk) return core_err_set(e, NV_ENOMEM, "seq", "mark", NULL, "out of memory");
	mk->sq = sq;
	mk->b = calloc((size_t)m->nblocks, sizeof *mk->b);
	int fail = !mk->b;
	for (int i = 0; i < m->nblocks && !fail; i++) {
		struct mark_block *b = &mk->b[i];
		int r = m->c.compress_ratios[i];
		fail |= !(b->ring = k->alloc(k, ring_bytes(m)));
		if (r > 0) {
			fail |= !(b->cK = k->alloc(k, comp_bytes(m, r)));
			fail |= !(b->cG = k->alloc(k, comp_bytes(m, r)));
		}
		if (r == 4) {
			fail |= !(b->iK = k->alloc(k, icomp_bytes(m)));
			fail |= !(b->iG = k->alloc(k, icomp_bytes(m)));
		}
	}
	if (fail) {
		core_seq_mark_destroy(mk);
		return core_err_set(e, NV_ENOMEM, "seq", "mark", "use a smaller --chunk",
				    "out of memory for a copy of the window rings and compressor states");
	}
	*out = mk;
	return 0;
}

void core_seq_mark_destroy(struct core_seq_mark *mk)
{
	if (!mk) return;
	if (mk->b) {
		struct core_model *m = mk->sq->m;
		for (int i = 0; i < m->nblocks; i++) {
			struct mark_block *b = &mk->b[i];
			void *p[] = { b->ring, b->cK, b->cG, b->iK, b->iG };
			for (size_t j = 0; j < sizeof p / sizeof p[0]; j++) m->k->free(m->k, p[j]);
		}
	}
	free(mk->b);
	free(mk);
}

/* Copy the overwritten state between a sequence and a mark (to_mark: sq -> mk). */
static void copy_state(struct core_seq_mark *mk, int to_mark)
{
	struct core_seq *sq = mk->sq;
	struct core_model *m = sq->m;
	struct kern *k = m->k;
	for (int i = 0; i < m->nblocks; i++) {
		struct mark_block *d = &mk->b[i];
		struct core_bstate *s = &sq->b[i];
		int r = m->c.compress_ratios[i];
#define CP(a, b, n) (to_mark ? k->copy(k, (a), (b), (n)) : k->copy(k, (b), (a), (n)))
		CP(d->ring, s->ring, ring_bytes(m));
		if (r > 0) {
			CP(d->cK, s->cK, comp_bytes(m, r));
			CP(d->cG, s->cG, comp_bytes(m, r));
		}
		if (r == 4) {
			CP(d->iK, s->iK, icomp_bytes(m));
			CP(d->iG, s->iG, icomp_bytes(m));
		}
#undef CP
	}
}

void core_seq_mark_save(struct core_seq_mark *mk)
{
	copy_state(mk, 1);
	mk->pos = mk->sq->pos;
	mk->mtp_pos = mk->sq->mtp_pos;
	mk->epoch = mk->sq->epoch;
	mk->saved = 1;
}

int core_seq_mark_pos(const struct core_seq_mark *mk)
{
	return mk->saved && mk->epoch == mk->sq->epoch && mk->pos <= mk->sq->pos ? mk->pos : -1;
}

int core_seq_rewind(struct core_seq_mark *mk, struct nv_err *e)
{
	struct core_seq *sq = mk->sq;
	if (core_seq_mark_pos(mk) < 0)
		return core_err_set(e, NV_EINVAL, "seq", "mark", "save a mark again after a reset or another rewind",
				    "the mark is %s (sequence at position %d)",
				    !mk->saved ? "not saved" : "stale", sq->pos);
	copy_state(mk, 0);
	sq->pos = mk->pos;
	sq->mtp_pos = mk->mtp_pos;
	sq->epoch++;
	mk->epoch = sq->epoch;
	return 0;
}
