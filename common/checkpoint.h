/* checkpoint.h - training checkpoints: a model file (tk_model_load reads
 * it as one) plus the optimizer's momentum buffers as tensors
 * "optim.momentum.<name>", and in the metadata the training state (steps,
 * epochs, images of the epoch trained, the dropout generator's counter)
 * and the hyper-parameters that define the schedule. */
#ifndef TK_CHECKPOINT_H
#define TK_CHECKPOINT_H

#include <stddef.h>

#include "model.h"
#include "optim.h"

#define TK_TRAIN_MAX_THREADS 4096

struct tk_train_state {
	long step;    /* optimizer steps done */
	long epoch;   /* epochs done */
	long seen;    /* images of the current epoch trained */
	long micro;   /* micro-batches done: the dropout generator's counter,
			 with h.seed its whole state */
	int threads;  /* the thread count of a --deterministic run (1 to
			 TK_TRAIN_MAX_THREADS), else 0 */
	int has_val;  /* the last validation's results follow */
	double val_loss, val_top1, val_top5;
	long val_images;
	struct tk_hparams h;
};

/* Load a checkpoint: the model into m (tk_model_load's checks), the
 * momentum buffers into *momentum (m->numel floats, allocated), the state
 * into st.  Every value of the state is read whole and must lie in the
 * bounds tk-train's options give it (an integer field holding "2.5" or
 * "1e10" is refused).  Returns 0, or -1 with a message in err, naming the
 * file and the metadata key or tensor (a model file without the state is
 * "not a checkpoint"). */
int tk_checkpoint_load(struct tk_model *m, float **momentum,
		       struct tk_train_state *st, const char *path, char *err,
		       size_t errlen);
/* The same from a parsed document (fuzz_model); err without the path. */
int tk_checkpoint_from_doc(struct tk_model *m, float **momentum,
			   struct tk_train_state *st, const struct st_doc *d,
			   char *err, size_t errlen);
/* Write a checkpoint atomically (temporary name, then rename). */
void tk_checkpoint_save(const char *path, const struct tk_model *m,
			const float *momentum, const struct tk_train_state *st);

#endif
