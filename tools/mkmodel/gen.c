/* tools/mkmodel/gen.c - TINY.md §5 weight generator (see gen.h). */
#include "gen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/numfmt.h"

#define GEN_CHUNK (4u << 20) /* bytes per plain write */
#define FP8_BLOCK 128
#define FP4_BLOCK 32
#define SCALE_FLOOR 0x1p-20f

/* Encoder tables.  RNE to E2M1 (E4M3) changes its result only at values with at
 * most 3 (4) significant mantissa bits (the codes' midpoints, the underflow and
 * saturation points), so the code of any float is a function of its sign, exponent,
 * top 3 (4) mantissa bits and whether the remaining bits are zero: every float of one
 * such class lies in an open interval free of thresholds, or is the interval's end.
 * The tables are filled from core_f32_to_e2m1/e4m3 (the one implementation of the
 * rounding) and are exactly equal to them; they are several times faster than the
 * reference encoders, which dominate the generation time otherwise. */
#define E2M1_KEY(u) (((u) >> 20) << 1 | (((u) & 0xFFFFFu) != 0))
#define E4M3_KEY(u) (((u) >> 19) << 1 | (((u) & 0x7FFFFu) != 0))

struct gen_work {
	uint8_t e2m1[1 << 13]; /* by E2M1_KEY */
	uint8_t e4m3[1 << 14]; /* by E4M3_KEY */
	float *band;      /* [128, max FP8 in] f32 values of one band; also one FP4 row */
	uint8_t *codes;   /* [GEN_CHUNK] or [128, max FP8 in] encoded bytes */
	size_t codes_cap;
	uint8_t *sbuf;    /* scale bytes of the current job (FP8: whole grid; FP4: one chunk) */
	size_t sbuf_cap;
	int64_t *perm;    /* [E] tid2eid shuffle */
	size_t perm_cap;
};

uint64_t gen_fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

double gen_normal(uint64_t *st)
{
	double u1 = gen_uniform(st), u2 = gen_uniform(st), u3 = gen_uniform(st), u4 = gen_uniform(st);
	return (u1 + u2 + u3 + u4 - 2.0) * sqrt(3.0);
}

float gen_pow2_scale(float amax, double fmax, float floor, uint8_t *code)
{
	double a = amax < floor ? floor : amax;
	int k;
	frexp(a / fmax, &k);
	/* Exact: the smallest k with fmax * 2^k >= amax (both sides exact doubles). */
	while (ldexp(fmax, k) < a) k++;
	while (ldexp(fmax, k - 1) >= a) k--;
	if (code) *code = (uint8_t)(127 + k);
	return ldexpf(1.0f, k);
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* Logical input width of a quantised weight (FP4 packs two per byte). */
static int64_t logical_in(const struct core_tensor_spec *t)
{
	return t->dtype == CORE_DT_I8 ? 2 * t->shape[1] : t->shape[1];
}

int gen_rule_for(const struct gen_ctx *g, const struct core_tensor_spec *t, struct gen_rule *r)
{
	const char *n = t->name;
	double D = g->hidden;
	*r = (struct gen_rule){0.0, 1.0, 1.0};
	if (t->dtype == CORE_DT_F8_E8M0 || ends_with(n, "tid2eid"))
		return NV_EINVAL;
	if (!strcmp(n, "embed.weight")) return 0;
	if (!strcmp(n, "head.weight")) { r->div = sqrt(D); return 0; }
	if (ends_with(n, "norm.weight")) { r->add = 1.0; r->mul = 0.1; return 0; }
	if (strstr(n, "hc_")) {
		if (ends_with(n, "_fn")) { r->div = sqrt((double)g->hc_mult * D); return 0; }
		if (ends_with(n, "_scale")) { r->add = 1.0; r->mul = 0.25; return 0; }
		if (ends_with(n, "_base")) { r->mul = 0.5; return 0; }
	}
	if (ends_with(n, "attn_sink")) return 0;
	if (t->ndim == 2 && (t->dtype == CORE_DT_F8_E4M3 || t->dtype == CORE_DT_I8)) {
		r->div = sqrt((double)logical_in(t));
		return 0;
	}
	if (ends_with(n, "compressor.wkv.weight") || ends_with(n, "compressor.wgate.weight") ||
	    ends_with(n, "weights_proj.weight") || ends_with(n, "gate.weight")) {
		r->div = sqrt(D);
		return 0;
	}
	if (ends_with(n, ".ape")) { r->mul = 0.5; return 0; }
	if (ends_with(n, "gate.bias")) { r->mul = 0.1; return 0; }
	return NV_EINVAL;
}

static inline uint8_t enc_e2m1(const struct gen_work *w, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return w->e2m1[E2M1_KEY(u)];
}

static inline uint8_t enc_e4m3(const struct gen_work *w, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return w->e4m3[E4M3_KEY(u)];
}

uint8_t gen_e2m1(const struct gen_work *w, float f) { return enc_e2m1(w, f); }
uint8_t gen_e4m3(const struct gen_work *w, float f) { return enc_e4m3(w, f); }

static inline float draw(const struct gen_rule *r, uint64_t *st)
{
	return (float)(r->add + r->mul * gen_normal(st) / r->div);
}

static int full_pwrite(const struct gen_job *j, const char *what, const void *buf, size_t n,
		       uint64_t off, uint64_t *written, struct nv_err *e)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t k = pwrite(j->fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) {
			int err = k < 0 ? errno : EIO;
			return core_err_set(e, -err, j->file, what, "check free disk space and permissions",
					    "write of %zu bytes at offset %llu failed: %s", n,
					    (unsigned long long)off, strerror(err));
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
		__atomic_fetch_add(written, (uint64_t)k, __ATOMIC_RELAXED);
	}
	return 0;
}

static int ensure(void **p, size_t *cap, size_t need)
{
	if (need <= *cap) return 0;
	void *q = realloc(*p, need);
	if (!q) return NV_ENOMEM;
	*p = q;
	*cap = need;
	return 0;
}

int gen_work_create(const struct core_tensor_spec *specs, size_t n, struct gen_work **out,
		    struct nv_err *e)
{
	/* The widest FP8 weight sets the band; the widest FP4 row must fit too. */
	int64_t max_in = FP8_BLOCK;
	for (size_t i = 0; i < n; i++) {
		const struct core_tensor_spec *t = &specs[i];
		if (t->ndim == 2 && (t->dtype == CORE_DT_F8_E4M3 || t->dtype == CORE_DT_I8) &&
		    logical_in(t) > max_in)
			max_in = logical_in(t);
	}
	struct gen_work *w = calloc(1, sizeof *w);
	size_t band = (size_t)FP8_BLOCK * (size_t)max_in;
	if (w) {
		for (uint32_t k = 0; k < (1u << 13); k++) {
			uint32_t u = (k >> 1) << 20 | (k & 1);
			float f;
			memcpy(&f, &u, 4);
			w->e2m1[k] = core_f32_to_e2m1(f) & 15;
		}
		for (uint32_t k = 0; k < (1u << 14); k++) {
			uint32_t u = (k >> 1) << 19 | (k & 1);
			float f;
			memcpy(&f, &u, 4);
			w->e4m3[k] = core_f32_to_e4m3(f);
		}
		w->band = malloc(band * sizeof(float));
		w->codes_cap = band > GEN_CHUNK ? band : GEN_CHUNK;
		w->codes = malloc(w->codes_cap);
	}
	if (!w || !w->band || !w->codes) {
		gen_work_destroy(w);
		return core_err_set(e, NV_ENOMEM, "mkmodel", NULL, NULL,
				    "cannot allocate %zu bytes of generator buffers", band * 5);
	}
	*out = w;
	return 0;
}

void gen_work_destroy(struct gen_work *w)
{
	if (!w) return;
	free(w->band);
	free(w->codes);
	free(w->sbuf);
	free(w->perm);
	free(w);
}

static uint64_t numel(const struct core_tensor_spec *t)
{
	uint64_t n = 1;
	for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
	return n;
}

/* Rows of dim 0 and bytes per row of the tensor a job writes (scales included). */
static void job_rows(const struct gen_job *j, int64_t *rows, uint64_t *row_bytes)
{
	const struct core_tensor_spec *t = j->t;
	*rows = t->shape[0];
	uint64_t per = t->shape[0] ? numel(t) / (uint64_t)t->shape[0] : 0;
	*row_bytes = per * core_dtype_size(t->dtype);
	if (t->dtype == CORE_DT_I8 && t->ndim == 2) *row_bytes += (uint64_t)t->shape[1] / 16;
}

size_t gen_split(const struct gen_job *j, uint64_t piece, struct gen_job *out)
{
	int64_t rows;
	uint64_t rb;
	job_rows(j, &rows, &rb);
	int64_t rpp = rb ? (int64_t)(piece / rb) : rows;
	if (rpp < 1) rpp = 1;
	if (j->t->dtype == CORE_DT_F8_E4M3) rpp = (rpp + FP8_BLOCK - 1) / FP8_BLOCK * FP8_BLOCK;
	if (rows < 1) rows = 1; /* still one job: writes nothing */
	size_t n = 0;
	for (int64_t r = 0; r < rows; r += rpp, n++) {
		if (!out) continue;
		out[n] = *j;
		out[n].r0 = r;
		out[n].r1 = r + rpp < rows ? r + rpp : rows;
	}
	return n;
}

/* F32 / BF16 tensors, element by element in chunks; rows [r0, r1) of dim 0. */
static int gen_plain(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		     uint64_t *written, struct nv_err *e)
{
	const struct core_tensor_spec *t = j->t;
	struct gen_rule r;
	if (gen_rule_for(g, t, &r))
		return core_err_set(e, NV_EINVAL, j->file, t->name, "extend tools/mkmodel/gen.c",
				    "no generator rule for this tensor (dtype %s)",
				    core_dtype_name(t->dtype));
	if (!numel(t)) return 0;
	size_t es = core_dtype_size(t->dtype);
	uint64_t cols = numel(t) / (uint64_t)t->shape[0], per = GEN_CHUNK / es;
	uint64_t b = (uint64_t)j->r0 * cols, end = (uint64_t)j->r1 * cols;
	/* embed row 7, dims 0..127: exactly 0 (the act_quant floor); [z0, z1) */
	uint64_t z0 = 7 * cols, z1 = z0 + (cols < 128 ? cols : 128);
	if (strcmp(t->name, "embed.weight") || t->shape[0] <= 7) z0 = z1 = 0;
	uint64_t st = gen_skip(gen_stream_seed(t->name, g->seed), 4 * b);
	for (uint64_t i0 = b; i0 < end; i0 += per) {
		uint64_t m = end - i0 < per ? end - i0 : per;
		for (uint64_t i = 0; i < m; i++) {
			float v = draw(&r, &st);
			if (i0 + i - z0 < z1 - z0) v = 0.0f;
			if (t->dtype == CORE_DT_F32) {
				memcpy(w->codes + 4 * i, &v, 4);
			} else {
				uint16_t h = core_f32_to_bf16(v);
				memcpy(w->codes + 2 * i, &h, 2);
			}
		}
		int rc = full_pwrite(j, t->name, w->codes, m * es, j->off + i0 * es, written, e);
		if (rc) return rc;
	}
	return 0;
}

static int check_scale_shape(const struct gen_job *j, int64_t rows, int64_t cols, struct nv_err *e)
{
	const struct core_tensor_spec *s = j->scale;
	if (!s || s->dtype != CORE_DT_F8_E8M0 || s->ndim != 2 || s->shape[0] != rows || s->shape[1] != cols)
		return core_err_set(e, NV_EINVAL, j->file, j->t->name, NULL,
				    "scale tensor missing or not E8M0 [%lld, %lld]", (long long)rows,
				    (long long)cols);
	return 0;
}

/* FP8 E4M3 weight [out, in] with E8M0 scales [ceil(out/128), ceil(in/128)]: one
 * band of 128 rows at a time (the block scale needs the whole 128x128 block). */
static int gen_fp8(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		   uint64_t *written, struct nv_err *e)
{
	const struct core_tensor_spec *t = j->t;
	int64_t rows = t->shape[0], cols = t->shape[1];
	int64_t nbr = (rows + FP8_BLOCK - 1) / FP8_BLOCK, nbc = (cols + FP8_BLOCK - 1) / FP8_BLOCK;
	int rc = check_scale_shape(j, nbr, nbc, e);
	if (rc) return rc;
	int64_t b0 = j->r0 / FP8_BLOCK, b1 = (j->r1 + FP8_BLOCK - 1) / FP8_BLOCK;
	if (j->r0 % FP8_BLOCK || (j->r1 % FP8_BLOCK && j->r1 != rows))
		return core_err_set(e, NV_EINVAL, j->file, t->name, NULL, "FP8 piece not on 128-row bands");
	if (ensure((void **)&w->sbuf, &w->sbuf_cap, (size_t)((b1 - b0) * nbc)))
		return core_err_set(e, NV_ENOMEM, j->file, t->name, NULL, "out of memory");
	struct gen_rule r;
	gen_rule_for(g, t, &r);
	uint64_t st = gen_skip(gen_stream_seed(t->name, g->seed), 4 * (uint64_t)(j->r0 * cols));
	for (int64_t br = b0; br < b1; br++) {
		int64_t r0 = br * FP8_BLOCK, h = rows - r0 < FP8_BLOCK ? rows - r0 : FP8_BLOCK;
		uint8_t *sc = w->sbuf + (br - b0) * nbc;
		/* band: [h, cols] f32 */
		for (int64_t i = 0; i < h * cols; i++) w->band[i] = draw(&r, &st);
		for (int64_t bc = 0; bc < nbc; bc++) {
			int64_t c0 = bc * FP8_BLOCK, c1 = c0 + FP8_BLOCK < cols ? c0 + FP8_BLOCK : cols;
			float amax = 0.0f;
			for (int64_t y = 0; y < h; y++)
				for (int64_t x = c0; x < c1; x++) {
					float a = fabsf(w->band[y * cols + x]);
					if (a > amax) amax = a;
				}
			float s = gen_pow2_scale(amax, 448.0, SCALE_FLOOR, &sc[bc]);
			for (int64_t y = 0; y < h; y++)
				for (int64_t x = c0; x < c1; x++)
					w->codes[y * cols + x] = enc_e4m3(w, w->band[y * cols + x] / s);
		}
		rc = full_pwrite(j, t->name, w->codes, (size_t)(h * cols), j->off + (uint64_t)(r0 * cols),
				 written, e);
		if (rc) return rc;
	}
	return full_pwrite(j, j->scale->name, w->sbuf, (size_t)((b1 - b0) * nbc),
			   j->scale_off + (uint64_t)(b0 * nbc), written, e);
}

/* FP4 expert weight: I8 [out, in/2] packed E2M1, E8M0 scales [out, in/32]. */
static int gen_fp4(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		   uint64_t *written, struct nv_err *e)
{
	const struct core_tensor_spec *t = j->t;
	int64_t rows = t->shape[0], in = 2 * t->shape[1], nb = in / FP4_BLOCK;
	if (in % FP4_BLOCK)
		return core_err_set(e, NV_EINVAL, j->file, t->name, NULL,
				    "FP4 input width %lld is not a multiple of 32", (long long)in);
	int rc = check_scale_shape(j, rows, nb, e);
	if (rc) return rc;
	int64_t rpc = (int64_t)(GEN_CHUNK / (size_t)(in / 2)); /* rows per chunk */
	if (rpc < 1) rpc = 1;
	if (ensure((void **)&w->sbuf, &w->sbuf_cap, (size_t)(rpc * nb)) ||
	    ensure((void **)&w->codes, &w->codes_cap, (size_t)(rpc * in / 2)))
		return core_err_set(e, NV_ENOMEM, j->file, t->name, NULL, "out of memory");
	/* Expert 0: gate and up scales x32 so that the SwiGLU clamps fire (TINY.md §5). */
	int bump = t->expert == 0 && (ends_with(t->name, ".w1.weight") || ends_with(t->name, ".w3.weight"));
	struct gen_rule r;
	gen_rule_for(g, t, &r);
	uint64_t st = gen_skip(gen_stream_seed(t->name, g->seed), 4 * (uint64_t)(j->r0 * in));
	for (int64_t r0 = j->r0; r0 < j->r1; r0 += rpc) {
		int64_t h = j->r1 - r0 < rpc ? j->r1 - r0 : rpc;
		for (int64_t y = 0; y < h; y++) {
			float *v = w->band; /* [in] one logical row */
			uint8_t *out = w->codes + y * (in / 2), *sc = w->sbuf + y * nb;
			for (int64_t x = 0; x < in; x++) v[x] = draw(&r, &st);
			for (int64_t b = 0; b < nb; b++) {
				float amax = 0.0f;
				for (int x = 0; x < FP4_BLOCK; x++) {
					float a = fabsf(v[b * FP4_BLOCK + x]);
					if (a > amax) amax = a;
				}
				float s = gen_pow2_scale(amax, 6.0, SCALE_FLOOR, &sc[b]);
				for (int x = 0; x < FP4_BLOCK; x += 2) {
					uint8_t lo = enc_e2m1(w, v[b * FP4_BLOCK + x] / s);
					uint8_t hi = enc_e2m1(w, v[b * FP4_BLOCK + x + 1] / s);
					out[(b * FP4_BLOCK + x) / 2] = (uint8_t)(lo | hi << 4);
				}
				if (bump) sc[b] = (uint8_t)(sc[b] + 5);
			}
		}
		rc = full_pwrite(j, t->name, w->codes, (size_t)(h * in / 2), j->off + (uint64_t)(r0 * in / 2),
				 written, e);
		if (!rc)
			rc = full_pwrite(j, j->scale->name, w->sbuf, (size_t)(h * nb),
					 j->scale_off + (uint64_t)(r0 * nb), written, e);
		if (rc) return rc;
	}
	return 0;
}

/* tid2eid I64 [V, k]: per row a Fisher-Yates shuffle of 0..E-1 (E-1 draws), first k ids. */
static int gen_tid2eid(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		       uint64_t *written, struct nv_err *e)
{
	const struct core_tensor_spec *t = j->t;
	int64_t k = t->shape[1], E = g->n_experts;
	if (t->ndim != 2 || k > E || E < 1)
		return core_err_set(e, NV_EINVAL, j->file, t->name, NULL,
				    "tid2eid shape needs [V, k] with k <= n_routed_experts = %lld", (long long)E);
	if (ensure((void **)&w->perm, &w->perm_cap, (size_t)E * sizeof(int64_t)))
		return core_err_set(e, NV_ENOMEM, j->file, t->name, NULL, "out of memory");
	int64_t rpc = (int64_t)(GEN_CHUNK / (size_t)(8 * k));
	uint64_t st = gen_skip(gen_stream_seed(t->name, g->seed), (uint64_t)(j->r0 * (E - 1)));
	for (int64_t r0 = j->r0; r0 < j->r1; r0 += rpc) {
		int64_t h = j->r1 - r0 < rpc ? j->r1 - r0 : rpc;
		int64_t *out = (int64_t *)(void *)w->codes;
		for (int64_t y = 0; y < h; y++) {
			for (int64_t i = 0; i < E; i++) w->perm[i] = i;
			for (int64_t i = E - 1; i >= 1; i--) {
				int64_t jj = (int64_t)(gen_uniform(&st) * (double)(i + 1));
				int64_t tmp = w->perm[i];
				w->perm[i] = w->perm[jj];
				w->perm[jj] = tmp;
			}
			memcpy(out + y * k, w->perm, (size_t)k * 8);
		}
		int rc = full_pwrite(j, t->name, w->codes, (size_t)(h * k * 8), j->off + (uint64_t)(r0 * k * 8),
				     written, e);
		if (rc) return rc;
	}
	return 0;
}

int gen_run_job(const struct gen_ctx *g, const struct gen_job *j, struct gen_work *w,
		uint64_t *written, struct nv_err *e)
{
	const struct core_tensor_spec *t = j->t;
	if (ends_with(t->name, "tid2eid") && t->dtype == CORE_DT_I64)
		return gen_tid2eid(g, j, w, written, e);
	if (t->dtype == CORE_DT_F8_E4M3 && t->ndim == 2) return gen_fp8(g, j, w, written, e);
	if (t->dtype == CORE_DT_I8 && t->ndim == 2) return gen_fp4(g, j, w, written, e);
	if (t->dtype == CORE_DT_F32 || t->dtype == CORE_DT_BF16) return gen_plain(g, j, w, written, e);
	return core_err_set(e, NV_EINVAL, j->file, t->name, "extend tools/mkmodel/gen.c",
			    "the generator has no rule for dtype %s", core_dtype_name(t->dtype));
}
