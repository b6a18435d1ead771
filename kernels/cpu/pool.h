/* kernels/cpu/pool.h - the CPU backend's persistent worker pool.
 *
 * Contract
 *   A pool of n threads counts the calling thread: n - 1 workers are created once by
 *   cpu_pool_create() and joined by cpu_pool_destroy() (accepts NULL).  Between calls
 *   the workers sleep on a condition variable (no spinning while idle).
 *   cpu_pool_run(p, fn, ctx, ntasks) runs fn(ctx, task, tid) for every task in
 *   [0, ntasks) exactly once and returns when all have finished; the caller works
 *   too (tid 0), workers have tid 1 .. n-1, so tid indexes per-thread scratch.
 *   Tasks are claimed dynamically (an atomic counter): which thread runs a task is
 *   not fixed, so a task's result must depend only on the task index - the kernels
 *   give every task a disjoint range of outputs computed with fixed arithmetic,
 *   which keeps results independent of the thread count.
 *   One thread drives a pool at a time (the kernel table's rule); fn must not call
 *   cpu_pool_run on the same pool.
 */
#ifndef NV_KERN_CPU_POOL_H
#define NV_KERN_CPU_POOL_H

typedef void (*cpu_task_fn)(void *ctx, int task, int tid);

struct cpu_pool;

/* n >= 1 threads in all.  0, or -errno (pthread_create / ENOMEM). */
int cpu_pool_create(int n, struct cpu_pool **out);
void cpu_pool_destroy(struct cpu_pool *p);
int cpu_pool_size(const struct cpu_pool *p);
void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *ctx, int ntasks);

#endif
