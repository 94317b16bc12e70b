/* dist.h - data-parallel training across processes: who am I (rank,
 * world, local rank, from the launch environment people already use),
 * and a small TCP bootstrap that hands every rank the same bytes from
 * rank 0 (NCCL's unique id).  The collectives themselves are NCCL's
 * (kernels/cuda/cuda.h, tk_nccl_*): no transport of our own.
 *
 * Environment, first match wins:
 *   torchrun:  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
 *   Slurm:     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR
 *              (the first host of the job, which the batch script
 *              exports) and MASTER_PORT as above
 *   neither:   one process, rank 0 of 1.
 * MASTER_PORT defaults to 29500, torchrun's default. */
#ifndef TK_DIST_H
#define TK_DIST_H

#include <stddef.h>

struct tk_dist {
	int rank, world, local_rank;
	char addr[256]; /* MASTER_ADDR; "127.0.0.1" when unset and world 1 */
	int port;
	const char *launcher; /* "torchrun", "slurm" or "single" */
};

/* Read the environment; 0, or -1 with a message naming the variable. */
int tk_dist_from_env(struct tk_dist *d, char *err, size_t errlen);

/* Every rank returns with rank 0's n bytes in buf: rank 0 listens on
 * MASTER_PORT and answers world-1 connections; the others connect to
 * MASTER_ADDR:MASTER_PORT, retrying until timeout_s.  A peer from
 * another job (wrong world size or protocol) is refused.  0, or -1 with
 * a message. */
int tk_dist_bootstrap(const struct tk_dist *d, void *buf, size_t n,
		      double timeout_s, char *err, size_t errlen);

/* Whether item i of a list belongs to this rank's shard (round robin,
 * so shards differ in size by at most one). */
static inline int tk_dist_mine(const struct tk_dist *d, long i)
{
	return d->world <= 1 || i % d->world == d->rank;
}

#endif
