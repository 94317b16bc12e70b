/* checkpoint.c - training checkpoints as single safetensors documents. */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "stream.h"
#include "tk.h"

#define MOMENTUM "optim.momentum."

/* Metadata keys of the state: integers, then doubles. */
static const struct {
	const char *key;
	size_t off;
	int is_double, is_u64;
} fields[] = {
#define L(k, f) {k, offsetof(struct tk_train_state, f), 0, 0}
#define D(k, f) {k, offsetof(struct tk_train_state, f), 1, 0}
	L("train_step", step), L("train_epoch", epoch), L("train_seen", seen),
	L("train_micro", micro),
	{"train_seed", offsetof(struct tk_train_state, h.seed), 0, 1},
	D("train_warmup_lr", h.warmup_lr), D("train_base_lr", h.base_lr),
	D("train_final_lr", h.final_lr), D("train_momentum", h.momentum),
	D("train_weight_decay", h.weight_decay), D("train_clip", h.clip),
	D("train_dropout", h.dropout),
#undef L
#undef D
};
#define NFIELDS (sizeof fields / sizeof *fields)

static const struct {
	const char *key;
	size_t off;
	int is_long;
} ints[] = {
	{"train_batch", offsetof(struct tk_train_state, h.batch), 0},
	{"train_update_every", offsetof(struct tk_train_state, h.update_every), 0},
	{"train_epoch_size", offsetof(struct tk_train_state, h.epoch_size), 1},
	{"train_epochs", offsetof(struct tk_train_state, h.epochs), 0},
	{"train_warmup_epochs", offsetof(struct tk_train_state, h.warmup_epochs), 0},
	{"train_threads", offsetof(struct tk_train_state, threads), 0},
};
#define NINTS (sizeof ints / sizeof *ints)

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s: %s", path, what);
	return -1;
}

static int get_number(const struct st_doc *d, const char *key, double *v)
{
	const char *s = st_meta_get(d, key);
	if (!s)
		return -1;
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return end == s || *end || errno ? -2 : 0;
}

int tk_checkpoint_load(struct tk_model *m, float **momentum,
		       struct tk_train_state *st, const char *path, char *err,
		       size_t errlen)
{
	struct tk_mapped map;
	struct st_doc d;
	st_init(&d);
	memset(st, 0, sizeof *st);
	*momentum = NULL;
	if (tk_map_file(path, &map, &d, err, errlen) < 0) {
		st_free(&d);
		return -1;
	}
	char what[768];
	int rc = -1;
	if (!st_meta_get(&d, "train_step")) {
		fail(err, errlen, "not a checkpoint of tk-train (no training state)",
		     path);
		goto out;
	}
	if (tk_model_from_doc(m, &d, what, sizeof what) < 0) {
		fail(err, errlen, what, path);
		goto out;
	}
	for (size_t i = 0; i < NFIELDS + NINTS; i++) {
		const char *key = i < NFIELDS ? fields[i].key : ints[i - NFIELDS].key;
		double v;
		int r = get_number(&d, key, &v);
		if (r < 0 || !isfinite(v)) {
			snprintf(what, sizeof what, "metadata '%s' is %s", key,
				 r == -1 ? "missing" : "not a number");
			fail(err, errlen, what, path);
			goto fail_model;
		}
		if (i < NFIELDS) {
			char *p = (char *)st + fields[i].off;
			if (fields[i].is_double)
				*(double *)p = v;
			else if (fields[i].is_u64) /* the seed, exactly */
				*(uint64_t *)p = strtoull(st_meta_get(&d, key), NULL, 10);
			else
				*(long *)p = (long)v;
		} else {
			char *p = (char *)st + ints[i - NFIELDS].off;
			if (ints[i - NFIELDS].is_long)
				*(long *)p = (long)v;
			else
				*(int *)p = (int)v;
		}
	}
	double v;
	if (get_number(&d, "val_loss", &v) == 0) {
		st->has_val = 1;
		st->val_loss = v;
		get_number(&d, "val_top1", &st->val_top1);
		get_number(&d, "val_top5", &st->val_top5);
		if (get_number(&d, "val_images", &v) == 0)
			st->val_images = (long)v;
	}
	if (st->h.batch < 1 || st->h.update_every < 1 || st->h.epoch_size < 1 ||
	    st->step < 0 || st->epoch < 0 || st->seen < 0 || st->micro < 0) {
		fail(err, errlen, "training state out of range", path);
		goto fail_model;
	}
	*momentum = aligned_alloc(64, xmul((m->numel + 15) & ~(size_t)15, 4));
	if (!*momentum)
		die_io("out of memory for the momentum buffers");
	memset(*momentum, 0, m->numel * sizeof **momentum);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind != TK_PARAM)
			continue;
		char name[300];
		snprintf(name, sizeof name, MOMENTUM "%s", p->name);
		const struct st_tensor *t = st_find(&d, name);
		int ok = t && t->dtype == ST_F32 && st_numel(t) == p->numel;
		if (!ok) {
			snprintf(what, sizeof what, "tensor '%s' is %s", name,
				 t ? "not F32 of the parameter's shape" : "missing");
			fail(err, errlen, what, path);
			free(*momentum);
			*momentum = NULL;
			goto fail_model;
		}
		memcpy(*momentum + p->offset, t->data, p->numel * sizeof(float));
	}
	rc = 0;
	goto out;
fail_model:
	tk_model_free(m);
out:
	st_free(&d);
	tk_unmap_file(&map);
	return rc;
}

void tk_checkpoint_save(const char *path, const struct tk_model *m,
			const float *momentum, const struct tk_train_state *st)
{
	struct st_doc d;
	st_init(&d);
	tk_model_to_doc(m, &d);
	st_meta_set(&d, "checkpoint", "tk-train");
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *p = (const char *)st + fields[i].off;
		if (fields[i].is_double)
			st_meta_setf(&d, fields[i].key, "%.17g", *(const double *)p);
		else if (fields[i].is_u64)
			st_meta_setf(&d, fields[i].key, "%llu",
				     (unsigned long long)*(const uint64_t *)p);
		else
			st_meta_setf(&d, fields[i].key, "%ld", *(const long *)p);
	}
	for (size_t i = 0; i < NINTS; i++) {
		const char *p = (const char *)st + ints[i].off;
		if (ints[i].is_long)
			st_meta_setf(&d, ints[i].key, "%ld", *(const long *)p);
		else
			st_meta_setf(&d, ints[i].key, "%d", *(const int *)p);
	}
	if (st->has_val) {
		st_meta_setf(&d, "val_loss", "%.9g", st->val_loss);
		st_meta_setf(&d, "val_top1", "%.9g", st->val_top1);
		st_meta_setf(&d, "val_top5", "%.9g", st->val_top5);
		st_meta_setf(&d, "val_images", "%ld", st->val_images);
	}
	char **names = xcalloc(m->n, sizeof *names);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind != TK_PARAM)
			continue;
		if (asprintf(&names[i], MOMENTUM "%s", p->name) < 0)
			die_io("out of memory");
		st_add(&d, names[i], ST_F32, p->rank, p->shape, momentum + p->offset);
	}
	struct tk_outfile o;
	FILE *fp = tk_outfile_open(&o, path);
	if (st_write(fp, &d) < 0)
		die_io("writing %s:", path);
	tk_outfile_commit(&o);
	st_free(&d);
	for (int i = 0; i < m->n; i++)
		free(names[i]);
	free(names);
}
