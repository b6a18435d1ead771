/* kernels/cuda/sample.cu - sample() on the device (the definition is in kern.h; the
 * CPU backend's kernels/cpu/sample.c computes it sequentially).
 *
 * Pipeline, all on the compute stream; only the id is downloaded:
 *   mask    copy of the logits with NaN, ids >= v_valid and the mask list at -inf;
 *   argmax  one block, cub::BlockReduce over (value, id) pairs (ties: lower id):
 *           m, best; greedy / no candidate / m = +inf end here (state.done);
 *   x       x_i = (l_i - m) * inv_t with __f*_rn (bitwise the CPU's f32 arithmetic);
 *   order   top-k or top-p: cub::DeviceRadixSort::SortPairsDescending of (x, id),
 *           stable, so equal x keep ascending ids: the "<" order of kern.h;
 *   weights p = exp((double)x) in walk order: ascending ids (no top-p; with top-k
 *           only the members of the set, by comparison with its last element) or
 *           the sorted prefix of top_k (top-p);
 *   pick    one block: each thread sums a contiguous chunk sequentially, a
 *           cub::BlockScan gives the chunk offsets P[t] (P[T] = total); the
 *           thread whose (P[t], P[t+1]] holds need finds the nucleus end, the one
 *           whose [P[t], P[t+1]) holds r = u * total walks its chunk to the id.
 *           Chunk ends use P itself, so the intervals partition [0, total) and
 *           exactly one thread answers.  Fixed order: deterministic run to run.
 * Scratch is sized once by sample_reserve() (cudaMalloc there, never per token). */
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cu.cuh"

#define SMP_T 1024 /* threads of the one-block kernels */

struct cu_smp_state {
	float m;
	int32_t best, result, done;
};

struct smp_arg {
	float v;
	int32_t i; /* -1: none */
};

struct smp_better {
	__device__ __forceinline__ smp_arg operator()(const smp_arg &a, const smp_arg &b) const
	{
		if (a.i < 0) return b;
		if (b.i < 0) return a;
		if (a.v != b.v) return a.v > b.v ? a : b;
		return a.i < b.i ? a : b;
	}
};

__global__ void k_smp_mask(float *x, const float *l, int V, int vv)
{
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < V; i += gridDim.x * blockDim.x) {
		float v = i < vv ? l[i] : -INFINITY;
		x[i] = v > -INFINITY ? v : -INFINITY; /* NaN too */
	}
}

__global__ void k_smp_scatter(float *x, const int32_t *mask, int n, int V)
{
	for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
		int32_t id = mask[j];
		if (id >= 0 && id < V) x[id] = -INFINITY;
	}
}

__global__ void __launch_bounds__(SMP_T) k_smp_argmax(struct cu_smp_state *st, const float *x, int V, int greedy)
{
	typedef cub::BlockReduce<smp_arg, SMP_T> BR;
	__shared__ typename BR::TempStorage ts;
	smp_arg a = { -INFINITY, -1 };
	for (int i = threadIdx.x; i < V; i += SMP_T) /* ascending ids: strict > keeps the lowest */
		if (x[i] > a.v) { a.v = x[i]; a.i = i; }
	smp_arg r = BR(ts).Reduce(a, smp_better());
	if (threadIdx.x == 0) {
		st->m = r.v;
		st->best = r.i;
		st->result = r.i;
		st->done = r.i < 0 || greedy || r.v == INFINITY;
	}
}

/* x in place; ids[i] = i (for the sort) and p[i] = exp(x) (id-order walk) when given */
__global__ void k_smp_x(float *x, int32_t *ids, double *p, const struct cu_smp_state *st, int V, float inv_t)
{
	if (st->done) return;
	const float m = st->m;
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < V; i += gridDim.x * blockDim.x) {
		float l = x[i];
		float v = l > -INFINITY ? __fmul_rn(__fsub_rn(l, m), inv_t) : -INFINITY;
		x[i] = v;
		if (ids) ids[i] = i;
		if (p) p[i] = exp((double)v);
	}
}

/* top-k alone: p[i] = exp(x_i) for members of the set (last element xs[kk-1], ids[kk-1]) */
__global__ void k_smp_member(double *p, const float *x, const float *xs, const int32_t *ids, int kk, int V,
			     const struct cu_smp_state *st)
{
	if (st->done) return;
	const float xt = xs[kk - 1];
	const int32_t it = ids[kk - 1];
	for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < V; i += gridDim.x * blockDim.x) {
		float v = x[i];
		p[i] = (v > xt || (v == xt && i <= it)) ? exp((double)v) : 0.0;
	}
}

/* top-p: p[j] = exp(xs[j]) for the first kk of the order */
__global__ void k_smp_psorted(double *p, const float *xs, int kk, const struct cu_smp_state *st)
{
	if (st->done) return;
	for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < kk; j += gridDim.x * blockDim.x)
		p[j] = exp((double)xs[j]);
}

/* The draw over p[0..n) in walk order (ids == NULL: position = id); nucleus: cut at
 * the first running sum >= top_p * sum first. */
__global__ void __launch_bounds__(SMP_T) k_smp_pick(struct cu_smp_state *st, const double *p, const int32_t *ids,
						    int n, double u, float top_p, int nucleus)
{
	typedef cub::BlockScan<double, SMP_T> BS;
	__shared__ typename BS::TempStorage ts;
	__shared__ double P[SMP_T + 1];
	__shared__ double s_total;
	__shared__ int s_cut;
	if (st->done) return; /* uniform over the block */
	const int t = threadIdx.x, ch = (n + SMP_T - 1) / SMP_T;
	const int a = min(n, t * ch), b = min(n, a + ch);
	double s = 0;
	for (int j = a; j < b; j++) s = __dadd_rn(s, p[j]);
	double ex, agg;
	BS(ts).ExclusiveSum(s, ex, agg);
	P[t] = ex;
	if (t == 0) {
		P[SMP_T] = agg;
		s_total = agg;
		s_cut = n - 1;
	}
	__syncthreads();
	if (nucleus) {
		const double need = (double)top_p * P[SMP_T];
		if (P[t] < need && need <= P[t + 1]) {
			double c = P[t];
			for (int j = a; j < b; j++) {
				c = j == b - 1 ? P[t + 1] : __dadd_rn(c, p[j]);
				if (c >= need) {
					s_cut = j;
					s_total = c;
					break;
				}
			}
		}
		__syncthreads();
	}
	const int cut = s_cut;
	const double total = s_total, r = u * total;
	if (a >= b || a > cut) return;
	const double hi = cut < b ? total : P[t + 1];
	if (!(P[t] <= r && r < hi)) return;
	double c = P[t];
	for (int j = a; j < b && j <= cut; j++) {
		c = j == cut ? total : j == b - 1 ? P[t + 1] : __dadd_rn(c, p[j]);
		if (r < c) {
			st->result = ids ? ids[j] : j;
			return;
		}
	}
}

static size_t sort_bytes(int V)
{
	size_t bytes = 0;
	CU_CALL(cub::DeviceRadixSort::SortPairsDescending((void *)NULL, bytes, (const float *)NULL, (float *)NULL,
							  (const int32_t *)NULL, (int32_t *)NULL, V, 0, 32));
	return bytes;
}

void cu_sample_free(struct cu_impl *c)
{
	void *p[] = { c->s_x, c->s_xs, c->s_id, c->s_ids, c->s_p, c->s_tmp, c->s_st };
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		if (p[i]) cudaFree(p[i]);
	c->s_x = c->s_xs = NULL;
	c->s_id = c->s_ids = NULL;
	c->s_p = NULL;
	c->s_tmp = NULL;
	c->s_st = NULL;
	c->s_tmp_bytes = c->smp_bytes = 0;
	c->smp_v = 0;
}

int cu_sample_reserve(struct kern *k, int max_vocab)
{
	struct cu_impl *c = cu_of(k);
	if (max_vocab <= c->smp_v) return 0;
	CU_CALL(cudaStreamSynchronize(c->st));
	cu_sample_free(c);
	const size_t V = (size_t)max_vocab, tb = sort_bytes(max_vocab);
	size_t sz[] = { V * 4, V * 4, V * 4, V * 4, V * 8, tb ? tb : 1, sizeof(struct cu_smp_state) };
	void **dst[] = { (void **)&c->s_x, (void **)&c->s_xs, (void **)&c->s_id, (void **)&c->s_ids,
			 (void **)&c->s_p, &c->s_tmp, (void **)&c->s_st };
	size_t tot = 0;
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		if (cudaMalloc(dst[i], sz[i]) != cudaSuccess) {
			cudaGetLastError();
			*dst[i] = NULL;
			cu_sample_free(c);
			return -ENOMEM;
		}
		tot += sz[i];
	}
	c->s_tmp_bytes = sz[5];
	c->smp_bytes = tot;
	c->smp_v = max_vocab;
	return 0;
}

void cu_sample(struct kern *k, int32_t *id_h, const float *logits, int V, const int32_t *mask, int n_mask,
	       int v_valid, const struct kern_sample *sp)
{
	struct cu_impl *c = cu_of(k);
	if (V > c->smp_v) {
		fprintf(stderr, "nvmoe: CUDA sample: %d logits, scratch reserved for %d (sample_reserve)\n", V, c->smp_v);
		abort();
	}
	const cudaStream_t st = c->st;
	const int vv = v_valid < 0 ? 0 : v_valid < V ? v_valid : V;
	const int greedy = sp->temperature == 0 || sp->top_k == 1;
	k_smp_mask<<<cu_grid((size_t)V), 256, 0, st>>>(c->s_x, logits, V, vv);
	if (n_mask > 0) k_smp_scatter<<<cu_grid((size_t)n_mask), 256, 0, st>>>(c->s_x, mask, n_mask, V);
	k_smp_argmax<<<1, SMP_T, 0, st>>>(c->s_st, c->s_x, V, greedy);
	if (!greedy) {
		const float inv_t = 1.0f / fmaxf(sp->temperature, 1e-5f);
		/* top_k beyond the candidates is handled by p = 0 of the non-candidates */
		const int kk = sp->top_k > 0 && sp->top_k < V ? sp->top_k : V;
		if (kk == V && sp->top_p >= 1.0f) {
			k_smp_x<<<cu_grid((size_t)V), 256, 0, st>>>(c->s_x, NULL, c->s_p, c->s_st, V, inv_t);
			k_smp_pick<<<1, SMP_T, 0, st>>>(c->s_st, c->s_p, NULL, V, sp->u, 1.0f, 0);
		} else {
			k_smp_x<<<cu_grid((size_t)V), 256, 0, st>>>(c->s_x, c->s_id, NULL, c->s_st, V, inv_t);
			size_t tb = c->s_tmp_bytes;
			CU_CALL(cub::DeviceRadixSort::SortPairsDescending(c->s_tmp, tb, (const float *)c->s_x, c->s_xs,
									  (const int32_t *)c->s_id, c->s_ids, V, 0, 32, st));
			if (sp->top_p >= 1.0f) {
				k_smp_member<<<cu_grid((size_t)V), 256, 0, st>>>(c->s_p, c->s_x, c->s_xs, c->s_ids, kk, V,
										c->s_st);
				k_smp_pick<<<1, SMP_T, 0, st>>>(c->s_st, c->s_p, NULL, V, sp->u, 1.0f, 0);
			} else {
				k_smp_psorted<<<cu_grid((size_t)kk), 256, 0, st>>>(c->s_p, c->s_xs, kk, c->s_st);
				k_smp_pick<<<1, SMP_T, 0, st>>>(c->s_st, c->s_p, c->s_ids, kk, sp->u, sp->top_p, 1);
			}
		}
	}
	cu_after_launch(k, "sample");
	CU_CALL(cudaMemcpyAsync(id_h, &c->s_st->result, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
	CU_CALL(cudaStreamSynchronize(st));
}
