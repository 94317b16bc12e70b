/* infer.h - what tk-extract and tk-aggregate share around the network:
 * loading a model for inference, giving back the weights a tool does
 * not use, and measuring memory. */
#ifndef TK_INFER_H
#define TK_INFER_H

#include <stddef.h>

#include "model.h"

/* The model file: path, else $TK_MODEL, else a usage error. */
const char *tk_model_path(const char *opt);
/* Load for inference, dying on failure: exit 3 when the file cannot be
 * read, 2 when its contents are wrong (a missing or mis-shaped tensor,
 * NaN or Inf in a weight: the message names the tensor). */
void tk_infer_load(struct tk_model *m, const char *path);
/* Return to the system the pages of every tensor whose name starts with
 * none of the NULL-terminated prefixes: they read as zeros afterwards. */
void tk_model_release(struct tk_model *m, const char *const *keep);
/* Peak resident memory of this process so far, in bytes (VmHWM). */
size_t tk_peak_rss(void);

#endif
