/* labels.h - the label and bbox of each image key, read from a file of
 * tk-list lines (tk-decode --labels), for looking up images met in
 * archives by key.  Sized for Google Landmarks v2 (1.58M keys): the keys
 * and their fields lie in one arena, and an open-addressing table holds
 * 32-bit offsets into it. */
#ifndef TK_LABELS_H
#define TK_LABELS_H

#include <stddef.h>

struct tk_labels;

/* Read the lines of path (tk_list_line_parse's format; the key of a line
 * without one is its path's stem).  A key given twice with another label
 * or bbox, a bad line, a label beyond 32 bits: die naming the file and
 * line (exit 2); a file that cannot be read: exit 3. */
struct tk_labels *tk_labels_read(const char *path);
/* Look key up: 1 with its label (-1: none) and bbox, and the key marked
 * seen; 0 when it is not there. */
int tk_labels_find(struct tk_labels *t, const char *key, long *label,
		   int *has_bbox, double bbox[4]);
/* How many keys there are. */
size_t tk_labels_count(const struct tk_labels *t);
/* How many keys were never found, and the first of them in the file's
 * order (NULL when none). */
size_t tk_labels_unseen(const struct tk_labels *t, const char **first);
void tk_labels_free(struct tk_labels *t);

#endif
