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
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "threads.h"
#include "tk.h"

/* F.normalize's eps, and the clamp of ArcFace's cosine. */
#define NORM_EPS 1e-12f
#define ARC_EPS 1e-6f

void *net_alloc(struct tk_net *n, size_t count, size_t size, int kind)
{
	size_t bytes = xmul(count ? count : 1, size);
	void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (!p)
		die_io("out of memory for the training network (%zu bytes more)",
		       bytes);
	memset(p, 0, bytes);
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
	if (m->arch.classes < 1)
		die_data("the model has no classifier (classes 0): nothing to "
			 "train against");
	struct tk_net *n = xcalloc(1, sizeof *n);
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
	return n;
}

void tk_net_free(struct tk_net *n)
{
	if (!n)
		return;
	for (int i = 0; i < n->nallocs; i++)
		free(n->allocs[i]);
	free(n->allocs);
	free(n->blocks);
	free(n->enc);
	free(n->dec);
	free(n);
}

void tk_net_memory(const struct tk_net *n, struct tk_net_memory *mem)
{
	*mem = n->mem;
}

double tk_net_forward(struct tk_net *n, struct tk_model *m, const float *x,
		      const int32_t *label, int B, int train, uint64_t seed)
{
	if (B < 1 || B > n->B)
		die_data("batch of %d images, the network was planned for 1 to %d",
			 B, n->B);
	n->curB = B;
	n->trained = train;
	n->seed = seed;
	resnet_forward(n, m, x);
	head_forward(n, m, resnet_output(n));
	int K = n->arch.classes, O = n->arch.out_dim;
	const float *W = m->data + n->cls;
	memcpy(n->label, label, B * sizeof *label);
	l2norm_forward(n->xn, n->e, NORM_EPS, B, O);
	l2norm_forward(n->wn, W, NORM_EPS, K, O);
	linear_forward(n->cos, n->xn, n->wn, NULL, B, O, K);
	arcface_forward(n->logits, n->cos, label, n->arch.arc_s, n->arch.arc_m,
			ARC_EPS, B, K);
	cross_entropy_forward(n->loss, n->prob, n->logits, label, B, K);
	double sum = 0.0;
	for (int i = 0; i < B; i++)
		sum += n->loss[i];
	return sum / B;
}

void tk_net_backward(struct tk_net *n, const struct tk_model *m, float *grad)
{
	if (!n->trained)
		die_usage("backward pass without a training forward pass");
	int B = n->curB, K = n->arch.classes, O = n->arch.out_dim;
	float *dlog = n->dlogits, *dcos = n->dlogits + (size_t)B * K;
	memset(n->dlogits, 0, (size_t)2 * B * K * sizeof *dlog);
	cross_entropy_backward(dlog, n->prob, n->label, 1.0f / B, B, K);
	arcface_backward(dcos, dlog, n->cos, n->label, n->arch.arc_s,
			 n->arch.arc_m, ARC_EPS, B, K);
	float *dxn = n->h[0], *de = n->de;
	memset(dxn, 0, (size_t)B * O * sizeof *dxn);
	memset(de, 0, (size_t)B * O * sizeof *de);
	memset(n->dwn, 0, (size_t)K * O * sizeof *n->dwn);
	linear_backward(dxn, n->dwn, NULL, dcos, n->xn, n->wn, B, O, K);
	l2norm_backward(grad + n->cls, n->dwn, m->data + n->cls, NORM_EPS, K, O);
	l2norm_backward(de, dxn, n->e, NORM_EPS, B, O);
	head_backward(n, m, grad, de, n->g[0], resnet_output(n));
	resnet_backward(n, m, grad);
}

const float *tk_net_logits(const struct tk_net *n)
{
	return n->logits;
}

const float *tk_net_losses(const struct tk_net *n)
{
	return n->loss;
}
