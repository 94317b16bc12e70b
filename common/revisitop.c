/* revisitop.c - ground truth, AP and P@k of the revisitop protocol, and
 * its printed lines. */
#include "revisitop.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "tk.h"

const char *const rv_setup_name[RV_NSETUPS] = {"easy", "medium", "hard"};

/* Which of an image's easy (1), hard (2) and junk (4) bits make it a
 * positive, and which make it junk, under each setup. */
enum { EASY = 1, HARD = 2, JUNK = 4 };
static const uint8_t positive_bits[RV_NSETUPS] = {EASY, EASY | HARD, HARD};
static const uint8_t junk_bits[RV_NSETUPS] = {JUNK | HARD, JUNK, JUNK | EASY};

/* ---- ground truth ---- */

static int is_seq(const struct pk_value *v)
{
	return v && (v->type == PK_LIST || v->type == PK_TUPLE);
}

/* gnd[qi][name]: a list of image indices. */
static int read_indices(const struct pk_value *d, const char *name, long qi,
			long nimages, int optional, int32_t **out, long *n,
			const char *path, char *err, size_t errlen)
{
	const struct pk_value *l = pk_dict_get(d, name);
	*out = NULL;
	*n = 0;
	if (!l && optional)
		return 0;
	if (!is_seq(l))
		return tk_errf(err, errlen, "%s: gnd[%ld]['%s'] is %s, not a list",
			    path, qi, name, l ? pk_type_name(l->type) : "missing");
	*out = xmalloc(xmul(l->seq.n ? l->seq.n : 1, sizeof **out));
	for (size_t i = 0; i < l->seq.n; i++) {
		const struct pk_value *x = l->seq.v[i];
		if (x->type != PK_INT)
			return tk_errf(err, errlen,
				    "%s: gnd[%ld]['%s'][%zu] is %s, not an int",
				    path, qi, name, i, pk_type_name(x->type));
		if (x->i < 0 || x->i >= nimages)
			return tk_errf(err, errlen,
				    "%s: gnd[%ld]['%s'][%zu] = %lld is not an "
				    "index into imlist (%ld images)",
				    path, qi, name, i, (long long)x->i, nimages);
		(*out)[i] = (int32_t)x->i;
	}
	*n = (long)l->seq.n;
	return 0;
}

static const struct pk_value *str_list(const struct pk_value *root,
				       const char *name, const char *path,
				       char *err, size_t errlen)
{
	const struct pk_value *l = pk_dict_get(root, name);
	if (!is_seq(l)) {
		tk_errf(err, errlen, "%s: '%s' is %s, not a list", path, name,
		     l ? pk_type_name(l->type) : "missing");
		return NULL;
	}
	for (size_t i = 0; i < l->seq.n; i++)
		if (l->seq.v[i]->type != PK_STR) {
			tk_errf(err, errlen, "%s: %s[%zu] is %s, not a str", path,
			     name, i, pk_type_name(l->seq.v[i]->type));
			return NULL;
		}
	return l;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_gnd(struct rv_gnd *g, const struct pk_value *root,
		     const char *path, char *err, size_t errlen)
{
	if (root->type != PK_DICT)
		return tk_errf(err, errlen, "%s: the pickle holds %s, not a dict",
			    path, pk_type_name(root->type));
	const struct pk_value *im = str_list(root, "imlist", path, err, errlen);
	const struct pk_value *qim = str_list(root, "qimlist", path, err, errlen);
	if (!im || !qim)
		return -1;
	const struct pk_value *gl = pk_dict_get(root, "gnd");
	if (!is_seq(gl))
		return tk_errf(err, errlen, "%s: 'gnd' is %s, not a list", path,
			    gl ? pk_type_name(gl->type) : "missing");
	if (gl->seq.n != qim->seq.n)
		return tk_errf(err, errlen,
			    "%s: 'gnd' has %zu entries for %zu queries in "
			    "'qimlist'",
			    path, gl->seq.n, qim->seq.n);
	if (im->seq.n > INT32_MAX)
		return tk_errf(err, errlen, "%s: too many images", path);
	g->nimages = (long)im->seq.n;
	g->nq = (long)qim->seq.n;
	g->q = xcalloc(g->nq ? g->nq : 1, sizeof *g->q);
	for (long i = 0; i < g->nq; i++) {
		struct rv_query *q = &g->q[i];
		const struct pk_value *d = gl->seq.v[i];
		q->key = xstrdup(qim->seq.v[i]->str.p);
		if (d->type != PK_DICT)
			return tk_errf(err, errlen, "%s: gnd[%ld] is %s, not a dict",
				    path, i, pk_type_name(d->type));
		if (read_indices(d, "easy", i, g->nimages, 0, &q->easy,
				 &q->neasy, path, err, errlen) ||
		    read_indices(d, "hard", i, g->nimages, 0, &q->hard,
				 &q->nhard, path, err, errlen) ||
		    read_indices(d, "junk", i, g->nimages, 1, &q->junk,
				 &q->njunk, path, err, errlen))
			return -1;
	}
	/* Rankings are matched to queries by key: keys must be unique. */
	char **keys = xmalloc(xmul(g->nq ? g->nq : 1, sizeof *keys));
	for (long i = 0; i < g->nq; i++)
		keys[i] = g->q[i].key;
	qsort(keys, g->nq, sizeof *keys, cmp_key);
	for (long i = 1; i < g->nq; i++)
		if (!strcmp(keys[i], keys[i - 1])) {
			tk_errf(err, errlen, "%s: query '%s' appears twice in "
			     "'qimlist'", path, keys[i]);
			free(keys);
			return -1;
		}
	free(keys);
	return 0;
}

/* g from the pickle at root (freeing its arena): 0, or -1 for bad data
 * with g freed. */
static int from_root(struct rv_gnd *g, const struct pk_value *root,
		     struct pk_arena *arena, const char *name, char *err,
		     size_t errlen)
{
	int rc = parse_gnd(g, root, name, err, errlen);
	pk_free(arena);
	if (rc)
		rv_free(g);
	return rc;
}

int rv_load(struct rv_gnd *g, const char *path, char *err, size_t errlen)
{
	memset(g, 0, sizeof *g);
	struct pk_options opt = {0}; /* plain data only */
	struct pk_arena *arena = NULL;
	int io = 0;
	char perr[512];
	struct pk_value *root = pk_load_file(path, &opt, &arena, &io, perr,
					     sizeof perr);
	if (root)
		return from_root(g, root, arena, path, err, errlen);
	pk_free(arena);
	tk_errf(err, errlen, "%s", perr);
	return io ? -2 : -1;
}

int rv_load_buffer(struct rv_gnd *g, const void *buf, size_t len,
		   const char *name, char *err, size_t errlen)
{
	memset(g, 0, sizeof *g);
	struct pk_options opt = {0}; /* plain data only */
	struct pk_arena *arena = NULL;
	char perr[512];
	struct pk_value *root = pk_load(buf, len, &opt, &arena, NULL, perr,
					sizeof perr);
	if (root)
		return from_root(g, root, arena, name, err, errlen);
	pk_free(arena);
	return tk_errf(err, errlen, "%s: %s", name, perr);
}

void rv_free(struct rv_gnd *g)
{
	for (long i = 0; i < g->nq && g->q; i++) {
		free(g->q[i].key);
		free(g->q[i].easy);
		free(g->q[i].hard);
		free(g->q[i].junk);
	}
	free(g->q);
	memset(g, 0, sizeof *g);
}

char *rv_dataset_name(const char *path)
{
	const char *b = strrchr(path, '/');
	char *name = xstrdup(b ? b + 1 : path);
	size_t n = strlen(name);
	if (n > 4 && !strcmp(name + n - 4, ".pkl"))
		name[n - 4] = 0;
	if (!strncmp(name, "gnd_", 4) && name[4])
		memmove(name, name + 4, strlen(name + 4) + 1);
	return name;
}

/* ---- scoring ---- */

void rv_eval_init(struct rv_eval *e, const struct rv_gnd *g,
		  const int *kappas, int nk)
{
	memset(e, 0, sizeof *e);
	e->g = g;
	e->kappas = kappas;
	e->nk = nk;
	size_t nq = g->nq ? g->nq : 1;
	e->ap = xmalloc(xmul(nq, RV_NSETUPS * sizeof *e->ap));
	e->pk = xmalloc(xmul(xmul(nq, RV_NSETUPS), nk * sizeof *e->pk));
	e->cls = xcalloc(g->nimages ? g->nimages : 1, 1);
	e->stamp = xcalloc(g->nimages ? g->nimages : 1, sizeof *e->stamp);
}

void rv_eval_free(struct rv_eval *e)
{
	free(e->ap);
	free(e->pk);
	free(e->cls);
	free(e->stamp);
	memset(e, 0, sizeof *e);
}

static void mark(uint8_t *cls, const int32_t *idx, long n, uint8_t bit,
		 int set)
{
	for (long i = 0; i < n; i++)
		cls[idx[i]] = set ? cls[idx[i]] | bit : 0;
}

int rv_eval_query(struct rv_eval *e, long qi, const int32_t *rank, long n,
		  char *err, size_t errlen)
{
	const struct rv_query *q = &e->g->q[qi];
	long nimages = e->g->nimages;
	int nk = e->nk;
	long nres[RV_NSETUPS] = {q->neasy, q->neasy + q->nhard, q->nhard};
	/* Per setup: positives found, junk passed, the junk-free position
	 * of the last positive, positives within each k. */
	long found[RV_NSETUPS] = {0}, skipped[RV_NSETUPS] = {0};
	long last[RV_NSETUPS] = {0};
	long *within = xcalloc(RV_NSETUPS * (size_t)nk, sizeof *within);
	double ap[RV_NSETUPS] = {0};
	mark(e->cls, q->easy, q->neasy, EASY, 1);
	mark(e->cls, q->hard, q->nhard, HARD, 1);
	mark(e->cls, q->junk, q->njunk, JUNK, 1);
	uint32_t gen = ++e->gen;
	if (gen == 0) { /* wrapped: forget every stamp */
		memset(e->stamp, 0, nimages * sizeof *e->stamp);
		gen = e->gen = 1;
	}
	int rc = 0;
	for (long p = 0; p < n; p++) {
		int32_t x = rank[p];
		if (x < 0) {
			rc = tk_errf(err, errlen, "rank %ld is %d", p, x);
			break;
		}
		if (x >= nimages) /* a distractor: only a position */
			continue;
		if (e->stamp[x] == gen) {
			rc = tk_errf(err, errlen, "image %d is ranked twice (rank %ld)",
				  x, p);
			break;
		}
		e->stamp[x] = gen;
		uint8_t c = e->cls[x];
		if (!c)
			continue;
		for (int s = 0; s < RV_NSETUPS; s++) {
			if (c & positive_bits[s]) {
				/* Trapezoid between the precision before and
				 * after this positive, as revisitop sums it. */
				long i = found[s], r = p - skipped[s];
				double before = r == 0 ? 1.0 : (double)i / r;
				double after = (double)(i + 1) / (r + 1);
				ap[s] += (before + after) * (1.0 / nres[s]) / 2.0;
				found[s]++;
				last[s] = r + 1;
				for (int k = 0; k < nk; k++)
					within[s * nk + k] += r + 1 <= e->kappas[k];
			}
			if (c & junk_bits[s])
				skipped[s]++;
		}
	}
	mark(e->cls, q->easy, q->neasy, 0, 0);
	mark(e->cls, q->hard, q->nhard, 0, 0);
	mark(e->cls, q->junk, q->njunk, 0, 0);
	for (int s = 0; s < RV_NSETUPS && rc == 0; s++) {
		double *pk = e->pk + ((size_t)qi * RV_NSETUPS + s) * nk;
		e->ap[qi * RV_NSETUPS + s] = nres[s] ? ap[s] : NAN;
		for (int k = 0; k < nk; k++) {
			/* k clipped to the last positive's position. */
			long kq = last[s] < e->kappas[k] ? last[s] : e->kappas[k];
			long hits = last[s] <= e->kappas[k] ? found[s]
							    : within[s * nk + k];
			pk[k] = !nres[s] ? NAN : found[s] ? (double)hits / kq : 0;
		}
	}
	free(within);
	return rc;
}

void rv_eval_means(const struct rv_eval *e, double *map, double *mpk,
		   long *nused)
{
	int nk = e->nk;
	for (int s = 0; s < RV_NSETUPS; s++) {
		long used = 0;
		double sum = 0;
		double *m = mpk + (size_t)s * nk;
		for (int k = 0; k < nk; k++)
			m[k] = 0;
		/* In query order, as revisitop adds them up. */
		for (long i = 0; i < e->g->nq; i++) {
			double ap = e->ap[i * RV_NSETUPS + s];
			if (isnan(ap))
				continue;
			sum += ap;
			const double *pk = e->pk + ((size_t)i * RV_NSETUPS + s) * nk;
			for (int k = 0; k < nk; k++)
				m[k] += pk[k];
			used++;
		}
		map[s] = used ? sum / used : NAN;
		for (int k = 0; k < nk; k++)
			m[k] = used ? m[k] / used : NAN;
		if (nused)
			nused[s] = used;
	}
}

/* ---- NumPy's printing ---- */

double rv_np_round2(double v)
{
	return rint(v * 100.0) / 100.0;
}

/* The fewest decimals (from 'lo' to 'hi') with which "%.*f" reads back
 * as v; hi when none does. */
static int fixed_decimals(double v, int lo, int hi)
{
	char b[400];
	for (int d = lo; d < hi; d++) {
		snprintf(b, sizeof b, "%.*f", d, v);
		if (strtod(b, NULL) == v)
			return d;
	}
	return hi;
}

/* The same for "%.*e". */
static int sci_decimals(double v, int hi)
{
	char b[64];
	for (int d = 0; d < hi; d++) {
		snprintf(b, sizeof b, "%.*e", d, v);
		if (strtod(b, NULL) == v)
			return d;
	}
	return hi;
}

static void append(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (*at < len) {
		int n = vsnprintf(buf + *at, len - *at, fmt, ap);
		*at += n > 0 ? (size_t)n : 0;
	}
	va_end(ap);
}

void rv_np_scalar(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "nan");
	} else if (isinf(v)) {
		snprintf(buf, len, "%sinf", v < 0 ? "-" : "");
	} else if (v == 0 || (fabs(v) >= 1e-4 && fabs(v) < 1e16)) {
		/* repr(): the shortest digits that read back, positional,
		 * at least one decimal. */
		snprintf(buf, len, "%.*f", fixed_decimals(v, 1, 330), v);
	} else {
		int d = sci_decimals(v, 17);
		char m[64];
		snprintf(m, sizeof m, "%.*e", d, v); /* "1.5e-05", "1e+20" */
		snprintf(buf, len, "%s", m);
	}
}

/* A word as numpy's FloatingFormat writes it: int part right-aligned in
 * pad_left, fraction left-aligned in pad_right. */
struct npfmt {
	int exp;     /* exponential notation */
	int prec;    /* exp: decimals */
	int expsize; /* exp: exponent digits */
	int left, right;
};

/* Positional form with at most 8 decimals, trailing zeros trimmed, the
 * point kept ("100.", "85.12"). */
static void positional(char *b, size_t len, double v)
{
	int d = fixed_decimals(v, 0, 8);
	snprintf(b, len, "%.*f", d, v);
	if (d == 8) { /* cut at 8 decimals: trim its zeros */
		size_t n = strlen(b);
		while (n && b[n - 1] == '0')
			b[--n] = 0;
	}
	if (!strchr(b, '.'))
		strcat(b, ".");
}

/* Exponential form with 'prec' decimals and the exponent padded to
 * 'expsize' digits ("1.e+02", "8.512e+01"). */
static void exponential(char *b, size_t len, double v, int prec, int expsize)
{
	char m[64];
	snprintf(m, sizeof m, "%.*e", prec, v);
	char *e = strchr(m, 'e');
	*e = 0;
	int ex = atoi(e + 1);
	snprintf(b, len, "%s%se%c%0*d", m, prec ? "" : ".", ex < 0 ? '-' : '+',
		 expsize, ex < 0 ? -ex : ex);
}

static void np_word(char *b, size_t len, double v, const struct npfmt *f)
{
	char s[400];
	if (!isfinite(v)) {
		snprintf(s, sizeof s, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
		snprintf(b, len, "%*s", f->left + f->right + 1, s);
		return;
	}
	if (f->exp)
		exponential(s, sizeof s, v, f->prec, f->expsize);
	else
		positional(s, sizeof s, v);
	char *dot = strchr(s, '.');
	int il = (int)(dot - s), fl = (int)strlen(dot + 1);
	if (f->exp) /* its fraction and exponent are all of one width */
		snprintf(b, len, "%*s%s", f->left - il, "", s);
	else
		snprintf(b, len, "%*s%s%*s", f->left - il, "", s, f->right - fl,
			 "");
}

/* numpy.core.arrayprint.FloatingFormat.fillFormat, default options. */
static void np_fill_format(struct npfmt *f, const double *v, int n)
{
	memset(f, 0, sizeof *f);
	double lo = INFINITY, hi = 0;
	int finite = 0, nonfinite = 0, neginf = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			nonfinite = 1;
			neginf |= isinf(v[i]) && v[i] < 0;
			continue;
		}
		finite++;
		double a = fabs(v[i]);
		if (a != 0) {
			lo = a < lo ? a : lo;
			hi = a > hi ? a : hi;
		}
	}
	if (hi > 0 && (hi >= 1e8 || lo < 1e-4 || hi / lo > 1000.))
		f->exp = 1;
	char s[400];
	for (int i = 0; i < n && finite; i++) {
		if (!isfinite(v[i]))
			continue;
		if (f->exp) {
			int d = sci_decimals(v[i], 8);
			snprintf(s, sizeof s, "%.*e", d, v[i]);
			char *e = strchr(s, 'e');
			int ed = (int)strlen(e + 2); /* digits after the sign */
			int il = (int)(strchr(s, '.') ? strchr(s, '.') - s : e - s);
			f->prec = d > f->prec ? d : f->prec;
			f->expsize = ed > f->expsize ? ed : f->expsize;
			f->left = il > f->left ? il : f->left;
		} else {
			positional(s, sizeof s, v[i]);
			char *dot = strchr(s, '.');
			int il = (int)(dot - s), fl = (int)strlen(dot + 1);
			f->left = il > f->left ? il : f->left;
			f->right = fl > f->right ? fl : f->right;
		}
	}
	if (f->exp)
		f->right = f->expsize + 2 + f->prec;
	if (nonfinite) {
		int offset = f->right + 1;
		int nanlen = 3 - offset, inflen = 3 + neginf - offset;
		f->left = f->left > nanlen ? f->left : nanlen;
		f->left = f->left > inflen ? f->left : inflen;
	}
}

void rv_np_array(char *buf, size_t len, const double *v, int n)
{
	struct npfmt f;
	np_fill_format(&f, v, n);
	/* _formatArray: words separated by ' ', lines wrapped at 75
	 * columns (74 before the closing bracket), continuation lines
	 * indented by one space. */
	const int width = 75 - 1;
	size_t at = 0, linelen = 1;
	append(buf, len, &at, "[");
	for (int i = 0; i < n; i++) {
		char w[512];
		np_word(w, sizeof w, v[i], &f);
		size_t wl = strlen(w);
		if (linelen + wl > (size_t)width && linelen > 1) {
			/* rstrip the line and break it */
			while (at > 0 && at <= len && buf[at - 1] == ' ')
				at--;
			append(buf, len, &at, "\n ");
			linelen = 1;
		}
		append(buf, len, &at, "%s%s", w, i + 1 < n ? " " : "");
		linelen += wl + (i + 1 < n);
	}
	append(buf, len, &at, "]");
}

void rv_print(FILE *fp, const char *dataset, const double *map,
	      const double *mpk, const int *kappas, int nk)
{
	char s[RV_NSETUPS][64];
	for (int i = 0; i < RV_NSETUPS; i++)
		rv_np_scalar(s[i], sizeof s[i], rv_np_round2(map[i] * 100));
	fprintf(fp, ">> %s: mAP E: %s, M: %s, H: %s\n", dataset, s[0], s[1],
		s[2]);
	fprintf(fp, ">> %s: mP@k[", dataset);
	for (int k = 0; k < nk; k++)
		fprintf(fp, "%s%d", k ? ", " : "", kappas[k]);
	fprintf(fp, "]");
	double *r = xmalloc(xmul(nk, sizeof *r));
	size_t blen = (size_t)nk * 48 + 64;
	char *b = xmalloc(blen);
	for (int i = 0; i < RV_NSETUPS; i++) {
		for (int k = 0; k < nk; k++)
			r[k] = rv_np_round2(mpk[i * nk + k] * 100);
		rv_np_array(b, blen, r, nk);
		fprintf(fp, " %s: %s%s", (const char *[]){"E", "M", "H"}[i], b,
			i + 1 < RV_NSETUPS ? "," : "\n");
	}
	free(r);
	free(b);
}
