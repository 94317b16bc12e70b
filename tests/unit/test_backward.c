/* test_backward - the backward kernels against torch autograd, and every
 * backward against finite differences of its own forward.
 *
 *   test_backward [CASES.bin...]
 *
 * Each frame of a cases stream (tests/ref/grads_ref.py) is one op on
 * torch's inputs and upstream gradient "dout", with torch's output
 * "want_out" and gradients "want_d<input>".  Without arguments it reads
 * the small committed set tests/data/grads.bin, then checks each op's
 * gradient against central differences on shapes of its own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/stream.h"
#include "common/threads.h"
#include "common/tk.h"
#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/resize.h"

static const struct st_doc *cur;

static long iparam(const char *k)
{
	const char *v = st_meta_get(cur, k);
	if (!v) {
		fprintf(stderr, "case %s: no '%s'\n", st_meta_get(cur, "key"), k);
		exit(2);
	}
	return strtol(v, NULL, 10);
}

static double dparam(const char *k)
{
	const char *v = st_meta_get(cur, k);
	return v ? strtod(v, NULL) : 0.0;
}

static void *in(const char *name)
{
	struct st_tensor *t = st_find(cur, name);
	return t ? t->data : NULL;
}

static size_t numel(const char *name)
{
	struct st_tensor *t = st_find(cur, name);
	if (!t) {
		fprintf(stderr, "case %s: no tensor '%s'\n", st_meta_get(cur, "key"),
			name);
		exit(2);
	}
	return st_numel(t);
}

/* A zeroed float array for a gradient the size of tensor 'like'. */
static float *zeros(const char *like)
{
	return xcalloc(numel(like) + 1, sizeof(float));
}

/* Compare against tensor want; error relative to its largest element. */
static void compare(const char *want, const float *got, double tol)
{
	struct st_tensor *t = st_find(cur, want);
	if (!t) {
		fprintf(stderr, "case %s: no '%s'\n", st_meta_get(cur, "key"), want);
		CHECK(0);
		return;
	}
	size_t n = st_numel(t);
	const float *w = t->data;
	double err = 0, mag = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - w[i]);
		if (!(d <= err))
			err = d;
		mag = fabs(w[i]) > mag ? fabs(w[i]) : mag;
	}
	double rel = err / (mag > 1e-30 ? mag : 1);
	int ok = rel <= tol;
	printf("%-5s %-16s %-14s n=%-7zu max|d|=%.3g rel=%.3g tol=%.0e\n",
	       ok ? "ok" : "FAIL", st_meta_get(cur, "key"), want, n, err, rel,
	       tol);
	CHECK(ok);
}

static void compare_mask(const uint8_t *got)
{
	struct st_tensor *t = st_find(cur, "want_mask");
	size_t n = st_numel(t), bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += got[i] != ((uint8_t *)t->data)[i];
	printf("%-5s %-16s %-14s n=%-7zu differing=%zu\n", bad ? "FAIL" : "ok",
	       st_meta_get(cur, "key"), "want_mask", n, bad);
	CHECK(bad == 0);
}

static void case_conv(void)
{
	struct conv2d_dims d = {iparam("B"), iparam("C"), iparam("H"), iparam("W"),
				iparam("OC"), iparam("K"), iparam("stride"),
				iparam("pad")};
	int th = tk_threads();
	float *out = zeros("want_out");
	float *work = xmalloc((conv2d_workspace(d, th) + 1) * sizeof *work);
	conv2d_forward(out, work, in("in"), in("weight"), in("bias"), NULL, 0, d);
	compare("want_out", out, 2e-5);
	free(work);
	work = xmalloc((conv2d_backward_workspace(d, th) + 1) * sizeof *work);
	memset(out, 0, numel("want_out") * sizeof *out);
	conv2d_train_forward(out, work, in("in"), in("weight"), in("bias"), NULL, 0,
			     d);
	compare("want_out", out, 2e-5);
	float *din = zeros("in"), *dw = zeros("weight");
	float *db = in("bias") ? zeros("bias") : NULL;
	conv2d_backward(din, dw, db, work, in("dout"), in("in"), in("weight"), d);
	compare("want_din", din, 1e-5);
	compare("want_dweight", dw, 1e-5);
	if (db)
		compare("want_dbias", db, 1e-5);
	free(work);
	free(out);
	free(din);
	free(dw);
	free(db);
}

static void case_linear(void)
{
	int N = iparam("N"), IN = iparam("IN"), OUT = iparam("OUT");
	float *out = zeros("want_out"), *din = zeros("in"), *dw = zeros("weight");
	float *db = in("bias") ? zeros("bias") : NULL;
	linear_forward(out, in("in"), in("weight"), in("bias"), N, IN, OUT);
	compare("want_out", out, 1e-5);
	linear_backward(din, dw, db, in("dout"), in("in"), in("weight"), N, IN, OUT);
	compare("want_din", din, 1e-5);
	compare("want_dweight", dw, 1e-5);
	if (db)
		compare("want_dbias", db, 1e-5);
	free(out);
	free(din);
	free(dw);
	free(db);
}

static void case_batchnorm(void)
{
	int B = iparam("B"), C = iparam("C"), S = iparam("S");
	float *out = zeros("want_out"), *din = zeros("in");
	float *dg = zeros("gamma"), *db = zeros("beta");
	float *mean = zeros("gamma"), *rstd = zeros("gamma");
	float *rm = zeros("gamma"), *rv = zeros("gamma");
	memcpy(rm, in("running_mean"), C * sizeof *rm);
	memcpy(rv, in("running_var"), C * sizeof *rv);
	batchnorm_train_forward(out, mean, rstd, rm, rv, in("in"), in("gamma"),
				in("beta"), (float)dparam("eps"),
				dparam("momentum"), 0, B, C, S);
	compare("want_out", out, 1e-6);
	compare("want_running_mean", rm, 5e-7);
	compare("want_running_var", rv, 5e-7);
	batchnorm_backward(din, dg, db, in("dout"), NULL, in("in"), mean, rstd,
			   in("gamma"), B, C, S);
	compare("want_din", din, 1e-5);
	compare("want_dgamma", dg, 1e-5);
	compare("want_dbeta", db, 1e-6);
	free(out);
	free(din);
	free(dg);
	free(db);
	free(mean);
	free(rstd);
	free(rm);
	free(rv);
}

static void case_rows(const char *op)
{
	size_t n = numel("in");
	int N = iparam("N"), C = iparam("C");
	float *out = zeros("in"), *din = zeros("in");
	const float *x = in("in"), *dy = in("dout");
	if (strcmp(op, "relu") == 0) {
		relu_forward(out, x, n);
		relu_backward(din, dy, out, n);
	} else if (strcmp(op, "gelu") == 0) {
		gelu_forward(out, x, n);
		gelu_backward(din, dy, x, n);
	} else if (strcmp(op, "softmax") == 0) {
		softmax_forward(out, x, N, C);
		softmax_backward(din, dy, out, N, C);
	} else {
		float eps = (float)dparam("eps");
		l2norm_forward(out, x, eps, N, C);
		l2norm_backward(din, dy, x, eps, N, C);
	}
	compare("want_out", out, 1e-6);
	compare("want_din", din, 1e-5);
	free(out);
	free(din);
}

static void case_maxpool(void)
{
	int P = iparam("P"), H = iparam("H"), W = iparam("W"), K = iparam("K");
	int s = iparam("stride"), pad = iparam("pad");
	float *out = zeros("want_out"), *din = zeros("in");
	int *am = xmalloc(numel("want_out") * sizeof *am);
	maxpool2d_forward(out, am, in("in"), P, H, W, K, s, pad);
	compare("want_out", out, 0);
	maxpool2d_backward(din, in("dout"), am, P, H, W, K, s, pad);
	compare("want_din", din, 0);
	free(out);
	free(din);
	free(am);
}

static void case_layernorm(void)
{
	int N = iparam("N"), C = iparam("C");
	float *out = zeros("in"), *din = zeros("in");
	float *dw = zeros("weight"), *db = zeros("bias");
	float *mean = xmalloc(N * sizeof *mean), *rstd = xmalloc(N * sizeof *rstd);
	layernorm_forward(out, mean, rstd, in("in"), in("weight"), in("bias"),
			  (float)dparam("eps"), N, C);
	compare("want_out", out, 1e-5);
	layernorm_backward(din, dw, db, in("dout"), in("in"), in("weight"), mean,
			   rstd, N, C);
	compare("want_din", din, 1e-5);
	compare("want_dweight", dw, 1e-5);
	compare("want_dbias", db, 1e-6);
	free(out);
	free(din);
	free(dw);
	free(db);
	free(mean);
	free(rstd);
}

static void case_attention(void)
{
	int B = iparam("B"), Nq = iparam("Nq"), Nk = iparam("Nk"), D = iparam("D");
	int heads = iparam("heads");
	float p = (float)dparam("p");
	uint64_t seed = strtoull(st_meta_get(cur, "seed"), NULL, 10);
	size_t na = (size_t)B * heads * Nq * Nk;
	float *out = zeros("want_out"), *att = xmalloc(na * sizeof *att);
	uint8_t *mask = p > 0 ? xmalloc(na) : NULL;
	float *dq = zeros("q"), *dk = zeros("k"), *dv = zeros("v");
	attention_train_forward(out, att, mask, in("q"), in("k"), in("v"), p, seed,
				B, Nq, Nk, D, heads);
	compare("want_out", out, 1e-5);
	if (mask)
		compare_mask(mask);
	attention_backward(dq, dk, dv, in("dout"), att, mask, in("q"), in("k"),
			   in("v"), p, B, Nq, Nk, D, heads);
	compare("want_dq", dq, 1e-5);
	compare("want_dk", dk, 1e-5);
	compare("want_dv", dv, 1e-5);
	free(out);
	free(att);
	free(mask);
	free(dq);
	free(dk);
	free(dv);
}

static void case_dropout(int path)
{
	float p = (float)dparam("p");
	uint64_t seed = strtoull(st_meta_get(cur, "seed"), NULL, 10);
	size_t n = numel("in");
	float *out = zeros("in"), *din = zeros("in");
	uint8_t *mask = xmalloc(n);
	if (path) {
		int B = iparam("B");
		droppath_forward(out, mask, in("in"), p, seed, B, n / B);
		droppath_backward(din, in("dout"), mask, p, B, n / B);
	} else {
		dropout_forward(out, mask, in("in"), p, seed, n);
		dropout_backward(din, in("dout"), mask, p, n);
	}
	compare("want_out", out, 0);
	compare_mask(mask);
	compare("want_din", din, 0);
	free(out);
	free(din);
	free(mask);
}

/* Descriptors and class weights to the mean loss, as tk's network does. */
static double arcface_loss(float *logits, float *dx, float *dw, const float *x,
			   const float *w, const int32_t *label, int N, int D,
			   int K, float s, float m, float eps)
{
	float *xn = xmalloc((size_t)N * D * 4), *wn = xmalloc((size_t)K * D * 4);
	float *cos = xmalloc((size_t)N * K * 4), *prob = xmalloc((size_t)N * K * 4);
	float *loss = xmalloc(N * 4);
	l2norm_forward(xn, x, 1e-12f, N, D);
	l2norm_forward(wn, w, 1e-12f, K, D);
	linear_forward(cos, xn, wn, NULL, N, D, K);
	arcface_forward(logits, cos, label, s, m, eps, N, K);
	cross_entropy_forward(loss, prob, logits, label, N, K);
	double mean = 0;
	for (int i = 0; i < N; i++)
		mean += loss[i];
	mean /= N;
	if (dx) {
		float *dlog = xcalloc((size_t)N * K, 4), *dcos = xcalloc((size_t)N * K, 4);
		float *dxn = xcalloc((size_t)N * D, 4), *dwn = xcalloc((size_t)K * D, 4);
		cross_entropy_backward(dlog, prob, label, 1.0f / N, N, K);
		arcface_backward(dcos, dlog, cos, label, s, m, eps, N, K);
		linear_backward(dxn, dwn, NULL, dcos, xn, wn, N, D, K);
		l2norm_backward(dx, dxn, x, 1e-12f, N, D);
		l2norm_backward(dw, dwn, w, 1e-12f, K, D);
		free(dlog);
		free(dcos);
		free(dxn);
		free(dwn);
	}
	free(xn);
	free(wn);
	free(cos);
	free(prob);
	free(loss);
	return mean;
}

static void case_arcface(void)
{
	int N = iparam("N"), D = iparam("D"), K = iparam("K");
	float *logits = zeros("want_logits"), *dx = zeros("in"), *dw = zeros("weight");
	float loss = (float)arcface_loss(logits, dx, dw, in("in"), in("weight"),
					 in("label"), N, D, K, (float)dparam("s"),
					 (float)dparam("m"), (float)dparam("eps"));
	compare("want_logits", logits, 1e-5);
	compare("want_out", &loss, 1e-6);
	compare("want_din", dx, 1e-4);
	compare("want_dweight", dw, 1e-4);
	free(logits);
	free(dx);
	free(dw);
}

static void case_sgd(void)
{
	size_t n = iparam("n");
	int steps = iparam("steps");
	float *p = zeros("param"), *buf = zeros("param");
	memcpy(p, in("param"), n * sizeof *p);
	const char *lrs = st_meta_get(cur, "lrs");
	const float *g = in("grads");
	for (int i = 0; i < steps; i++) {
		char *end;
		double lr = strtod(lrs, &end);
		lrs = *end ? end + 1 : end;
		sgd_update(p, buf, g + i * n, (float)lr, 0.9f, 0.0f,
			   (float)dparam("wd"), iparam("nesterov"), n);
	}
	compare("want_out", p, 1e-7);
	compare("want_buf", buf, 1e-7);
	free(p);
	free(buf);
}

static void case_resize(void)
{
	int P = iparam("P"), H = iparam("H"), W = iparam("W");
	int OH = iparam("OH"), OW = iparam("OW");
	double sc = dparam("scale");
	float *out = zeros("want_out"), *din = zeros("in");
	resize_bilinear_forward(out, in("in"), P, H, W, OH, OW, sc, sc);
	compare("want_out", out, 1e-6);
	resize_bilinear_backward(din, in("dout"), P, H, W, OH, OW, sc, sc);
	compare("want_din", din, 1e-5);
	free(out);
	free(din);
}

static void run_case(void)
{
	const char *op = st_meta_get(cur, "op");
	if (strcmp(op, "conv") == 0)
		case_conv();
	else if (strcmp(op, "linear") == 0)
		case_linear();
	else if (strcmp(op, "batchnorm") == 0)
		case_batchnorm();
	else if (!strcmp(op, "relu") || !strcmp(op, "gelu") ||
		 !strcmp(op, "softmax") || !strcmp(op, "l2norm"))
		case_rows(op);
	else if (strcmp(op, "maxpool") == 0)
		case_maxpool();
	else if (strcmp(op, "layernorm") == 0)
		case_layernorm();
	else if (strcmp(op, "attention") == 0)
		case_attention();
	else if (strcmp(op, "dropout") == 0)
		case_dropout(0);
	else if (strcmp(op, "droppath") == 0)
		case_dropout(1);
	else if (strcmp(op, "arcface") == 0)
		case_arcface();
	else if (strcmp(op, "sgd") == 0)
		case_sgd();
	else if (strcmp(op, "resize") == 0)
		case_resize();
	else {
		fprintf(stderr, "unknown op '%s'\n", op);
		CHECK(0);
	}
}

static void run_file(const char *path)
{
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, path);
	while (tk_read_frame(&s, &d)) {
		cur = &d;
		run_case();
	}
	tk_stream_close(&s);
	st_free(&d);
}

/* ---- finite differences ----
 * An op under test: inputs x[0..nx) (float arrays), a forward giving out,
 * a backward accumulating into dx from dout.  The loss is sum(out * R)
 * for a random R; its central differences at a sample of coordinates must
 * match the backward's gradient. */

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) / 16777216.0 * 2 - 1);
}

struct fd {
	const char *name;
	int nx;
	float *x[4];
	size_t n[4];
	size_t nout;
	void (*fwd)(struct fd *, float *out);
	void (*bwd)(struct fd *, const float *dout, float *dx[4]);
	int i[12];   /* sizes */
	float f[4];  /* parameters */
	void *aux;   /* saved for the backward pass */
	float h;     /* the step */
};

static double fd_loss(struct fd *t, const float *R, float *out)
{
	t->fwd(t, out);
	double L = 0;
	for (size_t i = 0; i < t->nout; i++)
		L += (double)out[i] * R[i];
	return L;
}

static void fd_check(struct fd *t, double tol)
{
	float *R = xmalloc(t->nout * sizeof *R), *out = xmalloc(t->nout * sizeof *out);
	for (size_t i = 0; i < t->nout; i++)
		R[i] = frand();
	float *dx[4] = {0};
	for (int k = 0; k < t->nx; k++)
		dx[k] = xcalloc(t->n[k], sizeof(float));
	fd_loss(t, R, out); /* the forward the backward pass uses */
	t->bwd(t, R, dx);
	double worst = 0;
	for (int k = 0; k < t->nx; k++) {
		double gmax = 0;
		for (size_t i = 0; i < t->n[k]; i++)
			gmax = fabs(dx[k][i]) > gmax ? fabs(dx[k][i]) : gmax;
		/* Up to 24 coordinates spread over the tensor. */
		size_t step = t->n[k] / 24 + 1;
		for (size_t i = (size_t)(rng % step); i < t->n[k]; i += step) {
			float keep = t->x[k][i], h = t->h;
			t->x[k][i] = keep + h;
			double lp = fd_loss(t, R, out);
			t->x[k][i] = keep - h;
			double lm = fd_loss(t, R, out);
			t->x[k][i] = keep;
			double num = (lp - lm) / (2.0 * h);
			double e = fabs(num - dx[k][i]) / (gmax > 1e-3 ? gmax : 1e-3);
			if (!(e <= worst))
				worst = e;
		}
	}
	int ok = worst <= tol;
	printf("%-5s fd %-28s worst rel=%.3g tol=%.0e\n", ok ? "ok" : "FAIL",
	       t->name, worst, tol);
	CHECK(ok);
	for (int k = 0; k < t->nx; k++) {
		free(dx[k]);
		free(t->x[k]);
	}
	free(R);
	free(out);
	free(t->aux);
}

static void fill(struct fd *t, int k, size_t n, float scale)
{
	t->x[k] = xmalloc(n * sizeof(float));
	t->n[k] = n;
	for (size_t i = 0; i < n; i++)
		t->x[k][i] = frand() * scale;
	if (k + 1 > t->nx)
		t->nx = k + 1;
}

static struct conv2d_dims fd_dims(struct fd *t)
{
	return (struct conv2d_dims){t->i[0], t->i[1], t->i[2], t->i[3],
				    t->i[4], t->i[5], t->i[6], t->i[7]};
}

static void conv_fwd(struct fd *t, float *out)
{
	struct conv2d_dims d = fd_dims(t);
	float *w = xmalloc((conv2d_workspace(d, tk_threads()) + 1) * 4);
	conv2d_forward(out, w, t->x[0], t->x[1], t->x[2], NULL, 0, d);
	free(w);
}

static void conv_bwd(struct fd *t, const float *dout, float *dx[4])
{
	struct conv2d_dims d = fd_dims(t);
	float *w = xmalloc((conv2d_backward_workspace(d, tk_threads()) + 1) * 4);
	conv2d_backward(dx[0], dx[1], dx[2], w, dout, t->x[0], t->x[1], d);
	free(w);
}

static void fd_conv(int B, int C, int H, int W, int OC, int K, int s, int p)
{
	struct fd t = {.name = "conv", .fwd = conv_fwd, .bwd = conv_bwd, .h = 1e-2f,
		       .i = {B, C, H, W, OC, K, s, p}};
	int oh = conv2d_out_size(H, K, s, p), ow = conv2d_out_size(W, K, s, p);
	fill(&t, 0, (size_t)B * C * H * W, 1);
	fill(&t, 1, (size_t)OC * C * K * K, 1 / sqrtf(C * K * K));
	fill(&t, 2, OC, 1);
	t.nout = (size_t)B * OC * oh * ow;
	char name[64];
	snprintf(name, sizeof name, "conv %dx%d s%d C%d OC%d", K, K, s, C, OC);
	t.name = name;
	fd_check(&t, 2e-3);
}

static void lin_fwd(struct fd *t, float *out)
{
	linear_forward(out, t->x[0], t->x[1], t->x[2], t->i[0], t->i[1], t->i[2]);
}

static void lin_bwd(struct fd *t, const float *dout, float *dx[4])
{
	linear_backward(dx[0], dx[1], dx[2], dout, t->x[0], t->x[1], t->i[0],
			t->i[1], t->i[2]);
}

static void fd_linear(int N, int IN, int OUT)
{
	struct fd t = {.name = "linear", .fwd = lin_fwd, .bwd = lin_bwd,
		       .h = 1e-2f, .i = {N, IN, OUT}};
	fill(&t, 0, (size_t)N * IN, 1);
	fill(&t, 1, (size_t)OUT * IN, 1);
	fill(&t, 2, OUT, 1);
	t.nout = (size_t)N * OUT;
	fd_check(&t, 2e-3);
}

static void bn_fwd(struct fd *t, float *out)
{
	int B = t->i[0], C = t->i[1], S = t->i[2];
	float *st = t->aux;
	batchnorm_train_forward(out, st, st + C, NULL, NULL, t->x[0], t->x[1],
				t->x[2], 1e-5f, 0.1, 0, B, C, S);
}

static void bn_bwd(struct fd *t, const float *dout, float *dx[4])
{
	int B = t->i[0], C = t->i[1], S = t->i[2];
	float *st = t->aux;
	batchnorm_backward(dx[0], dx[1], dx[2], dout, NULL, t->x[0], st, st + C,
			   t->x[1], B, C, S);
}

static void fd_bn(int B, int C, int S)
{
	struct fd t = {.name = "batchnorm", .fwd = bn_fwd, .bwd = bn_bwd,
		       .h = 1e-2f, .i = {B, C, S}};
	fill(&t, 0, (size_t)B * C * S, 2);
	fill(&t, 1, C, 1);
	fill(&t, 2, C, 1);
	t.aux = xmalloc(2 * C * sizeof(float));
	t.nout = t.n[0];
	fd_check(&t, 5e-3);
}

static void ew_fwd(struct fd *t, float *out)
{
	size_t n = t->n[0];
	switch (t->i[0]) {
	case 0: relu_forward(out, t->x[0], n); break;
	case 1: gelu_forward(out, t->x[0], n); break;
	case 2: softmax_forward(out, t->x[0], t->i[1], t->i[2]); break;
	case 3: l2norm_forward(out, t->x[0], 1e-12f, t->i[1], t->i[2]); break;
	case 4: dropout_forward(out, t->aux, t->x[0], 0.3f, 42, n); break;
	case 5: droppath_forward(out, t->aux, t->x[0], 0.3f, 43, t->i[1],
				 n / t->i[1]); break;
	}
	if (t->i[0] == 0 || t->i[0] == 2) /* the backward pass wants out */
		memcpy((float *)t->aux, out, n * sizeof *out);
}

static void ew_bwd(struct fd *t, const float *dout, float *dx[4])
{
	size_t n = t->n[0];
	switch (t->i[0]) {
	case 0: relu_backward(dx[0], dout, t->aux, n); break;
	case 1: gelu_backward(dx[0], dout, t->x[0], n); break;
	case 2: softmax_backward(dx[0], dout, t->aux, t->i[1], t->i[2]); break;
	case 3: l2norm_backward(dx[0], dout, t->x[0], 1e-12f, t->i[1], t->i[2]); break;
	case 4: dropout_backward(dx[0], dout, t->aux, 0.3f, n); break;
	case 5: droppath_backward(dx[0], dout, t->aux, 0.3f, t->i[1], n / t->i[1]); break;
	}
}

static void fd_elementwise(const char *name, int which, int N, int C)
{
	struct fd t = {.name = name, .fwd = ew_fwd, .bwd = ew_bwd, .h = 1e-2f,
		       .i = {which, N, C}};
	fill(&t, 0, (size_t)N * C, 2);
	if (which == 0) /* away from the kink */
		for (size_t i = 0; i < t.n[0]; i++)
			t.x[0][i] += t.x[0][i] > 0 ? 0.05f : -0.05f;
	t.aux = xmalloc(t.n[0] * sizeof(float));
	t.nout = t.n[0];
	fd_check(&t, 2e-3);
}

static void pool_fwd(struct fd *t, float *out)
{
	maxpool2d_forward(out, t->aux, t->x[0], t->i[0], t->i[1], t->i[2], 3, 2, 1);
}

static void pool_bwd(struct fd *t, const float *dout, float *dx[4])
{
	maxpool2d_backward(dx[0], dout, t->aux, t->i[0], t->i[1], t->i[2], 3, 2, 1);
}

static void fd_maxpool(int P, int H, int W)
{
	struct fd t = {.name = "maxpool", .fwd = pool_fwd, .bwd = pool_bwd,
		       .h = 1e-3f, .i = {P, H, W}};
	fill(&t, 0, (size_t)P * H * W, 1);
	/* Distinct values at least 0.01 apart: no winner changes. */
	for (size_t i = 0; i < t.n[0]; i++)
		t.x[0][i] = (float)((i * 7919) % t.n[0]) * 0.01f;
	int oh = maxpool2d_out_size(H, 3, 2, 1), ow = maxpool2d_out_size(W, 3, 2, 1);
	t.nout = (size_t)P * oh * ow;
	t.aux = xmalloc(t.nout * sizeof(int));
	fd_check(&t, 1e-3);
}

static void ln_fwd(struct fd *t, float *out)
{
	float *st = t->aux;
	layernorm_forward(out, st, st + t->i[0], t->x[0], t->x[1], t->x[2], 1e-5f,
			  t->i[0], t->i[1]);
}

static void ln_bwd(struct fd *t, const float *dout, float *dx[4])
{
	float *st = t->aux;
	layernorm_backward(dx[0], dx[1], dx[2], dout, t->x[0], t->x[1], st,
			   st + t->i[0], t->i[0], t->i[1]);
}

static void fd_layernorm(int N, int C)
{
	struct fd t = {.name = "layernorm", .fwd = ln_fwd, .bwd = ln_bwd,
		       .h = 1e-2f, .i = {N, C}};
	fill(&t, 0, (size_t)N * C, 2);
	fill(&t, 1, C, 1);
	fill(&t, 2, C, 1);
	t.aux = xmalloc(2 * N * sizeof(float));
	t.nout = t.n[0];
	fd_check(&t, 5e-3);
}

static void att_fwd(struct fd *t, float *out)
{
	int B = t->i[0], Nq = t->i[1], Nk = t->i[2];
	size_t na = (size_t)B * t->i[4] * Nq * Nk;
	float *att = t->aux;
	uint8_t *mask = (uint8_t *)(att + na);
	attention_train_forward(out, att, t->f[0] > 0 ? mask : NULL, t->x[0],
				t->x[1], t->x[2], t->f[0], 7, B, Nq, Nk, t->i[3],
				t->i[4]);
}

static void att_bwd(struct fd *t, const float *dout, float *dx[4])
{
	int B = t->i[0], Nq = t->i[1], Nk = t->i[2];
	size_t na = (size_t)B * t->i[4] * Nq * Nk;
	float *att = t->aux;
	uint8_t *mask = (uint8_t *)(att + na);
	attention_backward(dx[0], dx[1], dx[2], dout, att, t->f[0] > 0 ? mask : NULL,
			   t->x[0], t->x[1], t->x[2], t->f[0], B, Nq, Nk, t->i[3],
			   t->i[4]);
}

static void fd_attention(int B, int Nq, int Nk, int D, int heads, float p)
{
	struct fd t = {.name = p > 0 ? "attention+dropout" : "attention",
		       .fwd = att_fwd, .bwd = att_bwd, .h = 1e-2f,
		       .i = {B, Nq, Nk, D, heads}, .f = {p}};
	fill(&t, 0, (size_t)B * Nq * D, 1);
	fill(&t, 1, (size_t)B * Nk * D, 1);
	fill(&t, 2, (size_t)B * Nk * D, 1);
	size_t na = (size_t)B * heads * Nq * Nk;
	t.aux = xmalloc(na * sizeof(float) + na);
	t.nout = (size_t)B * Nq * D;
	fd_check(&t, 2e-3);
}

static void rs_fwd(struct fd *t, float *out)
{
	resize_bilinear_forward(out, t->x[0], t->i[0], t->i[1], t->i[2], t->i[3],
				t->i[4], t->f[0], t->f[0]);
}

static void rs_bwd(struct fd *t, const float *dout, float *dx[4])
{
	resize_bilinear_backward(dx[0], dout, t->i[0], t->i[1], t->i[2], t->i[3],
				 t->i[4], t->f[0], t->f[0]);
}

static void fd_resize(int P, int H, int W, double scale)
{
	struct fd t = {.name = "resize", .fwd = rs_fwd, .bwd = rs_bwd, .h = 1e-2f,
		       .i = {P, H, W, resize_out_size(H, scale),
			     resize_out_size(W, scale)},
		       .f = {(float)scale}};
	fill(&t, 0, (size_t)P * H * W, 1);
	t.nout = (size_t)P * t.i[3] * t.i[4];
	fd_check(&t, 2e-3);
}

static void arc_fwd(struct fd *t, float *out)
{
	int N = t->i[0], D = t->i[1], K = t->i[2];
	float *logits = xmalloc((size_t)N * K * 4);
	out[0] = (float)arcface_loss(logits, NULL, NULL, t->x[0], t->x[1], t->aux,
				     N, D, K, t->f[0], 0.2f, 1e-6f);
	free(logits);
}

static void arc_bwd(struct fd *t, const float *dout, float *dx[4])
{
	int N = t->i[0], D = t->i[1], K = t->i[2];
	float *logits = xmalloc((size_t)N * K * 4);
	float *gx = xcalloc((size_t)N * D, 4), *gw = xcalloc((size_t)K * D, 4);
	arcface_loss(logits, gx, gw, t->x[0], t->x[1], t->aux, N, D, K, t->f[0],
		     0.2f, 1e-6f);
	for (size_t i = 0; i < (size_t)N * D; i++)
		dx[0][i] += dout[0] * gx[i];
	for (size_t i = 0; i < (size_t)K * D; i++)
		dx[1][i] += dout[0] * gw[i];
	free(logits);
	free(gx);
	free(gw);
}

static void fd_arcface(int N, int D, int K, float s)
{
	struct fd t = {.name = "arcface+cross-entropy", .fwd = arc_fwd,
		       .bwd = arc_bwd, .h = 1e-2f, .i = {N, D, K}, .f = {s}};
	fill(&t, 0, (size_t)N * D, 1);
	fill(&t, 1, (size_t)K * D, 1);
	int32_t *label = xmalloc(N * sizeof *label);
	for (int i = 0; i < N; i++)
		label[i] = (int32_t)(rng % K), rng = rng * 6364136223846793005ull + 1;
	t.aux = label;
	t.nout = 1;
	fd_check(&t, 5e-3);
}

static int same_bits(const float *a, const float *b, size_t n)
{
	return !memcmp(a, b, n * sizeof *a);
}

/* The batch norm's fused ReLU, forward (relu = 1) and backward (mask),
 * against batch norm then relu_forward and relu_backward then batch
 * norm: the same bits. */
static void fused_bn_relu(int B, int C, int S)
{
	size_t n = (size_t)B * C * S;
	float *x = xmalloc(n * sizeof *x), *dy = xmalloc(n * sizeof *dy);
	float *y1 = xmalloc(n * sizeof *y1), *y2 = xmalloc(n * sizeof *y2);
	float *g = xmalloc(2 * C * sizeof *g), *st = xmalloc(2 * C * sizeof *st);
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * 2, dy[i] = frand();
	for (int c = 0; c < 2 * C; c++)
		g[c] = frand();
	batchnorm_train_forward(y1, st, st + C, NULL, NULL, x, g, g + C, 1e-5f,
				0.1, 0, B, C, S);
	relu_forward(y1, y1, n);
	batchnorm_train_forward(y2, st, st + C, NULL, NULL, x, g, g + C, 1e-5f,
				0.1, 1, B, C, S);
	int fwd = same_bits(y1, y2, n);
	float *d1 = xcalloc(n, sizeof *d1), *d2 = xcalloc(n, sizeof *d2);
	float *t = xcalloc(n, sizeof *t), *p = xcalloc(4 * C, sizeof *p);
	relu_backward(t, dy, y1, n);
	batchnorm_backward(d1, p, p + C, t, NULL, x, st, st + C, g, B, C, S);
	batchnorm_backward(d2, p + 2 * C, p + 3 * C, dy, y1, x, st, st + C, g, B,
			   C, S);
	int bwd = same_bits(d1, d2, n) && same_bits(p, p + 2 * C, 2 * C);
	printf("%-5s batchnorm + relu fused, B%d C%d S%d: forward %s, backward %s\n",
	       fwd && bwd ? "ok" : "FAIL", B, C, S, fwd ? "same" : "differs",
	       bwd ? "same" : "differs");
	CHECK(fwd && bwd);
	/* the block's end: add then ReLU in one pass */
	add_forward(y1, x, dy, n);
	relu_forward(y1, y1, n);
	add_relu_forward(y2, x, dy, n);
	CHECK(same_bits(y1, y2, n));
	free(x), free(dy), free(y1), free(y2), free(g), free(st);
	free(d1), free(d2), free(t), free(p);
}

int main(int argc, char **argv)
{
	tk_init("test_backward");
	tk_threads_set(0);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			run_file(argv[i]);
		return CHECK_DONE();
	}
	const char *root = getenv("TK_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/data/grads.bin", root ? root : ".");
	run_file(path);
	fd_conv(2, 3, 11, 9, 4, 7, 2, 3);
	fd_conv(1, 5, 6, 7, 4, 3, 1, 1);
	fd_conv(1, 20, 8, 8, 17, 3, 1, 1); /* the Winograd forward */
	fd_conv(2, 4, 7, 6, 6, 3, 2, 1);
	fd_conv(2, 6, 5, 5, 8, 1, 1, 0);
	fd_conv(1, 6, 7, 9, 5, 1, 2, 0);
	fd_linear(5, 7, 3);
	fd_linear(1, 16, 9);
	fd_bn(3, 4, 9);
	fd_bn(7, 5, 1);
	fused_bn_relu(3, 4, 9);
	fused_bn_relu(7, 5, 1);
	fused_bn_relu(4, 3, 70000); /* planes over the threads */
	fd_elementwise("relu", 0, 5, 9);
	fd_elementwise("gelu", 1, 5, 9);
	fd_elementwise("softmax", 2, 4, 7);
	fd_elementwise("l2norm", 3, 3, 10);
	fd_elementwise("dropout", 4, 4, 25);
	fd_elementwise("droppath", 5, 6, 5);
	fd_maxpool(3, 9, 8);
	fd_layernorm(4, 12);
	fd_attention(2, 3, 7, 8, 2, 0.0f);
	fd_attention(1, 5, 5, 12, 3, 0.2f);
	fd_arcface(5, 8, 13, 2.8f);
	fd_resize(2, 6, 9, 1.5);
	fd_resize(1, 9, 7, 0.75);
	return CHECK_DONE();
}
