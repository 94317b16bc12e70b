/* tk-aggregate - global descriptors from local features: the Token
 * head (tokenizer, refinement, projection), the scales of an image
 * averaged. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devnet.h"
#include "common/infer.h"
#include "common/stream.h"
#include "common/threads.h"
#include "common/tk.h"
#include "common/token.h"
#include "kernels/dispatch.h"
#include "kernels/norm.h"

static const char usage[] =
    "usage: tk-aggregate [--model FILE] [--threads N] [--device DEV]\n"
    "                    [--precision P] [--check-finite] [FILE...]\n"
    "'local' frames in, one 'desc' frame F32 [D] per image out: consecutive\n"
    "frames with the same key are the scales of one image.  See\n"
    "tk-aggregate(1).\n"
    "  -m, --model FILE    weights (default: $TK_MODEL)\n"
    "  -j, --threads N     threads (default: OMP_NUM_THREADS, else all cores)\n"
    "      --device DEV    cpu (default), cuda or cuda:N\n"
    "      --precision P   on the GPU: fp32 (default), tf32 or bf16\n"
    "      --check-finite  fail on NaN or Inf in an input or a layer's output\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum { OPT_CHECK = TK_OPT_FIRST_TOOL, OPT_DEVICE, OPT_PRECISION };

struct options {
	const char *model;
	int threads, check;
	char **files;
	int nfiles;
	struct tk_dev dv;
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"model", required_argument, 0, 'm'},
	    {"threads", required_argument, 0, 'j'},
	    {"check-finite", no_argument, 0, OPT_CHECK},
	    {"device", required_argument, 0, OPT_DEVICE},
	    {"precision", required_argument, 0, OPT_PRECISION},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	const char *device = NULL, *precision = NULL;
	int c;
	while ((c = tk_getopt(argc, argv, "m:j:qh", longopts)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
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

/* One image being gathered: its first frame's metadata, the sum of its
 * scales' descriptors, the scales. */
struct group {
	struct st_doc out;
	char *key;
	float *sum, *desc;
	int n, dim;
	char scales[256];
};

static void group_flush(struct group *g)
{
	if (!g->n)
		return;
	for (int i = 0; i < g->dim; i++)
		g->sum[i] /= g->n;
	l2norm_forward(g->desc, g->sum, 1e-12f, 1, g->dim);
	if (g->scales[0])
		st_meta_set(&g->out, "scales", g->scales);
	st_add(&g->out, "desc", ST_F32, 1, (int64_t[]){g->dim}, g->desc);
	tk_write_frame(&g->out);
	g->n = 0;
}

/* Start a group with frame d's metadata, less what belongs to a scale. */
static void group_start(struct group *g, const struct st_doc *d)
{
	st_clear(&g->out);
	for (int i = 0; i < d->nmeta; i++)
		if (strcmp(d->meta[i].key, "scale") && strcmp(d->meta[i].key, "grid"))
			st_meta_set(&g->out, d->meta[i].key, d->meta[i].val);
	free(g->key);
	const char *key = st_meta_get(d, "key");
	g->key = key ? xstrdup(key) : NULL;
	memset(g->sum, 0, g->dim * sizeof *g->sum);
	g->scales[0] = 0;
}

/* One frame's descriptor one, d its metadata: a new image when the key
 * changes (a frame without a key is an image of its own). */
static void account(struct group *g, struct tk_progress *p, const float *one,
		    const struct st_doc *d)
{
	const char *key = st_meta_get(d, "key");
	if (!g->n || !key || !g->key || strcmp(key, g->key) != 0) {
		group_flush(g);
		group_start(g, d);
		tk_progress_step(p, 1);
	}
	for (int k = 0; k < g->dim; k++)
		g->sum[k] += one[k];
	const char *sc = st_meta_get(d, "scale");
	if (sc && strlen(g->scales) + strlen(sc) + 2 < sizeof g->scales)
		snprintf(g->scales + strlen(g->scales),
			 sizeof g->scales - strlen(g->scales), "%s%s",
			 g->scales[0] ? "," : "", sc);
	g->n++;
}

/* Frame d's local features, checked: NULL with the reason in err when
 * they are not F32 [n >= 1, dim] (and finite, with check). */
static const struct st_tensor *frame_local(const struct st_doc *d, int dim,
					   int check, char *err, size_t errlen)
{
	const struct st_tensor *t = tk_frame_tensor_check(d, "local", ST_F32, 2,
							  err, errlen);
	size_t at;
	if (!t)
		return NULL;
	if (t->shape[1] != dim)
		snprintf(err, errlen,
			 "local features of dimension %lld; the model's is %d",
			 (long long)t->shape[1], dim);
	else if (t->shape[0] < 1)
		snprintf(err, errlen, "no local features");
	else if (check && !tk_all_finite(t->data, (size_t)t->shape[0] * dim, &at))
		snprintf(err, errlen, "tensor 'local' holds %g at element %zu",
			 ((const float *)t->data)[at], at);
	else
		return t;
	return NULL;
}

/* Frame d is refused: the images before it are written whole first (the
 * one under way too when d starts another image), then the error. */
static _Noreturn void refuse(struct group *g, const struct tk_stream *s,
			     const struct st_doc *d, const char *err)
{
	const char *key = st_meta_get(d, "key");
	if (!key || !g->key || strcmp(key, g->key) != 0)
		group_flush(g);
	tk_frame_die(s, d, "%s", err);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	tk_binary_stdout();
	tk_threads_set(o.threads);
	static const char *const keep[] = {"tr.query", "tr.token_norm.",
					   "tr.decoder.", "tr.proj.", NULL};
	struct tk_model m;
	tk_infer_load(&m, o.model, keep);
	struct tk_head h;
	tk_head_init(&h, &m);
	/* --device cuda (or TK_DEVPATH=1 on the CPU, for the tests): the head
	 * of common/devnet.c. */
	const char *env = getenv("TK_DEVPATH");
	int on_dev = tk_dev_is_cuda(&o.dv) || (env && !strcmp(env, "1"));
	struct tk_devnet net;
	if (on_dev) {
		tk_dev_open(&o.dv);
		tk_devnet_init(&net, &o.dv, NULL, NULL, &h);
	}
	struct group g = {.dim = h.out_dim};
	st_init(&g.out);
	g.sum = xcalloc(h.out_dim, sizeof *g.sum);
	g.desc = xcalloc(h.out_dim, sizeof *g.desc);
	float *one = xcalloc(h.out_dim, sizeof *one), *scratch = NULL;
	size_t cap = 0;
	struct st_doc d, prev;
	st_init(&d);
	st_init(&prev);
	int pending = 0; /* the device works on prev's frame */
	struct tk_progress p;
	tk_progress_start(&p, "images", 0);
	double first = 0;
	int nf = o.nfiles ? o.nfiles : 1;
	for (int i = 0; i < nf; i++) {
		struct tk_stream s;
		tk_stream_open(&s, o.nfiles ? o.files[i] : "-");
		while (tk_read_frame(&s, &d)) {
			char err[512];
			const struct st_tensor *t = frame_local(&d, h.dim, o.check,
								err, sizeof err);
			if (on_dev && pending) {
				/* The frame before, which the device worked on while
				 * this one was read. */
				tk_devnet_head_finish(&net, one);
				account(&g, &p, one, &prev);
				pending = 0;
				if (p.count == 2 && !first) /* the first image done */
					first = tk_now();
			}
			if (!t)
				refuse(&g, &s, &d, err);
			int n = (int)t->shape[0];
			if (on_dev) {
				if (tk_devnet_head_start(&net, t->data, n, o.check, err,
							 sizeof err) < 0)
					refuse(&g, &s, &d, err);
				st_clear(&prev);
				st_meta_copy(&prev, &d);
				pending = 1;
				continue;
			}
			size_t need = tk_head_scratch(&h, n);
			if (need > cap) {
				free(scratch);
				scratch = xmalloc(xmul(need, sizeof *scratch));
				cap = need;
			}
			if (tk_head_forward(&h, one, scratch, t->data, n, o.check, err,
					    sizeof err) < 0)
				refuse(&g, &s, &d, err);
			account(&g, &p, one, &d);
		}
		tk_stream_close(&s);
	}
	if (pending) {
		tk_devnet_head_finish(&net, one);
		account(&g, &p, one, &prev);
	}
	group_flush(&g);
	double end = tk_now();
	int summary = p.on && p.count && on_dev;
	tk_progress_end(&p);
	if (summary)
		tk_note("%ld images, %.3f s/image (%.2f images/s after the first); %s",
			p.count, (end - p.start) / p.count,
			p.count > 1 && end > first && first > 0
			    ? (p.count - 1) / (end - first)
			    : 0.0,
			tk_dev_describe(&o.dv));
	tk_close_stdout();
	if (on_dev) {
		dev_profile_report(&o.dv);
		tk_devnet_free(&net);
		tk_dev_close(&o.dv);
	}
	st_free(&d);
	st_free(&prev);
	st_free(&g.out);
	free(g.key);
	free(g.sum);
	free(g.desc);
	free(one);
	free(scratch);
	tk_head_free(&h);
	tk_model_free(&m);
	return 0;
}
