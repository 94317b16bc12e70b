/* optim.h - the reference's optimisation: SGD with Nesterov momentum over
 * two parameter groups (weight decay on weights, none on biases and 1-D
 * tensors), the learning rate scaled by images per step / 256, a linear
 * warm-up then a cosine decay per step (train.py's WarmupCos_Scheduler),
 * optional gradient-norm clipping. */
#ifndef TK_OPTIM_H
#define TK_OPTIM_H

#include <stdint.h>

#include "model.h"

/* Training hyper-parameters; lr values per 256 images, as experiment.sh
 * gives them. */
struct tk_hparams {
	int batch, update_every;
	long epoch_size; /* images per epoch */
	int epochs, warmup_epochs;
	double warmup_lr, base_lr, final_lr;
	double momentum, weight_decay;
	double clip;  /* gradient-norm clipping; <= 0: off */
	double dropout;
	uint64_t seed;
};

/* The bounds of the integer hyper-parameters, as tk-train's options and a
 * checkpoint's metadata give them: batch, update_every, epochs and
 * warmup_epochs in [1, TK_HP_MAX_COUNT] (warmup_epochs from 0),
 * epoch_size in [1, TK_HP_MAX_EPOCH_SIZE]. */
#define TK_HP_MAX_COUNT (1 << 20)
#define TK_HP_MAX_EPOCH_SIZE (1L << 40)

/* experiment.sh's: batch 128, 30 epochs, warm-up 5 from 1e-4, base 0.01,
 * final 0, momentum 0.9, weight decay 1e-4, no clipping, dropout 0.1,
 * seed 11. */
void tk_hparams_default(struct tk_hparams *h);

/* Optimizer steps per epoch: int(ceil(epoch_size / batch) / update_every),
 * as the reference's int(len(train_loader) / update_every). */
long tk_steps_per_epoch(const struct tk_hparams *h);
/* The schedule's steps done (tk_lr's k of the next step) with seen images
 * of epoch 'epoch' (from 0) trained: epoch * steps per epoch, plus the
 * epoch's steps less those that its remaining images, in batches of
 * h->batch, still make.  With the same batch throughout that is the
 * steps taken; after a change of batch, update_every or epoch_size (a
 * resumed run) or a batch skipped, every epoch still ends where the
 * schedule's epoch ends. */
long tk_schedule_pos(const struct tk_hparams *h, long epoch, long seen);
/* The learning rate of optimizer step k (from 0): np.linspace warm-up over
 * warmup_epochs epochs of steps, then final + (base - final) (1 +
 * cos(pi j / n)) / 2 over the rest, each rate scaled by batch *
 * update_every / 256 first, in the reference's double operations.  Past
 * the schedule's end the last rate stays (the reference would fail). */
double tk_lr(const struct tk_hparams *h, long k);

/* One SGD step over m's trained tensors: grad + wd * param (wd for
 * tensors with p->decay), the momentum buffer, Nesterov, as
 * torch.optim.SGD.  momentum has m->numel floats. */
void tk_sgd_step(struct tk_model *m, float *momentum, const float *grad,
		 const struct tk_hparams *h, double lr);
/* The 2-norm of the gradient over the trained tensors. */
double tk_grad_norm(const struct tk_model *m, const float *grad);
/* torch.nn.utils.clip_grad_norm_: scale the gradient by max_norm /
 * (norm + 1e-6) when that is below 1.  Returns the norm before. */
double tk_clip_grad(const struct tk_model *m, float *grad, double max_norm);

#endif
