/* kernels/cuda/backend.cu - the CUDA backend: device, stream, memory ops, workspace,
 * weight arena and the kernel table (contract in kernels/cuda/cuda.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.cuh"
#include "kernels/cuda/cuda.h"

#define ARENA_BYTES ((size_t)256 << 20)

struct cu_arena {
	struct cu_arena *next;
	char *base;
	size_t used, cap;
};

/* One alloc()ed buffer (accounting: kern_cuda_mem_used). */
struct cu_buf {
	void *p;
	size_t bytes;
};

/* Backend state not needed by the op files. */
struct cu_host {
	struct cu_impl c;
	struct cu_arena *arenas;
	size_t arena_bytes;        /* sum of arena capacities */
	size_t ws_bytes;           /* reserve() workspace */
	struct cu_buf *bufs;       /* alloc()ed buffers, unordered */
	size_t nbufs, bufs_cap, buf_bytes;
};

void cu_fatal(const char *what, cudaError_t err, const char *file, int line)
{
	fprintf(stderr, "nvmoe: CUDA error in %s (%s:%d): %s\n", what, file, line, cudaGetErrorString(err));
	abort();
}

void cu_after_launch(struct kern *k, const char *op)
{
	cudaError_t e = cudaGetLastError();
	if (e == cudaSuccess && cu_of(k)->sync_debug) e = cudaStreamSynchronize(cu_of(k)->st);
	if (e != cudaSuccess) cu_fatal(op, e, __FILE__, __LINE__);
}

/* ---- memory ---- */

static void *cu_alloc(struct kern *k, size_t bytes)
{
	struct cu_host *h = (struct cu_host *)k->impl;
	struct cu_impl *c = &h->c;
	if (h->nbufs == h->bufs_cap) {
		size_t ncap = h->bufs_cap ? h->bufs_cap * 2 : 64;
		struct cu_buf *nb = (struct cu_buf *)realloc(h->bufs, ncap * sizeof *nb);
		if (!nb) return NULL;
		h->bufs = nb;
		h->bufs_cap = ncap;
	}
	void *p = NULL;
	if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
		cudaGetLastError(); /* clear the sticky-free allocation error */
		return NULL;
	}
	CU_CALL(cudaMemsetAsync(p, 0, bytes ? bytes : 1, c->st));
	h->bufs[h->nbufs].p = p;
	h->bufs[h->nbufs].bytes = bytes ? bytes : 1;
	h->nbufs++;
	h->buf_bytes += bytes ? bytes : 1;
	return p;
}

static void cu_free(struct kern *k, void *p)
{
	if (!p) return;
	struct cu_host *h = (struct cu_host *)k->impl;
	CU_CALL(cudaStreamSynchronize(h->c.st));
	CU_CALL(cudaFree(p));
	for (size_t i = h->nbufs; i-- > 0;) /* frees are rare (teardown): a linear search */
		if (h->bufs[i].p == p) {
			cu_lt_forget(k, p, h->bufs[i].bytes); /* cached cuBLASLt weight scales read from it */
			h->buf_bytes -= h->bufs[i].bytes;
			h->bufs[i] = h->bufs[--h->nbufs];
			break;
		}
}

static void cu_upload(struct kern *k, void *dst, const void *src, size_t bytes)
{
	struct cu_impl *c = cu_of(k);
	if (!bytes) return;
	cu_lt_forget(k, dst, bytes);
	CU_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->st));
	CU_CALL(cudaStreamSynchronize(c->st));
}

static void cu_download(struct kern *k, void *dst, const void *src, size_t bytes)
{
	struct cu_impl *c = cu_of(k);
	if (!bytes) return;
	CU_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->st));
	CU_CALL(cudaStreamSynchronize(c->st));
}

static void cu_copy(struct kern *k, void *dst, const void *src, size_t bytes)
{
	if (!bytes) return;
	cu_lt_forget(k, dst, bytes);
	CU_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu_of(k)->st));
}

/* ---- weights: arena + table keyed by host pointer ---- */

static size_t wm_slot(const struct cu_impl *c, const void *host)
{
	uintptr_t h = (uintptr_t)host;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h & (c->wm_cap - 1);
}

static int wm_grow(struct cu_impl *c)
{
	size_t ncap = c->wm_cap ? c->wm_cap * 2 : 1024;
	struct cu_wmap *nw = (struct cu_wmap *)calloc(ncap, sizeof *nw);
	if (!nw) return -ENOMEM;
	struct cu_wmap *old = c->wm;
	size_t ocap = c->wm_cap;
	c->wm = nw;
	c->wm_cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].host) {
			size_t j = wm_slot(c, old[i].host);
			while (c->wm[j].host) j = (j + 1) & (ncap - 1);
			c->wm[j] = old[i];
		}
	free(old);
	return 0;
}

static void *arena_get(struct cu_host *h, size_t bytes)
{
	bytes = (bytes + 255) & ~(size_t)255;
	struct cu_arena *a = h->arenas;
	if (!a || a->cap - a->used < bytes) {
		size_t cap = bytes > ARENA_BYTES ? bytes : ARENA_BYTES;
		a = (struct cu_arena *)calloc(1, sizeof *a);
		if (!a) return NULL;
		void *p = NULL;
		if (cudaMalloc(&p, cap) != cudaSuccess) {
			cudaGetLastError();
			/* a smaller last arena when the device is nearly full */
			cap = bytes;
			if (cudaMalloc(&p, cap) != cudaSuccess) {
				cudaGetLastError();
				free(a);
				return NULL;
			}
		}
		a->base = (char *)p;
		a->cap = cap;
		h->arena_bytes += cap;
		a->next = h->arenas;
		h->arenas = a;
	}
	void *r = a->base + a->used;
	a->used += bytes;
	return r;
}

static const void *cu_wmap(struct kern *k, const void *host, size_t bytes)
{
	struct cu_host *h = (struct cu_host *)k->impl;
	struct cu_impl *c = &h->c;
	if (!host) return NULL;
	if (c->wm_cap) {
		for (size_t j = wm_slot(c, host); c->wm[j].host; j = (j + 1) & (c->wm_cap - 1))
			if (c->wm[j].host == host && c->wm[j].bytes >= bytes) return c->wm[j].dev;
	}
	if ((c->wm_n + 1) * 2 > c->wm_cap && wm_grow(c)) return NULL;
	void *d = arena_get(h, bytes ? bytes : 1);
	if (!d) return NULL;
	if (bytes) {
		CU_CALL(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, c->st));
		CU_CALL(cudaStreamSynchronize(c->st));
	}
	size_t j = wm_slot(c, host);
	while (c->wm[j].host) j = (j + 1) & (c->wm_cap - 1);
	c->wm[j].host = host;
	c->wm[j].bytes = bytes;
	c->wm[j].dev = d;
	c->wm_n++;
	return d;
}

/* ---- workspace ---- */

static void ws_free(struct cu_impl *c)
{
	((struct cu_host *)c)->ws_bytes = 0; /* c is the first member of its cu_host */
	void *p[] = { c->apl, c->asc, c->xf, c->mg, c->mu, c->hcp, c->tok };
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		if (p[i]) cudaFree(p[i]);
	c->apl = NULL;
	c->asc = c->xf = c->mg = c->mu = c->hcp = NULL;
	c->tok = NULL;
}

static int cu_reserve(struct kern *k, int max_rows, int max_width)
{
	struct cu_impl *c = cu_of(k);
	if (c->apl && max_rows <= c->max_rows && max_width <= c->max_width) return 0;
	if (max_rows < c->max_rows) max_rows = c->max_rows;
	if (max_width < c->max_width) max_width = c->max_width;
	CU_CALL(cudaStreamSynchronize(c->st));
	ws_free(c);
	/* room for per-group padding of grouped GEMMs (each group padded to 32) */
	const size_t wp = ((size_t)max_width + 127) / 128 * 128 + 2048, R = CU_ROWS;
	size_t sz[] = { 3 * R * wp * 2, R * (wp / 128 + 1) * 4, R * wp * 4, R * wp * 4, R * wp * 4,
			R * CU_HC_NSPL * CU_HC_NV * 4, (size_t)(max_rows > 0 ? max_rows : 1) * 4 };
	void **dst[] = { (void **)&c->apl, (void **)&c->asc, (void **)&c->xf, (void **)&c->mg, (void **)&c->mu,
			 (void **)&c->hcp, (void **)&c->tok };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
		if (cudaMalloc(dst[i], sz[i]) != cudaSuccess) {
			cudaGetLastError();
			*dst[i] = NULL;
			ws_free(c);
			return -ENOMEM;
		}
	CU_CALL(cudaMemsetAsync(c->apl, 0, sz[0], c->st));
	size_t ws = 0;
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) ws += sz[i];
	((struct cu_host *)k->impl)->ws_bytes = ws;
	c->wp = (int)wp;
	c->max_rows = max_rows;
	c->max_width = max_width;
	if (c->gemm_lt) cu_lt_setup(k, NULL, 0); /* failure: gemm_fp8 keeps the own kernel */
	return 0;
}

static void cu_destroy(struct kern *k)
{
	if (!k) return;
	struct cu_host *h = (struct cu_host *)k->impl;
	if (h) {
		struct cu_impl *c = &h->c;
		cudaStreamSynchronize(c->st);
		cu_lt_destroy(k);
		ws_free(c);
		cu_sample_free(c);
		for (struct cu_arena *a = h->arenas, *n; a; a = n) {
			n = a->next;
			cudaFree(a->base);
			free(a);
		}
		for (size_t i = 0; i < h->nbufs; i++) cudaFree(h->bufs[i].p); /* buffers the owner did not free */
		free(h->bufs);
		free(c->wm);
		cudaStreamDestroy(c->st);
		free(h);
	}
	free(k);
}

/* ---- creation ---- */

extern "C" int kern_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError();
		return 0;
	}
	return n;
}

extern "C" void kern_cuda_set_gemm_ref(struct kern *k, int on) { cu_of(k)->gemm_ref = on != 0; }

extern "C" int kern_cuda_set_gemm_lt(struct kern *k, int on, char *msg, size_t msg_n)
{
	struct cu_impl *c = cu_of(k);
	if (msg && msg_n) msg[0] = 0;
	if (!on) {
		c->gemm_lt = 0;
		return 0;
	}
	int rc = cu_lt_setup(k, msg, msg_n);
	c->gemm_lt = rc == 0;
	return rc;
}

extern "C" long kern_cuda_gemm_lt_calls(struct kern *k) { return cu_lt_calls(k); }

extern "C" size_t kern_cuda_mem_used(struct kern *k)
{
	struct cu_host *h = (struct cu_host *)k->impl;
	return h->arena_bytes + h->ws_bytes + h->buf_bytes + cu_lt_bytes(k) + h->c.smp_bytes;
}

extern "C" void *kern_cuda_stream(struct kern *k) { return (void *)cu_of(k)->st; }

extern "C" int kern_cuda_device(struct kern *k) { return cu_of(k)->device; }

extern "C" int kern_cuda_is(const struct kern *k)
{
	return k && k->destroy == cu_destroy;
}

extern "C" void kern_cuda_info(struct kern *k, char *name, size_t name_n, size_t *mem_free, size_t *mem_total)
{
	struct cu_impl *c = cu_of(k);
	cudaDeviceProp pr;
	if (name && name_n) {
		name[0] = 0;
		if (cudaGetDeviceProperties(&pr, c->device) == cudaSuccess) snprintf(name, name_n, "%s", pr.name);
	}
	size_t f = 0, t = 0;
	cudaMemGetInfo(&f, &t);
	if (mem_free) *mem_free = f;
	if (mem_total) *mem_total = t;
}

extern "C" int kern_cuda_create(int device, struct kern **out, char *msg, size_t msg_n)
{
	*out = NULL;
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0) {
		if (msg && msg_n)
			snprintf(msg, msg_n, "no CUDA device (%s)",
				 e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
		cudaGetLastError();
		return -ENODEV;
	}
	if (device < 0 || device >= n) {
		if (msg && msg_n) snprintf(msg, msg_n, "CUDA device %d outside 0..%d", device, n - 1);
		return -EINVAL;
	}
	struct kern *k = (struct kern *)calloc(1, sizeof *k);
	struct cu_host *h = (struct cu_host *)calloc(1, sizeof *h);
	if (!k || !h) {
		free(k);
		free(h);
		if (msg && msg_n) snprintf(msg, msg_n, "out of host memory");
		return -ENOMEM;
	}
	struct cu_impl *c = &h->c;
	c->device = device;
	cudaDeviceProp pr;
	if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&pr, device)) != cudaSuccess ||
	    (e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking)) != cudaSuccess) {
		if (msg && msg_n) snprintf(msg, msg_n, "CUDA device %d: %s", device, cudaGetErrorString(e));
		cudaGetLastError();
		free(k);
		free(h);
		return -ENODEV;
	}
	if (pr.major < 8) {
		/* the GEMM engine's bf16 mma.sync needs sm_80+: fail here with a message
		 * rather than abort in the first GEMM with "no kernel image" */
		if (msg && msg_n)
			snprintf(msg, msg_n, "CUDA device %d (%s) has compute capability %d.%d; nvmoe needs 8.0 or later",
				 device, pr.name, pr.major, pr.minor);
		cudaStreamDestroy(c->st);
		free(k);
		free(h);
		return -ENODEV;
	}
	c->nsm = pr.multiProcessorCount;
	const char *ev = getenv("NVMOE_CUDA_SYNC");
	c->sync_debug = ev && *ev && strcmp(ev, "0");
	ev = getenv("NVMOE_CUDA_GEMM");
	c->gemm_ref = ev && !strcmp(ev, "ref");
	c->gemm_lt = ev && !strcmp(ev, "lt"); /* set up at reserve() */

	k->name = "cuda";
	k->impl = h; /* struct cu_host starts with its cu_impl: cu_of() works on it */
	k->alloc = cu_alloc;
	k->free = cu_free;
	k->upload = cu_upload;
	k->download = cu_download;
	k->copy = cu_copy;
	k->fill = cu_fill;
	k->wmap = cu_wmap;
	k->reserve = cu_reserve;
	k->destroy = cu_destroy;
	k->embed = cu_embed;
	k->round = cu_round;
	k->scale = cu_scale;
	k->add_bcast = cu_add_bcast;
	k->rmsnorm = cu_rmsnorm;
	k->head_rms = cu_head_rms;
	k->rope = cu_rope;
	k->qdq8 = cu_qdq8;
	k->qdq4 = cu_qdq4;
	k->hadamard = cu_hadamard;
	k->gemm_fp8 = cu_gemm_fp8;
	k->gemm_fp8_grouped = cu_gemm_fp8_grouped;
	k->gemm_bf16 = cu_gemm_bf16;
	k->gemm_f32 = cu_gemm_f32;
	k->hc_pre = cu_hc_pre;
	k->hc_post = cu_hc_post;
	k->hc_head = cu_hc_head;
	k->compress = cu_compress;
	k->kv_store = cu_kv_store;
	k->idx_score = cu_idx_score;
	k->topk = cu_topk;
	k->attn = cu_attn;
	k->route = cu_route;
	k->moe_expert = cu_moe_expert;
	k->swiglu = cu_swiglu;
	k->add_round = cu_add_round;
	k->sample_reserve = cu_sample_reserve;
	k->sample = cu_sample;
	*out = k;
	return 0;
}
