/* tk-map - score rankings by the revisitop protocol: mAP and mP@k under
 * the Easy, Medium and Hard setups of Revisited Oxford and Paris. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/imlist.h"
#include "common/revisitop.h"
#include "common/stream.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-map [--json] [--per-query] [--kappas 1,5,10] GND.pkl [RANKS]\n"
    "Scores the rank frames of RANKS (default: standard input), one per\n"
    "query of GND.pkl's qimlist, as revisitop does.  See tk-map(1).\n"
    "  -j, --json          one JSON object, in percent, unrounded\n"
    "  -p, --per-query     each query's AP and P@k too\n"
    "  -k, --kappas LIST   the k of mP@k (default 1,5,10)\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

#define MAX_KAPPAS 1000

struct options {
	int json, per_query;
	int kappas[MAX_KAPPAS];
	int nk;
	const char *gnd, *ranks;
};

static void parse_kappas(struct options *o, const char *s)
{
	const char *p = s;
	o->nk = 0;
	for (;;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > INT32_MAX || (*end && *end != ','))
			die_usage("--kappas: '%s' is not a comma-separated list "
				  "of positive integers",
				  s);
		if (o->nk == MAX_KAPPAS)
			die_usage("--kappas: more than %d values", MAX_KAPPAS);
		o->kappas[o->nk++] = (int)v;
		if (!*end)
			return;
		p = end + 1;
	}
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, 0, 'j'},
	    {"per-query", no_argument, 0, 'p'},
	    {"kappas", required_argument, 0, 'k'},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c;
	memset(o, 0, sizeof *o);
	parse_kappas(o, "1,5,10");
	while ((c = tk_getopt(argc, argv, "jpk:qh", longopts)) != -1) {
		switch (c) {
		case 'j': o->json = 1; break;
		case 'p': o->per_query = 1; break;
		case 'k': parse_kappas(o, optarg); break;
		default: tk_common_option(c, usage);
		}
	}
	if (optind >= argc || argc - optind > 2)
		die_usage("expected GND.pkl and at most one RANKS file (try "
			  "--help)");
	o->gnd = argv[optind];
	o->ranks = optind + 1 < argc ? argv[optind + 1] : "-";
}

/* Queries by key: indices into g->q sorted by key. */
static const struct rv_gnd *sort_gnd;
static int by_key(const void *a, const void *b)
{
	return strcmp(sort_gnd->q[*(const long *)a].key,
		      sort_gnd->q[*(const long *)b].key);
}

static long find_query(const struct rv_gnd *g, const long *order,
		       const char *key)
{
	long lo = 0, hi = g->nq;
	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;
		int c = strcmp(g->q[order[mid]].key, key);
		if (c == 0)
			return order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void score_stream(struct rv_eval *e, const struct options *o)
{
	const struct rv_gnd *g = e->g;
	/* Static: still reachable when an error ends the program here (the
	 * leak checker of the sanitized build looks). */
	static long *order;
	static char *done;
	order = xmalloc(xmul(g->nq ? g->nq : 1, sizeof *order));
	for (long i = 0; i < g->nq; i++)
		order[i] = i;
	sort_gnd = g;
	qsort(order, g->nq, sizeof *order, by_key);
	done = xcalloc(g->nq ? g->nq : 1, 1);
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, o->ranks);
	struct tk_progress p;
	tk_progress_start(&p, "queries", g->nq);
	long n = 0;
	while (tk_read_frame(&s, &d)) {
		const char *key = st_meta_get(&d, "key");
		if (!key)
			tk_frame_die(&s, &d, "no key: rankings are matched to "
				     "the queries of %s by key", o->gnd);
		long qi = find_query(g, order, key);
		if (qi < 0)
			tk_frame_die(&s, &d, "'%s' is not a query of %s", key,
				     o->gnd);
		if (done[qi])
			tk_frame_die(&s, &d, "query '%s' is ranked twice", key);
		const struct st_tensor *t = tk_frame_tensor(&s, &d, "rank", ST_I32, 1);
		char err[256];
		if (rv_eval_query(e, qi, t->data, (long)t->shape[0], err,
				  sizeof err) < 0)
			tk_frame_die(&s, &d, "%s", err);
		done[qi] = 1;
		n++;
		tk_progress_step(&p, 1);
	}
	tk_progress_end(&p);
	if (n < g->nq) {
		long first = 0;
		while (done[first])
			first++;
		die_data("%s: %ld rankings for the %ld queries of %s ('%s' has "
			 "none)",
			 s.name, n, g->nq, o->gnd, g->q[first].key);
	}
	tk_stream_close(&s);
	st_free(&d);
	free(done);
	free(order);
}

/* JSON numbers that read back exactly (percentages: tk_format_double's
 * shortest form, which for numbers up to 100 is never longer than an
 * exponent's); null for NaN. */
static void json_number(double v)
{
	char b[32];
	fputs(isfinite(v) ? tk_format_double(b, v) : "null", stdout);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* [v0*100, v1*100, ...]; with 'excluded', null when the query had no
 * positives (v is NaN). */
static void json_percents(const double *v, int n, int excluded)
{
	if (excluded && n && isnan(v[0])) {
		fputs("null", stdout);
		return;
	}
	putchar('[');
	for (int i = 0; i < n; i++) {
		if (i)
			putchar(',');
		json_number(v[i] * 100);
	}
	putchar(']');
}

/* {"easy": .., "medium": .., "hard": ..} of v[s * stride ...]: numbers
 * when n == 0, lists of n otherwise. */
static void json_setups(const double *v, size_t stride, int n)
{
	putchar('{');
	for (int s = 0; s < RV_NSETUPS; s++) {
		printf("%s\"%s\":", s ? "," : "", rv_setup_name[s]);
		if (n)
			json_percents(v + s * stride, n, 1);
		else
			json_number(v[s * stride] * 100);
	}
	putchar('}');
}

static void print_json(const struct rv_eval *e, const struct options *o,
		       const char *dataset, const double *map, const double *mpk)
{
	int nk = o->nk;
	fputs("{\"dataset\":", stdout);
	json_string(dataset);
	printf(",\"queries\":%ld,\"map\":", e->g->nq);
	json_setups(map, 1, 0);
	fputs(",\"mpk\":{\"k\":[", stdout);
	for (int k = 0; k < nk; k++)
		printf("%s%d", k ? "," : "", o->kappas[k]);
	putchar(']');
	for (int s = 0; s < RV_NSETUPS; s++) {
		printf(",\"%s\":", rv_setup_name[s]);
		json_percents(mpk + (size_t)s * nk, nk, 0);
	}
	putchar('}');
	if (o->per_query) {
		fputs(",\"per_query\":[", stdout);
		for (long i = 0; i < e->g->nq; i++) {
			fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
			json_string(e->g->q[i].key);
			fputs(",\"ap\":", stdout);
			json_setups(e->ap + i * RV_NSETUPS, 1, 0);
			fputs(",\"pk\":", stdout);
			json_setups(e->pk + (size_t)i * RV_NSETUPS * nk, nk, nk);
			putchar('}');
		}
		putchar(']');
	}
	puts("}");
}

/* A tab-separated table: key, AP per setup, then P@k per setup and k;
 * "-" where the query has no positives. */
static void print_per_query(const struct rv_eval *e, const struct options *o)
{
	static const char tag[RV_NSETUPS] = {'E', 'M', 'H'};
	int nk = o->nk;
	printf("#key\tapE\tapM\tapH");
	for (int s = 0; s < RV_NSETUPS; s++)
		for (int k = 0; k < nk; k++)
			printf("\tp%c@%d", tag[s], o->kappas[k]);
	putchar('\n');
	for (long i = 0; i < e->g->nq; i++) {
		printf("%s", e->g->q[i].key);
		for (int s = 0; s < RV_NSETUPS; s++) {
			double ap = e->ap[i * RV_NSETUPS + s];
			isnan(ap) ? printf("\t-") : printf("\t%.2f", ap * 100);
		}
		for (int s = 0; s < RV_NSETUPS; s++)
			for (int k = 0; k < nk; k++) {
				double v = e->pk[((size_t)i * RV_NSETUPS + s) * nk + k];
				isnan(v) ? printf("\t-") : printf("\t%.2f", v * 100);
			}
		putchar('\n');
	}
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	struct rv_gnd g;
	char err[1024];
	int rc = rv_load(&g, o.gnd, err, sizeof err);
	if (rc == -2)
		die_io("%s", err);
	if (rc < 0)
		die_data("%s", err);
	struct rv_eval e;
	rv_eval_init(&e, &g, o.kappas, o.nk);
	score_stream(&e, &o);
	double map[RV_NSETUPS], *mpk = xmalloc(xmul(RV_NSETUPS * o.nk, sizeof *mpk));
	rv_eval_means(&e, map, mpk, NULL);
	char *dataset = rv_dataset_name(o.gnd);
	if (o.json) {
		print_json(&e, &o, dataset, map, mpk);
	} else {
		rv_print(stdout, dataset, map, mpk, o.kappas, o.nk);
		if (o.per_query)
			print_per_query(&e, &o);
	}
	free(dataset);
	free(mpk);
	rv_eval_free(&e);
	rv_free(&g);
	tk_close_stdout();
	return 0;
}
