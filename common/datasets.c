/* datasets.c - Revisited Oxford/Paris and the 1M distractors (datasets.h);
 * GLDv2 is in gldv2.c. */
#define _GNU_SOURCE
#include "datasets.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "tk.h"

/* ROOT joined with the rest, as os.path.join would: no doubled slash. */
char *ds_path(const char *root, const char *fmt, ...)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	char *rest, *p;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&rest, fmt, ap) < 0)
		die_io("out of memory");
	va_end(ap);
	if (asprintf(&p, "%.*s%s%s", (int)n, root,
		     n && root[n - 1] == '/' ? "" : "/", rest) < 0)
		die_io("out of memory");
	free(rest);
	return p;
}

void ds_set_image(struct tk_image *im, char *path, const char *key,
		  size_t keylen, long label)
{
	/* One block: path, then key. */
	size_t n = strlen(path);
	im->path = xrealloc(path, n + keylen + 2);
	im->key = im->path + n + 1;
	memcpy(im->key, key, keylen);
	im->key[keylen] = 0;
	im->label = label;
	im->has_bbox = 0;
}

void ds_free(struct tk_image *im, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(im[i].path);
	free(im);
}

/* A list of str from the gnd dict, or die. */
static const struct pk_value *str_list(const char *file,
				       const struct pk_value *gnd,
				       const char *name)
{
	const struct pk_value *l = pk_dict_get(gnd, name);
	if (!l || (l->type != PK_LIST && l->type != PK_TUPLE))
		die_data("%s: no list '%s' in the ground truth", file, name);
	for (size_t i = 0; i < l->seq.n; i++)
		if (l->seq.v[i]->type != PK_STR || !l->seq.v[i]->str.len ||
		    strlen(l->seq.v[i]->str.p) != l->seq.v[i]->str.len)
			die_data("%s: %s[%zu] is a %s, not an image name", file,
				 name, i, pk_type_name(l->seq.v[i]->type));
	return l;
}

static void query_bbox(const char *file, const struct pk_value *gnd, size_t i,
		       struct tk_image *im)
{
	const struct pk_value *g = pk_dict_get(gnd, "gnd");
	if (!g || g->type != PK_LIST || i >= g->seq.n)
		die_data("%s: no gnd[%zu] for query %zu", file, i, i);
	const struct pk_value *b = pk_dict_get(g->seq.v[i], "bbx");
	if (!b || b->type == PK_NONE)
		return; /* a query without a box: the whole image */
	if ((b->type != PK_LIST && b->type != PK_TUPLE) || b->seq.n != 4)
		die_data("%s: gnd[%zu]['bbx'] is not 4 numbers", file, i);
	for (int k = 0; k < 4; k++) {
		im->bbox[k] = pk_number(b->seq.v[k]);
		if (!isfinite(im->bbox[k]))
			die_data("%s: gnd[%zu]['bbx'][%d] is not a finite number",
				 file, i, k);
	}
	im->has_bbox = 1;
}

struct tk_image *ds_revisitop(const char *root, const char *name, int queries,
			      size_t *n)
{
	char *file = ds_path(root, "%s/gnd_%s.pkl", name, name);
	struct pk_arena *arena;
	char err[512];
	int io;
	struct pk_value *gnd = pk_load_file(file, NULL, &arena, &io, err, sizeof err);
	if (!gnd)
		tk_die(io ? TK_EXIT_IO : TK_EXIT_DATA, "%s", err);
	if (gnd->type != PK_DICT)
		die_data("%s: the ground truth is a %s, not a dict", file,
			 pk_type_name(gnd->type));
	const struct pk_value *l = str_list(file, gnd, queries ? "qimlist" : "imlist");
	struct tk_image *im = xcalloc(l->seq.n + 1, sizeof *im);
	for (size_t i = 0; i < l->seq.n; i++) {
		const char *s = l->seq.v[i]->str.p;
		ds_set_image(&im[i], ds_path(root, "%s/jpg/%s.jpg", name, s), s,
			     strlen(s), -1);
		if (queries)
			query_bbox(file, gnd, i, &im[i]);
	}
	*n = l->seq.n;
	pk_free(arena);
	free(file);
	return im;
}

struct tk_image *ds_revisitop1m(const char *root, size_t *n)
{
	char *file = ds_path(root, "revisitop1m/revisitop1m.txt");
	FILE *fp = fopen(file, "r");
	if (!fp)
		die_io("cannot open %s:", file);
	struct tk_image *im = NULL;
	size_t cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	*n = 0;
	while ((len = getline(&line, &lcap, fp)) >= 0) {
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (len && line[len - 1] == '\r')
			line[--len] = 0;
		if (!len || strlen(line) != (size_t)len)
			die_data("%s: line %zu: %s", file, *n + 1,
				 len ? "a NUL byte" : "an empty name");
		if (*n == cap) {
			cap = cap ? 2 * cap : 1 << 16;
			im = xrealloc(im, xmul(cap, sizeof *im));
		}
		const char *base = strrchr(line, '/');
		base = base ? base + 1 : line;
		const char *dot = strrchr(base, '.');
		int ext = dot && dot != base;
		ds_set_image(&im[(*n)++],
			     ds_path(root, "revisitop1m/jpg/%s%s", line,
				     ext ? "" : ".jpg"),
			     base, ext ? (size_t)(dot - base) : strlen(base), -1);
	}
	if (ferror(fp))
		die_io("reading %s:", file);
	fclose(fp);
	free(line);
	free(file);
	return im;
}
