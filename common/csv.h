/* csv.h - a CSV reader (RFC 4180, as Python's csv module and pandas
 * write it): fields separated by commas, quoted fields with "" for a quote
 * and with commas, CR and LF inside, lines ending in LF or CRLF.  Errors
 * name the line where the bad record starts. */
#ifndef TK_CSV_H
#define TK_CSV_H

#include <stdio.h>

struct csv {
	FILE *fp;
	long line;      /* line on which the last record started, from 1 */
	long next_line; /* line the next record starts on */
	char *buf;      /* the fields, NUL-separated */
	size_t len, cap;
	char **field;
	int nfield, capfield;
};

void csv_init(struct csv *c, FILE *fp);
/* The next record into c->field[0..c->nfield): 1, 0 at the end, -1 with a
 * message in err (which does not name the file: the caller does).  A
 * blank line is a record of one empty field. */
int csv_read(struct csv *c, char *err, size_t errlen);
/* Index of the field equal to name in the record read last; -1 if none. */
int csv_column(const struct csv *c, const char *name);
void csv_free(struct csv *c);

#endif
