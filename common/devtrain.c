/* devtrain.c - the optimizer and the model's copies on a device. */
#include "devtrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

void tk_sgd_step_on(const struct tk_dev *dv, const struct tk_model *m,
		    float *params, float *momentum, const float *grad,
		    const struct tk_hparams *h, double lr)
{
	dev_mark(dv, "sgd update");
	/* The parameters in runs, adjacent tensors of one decay merged: one
	 * call for all */
	struct sgd_run *runs = xmalloc(xmul((size_t)m->n + 1, sizeof *runs));
	int n = 0;
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind != TK_PARAM || !p->numel)
			continue;
		struct sgd_run *last = n ? &runs[n - 1] : NULL;
		if (last && last->decay == !!p->decay &&
		    last->offset + last->numel == p->offset)
			last->numel += p->numel;
		else
			runs[n++] = (struct sgd_run){p->offset, p->numel, !!p->decay};
	}
	dev_sgd_update_runs(dv, params, momentum, grad, runs, n, (float)lr,
			    (float)h->momentum, 0.0f, (float)h->weight_decay, 1);
	free(runs);
	dev_mark(dv, NULL);
}

double tk_grad_norm_on(const struct tk_dev *dv, const struct tk_model *m,
		       const float *grad)
{
	dev_mark(dv, "gradient norm");
	double s = 0.0;
	if (tk_dev_is_cuda(dv)) {
		s = dev_sumsq(dv, grad, m->numel);
	} else {
		for (int i = 0; i < m->n; i++) {
			const struct tk_param *p = &m->p[i];
			if (p->kind == TK_PARAM)
				s += dev_sumsq(dv, grad + p->offset, p->numel);
		}
	}
	dev_mark(dv, NULL);
	return sqrt(s);
}

double tk_clip_grad_on(const struct tk_dev *dv, const struct tk_model *m,
		       float *grad, double max_norm)
{
	double norm = tk_grad_norm_on(dv, m, grad);
	float coef = (float)max_norm / ((float)norm + 1e-6f);
	if (coef < 1.0f) {
		dev_mark(dv, "gradient clip");
		for (int i = 0; i < m->n; i++) {
			const struct tk_param *p = &m->p[i];
			if (p->kind == TK_PARAM)
				dev_scale_inplace(dv, grad + p->offset, coef, p->numel);
		}
		dev_mark(dv, NULL);
	}
	return norm;
}

void tk_model_download(const struct tk_dev *dv, struct tk_model *m,
		       const float *params)
{
	/* one transfer, then the counters put back */
	float *keep = xmalloc((m->numel + 1) * sizeof *keep);
	memcpy(keep, m->data, m->numel * sizeof *keep);
	dev_download(dv, m->data, params, m->numel * sizeof *m->data);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind == TK_COUNTER)
			memcpy(m->data + p->offset, keep + p->offset,
			       p->numel * sizeof *keep);
	}
	free(keep);
}

void tk_buffers_copy_on(const struct tk_dev *dv, const struct tk_model *m,
			float *params, float *shadow, int to_shadow)
{
	size_t k = 0;
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind != TK_BUFFER)
			continue;
		float *a = params + p->offset;
		if (to_shadow)
			dev_copy(dv, shadow + k, a, p->numel * sizeof *a);
		else
			dev_copy(dv, a, shadow + k, p->numel * sizeof *a);
		k += p->numel;
	}
}
