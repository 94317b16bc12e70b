/* resnet.c - the backbone forward: BN folding at load, an arena plan per
 * input size, and the blocks as fused convolution calls. */
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "tk.h"

static float *tensor(struct tk_model *m, const char *fmt, const char *prefix,
		     const char *part)
{
	char name[160];
	snprintf(name, sizeof name, fmt, prefix, part);
	float *t = tk_model_tensor(m, name);
	if (!t) /* tk_model_load checked every name: a bug if it happens */
		tk_die(TK_EXIT_DATA, "model has no tensor '%s'", name);
	return t;
}

/* conv "<conv>.weight" followed by BatchNorm2d "<bn>.*", folded. */
static struct tk_conv fold(struct tk_model *m, const char *conv,
			   const char *bn, int C, int OC, int K, int stride,
			   int pad, int conv_bias)
{
	float *w = tensor(m, "%s.%s", conv, "weight");
	float *bias = tensor(m, "%s.%s", bn, "bias");
	batchnorm2d_fold(w, bias, conv_bias ? tensor(m, "%s.%s", conv, "bias") : NULL,
			 tensor(m, "%s.%s", bn, "weight"), bias,
			 tensor(m, "%s.%s", bn, "running_mean"),
			 tensor(m, "%s.%s", bn, "running_var"), 1e-5f, OC,
			 C * K * K);
	return (struct tk_conv){w, bias, C, OC, K, stride, pad};
}

void tk_resnet_init(struct tk_resnet *r, struct tk_model *m)
{
	static const int b50[4] = {3, 4, 6, 3}, b101[4] = {3, 4, 23, 3};
	const struct tk_arch *a = &m->arch;
	const int *nb = a->depth == 50 ? b50 : b101;
	memset(r, 0, sizeof *r);
	r->stem = fold(m, "backbone.block1.0", "backbone.block1.1", 3, a->width, 7,
		       2, 3, 0);
	r->nblocks = nb[0] + nb[1] + nb[2] + nb[3];
	r->blocks = xcalloc(r->nblocks, sizeof *r->blocks);
	int cin = a->width, k = 0;
	for (int s = 0; s < 4; s++) {
		int planes = a->width << s, cout = 4 * planes;
		for (int i = 0; i < nb[s]; i++, k++) {
			struct tk_bottleneck *b = &r->blocks[k];
			char p[64], c[96], n[96];
			snprintf(b->name, sizeof b->name, "backbone.block%d.%d", s + 2, i);
			snprintf(p, sizeof p, "%s", b->name);
			int stride = i == 0 && s > 0 ? 2 : 1;
#define CONV(part, bnpart, ci, co, kk, st, pd)                        \
	(snprintf(c, sizeof c, "%s.%s", p, part),                     \
	 snprintf(n, sizeof n, "%s.%s", p, bnpart),                   \
	 fold(m, c, n, ci, co, kk, st, pd, 0))
			b->c1 = CONV("conv1", "bn1", cin, planes, 1, 1, 0);
			b->c2 = CONV("conv2", "bn2", planes, planes, 3, stride, 1);
			b->c3 = CONV("conv3", "bn3", planes, cout, 1, 1, 0);
			if (i == 0)
				b->ds = CONV("downsample.0", "downsample.1", cin, cout, 1,
					     stride, 0);
#undef CONV
			cin = cout;
		}
	}
	r->out_channels = cin;
}

void tk_resnet_free(struct tk_resnet *r)
{
	free(r->blocks);
	memset(r, 0, sizeof *r);
}

static int out_size(int in, const struct tk_conv *c)
{
	return conv2d_out_size(in, c->K, c->stride, c->pad);
}

static struct conv2d_dims dims(const struct tk_conv *c, int H, int W)
{
	return (struct conv2d_dims){1, c->C, H, W, c->OC, c->K, c->stride, c->pad};
}

static void need(size_t *slot, size_t n)
{
	if (n > *slot)
		*slot = n;
}

/* Multiply-adds x 2 of a convolution on an H x W input. */
static double conv_flops(const struct tk_conv *c, int H, int W)
{
	return 2.0 * c->OC * c->C * c->K * c->K * out_size(H, c) * out_size(W, c);
}

void tk_resnet_plan(const struct tk_resnet *r, int H, int W, int threads,
		    struct tk_resnet_plan *p)
{
	memset(p, 0, sizeof *p);
	p->H = H;
	p->W = W;
	int h = out_size(H, &r->stem), w = out_size(W, &r->stem);
	need(&p->trunk[0], (size_t)r->stem.OC * h * w);
	need(&p->work, conv2d_workspace(dims(&r->stem, H, W), threads));
	p->flops += conv_flops(&r->stem, H, W);
	int cur = 1;
	h = maxpool2d_out_size(h, 3, 2, 1);
	w = maxpool2d_out_size(w, 3, 2, 1);
	need(&p->trunk[cur], (size_t)r->stem.OC * h * w);
	for (int i = 0; i < r->nblocks; i++) {
		const struct tk_bottleneck *b = &r->blocks[i];
		int h2 = out_size(h, &b->c2), w2 = out_size(w, &b->c2);
		need(&p->t1, (size_t)b->c1.OC * h * w);
		need(&p->t2, (size_t)b->c2.OC * h2 * w2);
		need(&p->work, conv2d_workspace(dims(&b->c1, h, w), threads));
		need(&p->work, conv2d_workspace(dims(&b->c2, h, w), threads));
		need(&p->work, conv2d_workspace(dims(&b->c3, h2, w2), threads));
		p->flops += conv_flops(&b->c1, h, w) + conv_flops(&b->c2, h, w) +
			    conv_flops(&b->c3, h2, w2);
		if (b->ds.w) {
			need(&p->work, conv2d_workspace(dims(&b->ds, h, w), threads));
			p->flops += conv_flops(&b->ds, h, w);
			cur ^= 1;
			need(&p->trunk[cur], (size_t)b->c3.OC * h2 * w2);
		}
		h = h2;
		w = w2;
	}
	p->oh = h;
	p->ow = w;
	p->out_buf = cur;
	p->out_floats = (size_t)r->out_channels * h * w;
	/* Round each buffer to 64 bytes; the output's buffer comes first. */
	for (int i = 0; i < 2; i++)
		p->trunk[i] = (p->trunk[i] + 15) & ~(size_t)15;
	p->t1 = (p->t1 + 15) & ~(size_t)15;
	p->t2 = (p->t2 + 15) & ~(size_t)15;
	p->work = (p->work + 15) & ~(size_t)15;
	p->total = p->trunk[0] + p->trunk[1] + p->t1 + p->t2 + p->work;
}

int tk_all_finite(const float *x, size_t n, size_t *at)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i])) {
			if (at)
				*at = i;
			return 0;
		}
	return 1;
}

int tk_check_finite(int check, const float *x, size_t n, const char *what,
		    char *err, size_t errlen)
{
	size_t at;
	if (!check || tk_all_finite(x, n, &at))
		return 0;
	snprintf(err, errlen, "non-finite value %g in the output of %s (element %zu)",
		 x[at], what, at);
	return -1;
}

float *tk_resnet_forward(const struct tk_resnet *r,
			 const struct tk_resnet_plan *p, float *arena,
			 const float *in, int check, char *err, size_t errlen)
{
	/* Arena: [trunk[out_buf] | trunk[other] | t1 | t2 | work], so that
	 * the output sits at offset 0 for whatever follows. */
	float *trunk[2];
	trunk[p->out_buf] = arena;
	trunk[!p->out_buf] = arena + p->trunk[p->out_buf];
	float *t1 = arena + p->trunk[0] + p->trunk[1];
	float *t2 = t1 + p->t1, *work = t2 + p->t2;
	int H = p->H, W = p->W;
	conv2d_forward(trunk[0], work, in, r->stem.w, r->stem.b, NULL, 1,
		       dims(&r->stem, H, W));
	int h = out_size(H, &r->stem), w = out_size(W, &r->stem);
	if (tk_check_finite(check, trunk[0], (size_t)r->stem.OC * h * w,
		      "backbone.block1.0", err, errlen))
		return NULL;
	int cur = 1;
	maxpool2d_forward(trunk[cur], NULL, trunk[0], r->stem.OC, h, w, 3, 2, 1);
	h = maxpool2d_out_size(h, 3, 2, 1);
	w = maxpool2d_out_size(w, 3, 2, 1);
	for (int i = 0; i < r->nblocks; i++) {
		const struct tk_bottleneck *b = &r->blocks[i];
		float *x = trunk[cur];
		int h2 = out_size(h, &b->c2), w2 = out_size(w, &b->c2);
		conv2d_forward(t1, work, x, b->c1.w, b->c1.b, NULL, 1, dims(&b->c1, h, w));
		conv2d_forward(t2, work, t1, b->c2.w, b->c2.b, NULL, 1,
			       dims(&b->c2, h, w));
		float *y = x; /* identity: conv3 adds onto x in place */
		if (b->ds.w) {
			y = trunk[cur ^ 1];
			conv2d_forward(y, work, x, b->ds.w, b->ds.b, NULL, 0,
				       dims(&b->ds, h, w));
			cur ^= 1;
		}
		conv2d_forward(y, work, t2, b->c3.w, b->c3.b, y, 1,
			       dims(&b->c3, h2, w2));
		h = h2;
		w = w2;
		if (tk_check_finite(check, y, (size_t)b->c3.OC * h * w, b->name, err, errlen))
			return NULL;
	}
	return trunk[cur];
}
