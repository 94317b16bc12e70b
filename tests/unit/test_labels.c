/* test_labels - the key table of tk-decode --labels through its growth:
 * 50,000 keys (the table grows from 1024 slots to 65,536), every third
 * with a bbox, some lines twice; each found with its label and bbox; a
 * prefix of a key, a key with more, the empty key not found; the keys never found counted, the first in file order.
 * A line without a key takes its path's stem, as on tk-decode's standard
 * input.  Lines and keys are tk_list_line_parse's: the tool tests check
 * the errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/labels.h"

enum { N = 50000 };

static void key_of(char *buf, size_t size, int i)
{
	/* 16 hex digits, every 7th 15 */
	snprintf(buf, size, i % 7 == 1 ? "%015x" : "%016x", i * 2654435761u);
}

int main(void)
{
	char path[] = "/tmp/test_labels.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *fp = fdopen(fd, "w");
	char key[40];
	for (int i = 0; i < N; i++) {
		key_of(key, sizeof key, i);
		char line[200];
		if (i % 3 == 0)
			snprintf(line, sizeof line, "train/%s.jpg\t%s\t%d\t%d.5,2,%d,40.25\n",
				 key, key, i % 1000, i, i + 10);
		else
			snprintf(line, sizeof line, "train/%s.jpg\t%s\t%d\t\n", key, key,
				 i % 1000);
		fputs(line, fp);
		if (i % 1000 == 3 || i % 1000 == 5) /* again: no error */
			fputs(line, fp);
	}
	fprintf(fp, "\nsome/dir/stem.of.path.jpg\t\t-1\n");
	fprintf(fp, "empty/.jpg\t\t7\t\n");
	CHECK(fclose(fp) == 0);

	struct tk_labels *t = tk_labels_read(path);
	unlink(path);
	CHECK(tk_labels_count(t) == N + 2);
	long label;
	int has_bbox;
	double box[4];
	const char *first;
	CHECK(tk_labels_unseen(t, &first) == N + 2 && first &&
	      strcmp(first, "0000000000000000") == 0);
	int bad = 0;
	for (int i = 0; i < N; i += 2) { /* the even keys */
		key_of(key, sizeof key, i);
		if (!tk_labels_find(t, key, &label, &has_bbox, box) ||
		    label != i % 1000 || has_bbox != (i % 3 == 0) ||
		    (has_bbox && (box[0] != i + 0.5 || box[1] != 2 ||
				  box[2] != i + 10 || box[3] != 40.25)))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(!tk_labels_find(t, "0000000000000001", &label, &has_bbox, box));
	CHECK(!tk_labels_find(t, "", &label, &has_bbox, box));
	key_of(key, sizeof key, 8); /* a key with one more character */
	strcat(key, "x");
	CHECK(!tk_labels_find(t, key, &label, &has_bbox, box));
	key_of(key, sizeof key, 1);
	key[14] = 0; /* a prefix of a key */
	CHECK(!tk_labels_find(t, key, &label, &has_bbox, box));
	CHECK(tk_labels_find(t, "stem.of.path", &label, &has_bbox, box) &&
	      label == -1 && !has_bbox);
	CHECK(tk_labels_find(t, ".jpg", &label, &has_bbox, box) && label == 7);
	key_of(key, sizeof key, 1);
	CHECK(tk_labels_unseen(t, &first) == N / 2 && first &&
	      strcmp(first, key) == 0);
	tk_labels_free(t);
	return CHECK_DONE();
}
