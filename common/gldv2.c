/* gldv2.c - Google Landmarks v2 train lists (datasets.h), as the
 * reference's Dataset/configdataset.py builds them:
 * - images in CSV order, an id seen again keeping its first place and
 *   taking its last label (a Python dict keyed by id);
 * - labels: the landmark ids sorted, numbered 0..C-1 (train_clean.csv: as
 *   strings, sorted(set(labels)) on the CSV text; train.csv: as integers);
 * - the train/val split of build_train_and_validation_splits, numpy's
 *   RandomState(MT19937(SeedSequence(seed))) included (nprand.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "datasets.h"
#include "nprand.h"
#include "tk.h"

/* ---- a string -> index hash map (open addressing) ---- */

struct strmap {
	const char **key;
	size_t *val;
	size_t cap, n;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* The slot of key: its value, or where it goes. */
static size_t slot(const struct strmap *m, const char *key)
{
	size_t i = hash(key) & (m->cap - 1);
	while (m->key[i] && strcmp(m->key[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void grow(struct strmap *m)
{
	struct strmap old = *m;
	m->cap = old.cap ? 2 * old.cap : 1024;
	m->key = xcalloc(m->cap, sizeof *m->key);
	m->val = xcalloc(m->cap, sizeof *m->val);
	for (size_t i = 0; i < old.cap; i++)
		if (old.key[i]) {
			size_t j = slot(m, old.key[i]);
			m->key[j] = old.key[i];
			m->val[j] = old.val[i];
		}
	free(old.key);
	free(old.val);
}

/* Whether key is there, and its value. */
static int strmap_find(const struct strmap *m, const char *key, size_t *val)
{
	if (!m->cap)
		return 0;
	size_t i = slot(m, key);
	if (m->key[i])
		*val = m->val[i];
	return m->key[i] != NULL;
}

/* Add a key that is not there; the map keeps the pointer. */
static void strmap_add(struct strmap *m, const char *key, size_t val)
{
	if (2 * (m->n + 1) > m->cap)
		grow(m);
	size_t i = slot(m, key);
	m->key[i] = key;
	m->val[i] = val;
	m->n++;
}

static void strmap_free(struct strmap *m)
{
	free(m->key);
	free(m->val);
}

/* ---- strings kept for the whole read, in large blocks ---- */

struct pool {
	char *block;
	size_t used, size;
	char **blocks;
	size_t nblocks;
};

static char *pool_dup(struct pool *p, const char *s, size_t n)
{
	if (p->size - p->used < n + 1) {
		p->size = n + 1 > (1 << 20) ? n + 1 : 1 << 20;
		p->block = xmalloc(p->size);
		p->used = 0;
		p->blocks = xrealloc(p->blocks, xmul(p->nblocks + 1, sizeof *p->blocks));
		p->blocks[p->nblocks++] = p->block;
	}
	char *d = p->block + p->used;
	memcpy(d, s, n);
	d[n] = 0;
	p->used += n + 1;
	return d;
}

static void pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->nblocks; i++)
		free(p->blocks[i]);
	free(p->blocks);
}

/* ---- reading ---- */

struct landmark {
	const char *id;  /* as text (train_clean.csv) or canonical decimal */
	uint64_t num;
	size_t count;    /* images, after duplicates were resolved */
	long label;      /* -1 while it has no image */
};

struct reader {
	const char *file;
	int clean;
	struct csv csv;
	struct pool pool;
	struct strmap ids, lms;
	const char **id;   /* [nimages] */
	size_t *lm;        /* [nimages]: index into lmk */
	size_t nimages, capimages, duplicates;
	struct landmark *lmk;
	size_t nlmk, caplmk;
};

static _Noreturn void bad(const struct reader *r, const char *what, const char *s)
{
	die_data("%s: line %ld: %s '%.60s'", r->file, r->csv.line, what, s);
}

static size_t add_landmark(struct reader *r, const char *s)
{
	if (!*s)
		bad(r, "empty landmark_id", s);
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			bad(r, "landmark_id is not a non-negative integer:", s);
		v = v * 10 + (*p - '0');
	}
	if (!r->clean) /* integers: "007" is 7 */
		while (s[0] == '0' && s[1])
			s++;
	size_t i;
	if (strmap_find(&r->lms, s, &i))
		return i;
	if (r->nlmk == r->caplmk) {
		r->caplmk = r->caplmk ? 2 * r->caplmk : 1024;
		r->lmk = xrealloc(r->lmk, xmul(r->caplmk, sizeof *r->lmk));
	}
	const char *id = pool_dup(&r->pool, s, strlen(s));
	strmap_add(&r->lms, id, r->nlmk);
	r->lmk[r->nlmk] = (struct landmark){id, v, 0, -1};
	return r->nlmk++;
}

static void add_image(struct reader *r, const char *id, size_t n, size_t lm)
{
	if (n < 3)
		bad(r, "image id shorter than 3 characters:", id);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
			bad(r, "image id is not made of letters, digits, _ and -:", id);
	}
	char tmp[256];
	if (n >= sizeof tmp)
		bad(r, "image id too long:", id);
	memcpy(tmp, id, n);
	tmp[n] = 0;
	size_t i;
	if (strmap_find(&r->ids, tmp, &i)) {
		/* a dict keeps the first place and takes the last value */
		r->lm[i] = lm;
		r->duplicates++;
		return;
	}
	if (r->nimages == r->capimages) {
		r->capimages = r->capimages ? 2 * r->capimages : 1 << 16;
		r->id = xrealloc(r->id, xmul(r->capimages, sizeof *r->id));
		r->lm = xrealloc(r->lm, xmul(r->capimages, sizeof *r->lm));
	}
	r->id[r->nimages] = pool_dup(&r->pool, tmp, n);
	strmap_add(&r->ids, r->id[r->nimages], r->nimages);
	r->lm[r->nimages++] = lm;
}

static void read_csv(struct reader *r)
{
	char err[256];
	FILE *fp = fopen(r->file, "rb");
	if (!fp)
		die_io("cannot open %s:", r->file);
	csv_init(&r->csv, fp);
	int rc = csv_read(&r->csv, err, sizeof err);
	if (rc <= 0)
		die_data("%s: %s", r->file, rc ? err : "empty file");
	int lcol = csv_column(&r->csv, "landmark_id");
	int icol = csv_column(&r->csv, r->clean ? "images" : "id");
	if (lcol < 0 || icol < 0)
		die_data("%s: line 1: no '%s' column", r->file,
			 lcol < 0 ? "landmark_id" : r->clean ? "images" : "id");
	int need = (lcol > icol ? lcol : icol) + 1;
	while ((rc = csv_read(&r->csv, err, sizeof err)) > 0) {
		struct csv *c = &r->csv;
		if (c->nfield == 1 && !c->field[0][0])
			continue; /* a blank line, as pandas skips it */
		if (c->nfield < need)
			die_data("%s: line %ld: %d fields, expected at least %d",
				 r->file, c->line, c->nfield, need);
		size_t lm = add_landmark(r, c->field[lcol]);
		if (!r->clean) {
			add_image(r, c->field[icol], strlen(c->field[icol]), lm);
			continue;
		}
		/* row['images'].split(' ') */
		const char *s = c->field[icol];
		for (;;) {
			const char *sp = strchr(s, ' ');
			size_t n = sp ? (size_t)(sp - s) : strlen(s);
			if (!n)
				bad(r, "empty image id in", c->field[icol]);
			add_image(r, s, n, lm);
			if (!sp)
				break;
			s = sp + 1;
		}
	}
	if (rc < 0)
		die_data("%s: %s", r->file, err);
	fclose(fp);
	csv_free(&r->csv);
}

static const struct landmark *sort_base;
static int by_text(const void *a, const void *b)
{
	return strcmp(sort_base[*(const size_t *)a].id,
		      sort_base[*(const size_t *)b].id);
}
static int by_number(const void *a, const void *b)
{
	uint64_t x = sort_base[*(const size_t *)a].num;
	uint64_t y = sort_base[*(const size_t *)b].num;
	return x < y ? -1 : x > y;
}

/* Number the landmarks that have images in sorted order; write the map. */
static size_t relabel(struct reader *r, const char *map)
{
	for (size_t i = 0; i < r->nimages; i++)
		r->lmk[r->lm[i]].count++;
	size_t *order = xmalloc(xmul(r->nlmk, sizeof *order)), n = 0;
	for (size_t i = 0; i < r->nlmk; i++)
		if (r->lmk[i].count)
			order[n++] = i;
	sort_base = r->lmk;
	qsort(order, n, sizeof *order, r->clean ? by_text : by_number);
	struct tk_outfile out;
	FILE *fp = map ? tk_outfile_open(&out, map) : NULL;
	for (size_t k = 0; k < n; k++) {
		struct landmark *l = &r->lmk[order[k]];
		l->label = (long)k;
		if (fp && fprintf(fp, "%zu\t%s\t%zu\n", k, l->id, l->count) < 0)
			die_io("writing %s:", map);
	}
	if (fp)
		tk_outfile_commit(&out);
	free(order);
	return n;
}

/* build_train_and_validation_splits: the selected images, in order. */
static size_t *split(const struct reader *r, const struct ds_gldv2_options *o,
		     size_t *nsel)
{
	size_t n = r->nimages, nl = r->nlmk;
	/* classes in order of first appearance; their images in order */
	size_t *first = xmalloc(xmul(nl + 1, sizeof *first)), ng = 0;
	size_t *start = xcalloc(nl + 1, sizeof *start);
	long *group = xmalloc(xmul(nl + 1, sizeof *group));
	for (size_t i = 0; i < nl; i++)
		group[i] = -1;
	for (size_t i = 0; i < n; i++)
		if (group[r->lm[i]] < 0) {
			group[r->lm[i]] = (long)ng;
			first[ng++] = r->lm[i];
		}
	for (size_t g = 0; g < ng; g++)
		start[g + 1] = start[g] + r->lmk[first[g]].count;
	size_t *members = xmalloc(xmul(n + 1, sizeof *members));
	size_t *fill = xmalloc(xmul(ng + 1, sizeof *fill));
	memcpy(fill, start, ng * sizeof *fill);
	for (size_t i = 0; i < n; i++)
		members[fill[group[r->lm[i]]]++] = i;

	struct np_rng rng;
	uint32_t w[2];
	np_rng_seed(&rng, w, np_int_words(o->seed, w));
	size_t *val = xmalloc(xmul(n + 1, sizeof *val)), nval = 0;
	size_t *train = xmalloc(xmul(n + 1, sizeof *train)), ntrain = 0;
	size_t *perm = xmalloc(xmul(n + 1, sizeof *perm));
	for (size_t g = 0; g < ng; g++) {
		size_t k = start[g + 1] - start[g], *idx = members + start[g];
		for (size_t j = 0; j < k; j++)
			perm[j] = j;
		np_shuffle(&rng, perm, k);
		size_t cut = (size_t)(o->val_fraction * (double)k);
		cut = cut < 1 ? 1 : cut;
		for (size_t j = 0; j < k; j++) {
			if (j < cut)
				val[nval++] = idx[perm[j]];
			else
				train[ntrain++] = idx[perm[j]];
		}
	}
	/* Both splits shuffled once more, val first. */
	size_t *lists[2] = {val, train}, counts[2] = {nval, ntrain};
	for (int s = 0; s < 2; s++) {
		for (size_t j = 0; j < counts[s]; j++)
			perm[j] = j;
		np_shuffle(&rng, perm, counts[s]);
		for (size_t j = 0; j < counts[s]; j++)
			members[j] = lists[s][perm[j]];
		memcpy(lists[s], members, counts[s] * sizeof *members);
	}
	free(first);
	free(start);
	free(group);
	free(members);
	free(fill);
	free(perm);
	if (o->split == DS_VAL) {
		free(train);
		*nsel = nval;
		return val;
	}
	free(val);
	*nsel = ntrain;
	return train;
}

struct tk_image *ds_gldv2(const struct ds_gldv2_options *o, size_t *n,
			  struct ds_gldv2_counts *counts)
{
	struct reader r;
	memset(&r, 0, sizeof r);
	r.clean = o->clean;
	char *file = ds_path(o->root, "%s", o->clean ? "train_clean.csv" : "train.csv");
	r.file = file;
	read_csv(&r);
	counts->classes = relabel(&r, o->label_map);
	counts->images = r.nimages;
	counts->duplicates = r.duplicates;
	size_t *sel = NULL, nsel = r.nimages;
	if (o->split != DS_ALL)
		sel = split(&r, o, &nsel);
	struct tk_image *im = xcalloc(nsel + 1, sizeof *im);
	for (size_t k = 0; k < nsel; k++) {
		size_t i = sel ? sel[k] : k;
		const char *id = r.id[i];
		ds_set_image(&im[k],
			     ds_path(o->root, "train/%c/%c/%c/%s.jpg", id[0], id[1],
				     id[2], id),
			     id, strlen(id), r.lmk[r.lm[i]].label);
	}
	*n = nsel;
	free(sel);
	free(r.id);
	free(r.lm);
	free(r.lmk);
	strmap_free(&r.ids);
	strmap_free(&r.lms);
	pool_free(&r.pool);
	free(file);
	return im;
}
