/* tk-extract - local features of images: backbone and LFSA of a Token
 * model, at one or more scales. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devnet.h"
#include "common/extract.h"
#include "common/infer.h"
#include "common/stream.h"
#include "common/threads.h"
#include "common/tk.h"
#include "kernels/dispatch.h"
#include "kernels/image.h"

static const char usage[] =
    "usage: tk-extract [--model FILE] [--scales LIST] [--threads N]\n"
    "                  [--device DEV] [--precision P] [--check-finite]\n"
    "                  [FILE...]\n"
    "Image frames in (U8 [H,W,3], or F32 [3,H,W] already normalised), one\n"
    "'local' frame F32 [h*w, D] per image and scale out.  See tk-extract(1).\n"
    "  -m, --model FILE    weights (default: $TK_MODEL)\n"
    "  -s, --scales LIST   comma-separated scales (default 1,1.41421356,0.70710678:\n"
    "                      1, sqrt 2, sqrt 1/2, as the reference's evaluation)\n"
    "  -j, --threads N     threads (default: OMP_NUM_THREADS, else all cores)\n"
    "      --device DEV    cpu (default), cuda or cuda:N\n"
    "      --precision P   on the GPU: fp32 (default), tf32 or bf16\n"
    "      --check-finite  fail on NaN or Inf in an input or a layer's output\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      progress and a summary even when stderr is not a\n"
    "                      terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum { OPT_CHECK = TK_OPT_FIRST_TOOL, OPT_DEVICE, OPT_PRECISION };

#define MAX_SCALES 16

struct options {
	const char *model;
	double scale[MAX_SCALES];
	const char *label[MAX_SCALES];
	int nscales, threads, check;
	char **files;
	int nfiles;
	char *scales_copy;
	struct tk_dev dv;
};

static void parse_scales(struct options *o, const char *list)
{
	o->scales_copy = xstrdup(list);
	o->nscales = 0;
	char *save = NULL;
	for (char *s = strtok_r(o->scales_copy, ",", &save); s;
	     s = strtok_r(NULL, ",", &save)) {
		if (o->nscales == MAX_SCALES)
			die_usage("--scales: more than %d scales", MAX_SCALES);
		double v = tk_parse_double("--scales", s);
		if (!(v > 0) || !isfinite(v) || v > 16)
			die_usage("--scales: '%s' is not a scale in (0, 16]", s);
		o->label[o->nscales] = s;
		o->scale[o->nscales++] = v;
	}
	if (o->nscales == 0)
		die_usage("--scales: no scale given");
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"model", required_argument, 0, 'm'},
	    {"scales", required_argument, 0, 's'},
	    {"threads", required_argument, 0, 'j'},
	    {"check-finite", no_argument, 0, OPT_CHECK},
	    {"device", required_argument, 0, OPT_DEVICE},
	    {"precision", required_argument, 0, OPT_PRECISION},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	const char *device = NULL, *precision = NULL;
	/* The reference's scales, exactly: 1, 2**(1/2), (1/2)**(1/2). */
	o->nscales = 3;
	o->scale[0] = 1.0, o->label[0] = "1";
	o->scale[1] = M_SQRT2, o->label[1] = "1.41421356";
	o->scale[2] = M_SQRT1_2, o->label[2] = "0.70710678";
	int c;
	while ((c = tk_getopt(argc, argv, "m:s:j:qh", longopts)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 's': parse_scales(o, optarg); break;
		case 'j': o->threads = (int)tk_parse_long("--threads", optarg, 1, 1024); break;
		case OPT_CHECK: o->check = 1; break;
		case OPT_DEVICE: device = optarg; break;
		case OPT_PRECISION: precision = optarg; break;
		default: tk_common_option(c, usage);
		}
	}
	char err[256];
	if (tk_dev_parse(&o->dv, device, precision, err, sizeof err) < 0)
		die_usage("%s", err);
	o->model = tk_model_path(o->model);
	o->files = argv + optind;
	o->nfiles = argc - optind;
}

/* The frame's image tensor, checked: U8 [H, W, 3] (*u8 = 1) or F32
 * [3, H, W] already normalised, and not empty nor too large at any of
 * the scales.  NULL with the reason in err when it is not. */
static const struct st_tensor *frame_image(const struct options *o,
					   const struct st_doc *d, int *H,
					   int *W, int *u8, char *err,
					   size_t errlen)
{
	struct st_tensor *t = st_find(d, "image");
	if (!t) {
		snprintf(err, errlen, "no tensor 'image'");
		return NULL;
	}
	int64_t h, w;
	if (t->dtype == ST_U8 && t->rank == 3 && t->shape[2] == 3) {
		h = t->shape[0];
		w = t->shape[1];
	} else if (t->dtype == ST_F32 && t->rank == 3 && t->shape[0] == 3) {
		h = t->shape[1];
		w = t->shape[2];
	} else {
		char shape[96] = "";
		for (int i = 0; i < t->rank; i++)
			snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
				 "%s%lld", i ? "," : "", (long long)t->shape[i]);
		snprintf(err, errlen,
			 "tensor 'image' is %s [%s]; U8 [H,W,3] or F32 [3,H,W] "
			 "expected",
			 st_dtype_name(t->dtype), shape);
		return NULL;
	}
	if (h < 1 || w < 1) {
		snprintf(err, errlen, "tensor 'image' is empty");
		return NULL;
	}
	if (h > TK_MAX_PIXELS || w > TK_MAX_PIXELS || h * w > TK_MAX_PIXELS) {
		snprintf(err, errlen, "a %lldx%lld image is too large (at most %d pixels)",
			 (long long)w, (long long)h, TK_MAX_PIXELS);
		return NULL;
	}
	*H = (int)h;
	*W = (int)w;
	*u8 = t->dtype == ST_U8;
	for (int k = 0; k < o->nscales; k++) {
		char why[256];
		if (tk_extract_check(*H, *W, o->scale[k], why, sizeof why) < 0) {
			snprintf(err, errlen, "scale %s: %s", o->label[k], why);
			return NULL;
		}
	}
	size_t n = (size_t)3 * *H * *W, at;
	if (!*u8 && o->check && !tk_all_finite(t->data, n, &at)) {
		snprintf(err, errlen, "tensor 'image' holds %g at element %zu",
			 ((const float *)t->data)[at], at);
		return NULL;
	}
	return t;
}

/* The frame's image as a normalised [3, H, W] float tensor. */
static const float *input_image(const struct options *o,
				const struct tk_stream *s,
				const struct st_doc *d, float **buf,
				size_t *cap, int *H, int *W)
{
	int u8;
	char err[512];
	const struct st_tensor *t = frame_image(o, d, H, W, &u8, err, sizeof err);
	if (!t)
		tk_frame_die(s, d, "%s", err);
	if (!u8)
		return t->data;
	size_t n = (size_t)3 * *H * *W;
	if (n > *cap) {
		free(*buf);
		*buf = xmalloc(xmul(n, sizeof **buf));
		*cap = n;
	}
	image_normalize_forward(*buf, t->data, imagenet_mean, imagenet_std, *H, *W);
	return *buf;
}

/* An image's frames on their way out of the device: the local features
 * land in pinned host memory; the frames are written once the image's
 * fence is passed, while the device works on the next image. */
struct pending {
	struct st_doc out[MAX_SCALES];
	float *local[MAX_SCALES];
	size_t cap[MAX_SCALES]; /* floats */
	int n;
};

static void write_pending(const struct tk_dev *dv, struct pending *q, int slot)
{
	dev_fence_wait(dv, slot);
	for (int k = 0; k < q->n; k++)
		tk_write_frame(&q->out[k]);
	q->n = 0;
}

/* Before an error at the image of slot: the image before it, whole, is
 * written out. */
static void write_previous(const struct tk_dev *dv, struct pending *q, int slot)
{
	if (q[slot ^ 1].n)
		write_pending(dv, &q[slot ^ 1], slot ^ 1);
}

/* --device cuda (or TK_DEVPATH=1 on the CPU, the tests' way through this
 * code): the network of common/devnet.c, one image ahead of the writes. */
static void extract_device(struct options *o, struct tk_extractor *e)
{
	const struct tk_dev *dv = &o->dv;
	struct tk_devnet net;
	tk_devnet_init(&net, dv, &e->backbone, &e->lfsa, NULL);
	/* The host's copy of the weights is not read again. */
	static const char *const none[] = {NULL};
	tk_model_release(&e->model, none);
	struct pending q[2];
	memset(q, 0, sizeof q);
	for (int j = 0; j < 2; j++)
		for (int k = 0; k < MAX_SCALES; k++)
			st_init(&q[j].out[k]);
	struct st_doc d;
	st_init(&d);
	double flops = 0, first = 0;
	struct tk_progress p;
	tk_progress_start(&p, "images", 0);
	int nf = o->nfiles ? o->nfiles : 1, slot = 0;
	for (int i = 0; i < nf; i++) {
		struct tk_stream s;
		/* The next file may not open: the images before are out
		 * first, at the cost of one image's overlap a file. */
		if (i > 0)
			write_previous(dv, q, slot);
		tk_stream_open(&s, o->nfiles ? o->files[i] : "-");
		int r;
		while ((r = tk_stream_read(&s, &d)) > 0) {
			int H, W, u8;
			char err[512];
			const struct st_tensor *t = frame_image(o, &d, &H, &W, &u8,
								err, sizeof err);
			if (!t) {
				write_previous(dv, q, slot);
				tk_frame_die(&s, &d, "%s", err);
			}
			tk_devnet_image(&net, t->data, u8, H, W);
			struct pending *c = &q[slot];
			for (int k = 0; k < o->nscales; k++) {
				int gh, gw;
				if (tk_devnet_grid(&net, H, W, o->scale[k], &gh, &gw, err,
						   sizeof err) < 0) {
					write_previous(dv, q, slot);
					tk_frame_die(&s, &d, "scale %s: %s", o->label[k], err);
				}
				size_t need = (size_t)gh * gw * net.dim;
				if (need > c->cap[k]) {
					dev_host_free(dv, c->local[k]);
					c->cap[k] = need + need / 4;
					c->local[k] = dev_host_alloc(dv, c->cap[k] * sizeof(float));
				}
				if (tk_devnet_extract(&net, o->scale[k], c->local[k], o->check,
						      err, sizeof err) < 0) {
					write_previous(dv, q, slot);
					tk_frame_die(&s, &d, "scale %s: %s", o->label[k], err);
				}
				flops += net.flops;
				struct st_doc *out = &c->out[k];
				st_clear(out);
				st_meta_copy(out, &d);
				st_meta_set(out, "scale", o->label[k]);
				st_meta_setf(out, "grid", "%d,%d", gh, gw);
				st_add(out, "local", ST_F32, 2,
				       (int64_t[]){(int64_t)gh * gw, net.dim}, c->local[k]);
			}
			c->n = o->nscales;
			dev_fence(dv, slot);
			slot ^= 1;
			if (q[slot].n) {
				write_pending(dv, &q[slot], slot);
				if (p.count == 1) {
					first = tk_now();
					/* the profile without the first image's
					 * algorithm searches and kernel loading */
					dev_profile_restart(dv);
				}
			}
			tk_progress_step(&p, 1);
		}
		if (r < 0) {
			write_previous(dv, q, slot);
			tk_die(s.io_error ? TK_EXIT_IO : TK_EXIT_DATA, "%s", s.err);
		}
		tk_stream_close(&s);
	}
	write_pending(dv, &q[slot ^ 1], slot ^ 1);
	double end = tk_now(), dt = end - p.start;
	int summary = p.on && p.count;
	tk_progress_end(&p);
	if (summary)
		tk_note("%ld images, %.3f s/image (%.2f images/s after the first), "
			"%.1f GFLOP/s; %s",
			p.count, dt / p.count,
			p.count > 1 && end > first ? (p.count - 1) / (end - first) : 0.0,
			flops / dt / 1e9, tk_dev_describe(dv));
	dev_profile_report(dv);
	st_free(&d);
	for (int j = 0; j < 2; j++)
		for (int k = 0; k < MAX_SCALES; k++) {
			st_free(&q[j].out[k]);
			dev_host_free(dv, q[j].local[k]);
		}
	tk_devnet_free(&net);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	tk_binary_stdout();
	tk_threads_set(o.threads);
	struct tk_extractor e;
	tk_extractor_init(&e, o.model);
	const char *env = getenv("TK_DEVPATH");
	if (tk_dev_is_cuda(&o.dv) || (env && !strcmp(env, "1"))) {
		tk_dev_open(&o.dv);
		extract_device(&o, &e);
		tk_close_stdout();
		tk_dev_close(&o.dv);
		free(o.scales_copy);
		tk_extractor_free(&e);
		return 0;
	}
	/* An image's frames are written once every scale is done: a failure
	 * (--check-finite) never leaves some of them written. */
	struct st_doc d, out[MAX_SCALES];
	float *kept[MAX_SCALES] = {0};
	size_t kept_cap[MAX_SCALES] = {0};
	st_init(&d);
	for (int k = 0; k < MAX_SCALES; k++)
		st_init(&out[k]);
	float *img = NULL;
	size_t cap = 0;
	double flops = 0;
	struct tk_progress p;
	tk_progress_start(&p, "images", 0);
	int nf = o.nfiles ? o.nfiles : 1;
	for (int i = 0; i < nf; i++) {
		struct tk_stream s;
		tk_stream_open(&s, o.nfiles ? o.files[i] : "-");
		while (tk_read_frame(&s, &d)) {
			int H, W;
			const float *x = input_image(&o, &s, &d, &img, &cap, &H, &W);
			for (int k = 0; k < o.nscales; k++) {
				int gh, gw;
				char err[512];
				const float *local = tk_extract(&e, x, H, W, o.scale[k], &gh,
								&gw, o.check, err, sizeof err);
				if (!local)
					tk_frame_die(&s, &d, "scale %s: %s", o.label[k], err);
				flops += e.flops;
				size_t n = (size_t)gh * gw * e.lfsa.dim;
				if (k < o.nscales - 1) { /* the next scale reuses the arena */
					if (n > kept_cap[k]) {
						free(kept[k]);
						kept[k] = xmalloc(xmul(n, sizeof(float)));
						kept_cap[k] = n;
					}
					memcpy(kept[k], local, n * sizeof(float));
					local = kept[k];
				}
				st_clear(&out[k]);
				st_meta_copy(&out[k], &d);
				st_meta_set(&out[k], "scale", o.label[k]);
				st_meta_setf(&out[k], "grid", "%d,%d", gh, gw);
				st_add(&out[k], "local", ST_F32, 2,
				       (int64_t[]){(int64_t)gh * gw, e.lfsa.dim}, local);
			}
			for (int k = 0; k < o.nscales; k++)
				tk_write_frame(&out[k]);
			tk_progress_step(&p, 1);
		}
		tk_stream_close(&s);
	}
	double dt = tk_now() - p.start;
	int summary = p.on && p.count;
	tk_progress_end(&p);
	if (summary)
		tk_note("%ld images, %.3f s/image, %.1f GFLOP/s; activations %.0f MB, "
			"resident %.0f MB, peak %.0f MB",
			p.count, dt / p.count, flops / dt / 1e9,
			tk_extractor_bytes(&e) / 1048576.0, tk_rss() / 1048576.0,
			tk_peak_rss() / 1048576.0);
	tk_close_stdout();
	st_free(&d);
	for (int k = 0; k < MAX_SCALES; k++) {
		st_free(&out[k]);
		free(kept[k]);
	}
	free(img);
	free(o.scales_copy);
	tk_extractor_free(&e);
	return 0;
}
