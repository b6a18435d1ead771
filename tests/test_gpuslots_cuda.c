/* tests/test_gpuslots_cuda.c - GPU expert slots with the real CUDA operations
 * (cache/gpu_cuda.c) on the CUDA backend's stream:
 *   - a host pool registered through the pin hook is reported page-locked;
 *   - over an inner host source with 3 host slots (overwritten as soon as they are
 *     reused: a view released before its DMA ran would show wrong bytes), thousands of
 *     acquires over 2 and 5 GPU slots: after each acquire, the bytes read back through
 *     the compute stream (k->download, ordered after the slot's copy by the event wait)
 *     equal the expert's pattern, for a store-like layout (one copy) and a scattered one
 *     (one copy per part); compute work between uses keeps use events pending so that
 *     refills take the GPU-side wait path;
 *   - no CUDA error is left behind for the backend (a following op and sync succeed);
 *   - the pool is sized from --vram-budget: budget = backend usage + 2.5 slots -> 2 slots.
 * Exit 77 without a CUDA device.  Label gpu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/gpu.h"
#include "kernels/cuda/cuda.h"
#include "testutil.h"

#define NB 4
#define NE 8
#define HS 3 /* host slots */
static const size_t PART[CACHE_GPU_NPARTS] = { 256 << 10, 8 << 10, 256 << 10, 8 << 10, 256 << 10, 8 << 10 };

static uint8_t pat(int b, int x, int p, size_t i) { return (uint8_t)(b * 71 + x * 13 + p * 5 + (i * 7 >> 3) + 1); }

struct host {
	uint8_t *mem;     /* [HS][hslot] */
	size_t hslot;
	int key[HS], refs[HS];
	unsigned age[HS], clock;
	int scattered;
	struct cache_gpu_pin pin;
};
static struct host H;

static void hoff(size_t off[6])
{
	if (!H.scattered) { cache_gpu_layout(PART, off); return; }
	size_t o = 5;
	for (int p = 5; p >= 0; p--) { off[p] = o; o += PART[p] + 7; }
}

static int h_acquire(void *ctx, int b, int x, struct core_expert_view *v, struct nv_err *e)
{
	(void)ctx;
	int key = b * NE + x, s = -1;
	for (int i = 0; i < HS; i++) if (H.key[i] == key) s = i;
	size_t off[6];
	hoff(off);
	if (s < 0) {
		for (int i = 0; i < HS; i++)
			if (!H.refs[i] && (s < 0 || H.age[i] < H.age[s])) s = i;
		if (s < 0) return core_err_set(e, NV_EFIT, "host", NULL, NULL, "all host slots referenced");
		H.key[s] = key;
		uint8_t *m = H.mem + (size_t)s * H.hslot;
		memset(m, 0xAB, H.hslot);
		for (int p = 0; p < 6; p++)
			for (size_t i = 0; i < PART[p]; i++) m[off[p] + i] = pat(b, x, p, i);
	}
	H.refs[s]++;
	H.age[s] = ++H.clock;
	const uint8_t *m = H.mem + (size_t)s * H.hslot;
	v->w1 = m + off[0]; v->w1_scale = m + off[1]; v->w3 = m + off[2];
	v->w3_scale = m + off[3]; v->w2 = m + off[4]; v->w2_scale = m + off[5];
	return 0;
}

static void h_release(void *ctx, int b, int x)
{
	(void)ctx;
	for (int i = 0; i < HS; i++)
		if (H.key[i] == b * NE + x && H.refs[i] > 0) { H.refs[i]--; return; }
	TU_CHECK(0, "inner release of (%d,%d) not held", b, x);
}

static struct core_expert_src HSRC = { .acquire = h_acquire, .release = h_release };

static void die(const char *what, const struct nv_err *e)
{
	char b[2048];
	fprintf(stderr, "FAIL: %s: %s\n", what, core_err_str(e, b, sizeof b));
	exit(1);
}

static void run(struct kern *k, int nslots, int scattered, uint64_t budget)
{
	memset(H.key, -1, sizeof H.key);
	memset(H.refs, 0, sizeof H.refs);
	H.scattered = scattered;
	struct cache_gpu_opts o = { .inner = &HSRC, .nblocks = NB, .nexperts = NE, .nslots = nslots };
	memcpy(o.part_bytes, PART, sizeof PART);
	struct cache_gpu_ops ops;
	struct nv_err e = {0};
	if (cache_gpu_cuda_ops(k, budget, &ops, &e)) die("cuda ops", &e);
	struct cache_gpu *g = NULL;
	if (cache_gpu_create(&o, &ops, &g, &e)) die("create", &e);
	if (cache_gpu_reserve(g, &e)) die("reserve", &e);
	if (budget) TU_CHECK(cache_gpu_nslots(g) == 2, "budget of 2.5 slots over the backend's usage: %d slots, expected 2",
			     cache_gpu_nslots(g));
	struct core_expert_src s;
	cache_gpu_iface(g, &s);
	size_t busy_n = (size_t)16 << 20;
	float *busy = k->alloc(k, busy_n * sizeof(float)); /* compute work that keeps use events pending */
	uint8_t *back = malloc(PART[0]);
	unsigned r = 99 + (unsigned)nslots;
	int bad = 0;
	for (int it = 0; it < 1500 && !bad; it++) {
		r = r * 1103515245u + 12345u;
		int b = (int)((r >> 8) % NB), x = (int)((r >> 16) % NE);
		struct core_expert_view v;
		if (s.acquire(s.ctx, b, x, &v, &e)) die("acquire", &e);
		const uint8_t *pp[6] = { v.w1, v.w1_scale, v.w3, v.w3_scale, v.w2, v.w2_scale };
		int p = (int)((r >> 4) % 6);
		TU_CHECK(((uintptr_t)pp[p] & 15) == 0, "view of part %d not 16-byte aligned", p);
		k->download(k, back, pp[p], PART[p]);
		for (size_t i = 0; i < PART[p]; i++)
			if (back[i] != pat(b, x, p, i)) {
				TU_CHECK(0, "iteration %d: (%d,%d) part %d byte %zu: got %u, expected %u (slots %d, %s)", it, b, x, p, i,
					 back[i], pat(b, x, p, i), nslots, scattered ? "scattered" : "store-like");
				bad = 1;
				break;
			}
		if (it % 3 == 0) k->fill(k, busy, (float)it, busy_n); /* queued after the download */
		s.release(s.ctx, b, x);
	}
	struct cache_gpu_stats st;
	cache_gpu_stats(g, &st);
	printf("%d slots, %s: %llu hits, %llu misses, %llu copies (%.1f MB), %llu refills after a pending use, %llu host waits\n",
	       cache_gpu_nslots(g), scattered ? "scattered" : "store-like", (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.copies, st.bytes_copied / 1e6,
	       (unsigned long long)st.copy_waits, (unsigned long long)st.host_waits);
	TU_CHECK(st.misses > 100, "only %llu misses", (unsigned long long)st.misses);
	TU_CHECK(scattered ? st.copies == 6 * st.misses : st.copies == st.misses, "copies %llu for %llu misses (%s)",
		 (unsigned long long)st.copies, (unsigned long long)st.misses, scattered ? "6 each" : "1 each");
	cache_gpu_destroy(g);
	for (int i = 0; i < HS; i++) TU_CHECK(H.refs[i] == 0, "host slot %d still referenced after destroy", i);
	/* the backend must find no error left behind */
	k->fill(k, busy, 1.0f, 1024);
	float one[4];
	k->download(k, one, busy, sizeof one);
	TU_CHECK(one[0] == 1.0f, "backend op after the slots: %g", one[0]);
	k->free(k, busy);
	free(back);
}

int main(void)
{
	if (kern_cuda_device_count() == 0) tu_skip("no CUDA device");
	struct kern *k = NULL;
	char msg[256];
	if (kern_cuda_create(0, &k, msg, sizeof msg)) { fprintf(stderr, "FAIL: %s\n", msg); return 1; }
	size_t off[6];
	H.hslot = (cache_gpu_layout(PART, off) + 4095) / 4096 * 4096 + 8192;
	H.mem = aligned_alloc(4096, HS * H.hslot);
	struct nv_err e = {0};
	TU_CHECK(cache_gpu_cuda_pin(H.mem, HS * H.hslot, &H.pin, &e) == 0 && H.pin.pinned,
		 "cudaHostRegister of the host pool refused: %s", H.pin.why);
	run(k, 2, 0, 0);
	run(k, 5, 0, 0);
	run(k, 2, 1, 0);
	run(k, 5, 1, 0);
	size_t slot = cache_gpu_layout(PART, off);
	run(k, 0, 0, kern_cuda_mem_used(k) + slot * 5 / 2);
	cache_gpu_cuda_unpin(H.mem, HS * H.hslot, &H.pin);
	TU_CHECK(!H.pin.pinned, "unpin left the pool marked pinned");
	free(H.mem);
	k->destroy(k);
	TU_DONE();
}
