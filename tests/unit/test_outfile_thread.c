/* test_outfile_thread - a thread other than the one writing ends the
 * process (tk-train's watch over the other ranks, when a rank is lost,
 * or when NCCL reports an error, while rank 0 writes a checkpoint): the
 * temporary output files are removed all the same, none left beside the
 * target, however the end falls on the writer's opening, writing,
 * renaming and discarding.  Many runs, the end at varied moments; under
 * make test SANITIZE=thread, ThreadSanitizer checks the temporary files'
 * list is shared without a data race (before the list had a lock, it
 * reported one, and a file was left in some runs).  And the main thread's
 * own error exit, hung in an exit handler (NCCL's teardown waiting for a
 * lost rank), is still ended by the other thread's (tk-train's watch): the
 * list's lock, kept by the exiting main thread, holds the other back a
 * second at most. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/tk.h"

static char dir[] = "/tmp/tk-test-outfile-thread.XXXXXX";
static long delay_ns;

static void *ender(void *arg)
{
	(void)arg;
	struct timespec t = {0, delay_ns};
	nanosleep(&t, NULL);
	tk_die_now(TK_EXIT_IO, "a peer is lost (test)");
}

/* A child's start: quiet, in the test's folder. */
static void child_start(void)
{
	tk_init("test_outfile_thread");
	if (!freopen("/dev/null", "w", stderr))
		_exit(9);
	if (chdir(dir) != 0)
		_exit(9);
}

/* The writer: files opened, written, renamed or discarded, until the
 * other thread ends the process. */
static void child(void)
{
	child_start();
	pthread_t th;
	if (pthread_create(&th, NULL, ender, NULL) != 0)
		_exit(9);
	for (unsigned n = 0;; n++) {
		struct tk_outfile a, b;
		FILE *fa = tk_outfile_open(&a, "a.st");
		FILE *fb = tk_outfile_open(&b, "b.st");
		fputs("checkpoint\n", fa);
		fputs("log\n", fb);
		if (n % 2) {
			tk_outfile_commit(&a);
			tk_outfile_discard(&b);
		} else {
			struct tk_outfile *both[2] = {&a, &b};
			tk_outfile_commit_set(both, 2);
		}
	}
}

static void hang(void)
{
	sleep(30);
}

/* The main thread dies, and hangs in an exit handler; the other thread
 * then ends the process. */
static void child_hung(void)
{
	child_start();
	struct tk_outfile a;
	tk_outfile_open(&a, "a.st");
	atexit(hang);
	delay_ns = 200000000L;
	pthread_t th;
	if (pthread_create(&th, NULL, ender, NULL) != 0)
		_exit(9);
	tk_die(TK_EXIT_DATA, "a bad frame (test)");
}

/* The temporary files left in dir (".a.st.XXXXXX"), removed. */
static int leftovers(void)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") &&
		    strcmp(e->d_name, "..")) {
			char p[sizeof dir + 300];
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
			n++;
		}
	if (d)
		closedir(d);
	return n;
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	int runs = 400, left = 0, bad_exit = 0;
	for (int r = 0; r < runs; r++) {
		/* from at once to a few milliseconds in */
		delay_ns = (r % 40) * 100000L + (r * 7919L) % 100000;
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0)
			child();
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != TK_EXIT_IO) {
			if (!bad_exit++)
				fprintf(stderr, "run %d: wait status %d\n", r, st);
		}
		left += leftovers();
	}
	printf("%d runs: %d temporary files left, %d bad exits\n", runs, left,
	       bad_exit);
	CHECK(left == 0);
	CHECK(bad_exit == 0);

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		child_hung();
	int st = 0, waited = 0;
	while (waitpid(pid, &st, WNOHANG) == 0 && waited < 100) {
		usleep(100000);
		waited++;
	}
	if (waited == 100) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	printf("main thread's exit hung: ended by the other thread after "
	       "%.1f s, wait status %d\n", waited / 10.0, st);
	CHECK(waited < 50 && WIFEXITED(st) && WEXITSTATUS(st) == TK_EXIT_IO);
	CHECK(leftovers() == 0);
	unlink("a.st");
	char p[sizeof dir + 8];
	snprintf(p, sizeof p, "%s/a.st", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/b.st", dir);
	unlink(p);
	rmdir(dir);
	return CHECK_DONE();
}
