/* fuzz_text - libFuzzer target for the text that tk reads from outside:
 * GLDv2's CSV files (common/csv.c, through fmemopen, every record and a
 * column lookup) and tk-list lines (tk_list_line_parse, as tk-decode reads
 * them from standard input or --labels), the same bytes through both.
 *   make fuzz && build/fuzz/fuzz_text -max_total_time=600 tests/fuzz/corpus/text */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/inputs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	FILE *fp = fmemopen((void *)data, size, "r");
	if (!fp)
		return 0;
	struct csv c;
	csv_init(&c, fp);
	char err[256];
	volatile size_t sum = 0;
	volatile double box = 0;
	while (csv_read(&c, err, sizeof err) > 0) {
		for (int i = 0; i < c.nfield; i++)
			sum += strlen(c.field[i]);
		sum += (size_t)csv_column(&c, "images") + (size_t)c.line;
	}
	csv_free(&c);
	fclose(fp);

	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		struct tk_list_line l;
		char *why = tk_list_line_parse(line, &l);
		if (why)
			free(why);
		else
			box += strlen(l.path) + l.keylen + (double)l.label +
			       (l.has_bbox ? l.bbox[0] + l.bbox[3] : 0);
	}
	free(text);
	return 0;
}
