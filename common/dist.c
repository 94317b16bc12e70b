/* dist.c - rank and world from the launch environment, and the TCP
 * bootstrap that gives every rank rank 0's bytes (NCCL's unique id). */
#define _GNU_SOURCE
#include "dist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tk.h"

static int env_int(const char *name, int lo, int hi, int *v, char *err,
		   size_t errlen)
{
	const char *s = getenv(name);
	char *end;
	errno = 0;
	long x = s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || x < lo || x > hi) {
		snprintf(err, errlen, "%s=%s: expected an integer in %d..%d", name,
			 s ? s : "(unset)", lo, hi);
		return -1;
	}
	*v = (int)x;
	return 0;
}

int tk_dist_from_env(struct tk_dist *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	d->world = 1;
	d->launcher = "single";
	const char *rank_var = NULL, *world_var = NULL, *local_var = NULL;
	/* a task of a Slurm job step (srun's), not the batch script */
	int slurm_step = getenv("SLURM_STEP_ID") || getenv("SLURM_STEPID");
	/* Hydra's own processes (MPI_LOCALRANKID is Hydra's) inside a Slurm
	 * allocation, where it starts its proxies with srun, one a node: they
	 * carry that step's Slurm variables (its task count is the nodes'),
	 * not theirs.  srun's own PMI sets no MPI_LOCALRANKID, and says what
	 * Slurm's variables say. */
	const char *step_tasks = getenv("SLURM_STEP_NUM_TASKS");
	const char *pmi_size = getenv("PMI_SIZE");
	int hydra = getenv("MPI_LOCALRANKID") ||
		    (pmi_size && step_tasks && strcmp(pmi_size, step_tasks));
	if (getenv("WORLD_SIZE") && getenv("RANK")) {
		d->launcher = "torchrun";
		rank_var = "RANK", world_var = "WORLD_SIZE", local_var = "LOCAL_RANK";
	} else if (getenv("OMPI_COMM_WORLD_SIZE") && getenv("OMPI_COMM_WORLD_RANK")) {
		/* before Slurm's: in a Slurm job, mpirun's processes carry the
		 * batch script's SLURM_PROCID (measured: 0 for both of two
		 * ranks), or that of the daemons mpirun starts with srun */
		d->launcher = "mpirun";
		rank_var = "OMPI_COMM_WORLD_RANK", world_var = "OMPI_COMM_WORLD_SIZE";
		local_var = "OMPI_COMM_WORLD_LOCAL_RANK";
	} else if (pmi_size && getenv("PMI_RANK") && (!slurm_step || hydra)) {
		/* MPICH's and Intel MPI's mpiexec (Hydra); in a Slurm step of
		 * srun's own tasks PMI_* are srun's, and Slurm's variables say
		 * the same */
		d->launcher = "mpiexec";
		rank_var = "PMI_RANK", world_var = "PMI_SIZE", local_var = "MPI_LOCALRANKID";
	} else if (slurm_step && getenv("SLURM_PROCID") &&
		   (getenv("SLURM_STEP_NUM_TASKS") || getenv("SLURM_NTASKS"))) {
		/* The batch script itself has SLURM_PROCID 0 and the job's
		 * SLURM_NTASKS too, but it is one process, and no step. */
		d->launcher = "slurm";
		rank_var = "SLURM_PROCID", local_var = "SLURM_LOCALID";
		world_var = getenv("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS"
							   : "SLURM_NTASKS";
	}
	d->local_var = local_var ? local_var : "LOCAL_RANK";
	if (world_var) {
		if (env_int(world_var, 1, 1 << 20, &d->world, err, errlen) ||
		    env_int(rank_var, 0, d->world - 1, &d->rank, err, errlen))
			return -1;
		if (getenv(local_var)) {
			if (env_int(local_var, 0, 1 << 20, &d->local_rank, err, errlen))
				return -1;
		} else {
			d->local_rank = d->rank;
		}
	}
	d->timeout = 600;
	if (getenv("TK_DIST_TIMEOUT")) {
		int t;
		if (env_int("TK_DIST_TIMEOUT", 1, 1 << 24, &t, err, errlen))
			return -1;
		d->timeout = t;
	}
	/* What names the run, the same on each of its ranks. */
	static const char *const run_vars[][2] = {
	    {"*", "TK_RUN_ID"},
	    {"torchrun", "TORCHELASTIC_RUN_ID"},
	    {"slurm", "SLURM_JOB_ID"},
	    {"slurm", "SLURM_STEP_ID"},
	    {"slurm", "SLURM_STEPID"}};
	d->token = 14695981039346656037ull; /* FNV-1a's offset basis */
	for (size_t i = 0; i < sizeof run_vars / sizeof *run_vars; i++) {
		const char *v = getenv(run_vars[i][1]);
		if (v && (*run_vars[i][0] == '*' || !strcmp(run_vars[i][0], d->launcher))) {
			tk_dist_token_add(d, run_vars[i][1], strlen(run_vars[i][1]) + 1);
			tk_dist_token_add(d, v, strlen(v) + 1);
		}
	}
	d->port = 29500;
	d->port_from = "default";
	if (getenv("MASTER_PORT")) {
		if (env_int("MASTER_PORT", 1, 65535, &d->port, err, errlen))
			return -1;
		d->port_from = "MASTER_PORT";
	}
	/* torchrun's agent (its static and c10d rendezvous alike) keeps its
	 * own store listening at MASTER_ADDR:MASTER_PORT for the whole run,
	 * and says so; the bootstrap takes the next port of the same host,
	 * rank 0's. */
	const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
	if (d->world > 1 && agent &&
	    (!strcmp(agent, "True") || !strcmp(agent, "true") || !strcmp(agent, "1"))) {
		d->port_from = "MASTER_PORT + 1: torchrun's store holds MASTER_PORT";
		if (++d->port > 65535 && !getenv("TK_MASTER_PORT")) {
			snprintf(err, errlen,
				 "MASTER_PORT=65535 is torchrun's store, and the port "
				 "after it, tk's, does not exist: set TK_MASTER_PORT");
			return -1;
		}
	}
	if (getenv("TK_MASTER_PORT")) {
		if (env_int("TK_MASTER_PORT", 1, 65535, &d->port, err, errlen))
			return -1;
		d->port_from = "TK_MASTER_PORT";
	}
	const char *addr = getenv("MASTER_ADDR");
	if (!addr || !*addr) {
		if (d->world > 1) {
			snprintf(err, errlen,
				 "MASTER_ADDR is not set (%s launch of %d processes): "
				 "export the address of rank 0's host",
				 d->launcher, d->world);
			return -1;
		}
		addr = "127.0.0.1";
	}
	if (strlen(addr) >= sizeof d->addr) {
		snprintf(err, errlen, "MASTER_ADDR is too long");
		return -1;
	}
	strcpy(d->addr, addr);
	return 0;
}

void tk_dist_token_add(struct tk_dist *d, const void *p, size_t n)
{
	/* FNV-1a, a 64-bit word at a time (a model's hundreds of MB) */
	const unsigned char *c = p;
	uint64_t h = d->token;
	for (; n >= 8; c += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, c, 8);
		h = (h ^ w) * 1099511628211ull;
	}
	for (; n; c++, n--)
		h = (h ^ *c) * 1099511628211ull;
	d->token = h;
}

/* ---- the bootstrap: rank 0 serves its bytes to world-1 peers ---- */

#define MAGIC 0x746b64697374320aull /* "tkdist2\n" */
#define REFUSED 0xffffffffu         /* rank 0's answer to another run's rank */

struct hello {
	uint64_t magic;
	uint32_t world, rank;
	uint64_t n;
	uint64_t token;
};

/* The watch's and the CPU group's connections last the whole run: a peer
 * whose machine is lost (power, a network cut) sends nothing, not even a
 * close, so the kernel probes the idle connection: after 60 s idle, 6
 * unanswered probes 10 s apart say the peer is gone. */
static void keepalive(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 6;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Read or write all n bytes before the deadline; 0 or -1. */
static int xfer(int fd, void *p, size_t n, int wr, double deadline)
{
	char *c = p;
	while (n) {
		int ms = (int)((deadline - now()) * 1000);
		if (ms <= 0)
			return errno = ETIMEDOUT, -1;
		struct pollfd pf = {fd, wr ? POLLOUT : POLLIN, 0};
		int r = poll(&pf, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? (errno = ETIMEDOUT, -1) : -1;
		ssize_t k = wr ? send(fd, c, n, MSG_NOSIGNAL) : recv(fd, c, n, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			return k == 0 ? (errno = ECONNRESET, -1) : -1;
		c += k, n -= (size_t)k;
	}
	return 0;
}

/* keep (world ints): the peers' connections are kept there by rank
 * instead of closed. */
static int serve(const struct tk_dist *d, const void *buf, size_t n,
		 double deadline, int *keep, char *err, size_t errlen)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int v6 = fd >= 0;
	if (!v6)
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "bootstrap: socket: %s", strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int rc;
	if (v6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		struct sockaddr_in6 a = {0};
		a.sin6_family = AF_INET6;
		a.sin6_addr = in6addr_any;
		a.sin6_port = htons((uint16_t)d->port);
		rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	} else {
		struct sockaddr_in a = {0};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_ANY);
		a.sin_port = htons((uint16_t)d->port);
		rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (rc || listen(fd, d->world)) {
		int e = errno;
		snprintf(err, errlen, "bootstrap: cannot listen on port %d (%s): %s%s",
			 d->port, d->port_from, strerror(e),
			 e == EADDRINUSE ? " (another program listens there: set TK_MASTER_PORT "
					   "to a free port, the same on every rank)"
					 : "");
		close(fd);
		return -1;
	}
	int served = 0;
	char *seen = xcalloc((size_t)d->world, 1);
	while (served < d->world - 1) {
		int ms = (int)((deadline - now()) * 1000);
		struct pollfd pf = {fd, POLLIN, 0};
		if (ms <= 0 || poll(&pf, 1, ms) == 0) {
			/* which: the first 12 */
			char missing[128] = "";
			size_t k = 0;
			int listed = 0;
			for (int r = 1; r < d->world && listed < 12; r++)
				if (!seen[r])
					k += (size_t)snprintf(missing + k, sizeof missing - k,
							      "%s%d", listed++ ? ", " : "", r);
			snprintf(err, errlen,
				 "bootstrap: only %d of %d ranks reached port %d in time "
				 "(TK_DIST_TIMEOUT); missing: rank%s %s%s",
				 served + 1, d->world, d->port,
				 d->world - 1 - served > 1 ? "s" : "", missing,
				 listed < d->world - 1 - served ? ", ..." : "");
			break;
		}
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct hello h;
		double dl = now() + 10 < deadline ? now() + 10 : deadline;
		int got = xfer(c, &h, sizeof h, 0, dl) == 0 && h.magic == MAGIC;
		if (got && h.token != d->token) {
			/* another run's rank: told so, so that it stops */
			struct hello r = {MAGIC, (uint32_t)d->world, REFUSED, 0, d->token};
			xfer(c, &r, sizeof r, 1, dl);
		} else if (got && h.world == (uint32_t)d->world && h.rank > 0 &&
			   h.rank < (uint32_t)d->world && !seen[h.rank] && h.n == n) {
			struct hello r = {MAGIC, (uint32_t)d->world, 0, n, d->token};
			if (xfer(c, &r, sizeof r, 1, dl) == 0 &&
			    xfer(c, (void *)buf, n, 1, dl) == 0) {
				seen[h.rank] = 1;
				served++;
				if (keep) {
					keep[h.rank] = c;
					continue;
				}
			}
		}
		/* Anything else (a stray connection, another job) is dropped. */
		close(c);
	}
	free(seen);
	close(fd);
	return served == d->world - 1 ? 0 : -1;
}

static int join(const struct tk_dist *d, void *buf, size_t n, double deadline,
		int *keep, char *err, size_t errlen)
{
	char port[16];
	snprintf(port, sizeof port, "%d", d->port);
	const char *why = "timed out";
	while (now() < deadline) {
		struct addrinfo hints = {0}, *res = NULL;
		hints.ai_socktype = SOCK_STREAM;
		int g = getaddrinfo(d->addr, port, &hints, &res);
		if (g) {
			why = gai_strerror(g);
		} else {
			for (struct addrinfo *a = res; a; a = a->ai_next) {
				int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
						a->ai_protocol);
				if (fd < 0)
					continue;
				if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
					struct hello h = {MAGIC, (uint32_t)d->world,
							  (uint32_t)d->rank, n, d->token}, r;
					int got = xfer(fd, &h, sizeof h, 1, deadline) == 0 &&
						  xfer(fd, &r, sizeof r, 0, deadline) == 0 &&
						  r.magic == MAGIC;
					if (got && r.rank == REFUSED) {
						close(fd);
						freeaddrinfo(res);
						snprintf(err, errlen,
							 "bootstrap: rank %d reached the rank 0 of "
							 "another run at %s:%d (%s): their launcher's "
							 "job, options or model differ; give each run "
							 "a port of its own (MASTER_PORT or "
							 "TK_MASTER_PORT)",
							 d->rank, d->addr, d->port, d->port_from);
						return -1;
					}
					if (got && r.n == n && r.token == d->token &&
					    xfer(fd, buf, n, 0, deadline) == 0) {
						if (keep)
							*keep = fd;
						else
							close(fd);
						freeaddrinfo(res);
						return 0;
					}
					why = "rank 0 closed the connection (another job's "
					      "world size, or a second rank with this rank)";
				} else {
					why = strerror(errno);
				}
				close(fd);
			}
			freeaddrinfo(res);
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	snprintf(err, errlen, "bootstrap: rank %d cannot reach rank 0 at %s:%d (%s): %s",
		 d->rank, d->addr, d->port, d->port_from, why);
	return -1;
}

int tk_dist_bootstrap(const struct tk_dist *d, void *buf, size_t n,
		      double timeout_s, char *err, size_t errlen)
{
	if (d->world <= 1)
		return 0;
	double deadline = now() + timeout_s;
	return d->rank == 0 ? serve(d, buf, n, deadline, NULL, err, errlen)
			    : join(d, buf, n, deadline, NULL, err, errlen);
}

/* tk_dist_bootstrap keeping its connections: world fds (rank 0: fd[r]
 * for r > 0; the others: fd[0], to rank 0; -1 elsewhere), or NULL. */
static int *bootstrap_kept(const struct tk_dist *d, void *buf, size_t n,
			   double timeout_s, char *err, size_t errlen)
{
	int *fd = xmalloc((size_t)d->world * sizeof *fd);
	for (int i = 0; i < d->world; i++)
		fd[i] = -1;
	double deadline = now() + timeout_s;
	int rc = d->rank == 0 ? serve(d, buf, n, deadline, fd, err, errlen)
			      : join(d, buf, n, deadline, fd, err, errlen);
	if (rc == 0) {
		for (int i = 0; i < d->world; i++)
			if (fd[i] >= 0)
				keepalive(fd[i]);
		return fd;
	}
	for (int i = 0; i < d->world; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	free(fd);
	return NULL;
}

/* ---- the watch: a thread that stops the rank when a peer is lost ---- */

/* What a rank sends when it is done with the collectives: DONE, then the
 * number of rounds it took part in (8 bytes). */
#define DONE 'D'
struct done_msg {
	char done;
	int64_t rounds;
} __attribute__((packed));

/* The flags the main thread and the watch share (atomic). */
enum { SAID_DONE = 1, CLOSING = 2, LOST = 4 };

static struct {
	int rank, n;      /* n peers: rank 0 watches world-1, the others 1 */
	int *fd, *peer;   /* their connections and ranks */
	long *left_after; /* -1, or the rounds a peer was done after */
	long round;       /* the rounds this rank has begun */
	int flags;
	int stop[2];      /* a pipe: tk_dist_watch_stop's word to the thread */
	pthread_t thread;
	int (*check)(char *why, size_t n); /* tk_dist_watch_check's */
} watch = {0, 0, NULL, NULL, NULL, 0, 0, {-1, -1}, 0, NULL};

static int watch_flags(void)
{
	return __atomic_load_n(&watch.flags, __ATOMIC_SEQ_CST);
}

/* A peer's connection closed before it said it was done.  Until this
 * rank is done too, that is the run's end; after, this rank's work
 * stands, but NCCL's teardown may wait for the lost peer: the main
 * thread skips it, or, when it is there already, this thread ends the
 * process. */
static void lost(int i)
{
	__atomic_or_fetch(&watch.flags, LOST, __ATOMIC_SEQ_CST);
	int f = watch_flags();
	if (!(f & SAID_DONE))
		tk_die_now(TK_EXIT_IO,
			   "data-parallel run: rank %d stopped before the end (its "
			   "own message says why), so rank %d stops too",
			   watch.peer[i], watch.rank);
	if (f & CLOSING)
		tk_die_now(TK_EXIT_IO,
			   "data-parallel run: rank %d stopped while rank %d was "
			   "closing the group (rank %d's work is done)",
			   watch.peer[i], watch.rank, watch.rank);
}

static void *watch_peers(void *arg)
{
	(void)arg;
	struct pollfd *pf = xcalloc((size_t)watch.n + 1, sizeof *pf);
	for (int i = 0; i < watch.n; i++)
		pf[i] = (struct pollfd){watch.fd[i], POLLIN, 0};
	pf[watch.n] = (struct pollfd){watch.stop[0], POLLIN, 0};
	int open = watch.n, ended = 0;
	/* on while a peer may be lost, or may be passed in rounds */
	while (open > 0 || (ended && !(watch_flags() & SAID_DONE))) {
		int (*check)(char *, size_t) =
			__atomic_load_n(&watch.check, __ATOMIC_ACQUIRE);
		char why[512];
		if (check && check(why, sizeof why))
			tk_die_now(TK_EXIT_IO, "data-parallel run: rank %d: %s",
				   watch.rank, why);
		/* a peer done after fewer rounds than this rank has begun
		 * will not join this one's collectives */
		long mine = __atomic_load_n(&watch.round, __ATOMIC_ACQUIRE);
		for (int i = 0; i < watch.n && !(watch_flags() & SAID_DONE); i++)
			if (watch.left_after[i] >= 0 && mine > watch.left_after[i])
				tk_die_now(TK_EXIT_DATA,
					   "data-parallel run: rank %d's stream ended "
					   "after %ld batch%s, but rank %d's goes on: the "
					   "ranks' streams differ in length",
					   watch.peer[i], watch.left_after[i],
					   watch.left_after[i] == 1 ? "" : "es", watch.rank);
		/* (awake once a second for the check, which may come later) */
		int r = poll(pf, (nfds_t)watch.n + 1, ended ? 200 : 1000);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (pf[watch.n].revents)
			break;
		for (int i = 0; i < watch.n; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			struct done_msg m;
			if (xfer(pf[i].fd, &m, sizeof m, 0, now() + 10) == 0 &&
			    m.done == DONE) {
				__atomic_store_n(&watch.left_after[i], (long)m.rounds,
						 __ATOMIC_RELEASE);
				ended++;
			} else {
				lost(i);
			}
			pf[i].fd = -1; /* poll skips it */
			open--;
		}
	}
	free(pf);
	return NULL;
}

int tk_dist_bootstrap_watched(const struct tk_dist *d, void *buf, size_t n,
			      double timeout_s, char *err, size_t errlen)
{
	if (d->world <= 1)
		return 0;
	int *fd = bootstrap_kept(d, buf, n, timeout_s, err, errlen);
	if (!fd)
		return -1;
	watch.rank = d->rank;
	watch.n = 0;
	watch.round = 0;
	watch.flags = 0;
	watch.fd = xmalloc((size_t)d->world * sizeof *watch.fd);
	watch.peer = xmalloc((size_t)d->world * sizeof *watch.peer);
	watch.left_after = xmalloc((size_t)d->world * sizeof *watch.left_after);
	for (int r = 0; r < d->world; r++)
		if (fd[r] >= 0) {
			watch.left_after[watch.n] = -1;
			watch.fd[watch.n] = fd[r];
			watch.peer[watch.n++] = d->rank ? 0 : r;
		}
	free(fd);
	if (pipe2(watch.stop, O_CLOEXEC) ||
	    pthread_create(&watch.thread, NULL, watch_peers, NULL)) {
		snprintf(err, errlen, "cannot start the thread that watches the "
				      "other ranks: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void tk_dist_watch_check(int (*check)(char *why, size_t n))
{
	__atomic_store_n(&watch.check, check, __ATOMIC_RELEASE);
}

void tk_dist_watch_round(long round)
{
	__atomic_store_n(&watch.round, round, __ATOMIC_RELEASE);
}

void tk_dist_watch_end(long rounds)
{
	if (!watch.fd || (watch_flags() & SAID_DONE))
		return;
	__atomic_or_fetch(&watch.flags, SAID_DONE, __ATOMIC_SEQ_CST);
	struct done_msg m = {DONE, rounds};
	for (int i = 0; i < watch.n; i++)
		send(watch.fd[i], &m, sizeof m, MSG_NOSIGNAL);
}

int tk_dist_watch_closing(void)
{
	if (!watch.fd)
		return 1;
	tk_dist_watch_end(LONG_MAX);
	/* CLOSING before reading LOST, as lost() sets LOST before reading
	 * CLOSING: one of the two sees the other */
	__atomic_or_fetch(&watch.flags, CLOSING, __ATOMIC_SEQ_CST);
	return !(watch_flags() & LOST);
}

void tk_dist_watch_stop(void)
{
	if (!watch.fd)
		return;
	char c = 0;
	if (write(watch.stop[1], &c, 1) != 1)
		die_io("stopping the watch over the other ranks:");
	pthread_join(watch.thread, NULL);
	for (int i = 0; i < watch.n; i++)
		close(watch.fd[i]);
	close(watch.stop[0]);
	close(watch.stop[1]);
	free(watch.fd);
	free(watch.peer);
	free(watch.left_after);
	watch.check = NULL;
	watch.fd = watch.peer = NULL;
	watch.left_after = NULL;
	watch.n = 0;
}

/* ---- the host's collective: a star through rank 0 ---- */

static struct {
	int world, rank;
	int *fd; /* rank 0: fd[r] for r > 0; others: fd[0], to rank 0 */
} group = {1, 0, NULL};

int tk_dist_connect(const struct tk_dist *d, double timeout_s, char *err,
		    size_t errlen)
{
	tk_dist_close();
	if (d->world <= 1)
		return 0;
	char none = 0;
	int *fd = bootstrap_kept(d, &none, 0, timeout_s, err, errlen);
	if (!fd)
		return -1;
	int one = 1;
	for (int i = 0; i < d->world; i++)
		if (fd[i] >= 0)
			setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	group.world = d->world;
	group.rank = d->rank;
	group.fd = fd;
	return 0;
}

int tk_dist_group_world(void)
{
	return group.world;
}

void tk_dist_close(void)
{
	if (group.fd)
		for (int i = 0; i < group.world; i++)
			if (group.fd[i] >= 0)
				close(group.fd[i]);
	free(group.fd);
	group.fd = NULL;
	group.world = 1;
	group.rank = 0;
}

/* A peer may be a whole training step behind: an hour's patience. */
#define GROUP_WAIT 3600.0

static void group_xfer(int r, void *p, size_t bytes, int wr)
{
	if (xfer(group.fd[r], p, bytes, wr, now() + GROUP_WAIT) < 0)
		die_io("all-reduce: rank %d %s rank %d: %s", group.rank,
		       wr ? "cannot send to" : "receives nothing from",
		       group.rank ? 0 : r, strerror(errno));
}

/* What a peer's message to rank 0 is: a round's all-reduce, or its
 * validation's sums (tk_dist_gather_f64), which it sends when its
 * stream has ended. */
#define ALLREDUCE_MSG 'A'
#define GATHER_MSG 'V'

/* Rank r sent a message of kind got where rank 0 wanted another. */
_Noreturn static void kind_mismatch(int r, char got)
{
	if (got == GATHER_MSG)
		tk_die(TK_EXIT_DATA, "data-parallel run: rank %d's stream ended, but "
				     "rank 0's goes on: the ranks' streams differ in "
				     "length", r);
	if (got == ALLREDUCE_MSG)
		tk_die(TK_EXIT_DATA, "data-parallel run: rank 0's stream ended, but "
				     "rank %d's goes on: the ranks' streams differ in "
				     "length", r);
	die_io("data-parallel run: rank %d sent a message of no known kind (%d)",
	       r, got);
}

/* Rank 0 reads rank r's message kind, which must be want. */
static void group_expect(int r, char want)
{
	char got;
	group_xfer(r, &got, 1, 0);
	if (got != want)
		kind_mismatch(r, got);
}

/* Rank 0 sums the ranks' buffers in rank order (the same bits on every
 * run) and sends the sums back. */
#define ALLREDUCE(name, T)                                                     \
	void name(T *buf, size_t n)                                            \
	{                                                                      \
		if (group.world <= 1 || !n)                                    \
			return;                                                \
		size_t bytes = n * sizeof(T);                                  \
		if (group.rank) {                                              \
			char kind = ALLREDUCE_MSG;                             \
			group_xfer(0, &kind, 1, 1);                            \
			group_xfer(0, buf, bytes, 1);                          \
			group_xfer(0, buf, bytes, 0);                          \
			return;                                                \
		}                                                              \
		T *t = xmalloc(bytes);                                         \
		for (int r = 1; r < group.world; r++) {                        \
			group_expect(r, ALLREDUCE_MSG);                        \
			group_xfer(r, t, bytes, 0);                            \
			for (size_t i = 0; i < n; i++)                         \
				buf[i] += t[i];                                \
		}                                                              \
		free(t);                                                       \
		for (int r = 1; r < group.world; r++)                          \
			group_xfer(r, buf, bytes, 1);                          \
	}
ALLREDUCE(tk_dist_allreduce_f32, float)
ALLREDUCE(tk_dist_allreduce_f64, double)

/* The connection to rank 0 (a peer), or to the peer watched i-th (rank
 * 0): the host group's, or the watch's (GPUs). */
static int gather_fd(int i)
{
	return group.fd ? group.fd[group.rank ? 0 : i + 1] : watch.fd[i];
}

/* On GPUs (the watch's connections), whether peer i's DONE is read, so
 * that its next bytes are the gather's; 0 when a peer was lost first. */
static int gather_ready(int i)
{
	if (group.fd)
		return 1;
	while (__atomic_load_n(&watch.left_after[i], __ATOMIC_ACQUIRE) < 0) {
		if (watch_flags() & LOST)
			return 0;
		poll(NULL, 0, 2);
	}
	return 1;
}

void tk_dist_gather_f64(double *buf, size_t n, int need)
{
	int peers = group.fd ? group.world - 1 : watch.fd ? watch.n : 0;
	if (!peers)
		return;
	size_t bytes = n * sizeof *buf;
	int rank = group.fd ? group.rank : watch.rank;
	if (rank) { /* rank 0 gone: its own message says why */
		char kind = GATHER_MSG;
		int fd = gather_fd(0);
		if (xfer(fd, &kind, 1, 1, now() + 60) == 0)
			xfer(fd, buf, bytes, 1, now() + 60);
		return;
	}
	double *t = xmalloc(bytes);
	for (int i = 0; i < peers; i++) {
		int r = group.fd ? i + 1 : watch.peer[i];
		char kind = 0;
		int fd = gather_fd(i);
		if (!gather_ready(i) || xfer(fd, &kind, 1, 0, now() + GROUP_WAIT) < 0 ||
		    (kind == GATHER_MSG && xfer(fd, t, bytes, 0, now() + GROUP_WAIT) < 0)) {
			if (need)
				die_io("data-parallel run: rank %d stopped before it "
				       "sent its validation", r);
			continue;
		}
		if (kind != GATHER_MSG)
			kind_mismatch(r, kind);
		for (size_t k = 0; k < n; k++)
			buf[k] += t[k];
	}
	free(t);
}
