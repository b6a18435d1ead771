/* kernels/cuda/compressor.cu - the KV compressor (§8.5), the same token-row rules as
 * kernels/cpu/compressor.c: token t's (k, g + ape) comes from the call's rows when
 * t >= p0, else from the state (ratio 128: slot t mod r; ratio 4: rows [0, r) =
 * previous window, [r, 2r) = current window).  Pooling: one thread per (window,
 * channel), candidates in the CPU's order (max, sum of exp, weighted sum: exp
 * recomputed instead of stored, same values).  Then the state update in two ordered
 * launches (previous-window copy reads the current rows before they are rewritten). */
#include "cu.cuh"

struct comp_args {
	float *K, *G;
	const float *kt, *gt, *ape;
	int p0, r, d, cd, cur0, ov;
};

static __device__ __forceinline__ int imod(int a, int m) { return ((a % m) + m) % m; }

static __device__ __forceinline__ void tok_val(const comp_args &c, int t, int col, float *kv, float *gv)
{
	if (t >= c.p0) {
		size_t o = (size_t)(t - c.p0) * c.cd + col;
		*kv = c.kt[o];
		*gv = __fadd_rn(c.gt[o], c.ape[(size_t)imod(t, c.r) * c.cd + col]);
		return;
	}
	int row;
	if (!c.ov) row = imod(t, c.r);
	else row = t >= c.cur0 ? c.r + imod(t, c.r) : imod(t, c.r);
	*kv = c.K[(size_t)row * c.cd + col];
	*gv = c.G[(size_t)row * c.cd + col];
}

__global__ void k_comp_pool(float *u, comp_args c, int w0)
{
	const int w = w0 + blockIdx.x, ch = blockIdx.y * blockDim.x + threadIdx.x;
	if (ch >= c.d) return;
	const int nc = (1 + c.ov) * c.r;
	float mx = -INFINITY, sum = 0.0f, acc = 0.0f, kv, gv;
	for (int j = 0; j < nc; j++) {
		int t = c.ov ? (w - 1) * c.r + j : w * c.r + j, col = c.ov && j >= c.r ? c.d + ch : ch;
		tok_val(c, t, col, &kv, &gv);
		if (gv > mx) mx = gv;
	}
	for (int j = 0; j < nc; j++) {
		int t = c.ov ? (w - 1) * c.r + j : w * c.r + j, col = c.ov && j >= c.r ? c.d + ch : ch;
		tok_val(c, t, col, &kv, &gv);
		sum = __fadd_rn(sum, expf(__fsub_rn(gv, mx)));
	}
	for (int j = 0; j < nc; j++) {
		int t = c.ov ? (w - 1) * c.r + j : w * c.r + j, col = c.ov && j >= c.r ? c.d + ch : ch;
		tok_val(c, t, col, &kv, &gv);
		float e = expf(__fsub_rn(gv, mx));
		acc = __fadd_rn(acc, __fmul_rn(__fdiv_rn(e, sum), kv));
	}
	u[(size_t)(w - w0) * c.d + ch] = acc;
}

/* ratio 4: rows [0, r) <- tokens of the last completed window wl */
__global__ void k_comp_prev(comp_args c, int wl)
{
	const int n = c.r * c.cd;
	for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
		int i = e / c.cd, col = e % c.cd;
		float kv, gv;
		tok_val(c, wl * c.r + i, col, &kv, &gv);
		c.K[(size_t)i * c.cd + col] = kv;
		c.G[(size_t)i * c.cd + col] = gv;
	}
}

/* the call's last (up to r) tokens -> their slot / current row */
__global__ void k_comp_cur(comp_args c, int tfirst, int nt)
{
	const int n = nt * c.cd;
	for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
		int t = tfirst + e / c.cd, col = e % c.cd;
		int row = (c.ov ? c.r : 0) + imod(t, c.r);
		size_t o = (size_t)(t - c.p0) * c.cd + col;
		c.K[(size_t)row * c.cd + col] = c.kt[o];
		c.G[(size_t)row * c.cd + col] = __fadd_rn(c.gt[o], c.ape[(size_t)imod(t, c.r) * c.cd + col]);
	}
}

void cu_compress(struct kern *k, float *u, float *Kst, float *Gst, const float *kt, const float *gt,
		 const float *ape, int S, int p0, int r, int d)
{
	struct cu_impl *cu = cu_of(k);
	if (S <= 0) return;
	const int ov = r == 4;
	comp_args c;
	c.K = Kst;
	c.G = Gst;
	c.kt = kt;
	c.gt = gt;
	c.ape = ape;
	c.p0 = p0;
	c.r = r;
	c.d = d;
	c.cd = (1 + ov) * d;
	c.cur0 = (p0 / r) * r;
	c.ov = ov;
	const int w0 = p0 / r, w1 = (p0 + S) / r;
	if (w1 > w0) {
		dim3 grid(w1 - w0, (d + 127) / 128);
		k_comp_pool<<<grid, 128, 0, cu->st>>>(u, c, w0);
		cu_after_launch(k, "compress pool");
		if (ov) {
			k_comp_prev<<<cu_grid((size_t)r * c.cd), 256, 0, cu->st>>>(c, w1 - 1);
			cu_after_launch(k, "compress state");
		}
	}
	const int tfirst = p0 + S - r > p0 ? p0 + S - r : p0, nt = p0 + S - tfirst;
	k_comp_cur<<<cu_grid((size_t)nt * c.cd), 256, 0, cu->st>>>(c, tfirst, nt);
	cu_after_launch(k, "compress state");
}
