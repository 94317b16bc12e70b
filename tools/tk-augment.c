/* tk-augment - the reference's training (or validation) transforms on
 * image frames, reproducible from seed, epoch and frame index. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/image.h"
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
	while ((c = getopt_long(argc, argv, "s:j:qh", longopts, NULL)) != -1) {
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

/* splitmix64: a counter-based generator, so that frame i's numbers depend
 * on (seed, epoch, i) only, whatever the thread. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static uint64_t next64(struct rng *r)
{
	return mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static double uniform(struct rng *r, double a, double b)
{
	return a + (b - a) * ((double)(next64(r) >> 11) * 0x1.0p-53);
}

/* 0 <= result < n, unbiased. */
static long randint(struct rng *r, long n)
{
	uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n, x;
	while ((x = next64(r)) >= lim)
		;
	return (long)(x % (uint64_t)n);
}

/* RandomResizedCrop.get_params(scale 0.2-1, ratio 3/4-4/3): the crop box
 * x0, y0, w, h. */
static void crop_params(struct rng *r, int W, int H, int box[4])
{
	double area = (double)W * H, lo = log(3.0 / 4), hi = log(4.0 / 3);
	for (int attempt = 0; attempt < 10; attempt++) {
		double target = area * uniform(r, 0.2, 1.0);
		double ratio = exp(uniform(r, lo, hi));
		int w = (int)nearbyint(sqrt(target * ratio));
		int h = (int)nearbyint(sqrt(target / ratio));
		if (0 < w && w <= W && 0 < h && h <= H) {
			box[1] = (int)randint(r, H - h + 1);
			box[0] = (int)randint(r, W - w + 1);
			box[2] = w;
			box[3] = h;
			return;
		}
	}
	double in_ratio = (double)W / H;
	int w = W, h = H;
	if (in_ratio < 3.0 / 4)
		h = (int)nearbyint(w / (3.0 / 4));
	else if (in_ratio > 4.0 / 3)
		w = (int)nearbyint(h * (4.0 / 3));
	box[0] = (W - w) / 2;
	box[1] = (H - h) / 2;
	box[2] = w;
	box[3] = h;
}

struct job {
	struct st_doc in;
	long index;
	struct tk_image out;
	char aug[256];
};

static void train(struct job *j, const struct options *o,
		  const struct tk_image *im)
{
	struct rng r = {mix64(mix64(mix64(o->seed) ^ o->epoch) ^ (uint64_t)j->index)};
	int box[4];
	crop_params(&r, im->w, im->h, box);
	struct tk_image v = tk_image_view(im, box[0], box[1], box[2], box[3]);
	tk_resize(&j->out, &v, o->size, o->size, TK_BILINEAR, NULL, 0);
	int flip = uniform(&r, 0, 1) < 0.5;
	if (flip)
		tk_flip_h(&j->out);
	int n = snprintf(j->aug, sizeof j->aug, "crop=%d,%d,%d,%d flip=%d",
			 box[0], box[1], box[0] + box[2], box[1] + box[3], flip);
	if (uniform(&r, 0, 1) >= 0.8) { /* RandomApply(p=0.8) */
		snprintf(j->aug + n, sizeof j->aug - n, " jitter=none");
		return;
	}
	int order[4] = {0, 1, 2, 3};
	for (int i = 3; i > 0; i--) {
		int k = (int)randint(&r, i + 1), t = order[i];
		order[i] = order[k];
		order[k] = t;
	}
	double f[4] = {uniform(&r, 0.6, 1.4), uniform(&r, 0.6, 1.4),
		       uniform(&r, 0.8, 1.2), uniform(&r, -0.1, 0.1)};
	char names[5] = {0};
	for (int i = 0; i < 4; i++) {
		names[i] = "bcsh"[order[i]];
		switch (order[i]) {
		case 0: tk_adjust_brightness(&j->out, f[0]); break;
		case 1: tk_adjust_contrast(&j->out, f[1]); break;
		case 2: tk_adjust_saturation(&j->out, f[2]); break;
		case 3: tk_adjust_hue(&j->out, f[3]); break;
		}
	}
	snprintf(j->aug + n, sizeof j->aug - n,
		 " jitter=%s b=%.17g c=%.17g s=%.17g h=%.17g", names, f[0],
		 f[1], f[2], f[3]);
}

/* Resize(int(size * 8 / 7), BICUBIC) of the shorter side, CenterCrop. */
static void val(struct job *j, const struct options *o,
		const struct tk_image *im)
{
	int S = o->size, S8 = (int)(S * (8.0 / 7));
	int W = im->w, H = im->h, sh = W <= H ? W : H, lg = W <= H ? H : W;
	int nl = (int)((double)((long long)S8 * lg) / sh);
	int nw = W <= H ? S8 : nl, nh = W <= H ? nl : S8;
	struct tk_image r;
	tk_resize(&r, im, nw, nh, TK_BICUBIC, NULL, 0);
	int top = (int)nearbyint((nh - S) / 2.0), left = (int)nearbyint((nw - S) / 2.0);
	struct tk_image v = tk_image_view(&r, left, top, S, S);
	tk_resize(&j->out, &v, S, S, TK_BICUBIC, NULL, 0); /* a copy */
	tk_image_free(&r);
	snprintf(j->aug, sizeof j->aug, "val resize=%d,%d crop=%d,%d,%d,%d",
		 nw, nh, left, top, left + S, top + S);
}

static void work(void *arg, void *ctx)
{
	struct job *j = arg;
	const struct st_tensor *t = st_find(&j->in, "image");
	struct tk_image im = {(int)t->shape[1], (int)t->shape[0], 3,
			      (size_t)t->shape[1] * 3, t->data, NULL};
	if (((const struct options *)ctx)->val)
		val(j, ctx, &im);
	else
		train(j, ctx, &im);
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
	struct tk_pool *pool = tk_pool_new(o.jobs, 3 * o.jobs, work, &o);
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
			j->index = index++;
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
