/* tk.c - program name, errors, common options, atomic output files,
 * progress. */
#define _GNU_SOURCE
#include "tk.h"

#include "kernels/device.h"
#include "blas.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tk_progname = "tk";
int tk_quiet, tk_force_progress;

/* Temporary files to remove if we die before renaming them.  A name is
 * listed before its file is created, so that a signal handled at any
 * point after creation finds it (Linux hands a process's signal to its
 * main thread, the one writing, when it can).  Another thread may end
 * the process too (tk-train's watch over the other ranks, when one is
 * lost): tmp_lock keeps it from reading a name being freed, or from
 * removing the files while the main thread creates one it then misses;
 * it takes the lock for good, as the process ends (recursive: an error
 * under it, out of memory, ends the process too).  The slots are read and
 * written atomically, for the signal handlers, which take no lock. */
#define MAX_TMP 16
static char *tmp_files[MAX_TMP];
static pthread_mutex_t tmp_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static char *tmp_get(int i)
{
	return __atomic_load_n(&tmp_files[i], __ATOMIC_ACQUIRE);
}

static void tmp_set(int i, char *name)
{
	__atomic_store_n(&tmp_files[i], name, __ATOMIC_RELEASE);
}

/* Only on the way out: the lock is never given back.  Held for good
 * already, the process is ending by another thread, whose exit may hang
 * (NCCL's teardown waiting for a lost rank, which tk-train's watch ends
 * with tk_die_now): after a second, this one goes on. */
static void remove_tmp_files(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_timedlock(&tmp_lock, &until);
	for (int i = 0; i < MAX_TMP; i++) {
		const char *name = tmp_get(i);
		if (name) {
			unlink(name);
			tmp_set(i, NULL);
		}
	}
}

/* From a signal handler: no lock (unlink is async-signal-safe). */
static void unlink_tmp_files(void)
{
	for (int i = 0; i < MAX_TMP; i++) {
		const char *name = tmp_get(i);
		if (name)
			unlink(name);
	}
}

static void on_fatal_signal(int sig)
{
	unlink_tmp_files();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Files mapped into memory (tk_mapping_add), for SIGBUS: a mapped file
 * cut short while it is read (rewritten in place by another program)
 * faults where a read would fail.  Slots are claimed under the lock,
 * read by the handler without it. */
#define MAX_MAPS 16
static struct {
	const char *volatile lo; /* NULL: a free slot */
	size_t len;
	char name[256];
} maps[MAX_MAPS];
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

void tk_mapping_add(const void *addr, size_t len, const char *name)
{
	pthread_mutex_lock(&maps_lock);
	for (int i = 0; i < MAX_MAPS; i++)
		if (!maps[i].lo) {
			maps[i].len = len;
			snprintf(maps[i].name, sizeof maps[i].name, "%s", name);
			__atomic_store_n(&maps[i].lo, (const char *)addr, __ATOMIC_RELEASE);
			break;
		}
	pthread_mutex_unlock(&maps_lock);
}

void tk_mapping_remove(const void *addr)
{
	pthread_mutex_lock(&maps_lock);
	for (int i = 0; i < MAX_MAPS; i++)
		if (maps[i].lo == addr)
			__atomic_store_n(&maps[i].lo, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&maps_lock);
}

static void say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		return;
}

/* A fault in a mapped file: say which, remove the temporary files and
 * exit 3; any other bus error still kills the program with the signal,
 * as on_fatal_signal does. */
static void on_bus_error(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	const char *at = si->si_addr;
	/* (si_code > 0: a fault of the program's own, not a kill -BUS) */
	for (int i = 0; si->si_code > 0 && i < MAX_MAPS; i++) {
		const char *lo = __atomic_load_n(&maps[i].lo, __ATOMIC_ACQUIRE);
		if (!lo || at < lo || at >= lo + maps[i].len)
			continue;
		say(tk_progname);
		say(": error: ");
		say(maps[i].name);
		say(": cut short while being read (another program rewrote "
		    "it?)\n");
		unlink_tmp_files();
		_exit(TK_EXIT_IO);
	}
	on_fatal_signal(sig);
}

void tk_init(const char *argv0)
{
	const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
	tk_progname = slash ? slash + 1 : (argv0 ? argv0 : "tk");
	tk_blas_single();
	/* A closed downstream pipe shows up as EPIPE from write, which ends
	 * the program quietly (tk_write_failed). */
	signal(SIGPIPE, SIG_IGN);
	/* Past a file size limit (ulimit -f), a write fails with EFBIG and
	 * the error's cleanup runs (the signal would kill the program and
	 * leave the temporary file). */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	struct sigaction bus = {0};
	bus.sa_sigaction = on_bus_error;
	bus.sa_flags = SA_SIGINFO;
	sigemptyset(&bus.sa_mask);
	sigaction(SIGBUS, &bus, NULL);
	/* Streams are written in large pieces. */
	static char outbuf[1 << 20];
	if (!isatty(STDOUT_FILENO))
		setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	tk_grow_pipes();
}

void tk_grow_pipes(void)
{
#ifdef F_SETPIPE_SZ
	for (int fd = 0; fd < 2; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
		    fcntl(fd, F_GETPIPE_SZ) < TK_PIPE_SIZE)
			(void)fcntl(fd, F_SETPIPE_SZ, TK_PIPE_SIZE); /* best effort */
	}
#endif
}

/* s with its control characters escaped (\n, \t, \r, \xNN), so that a
 * message naming something from outside data (a tensor name, a key, a
 * path) stays one line. */
static void escape_controls(char *out, size_t len, const char *s)
{
	size_t o = 0;
	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != 0x7f)
			out[o++] = (char)c;
		else if (c == '\n' || c == '\t' || c == '\r')
			o += (size_t)snprintf(out + o, len - o, "\\%c",
					      c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
	}
	out[o] = 0;
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
	int saved = errno;
	char raw[4096], buf[4 * sizeof raw];
	vsnprintf(raw, sizeof raw, fmt, ap);
	escape_controls(buf, sizeof buf, raw);
	size_t n = strlen(buf);
	if (n && buf[n - 1] == ':')
		fprintf(stderr, "%s: %s%s %s\n", tk_progname, kind, buf,
			strerror(saved));
	else
		fprintf(stderr, "%s: %s%s\n", tk_progname, kind, buf);
}

void tk_die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("error: ", fmt, ap);
	va_end(ap);
	remove_tmp_files();
	exit(status);
}

void tk_die_now(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("error: ", fmt, ap);
	va_end(ap);
	remove_tmp_files();
	_exit(status);
}

int tk_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void tk_warn(const char *fmt, ...)
{
	if (tk_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

int tk_whole_integer(const char *s)
{
	s += *s == '-';
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

void tk_warn_loud(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

void tk_note(const char *fmt, ...)
{
	if (tk_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die_io("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die_io("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die_io("out of memory allocating %zu bytes", n);
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

char *xstrndup(const char *s, size_t n)
{
	char *t = memcpy(xmalloc(n + 1), s, n);
	t[n] = 0;
	return t;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die_io("out of memory");
	return s;
}

size_t xmul(size_t n, size_t size)
{
	size_t r;
	if (__builtin_mul_overflow(n, size, &r))
		die_io("size overflow (%zu x %zu)", n, size);
	return r;
}

/* This file and kernels/ are the only ones that know about devices. */
int tk_have_cuda(void)
{
#ifdef TK_CUDA
	return 1;
#else
	return 0;
#endif
}

#ifndef TK_CUDA
const char *tk_cuda_versions(void)
{
	return NULL;
}
#endif

/* getopt's own messages are two lines that name argv[0] as it was typed
 * and say no "error:"; a leading ':' silences them and tells a missing
 * argument (':') from an unknown option ('?'), which are said here in the
 * tools' one-line form. */
int tk_getopt(int argc, char *const argv[], const char *shortopts,
	      const struct option *longopts)
{
	char opts[128];
	if (snprintf(opts, sizeof opts, ":%s", shortopts) >= (int)sizeof opts)
		die_io("tk_getopt: option string too long");
	int c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	/* A long option is taken whole in one call, so optind is past it;
	 * a short one's optopt is its letter. */
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
	int is_long = arg[0] == '-' && arg[1] == '-' && arg[2];
	int len = is_long ? (int)strcspn(arg, "=") : 0;
	if (c == ':') {
		if (is_long)
			die_usage("option '%.*s' requires an argument (try --help)",
				  len, arg);
		die_usage("option '-%c' requires an argument (try --help)",
			  optopt);
	}
	if (is_long && !optopt)
		die_usage("unrecognized option '%.*s' (try --help)", len, arg);
	/* optopt set by a long option given an argument it does not take
	 * (--quiet=1), or by a short option: arg is then the long option
	 * before it, when the letter was not the last of its group. */
	if (is_long && arg[len] == '=')
		for (const struct option *o = longopts; o && o->name; o++)
			if (o->has_arg == no_argument && o->val == optopt &&
			    !strncmp(o->name, arg + 2, len - 2))
				die_usage("option '%.*s' takes no argument (try --help)",
					  len, arg);
	die_usage("unrecognized option '-%c' (try --help)", optopt);
}

void tk_common_option(int c, const char *usage)
{
	switch (c) {
	case 'h':
		fputs(usage, stdout);
		tk_close_stdout();
		exit(0);
	case TK_OPT_VERSION:
		if (tk_have_cuda())
			printf("%s (tk) %s, CUDA support: built in (%s)\n",
			       tk_progname, TK_VERSION, tk_cuda_versions());
		else
			printf("%s (tk) %s, CUDA support: not built in\n",
			       tk_progname, TK_VERSION);
		if (tk_blas_config())
			printf("BLAS: %s\n", tk_blas_config());
		tk_close_stdout(); /* a closed pipe: 0; a full disk: said, 3 */
		exit(0);
	case 'q':
		tk_quiet = 1;
		return;
	case TK_OPT_PROGRESS:
		tk_force_progress = 1;
		return;
	default:
		fprintf(stderr, "Try '%s --help' for more information.\n",
			tk_progname);
		exit(TK_EXIT_USAGE);
	}
}

long tk_parse_long(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die_usage("%s: '%s' is not an integer in [%ld, %ld]", opt, s,
			  lo, hi);
	return v;
}

double tk_parse_double(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		die_usage("%s: '%s' is not a number", opt, s);
	return v;
}

uint64_t tk_parse_size(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	uint64_t mul = 1;
	int digits = end != s; /* a unit alone is no size */
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (errno || !digits || *end || !(v >= 0) || v * mul > 1e19)
		die_usage("%s: '%s' is not a size (like 512M or 2G)", opt, s);
	return (uint64_t)(v * (double)mul);
}

void tk_binary_stdout(void)
{
	if (isatty(STDOUT_FILENO))
		die_usage("refusing to write a binary stream to a terminal "
			  "(redirect stdout to a file or a pipe)");
}

void tk_write_failed(const char *what)
{
	if (errno == EPIPE) {
		remove_tmp_files();
		/* Downstream stopped reading: that is not our failure. */
		_exit(0);
	}
	die_io("writing %s:", what);
}

void tk_close_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		tk_write_failed("standard output");
	if (fclose(stdout) != 0 && errno != EBADF)
		tk_write_failed("standard output");
}

/* What path names with its symbolic links followed, to write beside and
 * replace: realpath(path), or where path does not exist (yet), its
 * folder's realpath and its name; through a dangling link, the link's
 * target.  NULL with errno set when the folder is not there. */
static char *resolve_target(const char *path)
{
	char *r = realpath(path, NULL);
	if (r || errno != ENOENT)
		return r;
	char *p = xstrdup(path);
	for (int hops = 0;; hops++) {
		struct stat st;
		if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode))
			break;
		char to[PATH_MAX];
		ssize_t n = readlink(p, to, sizeof to - 1);
		if (hops == 40 || n < 0) {
			free(p);
			errno = n < 0 ? errno : ELOOP;
			return NULL;
		}
		to[n] = 0;
		char *slash = strrchr(p, '/'), *next;
		if (to[0] == '/' || !slash)
			next = xstrdup(to);
		else
			next = xasprintf("%.*s/%s", (int)(slash - p), p, to);
		free(p);
		p = next;
	}
	char *slash = strrchr(p, '/');
	const char *name = slash ? slash + 1 : p;
	char *dir = !slash ? xstrdup(".")
		    : slash == p ? xstrdup("/") : xstrndup(p, (size_t)(slash - p));
	char *rdir = realpath(dir, NULL);
	int e = errno;
	if (rdir && !*name) /* "folder/" that is not there */
		e = EISDIR;
	else if (rdir)
		r = xasprintf("%s/%s", strcmp(rdir, "/") ? rdir : "", name);
	free(rdir);
	free(dir);
	free(p);
	errno = e;
	return r;
}

/* A temporary name beside target: ".NAME.XXXXXX" in its folder, NAME cut
 * short where the whole would pass the longest name a folder takes. */
static char *temp_name(const char *target)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static uint64_t counter;
	const char *slash = strrchr(target, '/'), *name = slash + 1;
	size_t room = NAME_MAX - 8, len = strlen(name);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
		     (uint64_t)ts.tv_sec * 1000003u ^ ++counter * 0x9e3779b97f4a7c15ull;
	char rnd[7];
	for (int i = 0; i < 6; i++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ull;
		x ^= x >> 32;
		rnd[i] = chars[x % (sizeof chars - 1)];
	}
	rnd[6] = 0;
	return xasprintf("%.*s.%.*s.%s", (int)(name - target), target,
			 (int)(len < room ? len : room), name, rnd);
}

/* A target that is no regular file: written as it is. */
static int is_direct(const char *path, int *isdir)
{
	struct stat st;
	*isdir = 0;
	if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
		return 0;
	*isdir = S_ISDIR(st.st_mode);
	return 1;
}

FILE *tk_outfile_open(struct tk_outfile *o, const char *path)
{
	memset(o, 0, sizeof *o);
	o->path = xstrdup(path);
	int isdir;
	if (is_direct(path, &isdir)) {
		if (isdir) {
			errno = EISDIR;
			die_io("cannot create %s:", path);
		}
		/* A device, a FIFO (/dev/stdout to a pipe): no temporary
		 * file beside it, no rename over it. */
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || !(o->fp = fdopen(fd, "wb")))
			die_io("cannot open %s:", path);
		o->direct = 1;
		return o->fp;
	}
	o->real = resolve_target(path);
	if (!o->real)
		die_io("cannot create %s:", path);
	pthread_mutex_lock(&tmp_lock);
	int slot = -1;
	for (int i = 0; i < MAX_TMP; i++)
		if (!tmp_get(i)) {
			slot = i;
			break;
		}
	int fd = -1, e = EMFILE;
	for (int tries = 1; slot >= 0 && tries <= 100; tries++) {
		o->tmp = temp_name(o->real);
		tmp_set(slot, o->tmp);
		fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				      O_CLOEXEC, 0666);
		if (fd >= 0)
			break;
		e = errno;
		tmp_set(slot, NULL);
		free(o->tmp);
		o->tmp = NULL;
		if (e != EEXIST)
			break;
	}
	pthread_mutex_unlock(&tmp_lock);
	if (slot < 0)
		die_io("too many output files open at once");
	errno = e;
	if (fd < 0)
		die_io("cannot create %s:", path);
	if (!(o->fp = fdopen(fd, "wb")))
		die_io("cannot create %s:", path);
	return o->fp;
}

void tk_outfile_check(const char *path)
{
	int isdir;
	if (is_direct(path, &isdir)) {
		if (isdir) {
			errno = EISDIR;
			die_io("cannot create %s:", path);
		}
		if (access(path, W_OK) != 0)
			die_io("cannot write %s:", path);
		return;
	}
	struct tk_outfile o;
	tk_outfile_open(&o, path);
	tk_outfile_discard(&o);
}

static void forget_outfile(struct tk_outfile *o)
{
	pthread_mutex_lock(&tmp_lock);
	for (int i = 0; i < MAX_TMP; i++)
		if (o->tmp && tmp_get(i) == o->tmp)
			tmp_set(i, NULL);
	pthread_mutex_unlock(&tmp_lock);
	free(o->tmp);
	free(o->real);
	free(o->path);
	o->tmp = o->real = o->path = NULL;
}

/* Everything written on the disk (or into the device) and closed. */
static void outfile_sync(struct tk_outfile *o)
{
	if (!o->fp)
		return;
	if (fflush(o->fp) != 0 || ferror(o->fp))
		die_io("writing %s:", o->path);
	if (fsync(fileno(o->fp)) != 0 && errno != EINVAL && errno != EROFS)
		die_io("writing %s:", o->path);
	if (fclose(o->fp) != 0)
		die_io("writing %s:", o->path);
	o->fp = NULL;
}

/* The temporary file renamed over the target, or with drop, removed and
 * the target with it. */
static void outfile_place(struct tk_outfile *o)
{
	if (o->drop) {
		struct stat st;
		if (o->tmp)
			unlink(o->tmp);
		if (o->real && lstat(o->real, &st) == 0 && S_ISREG(st.st_mode) &&
		    unlink(o->real) != 0 && errno != ENOENT)
			die_io("removing %s:", o->path);
	} else if (!o->direct && rename(o->tmp, o->real) != 0) {
		die_io("replacing %s:", o->path);
	}
	forget_outfile(o);
}

void tk_outfile_commit(struct tk_outfile *o)
{
	tk_outfile_commit_set(&o, 1);
}

void tk_outfile_commit_set(struct tk_outfile *const *o, int n)
{
	for (int i = 0; i < n; i++)
		if (o[i]->drop && o[i]->fp) {
			fclose(o[i]->fp);
			o[i]->fp = NULL;
		} else {
			outfile_sync(o[i]);
		}
	sigset_t hold, old;
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGHUP);
	sigprocmask(SIG_BLOCK, &hold, &old);
	for (int i = 0; i < n; i++)
		outfile_place(o[i]);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void tk_outfile_discard(struct tk_outfile *o)
{
	if (o->fp)
		fclose(o->fp);
	o->fp = NULL;
	if (o->tmp)
		unlink(o->tmp);
	forget_outfile(o);
}

double tk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tk_progress_start(struct tk_progress *p, const char *what, long total)
{
	p->what = what;
	p->total = total;
	p->count = 0;
	p->start = p->last = tk_now();
	p->on = !tk_quiet && (tk_force_progress || isatty(STDERR_FILENO));
}

static void progress_print(struct tk_progress *p, double now, int final)
{
	double dt = now - p->start;
	double rate = dt > 0 ? p->count / dt : 0;
	if (p->total > 0 && rate > 0 && !final)
		fprintf(stderr, "\r%s: %ld/%ld %s, %.1f/s, ETA %.0fs   ",
			tk_progname, p->count, p->total, p->what, rate,
			(p->total - p->count) / rate);
	else
		fprintf(stderr, "\r%s: %ld %s, %.1f/s, %.1fs   ", tk_progname,
			p->count, p->what, rate, dt);
	if (final)
		fputc('\n', stderr);
}

void tk_progress_step(struct tk_progress *p, long n)
{
	p->count += n;
	if (!p->on)
		return;
	double now = tk_now();
	if (now - p->last >= 0.5) {
		p->last = now;
		progress_print(p, now, 0);
	}
}

void tk_progress_end(struct tk_progress *p)
{
	if (p->on)
		progress_print(p, tk_now(), 1);
	p->on = 0;
}
