/* import.h - a tk model from the tensors of another program's weight
 * file: a Token state_dict (the reference's names), a torchvision ResNet
 * (mapped onto backbone.* names, fc dropped: a backbone alone for tk-init
 * --backbone), or a tk file (a model or a training checkpoint, whose
 * optimizer state is left out). */
#ifndef TK_IMPORT_H
#define TK_IMPORT_H

#include "model.h"
#include "safetensors.h"
#include "torchload.h"

struct tk_import_options {
	const struct tk_arch *arch; /* check against this; NULL: infer */
	int classes;                /* -1: as in the file; 0: drop the
				       classifier; else must match */
};

struct tk_import_info {
	const char *kind;   /* "Token", "torchvision ResNet", "tk" */
	int prefixes;       /* names whose "module." (DDP) was removed */
	int compiled;       /* names whose "_orig_mod." (torch.compile) was */
	int dropped;        /* tensors left out (fc, a dropped classifier) */
	int counters_added; /* num_batches_tracked absent (torch < 0.4.1) */
	int state;          /* a tk checkpoint's optimizer state, left out */
};

/* The tensors of a checkpoint as a document (names and data shared). */
void tk_import_torch_doc(struct st_doc *d, const struct tl_checkpoint *c);

/* Build m from document d (from tk_import_torch_doc, or a tk file's,
 * whose metadata says "format").  Returns 0, or -1 with a message naming
 * the tensor or the name at fault. */
int tk_import_doc(struct tk_model *m, const struct st_doc *d,
		  const struct tk_import_options *o,
		  struct tk_import_info *info, char *err, size_t errlen);

#endif
