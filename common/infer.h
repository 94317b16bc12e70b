/* infer.h - what tk-extract and tk-aggregate share around the network:
 * loading a model for inference, giving back the weights a tool does
 * not use, and measuring memory. */
#ifndef TK_INFER_H
#define TK_INFER_H

#include <stddef.h>

#include "model.h"

/* The model file: path, else $TK_MODEL, else a usage error. */
const char *tk_model_path(const char *opt);
/* Load for inference the tensors whose names start with one of the
 * NULL-terminated prefixes in keep; the others read as zeros and take no
 * memory.  Dies on failure: exit 3 when the file cannot be read, 2 when
 * its contents are wrong (a missing, extra or mis-shaped tensor, NaN or
 * Inf in a weight: the message names the tensor).  Each page of the file
 * is let go once copied, so that the file and the table are never both
 * resident (tk_model_load holds the whole mapping until it returns). */
void tk_infer_load(struct tk_model *m, const char *path,
		   const char *const *keep);
/* Return to the system the pages of every tensor whose name starts with
 * none of the prefixes in keep: they read as zeros afterwards. */
void tk_model_release(struct tk_model *m, const char *const *keep);
/* Resident memory of this process, in bytes: its peak so far (VmHWM)
 * and now (VmRSS). */
size_t tk_peak_rss(void);
size_t tk_rss(void);

#endif
