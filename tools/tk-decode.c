/* tk-decode - JPEG and PNG files, folders, archives or tk-list lines to
 * image frames, preprocessed as the reference's PIL loader does. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/decode.h"
#include "common/inputs.h"
#include "common/labels.h"
#include "common/load.h"
#include "common/pool.h"
#include "common/stream.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-decode [options] [FILE|FOLDER|ARCHIVE|-]... > images.bin\n"
    "Without arguments, reads tk-list lines (path<TAB>key<TAB>label<TAB>bbox)\n"
    "or bare paths from standard input.  See tk-decode(1).\n"
    "  -s, --max-size N    shrink so the longer side is at most N, as PIL's\n"
    "                      thumbnail() after convert(); a bbox is cropped\n"
    "                      first and shrunk by the full image's factor\n"
    "      --draft         let libjpeg decode at 1/2, 1/4, 1/8 size first, as\n"
    "                      thumbnail() on an opened JPEG (faster, not the\n"
    "                      reference's pixels)\n"
    "  -j, --jobs N        decode in N threads (output order is kept)\n"
    "      --shard I/N     only inputs I, I+N, I+2N, ... (I from 0)\n"
    "      --from K        pass over inputs 0 to K-1 unread (a resumed epoch)\n"
    "      --labels FILE   only images whose key is in FILE (tk-list lines),\n"
    "                      with its label and bbox\n"
    "      --require-all   with --labels: every key of FILE must be met\n"
    "      --skip-bad      warn about bad inputs and go on (default: stop)\n"
    "      --damaged       decode damaged JPEGs (cut short, corrupt data) and\n"
    "                      PNGs with bad IDAT checksums as the reference's\n"
    "                      loader does (Pillow's LOAD_TRUNCATED_IMAGES),\n"
    "                      warning about each\n"
    "      --max-pixels N  refuse larger images (default 178956970, PIL's)\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum {
	OPT_DRAFT = TK_OPT_FIRST_TOOL,
	OPT_SHARD,
	OPT_FROM,
	OPT_SKIP_BAD,
	OPT_MAX_PIXELS,
	OPT_LABELS,
	OPT_REQUIRE_ALL,
	OPT_DAMAGED
};

struct options {
	struct tk_load_opts load;
	int jobs, shard, nshards, skip_bad, require_all;
	long from;
	const char *labels;
	char **args;
	int nargs;
};

static void parse_shard(struct options *o, const char *s)
{
	char *end;
	long i = strtol(s, &end, 10), n = 0;
	if (end != s && *end == '/')
		n = strtol(end + 1, &end, 10);
	if (*end || n < 1 || n > 1000000 || i < 0 || i >= n)
		die_usage("--shard: '%s' is not I/N with 0 <= I < N", s);
	o->shard = (int)i;
	o->nshards = (int)n;
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"max-size", required_argument, 0, 's'},
	    {"draft", no_argument, 0, OPT_DRAFT},
	    {"jobs", required_argument, 0, 'j'},
	    {"shard", required_argument, 0, OPT_SHARD},
	    {"from", required_argument, 0, OPT_FROM},
	    {"skip-bad", no_argument, 0, OPT_SKIP_BAD},
	    {"max-pixels", required_argument, 0, OPT_MAX_PIXELS},
	    {"labels", required_argument, 0, OPT_LABELS},
	    {"require-all", no_argument, 0, OPT_REQUIRE_ALL},
	    {"damaged", no_argument, 0, OPT_DAMAGED},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c;
	memset(o, 0, sizeof *o);
	o->jobs = 1;
	o->nshards = 1;
	o->load.max_pixels = TK_MAX_PIXELS;
	while ((c = tk_getopt(argc, argv, "s:j:qh", longopts)) != -1) {
		switch (c) {
		case 's': o->load.max_size = (int)tk_parse_long("--max-size", optarg, 1, 1 << 20); break;
		case OPT_DRAFT: o->load.draft = 1; break;
		case 'j': o->jobs = (int)tk_parse_long("--jobs", optarg, 1, 1024); break;
		case OPT_SHARD: parse_shard(o, optarg); break;
		case OPT_FROM: o->from = tk_parse_long("--from", optarg, 0, LONG_MAX); break;
		case OPT_SKIP_BAD: o->skip_bad = 1; break;
		case OPT_MAX_PIXELS: o->load.max_pixels = tk_parse_long("--max-pixels", optarg, 1, 1L << 40); break;
		case OPT_LABELS: o->labels = optarg; break;
		case OPT_REQUIRE_ALL: o->require_all = 1; break;
		case OPT_DAMAGED: o->load.damaged_ok = 1; break;
		default: tk_common_option(c, usage);
		}
	}
	if (o->load.draft && !o->load.max_size)
		die_usage("--draft goes with --max-size");
	if (o->require_all && !o->labels)
		die_usage("--require-all goes with --labels");
	o->args = argv + optind;
	o->nargs = argc - optind;
	int list = !o->nargs;
	for (int i = 0; i < o->nargs; i++)
		list |= strcmp(o->args[i], "-") == 0;
	if (o->labels && list)
		die_usage("--labels goes with files, folders and archives, not "
			  "a list on standard input");
	if (!o->nargs && isatty(STDIN_FILENO))
		die_usage("no inputs: name files, folders or archives, or pipe "
			  "a list into standard input");
}

struct job {
	struct tk_input in;
	struct tk_loaded out;
	char err[300];
	int failed;
};

static void work(void *arg, void *ctx)
{
	struct job *j = arg;
	const struct options *o = ctx;
	struct tk_input *in = &j->in;
	if (in->err) {
		snprintf(j->err, sizeof j->err, "%s", in->err);
	} else if (tk_input_read(in, j->err, sizeof j->err) == 0) {
		j->failed = tk_load(in->data, in->len,
				    in->has_bbox ? in->bbox : NULL, &o->load,
				    &j->out, j->err, sizeof j->err) < 0;
		free(in->data);
		in->data = NULL;
		return;
	}
	j->failed = 1;
}

static void job_free(struct job *j)
{
	tk_input_free(&j->in);
	tk_image_free(&j->out.im);
	free(j);
}

struct writer {
	const struct options *o;
	struct tk_pool *pool;
	struct st_doc doc;
	struct tk_progress progress;
	long skipped, damaged;
};

/* src, cut in the middle when it is too long for a message (a path
 * deep in a tree): the reason after it must not be lost. */
static const char *shown(const char *src, char *buf, size_t len)
{
	size_t n = strlen(src);
	if (n < len)
		return src;
	size_t half = (len - 4) / 2, head = half, tail = n - half;
	while (head && (src[head] & 0xc0) == 0x80) /* whole UTF-8 characters */
		head--;
	while ((src[tail] & 0xc0) == 0x80)
		tail++;
	snprintf(buf, len, "%.*s...%s", (int)head, src, src + tail);
	return buf;
}

static void emit(struct writer *w, struct job *j)
{
	char path[1024];
	if (j->failed && !w->o->skip_bad) {
		/* Let the threads stop before saying so. */
		char msg[sizeof path + sizeof j->err + 2];
		snprintf(msg, sizeof msg, "%s: %s",
			 shown(j->in.src, path, sizeof path), j->err);
		job_free(j);
		tk_pool_cancel(w->pool);
		while ((j = tk_pool_get(w->pool)))
			job_free(j);
		tk_pool_free(w->pool);
		die_data("%s", msg);
	}
	if (j->failed) {
		tk_warn("%s: %s (skipped)", shown(j->in.src, path, sizeof path),
			j->err);
		w->skipped++;
	} else {
		const struct tk_loaded *r = &j->out;
		struct st_doc *d = &w->doc;
		int64_t shape[3] = {r->im.h, r->im.w, 3};
		st_clear(d);
		st_meta_set(d, "key", j->in.key);
		/* a shard's frames, and those after --from, carry their
		 * place in the whole stream, for tk-augment's random
		 * numbers */
		if (w->o->nshards > 1 || w->o->from > 0)
			st_meta_setf(d, "index", "%ld", j->in.index);
		if (j->in.label >= 0)
			st_meta_setf(d, "label", "%ld", j->in.label);
		st_meta_set(d, "src", j->in.src);
		st_meta_setf(d, "orig", "%d,%d", r->orig_w, r->orig_h);
		st_meta_setf(d, "crop", "%d,%d,%d,%d", r->crop[0], r->crop[1],
			     r->crop[2], r->crop[3]);
		if (r->damage[0]) {
			st_meta_set(d, "damaged", r->damage);
			tk_warn("%s: %s (decoded as Pillow's LOAD_TRUNCATED_IMAGES "
				"does)", j->in.src, r->damage);
			w->damaged++;
		}
		st_add(d, "image", ST_U8, 3, shape, r->im.px);
		tk_write_frame(d);
		tk_progress_step(&w->progress, 1);
	}
	job_free(j);
}

/* --labels: keep the images whose key is in the file, with its label
 * and bbox. */
static int labelled(void *ctx, struct tk_input *in)
{
	return tk_labels_find(ctx, in->key, &in->label, &in->has_bbox, in->bbox);
}

/* Keys of the --labels file that no input had. */
static void check_unseen(const struct options *o, const struct tk_labels *t)
{
	const char *first;
	size_t n = tk_labels_unseen(t, &first);
	if (!n)
		return;
	char msg[400];
	snprintf(msg, sizeof msg, "%s: %zu of its %zu keys were not among the "
		 "inputs (the first: '%.100s')", o->labels, n,
		 tk_labels_count(t), first);
	if (o->require_all)
		die_data("%s", msg);
	tk_warn("%s", msg);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	struct tk_labels *labels = o.labels ? tk_labels_read(o.labels) : NULL;
	tk_binary_stdout();
	struct writer w = {.o = &o};
	st_init(&w.doc);
	tk_progress_start(&w.progress, "images", 0);
	w.pool = tk_pool_new(o.jobs, 3 * o.jobs, work, &o);
	struct tk_inputs *inputs = tk_inputs_new(o.args, o.nargs, o.shard, o.nshards);
	tk_inputs_from(inputs, o.from);
	if (labels)
		tk_inputs_filter(inputs, labelled, labels);
	for (;;) {
		struct job *j = xcalloc(1, sizeof *j);
		if (!tk_inputs_next(inputs, &j->in)) {
			free(j);
			break;
		}
		if ((j = tk_pool_put(w.pool, j)))
			emit(&w, j);
	}
	struct job *j;
	while ((j = tk_pool_get(w.pool)))
		emit(&w, j);
	tk_pool_free(w.pool);
	tk_inputs_free(inputs);
	tk_progress_end(&w.progress);
	if (w.skipped)
		tk_note("skipped %ld bad input%s", w.skipped,
			w.skipped == 1 ? "" : "s");
	if (w.damaged)
		tk_note("decoded %ld damaged image%s", w.damaged,
			w.damaged == 1 ? "" : "s");
	if (labels)
		check_unseen(&o, labels);
	tk_labels_free(labels);
	st_free(&w.doc);
	tk_close_stdout();
	return 0;
}
