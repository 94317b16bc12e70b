/* tk-augment - the reference's training (or validation) transforms on
 * image frames, reproducible from seed, epoch and frame index. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/augment.h"
#include "common/pool.h"
#include "common/stream.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-augment [options] [FILE...] < images.bin > augmented.bin\n"
    "RandomResizedCrop(size, scale 0.2-1, ratio 3/4-4/3, bilinear), horizontal\n"
    "flip (p 0.5), ColorJitter(0.4, 0.4, 0.2, 0.1) in a random order (p 0.8),\n"
    "as torchvision does on PIL images.  See tk-augment(1).\n"
    "  -s, --size N        output N x N (default 512)\n"
    "      --val           validation instead: resize the shorter side to\n"
    "                      int(N * 8 / 7) (bicubic), centre crop N x N\n"
    "      --seed S        random seed (default 0)\n"
    "      --epoch E       epoch, mixed into the seed (default 0)\n"
    "  -j, --jobs N        N threads (output order and values are kept)\n"
    "      --params        record the drawn parameters in metadata 'aug'\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum { OPT_VAL = TK_OPT_FIRST_TOOL, OPT_SEED, OPT_EPOCH, OPT_PARAMS };

struct options {
	int size, val, jobs, params;
	unsigned long long seed, epoch;
	char **files;
	int nfiles;
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"size", required_argument, 0, 's'},
	    {"val", no_argument, 0, OPT_VAL},
	    {"seed", required_argument, 0, OPT_SEED},
	    {"epoch", required_argument, 0, OPT_EPOCH},
	    {"jobs", required_argument, 0, 'j'},
	    {"params", no_argument, 0, OPT_PARAMS},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c;
	memset(o, 0, sizeof *o);
	o->size = 512;
	o->jobs = 1;
	while ((c = tk_getopt(argc, argv, "s:j:qh", longopts)) != -1) {
		switch (c) {
		case 's': o->size = (int)tk_parse_long("--size", optarg, 1, 1 << 16); break;
		case OPT_VAL: o->val = 1; break;
		case OPT_SEED: o->seed = (unsigned long long)tk_parse_long("--seed", optarg, 0, 1L << 62); break;
		case OPT_EPOCH: o->epoch = (unsigned long long)tk_parse_long("--epoch", optarg, 0, 1L << 40); break;
		case 'j': o->jobs = (int)tk_parse_long("--jobs", optarg, 1, 1024); break;
		case OPT_PARAMS: o->params = 1; break;
		default: tk_common_option(c, usage);
		}
	}
	o->files = argv + optind;
	o->nfiles = argc - optind;
}

struct job {
	struct st_doc in;  /* the input frame; its metadata alone once done */
	long index;
	struct tk_image out;
	char aug[256];
};

/* Augmented frames held ahead of the reader, at most: a batch of the
 * reference's (32 a GPU) and more, so that a reader that reads in bursts
 * (tk-train on a GPU reads while the device runs the backward pass, not
 * during the forward) finds its next batch made meanwhile; 64 crops of
 * 512x512 are 48 MiB. */
enum { AHEAD = 64 };

static void work(void *arg, void *ctx)
{
	struct job *j = arg;
	const struct st_tensor *t = st_find(&j->in, "image");
	struct tk_image im = {(int)t->shape[1], (int)t->shape[0], 3,
			      (size_t)t->shape[1] * 3, t->data, NULL};
	const struct options *o = ctx;
	if (o->val)
		tk_augment_val(&j->out, &im, o->size, j->aug, sizeof j->aug);
	else
		tk_augment_train(&j->out, &im, o->size, o->seed, o->epoch,
				 (uint64_t)j->index, j->aug, sizeof j->aug);
	/* the input's pixels are not needed while the crop waits its turn */
	struct st_doc meta;
	st_init(&meta);
	st_meta_copy(&meta, &j->in);
	st_free(&j->in);
	j->in = meta;
}

static void emit(struct job *j, const struct options *o, struct st_doc *d)
{
	int64_t shape[3] = {j->out.h, j->out.w, 3};
	st_clear(d);
	st_meta_copy(d, &j->in);
	if (o->params)
		st_meta_set(d, "aug", j->aug);
	st_add(d, "image", ST_U8, 3, shape, j->out.px);
	tk_write_frame(d);
	st_free(&j->in);
	tk_image_free(&j->out);
	free(j);
}

/* The place in the epoch's stream of the frame d, pos-th of the input:
 * its 'index' metadata where it has one (tk-decode --shard's frames, so
 * that a shard's frames draw what they draw in the whole stream), else
 * pos; -1 for an index that is not an integer >= 0. */
static long frame_index(const struct st_doc *d, long pos)
{
	long i;
	int r = tk_frame_index(d, &i);
	return r > 0 ? i : r == 0 ? pos : -1;
}

/* Write what is in flight, then stop on a bad frame. */
static void drain(struct tk_pool *p, const struct options *o, struct st_doc *d)
{
	struct job *j;
	while ((j = tk_pool_get(p)))
		emit(j, o, d);
	tk_pool_free(p);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	tk_binary_stdout();
	struct st_doc out;
	st_init(&out);
	/* one job: the thread that writes does the work, ahead of nothing */
	int depth = o.jobs == 1 ? 3 : 3 * o.jobs > AHEAD ? 3 * o.jobs : AHEAD;
	struct tk_pool *pool = tk_pool_new(o.jobs, depth, work, &o);
	struct tk_progress p;
	tk_progress_start(&p, "images", 0);
	long index = 0;
	int nf = o.nfiles ? o.nfiles : 1;
	for (int f = 0; f < nf; f++) {
		struct tk_stream s;
		tk_stream_open(&s, o.nfiles ? o.files[f] : "-");
		for (;;) {
			struct job *j = xcalloc(1, sizeof *j), *done;
			st_init(&j->in);
			int r = tk_stream_read(&s, &j->in);
			if (r <= 0) {
				if (r < 0) {
					drain(pool, &o, &out);
					tk_die(s.io_error ? TK_EXIT_IO : TK_EXIT_DATA,
					       "%s", s.err);
				}
				st_free(&j->in);
				free(j);
				break;
			}
			const struct st_tensor *t = st_find(&j->in, "image");
			if (!t || t->dtype != ST_U8 || t->rank != 3 ||
			    t->shape[2] != 3 || !t->shape[0] || !t->shape[1]) {
				drain(pool, &o, &out);
				tk_frame_die(&s, &j->in,
					     "no tensor 'image' of u8 [H,W,3]");
			}
			j->index = frame_index(&j->in, index++);
			if (j->index < 0) {
				drain(pool, &o, &out);
				tk_frame_die(&s, &j->in, "metadata 'index' '%s' is not "
					     "an integer >= 0", st_meta_get(&j->in, "index"));
			}
			if ((done = tk_pool_put(pool, j))) {
				emit(done, &o, &out);
				tk_progress_step(&p, 1);
			}
		}
		tk_stream_close(&s);
	}
	struct job *j;
	while ((j = tk_pool_get(pool))) {
		emit(j, &o, &out);
		tk_progress_step(&p, 1);
	}
	tk_pool_free(pool);
	tk_progress_end(&p);
	st_free(&out);
	tk_close_stdout();
	return 0;
}
