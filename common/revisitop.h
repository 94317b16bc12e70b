/* revisitop.h - the evaluation protocol of Revisited Oxford and Paris
 * (Radenovic et al., CVPR 2018): ground truth from gnd_*.pkl, AP and P@k
 * under the Easy, Medium and Hard setups, and the lines revisitop's
 * example script prints. */
#ifndef TK_REVISITOP_H
#define TK_REVISITOP_H

#include <stdint.h>
#include <stdio.h>

enum { RV_EASY, RV_MEDIUM, RV_HARD, RV_NSETUPS };
extern const char *const rv_setup_name[RV_NSETUPS]; /* "easy", ... */

struct rv_query {
	char *key;                   /* qimlist entry */
	int32_t *easy, *hard, *junk; /* image indices */
	long neasy, nhard, njunk;
};

struct rv_gnd {
	long nimages; /* len(imlist): positions from here on are distractors */
	long nq;
	struct rv_query *q;
};

/* Read a gnd_*.pkl file: a dict with 'imlist' and 'qimlist' (lists of
 * str) and 'gnd' (per query a dict with lists 'easy', 'hard' and,
 * optionally, 'junk' of indices into imlist).  0; -1 for bad data, -2
 * when the file cannot be read, with a one-line message in err. */
int rv_load(struct rv_gnd *g, const char *path, char *err, size_t errlen);
/* The same from len bytes at buf (fuzz_pickle), name standing for the
 * path in messages; -1 for bad data. */
int rv_load_buffer(struct rv_gnd *g, const void *buf, size_t len,
		   const char *name, char *err, size_t errlen);
void rv_free(struct rv_gnd *g);
/* "gnd_roxford5k.pkl" -> "roxford5k" (the file name without directories,
 * "gnd_" and ".pkl"); caller frees. */
char *rv_dataset_name(const char *path);

/* Scores of the queries ranked so far. */
struct rv_eval {
	const struct rv_gnd *g;
	const int *kappas;
	int nk;
	double *ap;  /* [nq][RV_NSETUPS]: AP, NAN where no positives */
	double *pk;  /* [nq][RV_NSETUPS][nk] */
	uint8_t *cls;    /* [nimages] scratch: easy/hard/junk bits */
	uint32_t *stamp; /* [nimages] scratch: last query that ranked it */
	uint32_t gen;
};

void rv_eval_init(struct rv_eval *e, const struct rv_gnd *g,
		  const int *kappas, int nk);
void rv_eval_free(struct rv_eval *e);
/* Score query qi's ranking rank[0..n) (image positions best first;
 * >= nimages: distractors).  0, or -1 with a message in err on a negative
 * or repeated position. */
int rv_eval_query(struct rv_eval *e, long qi, const int32_t *rank, long n,
		  char *err, size_t errlen);
/* Means over the queries with positives, as fractions: map[RV_NSETUPS],
 * mpk[RV_NSETUPS][nk]; NAN when no query has positives.  Returns for
 * each setup the number of queries counted in nused (may be NULL). */
void rv_eval_means(const struct rv_eval *e, double *map, double *mpk,
		   long *nused);

/* The two lines revisitop's example_evaluate.py prints, numbers as
 * NumPy's str() of np.around(x * 100, decimals=2) writes them:
 *   >> roxford5k: mAP E: 85.12, M: 70.33, H: 45.67
 *   >> roxford5k: mP@k[1, 5, 10] E: [95.59 90.74 86.47], M: [...], H: [...]
 */
void rv_print(FILE *fp, const char *dataset, const double *map,
	      const double *mpk, const int *kappas, int nk);

/* NumPy's str() of a float64 scalar and of a 1-d float64 array (default
 * print options); for rv_print and its tests. */
void rv_np_scalar(char *buf, size_t len, double v);
void rv_np_array(char *buf, size_t len, const double *v, int n);
/* np.around(v, decimals=2) */
double rv_np_round2(double v);

#endif
