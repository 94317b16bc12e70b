/* test_dist - the launch environment (torchrun's and Slurm's variables)
 * and the TCP bootstrap on localhost: three processes get rank 0's bytes;
 * a process from another job (another world size) is refused and times
 * out without disturbing the others. */
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
			     "SLURM_LOCALID"};

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

	clear_env();
	setenv("SLURM_PROCID", "5", 1), setenv("SLURM_NTASKS", "16", 1);
	setenv("SLURM_LOCALID", "1", 1), setenv("MASTER_ADDR", "10.0.0.1", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == 0);
	CHECK(d.rank == 5 && d.world == 16 && d.local_rank == 1);
	CHECK(!strcmp(d.launcher, "slurm") && d.port == 29500);
	setenv("MASTER_PORT", "99999", 1);
	CHECK(tk_dist_from_env(&d, err, sizeof err) == -1 && strstr(err, "MASTER_PORT"));
	clear_env();
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		return 29577;
	int p = ntohs(a.sin_port);
	close(fd);
	return p;
}

/* In a child: join as rank of world, expect the pattern; exit status 0 ok,
 * 1 bootstrap failed, 2 wrong bytes. */
static pid_t spawn(int rank, int world, int port, double timeout)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	char b[32];
	clear_env();
	snprintf(b, sizeof b, "%d", rank), setenv("RANK", b, 1);
	snprintf(b, sizeof b, "%d", world), setenv("WORLD_SIZE", b, 1);
	snprintf(b, sizeof b, "%d", port), setenv("MASTER_PORT", b, 1);
	setenv("MASTER_ADDR", "localhost", 1);
	struct tk_dist d;
	char err[256];
	unsigned char id[128];
	if (tk_dist_from_env(&d, err, sizeof err))
		_exit(3);
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

int main(void)
{
	tk_init("test_dist");
	t_env();
	t_bootstrap();
	return CHECK_DONE();
}
