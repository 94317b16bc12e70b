/* tk.h - what every tk program shares: its name, errors, exit codes,
 * common options, output files written atomically, progress. */
#ifndef TK_H
#define TK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TK_VERSION "0.1.0"

/* Exit statuses (DESIGN.md, Errors). */
enum { TK_EXIT_OK = 0, TK_EXIT_USAGE = 1, TK_EXIT_DATA = 2, TK_EXIT_IO = 3 };

/* Set by tk_init from argv[0]; "tk-cat", ... */
extern const char *tk_progname;
/* --quiet: nothing but errors on stderr. --progress: progress even when
 * stderr is not a terminal. */
extern int tk_quiet, tk_force_progress;

void tk_init(const char *argv0);
/* Standard input and output, where they are pipes, grown to TK_PIPE_SIZE
 * (from Linux's 64 KiB; best effort: a user's pipe quota may refuse).
 * tk_init does it.  Frames of megabytes (a decoded photograph's, a
 * feature map's) then pass in fewer, larger steps: here a pipe moved 0.8
 * GB/s at 64 KiB and 3.8 GB/s at 1 MiB, and `tk-decode | tk-augment` on
 * photographs of 4 megapixels stopped at 95 images/s on 16 cores. */
#define TK_PIPE_SIZE (1 << 20)
void tk_grow_pipes(void);

/* Print "tk-NAME: error: <msg>" to stderr and exit with status.  A message
 * ending in ':' gets ": strerror(errno)" appended. Temporary output files
 * are removed first. */
_Noreturn void tk_die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* tk_die for a thread beside the main one: _exit, no atexit handlers (the
 * main thread may be inside a library whose handlers would wait for it). */
_Noreturn void tk_die_now(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define die_usage(...) tk_die(TK_EXIT_USAGE, __VA_ARGS__)
#define die_data(...) tk_die(TK_EXIT_DATA, __VA_ARGS__)
#define die_io(...) tk_die(TK_EXIT_IO, __VA_ARGS__)
/* A file mapped read-only at addr: a fault there (the file cut short by
 * another program) stops the program with an error naming it, exit 3.
 * Remove before unmapping. */
void tk_mapping_add(const void *addr, size_t len, const char *name);
void tk_mapping_remove(const void *addr);
/* Whether all of s is a decimal integer: digits after an optional '-'
 * (strtol also takes spaces and '+'). */
int tk_whole_integer(const char *s);
/* For functions that report errors to their caller: format the message
 * into err (errlen bytes) and return -1. */
int tk_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "tk-NAME: warning: <msg>" unless --quiet. */
void tk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tk-NAME: warning: <msg>" even with --quiet: for what makes a run
 * other than the one its options ask for (an option overriding a
 * checkpoint's, which pipelines run quiet). */
void tk_warn_loud(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tk-NAME: <msg>" unless --quiet: summaries and notes. */
void tk_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* The first n bytes of s, as a string. */
char *xstrndup(const char *s, size_t n);
/* A string printf makes, in memory of its own. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* n * size, dying on overflow. */
size_t xmul(size_t n, size_t size);

/* Common long options: add TK_COMMON_OPTIONS to each tool's table and
 * pass unhandled getopt results to tk_common_option, which handles
 * --help (prints usage, exits 0), --version, --quiet, --progress and
 * usage errors (exit 1). */
enum { TK_OPT_VERSION = 0x1000, TK_OPT_PROGRESS, TK_OPT_FIRST_TOOL };
#define TK_COMMON_OPTIONS                                                    \
	{"help", no_argument, 0, 'h'}, {"version", no_argument, 0, TK_OPT_VERSION}, \
	    {"quiet", no_argument, 0, 'q'},                                        \
	    {"progress", no_argument, 0, TK_OPT_PROGRESS }
void tk_common_option(int c, const char *usage);
/* getopt_long with the tools' one-line usage errors (exit 1) for an
 * unknown option or a missing argument. */
struct option;
int tk_getopt(int argc, char *const argv[], const char *shortopts,
	      const struct option *longopts);
/* Strict numeric option parsing; die with a usage error naming the option. */
long tk_parse_long(const char *opt, const char *s, long lo, long hi);
double tk_parse_double(const char *opt, const char *s);
/* "2G", "512M", "100k", plain bytes. */
uint64_t tk_parse_size(const char *opt, const char *s);
/* Whether CUDA support was compiled in. */
int tk_have_cuda(void);

/* Refuse to write a binary stream to a terminal (usage error). */
void tk_binary_stdout(void);
/* Flush and close stdout, dying if that fails (a full disk shows up here);
 * a closed pipe ends quietly with status 0. */
void tk_close_stdout(void);
/* Called when a write fails: EPIPE exits 0 quietly, others die (exit 3). */
_Noreturn void tk_write_failed(const char *what);

/* An output file that appears under its name only when complete: written
 * to a temporary file beside the file the name leads to (".NAME.XXXXXX",
 * symbolic links followed, so that the link's target is what is
 * replaced) and renamed over it on commit; the temporary file is removed
 * if the program dies before that.  A name that leads to no regular file
 * (a device, a FIFO, /dev/stdout) is written directly; a folder is
 * refused at once.  Errors name path, the user's name. */
struct tk_outfile {
	char *path; /* as given */
	char *real; /* what it leads to, to replace; NULL: direct */
	char *tmp;  /* the temporary file; NULL: direct */
	FILE *fp;
	int direct; /* written as it is: no temporary, no rename */
	int drop;   /* commit removes the target instead (tk_outfile_commit_set) */
};
FILE *tk_outfile_open(struct tk_outfile *o, const char *path);
/* Whether tk_outfile_open(path) would succeed, asked before the work
 * that leads to it: a temporary file is made and removed beside the
 * target (a direct one is checked for write permission); if not, die
 * (exit 3) naming path. */
void tk_outfile_check(const char *path);
void tk_outfile_commit(struct tk_outfile *o);
/* Several files as one: all written out and synced, then renamed with
 * SIGINT, SIGTERM and SIGHUP held, so that a signal leaves the old set or
 * the new one. A file with drop set is discarded and its target, when a
 * regular file, removed with the others' renames. */
void tk_outfile_commit_set(struct tk_outfile *const *o, int n);
/* Close and remove the temporary file: nothing is written. */
void tk_outfile_discard(struct tk_outfile *o);

/* Progress on stderr: count, rate and, when total > 0, ETA.  Shown when
 * stderr is a terminal or --progress, never with --quiet. */
struct tk_progress {
	const char *what;
	long total, count;
	double start, last;
	int on;
};
void tk_progress_start(struct tk_progress *p, const char *what, long total);
void tk_progress_step(struct tk_progress *p, long n);
void tk_progress_end(struct tk_progress *p);

double tk_now(void); /* seconds, monotonic */

#endif
