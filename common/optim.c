/* optim.c - the schedule and the SGD step over the model table. */
#include "optim.h"

#include <math.h>

#include "kernels/optim.h"

void tk_hparams_default(struct tk_hparams *h)
{
	*h = (struct tk_hparams){
	    .batch = 128, .update_every = 1, .epoch_size = 0, .epochs = 30,
	    .warmup_epochs = 5, .warmup_lr = 1e-4, .base_lr = 0.01,
	    .final_lr = 0.0, .momentum = 0.9, .weight_decay = 1e-4,
	    .clip = -1.0, .dropout = 0.1, .seed = 11};
}

long tk_steps_per_epoch(const struct tk_hparams *h)
{
	long batches = (h->epoch_size + h->batch - 1) / h->batch;
	return batches / h->update_every;
}

long tk_schedule_pos(const struct tk_hparams *h, long epoch, long seen)
{
	long per = tk_steps_per_epoch(h), left = h->epoch_size - seen;
	long after = left > 0 ? (left + h->batch - 1) / h->batch / h->update_every : 0;
	return epoch * per + per - after;
}

double tk_lr(const struct tk_hparams *h, long k)
{
	double scale_w = h->warmup_lr * h->batch * h->update_every / 256;
	double scale_b = h->base_lr * h->batch * h->update_every / 256;
	double scale_f = h->final_lr * h->batch * h->update_every / 256;
	long iters = tk_steps_per_epoch(h);
	long warm = iters * h->warmup_epochs;
	long decay = iters * (h->epochs - h->warmup_epochs);
	if (decay < 0)
		decay = 0;
	if (k >= warm + decay)
		k = warm + decay - 1;
	if (k < 0) /* an empty schedule */
		return scale_b;
	if (k < warm) {
		if (warm == 1 || k == warm - 1)
			return warm == 1 ? scale_w : scale_b;
		double step = (scale_b - scale_w) / (double)(warm - 1);
		return (double)k * step + scale_w;
	}
	double j = (double)(k - warm);
	return scale_f + 0.5 * (scale_b - scale_f) *
			     (1.0 + cos(M_PI * j / (double)decay));
}

void tk_sgd_step(struct tk_model *m, float *momentum, const float *grad,
		 const struct tk_hparams *h, double lr)
{
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind != TK_PARAM)
			continue;
		sgd_update(m->data + p->offset, momentum + p->offset,
			   grad + p->offset, (float)lr, (float)h->momentum, 0.0f,
			   p->decay ? (float)h->weight_decay : 0.0f, 1, p->numel);
	}
}

double tk_grad_norm(const struct tk_model *m, const float *grad)
{
	double s = 0.0;
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind == TK_PARAM)
			s += sumsq(grad + p->offset, p->numel);
	}
	return sqrt(s);
}

double tk_clip_grad(const struct tk_model *m, float *grad, double max_norm)
{
	double norm = tk_grad_norm(m, grad);
	float coef = (float)max_norm / ((float)norm + 1e-6f);
	if (coef < 1.0f)
		for (int i = 0; i < m->n; i++) {
			const struct tk_param *p = &m->p[i];
			if (p->kind == TK_PARAM)
				scale_inplace(grad + p->offset, coef, p->numel);
		}
	return norm;
}
