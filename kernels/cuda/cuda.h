/* kernels/cuda/cuda.h - the CUDA backend of the kernel table (kernels/kern.h).
 *
 * Contract
 *   kern_cuda_create() fills a struct kern whose ops run on one CUDA device, in one
 *   compute stream, in call order.  B memory is device memory (cudaMalloc); wmap()
 *   uploads a weight once (bump-allocated in 256 MiB arenas, 256-byte aligned) and
 *   returns the same device copy for the same host pointer; weights live until
 *   destroy().  upload/download synchronise the stream (kern.h: transfers are
 *   synchronous); copy and every op are asynchronous and ordered.  reserve() sizes the
 *   workspace once (staged GEMM rows, expert intermediates, hc partial sums).
 *   Numerics: the same KERN_RND/KERN_QNT semantics and rounding points as the CPU
 *   backend; elementwise ops, quantisers, RoPE, Hadamard, top-k and the index lists
 *   are bit-identical to the CPU; dot products, GEMMs and softmax sums differ only by
 *   f32 summation order and GPU exp/log (MODEL.md §10.8); sample() has the CPU's
 *   masking, argmax, x and order bitwise (cub radix sort), its double sums in another
 *   order (kern.h), and downloads only the id.  Every op computes each row
 *   with the same arithmetic whatever the row count (bitwise chunk invariance).
 *   Alignment: FP8/FP4/BF16 weight rows whose width is a multiple of 32 are read
 *   with vector loads: pointers handed to the ops must be 16-byte aligned (wmap and
 *   alloc guarantee it; an expert-slot cache must keep it).
 *
 *   Errors: create returns -ENODEV (no driver or no device; `msg` says which),
 *   -EINVAL (device index), -ENOMEM.  Ops cannot fail (kern.h); a CUDA error inside
 *   one (device fault, launch failure) is reported on stderr and aborts, like CHECK().
 *   Diagnostics (env): NVMOE_CUDA_SYNC=1 synchronises after every launch so that the
 *   failing op is named; NVMOE_CUDA_GEMM=ref selects the reference GEMM kernels;
 *   NVMOE_CUDA_GEMM=lt sends FP8 GEMMs with act_quant through cuBLASLt's block-scaled
 *   FP8 path where its modes fit (sm_90; kernels/cuda/gemm_lt.cu).  lt is opt-in
 *   because cuBLASLt chooses its algorithm (tiles, split-K) per row count: a row's
 *   result may then depend on how many rows share the call, which breaks the
 *   row-independence guarantee above (chunked prefill bitwise equal to whole).
 *   Threads: one thread drives the backend (kern.h); create and use on that thread.
 *
 *   Usable from C.  Only declared when the build has CUDA (NVMOE_HAVE_CUDA).
 */
#ifndef NV_KERN_CUDA_H
#define NV_KERN_CUDA_H

#include <stddef.h>

#include "kernels/kern.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no driver or no device. */
int kern_cuda_device_count(void);

/* Backend on device `device`.  0 and *out, or a negative errno with msg filled. */
int kern_cuda_create(int device, struct kern **out, char *msg, size_t msg_n);

/* Diagnostics (tests): 1 = reference GEMM kernels (one thread per output in the CPU's
 * order: bit-identical to kernels/cpu), 0 = tensor-core kernels (default). */
void kern_cuda_set_gemm_ref(struct kern *k, int on);

/* Diagnostics (tests, cudabench): on = 1 sends gemm_fp8 calls with KERN_QNT through
 * cuBLASLt's block-scaled FP8 path (VEC128 activation / BLK128x128 weight scales;
 * kernels/cuda/gemm_lt.cu) where it fits, the own kernel otherwise; on = 0 returns to
 * the own kernel.  The same as NVMOE_CUDA_GEMM=lt at creation.  Not the default: its
 * algorithm depends on the row count, so row independence (kern.h) does not hold.
 * 0, or -ENOTSUP (not sm_90, cuBLASLt < 12.9, set-up failed) / -ENOMEM with msg
 * filled; the path then stays off.  Buffers are sized by reserve() (call it first or
 * again after).  The reference path (set_gemm_ref) takes precedence. */
int kern_cuda_set_gemm_lt(struct kern *k, int on, char *msg, size_t msg_n);
/* gemm_fp8 calls computed by cuBLASLt so far (the rest took the own kernel). */
long kern_cuda_gemm_lt_calls(struct kern *k);

/* 1 when k is a CUDA backend (its B memory is device memory). */
int kern_cuda_is(const struct kern *k);
/* Device memory the backend holds, in bytes: weight arenas (whole 256 MiB arenas),
 * the reserve() workspace (with the cuBLASLt path's buffers when it is on) and
 * alloc()ed buffers not yet freed.  What an expert-slot
 * cache may add under a VRAM budget is the budget less this. */
size_t kern_cuda_mem_used(struct kern *k);
/* The compute stream (a cudaStream_t) every op runs on, and the device index: for the
 * expert-slot cache (cache/gpu), which orders its copy stream against the ops with
 * events.  Work enqueued on it by others runs in order with the ops. */
void *kern_cuda_stream(struct kern *k);
int kern_cuda_device(struct kern *k);

/* Device name and memory (bytes) of the backend's device. */
void kern_cuda_info(struct kern *k, char *name, size_t name_n, size_t *mem_free, size_t *mem_total);

#ifdef __cplusplus
}
#endif

#endif
