/* test_dist - the launch environment (torchrun's, mpirun's and Slurm's
 * variables)
 * (the port beside torchrun's agent store, TK_MASTER_PORT) and the TCP
 * bootstrap on localhost: three processes get rank 0's bytes; a port
 * in use is an error naming it and TK_MASTER_PORT;
 * a process from another job (another world size) is refused and times
 * out without disturbing the others; the watch (tk_dist_bootstrap_watched)
 * stops a rank, exit 3, within a second of a peer's dying, exit 2 when it
 * begins a round of collectives past the one a peer ended after, and lets
 * all go when every rank ends with tk_dist_watch_end; a peer lost after
 * this rank was done leaves it be, but tells it to skip NCCL's teardown. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/dist.h"
#include "common/tk.h"

static const char *vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
			     "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
			     "SLURM_LOCALID", "SLURM_STEP_ID", "SLURM_STEPID",
			     "SLURM_STEP_NUM_TASKS", "TORCHELASTIC_USE_AGENT_STORE",
			     "TK_MASTER_PORT", "OMPI_COMM_WORLD_RANK",
			     "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
			     "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID",
			     "TK_RUN_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID",
			     "TK_DIST_TIMEOUT"};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		unsetenv(vars[i]);
}

static void t_env(void)
{
	struct tk_dist d;
	char err[256];
	clear_env();
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(d.world == 1 && d.rank == 0 && !strcmp(d.launcher, "single"));
	CHECK(d.port == 29500 && !strcmp(d.addr, "127.0.0.1"));

	setenv("RANK", "3", 1), setenv("WORLD_SIZE", "8", 1);
	setenv("LOCAL_RANK", "1", 1), setenv("MASTER_ADDR", "node01", 1);
	setenv("MASTER_PORT", "1234", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(d.rank == 3 && d.world == 8 && d.local_rank == 1 && d.port == 1234);
	CHECK(!strcmp(d.addr, "node01") && !strcmp(d.launcher, "torchrun"));
	CHECK(tk_dist_mine(&d, 11) && !tk_dist_mine(&d, 12));

	setenv("RANK", "8", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "RANK"));
	unsetenv("MASTER_ADDR"), setenv("RANK", "0", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "MASTER_ADDR"));

	/* an sbatch script (as a local Slurm 22.05 gave it): one process */
	clear_env();
	setenv("SLURM_PROCID", "0", 1), setenv("SLURM_NTASKS", "2", 1);
	setenv("SLURM_LOCALID", "0", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(d.world == 1 && !strcmp(d.launcher, "single"));
	/* srun's tasks: a step's */
	setenv("SLURM_STEP_ID", "0", 1);
	setenv("SLURM_PROCID", "5", 1), setenv("SLURM_NTASKS", "16", 1);
	setenv("SLURM_LOCALID", "1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "MASTER_ADDR"));
	setenv("MASTER_ADDR", "10.0.0.1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(d.rank == 5 && d.world == 16 && d.local_rank == 1);
	CHECK(!strcmp(d.launcher, "slurm") && d.port == 29500);
	/* srun -n 8 in an allocation of 16 tasks: the step's 8 */
	setenv("SLURM_STEP_NUM_TASKS", "8", 1), setenv("SLURM_PROCID", "12", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "SLURM_PROCID"));
	setenv("SLURM_PROCID", "7", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.world == 8 && d.rank == 7);
	unsetenv("SLURM_STEP_ID"), setenv("SLURM_STEPID", "3", 1); /* the old name */
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.world == 8);
	setenv("MASTER_PORT", "99999", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "MASTER_PORT"));

	/* mpirun: Open MPI's variables (also in a Slurm step, whose
	 * SLURM_PROCID is then its daemon's), MPICH's Hydra's */
	clear_env();
	setenv("SLURM_STEP_ID", "0", 1), setenv("SLURM_PROCID", "1", 1);
	setenv("SLURM_STEP_NUM_TASKS", "2", 1), setenv("MASTER_ADDR", "node01", 1);
	setenv("OMPI_COMM_WORLD_RANK", "5", 1), setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
	setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "mpirun"));
	CHECK(d.rank == 5 && d.world == 8 && d.local_rank == 1);
	CHECK(!strcmp(d.local_var, "OMPI_COMM_WORLD_LOCAL_RANK"));
	clear_env();
	setenv("PMI_RANK", "3", 1), setenv("PMI_SIZE", "4", 1);
	setenv("MPI_LOCALRANKID", "1", 1), setenv("MASTER_ADDR", "node01", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "mpiexec"));
	CHECK(d.rank == 3 && d.world == 4 && d.local_rank == 1);
	/* Hydra inside a Slurm allocation: its proxies, one a node, are an
	 * srun step of 2 tasks, whose variables its 8 processes carry */
	setenv("SLURM_STEP_ID", "0", 1), setenv("SLURM_PROCID", "1", 1);
	setenv("SLURM_STEP_NUM_TASKS", "2", 1), setenv("SLURM_LOCALID", "0", 1);
	setenv("PMI_RANK", "5", 1), setenv("PMI_SIZE", "8", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "mpiexec"));
	CHECK(d.rank == 5 && d.world == 8 && d.local_rank == 1);
	unsetenv("MPI_LOCALRANKID"); /* the sizes disagree: Hydra's too */
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "mpiexec"));
	CHECK(d.rank == 5 && d.world == 8);
	/* srun's own PMI: no MPI_LOCALRANKID, the sizes agree: Slurm's */
	setenv("PMI_RANK", "3", 1), setenv("PMI_SIZE", "4", 1);
	setenv("SLURM_STEP_ID", "0", 1), setenv("SLURM_PROCID", "3", 1);
	setenv("SLURM_STEP_NUM_TASKS", "4", 1), setenv("SLURM_LOCALID", "1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "slurm"));
	CHECK(d.rank == 3 && d.world == 4 && !strcmp(d.local_var, "SLURM_LOCALID"));

	/* The run's token: what names the run, where the launcher gives it
	 * to every rank alike; then what tk-train adds */
	clear_env();
	setenv("RANK", "1", 1), setenv("WORLD_SIZE", "2", 1);
	setenv("MASTER_ADDR", "node01", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.timeout == 600);
	uint64_t plain = d.token;
	setenv("SLURM_JOB_ID", "77", 1); /* not torchrun's */
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.token == plain);
	setenv("TORCHELASTIC_RUN_ID", "r1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.token != plain);
	uint64_t r1 = d.token;
	setenv("TORCHELASTIC_RUN_ID", "r2", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.token != plain && d.token != r1);
	setenv("TK_RUN_ID", "x", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.token != r1);
	uint64_t x = d.token;
	tk_dist_token_add(&d, "lr 0.01", 7);
	CHECK(d.token != x);
	setenv("TK_DIST_TIMEOUT", "1800", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.timeout == 1800 && d.token == x);
	setenv("TK_DIST_TIMEOUT", "0", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "TK_DIST_TIMEOUT"));
	clear_env();
	setenv("SLURM_STEP_ID", "0", 1), setenv("SLURM_PROCID", "1", 1);
	setenv("SLURM_NTASKS", "2", 1), setenv("MASTER_ADDR", "node01", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && !strcmp(d.launcher, "slurm"));
	plain = d.token;
	setenv("SLURM_JOB_ID", "77", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.token != plain);

	/* torchrun's agent store holds MASTER_PORT: the next port is tk's;
	 * TK_MASTER_PORT is the port with any launcher */
	clear_env();
	setenv("RANK", "1", 1), setenv("WORLD_SIZE", "2", 1);
	setenv("MASTER_ADDR", "node01", 1), setenv("MASTER_PORT", "29400", 1);
	setenv("TORCHELASTIC_USE_AGENT_STORE", "False", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 29400);
	CHECK(!strcmp(d.port_from, "MASTER_PORT"));
	setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 29401);
	CHECK(strstr(d.port_from, "torchrun's store"));
	unsetenv("MASTER_PORT");
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 29501);
	setenv("MASTER_PORT", "65535", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "TK_MASTER_PORT"));
	setenv("TK_MASTER_PORT", "31000", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 31000);
	CHECK(!strcmp(d.port_from, "TK_MASTER_PORT"));
	unsetenv("TORCHELASTIC_USE_AGENT_STORE");
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 31000);
	setenv("TK_MASTER_PORT", "0", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "TK_MASTER_PORT"));
	clear_env();
	/* one process: nothing listens, the store is left alone */
	setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0 && d.port == 29500);
	clear_env();
}

/* A TCP socket bound to a port the system picks on addr (host order),
 * the port in *port; -1 if that fails. */
static int bound_socket(uint32_t addr, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(addr);
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int free_port(void)
{
	int p, fd = bound_socket(INADDR_LOOPBACK, &p);
	if (fd < 0)
		return 29577;
	close(fd);
	return p;
}

/* fork, and in the child the launch environment of rank of world at
 * localhost:port read into *d (exit 3 if it is refused); the child's 0
 * or the parent's pid, as fork. */
static pid_t fork_rank(struct tk_dist *d, int rank, int world, int port)
{
	fflush(stdout); /* a child that exit()s would write it again */
	pid_t pid = fork();
	if (pid)
		return pid;
	char b[32], err[256];
	clear_env();
	snprintf(b, sizeof b, "%d", rank), setenv("RANK", b, 1);
	snprintf(b, sizeof b, "%d", world), setenv("WORLD_SIZE", b, 1);
	snprintf(b, sizeof b, "%d", port), setenv("MASTER_PORT", b, 1);
	setenv("MASTER_ADDR", "localhost", 1);
	if (tk_dist_from_env(d, err, sizeof err))
		_exit(3);
	return 0;
}

/* In a child: join as rank of world, expect the pattern; exit status 0 ok,
 * 1 bootstrap failed, 2 wrong bytes. */
static pid_t spawn(int rank, int world, int port, double timeout)
{
	struct tk_dist d;
	pid_t pid = fork_rank(&d, rank, world, port);
	if (pid)
		return pid;
	char err[256];
	unsigned char id[128];
	for (int i = 0; i < 128; i++)
		id[i] = rank == 0 ? (unsigned char)(i * 7 + 1) : 0;
	if (tk_dist_bootstrap(&d, id, sizeof id, timeout, err, sizeof err)) {
		fprintf(stderr, "rank %d/%d: %s\n", rank, world, err);
		_exit(1);
	}
	for (int i = 0; i < 128; i++)
		if (id[i] != (unsigned char)(i * 7 + 1))
			_exit(2);
	_exit(0);
}

static int status_of(pid_t p)
{
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void t_bootstrap(void)
{
	int port = free_port();
	/* Peers first: they retry until rank 0 listens. */
	pid_t rogue = spawn(1, 5, port, 1.5);
	pid_t p2 = spawn(2, 3, port, 20), p1 = spawn(1, 3, port, 20);
	usleep(300 * 1000);
	pid_t p0 = spawn(0, 3, port, 20);
	int r0 = status_of(p0), r1 = status_of(p1), r2 = status_of(p2);
	int rr = status_of(rogue);
	printf("bootstrap: ranks 0,1,2 exit %d %d %d; another job's rank exit %d\n",
	       r0, r1, r2, rr);
	CHECK(r0 == 0 && r1 == 0 && r2 == 0);
	CHECK(rr == 1);
}

/* A port another program listens on (as torchrun's store does on
 * MASTER_PORT): rank 0 says which port, where it came from, and what to
 * do. */
static void t_port_in_use(void)
{
	int port, fd = bound_socket(INADDR_ANY, &port);
	CHECK(fd >= 0 && listen(fd, 4) == 0);
	char b[32], err[256] = "";
	clear_env();
	setenv("RANK", "0", 1), setenv("WORLD_SIZE", "2", 1);
	setenv("MASTER_ADDR", "localhost", 1);
	snprintf(b, sizeof b, "%d", port), setenv("MASTER_PORT", b, 1);
	struct tk_dist d;
	unsigned char id[8] = {0};
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(tk_dist_bootstrap(&d, id, sizeof id, 1, err, sizeof err) == -1);
	printf("port in use: %s\n", err);
	CHECK(strstr(err, b) && strstr(err, "(MASTER_PORT)") &&
	      strstr(err, "in use") && strstr(err, "TK_MASTER_PORT"));
	close(fd);
	clear_env();
}

/* In a child: rank of world, watched; "end" calls tk_dist_watch_end
 * after ms milliseconds and exits 0, "die" exits 5 after ms without it,
 * "wait" sleeps 10 s (exit 4: nobody stopped it), "short" ends after one
 * round at once, "long" begins a second round after ms and waits,
 * "close" ends at once and after ms exits 0 if tk_dist_watch_closing lets
 * NCCL's teardown run, 6 if not; "gather" ends after ms and gathers
 * (rank + 1, 10 (rank + 1)) to rank 0, which exits 0 with the sums over
 * world ranks, 7 with others; "silent" ends after ms and exits 5 without
 * gathering. */
static pid_t watched(int rank, int world, int port, const char *what, int ms)
{
	struct tk_dist d;
	pid_t pid = fork_rank(&d, rank, world, port);
	if (pid)
		return pid;
	char err[256];
	unsigned char id[8] = {0};
	if (tk_dist_bootstrap_watched(&d, id, sizeof id, 20, err, sizeof err))
		_exit(1);
	tk_dist_watch_round(1);
	if (!strcmp(what, "close")) {
		tk_dist_watch_end(1);
		usleep(ms * 1000);
		_exit(tk_dist_watch_closing() ? 0 : 6);
	}
	if (!strcmp(what, "gather") || !strcmp(what, "silent")) {
		usleep(ms * 1000);
		tk_dist_watch_end(1);
		if (!strcmp(what, "silent"))
			_exit(5);
		double v[2] = {rank + 1, 10.0 * (rank + 1)};
		tk_dist_gather_f64(v, 2, 1);
		double n = world * (world + 1) / 2.0;
		_exit(rank || (v[0] == n && v[1] == 10 * n) ? 0 : 7);
	}
	if (!strcmp(what, "short")) {
		tk_dist_watch_end(1);
		_exit(0);
	}
	if (!strcmp(what, "wait") || !strcmp(what, "long")) {
		usleep(ms * 1000);
		tk_dist_watch_round(2);
		sleep(10);
		_exit(4);
	}
	usleep(ms * 1000);
	if (!strcmp(what, "die"))
		_exit(5);
	tk_dist_watch_end(1);
	if (tk_dist_watch_closing())
		tk_dist_watch_stop();
	_exit(0);
}

/* A run of world watched ranks, rank r doing what[r] after ms[r]; their
 * exit statuses into st. */
static void run_watched(int world, const char *const what[], const int ms[],
			int st[])
{
	int port = free_port();
	pid_t p[3];
	for (int r = 0; r < world; r++)
		p[r] = watched(r, world, port, what[r], ms[r]);
	for (int r = 0; r < world; r++)
		st[r] = status_of(p[r]);
}

static void t_watch(void)
{
	int all[3], dies[3], zero[2], shorter[2], after[2];
	/* every rank ends, at different times: all exit 0 */
	run_watched(3, (const char *[]){"end", "end", "end"}, (int[]){300, 0, 600}, all);
	/* rank 2 dies: rank 0 stops, and so rank 1 */
	run_watched(3, (const char *[]){"wait", "wait", "die"}, (int[]){0, 0, 200}, dies);
	/* rank 0 dies: rank 1 stops */
	run_watched(2, (const char *[]){"die", "wait"}, (int[]){200, 0}, zero);
	/* rank 1 leaves after one round, rank 0 begins a second: it stops */
	run_watched(2, (const char *[]){"long", "short"}, (int[]){300, 0}, shorter);
	/* rank 1 dies after rank 0 was done: rank 0's work stands, and it
	 * skips NCCL's teardown (exit 6 here) */
	run_watched(2, (const char *[]){"close", "die"}, (int[]){600, 200}, after);
	printf("watch: all end: exit %d %d %d; rank 2 dies: %d %d %d; rank 0 "
	       "dies: %d %d; rank 1's stream shorter: %d %d; rank 1 dies after "
	       "rank 0 is done: %d %d\n",
	       all[0], all[1], all[2], dies[0], dies[1], dies[2], zero[0], zero[1],
	       shorter[0], shorter[1], after[0], after[1]);
	CHECK(all[0] == 0 && all[1] == 0 && all[2] == 0);
	CHECK(dies[0] == 3 && dies[1] == 3 && dies[2] == 5);
	CHECK(zero[0] == 5 && zero[1] == 3);
	CHECK(shorter[0] == 2 && shorter[1] == 0);
	CHECK(after[0] == 6 && after[1] == 5);
}

static void t_gather(void)
{
	int all[3], gone[2], lost[2];
	/* validation's gather after the rounds, the ranks at different
	 * times: rank 0 has the sums */
	run_watched(3, (const char *[]){"gather", "gather", "gather"}, (int[]){0, 400, 200},
		    all);
	/* rank 1 done with the rounds, gone without its sums: rank 0 stops */
	run_watched(2, (const char *[]){"gather", "silent"}, (int[]){0, 300}, gone);
	/* rank 1 lost before it was done, rank 0 gathering: rank 0 stops */
	run_watched(2, (const char *[]){"gather", "die"}, (int[]){0, 300}, lost);
	printf("gather: all: exit %d %d %d; rank 1 done, then gone: %d %d; rank "
	       "1 lost: %d %d\n",
	       all[0], all[1], all[2], gone[0], gone[1], lost[0], lost[1]);
	CHECK(all[0] == 0 && all[1] == 0 && all[2] == 0);
	CHECK(gone[0] == 3 && gone[1] == 5);
	CHECK(lost[0] == 3 && lost[1] == 5);
}

int main(void)
{
	tk_init("test_dist");
	t_env();
	t_bootstrap();
	t_port_in_use();
	t_watch();
	t_gather();
	return CHECK_DONE();
}
