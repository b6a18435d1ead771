/* cache/gpu_cuda.c - the CUDA device operations of the GPU expert slots and the host
 * cache's page-locking hook (contract in cache/gpu.h).  C against the CUDA runtime API;
 * in a build without CUDA the same functions refuse with NV_EUNSUPPORTED and a message. */
#include "gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef NVMOE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda.h"

struct gcu {
	struct kern *k;
	int device;
	cudaStream_t copy;    /* ours */
	cudaStream_t compute; /* the backend's */
	uint64_t budget;      /* --vram-budget, 0 = none */
};

/* cudaError_t -> negative int and back */
static int cerr(cudaError_t e) { return e == cudaSuccess ? 0 : -(int)e; }

static int g_avail(void *arg, uint64_t *bytes)
{
	struct gcu *c = arg;
	size_t fr = 0, tot = 0;
	cudaError_t e = cudaMemGetInfo(&fr, &tot);
	if (e != cudaSuccess) return cerr(e);
	uint64_t reserve = (uint64_t)tot / 50;
	if (reserve < (256ull << 20)) reserve = 256ull << 20; /* cuBLAS, the context's own growth */
	uint64_t a = fr > reserve ? (uint64_t)fr - reserve : 0;
	if (c->budget) {
		uint64_t used = kern_cuda_mem_used(c->k);
		uint64_t b = c->budget > used ? c->budget - used : 0;
		if (b < a) a = b;
	}
	*bytes = a;
	return 0;
}

static int g_alloc(void *arg, size_t bytes, void **dev)
{
	(void)arg;
	*dev = NULL;
	cudaError_t e = cudaMalloc(dev, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError(); /* an allocation failure is not sticky: clear it for the backend's checks */
		*dev = NULL;
	}
	return cerr(e);
}

static void g_free(void *arg, void *dev)
{
	(void)arg;
	cudaFree(dev);
}

static int g_event_create(void *arg, void **ev)
{
	(void)arg;
	cudaEvent_t x = NULL;
	cudaError_t e = cudaEventCreateWithFlags(&x, cudaEventDisableTiming);
	*ev = x;
	return cerr(e);
}

static void g_event_destroy(void *arg, void *ev)
{
	(void)arg;
	cudaEventDestroy((cudaEvent_t)ev);
}

static int g_copy(void *arg, void *dst, const void *src, size_t bytes)
{
	struct gcu *c = arg;
	return cerr(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->copy));
}

static int g_record_copy(void *arg, void *ev)
{
	struct gcu *c = arg;
	return cerr(cudaEventRecord((cudaEvent_t)ev, c->copy));
}

static int g_record_compute(void *arg, void *ev)
{
	struct gcu *c = arg;
	return cerr(cudaEventRecord((cudaEvent_t)ev, c->compute));
}

static int g_compute_wait(void *arg, void *ev)
{
	struct gcu *c = arg;
	return cerr(cudaStreamWaitEvent(c->compute, (cudaEvent_t)ev, 0));
}

static int g_copy_wait(void *arg, void *ev)
{
	struct gcu *c = arg;
	return cerr(cudaStreamWaitEvent(c->copy, (cudaEvent_t)ev, 0));
}

static int g_query(void *arg, void *ev)
{
	(void)arg;
	cudaError_t e = cudaEventQuery((cudaEvent_t)ev);
	if (e == cudaSuccess) return 1;
	if (e == cudaErrorNotReady) {
		/* not an error; make sure it is not left as the "last error", which the
		 * backend checks after every launch (kernels/cuda/backend.cu) */
		if (cudaPeekAtLastError() == cudaErrorNotReady) cudaGetLastError();
		return 0;
	}
	return cerr(e);
}

static int g_sync(void *arg, void *ev)
{
	(void)arg;
	return cerr(cudaEventSynchronize((cudaEvent_t)ev));
}

static const char *g_errstr(void *arg, int rc)
{
	(void)arg;
	return rc < 0 ? cudaGetErrorString((cudaError_t)-rc) : "unknown error";
}

static void g_destroy(void *arg)
{
	struct gcu *c = arg;
	if (!c) return;
	if (c->copy) {
		cudaStreamSynchronize(c->copy);
		cudaStreamDestroy(c->copy);
	}
	free(c);
}

int cache_gpu_cuda_ops(struct kern *k, uint64_t vram_budget, struct cache_gpu_ops *out, struct nv_err *e)
{
	memset(out, 0, sizeof *out);
	if (!k || !kern_cuda_is(k))
		return core_err_set(e, NV_EINVAL, "GPU expert slots", k ? k->name : NULL, "internal",
				    "the backend is not the CUDA backend");
	struct gcu *c = calloc(1, sizeof *c);
	if (!c) return core_err_set(e, NV_ENOMEM, "GPU expert slots", NULL, NULL, "out of memory");
	c->k = k;
	c->device = kern_cuda_device(k);
	c->compute = (cudaStream_t)kern_cuda_stream(k);
	c->budget = vram_budget;
	cudaError_t ce = cudaSetDevice(c->device);
	if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking);
	if (ce != cudaSuccess) {
		cudaGetLastError();
		free(c);
		return core_err_set(e, NV_EIO, "GPU expert slots", "copy stream", NULL, "cannot create a CUDA stream: %s",
				    cudaGetErrorString(ce));
	}
	out->arg = c;
	out->avail = g_avail;
	out->alloc = g_alloc;
	out->free = g_free;
	out->event_create = g_event_create;
	out->event_destroy = g_event_destroy;
	out->copy = g_copy;
	out->record_copy = g_record_copy;
	out->record_compute = g_record_compute;
	out->compute_wait = g_compute_wait;
	out->copy_wait = g_copy_wait;
	out->query = g_query;
	out->sync = g_sync;
	out->errstr = g_errstr;
	out->destroy = g_destroy;
	return 0;
}

int cache_gpu_cuda_pin(void *base, size_t len, void *arg, struct nv_err *e)
{
	(void)e;
	struct cache_gpu_pin *p = arg;
	p->pinned = 0;
	p->why[0] = 0;
	cudaError_t ce = cudaHostRegister(base, len, cudaHostRegisterDefault);
	if (ce != cudaSuccess) {
		/* fall back to pageable copies (staged by the driver): slower, still correct */
		cudaGetLastError();
		snprintf(p->why, sizeof p->why, "cudaHostRegister of %.2f GiB: %s", (double)len / (1 << 30),
			 cudaGetErrorString(ce));
		return 0;
	}
	p->pinned = 1;
	return 0;
}

void cache_gpu_cuda_unpin(void *base, size_t len, void *arg)
{
	(void)len;
	struct cache_gpu_pin *p = arg;
	if (p && p->pinned) {
		cudaHostUnregister(base);
		p->pinned = 0;
	}
}

int cache_gpu_cuda_h2d_gbs(size_t bytes, int reps, int pinned, double *gbs, struct nv_err *e)
{
	*gbs = 0;
	void *h = NULL, *d = NULL;
	cudaStream_t st = NULL;
	int reg = 0, rc = 0;
	const char *what = "cudaMalloc";
	cudaError_t ce;
	if (posix_memalign(&h, 4096, bytes)) return core_err_set(e, NV_ENOMEM, "h2d bandwidth", NULL, NULL, "out of memory");
	memset(h, 1, bytes); /* fault the pages in: the copies measure DMA, not page faults */
	if ((ce = cudaMalloc(&d, bytes)) != cudaSuccess) goto fail;
	what = "cudaStreamCreate";
	if ((ce = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking)) != cudaSuccess) goto fail;
	if (pinned) {
		what = "cudaHostRegister";
		if ((ce = cudaHostRegister(h, bytes, cudaHostRegisterDefault)) != cudaSuccess) goto fail;
		reg = 1;
	}
	what = "cudaMemcpyAsync";
	if ((ce = cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, st)) != cudaSuccess ||
	    (ce = cudaStreamSynchronize(st)) != cudaSuccess)
		goto fail;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < reps; i++)
		if ((ce = cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, st)) != cudaSuccess) goto fail;
	if ((ce = cudaStreamSynchronize(st)) != cudaSuccess) goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	*gbs = s > 0 ? (double)bytes * reps / s / 1e9 : 0;
	goto out;
fail:
	cudaGetLastError();
	rc = core_err_set(e, NV_EIO, "h2d bandwidth", what, NULL, "%s", cudaGetErrorString(ce));
out:
	if (reg) cudaHostUnregister(h);
	if (st) cudaStreamDestroy(st);
	cudaFree(d);
	free(h);
	return rc;
}

#else /* no CUDA in this build */

int cache_gpu_cuda_ops(struct kern *k, uint64_t vram_budget, struct cache_gpu_ops *out, struct nv_err *e)
{
	(void)k;
	(void)vram_budget;
	memset(out, 0, sizeof *out);
	return core_err_set(e, NV_EUNSUPPORTED, "GPU expert slots", NULL, "rebuild with CUDA",
			    "this nvmoe was built without CUDA");
}

int cache_gpu_cuda_pin(void *base, size_t len, void *arg, struct nv_err *e)
{
	(void)base;
	(void)len;
	(void)e;
	struct cache_gpu_pin *p = arg;
	p->pinned = 0;
	snprintf(p->why, sizeof p->why, "built without CUDA");
	return 0;
}

void cache_gpu_cuda_unpin(void *base, size_t len, void *arg)
{
	(void)base;
	(void)len;
	(void)arg;
}

int cache_gpu_cuda_h2d_gbs(size_t bytes, int reps, int pinned, double *gbs, struct nv_err *e)
{
	(void)bytes;
	(void)reps;
	(void)pinned;
	*gbs = 0;
	return core_err_set(e, NV_EUNSUPPORTED, "h2d bandwidth", NULL, "rebuild with CUDA", "this nvmoe was built without CUDA");
}

#endif
