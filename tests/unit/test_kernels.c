/* test_kernels - the CPU kernels against torch, and against each other.
 *
 *   test_kernels [CASES.bin...]
 *
 * Each frame of a cases stream (tests/ref/ops_ref.py) is one op on
 * torch's inputs with torch's output "want".  Without arguments it reads
 * the small committed set tests/data/kernels.bin, then checks the two
 * convolution algorithms and training's forward against a direct loop on
 * shapes of its own, and the index arithmetic of im2col's rows. */
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
#include "kernels/cpu/conv_algo.h"
#include "kernels/image.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
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

static const float *in(const char *name)
{
	struct st_tensor *t = st_find(cur, name);
	return t ? (const float *)t->data : NULL;
}

/* Compare n floats against tensor "want"; print one line. */
static void compare(const float *got, double tol)
{
	struct st_tensor *t = st_find(cur, "want");
	size_t n = st_numel(t);
	const float *w = t->data;
	double err = 0, mag = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - w[i]);
		if (!(d <= err)) /* NaN counts */
			err = d;
		mag = fabs(w[i]) > mag ? fabs(w[i]) : mag;
	}
	double rel = err / (mag > 1 ? mag : 1);
	int ok = rel <= tol;
	printf("%-5s %-22s n=%-8zu max|d|=%.3g rel=%.3g tol=%.0e\n",
	       ok ? "ok" : "FAIL", st_meta_get(cur, "key"), n, err, rel, tol);
	CHECK(ok);
}

static size_t want_numel(void)
{
	return st_numel(st_find(cur, "want"));
}

static void run_conv(int bnfold)
{
	struct conv2d_dims d = {iparam("B"), iparam("C"), iparam("H"), iparam("W"),
				iparam("OC"), iparam("K"), iparam("stride"),
				iparam("pad")};
	size_t wn = (size_t)d.OC * d.C * d.K * d.K;
	float *w = xmalloc(wn * sizeof *w), *bias = xcalloc(d.OC, sizeof *bias);
	memcpy(w, in("weight"), wn * sizeof *w);
	int relu = 0, inplace = 0;
	const float *res = NULL, *b = in("bias");
	const char *algo = "auto";
	if (bnfold) {
		batchnorm2d_fold(w, bias, b, in("gamma"), in("beta"), in("mean"),
				 in("var"), (float)dparam("eps"), d.OC,
				 d.C * d.K * d.K);
		b = bias;
	} else {
		relu = iparam("relu");
		res = in("residual");
		inplace = strcmp(st_meta_get(cur, "res"), "inplace") == 0;
		algo = st_meta_get(cur, "algo");
	}
	size_t n = want_numel();
	float *out = xmalloc(n * sizeof *out);
	if (inplace) {
		memcpy(out, res, n * sizeof *out);
		res = out;
	}
	int th = tk_threads();
	if (strcmp(algo, "winograd") == 0) {
		float *work = xmalloc(winograd_workspace(d, th) * sizeof *work);
		winograd_forward(out, work, in("in"), w, b, res, relu, d);
		free(work);
	} else if (strcmp(algo, "gemm") == 0) {
		float *work = xmalloc((conv2d_gemm_workspace(d, th) + 1) * sizeof *work);
		conv2d_gemm_forward(out, work, in("in"), w, b, res, relu, d);
		free(work);
	} else {
		float *work = xmalloc((conv2d_workspace(d, th) + 1) * sizeof *work);
		conv2d_forward(out, work, in("in"), w, b, res, relu, d);
		free(work);
	}
	compare(out, strcmp(algo, "winograd") == 0 || winograd_suits(d) ? 2e-5 : 1e-5);
	free(out);
	free(w);
	free(bias);
}

static void run_case(void)
{
	const char *op = st_meta_get(cur, "op");
	size_t n = want_numel();
	float *out = xmalloc(n * sizeof *out);
	if (strcmp(op, "conv") == 0) {
		run_conv(0);
	} else if (strcmp(op, "bnfold") == 0) {
		run_conv(1);
	} else if (strcmp(op, "maxpool") == 0) {
		maxpool2d_forward(out, NULL, in("in"), iparam("P"), iparam("H"),
				  iparam("W"), iparam("K"), iparam("stride"),
				  iparam("pad"));
		compare(out, 0);
	} else if (strcmp(op, "linear") == 0) {
		linear_forward(out, in("in"), in("weight"), in("bias"), iparam("N"),
			       iparam("IN"), iparam("OUT"));
		compare(out, 1e-5);
	} else if (strcmp(op, "attention") == 0) {
		int B = iparam("B"), Nq = iparam("Nq"), Nk = iparam("Nk");
		int heads = iparam("heads");
		float *att = xmalloc((size_t)B * heads * Nq * Nk * sizeof *att);
		attention_forward(out, att, in("q"), in("k"), in("v"), B, Nq, Nk,
				  iparam("D"), heads);
		compare(out, 1e-5);
		/* Without keeping the probabilities: blocks of query rows. */
		attention_forward(out, NULL, in("q"), in("k"), in("v"), B, Nq, Nk,
				  iparam("D"), heads);
		compare(out, 1e-5);
		free(att);
	} else if (strcmp(op, "softmax") == 0) {
		softmax_forward(out, in("in"), iparam("N"), iparam("C"));
		compare(out, 1e-6);
	} else if (strcmp(op, "gelu") == 0) {
		gelu_forward(out, in("in"), n);
		compare(out, 1e-6);
	} else if (strcmp(op, "relu") == 0) {
		relu_forward(out, in("in"), n);
		compare(out, 0);
	} else if (strcmp(op, "l2norm") == 0) {
		l2norm_forward(out, in("in"), (float)dparam("eps"), iparam("N"),
			       iparam("C"));
		compare(out, 1e-6);
	} else if (strcmp(op, "layernorm") == 0) {
		layernorm_forward(out, NULL, NULL, in("in"), in("weight"), in("bias"),
				  (float)dparam("eps"), iparam("N"), iparam("C"));
		compare(out, 1e-5);
	} else if (strcmp(op, "bn1d") == 0) {
		batchnorm1d_forward(out, in("in"), in("gamma"), in("beta"), in("mean"),
				    in("var"), (float)dparam("eps"), iparam("N"),
				    iparam("C"));
		compare(out, 1e-6);
	} else if (strcmp(op, "resize") == 0) {
		double s = dparam("scale");
		int H = iparam("H"), W = iparam("W");
		int OH = iparam("OH"), OW = iparam("OW");
		if (s > 0) {
			CHECK(resize_out_size(H, s) == OH);
			CHECK(resize_out_size(W, s) == OW);
		}
		resize_bilinear_forward(out, in("in"), iparam("P"), H, W, OH, OW, s, s);
		compare(out, 1e-6);
	} else if (strcmp(op, "normalize") == 0) {
		image_normalize_forward(out, (const uint8_t *)in("in"), imagenet_mean,
					imagenet_std, iparam("H"), iparam("W"));
		compare(out, 0);
	} else {
		fprintf(stderr, "unknown op '%s'\n", op);
		CHECK(0);
	}
	free(out);
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

/* ---- the two convolution algorithms against a direct loop ---- */

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) / 16777216.0 * 2 - 1);
}

static void direct_conv(double *out, const float *x, const float *w,
			const float *b, struct conv2d_dims d, int oh, int ow)
{
	for (int n = 0; n < d.B; n++)
		for (int o = 0; o < d.OC; o++)
			for (int y = 0; y < oh; y++)
				for (int xo = 0; xo < ow; xo++) {
					double s = b[o];
					for (int c = 0; c < d.C; c++)
						for (int ky = 0; ky < d.K; ky++)
							for (int kx = 0; kx < d.K; kx++) {
								int iy = y * d.stride - d.pad + ky;
								int ix = xo * d.stride - d.pad + kx;
								if (iy < 0 || iy >= d.H || ix < 0 || ix >= d.W)
									continue;
								s += (double)x[(((size_t)n * d.C + c) * d.H + iy) * d.W + ix] *
								     w[(((size_t)o * d.C + c) * d.K + ky) * d.K + kx];
							}
					out[(((size_t)n * d.OC + o) * oh + y) * ow + xo] = s;
				}
}

static void self_check_conv(struct conv2d_dims d)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t xn = (size_t)d.B * d.C * d.H * d.W, wn = (size_t)d.OC * d.C * d.K * d.K;
	size_t on = (size_t)d.B * d.OC * oh * ow;
	float *x = xmalloc(xn * 4), *w = xmalloc(wn * 4), *b = xmalloc(d.OC * 4);
	for (size_t i = 0; i < xn; i++)
		x[i] = frand();
	for (size_t i = 0; i < wn; i++)
		w[i] = frand() / sqrtf((float)d.C * d.K * d.K);
	for (int i = 0; i < d.OC; i++)
		b[i] = frand();
	double *ref = xmalloc(on * sizeof *ref);
	direct_conv(ref, x, w, b, d, oh, ow);
	float *out = xmalloc(on * 4);
	int th = tk_threads();
	static const char *const algos[] = {"gemm", "winograd", "train"};
	for (int algo = 0; algo < 3; algo++) {
		if (algo == 1 && !(d.K == 3 && d.stride == 1 && d.pad == 1))
			continue;
		size_t wk = algo == 2   ? conv2d_backward_workspace(d, th)
			    : algo == 1 ? winograd_workspace(d, th)
					: conv2d_gemm_workspace(d, th);
		float *work = xmalloc((wk + 1) * 4);
		if (algo == 2)
			conv2d_train_forward(out, work, x, w, b, NULL, 0, d);
		else if (algo == 1)
			winograd_forward(out, work, x, w, b, NULL, 0, d);
		else
			conv2d_gemm_forward(out, work, x, w, b, NULL, 0, d);
		double err = 0, mag = 0;
		for (size_t i = 0; i < on; i++) {
			double e = fabs(out[i] - ref[i]);
			err = e > err || isnan(e) ? e : err;
			mag = fabs(ref[i]) > mag ? fabs(ref[i]) : mag;
		}
		int ok = err <= (algo == 1 ? 2e-5 : 1e-5) * (mag > 1 ? mag : 1);
		printf("%-5s self %-8s B%d C%d %dx%d OC%d K%d s%d p%d: max|d|=%.3g\n",
		       ok ? "ok" : "FAIL", algos[algo], d.B, d.C, d.H,
		       d.W, d.OC, d.K, d.stride, d.pad, err);
		CHECK(ok);
		free(work);
	}
	free(x);
	free(w);
	free(b);
	free(ref);
	free(out);
}

/* conv_run_inside against its definition: i < n is in [lo, hi) exactly
 * when x0 + i * s falls in 0 .. W-1. */
static void check_run_inside(void)
{
	int bad = 0;
	for (int W = 1; W <= 9; W++)
		for (int s = 1; s <= 3; s++)
			for (int n = 1; n <= 9; n++)
				for (int x0 = -7; x0 <= 11; x0++) {
					int lo, hi;
					conv_run_inside(x0, s, n, W, &lo, &hi);
					bad += lo < 0 || lo > hi || hi > n;
					for (int i = 0; i < n; i++) {
						int x = x0 + i * s;
						bad += (x >= 0 && x < W) != (i >= lo && i < hi);
					}
				}
	printf("%-5s conv_run_inside: %d wrong\n", bad ? "FAIL" : "ok", bad);
	CHECK(!bad);
}

/* The 3x3 stride-2 max pool with argmax (training's) against
 * maxpool2d_window, the scan that defines it, on planes full of ties,
 * infinities and NaNs: the same values and the same winners. */
static void check_maxpool_argmax(void)
{
	static const float vals[] = {-INFINITY, -1.0f, 0.0f, 0.0f, 1.0f,
				     INFINITY, NAN};
	int bad = 0, n = 0;
	unsigned seed = 1;
	for (int H = 1; H <= 11; H++)
		for (int W = 1; W <= 37; W += H % 2 ? 1 : 3) {
			int P = 3, oh = maxpool2d_out_size(H, 3, 2, 1);
			int ow = maxpool2d_out_size(W, 3, 2, 1);
			size_t ni = (size_t)P * H * W, no = (size_t)P * oh * ow;
			float *x = xmalloc(ni * sizeof *x), *y = xmalloc(no * sizeof *y);
			int *am = xmalloc(no * sizeof *am);
			/* each plane from fewer of the values: many ties */
			for (size_t i = 0; i < ni; i++) {
				seed = seed * 1103515245u + 12345u;
				int p = (int)(i / ((size_t)H * W));
				x[i] = vals[(seed >> 16) % (3 + 2 * p)];
			}
			maxpool2d_forward(y, am, x, P, H, W, 3, 2, 1);
			for (int p = 0; p < P; p++)
				for (int oy = 0; oy < oh; oy++)
					for (int ox = 0; ox < ow; ox++) {
						int y0 = 2 * oy - 1, x0 = 2 * ox - 1, at;
						float m = maxpool2d_window(
						    x + (size_t)p * H * W, W, y0 < 0 ? 0 : y0,
						    y0 + 3 > H ? H : y0 + 3, x0 < 0 ? 0 : x0,
						    x0 + 3 > W ? W : x0 + 3, &at);
						size_t o = ((size_t)p * oh + oy) * ow + ox;
						bad += memcmp(&m, &y[o], sizeof m) || at != am[o];
						n++;
					}
			free(x);
			free(y);
			free(am);
		}
	printf("%-5s maxpool 3x3/2 argmax against the scan: %d of %d wrong\n",
	       bad ? "FAIL" : "ok", bad, n);
	CHECK(!bad);
}

int main(int argc, char **argv)
{
	tk_init("test_kernels");
	tk_threads_set(0);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			run_file(argv[i]);
	} else {
		const char *root = getenv("TK_ROOT");
		char path[4096];
		snprintf(path, sizeof path, "%s/tests/data/kernels.bin",
			 root ? root : ".");
		run_file(path);
		static const struct conv2d_dims shapes[] = {
		    {1, 3, 5, 5, 2, 3, 1, 1},   {2, 4, 4, 4, 3, 3, 1, 1},
		    {1, 5, 9, 6, 7, 3, 1, 1},   {1, 2, 13, 1, 3, 3, 1, 1},
		    {1, 3, 1, 10, 2, 3, 1, 1},  {1, 7, 11, 17, 5, 3, 2, 1},
		    {1, 3, 15, 16, 4, 7, 2, 3}, {2, 6, 7, 9, 5, 1, 2, 0},
		    {1, 33, 8, 8, 17, 1, 1, 0}, {1, 20, 23, 21, 18, 3, 1, 1},
		    /* 2,048 output pixels or more: training's one-image groups */
		    {2, 3, 50, 48, 4, 3, 1, 1}, {2, 5, 46, 46, 3, 1, 1, 0},
		};
		check_run_inside();
		check_maxpool_argmax();
		for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
			self_check_conv(shapes[i]);
	}
	return CHECK_DONE();
}
