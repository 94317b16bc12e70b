/* inputs.c - files, folders, archives and list lines to a sequence of
 * images to decode (see inputs.h). */
#define _GNU_SOURCE
#include "inputs.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk.h"

/* An archive member larger than this is refused rather than read. */
#define MAX_MEMBER (1L << 30)

struct level {
	char *dir;
	char **names;
	int n, i;
	dev_t dev; /* the folder's identity: a folder already on the walk */
	ino_t ino; /* is not entered again (a symlink loop) */
};

struct tk_inputs {
	char **args;
	int nargs, argi, stdin_used;
	int shard, nshards;
	long index, from;
	FILE *list; /* standard input while its lines are read */
	long lineno;
	char *line;
	size_t linecap;
	struct level *lv; /* the folder walk: one level per folder */
	int nlv, caplv;
	struct archive *ar;
	char *arname;
	int (*keep)(void *ctx, struct tk_input *it);
	void *keep_ctx;
};

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int tk_is_image_name(const char *name)
{
	return ends_with(name, ".jpg") || ends_with(name, ".jpeg") ||
	       ends_with(name, ".png");
}

int tk_is_archive_name(const char *name)
{
	static const char *ext[] = {".tar", ".tar.gz", ".tgz", ".tar.bz2",
				    ".tar.xz", ".tar.zst", ".zip"};
	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
		if (ends_with(name, ext[i]))
			return 1;
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The file name without its directory and last extension: n bytes at
 * the pointer returned. */
static const char *stem_span(const char *path, size_t *n)
{
	const char *s = base_name(path), *dot = strrchr(s, '.');
	*n = dot && dot != s ? (size_t)(dot - s) : strlen(s);
	return s;
}

static char *stem(const char *path)
{
	size_t n;
	const char *s = stem_span(path, &n);
	return xstrndup(s, n);
}

struct tk_inputs *tk_inputs_new(char **args, int nargs, int shard,
				int nshards)
{
	struct tk_inputs *in = xcalloc(1, sizeof *in);
	in->args = args;
	in->nargs = nargs;
	in->shard = shard;
	in->nshards = nshards > 0 ? nshards : 1;
	return in;
}

void tk_inputs_filter(struct tk_inputs *in,
		      int (*keep)(void *ctx, struct tk_input *it), void *ctx)
{
	in->keep = keep;
	in->keep_ctx = ctx;
}

void tk_inputs_from(struct tk_inputs *in, long from)
{
	in->from = from;
}

/* Count an input; whether it belongs to this shard (and is not before
 * the first index wanted). */
static int take(struct tk_inputs *in)
{
	long i = in->index++;
	return i >= in->from && i % in->nshards == in->shard;
}

/* An image item it, started: whether the filter keeps it and it belongs
 * to this shard.  When not, it is freed. */
static int admit(struct tk_inputs *in, struct tk_input *it)
{
	if ((!in->keep || in->keep(in->keep_ctx, it)) && take(in)) {
		it->index = in->index - 1;
		return 1;
	}
	tk_input_free(it);
	return 0;
}

static void start_item(struct tk_input *it, long index, const char *src)
{
	memset(it, 0, sizeof *it);
	it->index = index;
	it->src = xstrdup(src);
	it->label = -1;
}

static void file_item(struct tk_input *it, const char *path)
{
	start_item(it, -1, path);
	it->path = xstrdup(path);
	it->key = stem(path);
}

static void error_item(struct tk_inputs *in, struct tk_input *it,
		       const char *src, char *err)
{
	start_item(it, in->index - 1, src);
	it->err = err;
}

/* ---- folders ---- */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Enter a folder (st: its stat): its entries, dot files left out, in
 * byte order.  A folder that is already on the walk (through a symbolic
 * link, as dir/self -> .) is not entered again: that is an error, as
 * find's "File system loop detected". */
static char *push_folder(struct tk_inputs *in, const char *dir,
			 const struct stat *st)
{
	for (int i = 0; i < in->nlv; i++)
		if (in->lv[i].dev == st->st_dev && in->lv[i].ino == st->st_ino)
			return xasprintf("folder loop: this is %s again",
					 in->lv[i].dir);
	DIR *d = opendir(dir);
	if (!d)
		return xasprintf("cannot open folder: %s", strerror(errno));
	struct level lv = {xstrdup(dir), NULL, 0, 0, st->st_dev, st->st_ino};
	int cap = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (lv.n == cap) {
			cap = cap ? 2 * cap : 64;
			lv.names = xrealloc(lv.names, xmul((size_t)cap, sizeof *lv.names));
		}
		lv.names[lv.n++] = xstrdup(e->d_name);
	}
	int err = errno;
	closedir(d);
	if (err) {
		for (int i = 0; i < lv.n; i++)
			free(lv.names[i]);
		free(lv.names);
		free(lv.dir);
		return xasprintf("cannot read folder: %s", strerror(err));
	}
	if (lv.n > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(lv.names, (size_t)lv.n, sizeof *lv.names, by_name);
	if (in->nlv == in->caplv) {
		in->caplv = in->caplv ? 2 * in->caplv : 8;
		in->lv = xrealloc(in->lv, xmul((size_t)in->caplv, sizeof *in->lv));
	}
	in->lv[in->nlv++] = lv;
	return NULL;
}

static void pop_folder(struct tk_inputs *in)
{
	struct level *lv = &in->lv[--in->nlv];
	for (int i = 0; i < lv->n; i++)
		free(lv->names[i]);
	free(lv->names);
	free(lv->dir);
}

static int walk_next(struct tk_inputs *in, struct tk_input *it)
{
	while (in->nlv) {
		struct level *lv = &in->lv[in->nlv - 1];
		if (lv->i == lv->n) {
			pop_folder(in);
			continue;
		}
		const char *name = lv->names[lv->i++];
		size_t n = strlen(lv->dir);
		char *path = xasprintf("%s%s%s", lv->dir,
				       n && lv->dir[n - 1] == '/' ? "" : "/", name);
		struct stat st;
		int ok = stat(path, &st) == 0, serr = errno, found = 0;
		if (!ok && serr != ENOENT) {
			/* A name too long, a folder we may not search, a
			 * symlink loop: whatever it is, it is not passed over
			 * unsaid.  (ENOENT: a dangling link, an image name
			 * only is an error, below.) */
			error_item(in, it, path, xasprintf("%s", strerror(serr)));
			found = 1;
		} else if (ok && S_ISDIR(st.st_mode)) {
			char *err = push_folder(in, path, &st);
			if (err) {
				error_item(in, it, path, err);
				found = 1;
			}
		} else if (tk_is_image_name(name) && (!ok || S_ISREG(st.st_mode))) {
			file_item(it, path);
			if (!ok)
				it->err = xasprintf("%s", strerror(serr));
			found = admit(in, it);
		}
		free(path);
		if (found)
			return 1;
	}
	return 0;
}

/* ---- archives ---- */

static void close_archive(struct tk_inputs *in)
{
	archive_read_free(in->ar);
	in->ar = NULL;
	free(in->arname);
	in->arname = NULL;
}

static char *open_archive(struct tk_inputs *in, const char *path)
{
	in->ar = archive_read_new();
	if (!in->ar)
		die_io("cannot create an archive reader");
	in->arname = xstrdup(path);
	archive_read_support_filter_all(in->ar);
	archive_read_support_format_tar(in->ar);
	archive_read_support_format_zip(in->ar);
	if (archive_read_open_filename(in->ar, path, 1 << 16) != ARCHIVE_OK) {
		char *err = xasprintf("cannot read archive: %s",
				      archive_error_string(in->ar));
		close_archive(in);
		return err;
	}
	return NULL;
}

/* After a fatal error libarchive reads no further: with --skip-bad the
 * rest of the archive is lost, not one member (a GLDv2 shard cut short
 * loses thousands of images). */
#define LOST "; the archive's later members are not read"

static int archive_next(struct tk_inputs *in, struct tk_input *it)
{
	struct archive_entry *e;
	for (;;) {
		int r = archive_read_next_header(in->ar, &e);
		if (r == ARCHIVE_EOF) {
			close_archive(in);
			return 0;
		}
		if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY) {
			start_item(it, in->index, in->arname);
			it->err = xasprintf("bad archive: %s%s",
					    archive_error_string(in->ar),
					    r == ARCHIVE_FATAL ? LOST : "");
			if (r == ARCHIVE_FATAL)
				close_archive(in);
			return 1;
		}
		const char *name = archive_entry_pathname(e);
		if (archive_entry_filetype(e) != AE_IFREG || !name ||
		    base_name(name)[0] == '.' || !tk_is_image_name(name))
			continue;
		char *src = xasprintf("%s:%s", in->arname, name);
		start_item(it, -1, src);
		free(src);
		it->key = stem(name);
		if (!admit(in, it)) {
			archive_read_data_skip(in->ar);
			continue;
		}
		size_t cap = archive_entry_size_is_set(e) &&
				     archive_entry_size(e) > 0
				 ? (size_t)archive_entry_size(e)
				 : 1 << 16;
		if (cap > MAX_MEMBER) {
			it->err = xasprintf("member larger than %ld bytes", MAX_MEMBER);
			archive_read_data_skip(in->ar);
			return 1;
		}
		it->data = xmalloc(cap + 1);
		for (;;) {
			if (it->len == cap) {
				if (cap >= MAX_MEMBER) {
					it->err = xasprintf("member larger than %ld bytes",
							    MAX_MEMBER);
					break;
				}
				cap *= 2;
				it->data = xrealloc(it->data, cap + 1);
			}
			la_ssize_t n = archive_read_data(in->ar, it->data + it->len,
							 cap - it->len);
			if (n == 0)
				break;
			if (n < 0) {
				it->err = xasprintf("cannot read archive member: %s%s",
						    archive_error_string(in->ar),
						    n == ARCHIVE_FATAL ? LOST : "");
				if (n == ARCHIVE_FATAL)
					close_archive(in);
				break;
			}
			it->len += (size_t)n;
		}
		if (it->err) {
			free(it->data);
			it->data = NULL;
			it->len = 0;
		}
		return 1;
	}
}

/* ---- list lines ---- */

static char *parse_bbox(const char *s, double box[4])
{
	const char *p = s;
	for (int i = 0; i < 4; i++) {
		char *end;
		errno = 0;
		box[i] = strtod(p, &end);
		if (end == p || errno || !isfinite(box[i]) || fabs(box[i]) > 1e7 ||
		    *end != (i < 3 ? ',' : 0))
			return xasprintf("bad bbox '%s' (want x0,y0,x1,y1)", s);
		p = end + 1;
	}
	return NULL;
}

char *tk_list_line_parse(char *line, struct tk_list_line *l)
{
	char *f[4] = {line, "", "", ""}, *p = line;
	for (int i = 1; i < 4 && (p = strchr(p, '\t')); i++) {
		*p++ = 0;
		f[i] = p;
	}
	if (p && (p = strchr(p, '\t'))) /* later fields are not ours */
		*p = 0;
	memset(l, 0, sizeof *l);
	l->path = f[0];
	l->label = -1;
	if (!*f[0])
		return xasprintf("empty path");
	if (*f[1]) {
		l->key = f[1];
		l->keylen = strlen(f[1]);
	} else {
		l->key = stem_span(f[0], &l->keylen);
	}
	if (*f[2]) {
		char *end;
		errno = 0;
		l->label = strtol(f[2], &end, 10);
		if (errno || *end || l->label < -1) {
			l->label = -1;
			return xasprintf("bad label '%s'", f[2]);
		}
	}
	if (*f[3]) {
		char *err = parse_bbox(f[3], l->bbox);
		if (err)
			return err;
		l->has_bbox = 1;
	}
	return NULL;
}

static void parse_line(struct tk_inputs *in, struct tk_input *it, char *line)
{
	struct tk_list_line l;
	char *where = xasprintf("<stdin>:%ld", in->lineno);
	char *err = tk_list_line_parse(line, &l);
	if (err) { /* name the line, not the image */
		error_item(in, it, where, err);
	} else {
		file_item(it, l.path);
		it->index = in->index - 1;
		free(it->key);
		it->key = xstrndup(l.key, l.keylen);
		it->label = l.label;
		it->has_bbox = l.has_bbox;
		memcpy(it->bbox, l.bbox, sizeof it->bbox);
	}
	free(where);
}

static int list_next(struct tk_inputs *in, struct tk_input *it)
{
	ssize_t n;
	while ((n = getline(&in->line, &in->linecap, in->list)) >= 0) {
		in->lineno++;
		while (n && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r'))
			in->line[--n] = 0;
		if (!n)
			continue;
		if (!take(in))
			continue;
		parse_line(in, it, in->line);
		return 1;
	}
	if (ferror(in->list))
		die_io("reading the list on standard input:");
	in->list = NULL;
	return 0;
}

/* ---- the sequence ---- */

int tk_inputs_next(struct tk_inputs *in, struct tk_input *it)
{
	for (;;) {
		if (in->ar) {
			if (archive_next(in, it))
				return 1;
			continue;
		}
		if (in->nlv) {
			if (walk_next(in, it))
				return 1;
			continue;
		}
		if (in->list) {
			if (list_next(in, it))
				return 1;
			continue;
		}
		if (in->argi >= in->nargs && (in->nargs || in->stdin_used))
			return 0;
		const char *a = in->nargs ? in->args[in->argi++] : "-";
		if (strcmp(a, "-") == 0) {
			if (in->stdin_used)
				die_usage("standard input named twice");
			in->stdin_used = 1;
			in->list = stdin;
			continue;
		}
		struct stat st;
		char *err = NULL;
		if (stat(a, &st) < 0) {
			if (!take(in))
				continue;
			error_item(in, it, a, xasprintf("%s", strerror(errno)));
			return 1;
		}
		if (S_ISDIR(st.st_mode))
			err = push_folder(in, a, &st);
		else if (tk_is_archive_name(a))
			err = open_archive(in, a);
		else {
			file_item(it, a);
			if (admit(in, it))
				return 1;
		}
		if (err) {
			start_item(it, in->index, a);
			it->err = err;
			return 1;
		}
	}
}

int tk_input_read(struct tk_input *it, char *err, size_t errlen)
{
	if (it->data || !it->path)
		return 0;
	int fd = open(it->path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		close(fd);
		return -1;
	}
	size_t cap = st.st_size > 0 ? (size_t)st.st_size : 1, n = 0;
	uint8_t *buf = xmalloc(cap);
	for (;;) {
		if (n == cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "reading: %s", strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	it->data = buf;
	it->len = n;
	return 0;
}

void tk_input_free(struct tk_input *it)
{
	free(it->src);
	free(it->path);
	free(it->data);
	free(it->key);
	free(it->err);
	memset(it, 0, sizeof *it);
}

void tk_inputs_free(struct tk_inputs *in)
{
	if (!in)
		return;
	while (in->nlv)
		pop_folder(in);
	free(in->lv);
	if (in->ar)
		close_archive(in);
	free(in->line);
	free(in);
}
