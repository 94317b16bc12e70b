/* imlist.c - image list lines (imlist.h). */
#include "imlist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

char *tk_format_double(char *buf, double v)
{
	if (!isfinite(v)) {
		snprintf(buf, 32, "%g", v);
		return buf;
	}
	/* The fewest significant digits that read back as v ... */
	int p;
	for (p = 1; p < 17; p++) {
		snprintf(buf, 32, "%.*e", p - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* ... written as Python's repr would, less its ".0": fixed-point for
	 * exponents -4..15, else with an exponent. */
	int exp = v == 0 ? 0 : atoi(strchr(buf, 'e') + 1);
	if (exp < -4 || exp >= 16)
		snprintf(buf, 32, "%.*e", p - 1, v);
	else
		snprintf(buf, 32, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, v);
	return buf;
}

int tk_image_print(FILE *fp, const struct tk_image *im)
{
	if (!im->has_bbox)
		return fprintf(fp, "%s\t%s\t%ld\t\n", im->path, im->key, im->label);
	char b[4][32];
	return fprintf(fp, "%s\t%s\t%ld\t%s,%s,%s,%s\n", im->path, im->key,
		       im->label, tk_format_double(b[0], im->bbox[0]),
		       tk_format_double(b[1], im->bbox[1]),
		       tk_format_double(b[2], im->bbox[2]),
		       tk_format_double(b[3], im->bbox[3]));
}

int tk_image_parse(char *line, struct tk_image *im, char *err, size_t errlen)
{
	char *f[4];
	int n = 0;
	for (char *s = line;; s++) {
		if (n < 4)
			f[n] = s;
		n++;
		s = strchr(s, '\t');
		if (!s)
			break;
		*s = 0;
	}
	if (n != 4) {
		snprintf(err, errlen, "%d tab-separated fields, expected 4 "
				      "(path, key, label, bbox)", n);
		return -1;
	}
	memset(im, 0, sizeof *im);
	im->path = f[0];
	im->key = f[1];
	if (!*im->path) {
		snprintf(err, errlen, "an empty path");
		return -1;
	}
	char *end;
	errno = 0;
	im->label = strtol(f[2], &end, 10);
	if (errno || end == f[2] || *end || im->label < -1) {
		snprintf(err, errlen, "label '%.40s' is not an integer >= -1", f[2]);
		return -1;
	}
	if (!*f[3])
		return 0;
	char *s = f[3];
	for (int i = 0; i < 4; i++) {
		errno = 0;
		im->bbox[i] = strtod(s, &end);
		if (errno || end == s || !isfinite(im->bbox[i]) ||
		    *end != (i < 3 ? ',' : 0)) {
			snprintf(err, errlen, "bbox '%.80s' is not x0,y0,x1,y1", f[3]);
			return -1;
		}
		s = end + 1;
	}
	im->has_bbox = 1;
	return 0;
}
