/* test_revisitop - NumPy's printing of scalars and arrays (expected
 * strings written by NumPy 1.24's str()), np.around, and the protocol's
 * AP and P@k on a query worked out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/revisitop.h"

struct acase {
	int n;
	double v[40];
	const char *want;
};
struct scase {
	double v;
	const char *want;
};
struct rcase {
	double v, want;
};

static const struct acase acases[] = {
	{3,
	 {100.0, 90.74, 86.47},
	 "[100.    90.74  86.47]"},
	{2,
	 {100.0, 50.0},
	 "[100.  50.]"},
	{2,
	 {100.0, 0.05},
	 "[1.e+02 5.e-02]"},
	{3,
	 {100.0, 0.07, 85.12},
	 "[1.000e+02 7.000e-02 8.512e+01]"},
	{2,
	 {NAN, 50.0},
	 "[nan 50.]"},
	{1,
	 {NAN},
	 "[nan]"},
	{2,
	 {0.0, 0.0},
	 "[0. 0.]"},
	{3,
	 {85.1, 85.12, 3.0},
	 "[85.1  85.12  3.  ]"},
	{30,
	 {0.0, 3.33, 6.66, 9.99, 13.32, 16.65, 19.98, 23.310000000000002, 26.64, 29.97, 33.3, 36.63, 39.96, 43.29, 46.620000000000005, 49.95, 53.28, 56.61, 59.94, 63.27, 66.6, 69.93, 73.26, 76.59, 79.92, 83.25, 86.58, 89.91, 93.24000000000001, 96.57000000000001},
	 "[ 0.    3.33  6.66  9.99 13.32 16.65 19.98 23.31 26.64 29.97 33.3  36.63\n 39.96 43.29 46.62 49.95 53.28 56.61 59.94 63.27 66.6  69.93 73.26 76.59\n 79.92 83.25 86.58 89.91 93.24 96.57]"},
	{1,
	 {0.01},
	 "[0.01]"},
	{3,
	 {100.0, 0.09, NAN},
	 "[1.e+02 9.e-02    nan]"},
	{3,
	 {12.5, NAN, 100.0},
	 "[ 12.5   nan 100. ]"},
	{2,
	 {1e-05, 3.0},
	 "[1.e-05 3.e+00]"},
	{2,
	 {150000000.0, 2.0},
	 "[1.5e+08 2.0e+00]"},
	{2,
	 {123456.78, 0.5},
	 "[1.2345678e+05 5.0000000e-01]"},
	{40,
	 {0.0, 2.56, 5.13, 7.69, 10.26, 12.82, 15.38, 17.95, 20.51, 23.08, 25.64, 28.21, 30.77, 33.33, 35.9, 38.46, 41.03, 43.59, 46.15, 48.72, 51.28, 53.85, 56.41, 58.97, 61.54, 64.1, 66.67, 69.23, 71.79, 74.36, 76.92, 79.49, 82.05, 84.62, 87.18, 89.74, 92.31, 94.87, 97.44, 100.0},
	 "[  0.     2.56   5.13   7.69  10.26  12.82  15.38  17.95  20.51  23.08\n  25.64  28.21  30.77  33.33  35.9   38.46  41.03  43.59  46.15  48.72\n  51.28  53.85  56.41  58.97  61.54  64.1   66.67  69.23  71.79  74.36\n  76.92  79.49  82.05  84.62  87.18  89.74  92.31  94.87  97.44 100.  ]"},
	{25,
	 {33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33, 33.33},
	 "[33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33\n 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33 33.33\n 33.33]"},
	{30,
	 {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN},
	 "[nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan\n nan nan nan nan nan nan nan nan nan nan nan nan]"},
	{1,
	 {0.0},
	 "[0.]"},
};
static const struct scase scases[] = {
	{85.12, "85.12"},
	{100.0, "100.0"},
	{0.0, "0.0"},
	{85.0, "85.0"},
	{0.01, "0.01"},
	{99.99, "99.99"},
	{12.3, "12.3"},
	{1e-05, "1e-05"},
	{1.5e-07, "1.5e-07"},
	{1e+20, "1e+20"},
	{123456789.25, "123456789.25"},
};
static const struct rcase rcases[] = {
	{0.123456789, 12.35},
	{0.8512499999, 85.12},
	{0.005, 0.5},
	{0.015, 1.5},
	{0.025, 2.5},
	{0.3333333333333333, 33.33},
	{0.6666666666666666, 66.67},
	{0.99995, 100.0},
	{0.853749999, 85.37},
	{0.0001234, 0.01},
	{0.70125, 70.12},
};

static void test_printing(void)
{
	char buf[1024];
	for (size_t i = 0; i < sizeof acases / sizeof *acases; i++) {
		rv_np_array(buf, sizeof buf, acases[i].v, acases[i].n);
		if (strcmp(buf, acases[i].want))
			fprintf(stderr, "array %zu: got\n%s\nwant\n%s\n", i, buf,
				acases[i].want);
		CHECK(!strcmp(buf, acases[i].want));
	}
	for (size_t i = 0; i < sizeof scases / sizeof *scases; i++) {
		rv_np_scalar(buf, sizeof buf, scases[i].v);
		if (strcmp(buf, scases[i].want))
			fprintf(stderr, "scalar %g: got %s want %s\n", scases[i].v,
				buf, scases[i].want);
		CHECK(!strcmp(buf, scases[i].want));
	}
	for (size_t i = 0; i < sizeof rcases / sizeof *rcases; i++)
		CHECK(rv_np_round2(rcases[i].v * 100) == rcases[i].want);
}

/* One query on 4 images: easy {0}, hard {1}, junk {2}; ranked
 * 2, 1, 5 (a distractor), 0, 3. */
static void test_eval(void)
{
	int32_t easy[] = {0}, hard[] = {1}, junk[] = {2};
	struct rv_query q = {"q", easy, hard, junk, 1, 1, 1};
	struct rv_query empty = {"e", NULL, NULL, junk, 0, 0, 1};
	struct rv_query qs[] = {q, empty};
	struct rv_gnd g = {4, 2, qs};
	int kappas[] = {1, 5};
	struct rv_eval e;
	rv_eval_init(&e, &g, kappas, 2);
	int32_t rank[] = {2, 1, 5, 0, 3};
	char err[256];
	CHECK(rv_eval_query(&e, 0, rank, 5, err, sizeof err) == 0);
	CHECK(rv_eval_query(&e, 1, rank, 5, err, sizeof err) == 0);
	/* Easy: junk 2 and 1 removed, 0 at junk-free position 1. */
	CHECK(e.ap[0] == 0.25);
	CHECK(e.pk[0] == 0 && e.pk[1] == 0.5);
	/* Medium: 1 at 0, 0 at 2 (junk 2 removed). */
	CHECK(fabs(e.ap[1] - (1.0 + (0.5 + 2.0 / 3) / 2) / 2) < 1e-15);
	CHECK(e.pk[2] == 1 && e.pk[3] == 2.0 / 3); /* k clipped to 3 */
	/* Hard: 1 at 0. */
	CHECK(e.ap[2] == 1);
	/* No positives: left out. */
	CHECK(isnan(e.ap[3]) && isnan(e.ap[4]) && isnan(e.ap[5]));
	double map[3], mpk[6];
	long used[3];
	rv_eval_means(&e, map, mpk, used);
	CHECK(map[0] == 0.25 && used[0] == 1 && mpk[1] == 0.5);
	/* Truncated before its positive: AP 0, P@k 0. */
	CHECK(rv_eval_query(&e, 0, rank, 2, err, sizeof err) == 0);
	CHECK(e.ap[0] == 0 && e.pk[0] == 0 && e.pk[1] == 0 && e.ap[2] == 1);
	int32_t dup[] = {3, 1, 3}, neg[] = {1, -4};
	CHECK(rv_eval_query(&e, 0, dup, 3, err, sizeof err) < 0);
	CHECK(strstr(err, "image 3 is ranked twice (rank 2)") != NULL);
	CHECK(rv_eval_query(&e, 0, neg, 2, err, sizeof err) < 0);
	CHECK(strstr(err, "rank 1 is -4") != NULL);
	rv_eval_free(&e);
}

static void test_names(void)
{
	char *n = rv_dataset_name("/data/gnd_roxford5k.pkl");
	CHECK(!strcmp(n, "roxford5k"));
	free(n);
	n = rv_dataset_name("mine.pkl");
	CHECK(!strcmp(n, "mine"));
	free(n);
}

int main(void)
{
	test_printing();
	test_eval();
	test_names();
	return CHECK_DONE();
}
