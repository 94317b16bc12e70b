/* checkpoint.c - training checkpoints as single safetensors documents. */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "stream.h"
#include "tk.h"

#define MOMENTUM "optim.momentum."

/* The training state in the metadata: a checkpoint is outside data
 * (passed between machines and people), so each value is read whole and
 * checked against the bounds tk-train's options give it before it is
 * stored.  The order is the order written. */
enum kind { INT, LONG, U64, DOUBLE };
static const struct {
	const char *key;
	size_t off;
	enum kind kind;
	long lo, hi; /* INT and LONG */
} fields[] = {
#define F(k, f, kind, lo, hi) {k, offsetof(struct tk_train_state, f), kind, lo, hi}
#define D(k, f) F(k, f, DOUBLE, 0, 0)
	F("train_step", step, LONG, 0, LONG_MAX),
	F("train_epoch", epoch, LONG, 0, LONG_MAX),
	F("train_seen", seen, LONG, 0, LONG_MAX),
	F("train_micro", micro, LONG, 0, LONG_MAX),
	F("train_seed", h.seed, U64, 0, 0),
	D("train_warmup_lr", h.warmup_lr), D("train_base_lr", h.base_lr),
	D("train_final_lr", h.final_lr), D("train_momentum", h.momentum),
	D("train_weight_decay", h.weight_decay), D("train_clip", h.clip),
	D("train_dropout", h.dropout),
	F("train_batch", h.batch, INT, 1, TK_HP_MAX_COUNT),
	F("train_update_every", h.update_every, INT, 1, TK_HP_MAX_COUNT),
	F("train_epoch_size", h.epoch_size, LONG, 1, TK_HP_MAX_EPOCH_SIZE),
	F("train_epochs", h.epochs, INT, 1, TK_HP_MAX_COUNT),
	F("train_warmup_epochs", h.warmup_epochs, INT, 0, TK_HP_MAX_COUNT),
	F("train_threads", threads, INT, 0, TK_TRAIN_MAX_THREADS),
#undef F
#undef D
};
#define NFIELDS (sizeof fields / sizeof *fields)

/* Field i from d into st: 0, or -1 with what is wrong in err. */
static int get_field(struct tk_train_state *st, const struct st_doc *d, size_t i,
		     char *err, size_t errlen)
{
	const char *key = fields[i].key, *s = st_meta_get(d, key);
	if (!s)
		return tk_errf(err, errlen, "metadata '%s' is missing", key);
	char *p = (char *)st + fields[i].off, *end;
	errno = 0;
	if (fields[i].kind == DOUBLE) {
		double v = strtod(s, &end);
		if (end == s || *end || errno || !isfinite(v))
			return tk_errf(err, errlen, "metadata '%s' is '%s', not a number",
				       key, s);
		*(double *)p = v;
	} else if (fields[i].kind == U64) {
		unsigned long long v = strtoull(s, &end, 10);
		if (!tk_whole_integer(s) || *s == '-' || errno)
			return tk_errf(err, errlen,
				       "metadata '%s' is '%s', not an integer in [0, %llu]",
				       key, s, (unsigned long long)UINT64_MAX);
		*(uint64_t *)p = v;
	} else {
		long v = strtol(s, &end, 10);
		if (!tk_whole_integer(s) || errno || v < fields[i].lo || v > fields[i].hi)
			return tk_errf(err, errlen,
				       "metadata '%s' is '%s', not an integer in [%ld, %ld]",
				       key, s, fields[i].lo, fields[i].hi);
		if (fields[i].kind == LONG)
			*(long *)p = v;
		else
			*(int *)p = (int)v;
	}
	return 0;
}

/* An optional number (the last validation's, which may be NaN): 0 when
 * present and a number. */
static int get_number(const struct st_doc *d, const char *key, double *v)
{
	const char *s = st_meta_get(d, key);
	if (!s)
		return -1;
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (end == s || *end || errno)
		return -1;
	*v = x;
	return 0;
}

int tk_checkpoint_from_doc(struct tk_model *m, float **momentum,
			   struct tk_train_state *st, const struct st_doc *d,
			   char *err, size_t errlen)
{
	memset(st, 0, sizeof *st);
	*momentum = NULL;
	if (!st_meta_get(d, "train_step"))
		return tk_errf(err, errlen,
			       "not a checkpoint of tk-train (no training state)");
	for (size_t i = 0; i < NFIELDS; i++)
		if (get_field(st, d, i, err, errlen) < 0)
			return -1;
	if (!(st->h.dropout >= 0 && st->h.dropout < 1))
		return tk_errf(err, errlen, "metadata 'train_dropout' is %g, not in [0, 1)",
			       st->h.dropout);
	if (st->h.warmup_epochs > st->h.epochs)
		return tk_errf(err, errlen,
			       "metadata 'train_warmup_epochs' is %d, more than "
			       "'train_epochs' %d", st->h.warmup_epochs, st->h.epochs);
	double v;
	if (get_number(d, "val_loss", &v) == 0) {
		st->has_val = 1;
		st->val_loss = v;
		get_number(d, "val_top1", &st->val_top1);
		get_number(d, "val_top5", &st->val_top5);
		if (get_number(d, "val_images", &v) == 0 && v >= 0 && v < 0x1p62)
			st->val_images = (long)v;
	}
	if (tk_model_from_doc(m, d, err, errlen) < 0)
		return -1;
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
		const struct st_tensor *t = st_find(d, name);
		if (!(t && t->dtype == ST_F32 && st_numel(t) == p->numel)) {
			tk_errf(err, errlen, "tensor '%s' is %s", name,
				t ? "not F32 of the parameter's shape" : "missing");
			free(*momentum);
			*momentum = NULL;
			tk_model_free(m);
			return -1;
		}
		memcpy(*momentum + p->offset, t->data, p->numel * sizeof(float));
	}
	return 0;
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
	int rc = tk_checkpoint_from_doc(m, momentum, st, &d, what, sizeof what);
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", path, what);
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
		switch (fields[i].kind) {
		case INT: st_meta_setf(&d, fields[i].key, "%d", *(const int *)p); break;
		case LONG: st_meta_setf(&d, fields[i].key, "%ld", *(const long *)p); break;
		case U64:
			st_meta_setf(&d, fields[i].key, "%llu",
				     (unsigned long long)*(const uint64_t *)p);
			break;
		case DOUBLE:
			st_meta_setf(&d, fields[i].key, "%.17g", *(const double *)p);
			break;
		}
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
