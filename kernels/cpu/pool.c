/* kernels/cpu/pool.c - persistent worker pool (see pool.h).
 *
 * A call publishes (fn, ctx, ntasks) under the mutex, bumps a generation counter and
 * broadcasts; workers that see a new generation claim tasks from an atomic counter
 * until none are left, then report.  The caller claims tasks as well and waits for
 * the last worker before returning, so ctx may live on the caller's stack. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"

struct worker {
	struct cpu_pool *p;
	int tid;
};

struct cpu_pool {
	int n;
	pthread_t *th;
	struct worker *w;
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned gen;      /* bumped by every run (under mu) */
	int stop;
	int busy;          /* workers still inside the current generation (under mu) */
	cpu_task_fn fn;
	void *ctx;
	int ntasks;
	atomic_int next;   /* next unclaimed task */
};

static void drain(struct cpu_pool *p, cpu_task_fn fn, void *ctx, int ntasks, int tid)
{
	for (;;) {
		int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
		if (t >= ntasks) return;
		fn(ctx, t, tid);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cpu_pool *p = w->p;
	unsigned seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
		if (p->stop) break;
		seen = p->gen;
		cpu_task_fn fn = p->fn;
		void *ctx = p->ctx;
		int nt = p->ntasks;
		pthread_mutex_unlock(&p->mu);
		drain(p, fn, ctx, nt, w->tid);
		pthread_mutex_lock(&p->mu);
		if (--p->busy == 0) pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int cpu_pool_create(int n, struct cpu_pool **out)
{
	*out = NULL;
	if (n < 1) n = 1;
	struct cpu_pool *p = calloc(1, sizeof *p);
	if (!p) return -ENOMEM;
	p->n = n;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	atomic_init(&p->next, 0);
	if (n > 1) {
		p->th = calloc((size_t)n, sizeof *p->th);
		p->w = calloc((size_t)n, sizeof *p->w);
		if (!p->th || !p->w) {
			p->n = 1;
			cpu_pool_destroy(p);
			return -ENOMEM;
		}
		for (int i = 1; i < n; i++) {
			p->w[i].p = p;
			p->w[i].tid = i;
			int rc = pthread_create(&p->th[i], NULL, worker_main, &p->w[i]);
			if (rc) {
				p->n = i; /* join the ones started */
				cpu_pool_destroy(p);
				return -rc;
			}
		}
	}
	*out = p;
	return 0;
}

void cpu_pool_destroy(struct cpu_pool *p)
{
	if (!p) return;
	if (p->n > 1) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_broadcast(&p->go);
		pthread_mutex_unlock(&p->mu);
		for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	free(p->th);
	free(p->w);
	free(p);
}

int cpu_pool_size(const struct cpu_pool *p) { return p ? p->n : 1; }

void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *ctx, int ntasks)
{
	if (ntasks <= 0) return;
	if (!p || p->n == 1 || ntasks == 1) {
		for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);
	p->busy = p->n - 1;
	p->gen++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	drain(p, fn, ctx, ntasks, 0);
	pthread_mutex_lock(&p->mu);
	while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
