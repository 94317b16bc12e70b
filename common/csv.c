/* csv.c - the CSV reader of csv.h: a small state machine over getc. */
#include "csv.h"

#include <stdlib.h>
#include <string.h>

#include "tk.h"

void csv_init(struct csv *c, FILE *fp)
{
	memset(c, 0, sizeof *c);
	c->fp = fp;
	c->next_line = 1;
}

void csv_free(struct csv *c)
{
	free(c->buf);
	free(c->field);
	memset(c, 0, sizeof *c);
}

static void put(struct csv *c, char ch)
{
	if (c->len == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 4096;
		c->buf = xrealloc(c->buf, c->cap);
	}
	c->buf[c->len++] = ch;
}

/* Field starts are kept as offsets until the record is complete: buf
 * moves as it grows. */
static void end_field(struct csv *c, size_t *start)
{
	put(c, 0);
	if (c->nfield == c->capfield) {
		c->capfield = c->capfield ? 2 * c->capfield : 16;
		c->field = xrealloc(c->field, c->capfield * sizeof *c->field);
	}
	c->field[c->nfield++] = (char *)(uintptr_t)*start;
	*start = c->len;
}

int csv_read(struct csv *c, char *err, size_t errlen)
{
	enum { START, PLAIN, QUOTED, QUOTE_IN_QUOTED } st = START;
	size_t start = 0;
	int ch;
	c->len = 0;
	c->nfield = 0;
	c->line = c->next_line;
	for (;;) {
		ch = getc_unlocked(c->fp);
		if (ch == '\n')
			c->next_line++;
		if (ch == 0) {
			snprintf(err, errlen, "line %ld: a NUL byte", c->next_line);
			return -1;
		}
		switch (st) {
		case START:
			if (ch == EOF && c->nfield == 0) {
				if (ferror(c->fp)) {
					snprintf(err, errlen, "line %ld: read error",
						 c->line);
					return -1;
				}
				return 0;
			}
			if (ch == '"') {
				st = QUOTED;
				continue;
			}
			st = PLAIN;
			/* fall through */
		case PLAIN:
			if (ch == ',') {
				end_field(c, &start);
				st = START;
			} else if (ch == '\n' || ch == EOF) {
				/* CRLF: the CR ends the field too. */
				if (c->len > start && c->buf[c->len - 1] == '\r')
					c->len--;
				goto record;
			} else if (ch == '"') {
				snprintf(err, errlen,
					 "line %ld: a quote inside an unquoted field",
					 c->next_line);
				return -1;
			} else {
				put(c, ch);
			}
			break;
		case QUOTED:
			if (ch == EOF) {
				snprintf(err, errlen,
					 "line %ld: a quoted field never ends", c->line);
				return -1;
			}
			if (ch == '"')
				st = QUOTE_IN_QUOTED;
			else
				put(c, ch);
			break;
		case QUOTE_IN_QUOTED:
			if (ch == '"') {
				put(c, '"');
				st = QUOTED;
			} else if (ch == ',') {
				end_field(c, &start);
				st = START;
			} else if (ch == '\n' || ch == EOF) {
				goto record;
			} else if (ch == '\r') {
				int next = getc_unlocked(c->fp);
				if (next == '\n') {
					c->next_line++;
					goto record;
				}
				if (next != EOF)
					ungetc(next, c->fp);
				snprintf(err, errlen,
					 "line %ld: a CR after a closing quote",
					 c->next_line);
				return -1;
			} else {
				snprintf(err, errlen,
					 "line %ld: text after a closing quote",
					 c->next_line);
				return -1;
			}
			break;
		}
	}
record:
	end_field(c, &start);
	for (int i = 0; i < c->nfield; i++)
		c->field[i] = c->buf + (uintptr_t)c->field[i];
	return 1;
}

int csv_column(const struct csv *c, const char *name)
{
	for (int i = 0; i < c->nfield; i++)
		if (strcmp(c->field[i], name) == 0)
			return i;
	return -1;
}
