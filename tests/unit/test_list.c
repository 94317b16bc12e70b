/* test_list - tk-list's helpers: the CSV reader (quotes, CRLF, newlines in
 * fields, errors with line numbers), shortest round-trip doubles, image
 * list lines both ways, numpy's SeedSequence/MT19937/shuffle (values from
 * numpy 1.24). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/csv.h"
#include "common/imlist.h"
#include "common/nprand.h"

/* Parse text as CSV; the records as "a|b|c;" or "error: ...". */
static void csv_render(const char *text, char *out, size_t size)
{
	FILE *fp = fmemopen((void *)text, strlen(text) ? strlen(text) : 1, "r");
	if (!strlen(text))
		fgetc(fp);
	struct csv c;
	char err[128];
	csv_init(&c, fp);
	int rc;
	out[0] = 0;
	while ((rc = csv_read(&c, err, sizeof err)) > 0) {
		for (int i = 0; i < c.nfield; i++) {
			strncat(out, c.field[i], size - strlen(out) - 1);
			strncat(out, i + 1 < c.nfield ? "|" : ";", size - strlen(out) - 1);
		}
	}
	if (rc < 0)
		snprintf(out + strlen(out), size - strlen(out), "error: %s", err);
	csv_free(&c);
	fclose(fp);
}

static void expect_csv(const char *text, const char *want)
{
	char got[512];
	csv_render(text, got, sizeof got);
	if (strcmp(got, want))
		fprintf(stderr, "csv %s: got '%s', want '%s'\n", text, got, want);
	CHECK(strcmp(got, want) == 0);
}

static void test_csv(void)
{
	expect_csv("", "");
	expect_csv("a,b\n1,2\n", "a|b;1|2;");
	expect_csv("a,b\r\n1,2\r\n", "a|b;1|2;");
	expect_csv("a,b\n1,2", "a|b;1|2;");
	expect_csv("a,,\n", "a||;");
	expect_csv("\"x,y\",\"say \"\"hi\"\"\"\n", "x,y|say \"hi\";");
	expect_csv("\"two\nlines\",z\r\nnext\n", "two\nlines|z;next;");
	expect_csv("\"q\"\r\n\"\"\n", "q;;");
	expect_csv("a\n\nb\n", "a;;b;");
	expect_csv("a\nb\"c\n", "a;error: line 2: a quote inside an unquoted field");
	expect_csv("a\n\"b\nc\nd", "a;error: line 2: a quoted field never ends");
	expect_csv("a\n\"b\"c\n", "a;error: line 2: text after a closing quote");
	expect_csv("\"b\"\rc\n", "error: line 1: a CR after a closing quote");
	/* the line named is the record's own, past earlier multi-line fields */
	expect_csv("\"1\n2\n3\"\nx\"\n", "1\n2\n3;error: line 4: a quote inside an "
					  "unquoted field");
}

static void test_format(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {136.5, "136.5"}, {34, "34"},       {713.2, "713.2"},
	    {1000, "1000"},   {0.1, "0.1"},     {1e-5, "1e-05"},
	    {1e16, "1e+16"},  {-0.0, "-0"},     {0.30000000000000004, "0.30000000000000004"},
	    {5e-324, "5e-324"}, {123456789.125, "123456789.125"},
	};
	char buf[32];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		tk_format_double(buf, cases[i].v);
		if (strcmp(buf, cases[i].want))
			fprintf(stderr, "%.17g: got %s, want %s\n", cases[i].v, buf,
				cases[i].want);
		CHECK(strcmp(buf, cases[i].want) == 0);
	}
	/* Round trip over many doubles of every magnitude. */
	srand(1);
	for (int i = 0; i < 50000; i++) {
		uint64_t bits = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ rand();
		double v;
		memcpy(&v, &bits, sizeof v);
		if (!isfinite(v))
			continue;
		CHECK(strtod(tk_format_double(buf, v), NULL) == v);
	}
}

static void test_lines(void)
{
	struct tk_image im = {"a/b.jpg", "b", -1, 1, {136.5, 34.1, 648.5, 955.7}};
	char *text = NULL;
	size_t size;
	FILE *fp = open_memstream(&text, &size);
	tk_image_print(fp, &im);
	im.has_bbox = 0;
	im.label = 7;
	tk_image_print(fp, &im);
	fclose(fp);
	CHECK(strcmp(text, "a/b.jpg\tb\t-1\t136.5,34.1,648.5,955.7\n"
			   "a/b.jpg\tb\t7\t\n") == 0);
	char err[128];
	struct tk_image r;
	char l1[] = "a/b.jpg\tb\t-1\t136.5,34.1,648.5,955.7";
	CHECK(tk_image_parse(l1, &r, err, sizeof err) == 0);
	CHECK(!strcmp(r.path, "a/b.jpg") && !strcmp(r.key, "b") && r.label == -1);
	CHECK(r.has_bbox && r.bbox[1] == 34.1 && r.bbox[3] == 955.7);
	char l2[] = "x\ty\t3\t";
	CHECK(tk_image_parse(l2, &r, err, sizeof err) == 0 && r.label == 3 &&
	      !r.has_bbox);
	const char *bad[] = {"x\ty\t3", "x\ty\t3\t\t", "\ty\t3\t", "x\ty\t-2\t",
			     "x\ty\t1.5\t", "x\ty\t0\t1,2,3", "x\ty\t0\t1,2,3,4,5",
			     "x\ty\t0\t1,2,nan,4", "x\ty\t0\t1,2,3,"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *l = strdup(bad[i]);
		int rc = tk_image_parse(l, &r, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
		CHECK(rc < 0);
		free(l);
	}
	free(text);
}

static void test_nprand(void)
{
	struct np_rng r;
	uint32_t w[4];
	np_rng_seed(&r, w, np_int_words(0, w));
	/* RandomState(MT19937(SeedSequence(0))).randint(0, 2**32, ...) */
	CHECK(np_rng_next32(&r) == 2058676884u);
	CHECK(np_rng_next32(&r) == 2606108953u);
	CHECK(np_rng_next32(&r) == 1230491694u);
	/* ... .shuffle(np.arange(10)) */
	size_t a[10], want[10] = {6, 1, 0, 5, 3, 8, 7, 9, 2, 4};
	np_rng_seed(&r, w, np_int_words(0, w));
	for (int i = 0; i < 10; i++)
		a[i] = i;
	np_shuffle(&r, a, 10);
	CHECK(memcmp(a, want, sizeof a) == 0);
	/* SeedSequence([5, 7]): arange(1000) shuffled starts so */
	size_t b[1000], want5[8] = {945, 953, 562, 338, 115, 504, 522, 260};
	w[0] = 5;
	w[1] = 7;
	np_rng_seed(&r, w, 2);
	for (int i = 0; i < 1000; i++)
		b[i] = i;
	np_shuffle(&r, b, 1000);
	CHECK(memcmp(b, want5, sizeof want5) == 0);
	CHECK(np_int_words(1ull << 40, w) == 2 && w[0] == 0 && w[1] == 256);
}

int main(void)
{
	test_csv();
	test_format();
	test_lines();
	test_nprand();
	return CHECK_DONE();
}
