/* trainlog.c - the JSON-lines training log and its SVG plot. */
#define _GNU_SOURCE
#include "trainlog.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tk.h"

/* Whether a line is moved: a record of a step after 'from', or a
 * validation record of step 'val'. */
static int line_moved(const char *line, long from, long val)
{
	cJSON *o = cJSON_Parse(line);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "step");
	long step = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
	int m = step > from ||
		(step >= 0 && step == val &&
		 cJSON_GetObjectItemCaseSensitive(o, "val_loss"));
	cJSON_Delete(o);
	return m;
}

/* Rewrite the log at path without the records of steps after 'from' and
 * the validation records of step 'val' (atomically), those appended to
 * path.removed first, so that nothing is lost whenever the run stops;
 * how many moved. */
static long rewind_log(const char *path, long from, long val)
{
	FILE *in = fopen(path, "r");
	if (!in) {
		if (errno == ENOENT)
			return 0;
		die_io("cannot open the log %s:", path);
	}
	char *buf = NULL;
	size_t cap = 0;
	long later = 0;
	while (getline(&buf, &cap, in) >= 0)
		later += line_moved(buf, from, val);
	if (ferror(in))
		die_io("reading the log %s:", path);
	if (later) {
		char *moved = xasprintf("%s.removed", path);
		FILE *rm = fopen(moved, "a");
		if (!rm)
			die_io("cannot open %s:", moved);
		struct tk_outfile o;
		FILE *out = tk_outfile_open(&o, path);
		rewind(in);
		ssize_t n;
		while ((n = getline(&buf, &cap, in)) >= 0)
			if (fwrite(buf, 1, n, line_moved(buf, from, val) ? rm : out) != (size_t)n)
				die_io("writing the log %s:", path);
		if (ferror(in))
			die_io("reading the log %s:", path);
		if (fflush(rm) != 0 || fsync(fileno(rm)) != 0 || fclose(rm) != 0)
			die_io("writing %s:", moved);
		tk_outfile_commit(&o);
		free(moved);
	}
	free(buf);
	fclose(in);
	return later;
}

/* Whether the file at path ends inside a line (a run killed while it
 * wrote one). */
static int ends_torn(const char *path)
{
	FILE *fp = fopen(path, "r");
	int torn = fp && fseek(fp, -1, SEEK_END) == 0 && fgetc(fp) != '\n';
	if (fp)
		fclose(fp);
	return torn;
}

long tk_trainlog_open(struct tk_trainlog *l, const char *path, long from)
{
	memset(l, 0, sizeof *l);
	if (!path)
		return 0;
	long later = from >= 0 ? rewind_log(path, from, -1) : 0;
	int torn = ends_torn(path);
	l->fp = fopen(path, "a");
	if (!l->fp)
		die_io("cannot open the log %s:", path);
	l->path = xstrdup(path);
	/* a torn last line stays a line of its own (not JSON: skipped), and
	 * the records after it whole */
	if (torn && (fputc('\n', l->fp) == EOF || fflush(l->fp) != 0))
		die_io("writing the log %s:", path);
	return later;
}

long tk_trainlog_drop_val(struct tk_trainlog *l, long step)
{
	if (!l->fp)
		return 0;
	if (fclose(l->fp) != 0)
		die_io("closing the log %s:", l->path);
	long n = rewind_log(l->path, LONG_MAX, step);
	l->fp = fopen(l->path, "a");
	if (!l->fp)
		die_io("cannot open the log %s:", l->path);
	return n;
}

void tk_trainlog_write(struct tk_trainlog *l, const char *fmt, ...)
{
	if (!l->fp)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(l->fp, fmt, ap);
	va_end(ap);
	fputc('\n', l->fp);
	if (fflush(l->fp) != 0 || ferror(l->fp))
		die_io("writing the log %s:", l->path);
}

void tk_trainlog_close(struct tk_trainlog *l)
{
	if (l->fp && fclose(l->fp) != 0)
		die_io("closing the log %s:", l->path);
	free(l->path);
	memset(l, 0, sizeof *l);
}

/* ---- the plot ---- */

struct series {
	double *x, *y;
	int n, cap;
};

static void push(struct series *s, double x, double y)
{
	if (!isfinite(x) || !isfinite(y))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->x = xrealloc(s->x, xmul(s->cap, sizeof *s->x));
		s->y = xrealloc(s->y, xmul(s->cap, sizeof *s->y));
	}
	s->x[s->n] = x;
	s->y[s->n++] = y;
}

/* At most 'max' points: means of equal runs of consecutive points. */
static void thin(struct series *s, int max)
{
	if (s->n <= max)
		return;
	int out = 0;
	for (int b = 0; b < max; b++) {
		long i0 = (long)s->n * b / max, i1 = (long)s->n * (b + 1) / max;
		double sx = 0, sy = 0;
		for (long i = i0; i < i1; i++) {
			sx += s->x[i];
			sy += s->y[i];
		}
		s->x[out] = sx / (i1 - i0);
		s->y[out++] = sy / (i1 - i0);
	}
	s->n = out;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Ticks at 1, 2 or 5 times a power of ten, about n of them. */
static double tick_step(double lo, double hi, int n)
{
	double span = hi - lo > 0 ? hi - lo : 1;
	double raw = span / n, p = pow(10, floor(log10(raw)));
	double f = raw / p;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

struct panel {
	double x0, y0, w, h;       /* pixels */
	double xlo, xhi, ylo, yhi; /* data */
};

static double px(const struct panel *p, double x)
{
	return p->x0 + (x - p->xlo) / (p->xhi - p->xlo) * p->w;
}

static double py(const struct panel *p, double y)
{
	return p->y0 + p->h - (y - p->ylo) / (p->yhi - p->ylo) * p->h;
}

static void range(struct series *const *s, int ns, double *lo, double *hi,
		  int use_x)
{
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int k = 0; k < ns; k++)
		for (int i = 0; i < s[k]->n; i++) {
			double v = use_x ? s[k]->x[i] : s[k]->y[i];
			*lo = v < *lo ? v : *lo;
			*hi = v > *hi ? v : *hi;
		}
	if (!(*lo <= *hi)) {
		*lo = 0;
		*hi = 1;
	}
	if (*hi - *lo < 1e-12) {
		*lo -= 0.5;
		*hi += 0.5;
	}
}

static void axes(FILE *fp, struct panel *p, const char *ylabel, const char *xlabel)
{
	double ys = tick_step(p->ylo, p->yhi, 5), xs = tick_step(p->xlo, p->xhi, 8);
	p->ylo = floor(p->ylo / ys) * ys;
	p->yhi = ceil(p->yhi / ys) * ys;
	fprintf(fp, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' "
		    "stroke='black'/>\n", p->x0, p->y0, p->w, p->h);
	for (double y = p->ylo; y <= p->yhi + ys * 1e-6; y += ys) {
		double v = py(p, y);
		fprintf(fp, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>"
			    "<text x='%.1f' y='%.1f' text-anchor='end'>%g</text>\n",
			p->x0, v, p->x0 + p->w, v, p->x0 - 4, v + 4, fabs(y) < ys * 1e-6 ? 0 : y);
	}
	double x = ceil(p->xlo / xs) * xs;
	for (; x <= p->xhi + xs * 1e-6; x += xs) {
		double v = px(p, x);
		fprintf(fp, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>"
			    "<text x='%.1f' y='%.1f' text-anchor='middle'>%g</text>\n",
			v, p->y0, v, p->y0 + p->h, v, p->y0 + p->h + 14, x);
	}
	fprintf(fp, "<text x='%.1f' y='%.1f' text-anchor='middle'>%s</text>\n",
		p->x0 + p->w / 2, p->y0 + p->h + 30, xlabel);
	fprintf(fp, "<text transform='translate(%.1f,%.1f) rotate(-90)' "
		    "text-anchor='middle'>%s</text>\n",
		p->x0 - 44, p->y0 + p->h / 2, ylabel);
}

static void line(FILE *fp, const struct panel *p, const struct series *s,
		 const char *color)
{
	if (s->n == 0)
		return;
	fprintf(fp, "<polyline fill='none' stroke='%s' stroke-width='1' points='", color);
	for (int i = 0; i < s->n; i++)
		fprintf(fp, "%.1f,%.1f ", px(p, s->x[i]), py(p, s->y[i]));
	fprintf(fp, "'/>\n");
}

static void marks(FILE *fp, const struct panel *p, const struct series *s,
		  const char *color)
{
	for (int i = 0; i < s->n; i++)
		fprintf(fp, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s'/>\n",
			px(p, s->x[i]), py(p, s->y[i]), color);
}

static void legend(FILE *fp, const struct panel *p, int row, const char *color,
		   const char *text, int mark)
{
	double x = p->x0 + p->w - 150, y = p->y0 + 16 + 16 * row;
	if (mark)
		fprintf(fp, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s'/>", x + 10,
			y - 4, color);
	else
		fprintf(fp, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' "
			    "stroke-width='2'/>", x, y - 4, x + 20, y - 4, color);
	fprintf(fp, "<text x='%.1f' y='%.1f'>%s</text>\n", x + 26, y, text);
}

int tk_train_plot(const char *svg_path, const char *log_path, char *err,
		  size_t errlen)
{
	FILE *in = fopen(log_path, "r");
	if (!in) {
		snprintf(err, errlen, "cannot open %s: %s", log_path, strerror(errno));
		return -1;
	}
	struct series loss = {0}, top1 = {0}, top5 = {0};
	struct series vloss = {0}, vtop1 = {0}, vtop5 = {0};
	char *buf = NULL;
	size_t cap = 0;
	while (getline(&buf, &cap, in) >= 0) {
		cJSON *o = cJSON_Parse(buf);
		if (!cJSON_IsObject(o)) {
			cJSON_Delete(o);
			continue;
		}
		double step = num(o, "step");
		/* a validation record (its loss null where the model
		 * diverged), or a step's */
		if (cJSON_HasObjectItem(o, "val_top1")) {
			push(&vloss, step, num(o, "val_loss"));
			push(&vtop1, step, num(o, "val_top1"));
			push(&vtop5, step, num(o, "val_top5"));
		} else {
			push(&loss, step, num(o, "loss"));
			push(&top1, step, num(o, "top1"));
			push(&top5, step, num(o, "top5"));
		}
		cJSON_Delete(o);
	}
	free(buf);
	int bad = ferror(in);
	fclose(in);
	if (bad) {
		snprintf(err, errlen, "reading %s failed", log_path);
		return -1;
	}
	int points = loss.n + vloss.n;
	thin(&loss, 2000);
	thin(&top1, 2000);
	thin(&top5, 2000);
	struct tk_outfile o;
	FILE *fp = tk_outfile_open(&o, svg_path);
	const int W = 800, H = 600;
	fprintf(fp, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
		    "font-family='sans-serif' font-size='11'>\n"
		    "<rect width='100%%' height='100%%' fill='white'/>\n", W, H);
	struct panel top = {70, 20, W - 100, H / 2 - 70, 0, 0, 0, 0};
	struct panel bot = {70, H / 2 + 20, W - 100, H / 2 - 70, 0, 0, 0, 0};
	struct series *all[] = {&loss, &vloss, &top1, &top5, &vtop1, &vtop5};
	range(all, 6, &top.xlo, &top.xhi, 1);
	bot.xlo = top.xlo;
	bot.xhi = top.xhi;
	range(all, 2, &top.ylo, &top.yhi, 0);
	range(all + 2, 4, &bot.ylo, &bot.yhi, 0);
	axes(fp, &top, "loss", "step");
	axes(fp, &bot, "error rate (%)", "step");
	line(fp, &top, &loss, "#1f77b4");
	marks(fp, &top, &vloss, "#d62728");
	line(fp, &bot, &top1, "#1f77b4");
	line(fp, &bot, &top5, "#ff7f0e");
	marks(fp, &bot, &vtop1, "#d62728");
	marks(fp, &bot, &vtop5, "#9467bd");
	legend(fp, &top, 0, "#1f77b4", "ArcFace loss", 0);
	if (vloss.n)
		legend(fp, &top, 1, "#d62728", "validation loss", 1);
	legend(fp, &bot, 0, "#1f77b4", "top-1 error", 0);
	legend(fp, &bot, 1, "#ff7f0e", "top-5 error", 0);
	if (vtop1.n) {
		legend(fp, &bot, 2, "#d62728", "validation top-1", 1);
		legend(fp, &bot, 3, "#9467bd", "validation top-5", 1);
	}
	fprintf(fp, "</svg>\n");
	if (ferror(fp))
		die_io("writing %s:", svg_path);
	tk_outfile_commit(&o);
	struct series *s[] = {&loss, &top1, &top5, &vloss, &vtop1, &vtop5};
	for (int i = 0; i < 6; i++) {
		free(s[i]->x);
		free(s[i]->y);
	}
	return points;
}
