/* trainnet_resnet.c - the ResNet backbone for training: convolutions
 * followed by batch norm with batch statistics, ReLU, max-pool,
 * Bottleneck blocks; the backward pass block by block through four
 * rotating gradient buffers.  ReLUs are applied in the batch norm's
 * passes, forward and backward, and the backward passes write fresh
 * buffers instead of zeroing them to accumulate: on a GPU these
 * memory-bound passes, not the convolutions, would otherwise take most
 * of a step.  Under --precision bf16 on a GPU (dev_train_nhwc) the
 * backbone runs channels-last on bf16 activations, as PyTorch's autocast
 * with channels_last does; the batch is converted at its start, its
 * output for the head (NCHW float) at its end. */
#include <stdio.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/conv.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "threads.h"
#include "tk.h"
#include "trainnet_impl.h"

/* The channels-last stem's input: 3 channels padded to 8, as cuDNN's
 * channels-last kernels take them. */
#define STEM_LD 8

static const int stage_blocks50[4] = {3, 4, 6, 3}, stage_blocks101[4] = {3, 4, 23, 3};

static size_t max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

void cbn_plan(struct tk_net *n, struct cbn *c, const struct tk_model *m,
	      const char *conv, const char *bn, int C, int H, int W, int OC,
	      int K, int stride, int pad, int bias, int ld)
{
	c->w = net_param(m, "%s.weight", conv);
	c->bias = bias ? net_param(m, "%s.bias", conv) : NO_PARAM;
	c->g = net_param(m, "%s.weight", bn);
	c->b = net_param(m, "%s.bias", bn);
	c->rm = net_param(m, "%s.running_mean", bn);
	c->rv = net_param(m, "%s.running_var", bn);
	c->cnt = net_param(m, "%s.num_batches_tracked", bn);
	c->d = (struct conv2d_dims){n->B, C, H, W, OC, K, stride, pad};
	c->oh = conv2d_out_size(H, K, stride, pad);
	c->ow = conv2d_out_size(W, K, stride, pad);
	if (c->oh < 1 || c->ow < 1)
		die_data("images of %d x %d are too small for the network",
			 n->W, n->H);
	size_t out = (size_t)n->B * OC * c->oh * c->ow;
	size_t es = ld ? dev_act_size(n->dv) : 4;
	c->t = net_alloc(n, out, es, MEM_ACT);
	c->mean = net_alloc(n, OC, 4, MEM_ACT);
	c->rstd = net_alloc(n, OC, 4, MEM_ACT);
	c->ld = ld ? ld : C;
	if (ld) {
		size_t nw = (size_t)OC * ld * K * K;
		c->wa = net_alloc(n, nw, es, MEM_SCRATCH);
		c->dwa = net_alloc(n, nw, es, MEM_SCRATCH);
	} else {
		n->wsize = max_sz(n->wsize, dev_conv2d_backward_workspace(n->dv, c->d));
	}
	n->gsize = max_sz(n->gsize, out);
	n->gsize = max_sz(n->gsize, (size_t)n->B * C * H * W);
}

void cbn_forward(struct tk_net *n, struct cbn *c, struct tk_model *m,
		 void *dst, const void *x, int relu)
{
	struct conv2d_dims d = c->d;
	d.B = n->curB;
	float *P = net_P(n, m);
	int ohw = c->oh * c->ow;
	long rows = (long)d.B * ohw;
	if (c->wa) {
		dev_mark(n->dv, "conv weights");
		dev_conv_act_weights(n->dv, c->wa, P + c->w, d.OC, d.C, c->ld, d.K);
		dev_mark(n->dv, "conv forward");
		struct conv2d_dims dl = d;
		dl.C = c->ld;
		dev_conv_act_forward(n->dv, c->t, x, c->wa, dl);
	} else {
		dev_mark(n->dv, "conv forward");
		dev_conv2d_train_forward(n->dv, c->t, n->work, x, P + c->w,
					 c->bias == NO_PARAM ? NULL : P + c->bias,
					 NULL, 0, d);
	}
	dev_mark(n->dv, "batchnorm forward");
	if (n->trained) {
		if (c->wa)
			dev_bn_act_train_forward(n->dv, dst, c->mean, c->rstd, P + c->rm,
						 P + c->rv, c->t, P + c->g, P + c->b,
						 BN_EPS, BN_MOMENTUM, relu, rows, d.OC);
		else
			dev_batchnorm_train_forward(n->dv, dst, c->mean, c->rstd,
						    P + c->rm, P + c->rv, c->t, P + c->g,
						    P + c->b, BN_EPS, BN_MOMENTUM, relu,
						    d.B, d.OC, ohw);
		m->data[c->cnt] += 1.0f; /* counters: the host's */
	} else if (c->wa) {
		dev_bn_act_eval_forward(n->dv, dst, c->t, P + c->g, P + c->b, P + c->rm,
					P + c->rv, BN_EPS, relu, rows, d.OC);
	} else {
		dev_batchnorm_eval_forward(n->dv, dst, c->t, P + c->g, P + c->b, P + c->rm,
				       P + c->rv, BN_EPS, d.B, d.OC, ohw);
		if (relu)
			dev_relu_forward(n->dv, dst, dst, (size_t)d.B * d.OC * ohw);
	}
}

void cbn_backward(struct tk_net *n, const struct cbn *c,
		  const struct tk_model *m, float *grad, void *dx, int dx_add,
		  void *dt, const void *dy, const void *relu_out,
		  const void *x)
{
	struct conv2d_dims d = c->d;
	d.B = n->curB;
	int ohw = c->oh * c->ow;
	const float *P = net_P(n, m);
	dev_mark(n->dv, "batchnorm backward");
	if (c->wa)
		dev_bn_act_backward(n->dv, dt, grad + c->g, grad + c->b, dy, relu_out,
				    c->t, c->mean, c->rstd, P + c->g, (long)d.B * ohw,
				    d.OC);
	else
		dev_batchnorm_backward(n->dv, dt, 0, grad + c->g, grad + c->b, dy,
				       relu_out, c->t, c->mean, c->rstd, P + c->g, d.B,
				       d.OC, ohw);
	dev_mark(n->dv, "conv backward");
	if (c->wa) {
		struct conv2d_dims dl = d;
		dl.C = c->ld;
		dev_conv_act_backward(n->dv, dx, dx_add, c->dwa, dt, x, c->wa, dl);
		dev_mark(n->dv, "conv weights");
		dev_conv_act_dweights(n->dv, grad + c->w, c->dwa, d.OC, d.C, c->ld,
				      d.K);
	} else {
		dev_conv2d_backward(n->dv, dx, dx_add, grad + c->w,
				    c->bias == NO_PARAM ? NULL : grad + c->bias,
				    n->work, dt, x, P + c->w, d);
	}
	/* Every gradient of this convolution and batch norm is final (the
	 * running statistics' and counter's are zeros, final too). */
	size_t oc = (size_t)d.OC;
	net_ready(n, c->w, oc * d.C * d.K * d.K);
	net_ready(n, c->bias, oc);
	net_ready(n, c->g, oc);
	net_ready(n, c->b, oc);
	net_ready(n, c->rm, oc);
	net_ready(n, c->rv, oc);
	net_ready(n, c->cnt, 1);
}

static void names(char a[96], char b[96], int stage, int i, const char *conv,
		  const char *bn)
{
	snprintf(a, 96, "backbone.block%d.%d.%s", stage, i, conv);
	snprintf(b, 96, "backbone.block%d.%d.%s", stage, i, bn);
}

void resnet_plan(struct tk_net *n, const struct tk_model *m)
{
	int w = m->arch.width, B = n->B;
	const int *nb = m->arch.depth == 50 ? stage_blocks50 : stage_blocks101;
	int nhwc = n->nhwc = dev_train_nhwc(n->dv);
	size_t es = nhwc ? dev_act_size(n->dv) : 4, hw = (size_t)n->H * n->W;
	n->img = net_alloc(n, (size_t)B * 3 * hw, 4, MEM_ACT);
	n->raw = net_alloc(n, (size_t)B * 3 * hw, 1, MEM_ACT);
	if (nhwc) /* zeros: the padding */
		n->img_act = net_alloc(n, (size_t)B * STEM_LD * hw, es, MEM_ACT);
	cbn_plan(n, &n->stem, m, "backbone.block1.0", "backbone.block1.1", 3,
		 n->H, n->W, w, 7, 2, 3, 0, nhwc ? STEM_LD : 0);
	int h = n->stem.oh, wd = n->stem.ow;
	n->a1 = net_alloc(n, (size_t)B * w * h * wd, es, MEM_ACT);
	n->ph = maxpool2d_out_size(h, 3, 2, 1);
	n->pw = maxpool2d_out_size(wd, 3, 2, 1);
	size_t np = (size_t)B * w * n->ph * n->pw;
	n->argmax = net_alloc(n, np, sizeof(int), MEM_ACT);
	if (nhwc)
		n->pool_act = net_alloc(n, np, es, MEM_ACT);
	else
		n->pool = net_alloc(n, np, 4, MEM_ACT);
	n->nblocks = nb[0] + nb[1] + nb[2] + nb[3];
	n->blocks = xcalloc(n->nblocks, sizeof *n->blocks);
	int cin = w, H = n->ph, W = n->pw, k = 0;
	char a[96], b[96];
	for (int s = 0; s < 4; s++) {
		int planes = w << s, cout = 4 * planes, stride = s ? 2 : 1;
		for (int i = 0; i < nb[s]; i++, k++) {
			struct block *bl = &n->blocks[k];
			int st = i == 0 ? stride : 1;
			names(a, b, s + 2, i, "conv1", "bn1");
			cbn_plan(n, &bl->c1, m, a, b, cin, H, W, planes, 1, 1, 0, 0,
				 nhwc ? cin : 0);
			names(a, b, s + 2, i, "conv2", "bn2");
			cbn_plan(n, &bl->c2, m, a, b, planes, H, W, planes, 3, st, 1, 0,
				 nhwc ? planes : 0);
			int oh = bl->c2.oh, ow = bl->c2.ow;
			names(a, b, s + 2, i, "conv3", "bn3");
			cbn_plan(n, &bl->c3, m, a, b, planes, oh, ow, cout, 1, 1, 0, 0,
				 nhwc ? planes : 0);
			bl->has_down = i == 0;
			if (bl->has_down) {
				names(a, b, s + 2, i, "downsample.0", "downsample.1");
				cbn_plan(n, &bl->down, m, a, b, cin, H, W, cout, 1, st, 0, 0,
					 nhwc ? cin : 0);
			}
			bl->u1 = net_alloc(n, (size_t)B * planes * H * W, es, MEM_ACT);
			bl->u2 = net_alloc(n, (size_t)B * planes * oh * ow, es, MEM_ACT);
			bl->out = net_alloc(n, (size_t)B * cout * oh * ow, es, MEM_ACT);
			cin = cout;
			H = oh;
			W = ow;
		}
	}
	n->fh = H;
	n->fw = W;
	n->n = H * W;
	/* The gradient buffers hold activations, and in g[0] the head's
	 * gradient (float) of the backbone's output. */
	size_t gbytes = n->gsize * es;
	if (nhwc) {
		n->feat = net_alloc(n, (size_t)B * cin * n->n, 4, MEM_ACT);
		gbytes = max_sz(gbytes, (size_t)B * cin * n->n * 4);
	}
	for (int i = 0; i < 4; i++)
		n->g[i] = net_alloc(n, gbytes, 1, MEM_SCRATCH);
}

const float *resnet_output(const struct tk_net *n)
{
	return n->feat ? n->feat : n->blocks[n->nblocks - 1].out;
}

static size_t numel(const struct tk_net *n, const struct cbn *c)
{
	return (size_t)n->curB * c->d.OC * c->oh * c->ow;
}

void resnet_forward(struct tk_net *n, struct tk_model *m, const float *x)
{
	int B = n->curB;
	if (x) {
		dev_mark(n->dv, "upload batch");
		dev_upload(n->dv, n->img, x, (size_t)B * 3 * n->H * n->W * sizeof *x);
	}
	const struct cbn *st = &n->stem;
	const void *in;
	if (n->nhwc) {
		dev_mark(n->dv, "layout");
		dev_nchw_to_act(n->dv, n->img_act, n->img, B, 3, STEM_LD,
				(long)n->H * n->W);
		cbn_forward(n, &n->stem, m, n->a1, n->img_act, 1);
		dev_mark(n->dv, "maxpool forward");
		dev_maxpool_act_forward(n->dv, n->pool_act, n->argmax, n->a1, B,
					st->d.OC, st->oh, st->ow, 3, 2, 1);
		in = n->pool_act;
	} else {
		cbn_forward(n, &n->stem, m, n->a1, n->img, 1);
		dev_mark(n->dv, "maxpool forward");
		dev_maxpool2d_forward(n->dv, n->pool, n->argmax, n->a1, B * st->d.OC,
				      st->oh, st->ow, 3, 2, 1);
		in = n->pool;
	}
	for (int k = 0; k < n->nblocks; k++) {
		struct block *bl = &n->blocks[k];
		cbn_forward(n, &bl->c1, m, bl->u1, in, 1);
		cbn_forward(n, &bl->c2, m, bl->u2, bl->u1, 1);
		void *v3 = n->g[0];
		cbn_forward(n, &bl->c3, m, v3, bl->u2, 0);
		size_t sz = numel(n, &bl->c3);
		const void *id = in;
		if (bl->has_down) {
			cbn_forward(n, &bl->down, m, n->g[1], in, 0);
			id = n->g[1];
		}
		dev_mark(n->dv, "add+relu forward");
		if (n->nhwc)
			dev_add_relu_act(n->dv, bl->out, v3, id, sz);
		else
			dev_add_relu_forward(n->dv, bl->out, v3, id, sz);
		in = bl->out;
	}
	if (n->nhwc) {
		dev_mark(n->dv, "layout");
		int C = n->blocks[n->nblocks - 1].c3.d.OC;
		dev_act_to_nchw(n->dv, n->feat, in, B, C, C, n->n);
	}
}

/* Rotating buffers: dy (the block output's gradient) comes in n->g[iy]
 * and the input's gradient leaves in the buffer returned. */
static int block_backward(struct tk_net *n, const struct tk_model *m,
			  float *grad, const struct block *bl, const void *in,
			  int iy)
{
	int ix = (iy + 1) & 3, i0 = (iy + 2) & 3, i1 = (iy + 3) & 3;
	float *gy = n->g[iy], *gx = n->g[ix], *t0 = n->g[i0], *t1 = n->g[i1];
	/* Through the final ReLU: the gradient r of bn3 + identity.  When
	 * the identity is the input itself, r is the input's gradient so
	 * far: it goes straight where that gradient is gathered (gx, which
	 * conv1 adds to last); else into t0, for the downsampling branch. */
	float *r = bl->has_down ? t0 : gx;
	dev_mark(n->dv, "relu backward");
	if (n->nhwc)
		dev_relu_backward_act(n->dv, r, gy, bl->out, numel(n, &bl->c3));
	else
		dev_relu_backward(n->dv, r, 0, gy, bl->out, numel(n, &bl->c3));
	if (bl->has_down)
		cbn_backward(n, &bl->down, m, grad, gx, 0, gy, t0, NULL, in);
	/* bn3, conv3: into gy */
	cbn_backward(n, &bl->c3, m, grad, gy, 0, t1, r, NULL, bl->u2);
	/* relu2 (in bn2's pass), bn2, conv2: into t0 */
	cbn_backward(n, &bl->c2, m, grad, t0, 0, t1, gy, bl->u2, bl->u1);
	/* relu1, bn1, conv1: onto the identity's part of the input's
	 * gradient */
	cbn_backward(n, &bl->c1, m, grad, gx, 1, t1, t0, bl->u1, in);
	return ix;
}

void resnet_backward(struct tk_net *n, const struct tk_model *m, float *grad)
{
	int iy = 0, B = n->curB;
	if (n->nhwc) { /* the head's gradient to activations */
		int C = n->blocks[n->nblocks - 1].c3.d.OC;
		dev_mark(n->dv, "layout");
		dev_nchw_to_act(n->dv, n->g[1], n->g[0], B, C, C, n->n);
		iy = 1;
	}
	for (int k = n->nblocks - 1; k >= 0; k--) {
		const void *in = k ? n->blocks[k - 1].out
				   : n->nhwc ? n->pool_act : n->pool;
		iy = block_backward(n, m, grad, &n->blocks[k], in, iy);
	}
	/* max-pool, ReLU, bn1, the stem convolution (no input gradient). */
	const struct cbn *c = &n->stem;
	float *gp = n->g[iy], *t0 = n->g[(iy + 1) & 3], *t1 = n->g[(iy + 2) & 3];
	dev_mark(n->dv, "maxpool backward");
	if (n->nhwc) {
		dev_maxpool_act_backward(n->dv, t0, gp, n->argmax, B, c->d.OC, c->oh,
					 c->ow, 3, 2, 1);
		cbn_backward(n, c, m, grad, NULL, 0, t1, t0, n->a1, n->img_act);
		return;
	}
	dev_zero(n->dv, t0, numel(n, c) * sizeof *t0);
	dev_maxpool2d_backward(n->dv, t0, gp, n->argmax, B * c->d.OC, c->oh, c->ow, 3, 2, 1);
	cbn_backward(n, c, m, grad, NULL, 0, t1, t0, n->a1, n->img);
}
