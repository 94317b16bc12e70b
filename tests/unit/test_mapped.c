/* test_mapped - a file mapped for reading (a model, a database window)
 * that another program cuts short: touching the lost pages raises SIGBUS,
 * which tk_init's handler turns into one line naming the file, exit 3,
 * the temporary output files removed; a bus error elsewhere still kills
 * the program with the signal, the temporary files removed too. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/safetensors.h"
#include "common/stream.h"
#include "common/tk.h"

static char dir[] = "/tmp/tk-test-mapped.XXXXXX";

/* A model file of two pages and more, mapped, then cut to nothing while
 * mapped; the child reads its last byte.  Returns the wait status, the
 * child's standard error in msg. */
static int cut_while_mapped(char *msg, size_t len, int registered)
{
	char path[64], out[64];
	snprintf(path, sizeof path, "%s/m.st", dir);
	snprintf(out, sizeof out, "%s/out.st", dir);
	static float w[3000];
	struct st_doc d;
	st_init(&d);
	st_add(&d, "w", ST_F32, 1, (int64_t[]){3000}, w);
	FILE *fp = fopen(path, "wb");
	CHECK(fp && st_write(fp, &d) == 0);
	fclose(fp);
	st_free(&d);
	int err[2];
	CHECK(pipe(err) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(err[1], STDERR_FILENO);
		tk_init("test_mapped");
		struct tk_outfile o;
		tk_outfile_open(&o, out); /* its temporary must go */
		struct tk_mapped m;
		struct st_doc r;
		char why[256];
		if (tk_map_file(path, &m, &r, why, sizeof why) < 0)
			_exit(9);
		if (!registered)
			tk_mapping_remove(m.addr);
		if (truncate(path, 0) != 0)
			_exit(8);
		volatile char c = ((const char *)m.addr)[m.len - 1];
		(void)c;
		_exit(0);
	}
	close(err[1]);
	/* the handler writes its line in pieces: read to the end */
	size_t got = 0;
	for (ssize_t n; got < len - 1 &&
			(n = read(err[0], msg + got, len - 1 - got)) > 0;)
		got += (size_t)n;
	msg[got] = 0;
	close(err[0]);
	int status;
	waitpid(pid, &status, 0);
	return status;
}

/* Files left in dir but m.st. */
static int leftovers(void)
{
	int n = 0;
	DIR *dp = opendir(dir);
	for (struct dirent *e; dp && (e = readdir(dp));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		     strcmp(e->d_name, "m.st");
	if (dp)
		closedir(dp);
	return n;
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	char msg[1024];
	int st = cut_while_mapped(msg, sizeof msg, 1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == TK_EXIT_IO);
	CHECK(strstr(msg, "test_mapped: error: ") == msg);
	CHECK(strstr(msg, "/m.st: cut short while being read") != NULL);
	CHECK(strchr(msg, '\n') == msg + strlen(msg) - 1); /* one line */
	CHECK(leftovers() == 0);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == TK_EXIT_IO))
		fprintf(stderr, "status %#x, message: %s\n", st, msg);
	/* a fault outside the files tk maps: the signal, as before */
	st = cut_while_mapped(msg, sizeof msg, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
	CHECK(msg[0] == 0);
	CHECK(leftovers() == 0);
	char path[64];
	snprintf(path, sizeof path, "%s/m.st", dir);
	unlink(path);
	CHECK(rmdir(dir) == 0);
	return CHECK_DONE();
}
