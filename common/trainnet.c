/* trainnet.c - the training network's setup and memory plan, and the
 * loss at its end: ArcFace on the L2-normalised descriptor and class
 * weights, then softmax cross-entropy, as the reference's Token.forward. */
#define _GNU_SOURCE
#include "trainnet_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dropout.h"
#include "kernels/image.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "threads.h"
#include "tk.h"

/* F.normalize's eps, and the clamp of ArcFace's cosine. */
#define NORM_EPS 1e-12f
#define ARC_EPS 1e-6f

/* The device of tk_net_new. */
static struct tk_dev cpu = {.kind = TK_DEV_CPU};

void *net_alloc(struct tk_net *n, size_t count, size_t size, int kind)
{
	size_t bytes = xmul(count ? count : 1, size);
	void *p;
	if (tk_dev_is_cuda(n->dv)) {
		p = dev_alloc(n->dv, bytes);
		dev_zero(n->dv, p, bytes);
	} else {
		p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
		if (!p)
			die_io("out of memory for the training network (%zu bytes "
			       "more)", bytes);
		memset(p, 0, bytes);
	}
	n->allocs = xrealloc(n->allocs, xmul(n->nallocs + 1, sizeof *n->allocs));
	n->allocs[n->nallocs++] = p;
	size_t *sum = kind == MEM_ACT ? &n->mem.activations
		      : kind == MEM_SCRATCH ? &n->mem.scratch
					    : &n->mem.workspace;
	*sum += bytes;
	return p;
}

size_t net_param(const struct tk_model *m, const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	const struct tk_param *p = tk_model_param(m, name);
	if (!p)
		die_data("the model has no tensor '%s'", name);
	return p->offset;
}

uint64_t net_site_seed(const struct tk_net *n, int id)
{
	return tk_mix64(n->seed ^ tk_mix64(0x5eed0000ull + (uint64_t)id));
}

struct tk_net *tk_net_new(const struct tk_model *m, int B, int H, int W,
			  float p)
{
	return tk_net_new_on(&cpu, NULL, m, B, H, W, p);
}

struct tk_net *tk_net_new_on(const struct tk_dev *dv, float *params,
			     const struct tk_model *m, int B, int H, int W,
			     float p)
{
	if (m->arch.classes < 1)
		die_data("the model has no classifier (classes 0): nothing to "
			 "train against");
	struct tk_net *n = xcalloc(1, sizeof *n);
	n->dv = dv;
	n->P = params;
	n->arch = m->arch;
	n->B = B;
	n->H = H;
	n->W = W;
	n->p = p;
	resnet_plan(n, m);
	head_plan(n, m);
	int K = m->arch.classes, O = m->arch.out_dim;
	n->cls = net_param(m, "classifier.weight");
	n->xn = net_alloc(n, (size_t)B * O, 4, MEM_ACT);
	n->wn = net_alloc(n, (size_t)K * O, 4, MEM_SCRATCH);
	n->cos = net_alloc(n, (size_t)B * K, 4, MEM_ACT);
	n->logits = net_alloc(n, (size_t)B * K, 4, MEM_ACT);
	n->prob = net_alloc(n, (size_t)B * K, 4, MEM_ACT);
	n->loss = net_alloc(n, B, 4, MEM_ACT);
	n->label = net_alloc(n, B, sizeof(int32_t), MEM_ACT);
	n->dwn = net_alloc(n, (size_t)K * O, 4, MEM_SCRATCH);
	n->dlogits = net_alloc(n, (size_t)2 * B * K, 4, MEM_SCRATCH);
	n->work = net_alloc(n, n->wsize, 4, MEM_WORK);
	if (tk_dev_is_cuda(dv)) {
		n->hloss = xcalloc(B, sizeof *n->hloss);
		n->hlogits = xcalloc((size_t)B * K, sizeof *n->hlogits);
	}
	return n;
}

void tk_net_free(struct tk_net *n)
{
	if (!n)
		return;
	for (int i = 0; i < n->nallocs; i++)
		if (tk_dev_is_cuda(n->dv))
			dev_free(n->dv, n->allocs[i]);
		else
			free(n->allocs[i]);
	free(n->allocs);
	free(n->hloss);
	free(n->hlogits);
	free(n->blocks);
	free(n->enc);
	free(n->dec);
	free(n);
}

void tk_net_memory(const struct tk_net *n, struct tk_net_memory *mem)
{
	*mem = n->mem;
}

static void begin(struct tk_net *n, int B, int train, uint64_t seed)
{
	if (B < 1 || B > n->B)
		die_data("batch of %d images, the network was planned for 1 to %d",
			 B, n->B);
	n->curB = B;
	n->trained = train;
	n->seed = seed;
}

/* From x (NULL: the batch already in n->img) to the mean loss. */
static double forward(struct tk_net *n, struct tk_model *m, const float *x,
		      const int32_t *label)
{
	int B = n->curB;
	resnet_forward(n, m, x);
	head_forward(n, m, resnet_output(n));
	int K = n->arch.classes, O = n->arch.out_dim;
	const float *W = net_P(n, m) + n->cls;
	dev_mark(n->dv, "loss forward");
	dev_upload(n->dv, n->label, label, B * sizeof *label);
	dev_l2norm_forward(n->dv, n->xn, n->e, NORM_EPS, B, O);
	dev_l2norm_forward(n->dv, n->wn, W, NORM_EPS, K, O);
	dev_linear_forward(n->dv, n->cos, n->xn, n->wn, NULL, B, O, K);
	dev_arcface_forward(n->dv, n->logits, n->cos, n->label, n->arch.arc_s,
			    n->arch.arc_m, ARC_EPS, B, K);
	dev_cross_entropy_forward(n->dv, n->loss, n->prob, n->logits, n->label, B,
				  K);
	const float *loss = n->loss;
	if (n->hloss) {
		dev_download(n->dv, n->hloss, n->loss, B * sizeof *n->hloss);
		loss = n->hloss;
		n->logits_down = 0;
	}
	dev_mark(n->dv, NULL);
	double sum = 0.0;
	for (int i = 0; i < B; i++)
		sum += loss[i];
	return sum / B;
}

double tk_net_forward(struct tk_net *n, struct tk_model *m, const float *x,
		      const int32_t *label, int B, int train, uint64_t seed)
{
	begin(n, B, train, seed);
	return forward(n, m, x, label);
}

double tk_net_forward_u8(struct tk_net *n, struct tk_model *m,
			 const uint8_t *pixels, const int32_t *label, int B,
			 int train, uint64_t seed)
{
	begin(n, B, train, seed);
	size_t hw = (size_t)n->H * n->W;
	dev_mark(n->dv, "upload batch");
	dev_upload(n->dv, n->raw, pixels, (size_t)B * hw * 3);
	for (int b = 0; b < B; b++)
		dev_image_normalize_forward(n->dv, n->img + (size_t)b * 3 * hw,
					    n->raw + (size_t)b * hw * 3, imagenet_mean,
					    imagenet_std, n->H, n->W);
	return forward(n, m, NULL, label);
}

void tk_net_backward(struct tk_net *n, const struct tk_model *m, float *grad)
{
	tk_net_backward_sync(n, m, grad, 1.0, NULL);
}

void net_ready(struct tk_net *n, size_t off, size_t len)
{
	/* the tensor's whole slot: its padding is final too (never written) */
	if (n->ddp && off != NO_PARAM)
		dev_ddp_ready(n->dv, n->ddp, off, tk_param_slot(len));
}

void tk_net_backward_sync(struct tk_net *n, const struct tk_model *m,
			  float *grad, double weight, struct dev_ddp *ddp)
{
	n->ddp = ddp;
	if (!n->trained)
		die_usage("backward pass without a training forward pass");
	int B = n->curB, K = n->arch.classes, O = n->arch.out_dim;
	float *dlog = n->dlogits, *dcos = n->dlogits + (size_t)B * K;
	dev_mark(n->dv, "loss backward");
	dev_zero(n->dv, n->dlogits, (size_t)2 * B * K * sizeof *dlog);
	dev_cross_entropy_backward(n->dv, dlog, n->prob, n->label,
				   (float)(weight / B), B, K);
	dev_arcface_backward(n->dv, dcos, dlog, n->cos, n->label, n->arch.arc_s,
			 n->arch.arc_m, ARC_EPS, B, K);
	float *dxn = n->h[0], *de = n->de;
	dev_zero(n->dv, dxn, (size_t)B * O * sizeof *dxn);
	dev_zero(n->dv, de, (size_t)B * O * sizeof *de);
	dev_zero(n->dv, n->dwn, (size_t)K * O * sizeof *n->dwn);
	dev_linear_backward(n->dv, dxn, n->dwn, NULL, dcos, n->xn, n->wn, B, O, K);
	dev_l2norm_backward(n->dv, grad + n->cls, n->dwn, net_P(n, m) + n->cls, NORM_EPS,
			    K, O);
	net_ready(n, n->cls, (size_t)K * O);
	dev_l2norm_backward(n->dv, de, dxn, n->e, NORM_EPS, B, O);
	head_backward(n, m, grad, de, n->g[0], resnet_output(n));
	resnet_backward(n, m, grad);
	if (ddp) {
		/* every bucket was sent as its last tensor's gradient came
		 * (net_ready); wait for them */
		dev_mark(n->dv, "all-reduce wait");
		dev_ddp_finish(n->dv, ddp);
		int world = dev_world(n->dv);
		if (world > 1)
			dev_scale_inplace(n->dv, grad, 1.0f / (float)world, m->numel);
	}
	dev_mark(n->dv, NULL);
	n->ddp = NULL;
}

const float *tk_net_logits(struct tk_net *n)
{
	if (!n->hlogits)
		return n->logits;
	if (!n->logits_down) {
		dev_download(n->dv, n->hlogits, n->logits,
			     (size_t)n->curB * n->arch.classes * sizeof *n->hlogits);
		n->logits_down = 1;
	}
	return n->hlogits;
}
