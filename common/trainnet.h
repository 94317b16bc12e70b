/* trainnet.h - the whole Token model for training: a forward pass that
 * keeps what the backward pass needs, the backward pass into gradients
 * laid out as the model table (grad + p->offset is p's gradient), and the
 * ArcFace loss.  Memory is planned once, for a largest batch and an image
 * size; smaller batches use the front of every buffer. */
#ifndef TK_TRAINNET_H
#define TK_TRAINNET_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct tk_net;
struct tk_dev;
struct dev_ddp;

/* Bytes the network holds beside the model: activations kept for the
 * backward pass, scratch (gradients of activations, the classifier's
 * normalised weights and their gradient), and convolution workspace. */
struct tk_net_memory {
	size_t activations, scratch, workspace;
};

/* A network for m's architecture (which must have classes), batches of up
 * to B images of H x W, dropout probability p in the refinement block
 * (the reference's drop, attn_drop and drop_path, all 0.1).  Dies (exit
 * 2) when H x W is too small for the network. */
struct tk_net *tk_net_new(const struct tk_model *m, int B, int H, int W,
			  float p);
/* The same on a device (kernels/dispatch.h): params is the device's
 * copy of m->data (parameters and buffers, the running statistics
 * updated there; the num_batches_tracked counters stay in m->data); x
 * and label stay host memory, grad is device memory.  On the CPU device
 * with params NULL, it is tk_net_new's network. */
struct tk_net *tk_net_new_on(const struct tk_dev *dv, float *params,
			     const struct tk_model *m, int B, int H, int W,
			     float p);
void tk_net_free(struct tk_net *n);
void tk_net_memory(const struct tk_net *n, struct tk_net_memory *mem);

/* Forward pass of B images x ([B, 3, H, W], normalised) with labels in
 * [0, classes).  train: batch statistics (running statistics and
 * num_batches_tracked updated in m) and dropout drawn from seed, as
 * torch's model.train(); else running statistics and no dropout, as
 * model.eval().  Returns the mean cross-entropy over the batch; the
 * logits and per-image losses stay in the network. */
double tk_net_forward(struct tk_net *n, struct tk_model *m, const float *x,
		      const int32_t *label, int B, int train, uint64_t seed);
/* The same from the images' u8 pixels ([B, H, W, 3]), normalised on the
 * network's device (image_normalize_forward: the same floats): a quarter
 * of the bytes to upload. */
double tk_net_forward_u8(struct tk_net *n, struct tk_model *m,
			 const uint8_t *pixels, const int32_t *label, int B,
			 int train, uint64_t seed);
/* Backward pass of the last training forward: the gradient of its mean
 * loss is added into grad (m->numel floats, the model table's layout). */
void tk_net_backward(struct tk_net *n, const struct tk_model *m, float *grad);
/* The same for weight times the mean loss (1 / update_every: a step's
 * gradient is the mean of its batches'), and with ddp the gradient summed
 * over the ranks (dev_ddp over grad: its buckets go while the backward
 * runs, as their parameters' gradients are final) and divided by the
 * world: the last backward before an optimizer step of a data-parallel
 * run.  weight 1, ddp NULL: tk_net_backward. */
void tk_net_backward_sync(struct tk_net *n, const struct tk_model *m,
			  float *grad, double weight, struct dev_ddp *ddp);
/* The last forward's logits [B, classes] (with the margin, as the
 * reference's), in host memory. */
const float *tk_net_logits(struct tk_net *n);

#endif
