/* kernels/cpu/pool.c - persistent worker pool (see pool.h).
 *
 * A call publishes (fn, ctx, ntasks) under the mutex, bumps a generation counter and
 * broadcasts.  Tasks are claimed from one 64-bit atomic word holding (generation,
 * next task): a claim succeeds only for the current generation, so a worker that
 * wakes late - after the call it was woken for has returned - can never run a task
 * of that call or of a later one with stale arguments.  The caller claims tasks too
 * and returns when the count of finished tasks reaches ntasks; it never waits for a
 * worker that found nothing to do (which matters when the cores are shared). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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
	pthread_cond_t go, done_cv;
	uint32_t gen;              /* bumped by every run (under mu) */
	int stop;
	cpu_task_fn fn;
	void *ctx;
	int ntasks;
	_Atomic uint64_t claim;    /* gen << 32 | next unclaimed task */
	atomic_int done;           /* tasks finished in the current run */
};

/* Claims and runs tasks of generation gen until none are left. */
static void drain(struct cpu_pool *p, uint32_t gen, cpu_task_fn fn, void *ctx, int ntasks, int tid)
{
	uint64_t v = atomic_load(&p->claim);
	for (;;) {
		if ((uint32_t)(v >> 32) != gen || (int)(uint32_t)v >= ntasks) return;
		if (!atomic_compare_exchange_weak(&p->claim, &v, v + 1)) continue;
		fn(ctx, (int)(uint32_t)v, tid);
		if (atomic_fetch_add(&p->done, 1) + 1 == ntasks) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
			return;
		}
		v = atomic_load(&p->claim);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cpu_pool *p = w->p;
	uint32_t seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
		if (p->stop) break;
		seen = p->gen;
		cpu_task_fn fn = p->fn;
		void *ctx = p->ctx;
		int nt = p->ntasks;
		pthread_mutex_unlock(&p->mu);
		drain(p, seen, fn, ctx, nt, w->tid);
		pthread_mutex_lock(&p->mu);
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
	pthread_cond_init(&p->done_cv, NULL);
	atomic_init(&p->claim, 0);
	atomic_init(&p->done, 0);
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
	pthread_cond_destroy(&p->done_cv);
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
	uint32_t gen = ++p->gen;
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	atomic_store(&p->done, 0);
	atomic_store(&p->claim, (uint64_t)gen << 32);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	drain(p, gen, fn, ctx, ntasks, 0);
	pthread_mutex_lock(&p->mu);
	while (atomic_load(&p->done) < ntasks) pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
