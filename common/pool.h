/* pool.h - an ordered work queue: jobs go in in order, are done by worker
 * threads, and come out in the order they went in, so that a tool's
 * output does not depend on how many threads it used. */
#ifndef TK_POOL_H
#define TK_POOL_H

struct tk_pool;

/* threads <= 1 does every job in the caller's thread, at tk_pool_put.
 * At most 'depth' jobs are in flight. */
struct tk_pool *tk_pool_new(int threads, int depth,
			    void (*work)(void *job, void *ctx), void *ctx);
/* Queue a job.  When 'depth' jobs are already in flight, first waits for
 * the oldest to be done and returns it; otherwise returns NULL. */
void *tk_pool_put(struct tk_pool *p, void *job);
/* The oldest job in flight once it is done; NULL when none is left. */
void *tk_pool_get(struct tk_pool *p);
/* Jobs not yet started will not be: they come out of tk_pool_get
 * undone.  For stopping early on an error. */
void tk_pool_cancel(struct tk_pool *p);
/* Stop the threads.  Jobs still in flight are the caller's to free:
 * take them out with tk_pool_get first. */
void tk_pool_free(struct tk_pool *p);

#endif
