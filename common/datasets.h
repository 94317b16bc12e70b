/* datasets.h - the image lists of the datasets tk knows, read from their
 * metadata as the reference code reads it.  Each reader returns an array
 * of images (imlist.h) in the reference order and dies with one line
 * naming the file on bad metadata (exit 2) or an unreadable file (exit 3). */
#ifndef TK_DATASETS_H
#define TK_DATASETS_H

#include <stddef.h>

#include "imlist.h"

/* Revisited Oxford / Paris: ROOT/<name>/gnd_<name>.pkl; the database
 * images (imlist) or the queries (qimlist, with their bbx); paths
 * ROOT/<name>/jpg/<image>.jpg. */
struct tk_image *ds_revisitop(const char *root, const char *name, int queries,
			      size_t *n);
/* The 1M distractors: names from ROOT/revisitop1m/revisitop1m.txt, paths
 * ROOT/revisitop1m/jpg/<name>, ".jpg" appended to a name without an
 * extension; the key is the name's stem. */
struct tk_image *ds_revisitop1m(const char *root, size_t *n);

enum ds_split { DS_ALL, DS_TRAIN, DS_VAL };
struct ds_gldv2_options {
	const char *root;
	int clean;            /* train_clean.csv instead of train.csv */
	enum ds_split split;
	double val_fraction;  /* in (0, 1) */
	unsigned long seed;
	const char *label_map; /* written: label, landmark_id, images */
};
struct ds_gldv2_counts {
	size_t classes, images, duplicates; /* before the split */
};
/* Google Landmarks v2 train images with labels 0..C-1 (see tk-list(1)
 * for the order); paths ROOT/train/a/b/c/<id>.jpg. */
struct tk_image *ds_gldv2(const struct ds_gldv2_options *o, size_t *n,
			  struct ds_gldv2_counts *counts);

/* Free what the readers return: each image's path and key are one block. */
void ds_free(struct tk_image *im, size_t n);
/* For the readers: ROOT/<fmt...> without a doubled slash (malloc'd). */
char *ds_path(const char *root, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Fill im: path (malloc'd, taken over) with key after it in one block. */
void ds_set_image(struct tk_image *im, char *path, const char *key,
		  size_t keylen, long label);

#endif
