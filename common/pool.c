/* pool.c - ordered work queue over POSIX threads (see pool.h).
 *
 * Jobs sit in a ring of 'depth' slots numbered by sequence: [head, tail)
 * are in flight, [head, next) have been claimed by a worker. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

struct tk_pool {
	pthread_mutex_t mu;
	pthread_cond_t more, done_cv; /* a job to claim; a job done */
	void **job;
	char *done;
	int depth, nthreads, stop, cancel;
	long head, next, tail;
	pthread_t *threads;
	void (*work)(void *, void *);
	void *ctx;
};

static void *worker(void *arg)
{
	struct tk_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->next == p->tail)
			pthread_cond_wait(&p->more, &p->mu);
		if (p->stop)
			break;
		long s = p->next++;
		void *job = p->job[s % p->depth];
		int skip = p->cancel;
		pthread_mutex_unlock(&p->mu);
		if (!skip)
			p->work(job, p->ctx);
		pthread_mutex_lock(&p->mu);
		p->done[s % p->depth] = 1;
		pthread_cond_broadcast(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct tk_pool *tk_pool_new(int threads, int depth,
			    void (*work)(void *job, void *ctx), void *ctx)
{
	struct tk_pool *p = xcalloc(1, sizeof *p);
	p->depth = depth > 1 ? depth : 1;
	p->job = xcalloc((size_t)p->depth, sizeof *p->job);
	p->done = xcalloc((size_t)p->depth, 1);
	p->work = work;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->more, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	if (threads > 1) {
		p->threads = xcalloc((size_t)threads, sizeof *p->threads);
		for (int i = 0; i < threads; i++) {
			int e = pthread_create(&p->threads[i], NULL, worker, p);
			if (e) {
				errno = e;
				die_io("cannot start a thread:");
			}
			p->nthreads++;
		}
	}
	return p;
}

/* With the lock held: wait for the oldest job, take it out. */
static void *take_oldest(struct tk_pool *p)
{
	while (!p->done[p->head % p->depth])
		pthread_cond_wait(&p->done_cv, &p->mu);
	void *job = p->job[p->head % p->depth];
	p->head++;
	return job;
}

void *tk_pool_put(struct tk_pool *p, void *job)
{
	void *out = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->tail - p->head == p->depth)
		out = take_oldest(p);
	long s = p->tail++;
	p->job[s % p->depth] = job;
	p->done[s % p->depth] = 0;
	if (p->nthreads) {
		pthread_cond_signal(&p->more);
	} else {
		p->next++;
		pthread_mutex_unlock(&p->mu);
		if (!p->cancel)
			p->work(job, p->ctx);
		pthread_mutex_lock(&p->mu);
		p->done[s % p->depth] = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return out;
}

void *tk_pool_get(struct tk_pool *p)
{
	void *out = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->head < p->tail)
		out = take_oldest(p);
	pthread_mutex_unlock(&p->mu);
	return out;
}

void tk_pool_cancel(struct tk_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->cancel = 1;
	pthread_mutex_unlock(&p->mu);
}

void tk_pool_free(struct tk_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->more);
	pthread_cond_destroy(&p->done_cv);
	free(p->threads);
	free(p->job);
	free(p->done);
	free(p);
}
