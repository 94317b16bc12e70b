/* model.h - the model table: the architecture, every tensor's name, shape
 * and place in one float allocation (llm.c's parameter buffer).  Names are
 * the reference PyTorch state_dict names, so released checkpoints map one
 * to one; gradients and optimizer state reuse the same table. */
#ifndef TK_MODEL_H
#define TK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

struct tk_arch {
	int depth;      /* ResNet depth: 50 (3,4,6,3 blocks) or 101 (3,4,23,3) */
	int width;      /* stem width: 64 as torchvision; less for test models;
			   the last stage has 32 * width channels */
	int mid_dim;    /* LFSA and token dimension (1024) */
	int tokens;     /* visual tokens (4) */
	int heads;      /* attention heads (8) */
	int enc_layers; /* LFSA encoder layers (1) */
	int dec_layers; /* refinement decoder layers (2) */
	int out_dim;    /* descriptor dimension (1024) */
	int classes;    /* ArcFace classes; 0: no classifier */
	float arc_s;    /* ArcFace scale (sqrt(out_dim)) */
	float arc_m;    /* ArcFace margin (0.2) */
	int backbone_only; /* the ResNet alone (an ImageNet backbone imported
			      by tk-import, for tk-init --backbone); only
			      depth and width count */
};

/* Sizes are bounded (width <= 1024, mid_dim and out_dim <= 65536, tokens
 * <= 1024, layers <= 64, classes <= 2^24) so that no shape overflows.
 * "r50" or "r101", optionally with overrides after a colon:
 * "r50:width=8,mid_dim=64,out_dim=64,heads=4,classes=10".  Defaults are
 * the reference model's.  Returns 0, or -1 with a message in err. */
int tk_arch_parse(struct tk_arch *a, const char *spec, char *err, size_t errlen);
/* The architecture as weight-file metadata (string values), and back:
 * "format" is "tk-model" (or "tk-backbone" for a backbone alone, with
 * "depth" and "width" only), then a key per field. */
void tk_arch_to_meta(const struct tk_arch *a, struct st_doc *d);
/* d's metadata format when it is tk's ("tk-model", "tk-backbone", ...);
 * NULL for another program's safetensors (Hugging Face's "pt", none). */
const char *tk_meta_format(const struct st_doc *d);
int tk_arch_from_meta(struct tk_arch *a, const struct st_doc *d, char *err,
		      size_t errlen);
/* One line: "resnet101 width 64, mid 1024, 4 tokens, 8 heads, 1+2 layers,
 * out 1024, 81313 classes, 120.3M parameters" ("resnet101 width 64
 * backbone, 42.5M parameters" for a backbone alone). */
void tk_arch_describe(const struct tk_arch *a, char *buf, size_t len);

enum tk_param_kind {
	TK_PARAM,   /* trained */
	TK_BUFFER,  /* BatchNorm running_mean / running_var */
	TK_COUNTER, /* num_batches_tracked: I64 [] in files, a float here */
};

struct tk_param {
	char *name;
	enum tk_param_kind kind;
	int rank;
	int64_t shape[4];
	size_t numel;
	size_t offset; /* in floats, into tk_model.data */
	int decay;     /* weight decay applies: a trained tensor of rank > 1 */
};

/* The floats a tensor of numel values takes in the table: a multiple of
 * 16, so that every tensor is 64-byte aligned for vector loads. */
static inline size_t tk_param_slot(size_t numel)
{
	return (numel + 15) & ~(size_t)15;
}

struct tk_model {
	struct tk_arch arch;
	struct tk_param *p;
	int n;
	float *data; /* one allocation for every tensor, 64-byte aligned */
	size_t numel;
	int64_t *counters; /* scratch for writing counters as I64 */
};

/* Build the table for an architecture and allocate (zeroed) data. */
void tk_model_init(struct tk_model *m, const struct tk_arch *a);
void tk_model_free(struct tk_model *m);
/* Load a weight file or checkpoint: the architecture from its metadata,
 * every tensor checked against the table (a missing, extra, duplicated or
 * mis-shaped tensor is an error naming it), F16/BF16/F64 converted to
 * float (I64/I32 only for counters).  Shapes are checked before the data
 * is allocated.  Tensors named "optim.*" or "state.*" (checkpoint state)
 * are left for the trainer.  A backbone-only file is refused (it is
 * tk-init's input).  Returns 0, or -1 with a message in err. */
int tk_model_load(struct tk_model *m, const char *path, char *err,
		  size_t errlen);
/* The same from a parsed document (tk-import builds one in memory);
 * this one also accepts a backbone alone (m->arch.backbone_only). */
int tk_model_from_doc(struct tk_model *m, const struct st_doc *d, char *err,
		      size_t errlen);
/* Copy the backbone.* tensors of the weight file at path (a backbone
 * alone or a whole model) into m, whose table is built: the file's depth
 * and width must be m's.  Returns 0, or -1 with a message in err. */
int tk_model_copy_backbone(struct tk_model *m, const char *path, char *err,
			   size_t errlen);
/* Tensor by name: its table entry or its data; NULL when absent. */
const struct tk_param *tk_model_param(const struct tk_model *m,
				      const char *name);
float *tk_model_tensor(const struct tk_model *m, const char *name);
/* Add every tensor (F32; counters as I64 []) and the architecture
 * metadata to d; the data is m's, so d must be written before m changes.
 * Checkpoints add their own tensors and metadata to d before writing. */
void tk_model_to_doc(const struct tk_model *m, struct st_doc *d);
/* Write the model to path atomically (temporary name, then rename). */
void tk_model_save(const struct tk_model *m, const char *path);
/* The floats of one kind (TK_PARAM: those trained), summed. */
size_t tk_model_count(const struct tk_model *m, enum tk_param_kind kind);

#endif
