/* dist.h - data-parallel training across processes: who am I (rank,
 * world, local rank, from the launch environment people already use),
 * and a small TCP bootstrap that hands every rank the same bytes from
 * rank 0 (NCCL's unique id).  The collectives themselves are NCCL's
 * (kernels/cuda/cuda.h, tk_nccl_*): no transport of our own.
 *
 * Environment, first match wins:
 *   torchrun:  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
 *   mpirun:    Open MPI's OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK; MPICH's
 *              and Intel MPI's (Hydra) PMI_RANK, PMI_SIZE, MPI_LOCALRANKID;
 *              MASTER_ADDR and MASTER_PORT as above (mpirun -x exports
 *              them)
 *   Slurm:     in a job step (srun's tasks, SLURM_STEP_ID set; not the
 *              batch script, which has SLURM_PROCID 0 and the job's
 *              SLURM_NTASKS but is one process): SLURM_PROCID,
 *              SLURM_STEP_NUM_TASKS (else SLURM_NTASKS), SLURM_LOCALID;
 *              MASTER_ADDR (the first host of the job, which the batch
 *              script exports) and MASTER_PORT as above
 *   neither:   one process, rank 0 of 1.
 * MASTER_PORT defaults to 29500, torchrun's default.  The bootstrap
 * listens there, except under torchrun's agent store
 * (TORCHELASTIC_USE_AGENT_STORE=True: torchrun's own TCP store holds
 * MASTER_PORT for the run) on MASTER_PORT + 1; TK_MASTER_PORT, when set,
 * is the port with any launcher. */
#ifndef TK_DIST_H
#define TK_DIST_H

#include <stddef.h>
#include <stdint.h>

struct tk_dist {
	int rank, world, local_rank;
	char addr[256]; /* MASTER_ADDR; "127.0.0.1" when unset and world 1 */
	int port;              /* the bootstrap's, rank 0's */
	const char *port_from; /* where port came from, for messages */
	const char *local_var; /* the local rank's variable, for messages */
	const char *launcher; /* "torchrun", "mpirun", "mpiexec", "slurm" or
				 "single" */
	uint64_t token;       /* the run's: the same on every rank of one run
				 and, as far as can be told, on no other's
				 (tk_dist_token_add) */
	double timeout;       /* seconds the ranks wait for each other at the
				 start: TK_DIST_TIMEOUT, default 600 */
};

/* Read the environment; 0, or -1 with a message naming the variable.
 * The token starts from what names the run and is the same on all of its
 * ranks: TK_RUN_ID, torchrun's TORCHELASTIC_RUN_ID, Slurm's SLURM_JOB_ID
 * and SLURM_STEP_ID for srun's tasks (not under mpirun, whose processes
 * may carry different ones). */
int tk_dist_from_env(struct tk_dist *d, char *err, size_t errlen);

/* Mixes n bytes into the token (the caller's options and model, which
 * every rank of a run shares), so that the ranks of two runs that meet
 * on one port (a sweep of runs started together) refuse each other
 * instead of training together. */
void tk_dist_token_add(struct tk_dist *d, const void *p, size_t n);

/* Every rank returns with rank 0's n bytes in buf: rank 0 listens on
 * the port above and answers world-1 connections; the others connect to
 * MASTER_ADDR there, retrying until timeout_s.  A peer from another
 * run (another token, world size or protocol) is refused: a rank that
 * reaches another run's rank 0 stops at once, saying so.  0, or -1 with
 * a message. */
int tk_dist_bootstrap(const struct tk_dist *d, void *buf, size_t n,
		      double timeout_s, char *err, size_t errlen);

/* tk_dist_bootstrap, then a watch over the other ranks, for collectives
 * that wait for a lost peer forever (NCCL's): the bootstrap's connections
 * (every rank's to rank 0) stay open, and a thread stops this process
 * (tk_die_now, naming the rank) when one closes before its rank said it
 * was done (tk_dist_watch_end), as it does when that rank dies or is
 * killed (exit 3), or when this rank begins a round of collectives (a
 * batch) past the rounds a peer was done after (exit 2: their streams
 * differ in length).  So a rank's end stops the run instead of leaving
 * the others waiting. */
int tk_dist_bootstrap_watched(const struct tk_dist *d, void *buf, size_t n,
			      double timeout_s, char *err, size_t errlen);
/* This rank begins its round'th round of collectives (counted from 1). */
void tk_dist_watch_round(long round);
/* This rank is done with the collectives after this many rounds
 * (LONG_MAX: not counted), and tells its peers; a peer lost from now on
 * no longer stops it (its work stands), until it closes the group. */
void tk_dist_watch_end(long rounds);
/* Before the collectives' own teardown (NCCL's, which may wait for a lost
 * peer): 1 when it may run (no peer lost; one lost during it stops the
 * process, exit 3), 0 when a peer was lost; says done if not yet said.
 * Then tk_dist_watch_stop ends the watch.  Without a watch: 1, nothing. */
int tk_dist_watch_closing(void);
void tk_dist_watch_stop(void);
/* While the watch runs, it also calls check about once a second: a
 * nonzero return (with why filled in) stops this process, exit 3.  For
 * errors that a collective's library reports aside while its work waits
 * forever (NCCL's asynchronous errors: a network failure between
 * machines).  check may be called at any time from the watch's thread,
 * until tk_dist_watch_stop returns. */
void tk_dist_watch_check(int (*check)(char *why, size_t n));

/* The host's collective, for data-parallel runs on CPUs (GPUs use
 * NCCL): tk_dist_connect keeps a connection from every rank to rank 0
 * (the bootstrap's handshake, on its port); the all-reduces then sum
 * in place, rank 0 adding the ranks' buffers in rank order and sending
 * the sums back, and die (exit 3) when a peer is gone, or (exit 2) when
 * a peer's stream has ended (its message is tk_dist_gather_f64's).
 * World 1: they do nothing. */
int tk_dist_connect(const struct tk_dist *d, double timeout_s, char *err,
		    size_t errlen);
int tk_dist_group_world(void); /* 1 before tk_dist_connect */
void tk_dist_allreduce_f32(float *buf, size_t n);
void tk_dist_allreduce_f64(double *buf, size_t n);
void tk_dist_close(void);

/* After the rounds of collectives (on GPUs after tk_dist_watch_end):
 * rank 0 adds the other ranks' n doubles to buf, in rank order, over
 * the host group's connections or the watch's; the others send theirs.
 * need: rank 0 must have every rank's (one gone is an error, exit 3);
 * else a rank gone is left out.  On CPUs a rank that sends them while
 * rank 0 still trains, or trains on while rank 0 gathers, stops the run
 * (exit 2: the ranks' streams differ in length).  A rank whose rank 0 is
 * gone sends nothing and says nothing (rank 0's message says why). */
void tk_dist_gather_f64(double *buf, size_t n, int need);

/* Whether item i of a list belongs to this rank's shard (round robin,
 * so shards differ in size by at most one). */
static inline int tk_dist_mine(const struct tk_dist *d, long i)
{
	return d->world <= 1 || i % d->world == d->rank;
}

#endif
