/* import.c - names and architecture of imported weights. */
#define _GNU_SOURCE
#include "import.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

void tk_import_torch_doc(struct st_doc *d, const struct tl_checkpoint *c)
{
	for (int i = 0; i < c->n; i++) {
		const struct tl_tensor *t = &c->t[i];
		st_add(d, t->name, t->dtype, t->rank, t->shape, t->data);
	}
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A torchvision ResNet name as tk's: conv1 and bn1 are block1.0 and
 * block1.1, layer1..4 are block2..5; NULL for fc (dropped). */
static char *torchvision_name(const char *name)
{
	char *out = NULL;
	int layer, n = 0;
	if (starts(name, "conv1."))
		n = asprintf(&out, "backbone.block1.0.%s", name + 6);
	else if (starts(name, "bn1."))
		n = asprintf(&out, "backbone.block1.1.%s", name + 4);
	else if (sscanf(name, "layer%d.", &layer) == 1 && layer >= 1 &&
		 layer <= 4 && name[5] == '0' + layer && name[6] == '.')
		n = asprintf(&out, "backbone.block%d.%s", layer + 1, name + 7);
	else if (starts(name, "fc."))
		return NULL;
	else
		out = xstrdup(name); /* refused later as unexpected */
	if (n < 0)
		die_io("out of memory");
	return out;
}

static const struct st_tensor *find(const struct st_doc *d, const char *fmt,
				    ...) __attribute__((format(printf, 2, 3)));
static const struct st_tensor *find(const struct st_doc *d, const char *fmt,
				    ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	return st_find(d, name);
}

static int count(const struct st_doc *d, const char *fmt)
{
	int n = 0;
	while (n < 1000 && find(d, fmt, n))
		n++;
	return n;
}

/* A dimension of a tensor, or fallback when absent or of lower rank (the
 * model table then names what is wrong). */
static int dim(const struct st_tensor *t, int k, int fallback)
{
	if (!t || t->rank <= k || t->shape[k] < 1 || t->shape[k] > (1 << 30))
		return fallback;
	return (int)t->shape[k];
}

static int infer_arch(struct tk_arch *a, const struct st_doc *d,
		      int backbone_only, char *err, size_t errlen)
{
	tk_arch_parse(a, "r50", err, errlen);
	a->backbone_only = backbone_only;
	int blocks = count(d, "backbone.block4.%d.conv1.weight");
	if (blocks == 6)
		a->depth = 50;
	else if (blocks == 23)
		a->depth = 101;
	else
		return tk_errf(err, errlen,
			    "a ResNet with %d blocks in its third stage (6 for "
			    "ResNet-50, 23 for ResNet-101)",
			    blocks);
	a->width = dim(st_find(d, "backbone.block1.0.weight"), 0, 64);
	if (backbone_only)
		return 0;
	a->mid_dim = dim(st_find(d, "tr.conv.0.weight"), 0, 1024);
	a->tokens = dim(st_find(d, "tr.query"), 1, 4);
	a->enc_layers = count(d, "tr.encoder.%d.mlp.weight");
	a->dec_layers = count(d, "tr.decoder.%d.mlp.fc1.weight");
	a->out_dim = dim(st_find(d, "tr.proj.0.weight"), 0, 1024);
	a->classes = dim(st_find(d, "classifier.weight"), 0, 0);
	a->arc_s = sqrtf((float)a->out_dim);
	/* The number of heads leaves no trace in the shapes: the
	 * reference's 8, when the width allows it. */
	if (a->mid_dim % a->heads)
		return tk_errf(err, errlen,
			    "mid_dim %d is not a multiple of 8 heads: say the "
			    "architecture with --arch",
			    a->mid_dim);
	return 0;
}

int tk_import_doc(struct tk_model *m, const struct st_doc *d,
		  const struct tk_import_options *o,
		  struct tk_import_info *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof *info);
	/* tk writes "tk-model" or "tk-backbone"; other programs' safetensors
	 * hold a state_dict, with or without a "format" of their own
	 * (Hugging Face's save_file writes "pt"). */
	const char *format = tk_meta_format(d);
	int tk = format != NULL, torchvision = 0;
	/* Names as tk's: without the prefixes of the wrappers the model was
	 * trained in (DDP's "module.", torch.compile's "_orig_mod.", in
	 * either order), torchvision's mapped. */
	char **names = xcalloc(d->n ? d->n : 1, sizeof *names);
	for (int i = 0; i < d->n; i++) {
		const char *n = d->t[i].name;
		int ddp = 0, compiled = 0;
		while (!tk) {
			if (starts(n, "module."))
				n += strlen("module."), ddp = 1;
			else if (starts(n, "_orig_mod."))
				n += strlen("_orig_mod."), compiled = 1;
			else
				break;
		}
		info->prefixes += ddp;
		info->compiled += compiled;
		names[i] = xstrdup(n);
		if (strcmp(n, "layer1.0.conv1.weight") == 0)
			torchvision = 1;
	}
	struct st_doc w;
	st_init(&w);
	int rc = 0;
	for (int i = 0; i < d->n; i++) {
		char *name = names[i];
		if (torchvision) {
			name = torchvision_name(names[i]);
			free(names[i]);
			names[i] = name;
		}
		if (!name || (o->classes == 0 && strcmp(name, "classifier.weight") == 0)) {
			info->dropped++;
			continue;
		}
		const struct st_tensor *t = &d->t[i];
		if (tk && (starts(name, "optim.") || starts(name, "state."))) {
			info->state++; /* a checkpoint's: not the model's */
			continue;
		}
		st_add(&w, name, t->dtype, t->rank, t->shape, t->data);
	}
	info->kind = tk ? "tk" : torchvision ? "torchvision ResNet" : "Token";
	if (!tk && !torchvision && !st_find(&w, "backbone.block1.0.weight"))
		rc = tk_errf(err, errlen,
			  "neither a Token state_dict (backbone.*, tr.*) nor a "
			  "torchvision ResNet (conv1, layer1..4): the first "
			  "tensor is '%s'",
			  d->n ? d->t[0].name : "none");
	/* BatchNorm layers saved before torch 0.4.1 have no counter. */
	int64_t zero = 0;
	for (int i = 0; rc == 0 && !tk && i < w.n; i++) {
		if (!ends(w.t[i].name, ".running_var"))
			continue;
		char name[512];
		snprintf(name, sizeof name, "%.*s.num_batches_tracked",
			 (int)(strlen(w.t[i].name) - 12), w.t[i].name);
		if (!st_find(&w, name)) {
			st_add(&w, name, ST_I64, 0, NULL, &zero);
			info->counters_added++;
		}
	}
	struct tk_arch a;
	if (rc == 0 && o->arch) {
		a = *o->arch;
		a.backbone_only = torchvision ||
				  (tk && strcmp(format, "tk-backbone") == 0);
		if (o->classes < 0 && !torchvision)
			a.classes = dim(st_find(&w, "classifier.weight"), 0, 0);
	} else if (rc == 0 && tk) {
		rc = tk_arch_from_meta(&a, d, err, errlen);
	} else if (rc == 0) {
		rc = infer_arch(&a, &w, torchvision, err, errlen);
	}
	if (rc == 0 && o->classes >= 0 && !a.backbone_only)
		a.classes = o->classes;
	if (rc == 0) {
		tk_arch_to_meta(&a, &w);
		rc = tk_model_from_doc(m, &w, err, errlen);
	}
	for (int i = 0; i < d->n; i++)
		free(names[i]);
	free(names);
	st_free(&w);
	return rc;
}
