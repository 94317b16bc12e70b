/* imlist.h - the image list lines tk-list writes and tk-decode reads,
 * one image per line:
 *     path<TAB>key<TAB>label<TAB>bbox
 * label is an integer, -1 when there is none; bbox is empty or
 * "x0,y0,x1,y1", each number in the shortest form that reads back as the
 * same double (tk_format_double: 136.5, 34, 713.2). */
#ifndef TK_IMLIST_H
#define TK_IMLIST_H

#include <stdio.h>

struct tk_image {
	char *path, *key;
	long label;      /* -1: none */
	int has_bbox;
	double bbox[4]; /* x0, y0, x1, y1 */
};

/* The shortest text that strtod reads back as v exactly, as Python's
 * repr(v) writes it but without a trailing ".0": 136.5, 34, 1000, 0.0001,
 * 1e-05, 1e+16.  buf: at least 32 bytes. */
char *tk_format_double(char *buf, double v);
/* Write one line; returns what fprintf returns. */
int tk_image_print(FILE *fp, const struct tk_image *im);
/* Split a line (without its newline) in place into im, whose strings
 * point into line.  -1 with a message in err on a malformed line: not four
 * fields, an empty path, a label that is not an integer >= -1, a bbox that
 * is not four finite numbers. */
int tk_image_parse(char *line, struct tk_image *im, char *err, size_t errlen);

#endif
