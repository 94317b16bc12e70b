/* devnet.c - the inference network on a device: weights copied once,
 * activation memory planned per input size, the backbone on
 * channels-last activations, LFSA and head in float. */
#include "devnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "kernels/image.h"
#include "kernels/pool.h"
#include "kernels/resize.h"
#include "tk.h"

struct dlin {
	float *w, *b;
	int in, out;
};

struct dattn {
	struct dlin q, k, v, proj;
	int heads;
};

struct devnet_block {
	struct tk_conv g1, g2, g3, gds; /* geometry; gds.K 0: identity */
	struct dev_conv *c1, *c2, *c3, *ds;
	const char *name; /* "backbone.block4.7" */
	int stage;
};

struct devnet_enc {
	struct dattn attn;
	float *bn[4]; /* weight, bias, running mean, running var */
	struct dlin mlp;
};

struct devnet_dec {
	struct dattn self, cross;
	float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
	struct dlin fc1, fc2;
};

struct devnet_head {
	float *query; /* [T, D] */
	struct dlin token;
	float *ln_w, *ln_b;
	struct devnet_dec *dec;
	int ndec;
	struct dlin proj;
	float *bn[4];
	int dim, tokens, out_dim, heads;
};

/* Profile labels: per stage (backbone.block2 .. block5) and kind. */
static const char *const conv_label[4][5] = {
    {"block2 conv1 1x1", "block2 conv2 3x3", "block2 conv3 1x1+add",
     "block2 downsample", "block2 conv2 3x3/2"},
    {"block3 conv1 1x1", "block3 conv2 3x3", "block3 conv3 1x1+add",
     "block3 downsample", "block3 conv2 3x3/2"},
    {"block4 conv1 1x1", "block4 conv2 3x3", "block4 conv3 1x1+add",
     "block4 downsample", "block4 conv2 3x3/2"},
    {"block5 conv1 1x1", "block5 conv2 3x3", "block5 conv3 1x1+add",
     "block5 downsample", "block5 conv2 3x3/2"}};

static float *up(const struct tk_dev *dv, const float *h, size_t n)
{
	float *d = dev_alloc(dv, xmul(n, sizeof *d));
	dev_upload(dv, d, h, n * sizeof *d);
	return d;
}

static struct dlin up_lin(const struct tk_dev *dv, const struct tk_linear *l)
{
	return (struct dlin){up(dv, l->w, (size_t)l->in * l->out),
			     up(dv, l->b, l->out), l->in, l->out};
}

static struct dattn up_attn(const struct tk_dev *dv, const struct tk_attn *a)
{
	return (struct dattn){up_lin(dv, &a->q), up_lin(dv, &a->k),
			      up_lin(dv, &a->v), up_lin(dv, &a->proj), a->heads};
}

static void free_lin(const struct tk_dev *dv, struct dlin *l)
{
	dev_free(dv, l->w);
	dev_free(dv, l->b);
}

static void free_attn(const struct tk_dev *dv, struct dattn *a)
{
	free_lin(dv, &a->q);
	free_lin(dv, &a->k);
	free_lin(dv, &a->v);
	free_lin(dv, &a->proj);
}

static struct dev_conv *conv(const struct tk_dev *dv, const struct tk_conv *c,
			     int ld)
{
	return dev_conv_create(dv, c->w, c->b, c->C, ld, c->OC, c->K, c->stride,
			       c->pad);
}

void tk_devnet_init(struct tk_devnet *n, const struct tk_dev *dv,
		    const struct tk_resnet *r, const struct tk_lfsa *l,
		    const struct tk_head *h)
{
	memset(n, 0, sizeof *n);
	n->dv = dv;
	n->act = dev_act_size(dv);
	if (r) {
		/* The image's 3 channels padded to 8: 16-byte pixels in bf16,
		 * what the tensor-core convolutions want. */
		n->stem_ld = 8;
		n->stem_g = r->stem;
		n->stem = conv(dv, &r->stem, n->stem_ld);
		n->nblocks = r->nblocks;
		n->out_channels = r->out_channels;
		n->blocks = xcalloc(r->nblocks, sizeof *n->blocks);
		int stage = 0;
		for (int i = 0; i < r->nblocks; i++) {
			const struct tk_bottleneck *b = &r->blocks[i];
			struct devnet_block *d = &n->blocks[i];
			if (b->ds.w && i > 0)
				stage++;
			d->stage = stage;
			d->name = b->name;
			d->g1 = b->c1, d->g2 = b->c2, d->g3 = b->c3;
			d->c1 = conv(dv, &b->c1, b->c1.C);
			d->c2 = conv(dv, &b->c2, b->c2.C);
			d->c3 = conv(dv, &b->c3, b->c3.C);
			if (b->ds.w) {
				d->gds = b->ds;
				d->ds = conv(dv, &b->ds, b->ds.C);
			}
		}
	}
	if (l) {
		n->dim = l->dim;
		n->lfsa = conv(dv, &l->conv, l->conv.C);
		n->nenc = l->nenc;
		n->enc = xcalloc(l->nenc ? l->nenc : 1, sizeof *n->enc);
		for (int i = 0; i < l->nenc; i++) {
			const struct tk_encoder *e = &l->enc[i];
			n->enc[i].attn = up_attn(dv, &e->attn);
			const float *bn[4] = {e->bn.w, e->bn.b, e->bn.mean, e->bn.var};
			for (int j = 0; j < 4; j++)
				n->enc[i].bn[j] = up(dv, bn[j], l->dim);
			n->enc[i].mlp = up_lin(dv, &e->mlp);
			n->heads = e->attn.heads;
		}
	}
	if (h) {
		struct devnet_head *d = n->head = xcalloc(1, sizeof *d);
		d->dim = h->dim;
		d->tokens = h->tokens;
		d->out_dim = h->out_dim;
		d->query = up(dv, h->query, (size_t)h->tokens * h->dim);
		d->token = up_lin(dv, &h->token);
		d->ln_w = up(dv, h->ln_w, h->dim);
		d->ln_b = up(dv, h->ln_b, h->dim);
		d->ndec = h->ndec;
		d->dec = xcalloc(h->ndec ? h->ndec : 1, sizeof *d->dec);
		d->heads = 1;
		for (int i = 0; i < h->ndec; i++) {
			const struct tk_decoder *s = &h->dec[i];
			struct devnet_dec *t = &d->dec[i];
			t->self = up_attn(dv, &s->self);
			t->cross = up_attn(dv, &s->cross);
			t->ln1_w = up(dv, s->ln1_w, h->dim);
			t->ln1_b = up(dv, s->ln1_b, h->dim);
			t->ln2_w = up(dv, s->ln2_w, h->dim);
			t->ln2_b = up(dv, s->ln2_b, h->dim);
			t->fc1 = up_lin(dv, &s->fc1);
			t->fc2 = up_lin(dv, &s->fc2);
			d->heads = s->cross.heads;
		}
		d->proj = up_lin(dv, &h->proj);
		const float *bn[4] = {h->bn.w, h->bn.b, h->bn.mean, h->bn.var};
		for (int j = 0; j < 4; j++)
			d->bn[j] = up(dv, bn[j], h->out_dim);
	}
	dev_sync(dv);
}

void tk_devnet_free(struct tk_devnet *n)
{
	const struct tk_dev *dv = n->dv;
	if (!dv)
		return;
	dev_sync(dv);
	dev_conv_free(dv, n->stem);
	for (int i = 0; i < n->nblocks; i++) {
		struct devnet_block *b = &n->blocks[i];
		dev_conv_free(dv, b->c1);
		dev_conv_free(dv, b->c2);
		dev_conv_free(dv, b->c3);
		dev_conv_free(dv, b->ds);
	}
	free(n->blocks);
	dev_conv_free(dv, n->lfsa);
	for (int i = 0; i < n->nenc; i++) {
		free_attn(dv, &n->enc[i].attn);
		for (int j = 0; j < 4; j++)
			dev_free(dv, n->enc[i].bn[j]);
		free_lin(dv, &n->enc[i].mlp);
	}
	free(n->enc);
	struct devnet_head *h = n->head;
	if (h) {
		dev_free(dv, h->query);
		free_lin(dv, &h->token);
		dev_free(dv, h->ln_w);
		dev_free(dv, h->ln_b);
		for (int i = 0; i < h->ndec; i++) {
			struct devnet_dec *t = &h->dec[i];
			free_attn(dv, &t->self);
			free_attn(dv, &t->cross);
			dev_free(dv, t->ln1_w);
			dev_free(dv, t->ln1_b);
			dev_free(dv, t->ln2_w);
			dev_free(dv, t->ln2_b);
			free_lin(dv, &t->fc1);
			free_lin(dv, &t->fc2);
		}
		free(h->dec);
		free_lin(dv, &h->proj);
		for (int j = 0; j < 4; j++)
			dev_free(dv, h->bn[j]);
		free(h);
	}
	dev_free(dv, n->arena);
	dev_free(dv, n->fbuf);
	dev_free(dv, n->img);
	dev_free(dv, n->scaled);
	dev_free(dv, n->raw);
	for (int i = 0; i < 2; i++)
		dev_host_free(dv, n->stage[i]);
	dev_host_free(dv, n->desc_host);
	dev_host_free(dv, n->head_stage);
	memset(n, 0, sizeof *n);
}

/* Grow-only device buffer of 'bytes' (its old contents are dropped). */
static void *reserve(const struct tk_dev *dv, void *buf, size_t *cap,
		     size_t bytes)
{
	if (bytes <= *cap)
		return buf;
	dev_free(dv, buf);
	*cap = bytes;
	return dev_alloc(dv, bytes);
}

void tk_devnet_image(struct tk_devnet *n, const void *pixels, int u8, int H,
		     int W)
{
	const struct tk_dev *dv = n->dv;
	size_t hw = (size_t)H * W;
	size_t bytes = u8 ? hw * 3 : hw * 3 * sizeof(float);
	/* A pinned copy, so that the upload is a real asynchronous copy;
	 * two in turn: the one of the image before may still be read. */
	int k = n->stage_next;
	n->stage_next ^= 1;
	if (bytes > n->stage_cap[k]) {
		dev_sync(dv);
		dev_host_free(dv, n->stage[k]);
		n->stage_cap[k] = bytes + bytes / 4;
		n->stage[k] = dev_host_alloc(dv, n->stage_cap[k]);
	}
	memcpy(n->stage[k], pixels, bytes);
	n->img = reserve(dv, n->img, &n->img_cap, hw * 3 * sizeof(float));
	dev_mark(dv, "upload+normalise");
	if (u8) {
		n->raw = reserve(dv, n->raw, &n->raw_cap, bytes);
		dev_upload(dv, n->raw, n->stage[k], bytes);
		dev_image_normalize_forward(dv, n->img, n->raw, imagenet_mean,
					    imagenet_std, H, W);
	} else {
		dev_upload(dv, n->img, n->stage[k], bytes);
	}
	n->H = H;
	n->W = W;
}

int tk_devnet_grid(const struct tk_devnet *n, int H, int W, double scale,
		   int *gh, int *gw, char *err, size_t errlen)
{
	if (tk_extract_check(H, W, scale, err, errlen) < 0)
		return -1;
	if (scale != 1.0) {
		H = resize_out_size(H, scale);
		W = resize_out_size(W, scale);
	}
	const struct tk_conv *s = &n->stem_g;
	int h = conv2d_out_size(H, s->K, s->stride, s->pad);
	int w = conv2d_out_size(W, s->K, s->stride, s->pad);
	h = maxpool2d_out_size(h, 3, 2, 1);
	w = maxpool2d_out_size(w, 3, 2, 1);
	for (int i = 0; i < n->nblocks; i++) {
		const struct tk_conv *c = &n->blocks[i].g2;
		h = conv2d_out_size(h, c->K, c->stride, c->pad);
		w = conv2d_out_size(w, c->K, c->stride, c->pad);
	}
	*gh = h;
	*gw = w;
	return 0;
}

/* Room for the activations of an H x W input, [X | B0 .. B4]: X the
 * padded image, then five buffers of the largest activation. */
static size_t largest_act(const struct tk_devnet *n, int H, int W)
{
	const struct tk_conv *s = &n->stem_g;
	int h = conv2d_out_size(H, s->K, s->stride, s->pad);
	int w = conv2d_out_size(W, s->K, s->stride, s->pad);
	size_t most = (size_t)h * w * s->OC;
	h = maxpool2d_out_size(h, 3, 2, 1);
	w = maxpool2d_out_size(w, 3, 2, 1);
	for (int i = 0; i < n->nblocks; i++) {
		const struct devnet_block *b = &n->blocks[i];
		size_t a = (size_t)h * w * b->g1.OC;
		most = a > most ? a : most;
		h = conv2d_out_size(h, b->g2.K, b->g2.stride, b->g2.pad);
		w = conv2d_out_size(w, b->g2.K, b->g2.stride, b->g2.pad);
		a = (size_t)h * w * b->g3.OC;
		most = a > most ? a : most;
	}
	return most;
}

/* n->fbuf of at least need floats (a larger one is kept). */
static float *float_scratch(struct tk_devnet *n, size_t need)
{
	if (need > n->fbuf_cap) {
		dev_free(n->dv, n->fbuf);
		n->fbuf_cap = need;
		n->fbuf = dev_alloc(n->dv, need * sizeof(float));
	}
	return n->fbuf;
}

static size_t round256(size_t bytes)
{
	return (bytes + 255) & ~(size_t)255;
}

static int check_act(const struct tk_devnet *n, int check, const void *x,
		     size_t count, int act, const char *what, char *err,
		     size_t errlen)
{
	if (n->probe)
		n->probe(n->probe_ctx, what, x, count, act);
	if (!check)
		return 0;
	float v;
	long at = dev_first_nonfinite(n->dv, x, count, act, &v);
	if (at < 0)
		return 0;
	snprintf(err, errlen, "non-finite value %g in the output of %s (element %ld)",
		 v, what, at);
	return -1;
}

/* Sizes of the float scratch: tokens x [N, D], then q, k, v, o, t
 * [N, D] and the attention probabilities [heads, N, N]. */
struct lfsa_bufs {
	float *x, *q, *k, *v, *o, *t, *att;
};

static size_t lfsa_layout(const struct tk_devnet *n, int N, float *base,
			  struct lfsa_bufs *b)
{
	size_t nd = ((size_t)N * n->dim + 63) & ~(size_t)63;
	size_t att = (size_t)(n->heads ? n->heads : 1) * N * N;
	if (base) {
		float **p[6] = {&b->x, &b->q, &b->k, &b->v, &b->o, &b->t};
		for (int i = 0; i < 6; i++)
			*p[i] = base + i * nd;
		b->att = base + 6 * nd;
	}
	return 6 * nd + att;
}

static void lin(const struct tk_dev *dv, float *out, const struct dlin *l,
		const float *in, int N)
{
	dev_linear_forward(dv, out, in, l->w, l->b, N, l->in, l->out);
}

/* out [Nq, D] = proj(attention(q(xq), k(xkv), v(xkv))); q, k, v, o
 * scratch of [Nq or Nk, D], att [heads, Nq, Nk]. */
static void attn(const struct tk_dev *dv, float *out, const struct dattn *a,
		 float *q, float *k, float *v, float *o, float *att,
		 const float *xq, const float *xkv, int Nq, int Nk)
{
	lin(dv, q, &a->q, xq, Nq);
	lin(dv, k, &a->k, xkv, Nk);
	lin(dv, v, &a->v, xkv, Nk);
	dev_attention_forward(dv, o, att, q, k, v, 1, Nq, Nk, a->q.out, a->heads);
	lin(dv, out, &a->proj, o, Nq);
}

int tk_devnet_extract(struct tk_devnet *n, double scale, float *out,
		      int check, char *err, size_t errlen)
{
	const struct tk_dev *dv = n->dv;
	int gh, gw;
	if (tk_devnet_grid(n, n->H, n->W, scale, &gh, &gw, err, errlen) < 0)
		return -1;
	const float *in = n->img;
	int H = n->H, W = n->W;
	if (scale != 1.0) {
		int oh = resize_out_size(H, scale), ow = resize_out_size(W, scale);
		n->scaled = reserve(dv, n->scaled, &n->scaled_cap,
				    (size_t)3 * oh * ow * sizeof(float));
		dev_mark(dv, "resize");
		dev_resize_bilinear_forward(dv, n->scaled, n->img, 3, H, W, oh, ow,
					    scale, scale);
		in = n->scaled;
		H = oh;
		W = ow;
	}
	if (n->probe)
		n->probe(n->probe_ctx, "input", in, (size_t)3 * H * W, 0);
	size_t xb = round256((size_t)H * W * n->stem_ld * n->act);
	size_t bb = round256(largest_act(n, H, W) * n->act);
	n->arena = reserve(dv, n->arena, &n->arena_cap, xb + 5 * bb);
	char *base = n->arena;
	void *X = base, *B[5];
	for (int i = 0; i < 5; i++)
		B[i] = base + xb + i * bb;
	double flops = 0;
	/* stem and max pooling */
	const struct tk_conv *s = &n->stem_g;
	dev_mark(dv, "stem input");
	dev_nchw_to_nhwc(dv, X, in, 3, n->stem_ld, H, W);
	dev_mark(dv, "stem 7x7/2");
	dev_conv_nhwc_forward(dv, n->stem, B[1], 0, X, NULL, 1, H, W);
	int h = conv2d_out_size(H, s->K, s->stride, s->pad);
	int w = conv2d_out_size(W, s->K, s->stride, s->pad);
	flops += 2.0 * s->OC * s->C * s->K * s->K * h * w;
	if (check_act(n, check, B[1], (size_t)h * w * s->OC, 1, "backbone.block1.0",
		      err, errlen))
		return -1;
	dev_mark(dv, "maxpool");
	dev_maxpool_nhwc(dv, B[0], B[1], s->OC, h, w, 3, 2, 1);
	h = maxpool2d_out_size(h, 3, 2, 1);
	w = maxpool2d_out_size(w, 3, 2, 1);
	if (n->probe)
		n->probe(n->probe_ctx, "maxpool", B[0], (size_t)h * w * s->OC, 1);
	/* the blocks: cur, other: the trunk; t1, t2, ds inside */
	void *cur = B[0], *other = B[1], *t1 = B[2], *t2 = B[3], *ds = B[4];
	for (int i = 0; i < n->nblocks; i++) {
		const struct devnet_block *b = &n->blocks[i];
		const char *const *lb = conv_label[b->stage & 3];
		int h2 = conv2d_out_size(h, b->g2.K, b->g2.stride, b->g2.pad);
		int w2 = conv2d_out_size(w, b->g2.K, b->g2.stride, b->g2.pad);
		dev_mark(dv, lb[0]);
		dev_conv_nhwc_forward(dv, b->c1, t1, 0, cur, NULL, 1, h, w);
		dev_mark(dv, lb[b->g2.stride > 1 ? 4 : 1]);
		dev_conv_nhwc_forward(dv, b->c2, t2, 0, t1, NULL, 1, h, w);
		const void *res = cur;
		if (b->ds) {
			dev_mark(dv, lb[3]);
			dev_conv_nhwc_forward(dv, b->ds, ds, 0, cur, NULL, 0, h, w);
			res = ds;
			flops += 2.0 * b->gds.OC * b->gds.C * h2 * w2;
		}
		dev_mark(dv, lb[2]);
		dev_conv_nhwc_forward(dv, b->c3, other, 0, t2, res, 1, h2, w2);
		flops += 2.0 * b->g1.OC * b->g1.C * h * w +
			 2.0 * b->g2.OC * b->g2.C * b->g2.K * b->g2.K * h2 * w2 +
			 2.0 * b->g3.OC * b->g3.C * h2 * w2;
		void *t = cur;
		cur = other;
		other = t;
		h = h2;
		w = w2;
		if (check_act(n, check, cur, (size_t)h * w * b->g3.OC, 1, b->name, err,
			      errlen))
			return -1;
	}
	/* LFSA: the 1x1 convolution straight to token rows [N, D] */
	int N = h * w, d = n->dim;
	size_t nd = (size_t)N * d;
	struct lfsa_bufs lb;
	lfsa_layout(n, N, float_scratch(n, lfsa_layout(n, N, NULL, NULL)), &lb);
	dev_mark(dv, "tr.conv 1x1");
	dev_conv_nhwc_forward(dv, n->lfsa, lb.x, 1, cur, NULL, 0, h, w);
	flops += 2.0 * N * (double)n->out_channels * d;
	if (check_act(n, check, lb.x, nd, 0, "tr.conv", err, errlen))
		return -1;
	for (int i = 0; i < n->nenc; i++) {
		const struct devnet_enc *e = &n->enc[i];
		dev_mark(dv, "tr.encoder attention");
		attn(dv, lb.t, &e->attn, lb.q, lb.k, lb.v, lb.o, lb.att, lb.x, lb.x, N,
		     N);
		dev_mark(dv, "tr.encoder rest");
		dev_add_forward(dv, lb.x, lb.x, lb.t, nd);
		dev_batchnorm1d_forward(dv, lb.t, lb.x, e->bn[0], e->bn[1], e->bn[2],
					e->bn[3], 1e-5f, N, d);
		lin(dv, lb.q, &e->mlp, lb.t, N);
		dev_add_forward(dv, lb.x, lb.x, lb.q, nd);
		flops += 2.0 * N * d * d * 5 + 4.0 * N * N * d;
		char what[32];
		snprintf(what, sizeof what, "tr.encoder.%d", i);
		if (check_act(n, check, lb.x, nd, 0, what, err, errlen))
			return -1;
	}
	dev_mark(dv, "download");
	dev_download_async(dv, out, lb.x, nd * sizeof *out);
	dev_mark(dv, NULL);
	(void)gh, (void)gw;
	n->flops = flops;
	return 0;
}

void tk_devnet_wait(struct tk_devnet *n)
{
	dev_sync(n->dv);
}

/* ---- head ---- */

struct head_bufs {
	float *x, *logits, *t, *tok, *qb, *q, *k, *v, *o, *att, *hid, *p, *desc;
};

static size_t head_layout(const struct devnet_head *h, int N, float *base,
			  struct head_bufs *b)
{
	size_t T = h->tokens, d = h->dim, kv = (size_t)N > T ? (size_t)N : T;
	size_t sz[13] = {(size_t)N * d, (size_t)N * T, T * d, T * d, T * d,
			 T * d, kv * d, kv * d, T * d,
			 (size_t)h->heads * T * kv, T * 2 * d, h->out_dim, h->out_dim};
	struct head_bufs none;
	if (!b)
		b = &none;
	float **p[13] = {&b->x, &b->logits, &b->t, &b->tok, &b->qb, &b->q, &b->k,
			 &b->v, &b->o, &b->att, &b->hid, &b->p, &b->desc};
	size_t off = 0;
	for (int i = 0; i < 13; i++) {
		if (base)
			*p[i] = base + off;
		off += (sz[i] + 63) & ~(size_t)63;
	}
	return off;
}

static int check_f(const struct tk_devnet *n, int check, const float *x,
		   size_t count, const char *what, char *err, size_t errlen)
{
	return check_act(n, check, x, count, 0, what, err, errlen);
}

int tk_devnet_head(struct tk_devnet *n, float *desc, const float *x, int N,
		   int check, char *err, size_t errlen)
{
	if (tk_devnet_head_start(n, x, N, check, err, errlen) < 0)
		return -1;
	tk_devnet_head_finish(n, desc);
	return 0;
}

void tk_devnet_head_finish(struct tk_devnet *n, float *desc)
{
	dev_sync(n->dv);
	memcpy(desc, n->desc_host, n->head->out_dim * sizeof *desc);
}

/* The local features through pinned memory, so that the upload is
 * asynchronous (the previous _finish waited for the last one). */
static void head_upload(struct tk_devnet *n, float *dst, const float *x,
			size_t bytes)
{
	const struct tk_dev *dv = n->dv;
	if (bytes > n->head_stage_cap) {
		dev_host_free(dv, n->head_stage);
		n->head_stage_cap = bytes + bytes / 4;
		n->head_stage = dev_host_alloc(dv, n->head_stage_cap);
	}
	memcpy(n->head_stage, x, bytes);
	dev_upload(dv, dst, n->head_stage, bytes);
}

int tk_devnet_head_start(struct tk_devnet *n, const float *x, int N,
			 int check, char *err, size_t errlen)
{
	const struct tk_dev *dv = n->dv;
	const struct devnet_head *h = n->head;
	int T = h->tokens, d = h->dim;
	size_t td = (size_t)T * d;
	struct head_bufs b;
	head_layout(h, N, float_scratch(n, head_layout(h, N, NULL, NULL)), &b);
	dev_mark(dv, "head upload");
	head_upload(n, b.x, x, (size_t)N * d * sizeof *x);
	if (!n->desc_host)
		n->desc_host = dev_host_alloc(dv, h->out_dim * sizeof(float));
	dev_mark(dv, "head tokenizer");
	/* Tokenizer: for each position, a softmax over the T queries. */
	dev_gemm(dv, 0, 1, N, T, d, 1.0f, b.x, d, h->query, d, 0.0f, b.logits, T);
	dev_softmax_forward(dv, b.logits, b.logits, N, T);
	dev_gemm(dv, 1, 0, T, d, N, 1.0f, b.logits, T, b.x, d, 0.0f, b.t, d);
	lin(dv, b.tok, &h->token, b.t, T);
	dev_layernorm_forward(dv, b.tok, NULL, NULL, b.tok, h->ln_w, h->ln_b, 1e-5f,
			      T, d);
	if (check_f(n, check, b.tok, td, "tr.token_norm", err, errlen))
		return -1;
	for (int i = 0; i < h->ndec; i++) {
		const struct devnet_dec *dc = &h->dec[i];
		dev_mark(dv, "head decoder");
		dev_layernorm_forward(dv, b.qb, NULL, NULL, b.tok, dc->ln1_w, dc->ln1_b,
				      1e-5f, T, d);
		attn(dv, b.t, &dc->cross, b.q, b.k, b.v, b.o, b.att, b.qb, b.x, T, N);
		dev_add_forward(dv, b.tok, b.tok, b.t, td);
		lin(dv, b.hid, &dc->fc1, b.tok, T);
		dev_gelu_forward(dv, b.hid, b.hid, (size_t)T * 2 * d);
		lin(dv, b.t, &dc->fc2, b.hid, T);
		dev_add_forward(dv, b.tok, b.tok, b.t, td);
		dev_layernorm_forward(dv, b.qb, NULL, NULL, b.tok, dc->ln2_w, dc->ln2_b,
				      1e-5f, T, d);
		attn(dv, b.t, &dc->self, b.q, b.k, b.v, b.o, b.att, b.qb, b.qb, T, T);
		dev_add_forward(dv, b.tok, b.tok, b.t, td);
		char what[32];
		snprintf(what, sizeof what, "tr.decoder.%d", i);
		if (check_f(n, check, b.tok, td, what, err, errlen))
			return -1;
	}
	/* The tokens concatenated: [1, T*D]. */
	dev_mark(dv, "head projection");
	lin(dv, b.p, &h->proj, b.tok, 1);
	dev_batchnorm1d_forward(dv, b.p, b.p, h->bn[0], h->bn[1], h->bn[2], h->bn[3],
				1e-5f, 1, h->out_dim);
	if (check_f(n, check, b.p, h->out_dim, "tr.proj", err, errlen))
		return -1;
	dev_l2norm_forward(dv, b.desc, b.p, 1e-12f, 1, h->out_dim);
	if (n->probe)
		n->probe(n->probe_ctx, "desc", b.desc, h->out_dim, 0);
	dev_mark(dv, "head download");
	dev_download_async(dv, n->desc_host, b.desc, h->out_dim * sizeof(float));
	dev_mark(dv, NULL);
	return 0;
}
