/* tk-list - dataset metadata (revisitop ground truth pickles, the R1M name
 * list, GLDv2 CSVs) to image lists: path<TAB>key<TAB>label<TAB>bbox. */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/datasets.h"
#include "common/nprand.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-list roxford5k|rparis6k|NAME --root DIR [--queries]\n"
    "         (NAME: any dataset in revisitop's layout, DIR/NAME/gnd_NAME.pkl)\n"
    "       tk-list revisitop1m --root DIR\n"
    "       tk-list gldv2 --root DIR [--clean] [--split train|val]\n"
    "               [--val-fraction F] [--seed S] [--label-map FILE]\n"
    "   any of them [--shuffle [--seed S] [--epoch E]]\n"
    "One image per line on standard output: path<TAB>key<TAB>label<TAB>bbox.\n"
    "See tk-list(1).\n"
    "  -r, --root DIR        the folder holding the dataset\n"
    "      --queries         the query images with their boxes\n"
    "      --clean           GLDv2: train_clean.csv (default: train.csv)\n"
    "      --split S         GLDv2: train or val part of the per-class split\n"
    "      --val-fraction F  GLDv2: the val part of each class (default 0.2)\n"
    "      --label-map FILE  GLDv2: where the label numbering goes (default\n"
    "                        gldv2-clean-labels.tsv or gldv2-labels.tsv)\n"
    "      --shuffle         a shuffled order, fixed by --seed and --epoch\n"
    "      --seed S          seed of the split and the shuffle (default 0)\n"
    "      --epoch E         epoch of the shuffle (default 0)\n"
    "  -q, --quiet           no counts on standard error\n"
    "      --progress        accepted by every tool; nothing to show here\n"
    "  -h, --help            this text\n"
    "      --version         version, and whether CUDA support is built in\n";

enum {
	OPT_QUERIES = TK_OPT_FIRST_TOOL, OPT_CLEAN, OPT_SPLIT, OPT_VAL_FRACTION,
	OPT_LABEL_MAP, OPT_SHUFFLE, OPT_SEED, OPT_EPOCH
};

struct options {
	const char *dataset, *root, *label_map;
	int queries, clean, shuffle, seed_set, epoch_set;
	enum ds_split split;
	double val_fraction;
	long seed, epoch;
};

/* A dataset name that is safe as a folder and file name part. */
static int plain_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"root", required_argument, 0, 'r'},
	    {"queries", no_argument, 0, OPT_QUERIES},
	    {"clean", no_argument, 0, OPT_CLEAN},
	    {"split", required_argument, 0, OPT_SPLIT},
	    {"val-fraction", required_argument, 0, OPT_VAL_FRACTION},
	    {"label-map", required_argument, 0, OPT_LABEL_MAP},
	    {"shuffle", no_argument, 0, OPT_SHUFFLE},
	    {"seed", required_argument, 0, OPT_SEED},
	    {"epoch", required_argument, 0, OPT_EPOCH},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c, gldv2_only = 0;
	memset(o, 0, sizeof *o);
	o->val_fraction = 0.2;
	while ((c = tk_getopt(argc, argv, "r:qh", longopts)) != -1) {
		switch (c) {
		case 'r': o->root = optarg; break;
		case OPT_QUERIES: o->queries = 1; break;
		case OPT_CLEAN: o->clean = 1; gldv2_only = 1; break;
		case OPT_SPLIT:
			if (strcmp(optarg, "train") && strcmp(optarg, "val"))
				die_usage("--split: '%s' is neither train nor val", optarg);
			o->split = strcmp(optarg, "train") ? DS_VAL : DS_TRAIN;
			gldv2_only = 1;
			break;
		case OPT_VAL_FRACTION:
			o->val_fraction = tk_parse_double("--val-fraction", optarg);
			if (!(o->val_fraction > 0 && o->val_fraction < 1))
				die_usage("--val-fraction: %s is not in (0, 1)", optarg);
			gldv2_only = 1;
			break;
		case OPT_LABEL_MAP: o->label_map = optarg; gldv2_only = 1; break;
		case OPT_SHUFFLE: o->shuffle = 1; break;
		case OPT_SEED:
			o->seed = tk_parse_long("--seed", optarg, 0, LONG_MAX);
			o->seed_set = 1;
			break;
		case OPT_EPOCH:
			o->epoch = tk_parse_long("--epoch", optarg, 0, LONG_MAX);
			o->epoch_set = 1;
			break;
		default: tk_common_option(c, usage);
		}
	}
	if (optind != argc - 1)
		die_usage("name one dataset: roxford5k, rparis6k, revisitop1m or gldv2");
	o->dataset = argv[optind];
	int gldv2 = !strcmp(o->dataset, "gldv2");
	/* Any other name is a dataset in the revisitop layout, like the
	 * embedded demo's: DIR/NAME/gnd_NAME.pkl and DIR/NAME/jpg/. */
	int revisitop = !gldv2 && strcmp(o->dataset, "revisitop1m") != 0;
	if (revisitop && !plain_name(o->dataset))
		die_usage("unknown dataset '%s' (roxford5k, rparis6k, another "
			  "revisitop-style NAME, revisitop1m, gldv2)", o->dataset);
	if (!o->root)
		die_usage("--root DIR is required");
	if (o->queries && !revisitop)
		die_usage("--queries goes with roxford5k, rparis6k and other "
			  "revisitop-style datasets");
	if (gldv2_only && !gldv2)
		die_usage("--clean, --split, --val-fraction and --label-map go with "
			  "gldv2");
	if (o->epoch_set && !o->shuffle)
		die_usage("--epoch goes with --shuffle");
	if (o->seed_set && !o->shuffle && !(gldv2 && o->split != DS_ALL))
		die_usage("--seed goes with --shuffle or gldv2 --split");
	if (gldv2 && !o->label_map)
		o->label_map = o->clean ? "gldv2-clean-labels.tsv" : "gldv2-labels.tsv";
}

/* numpy: RandomState(MT19937(SeedSequence([seed, epoch]))).permutation(n) */
static size_t *shuffled(const struct options *o, size_t n)
{
	uint32_t e[4];
	size_t k = np_int_words((uint64_t)o->seed, e);
	k += np_int_words((uint64_t)o->epoch, e + k);
	struct np_rng rng;
	np_rng_seed(&rng, e, k);
	size_t *perm = xmalloc(xmul(n + 1, sizeof *perm));
	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	np_shuffle(&rng, perm, n);
	return perm;
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	struct tk_image *im;
	size_t n;
	if (!strcmp(o.dataset, "gldv2")) {
		struct ds_gldv2_options g = {o.root, o.clean, o.split,
					     o.val_fraction, (unsigned long)o.seed,
					     o.label_map};
		struct ds_gldv2_counts c;
		im = ds_gldv2(&g, &n, &c);
		tk_note("gldv2%s: %zu classes, %zu images (%zu repeated ids), "
			"labels in %s", o.clean ? "-clean" : "", c.classes,
			c.images, c.duplicates, o.label_map);
		if (o.split != DS_ALL)
			tk_note("%s split: %zu images", o.split == DS_VAL ? "val" : "train", n);
	} else if (!strcmp(o.dataset, "revisitop1m")) {
		im = ds_revisitop1m(o.root, &n);
		tk_note("revisitop1m: %zu images", n);
	} else {
		im = ds_revisitop(o.root, o.dataset, o.queries, &n);
		tk_note("%s: %zu %s", o.dataset, n, o.queries ? "queries" : "images");
	}
	/* the list is lines of tab-separated fields: a path or key with a
	 * tab or a line break would be read as other fields or lines */
	for (size_t i = 0; i < n; i++)
		if (strpbrk(im[i].path, "\t\n\r") || strpbrk(im[i].key, "\t\n\r"))
			die_data("%s: a tab or line break in the image's path or key, "
				 "which a list line (tab-separated fields) cannot hold",
				 im[i].path);
	size_t *perm = o.shuffle ? shuffled(&o, n) : NULL;
	for (size_t i = 0; i < n; i++)
		if (tk_image_print(stdout, &im[perm ? perm[i] : i]) < 0)
			tk_write_failed("standard output");
	free(perm);
	ds_free(im, n);
	tk_close_stdout();
	return 0;
}
