/* test_trainlog - the training log and its plot on a log of a real
 * training's length (5,000 steps, where the tool tests have a dozen):
 * the plot draws each curve as at most 2,000 points, the means of equal
 * runs of steps, in order; a validation record whose loss is null (a
 * diverged model) still gives its error marks; lines that are not JSON
 * objects are skipped.  Opening the log for a run that starts at step S
 * moves the records of later steps to LOG.removed, whole and in order,
 * and nothing else (lines without a step, lines that are not JSON stay);
 * opening it to only append (S < 0) moves nothing; a last line torn by a
 * kill stays a line of its own; an unreadable log is an error naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/tk.h"
#include "common/trainlog.h"

enum { STEPS = 5000 };

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	CHECK(fp != NULL);
	if (!fp)
		exit(1);
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	rewind(fp);
	char *s = xmalloc(n + 1);
	CHECK(fread(s, 1, n, fp) == (size_t)n);
	s[n] = 0;
	fclose(fp);
	return s;
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* The first polyline's points: how many, and whether x only grows. */
static int polyline_points(const char *svg, int *increasing)
{
	const char *p = strstr(svg, "<polyline");
	*increasing = 1;
	if (!p || !(p = strstr(p, "points='")))
		return 0;
	p += 8;
	int n = 0;
	double last = -1e300, x, y;
	int used;
	while (sscanf(p, "%lf,%lf %n", &x, &y, &used) == 2) {
		*increasing &= x > last;
		last = x;
		p += used;
		n++;
	}
	return n;
}

int main(void)
{
	tk_init("test_trainlog");
	char dir[] = "/tmp/test_trainlog.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char log[64], svg[64];
	snprintf(log, sizeof log, "%s/train.log", dir);
	snprintf(svg, sizeof svg, "%s/train.svg", dir);

	FILE *fp = fopen(log, "w");
	fprintf(fp, "{\"memory\": {\"model\": 1}, \"batch\": 4}\n");
	for (int s = 1; s <= STEPS; s++) {
		fprintf(fp, "{\"step\": %d, \"epoch\": 0, \"loss\": %.3f, \"top1\": %d, "
			    "\"top5\": %d}\n", s, 5.0 - s * 1e-3, 100 - s % 50, 50 - s % 50);
		if (s == 2500)
			fprintf(fp, "{\"step\": 2500, \"epoch\": 1, \"val_loss\": null, "
				    "\"val_top1\": 40.0, \"val_top5\": 10.0}\n"
				    "not JSON, and skipped\n");
	}
	fclose(fp);

	char err[256];
	int points = tk_train_plot(svg, log, err, sizeof err);
	CHECK(points == STEPS); /* the null loss draws no point */
	char *s = slurp(svg);
	int inc, n = polyline_points(s, &inc);
	printf("%-5s plot of %d steps: %d points in the loss curve, x %s\n",
	       n == 2000 && inc ? "ok" : "FAIL", STEPS, n,
	       inc ? "increasing" : "not increasing");
	CHECK(n == 2000 && inc);
	CHECK(count(s, "<polyline") == 3); /* loss, top-1, top-5 */
	/* the validation's two marks and their two legend entries */
	CHECK(count(s, "<circle") == 4);
	CHECK(strstr(s, "validation top-1") != NULL);
	free(s);

	/* A run that only validates appends: nothing removed. */
	struct tk_trainlog l;
	CHECK(tk_trainlog_open(&l, log, -1) == 0);
	tk_trainlog_close(&l);
	/* A run from step 3000: steps 3001 ... 5000 go, the rest stays. */
	long later = tk_trainlog_open(&l, log, 3000);
	printf("%-5s a run from step 3000 moved %ld records\n",
	       later == 2000 ? "ok" : "FAIL", later);
	CHECK(later == 2000);
	tk_trainlog_write(&l, "{\"step\": 3001, \"loss\": 1.0}");
	tk_trainlog_close(&l);
	s = slurp(log);
	CHECK(count(s, "\n") == 1 + 3000 + 2 + 1);
	CHECK(strncmp(s, "{\"memory\"", 9) == 0);
	CHECK(strstr(s, "not JSON, and skipped\n") != NULL);
	CHECK(strstr(s, "\"val_top1\": 40.0") != NULL);
	CHECK(strstr(s, "{\"step\": 3000, ") != NULL);
	CHECK(strstr(s, "{\"step\": 3001, \"epoch\"") == NULL);
	CHECK(strstr(s, "{\"step\": 3001, \"loss\": 1.0}\n") != NULL);
	free(s);
	/* what went is in train.log.removed, whole and in order */
	char moved[80];
	snprintf(moved, sizeof moved, "%s.removed", log);
	s = slurp(moved);
	CHECK(count(s, "\n") == 2000);
	CHECK(strncmp(s, "{\"step\": 3001, \"epoch\"", 22) == 0);
	CHECK(strstr(s, "{\"step\": 5000, \"epoch\"") != NULL);
	free(s);
	/* From step 0 (a new run): every step goes, the rest stays; what
	 * went is appended to what went before. */
	CHECK(tk_trainlog_open(&l, log, 0) == 3002);
	tk_trainlog_close(&l);
	s = slurp(log);
	CHECK(count(s, "\n") == 2);
	free(s);
	s = slurp(moved);
	CHECK(count(s, "\n") == 2000 + 3002);
	free(s);
	/* No log yet: nothing to remove. */
	unlink(log);
	unlink(moved);
	CHECK(tk_trainlog_open(&l, log, 10) == 0);
	tk_trainlog_close(&l);
	/* A last line torn by a kill: the next record starts a line of its
	 * own, and the plot skips the torn one. */
	fp = fopen(log, "w");
	fprintf(fp, "{\"step\": 1, \"loss\": 2.0, \"top1\": 50, \"top5\": 10}\n{\"step\": 2, \"lo");
	fclose(fp);
	CHECK(tk_trainlog_open(&l, log, -1) == 0);
	tk_trainlog_write(&l, "{\"step\": 3, \"loss\": 1.0, \"top1\": 40, \"top5\": 5}");
	tk_trainlog_close(&l);
	s = slurp(log);
	CHECK(strstr(s, "\"lo\n{\"step\": 3, ") != NULL);
	free(s);
	CHECK(tk_train_plot(svg, log, err, sizeof err) == 2);
	unlink(log);

	snprintf(log, sizeof log, "%s/none/train.log", dir);
	CHECK(tk_train_plot(svg, log, err, sizeof err) == -1);
	CHECK(strstr(err, log) != NULL);

	snprintf(log, sizeof log, "%s/train.log", dir);
	unlink(log);
	unlink(svg);
	rmdir(dir);
	return CHECK_DONE();
}
