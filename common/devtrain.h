/* devtrain.h - tk-train's steps on a device (kernels/dispatch.h): the
 * optimizer of common/optim.h on the device's copies of the parameters,
 * momentum and gradient, and the model's copies between host and
 * device.  On the CPU device each is optim.h's computation, operation for
 * operation. */
#ifndef TK_DEVTRAIN_H
#define TK_DEVTRAIN_H

#include "kernels/dispatch.h"
#include "model.h"
#include "optim.h"

/* tk_sgd_step with the parameters at params (m gives the table). */
void tk_sgd_step_on(const struct tk_dev *dv, const struct tk_model *m,
		    float *params, float *momentum, const float *grad,
		    const struct tk_hparams *h, double lr);
/* tk_grad_norm, tk_clip_grad (on a GPU the norm in one sum over the whole
 * gradient: the buffers' gradients are zeros). */
double tk_grad_norm_on(const struct tk_dev *dv, const struct tk_model *m,
		       const float *grad);
double tk_clip_grad_on(const struct tk_dev *dv, const struct tk_model *m,
		       float *grad, double max_norm);

/* m->data's parameters and buffers from the device's params (the
 * counters, which the host keeps, stay). */
void tk_model_download(const struct tk_dev *dv, struct tk_model *m,
		       const float *params);
/* The buffers (running statistics) between params and shadow, both on
 * the device (to_shadow: params to shadow); shadow holds
 * tk_model_count(m, TK_BUFFER) floats. */
void tk_buffers_copy_on(const struct tk_dev *dv, const struct tk_model *m,
			float *params, float *shadow, int to_shadow);

#endif
