/* core/tok_decode.c - ids -> text: whole-sequence and streaming decoders.
 *
 * Invalid UTF-8 becomes U+FFFD per maximal subpart (Unicode's recommended
 * practice, what the reference's lossy conversion does); the streaming decoder
 * keeps the bytes of an unfinished character until a later id completes it. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Incremental UTF-8 repair: bytes in, valid UTF-8 out. */
struct utf8_fix {
	uint8_t pend[4];
	int npend, need;
	uint8_t lo, hi; /* allowed range of the next continuation byte */
};

static const char k_fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Writes at most 3 * n + 3 bytes... (each input byte yields <= 4 bytes out, a
 * rejected prefix yields 3).  Returns bytes written. */
static size_t fix_feed(struct utf8_fix *f, const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = in[i];
		if (f->need) {
			if (b >= f->lo && b <= f->hi) {
				f->pend[f->npend++] = b;
				f->lo = 0x80; f->hi = 0xBF;
				if (--f->need == 0) {
					memcpy(out + o, f->pend, (size_t)f->npend);
					o += (size_t)f->npend;
					f->npend = 0;
				}
				continue;
			}
			memcpy(out + o, k_fffd, 3);
			o += 3;
			f->need = 0;
			f->npend = 0;
			/* b starts afresh below */
		}
		if (b < 0x80) { out[o++] = (char)b; continue; }
		f->lo = 0x80; f->hi = 0xBF;
		if (b >= 0xC2 && b <= 0xDF) f->need = 1;
		else if (b == 0xE0) { f->need = 2; f->lo = 0xA0; }
		else if (b == 0xED) { f->need = 2; f->hi = 0x9F; }
		else if (b >= 0xE1 && b <= 0xEF) f->need = 2;
		else if (b == 0xF0) { f->need = 3; f->lo = 0x90; }
		else if (b == 0xF4) { f->need = 3; f->hi = 0x8F; }
		else if (b >= 0xF1 && b <= 0xF3) f->need = 3;
		else { memcpy(out + o, k_fffd, 3); o += 3; continue; }
		f->pend[0] = b;
		f->npend = 1;
	}
	return o;
}

static size_t fix_flush(struct utf8_fix *f, char *out)
{
	if (!f->need) return 0;
	f->need = 0;
	f->npend = 0;
	memcpy(out, k_fffd, 3);
	return 3;
}

static int bad_id(const struct core_tok *t, int32_t id, size_t pos, struct nv_err *e)
{
	return core_err_set(e, NV_ERANGE, "detokenize", "ids", "use ids of this model's tokenizer",
			    "id %d at position %zu is outside the id space [0, %d) or has no string", id, pos,
			    t->n_ids);
}

int core_tok_decode(const struct core_tok *t, const int32_t *ids, size_t n_ids, unsigned flags,
		    char **out, size_t *n, struct nv_err *e)
{
	*out = NULL;
	*n = 0;
	size_t total = 0;
	for (size_t i = 0; i < n_ids; i++) {
		size_t l;
		if (!core_tok_id_bytes(t, ids[i], &l)) return bad_id(t, ids[i], i, e);
		total += l;
	}
	/* every input byte yields at most 3 output bytes */
	char *buf = malloc(total * 3 + 4);
	if (!buf) return core_err_set(e, NV_ENOMEM, "detokenize", NULL, NULL, "out of memory");
	struct utf8_fix f = {0};
	size_t o = 0;
	for (size_t i = 0; i < n_ids; i++) {
		if ((flags & CORE_TOK_SKIP_SPECIAL) && core_tok_is_special(t, ids[i])) continue;
		size_t l;
		const char *s = core_tok_id_bytes(t, ids[i], &l);
		o += fix_feed(&f, (const uint8_t *)s, l, buf + o);
	}
	o += fix_flush(&f, buf + o);
	buf[o] = 0;
	*out = buf;
	*n = o;
	return 0;
}

struct core_tok_stream {
	const struct core_tok *t;
	unsigned flags;
	struct utf8_fix fix;
	char *buf; /* [3 * max_id_bytes + 16]: 3 out bytes per in byte, held bytes included */
};

int core_tok_stream_create(const struct core_tok *t, unsigned flags, struct core_tok_stream **out,
			   struct nv_err *e)
{
	struct core_tok_stream *s = calloc(1, sizeof *s);
	if (s) s->buf = malloc(3 * t->max_id_bytes + 16);
	if (!s || !s->buf) {
		free(s);
		*out = NULL;
		return core_err_set(e, NV_ENOMEM, "detokenize", NULL, NULL, "out of memory");
	}
	s->t = t;
	s->flags = flags;
	*out = s;
	return 0;
}

void core_tok_stream_destroy(struct core_tok_stream *s)
{
	if (!s) return;
	free(s->buf);
	free(s);
}

void core_tok_stream_reset(struct core_tok_stream *s)
{
	memset(&s->fix, 0, sizeof s->fix);
}

int core_tok_stream_push(struct core_tok_stream *s, int32_t id, const char **text, size_t *n,
			 struct nv_err *e)
{
	size_t l;
	const char *b = core_tok_id_bytes(s->t, id, &l);
	*text = s->buf;
	*n = 0;
	if (!b) return bad_id(s->t, id, 0, e);
	if ((s->flags & CORE_TOK_SKIP_SPECIAL) && core_tok_is_special(s->t, id)) return 0;
	*n = fix_feed(&s->fix, (const uint8_t *)b, l, s->buf);
	return 0;
}

void core_tok_stream_flush(struct core_tok_stream *s, const char **text, size_t *n)
{
	*text = s->buf;
	*n = fix_flush(&s->fix, s->buf);
}
