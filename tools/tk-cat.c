/* tk-cat - concatenate and validate streams; describe them; move tensors
 * between streams and .npy files. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/npy.h"
#include "common/stream.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-cat [FILE...]                 concatenate and validate streams\n"
    "       tk-cat --info [FILE...]          describe each frame\n"
    "       tk-cat --to-npy OUT [--tensor NAME] [FILE...]\n"
    "       tk-cat --from-npy IN [--keys F] [--labels F] [--tensor NAME]\n"
    "FILE - or none is standard input.  See tk-cat(1).\n"
    "  -i, --info          one line per frame: index, key, label, tensors\n"
    "                      (name, dtype, shape, min/max/mean)\n"
    "      --to-npy OUT    stack tensor NAME of all frames into OUT; keys to\n"
    "                      OUT.keys, labels to OUT.labels\n"
    "      --from-npy IN   one frame per row of IN, to standard output\n"
    "  -t, --tensor NAME   tensor to take or make (default: the only one /\n"
    "                      the .npy file's name without .npy)\n"
    "      --keys F        keys for --from-npy, one per line (default: row)\n"
    "      --labels F      labels for --from-npy, one per line\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum { OPT_TO_NPY = TK_OPT_FIRST_TOOL, OPT_FROM_NPY, OPT_KEYS, OPT_LABELS };

struct options {
	int info;
	const char *to_npy, *from_npy, *tensor, *keys, *labels;
	char **files;
	int nfiles;
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"info", no_argument, 0, 'i'},
	    {"to-npy", required_argument, 0, OPT_TO_NPY},
	    {"from-npy", required_argument, 0, OPT_FROM_NPY},
	    {"tensor", required_argument, 0, 't'},
	    {"keys", required_argument, 0, OPT_KEYS},
	    {"labels", required_argument, 0, OPT_LABELS},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c;
	memset(o, 0, sizeof *o);
	while ((c = tk_getopt(argc, argv, "it:qh", longopts)) != -1) {
		switch (c) {
		case 'i': o->info = 1; break;
		case 't': o->tensor = optarg; break;
		case OPT_TO_NPY: o->to_npy = optarg; break;
		case OPT_FROM_NPY: o->from_npy = optarg; break;
		case OPT_KEYS: o->keys = optarg; break;
		case OPT_LABELS: o->labels = optarg; break;
		default: tk_common_option(c, usage);
		}
	}
	if (!!o->info + !!o->to_npy + !!o->from_npy > 1)
		die_usage("--info, --to-npy and --from-npy exclude each other");
	if ((o->keys || o->labels) && !o->from_npy)
		die_usage("--keys and --labels go with --from-npy");
	if (o->from_npy && optind < argc)
		die_usage("--from-npy reads no streams");
	o->files = argv + optind;
	o->nfiles = argc - optind;
}

static void print_info(long index, const struct st_doc *d)
{
	const char *key = st_meta_get(d, "key"), *label = st_meta_get(d, "label");
	printf("%ld\tkey=%s\tlabel=%s", index, key ? key : "-",
	       label ? label : "-");
	/* A weight file has hundreds of tensors: one line each. */
	const char *sep = d->n > 4 ? "\n\t" : "\t";
	for (int i = 0; i < d->n; i++) {
		const struct st_tensor *t = &d->t[i];
		printf("%s%s %s [", sep, t->name, st_dtype_name(t->dtype));
		for (int k = 0; k < t->rank; k++)
			printf("%s%lld", k ? "," : "", (long long)t->shape[k]);
		size_t n = st_numel(t);
		double lo = INFINITY, hi = -INFINITY, sum = 0;
		for (size_t j = 0; j < n; j++) {
			double v = st_get(t, j);
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
			sum += v;
		}
		if (n)
			printf("] min=%.6g max=%.6g mean=%.6g", lo, hi, sum / n);
		else
			printf("] empty");
	}
	putchar('\n');
	if (ferror(stdout))
		tk_write_failed("standard output");
}

/* Which tensor --to-npy takes: --tensor, or the frame's only one. */
static struct st_tensor *pick_tensor(const struct tk_stream *s,
				     const struct st_doc *d, const char *name)
{
	if (name)
		return tk_frame_tensor(s, d, name, -1, -1);
	if (d->n != 1)
		tk_frame_die(s, d, "frame has %d tensors: say which with --tensor",
			     d->n);
	return &d->t[0];
}

struct npy_out {
	struct tk_outfile data, keys, labels;
	struct npy_header h;
	size_t hsize; /* header bytes reserved for the final row count */
	long rows, nlabels;
	const char *name;
};

static void npy_add(struct npy_out *o, const struct tk_stream *s,
		    const struct st_doc *d)
{
	const struct st_tensor *t = pick_tensor(s, d, o->name);
	if (o->rows == 0) {
		o->h.dtype = t->dtype;
		o->h.rank = t->rank + 1;
		memcpy(o->h.shape + 1, t->shape, t->rank * sizeof *t->shape);
		/* The row count is patched in when the stream ends, into
		 * room reserved for the largest count. */
		o->h.shape[0] = (int64_t)1 << 48;
		o->hsize = npy_header_size(&o->h);
		if (npy_write_header(o->data.fp, &o->h, o->hsize) < 0)
			tk_write_failed(o->data.path);
	} else if (t->dtype != o->h.dtype || t->rank + 1 != o->h.rank ||
		   memcmp(t->shape, o->h.shape + 1,
			  t->rank * sizeof *t->shape) != 0) {
		tk_frame_die(s, d,
			     "tensor '%s' differs in dtype or shape from the "
			     "first frame's",
			     t->name);
	}
	if (fwrite(t->data, 1, t->nbytes, o->data.fp) != t->nbytes)
		tk_write_failed(o->data.path);
	const char *key = st_meta_get(d, "key"), *label = st_meta_get(d, "label");
	/* one line a row: a line break in a key would shift the rows after */
	if (key && strpbrk(key, "\n\r"))
		tk_frame_die(s, d, "the key holds a line break, which %s (a line a "
				   "row) cannot hold", o->keys.path);
	if (label && strpbrk(label, "\n\r"))
		tk_frame_die(s, d, "the label holds a line break, which %s (a line "
				   "a row) cannot hold", o->labels.path);
	fprintf(o->keys.fp, "%s\n", key ? key : "");
	fprintf(o->labels.fp, "%s\n", label ? label : "-1");
	o->nlabels += label != NULL;
	o->rows++;
}

static void to_npy(const struct options *opt)
{
	struct npy_out o;
	memset(&o, 0, sizeof o);
	o.name = opt->tensor;
	char *kpath = xmalloc(strlen(opt->to_npy) + 8);
	char *lpath = xmalloc(strlen(opt->to_npy) + 8);
	sprintf(kpath, "%s.keys", opt->to_npy);
	sprintf(lpath, "%s.labels", opt->to_npy);
	/* the header, with the row count, is written last: no pipe (asked
	 * before opening, which waits for a FIFO's reader) */
	struct stat st;
	if (stat(opt->to_npy, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		die_usage("--to-npy %s: the file is written whole at the end and "
			  "cannot go to a pipe", opt->to_npy);
	tk_outfile_open(&o.data, opt->to_npy);
	if (o.data.direct && lseek(fileno(o.data.fp), 0, SEEK_CUR) < 0)
		die_usage("--to-npy %s: the file is written whole at the end and "
			  "cannot go to a pipe", opt->to_npy);
	tk_outfile_open(&o.keys, kpath);
	tk_outfile_open(&o.labels, lpath);
	struct st_doc d;
	st_init(&d);
	int nf = opt->nfiles ? opt->nfiles : 1;
	for (int i = 0; i < nf; i++) {
		struct tk_stream s;
		tk_stream_open(&s, opt->nfiles ? opt->files[i] : "-");
		while (tk_read_frame(&s, &d))
			npy_add(&o, &s, &d);
		tk_stream_close(&s);
	}
	if (o.rows == 0) { /* an empty stream: an empty float array */
		o.h.dtype = ST_F32;
		o.h.rank = 1;
	}
	o.h.shape[0] = o.rows;
	if (fseek(o.data.fp, 0, SEEK_SET) != 0 ||
	    npy_write_header(o.data.fp, &o.h, o.hsize) < 0)
		tk_write_failed(o.data.path);
	/* The three files as one set: no signal leaves a new OUT beside
	 * old keys; without labels, an old OUT.labels goes too. */
	o.labels.drop = o.nlabels == 0;
	struct tk_outfile *set[] = {&o.data, &o.keys, &o.labels};
	tk_outfile_commit_set(set, 3);
	st_free(&d);
	free(kpath);
	free(lpath);
}

/* Lines of a text file, for --keys and --labels. */
static char **read_lines(const char *path, long *n)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		die_io("cannot open %s:", path);
	char **lines = NULL, *line = NULL;
	size_t cap = 0;
	ssize_t len;
	*n = 0;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (len && line[len - 1] == '\r') /* a CRLF file's lines */
			line[--len] = 0;
		lines = xrealloc(lines, xmul(*n + 1, sizeof *lines));
		lines[(*n)++] = xstrdup(line);
	}
	free(line);
	if (ferror(fp))
		die_io("reading %s:", path);
	fclose(fp);
	return lines;
}

static void from_npy(const struct options *opt)
{
	FILE *fp = fopen(opt->from_npy, "rb");
	if (!fp)
		die_io("cannot open %s:", opt->from_npy);
	struct npy_header h;
	char err[256];
	if (npy_read_header(fp, &h, err, sizeof err) < 0)
		die_data("%s: %s", opt->from_npy, err);
	if (h.rank < 1)
		die_data("%s: a 0-d array has no rows", opt->from_npy);
	/* A short file is refused before any frame is written. */
	struct stat st;
	long here = ftell(fp);
	if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && here >= 0 &&
	    (uint64_t)st.st_size - (uint64_t)here < h.nbytes)
		die_data("%s: the shape needs %zu bytes of data, the file holds %lld",
			 opt->from_npy, h.nbytes, (long long)(st.st_size - here));
	long nk = 0, nl = 0;
	char **keys = opt->keys ? read_lines(opt->keys, &nk) : NULL;
	char **labels = opt->labels ? read_lines(opt->labels, &nl) : NULL;
	if (keys && nk != h.shape[0])
		die_data("%s has %ld keys for %lld rows", opt->keys, nk,
			 (long long)h.shape[0]);
	if (labels && nl != h.shape[0])
		die_data("%s has %ld labels for %lld rows", opt->labels, nl,
			 (long long)h.shape[0]);
	char *name = NULL;
	if (opt->tensor) {
		name = xstrdup(opt->tensor);
	} else { /* the file's stem: desc.npy -> "desc" */
		const char *b = strrchr(opt->from_npy, '/');
		name = xstrdup(b ? b + 1 : opt->from_npy);
		char *dot = strrchr(name, '.');
		if (dot && dot != name)
			*dot = 0;
	}
	/* no larger than the file, on a regular one */
	size_t row = h.shape[0] ? h.nbytes / (size_t)h.shape[0] : 0;
	void *buf = xmalloc(row);
	struct st_doc d;
	st_init(&d);
	struct tk_progress p;
	tk_progress_start(&p, "rows", (long)h.shape[0]);
	for (int64_t r = 0; r < h.shape[0]; r++) {
		if (fread(buf, 1, row, fp) != row)
			die_data("%s: truncated at row %lld", opt->from_npy,
				 (long long)r);
		st_clear(&d);
		if (keys)
			st_meta_set(&d, "key", keys[r]);
		else
			st_meta_setf(&d, "key", "%lld", (long long)r);
		if (labels && labels[r][0]) {
			long v = tk_parse_long("--labels", labels[r], -1, 1l << 40);
			st_meta_setf(&d, "label", "%ld", v);
		}
		st_add(&d, name, h.dtype, h.rank - 1, h.shape + 1, buf);
		tk_write_frame(&d);
		tk_progress_step(&p, 1);
	}
	tk_progress_end(&p);
	fclose(fp);
	st_free(&d);
	free(buf);
	free(name);
	for (long i = 0; i < nk; i++)
		free(keys[i]);
	for (long i = 0; i < nl; i++)
		free(labels[i]);
	free(keys);
	free(labels);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	if (o.to_npy) {
		to_npy(&o);
		return 0;
	}
	if (!o.info)
		tk_binary_stdout();
	if (o.from_npy) {
		from_npy(&o);
		tk_close_stdout();
		return 0;
	}
	struct st_doc d;
	st_init(&d);
	struct tk_progress p;
	tk_progress_start(&p, "frames", 0);
	int nf = o.nfiles ? o.nfiles : 1;
	for (int i = 0; i < nf; i++) {
		struct tk_stream s;
		tk_stream_open(&s, o.nfiles ? o.files[i] : "-");
		while (tk_read_frame(&s, &d)) {
			if (o.info)
				print_info(p.count, &d);
			else
				tk_write_frame(&d);
			tk_progress_step(&p, 1);
		}
		tk_stream_close(&s);
	}
	tk_progress_end(&p);
	st_free(&d);
	tk_close_stdout();
	return 0;
}
