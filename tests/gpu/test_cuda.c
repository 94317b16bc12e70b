/* test_cuda - every CUDA op against the CPU op on the same random inputs
 * (ggml's test-backend-ops), forward and backward, with a tolerance per
 * precision (the resize's backward also by its adjoint).
 *
 *   test_cuda [-v] [--tiny MODEL] [fp32|tf32|bf16 ...]   default: all three
 *
 * MODEL: the tiny Token model of tests/data (default: there under
 * $TK_ROOT, else the current directory), compared layer by layer.
 *
 * Exits 77 (skip) with a message when no GPU is present. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "common/devnet.h"
#include "common/extract.h"
#include "common/infer.h"
#include "common/threads.h"
#include "common/tk.h"
#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/cuda/cuda.h"
#include "kernels/image.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "kernels/resize.h"
#include "kernels/dispatch.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/nhwc.h"
#include "kernels/optim.h"

static enum tk_precision prec;
static int verbose;
static int loud;            /* print every comparison (the tiny model's) */
static const char *tiny;    /* tests/data/token-tiny.safetensors */
static const char *tiny_dev = "cuda:0"; /* against the CPU device */

/* ---- data ---- */

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void) /* uniform (-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) / 16777216.0 * 2 - 1);
}

static float *rnd(size_t n, float scale)
{
	float *p = xmalloc(xmul(n ? n : 1, sizeof *p));
	for (size_t i = 0; i < n; i++)
		p[i] = frand() * scale;
	return p;
}

static float *up(const void *h, size_t bytes)
{
	float *d = tk_cuda_malloc(bytes);
	tk_cuda_copy(d, h, bytes, NULL);
	return d;
}
#define UP(h, n) up((h), (n) * sizeof *(h))

/* After all the device's work: ops on a tk_dev run on its own stream,
 * which the legacy default stream (NULL) does not wait for. */
static float *down(const float *d, size_t n)
{
	float *h = xmalloc(xmul(n ? n : 1, sizeof *h));
	tk_cuda_sync(NULL);
	tk_cuda_copy(h, d, n * sizeof *h, NULL);
	tk_cuda_sync(NULL);
	return h;
}

/* Copy of the host array h on the device, to accumulate into. */
static float *dup_up(const float *h, size_t n)
{
	return up(h, n * sizeof *h);
}

static float *copyof(const float *h, size_t n)
{
	float *c = xmalloc(xmul(n ? n : 1, sizeof *c));
	memcpy(c, h, n * sizeof *c);
	return c;
}

/* ---- comparison: ||got - want|| / ||want|| (METHOD.md), NaN fails ---- */

static double tol_for(int kind) /* 0: exact-ish element-wise; 1: matrix */
{
	if (kind == 0)
		return 2e-6;
	return prec == TK_FP32 ? 2e-5 : prec == TK_TF32 ? 3e-3 : 1.5e-2;
}

static void cmp_d(const char *what, const float *got, const double *want,
		  size_t n, double tol)
{
	double e = 0, m = 0, emax = 0;
	int nan = 0;
	for (size_t i = 0; i < n; i++) {
		double d = got[i] - want[i];
		if (isnan(got[i]) != isnan(want[i]))
			nan = 1;
		if (isnan(want[i]))
			continue;
		e += d * d;
		m += want[i] * want[i];
		emax = fabs(d) > emax ? fabs(d) : emax;
	}
	double rel = sqrt(e) / (m > 0 ? sqrt(m) : 1);
	int ok = !nan && rel <= tol;
	if (!ok || verbose || loud)
		printf("%-5s %-4s %-34s n=%-9zu rel=%.2e max|d|=%.2e tol=%.0e\n",
		       ok ? "ok" : "FAIL", tk_precision_name(prec), what, n, rel,
		       emax, tol);
	CHECK(ok);
}

static void cmp(const char *what, const float *got, const float *want,
		size_t n, double tol)
{
	double *w = xmalloc(xmul(n ? n : 1, sizeof *w));
	for (size_t i = 0; i < n; i++)
		w[i] = want[i];
	cmp_d(what, got, w, n, tol);
	free(w);
}

/* GPU result (device) against the host array want. */
static void cmp_dev(const char *what, const float *dev, const float *want,
		    size_t n, double tol)
{
	float *g = down(dev, n);
	cmp(what, g, want, n, tol);
	free(g);
}

/* ---- element-wise, softmax ---- */

static void t_act(void)
{
	size_t n = 100003;
	float *x = rnd(n, 3), *y = rnd(n, 1), *g = rnd(n, 1);
	float *dx = UP(x, n), *dy = UP(y, n), *dout = tk_cuda_malloc(n * 4);
	float *want = xmalloc(n * 4);

	relu_forward(want, x, n);
	relu_forward_cuda(dout, dx, n, NULL);
	cmp_dev("relu_forward", dout, want, n, 0);
	gelu_forward(want, x, n);
	gelu_forward_cuda(dout, dx, n, NULL);
	cmp_dev("gelu_forward", dout, want, n, tol_for(0));
	add_forward(want, x, y, n);
	add_forward_cuda(dout, dx, dy, n, NULL);
	cmp_dev("add_forward", dout, want, n, 0);
	add_relu_forward(want, x, y, n);
	add_relu_forward_cuda(dout, dx, dy, n, NULL);
	cmp_dev("add_relu_forward", dout, want, n, 0);

	/* Backward accumulates onto what is there: both start from y. */
	float *dg = UP(g, n), *din = dup_up(y, n), *hin = copyof(y, n);
	relu_forward(want, x, n);
	float *drel = UP(want, n);
	relu_backward(hin, g, want, n);
	relu_backward_cuda(din, 1, dg, drel, n, NULL);
	cmp_dev("relu_backward", din, hin, n, 0);
	/* and written (din_add 0) over NaN */
	memset(hin, 0, n * 4);
	relu_backward(hin, g, want, n);
	for (size_t i = 0; i < n; i++)
		want[i] = NAN;
	tk_cuda_copy(din, want, n * 4, NULL);
	relu_backward_cuda(din, 0, dg, drel, n, NULL);
	cmp_dev("relu_backward din=", din, hin, n, 0);
	memcpy(hin, y, n * 4);
	tk_cuda_copy(din, y, n * 4, NULL);
	gelu_backward(hin, g, x, n);
	gelu_backward_cuda(din, dg, dx, n, NULL);
	cmp_dev("gelu_backward", din, hin, n, 1e-6);

	int N = 37, C = 1531;
	float *sx = rnd((size_t)N * C, 5);
	float *dsx = UP(sx, (size_t)N * C), *dso = tk_cuda_malloc((size_t)N * C * 4);
	float *sw = xmalloc((size_t)N * C * 4);
	softmax_forward(sw, sx, N, C);
	softmax_forward_cuda(dso, dsx, N, C, NULL);
	cmp_dev("softmax_forward", dso, sw, (size_t)N * C, tol_for(0));
	float *sg = rnd((size_t)N * C, 1), *sh = copyof(sx, (size_t)N * C);
	softmax_backward(sh, sg, sw, N, C);
	float *dsg = UP(sg, (size_t)N * C), *dsw = UP(sw, (size_t)N * C);
	tk_cuda_copy(dso, sx, (size_t)N * C * 4, NULL); /* accumulate onto sx */
	softmax_backward_cuda(dso, dsg, dsw, N, C, NULL);
	cmp_dev("softmax_backward", dso, sh, (size_t)N * C, 1e-5);

	free(x), free(y), free(g), free(want), free(hin), free(sx), free(sw);
	free(sg), free(sh);
	tk_cuda_free(dx), tk_cuda_free(dy), tk_cuda_free(dout), tk_cuda_free(dg);
	tk_cuda_free(din), tk_cuda_free(drel), tk_cuda_free(dsx);
	tk_cuda_free(dso), tk_cuda_free(dsg), tk_cuda_free(dsw);
}

static void t_transpose(int R, int C)
{
	size_t n = (size_t)R * C;
	float *x = rnd(n, 1), *y = xmalloc(n * 4);
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			y[(size_t)c * R + r] = x[(size_t)r * C + c];
	float *dx = UP(x, n), *dy = tk_cuda_malloc(n * 4);
	transpose_forward_cuda(dy, dx, R, C, NULL);
	cmp_dev("transpose_forward", dy, y, n, 0);
	free(x), free(y);
	tk_cuda_free(dx), tk_cuda_free(dy);
}

/* ---- GEMM, linear ---- */

static void t_gemm(void)
{
	int M = 67, N = 131, K = 259;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			float *A = rnd((size_t)M * K, 1), *B = rnd((size_t)K * N, 1);
			float *C = rnd((size_t)M * N, 1);
			int lda = ta ? M : K, ldb = tb ? K : N;
			float *dA = UP(A, (size_t)M * K), *dB = UP(B, (size_t)K * N);
			float *dC = UP(C, (size_t)M * N);
			gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 2.0f, C, N);
			gemm_cuda(ta, tb, M, N, K, 0.5f, dA, lda, dB, ldb, 2.0f, dC, N,
				  NULL);
			char what[64];
			snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
			cmp_dev(what, dC, C, (size_t)M * N, tol_for(1));
			free(A), free(B), free(C);
			tk_cuda_free(dA), tk_cuda_free(dB), tk_cuda_free(dC);
		}
}

static void t_linear(int N, int IN, int OUT, int bias)
{
	float *x = rnd((size_t)N * IN, 1), *w = rnd((size_t)OUT * IN, 1 / sqrtf(IN));
	float *b = bias ? rnd(OUT, 1) : NULL, *y = xmalloc((size_t)N * OUT * 4);
	float *dx = UP(x, (size_t)N * IN), *dw = UP(w, (size_t)OUT * IN);
	float *db = b ? UP(b, OUT) : NULL, *dy = tk_cuda_malloc((size_t)N * OUT * 4);
	char what[96];
	linear_forward(y, x, w, b, N, IN, OUT);
	linear_forward_cuda(dy, dx, dw, db, N, IN, OUT, NULL);
	snprintf(what, sizeof what, "linear_forward %dx%d->%d%s", N, IN, OUT,
		 bias ? " bias" : "");
	cmp_dev(what, dy, y, (size_t)N * OUT, tol_for(1));

	/* Backward; all three accumulate. */
	float *g = rnd((size_t)N * OUT, 1);
	float *gx = rnd((size_t)N * IN, 1), *gw = rnd((size_t)OUT * IN, 1);
	float *gb = rnd(OUT, 1);
	float *dg = UP(g, (size_t)N * OUT), *dgx = dup_up(gx, (size_t)N * IN);
	float *dgw = dup_up(gw, (size_t)OUT * IN), *dgb = dup_up(gb, OUT);
	linear_backward(gx, gw, gb, g, x, w, N, IN, OUT);
	linear_backward_cuda(dgx, dgw, dgb, dg, dx, dw, N, IN, OUT, NULL);
	snprintf(what, sizeof what, "linear_backward din %dx%d->%d", N, IN, OUT);
	cmp_dev(what, dgx, gx, (size_t)N * IN, tol_for(1));
	snprintf(what, sizeof what, "linear_backward dweight %dx%d->%d", N, IN, OUT);
	cmp_dev(what, dgw, gw, (size_t)OUT * IN, tol_for(1));
	snprintf(what, sizeof what, "linear_backward dbias %dx%d->%d", N, IN, OUT);
	cmp_dev(what, dgb, gb, OUT, 1e-5);
	free(x), free(w), free(b), free(y), free(g), free(gx), free(gw), free(gb);
	tk_cuda_free(dx), tk_cuda_free(dw), tk_cuda_free(db), tk_cuda_free(dy);
	tk_cuda_free(dg), tk_cuda_free(dgx), tk_cuda_free(dgw), tk_cuda_free(dgb);
}

/* ---- attention ---- */

static void t_attention(int B, int Nq, int Nk, int D, int heads, float p)
{
	size_t nq = (size_t)B * Nq * D, nk = (size_t)B * Nk * D;
	size_t na = (size_t)B * heads * Nq * Nk;
	uint64_t seed = 77;
	float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1);
	float *out = xmalloc(nq * 4), *att = xmalloc(na * 4);
	uint8_t *mask = xmalloc(na);
	float *dq = UP(q, nq), *dk = UP(k, nk), *dv = UP(v, nk);
	float *dout = tk_cuda_malloc(nq * 4), *datt = tk_cuda_malloc(na * 4);
	uint8_t *dmask = tk_cuda_malloc(na);
	char what[96];
	if (p > 0) {
		attention_train_forward(out, att, mask, q, k, v, p, seed, B, Nq, Nk,
					D, heads);
		attention_train_forward_cuda(dout, datt, dmask, dq, dk, dv, p, seed,
					     B, Nq, Nk, D, heads, NULL);
		uint8_t *gm = xmalloc(na);
		tk_cuda_copy(gm, dmask, na, NULL);
		tk_cuda_sync(NULL);
		CHECK(memcmp(gm, mask, na) == 0);
		free(gm);
	} else {
		attention_forward(out, att, q, k, v, B, Nq, Nk, D, heads);
		attention_forward_cuda(dout, datt, dq, dk, dv, B, Nq, Nk, D, heads,
				       NULL);
	}
	snprintf(what, sizeof what, "attention_forward B%d %dx%d D%d h%d p%g", B,
		 Nq, Nk, D, heads, p);
	cmp_dev(what, dout, out, nq, tol_for(1));
	cmp_dev("attention probabilities", datt, att, na, tol_for(1));

	/* Backward from the CPU's probabilities and flags. */
	float *g = rnd(nq, 1), *gq = rnd(nq, 1), *gk = rnd(nk, 1), *gv = rnd(nk, 1);
	float *dg = UP(g, nq), *dgq = dup_up(gq, nq), *dgk = dup_up(gk, nk);
	float *dgv = dup_up(gv, nk), *dattc = UP(att, na);
	tk_cuda_copy(dmask, mask, na, NULL);
	attention_backward(gq, gk, gv, g, att, p > 0 ? mask : NULL, q, k, v, p, B,
			   Nq, Nk, D, heads);
	attention_backward_cuda(dgq, dgk, dgv, dg, dattc, p > 0 ? dmask : NULL, dq,
				dk, dv, p, B, Nq, Nk, D, heads, NULL);
	snprintf(what, sizeof what, "attention_backward dq B%d %dx%d p%g", B, Nq, Nk, p);
	cmp_dev(what, dgq, gq, nq, tol_for(1));
	snprintf(what, sizeof what, "attention_backward dk B%d %dx%d p%g", B, Nq, Nk, p);
	cmp_dev(what, dgk, gk, nk, tol_for(1));
	snprintf(what, sizeof what, "attention_backward dv B%d %dx%d p%g", B, Nq, Nk, p);
	cmp_dev(what, dgv, gv, nk, tol_for(1));
	free(q), free(k), free(v), free(out), free(att), free(mask), free(g);
	free(gq), free(gk), free(gv);
	tk_cuda_free(dq), tk_cuda_free(dk), tk_cuda_free(dv), tk_cuda_free(dout);
	tk_cuda_free(datt), tk_cuda_free(dmask), tk_cuda_free(dg), tk_cuda_free(dgq);
	tk_cuda_free(dgk), tk_cuda_free(dgv), tk_cuda_free(dattc);
}

/* ---- convolution ---- */

static void t_conv(struct conv2d_dims d, int bias, int res, int relu)
{
	/* res: 0 none, 1 separate array, 2 in place (residual == out) */
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t xn = (size_t)d.B * d.C * d.H * d.W, wn = (size_t)d.OC * d.C * d.K * d.K;
	size_t on = (size_t)d.B * d.OC * oh * ow;
	float *x = rnd(xn, 1), *w = rnd(wn, 1 / sqrtf(d.C * d.K * d.K));
	float *b = bias ? rnd(d.OC, 1) : NULL, *r = res ? rnd(on, 1) : NULL;
	float *out = xmalloc(on * 4);
	float *work = xmalloc((conv2d_workspace(d, tk_threads()) + 1) * 4);
	if (res == 2)
		memcpy(out, r, on * 4);
	conv2d_forward(out, work, x, w, b, res == 2 ? out : r, relu, d);
	float *dx = UP(x, xn), *dw = UP(w, wn), *db = b ? UP(b, d.OC) : NULL;
	float *dr = r ? UP(r, on) : NULL, *dout = tk_cuda_malloc(on * 4);
	if (res == 2)
		tk_cuda_copy(dout, r, on * 4, NULL);
	conv2d_forward_cuda(dout, NULL, dx, dw, db, res == 2 ? dout : dr, relu, d,
			    NULL);
	char what[128];
	snprintf(what, sizeof what, "conv B%d C%d %dx%d OC%d K%d s%d%s%s%s", d.B,
		 d.C, d.H, d.W, d.OC, d.K, d.stride, bias ? " b" : "",
		 res == 1 ? " +r" : res == 2 ? " +=r" : "", relu ? " relu" : "");
	cmp_dev(what, dout, out, on, tol_for(1));

	/* Backward (no fused epilogue); all three accumulate. */
	float *g = rnd(on, 1), *gx = rnd(xn, 1), *gw = rnd(wn, 1);
	float *gb = rnd(d.OC, 1);
	float *dg = UP(g, on), *dgx = dup_up(gx, xn), *dgw = dup_up(gw, wn);
	float *dgb = dup_up(gb, d.OC);
	float *bw = xmalloc((conv2d_backward_workspace(d, tk_threads()) + 1) * 4);
	conv2d_backward(gx, gw, gb, bw, g, x, w, d);
	conv2d_backward_cuda(dgx, 1, dgw, dgb, NULL, dg, dx, dw, d, NULL);
	snprintf(what, sizeof what, "conv_backward din C%d %dx%d OC%d K%d s%d",
		 d.C, d.H, d.W, d.OC, d.K, d.stride);
	cmp_dev(what, dgx, gx, xn, tol_for(1));
	/* din overwritten (din_add 0): what was there (NaN) is not read */
	memset(gx, 0, xn * 4);
	memset(gw, 0, wn * 4);
	conv2d_backward(gx, gw, NULL, bw, g, x, w, d);
	float *nan = xmalloc(xn * 4);
	for (size_t i = 0; i < xn; i++)
		nan[i] = NAN;
	tk_cuda_copy(dgx, nan, xn * 4, NULL);
	tk_cuda_memset(dgw, 0, wn * 4, NULL);
	conv2d_backward_cuda(dgx, 0, dgw, NULL, NULL, dg, dx, dw, d, NULL);
	snprintf(what, sizeof what, "conv_backward din= C%d %dx%d OC%d K%d s%d",
		 d.C, d.H, d.W, d.OC, d.K, d.stride);
	cmp_dev(what, dgx, gx, xn, tol_for(1));
	free(nan);
	snprintf(what, sizeof what, "conv_backward dweight C%d %dx%d OC%d K%d s%d",
		 d.C, d.H, d.W, d.OC, d.K, d.stride);
	cmp_dev(what, dgw, gw, wn, tol_for(1));
	snprintf(what, sizeof what, "conv_backward dbias OC%d", d.OC);
	cmp_dev(what, dgb, gb, d.OC, 1e-5);
	free(g), free(gx), free(gw), free(gb), free(bw);
	tk_cuda_free(dg), tk_cuda_free(dgx), tk_cuda_free(dgw), tk_cuda_free(dgb);
	free(x), free(w), free(b), free(r), free(out), free(work);
	tk_cuda_free(dx), tk_cuda_free(dw), tk_cuda_free(db), tk_cuda_free(dr);
	tk_cuda_free(dout);
}

/* ---- channels-last inference (infer.cu) ---- */

/* n activations (the precision's type) from the device, as floats. */
static float *down_act(const void *d, size_t n)
{
	float *h = xmalloc(xmul(n ? n : 1, sizeof *h));
	tk_cuda_sync(NULL); /* as down() */
	if (tk_cuda_act_size() == 4) {
		tk_cuda_copy(h, d, n * 4, NULL);
		tk_cuda_sync(NULL);
		return h;
	}
	uint16_t *b = xmalloc(xmul(n ? n : 1, sizeof *b));
	tk_cuda_copy(b, d, n * 2, NULL);
	tk_cuda_sync(NULL);
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)b[i] << 16;
		memcpy(&h[i], &u, 4);
	}
	free(b);
	return h;
}

/* NCHW floats to device activations [H, W, ld] through the op under test. */
static void *act_up(const float *nchw, int C, int ld, int H, int W)
{
	float *d = UP(nchw, (size_t)C * H * W);
	void *a = tk_cuda_malloc((size_t)H * W * ld * tk_cuda_act_size());
	nchw_to_nhwc_forward_cuda(a, d, C, ld, H, W, NULL);
	tk_cuda_sync(NULL);
	tk_cuda_free(d);
	return a;
}

/* conv2d_nhwc_forward_cuda by each path (0 auto, 2 cuDNN, 3 direct)
 * against the CPU's; res: a residual; f32: float output. */
static void t_conv_nhwc(struct conv2d_dims d, int ld, int res, int relu,
			int f32)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t on = (size_t)oh * ow * d.OC;
	float *x = rnd((size_t)d.C * d.H * d.W, 1);
	float *w = rnd((size_t)d.OC * d.C * d.K * d.K, 1 / sqrtf(d.C * d.K * d.K));
	float *b = rnd(d.OC, 0.5f), *r = res ? rnd(on, 1) : NULL;
	float *xh = xmalloc((size_t)d.H * d.W * ld * 4), *rh = NULL;
	nchw_to_nhwc_forward(xh, x, d.C, ld, d.H, d.W);
	if (r) {
		rh = xmalloc(on * 4);
		nchw_to_nhwc_forward(rh, r, d.OC, d.OC, oh, ow);
	}
	float *want = xmalloc(on * 4);
	conv2d_nhwc_forward(want, xh, w, b, rh, relu, ld, d);
	int bf = tk_cuda_act_size() == 2;
	void *dx = act_up(x, d.C, ld, d.H, d.W);
	void *dr = NULL;
	if (r)
		dr = f32 || !bf ? (void *)UP(rh, on) : act_up(r, d.OC, d.OC, oh, ow);
	size_t es = f32 ? 4 : tk_cuda_act_size();
	void *dout = tk_cuda_malloc(on * es);
	struct tk_cuda_conv *c = conv2d_nhwc_create_cuda(w, b, d.C, ld, d.OC, d.K,
							 d.stride, d.pad);
	static const int paths[] = {0, 2, 3};
	for (int i = 0; i < 3; i++) {
		tk_cuda_set_conv_path(paths[i]);
		tk_cuda_memset(dout, 0xff, on * es, NULL); /* NaNs: every value written */
		conv2d_nhwc_forward_cuda(c, dout, f32, dx, dr, relu, d.H, d.W, NULL);
		float *got = f32 || !bf ? down(dout, on) : down_act(dout, on);
		char what[128];
		snprintf(what, sizeof what, "conv_nhwc%s C%d/%d %dx%d OC%d K%d s%d%s%s%s",
			 i == 0 ? "" : i == 1 ? " dnn" : " direct", d.C, ld, d.H, d.W,
			 d.OC, d.K, d.stride, res ? " +r" : "", relu ? " relu" : "",
			 f32 ? " f32" : "");
		cmp(what, got, want, on, tol_for(1));
		free(got);
	}
	tk_cuda_set_conv_path(0);
	conv2d_nhwc_free_cuda(c);
	tk_cuda_free(dx), tk_cuda_free(dr), tk_cuda_free(dout);
	free(x), free(w), free(b), free(r), free(xh), free(rh), free(want);
}

static void t_pool_nhwc(int C, int H, int W)
{
	float *x = rnd((size_t)C * H * W, 1), *xh = xmalloc((size_t)C * H * W * 4);
	nchw_to_nhwc_forward(xh, x, C, C, H, W);
	int oh = maxpool2d_out_size(H, 3, 2, 1), ow = maxpool2d_out_size(W, 3, 2, 1);
	size_t on = (size_t)oh * ow * C;
	float *want = xmalloc(on * 4);
	maxpool2d_nhwc_forward(want, xh, C, H, W, 3, 2, 1);
	void *dx = act_up(x, C, C, H, W), *dout = tk_cuda_malloc(on * 4);
	maxpool2d_nhwc_forward_cuda(dout, dx, C, H, W, 3, 2, 1, NULL);
	float *got = down_act(dout, on);
	cmp("maxpool_nhwc 3x3/2", got, want, on,
	    tk_cuda_act_size() == 2 ? 4e-3 : 0);
	/* and the first non-finite value */
	size_t n = (size_t)C * H * W;
	x[n / 3] = NAN;
	x[n / 2] = INFINITY;
	void *dy = act_up(x, 1, 1, 1, (int)n);
	CHECK(tk_cuda_first_nonfinite(dy, n, 1, NULL) == (long)(n / 3));
	tk_cuda_free(dy), tk_cuda_free(dx), tk_cuda_free(dout);
	free(x), free(xh), free(want), free(got);
}

/* ---- channels-last training (layout.cu, conv.cu, norm.cu, act.cu's
 * _act ops) against the CPU's NCHW ops on the same values: the inputs
 * are rounded to the activation type first, so that bf16 differs only
 * by the outputs' rounding (and the convolutions' tensor-core sums) ---- */

/* x rounded to the activation type, in place (bf16: to nearest even). */
static void round_act(float *x, size_t n)
{
	if (tk_cuda_act_size() == 4)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
		memcpy(&x[i], &u, 4);
	}
}

/* [B, C, HW] floats to device activations [B, HW, ld] (the padding
 * zeros) and back. */
static void *to_act_ld(const float *x, int B, int C, int ld, long HW)
{
	size_t n = (size_t)B * C * HW, an = (size_t)B * ld * HW;
	float *d = UP(x, n);
	void *a = tk_cuda_malloc(an * tk_cuda_act_size());
	tk_cuda_memset(a, 0, an * tk_cuda_act_size(), NULL);
	nchw_to_act_cuda(a, d, B, C, ld, HW, NULL);
	tk_cuda_sync(NULL);
	tk_cuda_free(d);
	return a;
}

static void *to_act(const float *x, int B, int C, long HW)
{
	return to_act_ld(x, B, C, C, HW);
}

static float *from_act_ld(const void *a, int B, int C, int ld, long HW)
{
	size_t n = (size_t)B * C * HW;
	float *d = tk_cuda_malloc(n * 4);
	act_to_nchw_cuda(d, a, B, C, ld, HW, NULL);
	float *h = down(d, n);
	tk_cuda_free(d);
	return h;
}

static float *from_act(const void *a, int B, int C, long HW)
{
	return from_act_ld(a, B, C, C, HW);
}

/* Elementwise results of the activation type: its rounding. */
static double act_tol(void)
{
	return tk_cuda_act_size() == 2 ? 6e-3 : 1e-5;
}

/* d: the convolution as the CPU has it; ld >= d.C the input's channels
 * as stored (the stem's 3 padded to 8). */
/* Channels-last batch norm on [B, C, ohw], against the CPU's: training
 * forward (with and without the ReLU), backward, evaluation.  t: the
 * input (of the activation type's values), g the gradient; at and ag the
 * same on the device. */
static void t_bn_act(int B, int C, long ohw, const float *t, const float *g,
		     const void *at, const void *ag)
{
	char what[128];
	size_t on = (size_t)B * C * ohw;
	long rows = (long)B * ohw;
	float *got, *ga = rnd(C, 1), *be = rnd(C, 1), *rm = rnd(C, 1);
	float *rv = rnd(C, 1);
	for (int c = 0; c < C; c++)
		rv[c] = fabsf(rv[c]) + 0.5f;
	float *dga = UP(ga, C), *dbe = UP(be, C), *drm = UP(rm, C), *drv = UP(rv, C);
	float *dm = tk_cuda_malloc(C * 4), *drs = tk_cuda_malloc(C * 4);
	float *ddg = tk_cuda_malloc(C * 4), *ddb = tk_cuda_malloc(C * 4);
	double *sums = tk_cuda_malloc(2 * C * sizeof *sums);
	void *ay = tk_cuda_malloc(on * tk_cuda_act_size());
	for (int relu = 0; relu < 2; relu++) {
		float *y = xmalloc(on * 4), *bm = xmalloc(C * 4), *brs = xmalloc(C * 4);
		float *hrm = copyof(rm, C), *hrv = copyof(rv, C);
		batchnorm_train_forward(y, bm, brs, hrm, hrv, t, ga, be, 1e-5f, 0.1,
					relu, B, C, (int)ohw);
		tk_cuda_copy(drm, rm, C * 4, NULL);
		tk_cuda_copy(drv, rv, C * 4, NULL);
		batchnorm_act_stats_cuda(sums, at, rows, C, NULL);
		batchnorm_act_apply_cuda(ay, dm, drs, drm, drv, at, sums, dga, dbe,
					 (double)rows, 0.1, 1e-5f, relu, rows, C, NULL);
		got = from_act(ay, B, C, ohw);
		snprintf(what, sizeof what, "batchnorm_act train%s rows %ld C%d",
			 relu ? " + relu" : "", rows, C);
		cmp(what, got, y, on, act_tol());
		free(got);
		cmp_dev("batchnorm_act batch mean", dm, bm, C, 1e-5);
		cmp_dev("batchnorm_act batch rstd", drs, brs, C, 1e-5);
		cmp_dev("batchnorm_act running_mean", drm, hrm, C, 1e-5);
		cmp_dev("batchnorm_act running_var", drv, hrv, C, 1e-5);
		/* backward from the device's statistics (the CPU's, to 1e-5),
		 * through the ReLU whose output is y (rounded as stored) */
		float *mask = relu ? copyof(y, on) : NULL;
		if (mask)
			round_act(mask, on);
		float *hx = xcalloc(on, 4), *hg = xcalloc(C, 4), *hb = xcalloc(C, 4);
		batchnorm_backward(hx, hg, hb, g, mask, t, bm, brs, ga, B, C, (int)ohw);
		void *amask = mask ? to_act(mask, B, C, ohw) : NULL;
		tk_cuda_copy(dm, bm, C * 4, NULL);
		tk_cuda_copy(drs, brs, C * 4, NULL);
		tk_cuda_memset(ddg, 0, C * 4, NULL);
		tk_cuda_memset(ddb, 0, C * 4, NULL);
		tk_cuda_memset(ay, 0xff, on * tk_cuda_act_size(), NULL);
		batchnorm_act_backward_reduce_cuda(sums, ddg, ddb, ag, amask, at, dm, drs,
						   rows, C, NULL);
		batchnorm_act_backward_apply_cuda(ay, ag, amask, at, dm, drs, dga, sums,
						  (double)rows, rows, C, NULL);
		got = from_act(ay, B, C, ohw);
		snprintf(what, sizeof what, "batchnorm_act backward%s din rows %ld C%d",
			 relu ? " + relu" : "", rows, C);
		cmp(what, got, hx, on, act_tol());
		free(got);
		cmp_dev("batchnorm_act backward dgamma", ddg, hg, C, 1e-5);
		cmp_dev("batchnorm_act backward dbeta", ddb, hb, C, 1e-5);
		/* evaluation with the running statistics */
		batchnorm_eval_forward(y, t, ga, be, hrm, hrv, 1e-5f, B, C, (int)ohw);
		if (relu)
			relu_forward(y, y, on);
		tk_cuda_copy(drm, hrm, C * 4, NULL);
		tk_cuda_copy(drv, hrv, C * 4, NULL);
		batchnorm_act_eval_cuda(ay, at, dga, dbe, drm, drv, 1e-5f, relu, rows, C,
					NULL);
		got = from_act(ay, B, C, ohw);
		snprintf(what, sizeof what, "batchnorm_act eval%s", relu ? " + relu" : "");
		cmp(what, got, y, on, act_tol());
		free(got);
		free(y), free(bm), free(brs), free(hrm), free(hrv), free(mask);
		free(hx), free(hg), free(hb);
		tk_cuda_free(amask);
	}
	free(ga), free(be), free(rm), free(rv);
	tk_cuda_free(dga), tk_cuda_free(dbe), tk_cuda_free(drm), tk_cuda_free(drv);
	tk_cuda_free(dm), tk_cuda_free(drs), tk_cuda_free(ddg), tk_cuda_free(ddb);
	tk_cuda_free(sums), tk_cuda_free(ay);
}

/* The same on random data: shapes no convolution test has */
static void t_bn_act_shape(int B, int C, long ohw)
{
	size_t on = (size_t)B * C * ohw;
	float *t = rnd(on, 2), *g = rnd(on, 1);
	round_act(t, on), round_act(g, on);
	void *at = to_act(t, B, C, ohw), *ag = to_act(g, B, C, ohw);
	t_bn_act(B, C, ohw, t, g, at, ag);
	free(t), free(g);
	tk_cuda_free(at), tk_cuda_free(ag);
}

static void t_train_act(struct conv2d_dims d, int ld)
{
	char what[128];
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	long hw = (long)d.H * d.W, ohw = (long)oh * ow;
	size_t xn = (size_t)d.B * d.C * hw, wn = (size_t)d.OC * d.C * d.K * d.K;
	size_t on = (size_t)d.B * d.OC * ohw;
	float *x = rnd(xn, 1), *w = rnd(wn, 1 / sqrtf(d.C * d.K * d.K));
	float *g = rnd(on, 1);
	round_act(x, xn), round_act(w, wn), round_act(g, on);

	/* layout both ways, exact */
	struct conv2d_dims dl = d; /* as cuDNN sees it */
	dl.C = ld;
	size_t xan = (size_t)d.B * ld * hw, wan = (size_t)d.OC * ld * d.K * d.K;
	void *ax = to_act_ld(x, d.B, d.C, ld, hw);
	float *back = from_act_ld(ax, d.B, d.C, ld, hw);
	cmp("act layout there and back", back, x, xn, 0);
	free(back);
	float *dwf = UP(w, wn), *dw0 = tk_cuda_malloc(wn * 4);
	void *aw = tk_cuda_malloc(wan * tk_cuda_act_size());
	void *adw = tk_cuda_malloc(wan * tk_cuda_act_size());
	tk_cuda_memset(aw, 0, wan * tk_cuda_act_size(), NULL); /* the padding */
	conv_weights_to_act_cuda(aw, dwf, d.OC, d.C, ld, d.K, NULL);
	tk_cuda_memset(dw0, 0, wn * 4, NULL);
	conv_dweights_from_act_cuda(dw0, aw, d.OC, d.C, ld, d.K, NULL);
	cmp_dev("act weights there and back", dw0, w, wn, 0);

	/* the convolution, forward and backward */
	float *want = xmalloc(on * 4);
	float *work = xmalloc((conv2d_workspace(d, tk_threads()) + 1) * 4);
	conv2d_forward(want, work, x, w, NULL, NULL, 0, d);
	void *aout = tk_cuda_malloc(on * tk_cuda_act_size());
	conv2d_act_forward_cuda(aout, ax, aw, dl, NULL);
	float *got = from_act(aout, d.B, d.OC, ohw);
	snprintf(what, sizeof what, "conv_act B%d C%d/%d %dx%d OC%d K%d s%d", d.B,
		 d.C, ld, d.H, d.W, d.OC, d.K, d.stride);
	cmp(what, got, want, on, tol_for(1));
	free(got);
	float *gx = xcalloc(xn, 4), *gw = xcalloc(wn, 4);
	float *bw = xmalloc((conv2d_backward_workspace(d, tk_threads()) + 1) * 4);
	conv2d_backward(gx, gw, NULL, bw, g, x, w, d);
	void *ag = to_act(g, d.B, d.OC, ohw);
	void *agx = tk_cuda_malloc(xan * tk_cuda_act_size());
	tk_cuda_memset(agx, 0xff, xan * tk_cuda_act_size(), NULL); /* NaN: not read */
	conv2d_act_backward_cuda(agx, 0, adw, ag, ax, aw, dl, NULL);
	got = from_act_ld(agx, d.B, d.C, ld, hw);
	snprintf(what, sizeof what, "conv_act_backward din= C%d OC%d K%d s%d", d.C,
		 d.OC, d.K, d.stride);
	cmp(what, got, gx, xn, tol_for(1));
	free(got);
	tk_cuda_memset(dw0, 0, wn * 4, NULL);
	conv_dweights_from_act_cuda(dw0, adw, d.OC, d.C, ld, d.K, NULL);
	snprintf(what, sizeof what, "conv_act_backward dweight C%d OC%d K%d s%d",
		 d.C, d.OC, d.K, d.stride);
	cmp_dev(what, dw0, gw, wn, tol_for(1));
	/* din accumulating: onto x, x + gx */
	void *acc = to_act_ld(x, d.B, d.C, ld, hw);
	conv2d_act_backward_cuda(acc, 1, adw, ag, ax, aw, dl, NULL);
	got = from_act_ld(acc, d.B, d.C, ld, hw);
	for (size_t i = 0; i < xn; i++)
		gx[i] += x[i];
	snprintf(what, sizeof what, "conv_act_backward din+ C%d OC%d K%d s%d", d.C,
		 d.OC, d.K, d.stride);
	cmp(what, got, gx, xn, tol_for(1));
	free(got);
	tk_cuda_free(acc);
	free(gx), free(gw), free(bw), free(work), free(want);

	/* batch norm on the convolution's shape [B, OC, ohw] */
	int C = d.OC;
	float *t = rnd(on, 2);
	round_act(t, on);
	void *at = to_act(t, d.B, C, ohw), *ay = tk_cuda_malloc(on * tk_cuda_act_size());
	t_bn_act(d.B, C, ohw, t, g, at, ag);
	/* the block's add + ReLU, and the ReLU's backward (din overwritten;
	 * dout where out > 0) */
	float *sum = xmalloc(on * 4), *din = xcalloc(on, 4);
	add_relu_forward(sum, t, g, on);
	add_relu_act_cuda(ay, at, ag, on, NULL);
	got = from_act(ay, d.B, C, ohw);
	cmp("add_relu_act", got, sum, on, act_tol());
	free(got);
	round_act(sum, on);
	relu_backward(din, t, sum, on);
	void *asum = to_act(sum, d.B, C, ohw);
	tk_cuda_memset(ay, 0xff, on * tk_cuda_act_size(), NULL);
	relu_backward_act_cuda(ay, 0, at, asum, on, NULL);
	got = from_act(ay, d.B, C, ohw);
	cmp("relu_backward_act", got, din, on, 0);
	free(got), free(sum), free(din);
	free(t);
	tk_cuda_free(at), tk_cuda_free(ay), tk_cuda_free(asum);
	free(x), free(w), free(g);
	tk_cuda_free(ax), tk_cuda_free(dwf), tk_cuda_free(dw0), tk_cuda_free(aw);
	tk_cuda_free(adw), tk_cuda_free(aout), tk_cuda_free(ag), tk_cuda_free(agx);
}

/* The training stem's max-pool channels-last: values, winners (the
 * CPU's NCHW ones transposed), the gathered backward (the CPU's sums in
 * the same order: exact in float). */
static void t_pool_act(int B, int C, int H, int W)
{
	int oh = maxpool2d_out_size(H, 3, 2, 1), ow = maxpool2d_out_size(W, 3, 2, 1);
	long hw = (long)H * W, ohw = (long)oh * ow;
	size_t n = (size_t)B * C * hw, on = (size_t)B * C * ohw;
	float *x = rnd(n, 1), *y = xmalloc(on * 4), *g = rnd(on, 1);
	int *am = xmalloc(on * sizeof *am), *gam = xmalloc(on * sizeof *gam);
	round_act(x, n), round_act(g, on);
	x[5] = x[6] = x[7]; /* ties: the first wins */
	maxpool2d_forward(y, am, x, B * C, H, W, 3, 2, 1);
	void *ax = to_act(x, B, C, hw), *ay = tk_cuda_malloc(on * tk_cuda_act_size());
	int *dam = tk_cuda_malloc(on * sizeof *dam);
	maxpool2d_act_forward_cuda(ay, dam, ax, B, C, H, W, 3, 2, 1, NULL);
	float *got = from_act(ay, B, C, ohw);
	cmp("maxpool_act 3x3/2", got, y, on, 0);
	free(got);
	tk_cuda_sync(NULL);
	tk_cuda_copy(gam, dam, on * sizeof *gam, NULL);
	tk_cuda_sync(NULL);
	int same = 1;
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (long p = 0; p < ohw; p++)
				same &= gam[((size_t)b * ohw + p) * C + c] ==
					am[((size_t)b * C + c) * ohw + p];
	CHECK(same);
	float *din = xcalloc(n, 4);
	maxpool2d_backward(din, g, am, B * C, H, W, 3, 2, 1);
	void *ag = to_act(g, B, C, ohw), *adin = tk_cuda_malloc(n * tk_cuda_act_size());
	tk_cuda_memset(adin, 0xff, n * tk_cuda_act_size(), NULL); /* not read */
	maxpool2d_act_backward_cuda(adin, ag, dam, B, C, H, W, 3, 2, 1, NULL);
	got = from_act(adin, B, C, hw);
	cmp("maxpool_act backward", got, din, n, tk_cuda_act_size() == 2 ? act_tol() : 0);
	free(got), free(x), free(y), free(g), free(am), free(gam), free(din);
	tk_cuda_free(ax), tk_cuda_free(ay), tk_cuda_free(dam), tk_cuda_free(ag);
	tk_cuda_free(adin);
}

/* ---- normalisations ---- */

static void t_norm(void)
{
	int N = 97, C = 1024;
	size_t n = (size_t)N * C;
	float *x = rnd(n, 2), *ga = rnd(C, 1), *be = rnd(C, 1), *mu = rnd(C, 0.5f);
	float *var = rnd(C, 1), *y = xmalloc(n * 4);
	for (int c = 0; c < C; c++)
		var[c] = fabsf(var[c]) + 0.1f;
	float *dx = UP(x, n), *dga = UP(ga, C), *dbe = UP(be, C), *dmu = UP(mu, C);
	float *dvar = UP(var, C), *dy = tk_cuda_malloc(n * 4);
	batchnorm1d_forward(y, x, ga, be, mu, var, 1e-5f, N, C);
	batchnorm1d_forward_cuda(dy, dx, dga, dbe, dmu, dvar, 1e-5f, N, C, NULL);
	cmp_dev("batchnorm1d_forward", dy, y, n, tol_for(0));

	float *lm = xmalloc(N * 4), *lr = xmalloc(N * 4);
	float *dlm = tk_cuda_malloc(N * 4), *dlr = tk_cuda_malloc(N * 4);
	layernorm_forward(y, lm, lr, x, ga, be, 1e-6f, N, C);
	layernorm_forward_cuda(dy, dlm, dlr, dx, dga, dbe, 1e-6f, N, C, NULL);
	cmp_dev("layernorm_forward", dy, y, n, 1e-5);
	cmp_dev("layernorm_forward mean", dlm, lm, N, 1e-5);
	cmp_dev("layernorm_forward rstd", dlr, lr, N, 1e-5);

	l2norm_forward(y, x, 1e-12f, N, C);
	l2norm_forward_cuda(dy, dx, 1e-12f, N, C, NULL);
	cmp_dev("l2norm_forward", dy, y, n, tol_for(0));

	/* Backward, accumulating onto x0. */
	float *g = rnd(n, 1), *dg = UP(g, n);
	float *x0 = rnd(n, 1), *h = copyof(x0, n);
	float *hw = xcalloc(C, 4), *hb = xcalloc(C, 4);
	layernorm_backward(h, hw, hb, g, x, ga, lm, lr, N, C);
	float *din = dup_up(x0, n), *dgw = tk_cuda_malloc(C * 4), *dgb = tk_cuda_malloc(C * 4);
	tk_cuda_memset(dgw, 0, C * 4, NULL);
	tk_cuda_memset(dgb, 0, C * 4, NULL);
	float *dlm2 = UP(lm, N), *dlr2 = UP(lr, N);
	layernorm_backward_cuda(din, dgw, dgb, dg, dx, dga, dlm2, dlr2, N, C, NULL);
	cmp_dev("layernorm_backward din", din, h, n, 1e-5);
	cmp_dev("layernorm_backward dweight", dgw, hw, C, 1e-5);
	cmp_dev("layernorm_backward dbias", dgb, hb, C, 1e-5);

	memcpy(h, x0, n * 4);
	l2norm_backward(h, g, x, 1e-12f, N, C);
	tk_cuda_copy(din, x0, n * 4, NULL);
	l2norm_backward_cuda(din, dg, dx, 1e-12f, N, C, NULL);
	cmp_dev("l2norm_backward", din, h, n, 1e-5);

	free(x), free(ga), free(be), free(mu), free(var), free(y), free(lm);
	free(lr), free(g), free(x0), free(h), free(hw), free(hb);
	tk_cuda_free(dx), tk_cuda_free(dga), tk_cuda_free(dbe), tk_cuda_free(dmu);
	tk_cuda_free(dvar), tk_cuda_free(dy), tk_cuda_free(dlm), tk_cuda_free(dlr);
	tk_cuda_free(dg), tk_cuda_free(din), tk_cuda_free(dgw), tk_cuda_free(dgb);
	tk_cuda_free(dlm2), tk_cuda_free(dlr2);
}

/* Batch norm in training over [B, C, S] (S = 1: BatchNorm1d over rows),
 * the whole op and its halves (SyncBatchNorm's), against the CPU's; with
 * relu, the ReLU fused after it, forward and (the forward's output as the
 * mask) backward. */
static void t_bn(int B, int C, int S, int relu)
{
	size_t n = (size_t)B * C * S;
	float *x = rnd(n, 2), *ga = rnd(C, 1), *be = rnd(C, 1), *g = rnd(n, 1);
	float *x0 = rnd(n, 1), *rm = rnd(C, 1), *rv = rnd(C, 1);
	for (int c = 0; c < C; c++)
		rv[c] = fabsf(rv[c]) + 0.5f;
	double mom = 0.1;
	float *y = xmalloc(n * 4), *bm = xmalloc(C * 4), *brs = xmalloc(C * 4);
	float *hrm = copyof(rm, C), *hrv = copyof(rv, C);
	batchnorm_train_forward(y, bm, brs, hrm, hrv, x, ga, be, 1e-5f, mom, relu, B,
				C, S);
	float *mask = relu ? copyof(y, n) : NULL, *dmask = relu ? UP(y, n) : NULL;
	float *dx = UP(x, n), *dga = UP(ga, C), *dbe = UP(be, C), *dg = UP(g, n);
	float *drm = UP(rm, C), *drv = UP(rv, C), *dy = tk_cuda_malloc(n * 4);
	float *dm = tk_cuda_malloc(C * 4), *drs = tk_cuda_malloc(C * 4);
	char what[96];
	for (int halves = 0; halves < 2; halves++) {
		tk_cuda_copy(drm, rm, C * 4, NULL);
		tk_cuda_copy(drv, rv, C * 4, NULL);
		if (halves) {
			double *sums = tk_cuda_malloc(2 * C * sizeof *sums);
			batchnorm_stats_cuda(sums, dx, B, C, S, NULL);
			batchnorm_apply_cuda(dy, dm, drs, drm, drv, dx, sums, dga, dbe,
					     (double)B * S, mom, 1e-5f, relu, B, C, S,
					     NULL);
			tk_cuda_free(sums);
		} else {
			batchnorm_train_forward_cuda(dy, dm, drs, drm, drv, dx, dga, dbe,
						     1e-5f, mom, relu, B, C, S, NULL);
		}
		snprintf(what, sizeof what, "batchnorm train%s%s B%d C%d S%d",
			 relu ? " + relu" : "", halves ? " (halves)" : "", B, C, S);
		cmp_dev(what, dy, y, n, 1e-5);
		cmp_dev("batchnorm batch mean", dm, bm, C, 1e-5);
		cmp_dev("batchnorm batch rstd", drs, brs, C, 1e-5);
		cmp_dev("batchnorm running_mean", drm, hrm, C, 1e-5);
		cmp_dev("batchnorm running_var", drv, hrv, C, 1e-5);
	}
	/* backward from the CPU's statistics */
	float *hx = copyof(x0, n), *hg = xcalloc(C, 4), *hb = xcalloc(C, 4);
	batchnorm_backward(hx, hg, hb, g, mask, x, bm, brs, ga, B, C, S);
	tk_cuda_copy(dm, bm, C * 4, NULL);
	tk_cuda_copy(drs, brs, C * 4, NULL);
	float *ddg = tk_cuda_malloc(C * 4), *ddb = tk_cuda_malloc(C * 4);
	float *ddin = tk_cuda_malloc(n * 4);
	for (int halves = 0; halves < 2; halves++) {
		tk_cuda_copy(ddin, x0, n * 4, NULL);
		tk_cuda_memset(ddg, 0, C * 4, NULL);
		tk_cuda_memset(ddb, 0, C * 4, NULL);
		if (halves) {
			double *sums = tk_cuda_malloc(2 * C * sizeof *sums);
			batchnorm_backward_reduce_cuda(sums, ddg, ddb, dg, dmask, dx, dm,
						       drs, B, C, S, NULL);
			batchnorm_backward_apply_cuda(ddin, 1, dg, dmask, dx, dm, drs, dga,
						      sums, (double)B * S, B, C, S, NULL);
			tk_cuda_free(sums);
		} else {
			batchnorm_backward_cuda(ddin, 1, ddg, ddb, dg, dmask, dx, dm, drs,
						dga, B, C, S, NULL);
		}
		snprintf(what, sizeof what, "batchnorm backward%s%s din B%d C%d S%d",
			 relu ? " + relu" : "", halves ? " (halves)" : "", B, C, S);
		cmp_dev(what, ddin, hx, n, 1e-4);
		cmp_dev("batchnorm backward dgamma", ddg, hg, C, 1e-5);
		cmp_dev("batchnorm backward dbeta", ddb, hb, C, 1e-5);
	}
	/* din overwritten (din_add 0): the NaN there is not read */
	memset(hx, 0, n * 4);
	batchnorm_backward(hx, hg, hb, g, mask, x, bm, brs, ga, B, C, S);
	for (size_t i = 0; i < n; i++)
		x0[i] = NAN;
	tk_cuda_copy(ddin, x0, n * 4, NULL);
	batchnorm_backward_cuda(ddin, 0, ddg, ddb, dg, dmask, dx, dm, drs, dga, B, C,
				S, NULL);
	snprintf(what, sizeof what, "batchnorm backward%s din= B%d C%d S%d",
		 relu ? " + relu" : "", B, C, S);
	cmp_dev(what, ddin, hx, n, 1e-4);
	/* evaluation mode with the running statistics */
	batchnorm_eval_forward(y, x, ga, be, hrm, hrv, 1e-5f, B, C, S);
	tk_cuda_copy(drm, hrm, C * 4, NULL);
	tk_cuda_copy(drv, hrv, C * 4, NULL);
	batchnorm_eval_forward_cuda(dy, dx, dga, dbe, drm, drv, 1e-5f, B, C, S, NULL);
	cmp_dev("batchnorm_eval_forward", dy, y, n, tol_for(0));
	free(x), free(ga), free(be), free(g), free(x0), free(rm), free(rv), free(y);
	free(bm), free(brs), free(hrm), free(hrv), free(hx), free(hg), free(hb);
	free(mask), tk_cuda_free(dmask);
	tk_cuda_free(dx), tk_cuda_free(dga), tk_cuda_free(dbe), tk_cuda_free(dg);
	tk_cuda_free(drm), tk_cuda_free(drv), tk_cuda_free(dy), tk_cuda_free(dm);
	tk_cuda_free(drs), tk_cuda_free(ddg), tk_cuda_free(ddb), tk_cuda_free(ddin);
}

/* ---- the same bits every run ---- */

/* The n bytes at d (device), after all the device's work; whether the
 * n bytes at a equal those at b (host) or at d (device), reported. */
static void *bits(const void *d, size_t n)
{
	void *h = xmalloc(n ? n : 1);
	tk_cuda_sync(NULL);
	tk_cuda_copy(h, d, n, NULL);
	tk_cuda_sync(NULL);
	return h;
}
static void same_host(const char *what, const void *a, const void *b, size_t n)
{
	int ok = memcmp(a, b, n) == 0;
	if (!ok || verbose || loud)
		printf("%-5s %-4s %-34s %zu bytes: %s\n", ok ? "ok" : "FAIL",
		       tk_precision_name(prec), what, n,
		       ok ? "the same bits twice" : "not the same bits twice");
	CHECK(ok);
}
static void same_bits(const char *what, const void *a, const void *d, size_t n)
{
	void *b = bits(d, n);
	same_host(what, a, b, n);
	free(b);
}
/* An op's two runs: after the first (first NULL) the n bytes at d, which
 * the second's are compared with (and freed); returns what the next run
 * takes as 'first'. */
static void *twice(void *first, const char *what, const void *d, size_t n)
{
	if (!first)
		return bits(d, n);
	same_bits(what, first, d, n);
	free(first);
	return NULL;
}

/* The ops that sum across blocks, each run twice on the same input: the
 * same bits (tk-train --deterministic rests on it), sizes that give them
 * several rows of blocks (5 to 8 chunks of rows or values).  On a GPU the
 * blocks run in an order of their own each time; under the emulator's
 * TK_EMU_ORDER=random (order.test) in a new random one. */
static void t_repeat(void)
{
	/* nn.Linear's bias gradient: 5 chunks of 256 rows */
	int N = 1031, IN = 8, OUT = 67;
	float *g = rnd((size_t)N * OUT, 1), *x = rnd((size_t)N * IN, 1);
	float *w = rnd((size_t)IN * OUT, 1), *b0 = rnd(OUT, 1);
	float *dg = UP(g, (size_t)N * OUT), *dx = UP(x, (size_t)N * IN);
	float *dw = UP(w, (size_t)IN * OUT), *db = tk_cuda_malloc(OUT * 4);
	float *dwg = tk_cuda_malloc((size_t)IN * OUT * 4);
	void *first = NULL;
	for (int k = 0; k < 2; k++) {
		tk_cuda_copy(db, b0, OUT * 4, NULL);
		tk_cuda_memset(dwg, 0, (size_t)IN * OUT * 4, NULL);
		linear_backward_cuda(NULL, dwg, db, dg, dx, dw, N, IN, OUT, NULL);
		first = twice(first, "linear_backward dbias", db, OUT * 4);
	}
	free(g), free(x), free(w), free(b0);
	tk_cuda_free(dg), tk_cuda_free(dx), tk_cuda_free(dw), tk_cuda_free(db);
	tk_cuda_free(dwg);

	/* batch norm's sums, NCS (8 chunks of 16384) and channels-last (5
	 * chunks of 1024 rows), forward and backward */
	int B = 4, C = 3, S = 30000;
	size_t n = (size_t)B * C * S;
	float *h = rnd(n, 2), *hg = rnd(n, 1), *m = rnd(C, 1), *r = rnd(C, 1);
	for (int c = 0; c < C; c++)
		r[c] = fabsf(r[c]) + 0.5f;
	float *d = UP(h, n), *dgr = UP(hg, n), *dm = UP(m, C), *dr = UP(r, C);
	double *sums = tk_cuda_malloc(2 * C * sizeof *sums);
	float *dga = tk_cuda_malloc(C * 4), *dbe = tk_cuda_malloc(C * 4);
	const char *names[] = {"batchnorm_stats sums", "batchnorm_backward_reduce sums",
			       "batchnorm_act_stats sums",
			       "batchnorm_act_backward_reduce sums"};
	for (int op = 0; op < 4; op++) {
		long rows = 5000; /* channels-last: [rows, C] */
		for (int k = 0; k < 2; k++) {
			tk_cuda_memset(dga, 0, C * 4, NULL);
			tk_cuda_memset(dbe, 0, C * 4, NULL);
			if (op == 0)
				batchnorm_stats_cuda(sums, d, B, C, S, NULL);
			else if (op == 1)
				batchnorm_backward_reduce_cuda(sums, dga, dbe, dgr, NULL, d,
							       dm, dr, B, C, S, NULL);
			else if (op == 2)
				batchnorm_act_stats_cuda(sums, d, rows, C, NULL);
			else
				batchnorm_act_backward_reduce_cuda(sums, dga, dbe, dgr, NULL,
								   d, dm, dr, rows, C, NULL);
			first = twice(first, names[op], sums, 2 * C * sizeof *sums);
		}
	}
	free(h), free(hg), free(m), free(r);
	tk_cuda_free(d), tk_cuda_free(dgr), tk_cuda_free(dm), tk_cuda_free(dr);
	tk_cuda_free(sums), tk_cuda_free(dga), tk_cuda_free(dbe);

	/* the gradient's norm: 1172 blocks */
	n = 300000;
	h = rnd(n, 1);
	d = UP(h, n);
	double s0 = sumsq_cuda(d, n, NULL), s1 = sumsq_cuda(d, n, NULL);
	same_host("sumsq", &s0, &s1, sizeof s0);
	free(h), tk_cuda_free(d);

	/* the max-pool's backward pass: overlapping windows */
	int P = 3, H = 64, W = 65;
	int oh = maxpool2d_out_size(H, 3, 2, 1), ow = maxpool2d_out_size(W, 3, 2, 1);
	size_t on = (size_t)P * oh * ow;
	n = (size_t)P * H * W;
	h = rnd(n, 1);
	for (size_t i = 0; i < n; i += 7)
		h[i] = 1.0f; /* ties: one input the winner of several windows */
	d = UP(h, n);
	float *gy = rnd(on, 1), *dgy = UP(gy, on), *din = tk_cuda_malloc(n * 4);
	float *dout = tk_cuda_malloc(on * 4);
	int *am = tk_cuda_malloc(on * sizeof *am);
	maxpool2d_forward_cuda(dout, am, d, P, H, W, 3, 2, 1, NULL);
	for (int k = 0; k < 2; k++) {
		tk_cuda_memset(din, 0, n * 4, NULL);
		maxpool2d_backward_cuda(din, dgy, am, P, H, W, 3, 2, 1, NULL);
		first = twice(first, "maxpool2d_backward", din, n * 4);
	}
	free(h), free(gy);
	tk_cuda_free(d), tk_cuda_free(dgy), tk_cuda_free(din), tk_cuda_free(dout);
	tk_cuda_free(am);

	/* a convolution's filter gradient, deterministic: cuDNN's
	 * heuristics' deterministic algorithm (a shape no other test
	 * plans, as plans are kept per process) */
	tk_cuda_set_deterministic(1);
	struct conv2d_dims cd = {9, 5, 13, 11, 6, 3, 1, 1};
	int coh = conv2d_out_size(cd.H, cd.K, cd.stride, cd.pad);
	int cow = conv2d_out_size(cd.W, cd.K, cd.stride, cd.pad);
	size_t xn = (size_t)cd.B * cd.C * cd.H * cd.W, wn = (size_t)cd.OC * cd.C * 9;
	size_t yn = (size_t)cd.B * cd.OC * coh * cow;
	float *cx = rnd(xn, 1), *cw = rnd(wn, 1), *cg = rnd(yn, 1);
	float *dcx = UP(cx, xn), *dcw = UP(cw, wn), *dcg = UP(cg, yn);
	float *ddw = tk_cuda_malloc(wn * 4);
	for (int k = 0; k < 2; k++) {
		tk_cuda_memset(ddw, 0, wn * 4, NULL);
		conv2d_backward_cuda(NULL, 0, ddw, NULL, NULL, dcg, dcx, dcw, cd, NULL);
		first = twice(first, "conv2d_backward dweight (deterministic)", ddw,
			      wn * 4);
	}
	tk_cuda_set_deterministic(0);
	free(cx), free(cw), free(cg);
	tk_cuda_free(dcx), tk_cuda_free(dcw), tk_cuda_free(dcg), tk_cuda_free(ddw);
}

/* ---- pooling, resize, image ---- */

static void t_pool(int P, int H, int W)
{
	int oh = maxpool2d_out_size(H, 3, 2, 1), ow = maxpool2d_out_size(W, 3, 2, 1);
	size_t n = (size_t)P * H * W, on = (size_t)P * oh * ow;
	float *x = rnd(n, 1), *y = xmalloc(on * 4);
	int *am = xmalloc(on * sizeof *am);
	maxpool2d_forward(y, am, x, P, H, W, 3, 2, 1);
	float *dx = UP(x, n), *dy = tk_cuda_malloc(on * 4);
	int *dam = tk_cuda_malloc(on * sizeof *dam);
	maxpool2d_forward_cuda(dy, dam, dx, P, H, W, 3, 2, 1, NULL);
	cmp_dev("maxpool2d_forward", dy, y, on, 0);
	int *gam = xmalloc(on * sizeof *gam);
	tk_cuda_copy(gam, dam, on * sizeof *gam, NULL);
	tk_cuda_sync(NULL);
	CHECK(memcmp(gam, am, on * sizeof *am) == 0);
	float *g = rnd(on, 1), *x0 = rnd(n, 1), *h = copyof(x0, n);
	maxpool2d_backward(h, g, am, P, H, W, 3, 2, 1);
	float *dg = UP(g, on), *din = dup_up(x0, n);
	maxpool2d_backward_cuda(din, dg, dam, P, H, W, 3, 2, 1, NULL);
	cmp_dev("maxpool2d_backward", din, h, n, 1e-6);
	free(x), free(y), free(am), free(gam), free(g), free(x0), free(h);
	tk_cuda_free(dx), tk_cuda_free(dy), tk_cuda_free(dam), tk_cuda_free(dg);
	tk_cuda_free(din);
}

static void t_resize(int P, int H, int W, double scale, int OH, int OW)
{
	if (scale > 0) {
		OH = resize_out_size(H, scale);
		OW = resize_out_size(W, scale);
	}
	size_t n = (size_t)P * H * W, on = (size_t)P * OH * OW;
	float *x = rnd(n, 1), *y = xmalloc(on * 4);
	resize_bilinear_forward(y, x, P, H, W, OH, OW, scale, scale);
	float *dx = UP(x, n), *dy = tk_cuda_malloc(on * 4);
	resize_bilinear_forward_cuda(dy, dx, P, H, W, OH, OW, scale, scale, NULL);
	char what[96];
	snprintf(what, sizeof what, "resize %dx%d -> %dx%d", H, W, OH, OW);
	cmp_dev(what, dy, y, on, 1e-7);
	/* backward: the CPU's bits (gathered in the CPU's order, onto what
	 * din holds), twice the same; and the adjoint, checked by
	 * <dout, R x> = <R^T dout, x> */
	float *g = rnd(on, 1), *dg = UP(g, on), *x0 = rnd(n, 1);
	float *hx = copyof(x0, n), *din = dup_up(x0, n);
	resize_bilinear_backward(hx, g, P, H, W, OH, OW, scale, scale);
	resize_bilinear_backward_cuda(din, dg, P, H, W, OH, OW, scale, scale, NULL);
	snprintf(what, sizeof what, "resize backward %dx%d -> %dx%d", H, W, OH, OW);
	cmp_dev(what, din, hx, n, 0);
	void *first = bits(din, n * 4);
	tk_cuda_copy(din, x0, n * 4, NULL);
	resize_bilinear_backward_cuda(din, dg, P, H, W, OH, OW, scale, scale, NULL);
	same_bits("resize backward", first, din, n * 4);
	free(first), free(x0), free(hx);
	tk_cuda_memset(din, 0, n * 4, NULL);
	resize_bilinear_backward_cuda(din, dg, P, H, W, OH, OW, scale, scale, NULL);
	float *gi = down(din, n);
	double a = 0, b = 0;
	for (size_t i = 0; i < on; i++)
		a += (double)g[i] * y[i];
	for (size_t i = 0; i < n; i++)
		b += (double)gi[i] * x[i];
	int ok = fabs(a - b) <= 1e-5 * (fabs(a) + 1);
	if (!ok || verbose)
		printf("%-5s      resize_backward adjoint %dx%d: %.9g vs %.9g\n",
		       ok ? "ok" : "FAIL", H, W, a, b);
	CHECK(ok);
	free(x), free(y), free(g), free(gi);
	tk_cuda_free(dx), tk_cuda_free(dy), tk_cuda_free(dg), tk_cuda_free(din);
}

static void t_image(int H, int W)
{
	size_t n = (size_t)H * W * 3;
	uint8_t *px = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		px[i] = (uint8_t)(frand() * 128 + 128);
	float *y = xmalloc(n * 4), *dy = tk_cuda_malloc(n * 4);
	uint8_t *dpx = tk_cuda_malloc(n);
	tk_cuda_copy(dpx, px, n, NULL);
	image_normalize_forward(y, px, imagenet_mean, imagenet_std, H, W);
	image_normalize_forward_cuda(dy, dpx, imagenet_mean, imagenet_std, H, W,
				     NULL);
	cmp_dev("image_normalize_forward", dy, y, n, 0);
	free(px), free(y);
	tk_cuda_free(dy), tk_cuda_free(dpx);
}

/* ---- training ops ---- */

/* sgd_update_runs (one launch): runs with and without decay, one of
 * several chunks, values between runs left alone; then another table. */
static void t_sgd_runs(void)
{
	size_t n = 150001;
	float *p = rnd(n, 1), *m = rnd(n, 1), *g = rnd(n, 1);
	float *hp = copyof(p, n), *hm = copyof(m, n);
	float *dp = UP(p, n), *dm = UP(m, n), *dg = UP(g, n);
	const struct sgd_run runs[] = {{0, 70000, 1}, {70000, 5, 0}, {70010, 79990, 1}},
			     other[] = {{7, 100, 0}, {149000, 1001, 1}};
	for (int k = 0; k < 2; k++) {
		const struct sgd_run *r = k ? other : runs;
		int nr = k ? 2 : 3;
		sgd_update_runs(hp, hm, g, r, nr, 0.01f, 0.9f, 0.0f, 1e-4f, 1);
		sgd_update_runs_cuda(dp, dm, dg, r, nr, 0.01f, 0.9f, 0.0f, 1e-4f, 1, NULL);
		cmp_dev(k ? "sgd_update_runs param, another table" : "sgd_update_runs param",
			dp, hp, n, 0);
		cmp_dev("sgd_update_runs momentum", dm, hm, n, 0);
	}
	free(p), free(m), free(g), free(hp), free(hm);
	tk_cuda_free(dp), tk_cuda_free(dm), tk_cuda_free(dg);
}

static void t_train(void)
{
	size_t n = 50001;
	float *p = rnd(n, 1), *m = rnd(n, 1), *g = rnd(n, 1);
	float *hp = copyof(p, n), *hm = copyof(m, n);
	float *dp = UP(p, n), *dm = UP(m, n), *dg = UP(g, n);
	sgd_update(hp, hm, g, 0.01f, 0.9f, 0.0f, 1e-4f, 0, n);
	sgd_update_cuda(dp, dm, dg, 0.01f, 0.9f, 0.0f, 1e-4f, 0, n, NULL);
	cmp_dev("sgd_update param", dp, hp, n, 1e-7);
	cmp_dev("sgd_update momentum", dm, hm, n, 1e-7);
	sgd_update(hp, hm, g, 0.01f, 0.9f, 0.1f, 1e-4f, 1, n);
	sgd_update_cuda(dp, dm, dg, 0.01f, 0.9f, 0.1f, 1e-4f, 1, n, NULL);
	cmp_dev("sgd_update nesterov param", dp, hp, n, 1e-7);
	double a = sumsq(g, n), b = sumsq_cuda(dg, n, NULL);
	CHECK(fabs(a - b) <= 1e-9 * a);
	scale_inplace(hp, 0.5f, n);
	scale_inplace_cuda(dp, 0.5f, n, NULL);
	cmp_dev("scale_inplace", dp, hp, n, 0);

	/* dropout: the same flags as the CPU's, from (seed, index) */
	float pd = 0.1f;
	uint64_t seed = 12345;
	uint8_t *mask = xmalloc(n), *dmask = tk_cuda_malloc(n), *gm = xmalloc(n);
	float *y = xmalloc(n * 4), *dy = tk_cuda_malloc(n * 4);
	dropout_forward(y, mask, g, pd, seed, n);
	dropout_forward_cuda(dy, dmask, dg, pd, seed, n, NULL);
	cmp_dev("dropout_forward", dy, y, n, 0);
	tk_cuda_copy(gm, dmask, n, NULL);
	tk_cuda_sync(NULL);
	CHECK(memcmp(gm, mask, n) == 0);
	memcpy(hp, p, n * 4);
	tk_cuda_copy(dp, p, n * 4, NULL);
	dropout_backward(hp, g, mask, pd, n);
	dropout_backward_cuda(dp, dg, dmask, pd, n, NULL);
	cmp_dev("dropout_backward", dp, hp, n, 0);
	int B = 37;
	size_t per = n / B;
	droppath_forward(y, mask, g, pd, seed, B, per);
	droppath_forward_cuda(dy, dmask, dg, pd, seed, B, per, NULL);
	cmp_dev("droppath_forward", dy, y, (size_t)B * per, 0);
	memcpy(hp, p, n * 4);
	tk_cuda_copy(dp, p, n * 4, NULL);
	droppath_backward(hp, g, mask, pd, B, per);
	droppath_backward_cuda(dp, dg, dmask, pd, B, per, NULL);
	cmp_dev("droppath_backward", dp, hp, n, 0);

	/* ArcFace and cross-entropy */
	int R = 13, K = 10001;
	float s = 32, mg = 0.2f, eps = 1e-6f;
	size_t rk = (size_t)R * K;
	float *cs = rnd(rk, 1);
	int32_t *lab = xmalloc(R * sizeof *lab);
	for (int r = 0; r < R; r++) {
		lab[r] = (int32_t)((frand() + 1) / 2 * K) % K;
		cs[(size_t)r * K + lab[r]] = 0.9f - 0.15f * r; /* both sides of pi - m */
	}
	cs[0] = 1.5f; /* outside the clamp: no gradient */
	float *lg = xmalloc(rk * 4), *pr = xmalloc(rk * 4), *ls = xmalloc(R * 4);
	float *dcs = UP(cs, rk), *dlg = tk_cuda_malloc(rk * 4);
	float *dpr = tk_cuda_malloc(rk * 4), *dls = tk_cuda_malloc(R * 4);
	int32_t *dlab = tk_cuda_malloc(R * sizeof *dlab);
	tk_cuda_copy(dlab, lab, R * sizeof *lab, NULL);
	arcface_forward(lg, cs, lab, s, mg, eps, R, K);
	arcface_forward_cuda(dlg, dcs, dlab, s, mg, eps, R, K, NULL);
	cmp_dev("arcface_forward", dlg, lg, rk, 1e-6);
	tk_cuda_copy(dlg, lg, rk * 4, NULL);
	cross_entropy_forward(ls, pr, lg, lab, R, K);
	cross_entropy_forward_cuda(dls, dpr, dlg, dlab, R, K, NULL);
	cmp_dev("cross_entropy_forward loss", dls, ls, R, 1e-6);
	cmp_dev("cross_entropy_forward prob", dpr, pr, rk, 1e-6);
	float *dz = rnd(rk, 0.1f), *ddz = UP(dz, rk);
	tk_cuda_copy(dpr, pr, rk * 4, NULL);
	cross_entropy_backward(dz, pr, lab, 1.0f / R, R, K);
	cross_entropy_backward_cuda(ddz, dpr, dlab, 1.0f / R, R, K, NULL);
	cmp_dev("cross_entropy_backward", ddz, dz, rk, 1e-6);
	float *dc = rnd(rk, 0.1f), *ddc = UP(dc, rk);
	tk_cuda_copy(ddz, dz, rk * 4, NULL);
	arcface_backward(dc, dz, cs, lab, s, mg, eps, R, K);
	arcface_backward_cuda(ddc, ddz, dcs, dlab, s, mg, eps, R, K, NULL);
	cmp_dev("arcface_backward", ddc, dc, rk, 1e-5);

	free(p), free(m), free(g), free(hp), free(hm), free(mask), free(gm);
	free(y), free(cs), free(lab), free(lg), free(pr), free(ls), free(dz);
	free(dc);
	tk_cuda_free(dp), tk_cuda_free(dm), tk_cuda_free(dg), tk_cuda_free(dmask);
	tk_cuda_free(dy), tk_cuda_free(dcs), tk_cuda_free(dlg), tk_cuda_free(dpr);
	tk_cuda_free(dls), tk_cuda_free(dlab), tk_cuda_free(ddz), tk_cuda_free(ddc);
}

/* ---- ranking ---- */

static uint64_t host_key(float score, uint32_t pos)
{
	uint32_t u;
	memcpy(&u, &score, 4);
	if (u == 0x80000000u)
		u = 0;
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return (uint64_t)~u << 32 | pos;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* 'distinct' > 0: the database's rows repeat its first 'distinct' rows,
 * so that the k-th score is shared by many (the selection's last passes,
 * on the positions). */
static void t_rank(int nq, int m, int D, int kk, int distinct)
{
	float *q = rnd((size_t)nq * D, 1), *db = rnd((size_t)m * D, 1);
	for (int i = distinct; distinct > 0 && i < m; i++)
		memcpy(db + (size_t)i * D, db + (size_t)(i % distinct) * D, D * 4);
	/* ties and signed zeros on purpose, also across the top-K's tiles of
	 * 4096 (rank.cu) */
	memcpy(db + (size_t)7 * D, db + (size_t)3 * D, D * 4);
	static const int same[] = {4095, 4096, 8191, 8192, 12288};
	for (int i = 0; i < 5; i++)
		if (same[i] < m)
			memcpy(db + (size_t)same[i] * D, db + (size_t)3 * D, D * 4);
	if (m > 12001) {
		memset(db + (size_t)4000 * D, 0, D * 4);
		for (int j = 0; j < D; j++)
			db[(size_t)12001 * D + j] = -0.0f;
	}
	float *dq = UP(q, (size_t)nq * D), *ddb = UP(db, (size_t)m * D);
	float *ds = tk_cuda_malloc((size_t)nq * m * 4);
	gemm_cuda(0, 1, nq, m, D, 1.0f, dq, D, ddb, D, 0.0f, ds, m, NULL);
	float *sc = down(ds, (size_t)nq * m);
	uint64_t *want = xmalloc((size_t)nq * m * 8), *got = xmalloc((size_t)nq * kk * 8);
	for (int i = 0; i < nq; i++) {
		uint64_t *w = want + (size_t)i * m;
		for (int j = 0; j < m; j++)
			w[j] = host_key(sc[(size_t)i * m + j], 1000 + j);
		qsort(w, m, 8, cmp_u64);
	}
	/* each way rank.cu has (TK_RANK_TOPK), where it applies */
	static const char *const ways[] = {"sort", "tiles", "select"};
	char *was = getenv("TK_RANK_TOPK") ? xstrdup(getenv("TK_RANK_TOPK")) : NULL;
	for (int v = 0; v < 3; v++) {
		setenv("TK_RANK_TOPK", ways[v], 1);
		rank_chunk_cuda(got, dq, ddb, nq, m, D, 1000, kk, NULL);
		int ok = 1;
		for (int i = 0; i < nq; i++)
			ok &= memcmp(want + (size_t)i * m, got + (size_t)i * kk,
				     (size_t)kk * 8) == 0;
		if (!ok || verbose || loud)
			printf("%-5s %-4s rank_chunk %-6s nq=%d m=%d D=%d k=%d\n",
			       ok ? "ok" : "FAIL", tk_precision_name(prec), ways[v], nq,
			       m, D, kk);
		CHECK(ok);
	}
	if (was)
		setenv("TK_RANK_TOPK", was, 1);
	else
		unsetenv("TK_RANK_TOPK");
	free(was);
	free(q), free(db), free(sc), free(want), free(got);
	tk_cuda_free(dq), tk_cuda_free(ddb), tk_cuda_free(ds);
}

/* ---- NCCL: a one-rank communicator (NCCL refuses two ranks on one
 * GPU); the sums are the identity, which checks the bucket bookkeeping:
 * every float reduced once, nothing left over. ---- */

static void t_nccl(void)
{
	unsigned char id[TK_NCCL_ID_BYTES];
	tk_nccl_unique_id(id);
	tk_nccl_init(id, 1, 0);
	size_t n = 1000003;
	float *g = rnd(n, 1), *dg = UP(g, n);
	tk_nccl_allreduce(dg, n, NULL);
	cmp_dev("nccl allreduce (1 rank)", dg, g, n, 0);
	struct tk_ddp *d = tk_ddp_create(dg, n, 256 * 1024);
	/* ranges in reverse, as a backward gives them, of uneven sizes */
	size_t end = n;
	while (end > 0) {
		size_t len = 1 + (size_t)((frand() + 1) * 40000);
		size_t off = end > len ? end - len : 0;
		tk_ddp_ready(d, off, end - off, NULL);
		end = off;
	}
	tk_ddp_finish(d, NULL);
	cmp_dev("ddp buckets (1 rank)", dg, g, n, 0);
	tk_ddp_ready(d, 0, n / 2, NULL); /* half marked: finish sends the rest */
	tk_ddp_finish(d, NULL);
	cmp_dev("ddp finish of unmarked buckets", dg, g, n, 0);
	tk_ddp_free(d);
	tk_nccl_destroy();
	free(g);
	tk_cuda_free(dg);
}

/* ---- the dispatch layer on the GPU: memory helpers and an op, against
 * the same calls on the CPU device ---- */

static void t_dispatch(void)
{
	struct tk_dev cpu, gpu;
	char err[256];
	CHECK(tk_dev_parse(&cpu, "cpu", NULL, err, sizeof err) == 0);
	CHECK(tk_dev_parse(&gpu, "cuda:0", tk_precision_name(prec), err, sizeof err) == 0);
	tk_dev_open(&cpu);
	tk_dev_open(&gpu);
	int N = 300, C = 129;
	size_t n = (size_t)N * C;
	float *row = rnd(C, 1), *h = xmalloc(n * 4), *ht = xmalloc(n * 4);
	float *d = dev_alloc(&gpu, n * 4), *dt = dev_alloc(&gpu, n * 4);
	dev_fill_rows(&cpu, h, row, N, C);
	dev_fill_rows(&gpu, d, row, N, C);
	cmp_dev("dev_fill_rows", d, h, n, 0);
	dev_transpose(&cpu, ht, h, N, C);
	dev_transpose(&gpu, dt, d, N, C);
	float *back = xmalloc(n * 4);
	dev_download(&gpu, back, dt, n * 4);
	cmp("dev_transpose", back, ht, n, 0);
	size_t at = 0;
	CHECK(dev_all_finite(&gpu, d, n, &at));
	float *pin = dev_host_alloc(&gpu, n * 4);
	memcpy(pin, ht, n * 4);
	pin[4321] = INFINITY;
	dev_upload_async(&gpu, dt, pin, n * 4);
	dev_upload_wait(&gpu);
	CHECK(!dev_all_finite(&gpu, dt, n, &at) && at == 4321);
	dev_softmax_forward(&cpu, ht, h, N, C);
	dev_softmax_forward(&gpu, dt, d, N, C);
	dev_sync(&gpu);
	cmp_dev("dev_softmax_forward", dt, ht, n, tol_for(0));
	dev_host_free(&gpu, pin);
	dev_free(&gpu, d), dev_free(&gpu, dt);
	free(row), free(h), free(ht), free(back);
	tk_dev_close(&gpu);
	tk_dev_close(&cpu);
	tk_cuda_set_precision(prec);
}

/* ---- the tiny model (tests/data/token-tiny.safetensors) on both devices:
 * every route its layers take (odd channel counts: the direct kernel;
 * aligned small ones: cuBLASLt and cuDNN; 1x1 spatial sizes; the resize
 * of an axis that keeps its size), then the whole network layer by
 * layer (common/devnet.c on the CPU device against the GPU), one line
 * per image and scale naming the first layer that differs.  Printed
 * whatever the outcome, so that one run shows where a difference starts. */

static void t_tiny_routes(void)
{
	loud = 1;
	/* resize: 2x3 at sqrt 2 keeps its 2 rows (torch copies them) */
	t_resize(3, 2, 3, 1.41421356, 0, 0);
	t_resize(3, 2, 3, 0.70710678, 0, 0);
	t_resize(3, 40, 33, 1.41421356, 0, 0);
	t_resize(3, 97, 65, 0.70710678, 0, 0);
	t_image(2, 3);
	/* stem: 3 channels padded to 8, OC 4 (the direct kernel), 2x3 too */
	t_conv_nhwc((struct conv2d_dims){1, 3, 97, 65, 4, 7, 2, 3}, 8, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 3, 2, 4, 4, 7, 2, 3}, 8, 0, 1, 0);
	t_pool_nhwc(4, 49, 33);
	t_pool_nhwc(4, 1, 2);
	/* block2 (width 4): direct */
	t_conv_nhwc((struct conv2d_dims){1, 4, 25, 17, 4, 1, 1, 0}, 4, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 4, 25, 17, 4, 3, 1, 1}, 4, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 4, 25, 17, 16, 1, 1, 0}, 4, 0, 0, 0);
	t_conv_nhwc((struct conv2d_dims){1, 4, 25, 17, 16, 1, 1, 0}, 4, 1, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 16, 25, 17, 4, 1, 1, 0}, 16, 0, 1, 0);
	/* block3..5: small aligned widths, cuBLASLt 1x1 and cuDNN */
	t_conv_nhwc((struct conv2d_dims){1, 16, 25, 17, 8, 1, 1, 0}, 16, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 8, 25, 17, 8, 3, 2, 1}, 8, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 16, 25, 17, 32, 1, 2, 0}, 16, 0, 0, 0);
	t_conv_nhwc((struct conv2d_dims){1, 8, 13, 9, 32, 1, 1, 0}, 8, 1, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 32, 13, 9, 8, 1, 1, 0}, 32, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 8, 13, 9, 8, 3, 1, 1}, 8, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 16, 7, 5, 16, 3, 2, 1}, 16, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 32, 7, 5, 64, 1, 2, 0}, 32, 0, 0, 0);
	t_conv_nhwc((struct conv2d_dims){1, 16, 4, 3, 64, 1, 1, 0}, 16, 1, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 32, 4, 3, 32, 3, 2, 1}, 32, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 32, 2, 2, 128, 1, 1, 0}, 32, 1, 1, 0);
	/* 1x1 spatial (the 2x3 image) */
	t_conv_nhwc((struct conv2d_dims){1, 8, 1, 1, 8, 3, 2, 1}, 8, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 16, 1, 1, 32, 1, 2, 0}, 16, 0, 0, 0);
	t_conv_nhwc((struct conv2d_dims){1, 8, 1, 1, 32, 1, 1, 0}, 8, 1, 1, 0);
	/* LFSA: 128 -> 32 with its bias, float out */
	t_conv_nhwc((struct conv2d_dims){1, 128, 4, 3, 32, 1, 1, 0}, 128, 0, 0, 1);
	t_conv_nhwc((struct conv2d_dims){1, 128, 1, 1, 32, 1, 1, 0}, 128, 0, 0, 1);
	/* encoder and head: D 32, 4 heads (dh 8), 4 tokens */
	t_linear(12, 32, 32, 1);
	t_linear(1, 32, 32, 1);
	t_linear(4, 32, 64, 1);
	t_linear(1, 128, 32, 1);
	t_attention(1, 12, 12, 32, 4, 0);
	t_attention(1, 1, 1, 32, 4, 0);
	t_attention(1, 4, 345, 32, 4, 0);
	loud = 0;
}

struct probe_rec {
	const struct tk_dev *dv;
	int n;
	char name[64][32];
	float *x[64];
	size_t len[64];
};

/* devnet's probe: each layer's output, downloaded as floats. */
static void probe_take(void *ctx, const char *layer, const void *x, size_t n,
		       int act)
{
	struct probe_rec *r = ctx;
	if (r->n == 64)
		return;
	size_t es = act ? dev_act_size(r->dv) : 4;
	float *h = xmalloc(xmul(n ? n : 1, sizeof *h));
	if (es == 4) {
		dev_download(r->dv, h, x, n * 4);
	} else {
		uint16_t *b = xmalloc(xmul(n ? n : 1, sizeof *b));
		dev_download(r->dv, b, x, n * 2);
		for (size_t i = 0; i < n; i++) {
			uint32_t u = (uint32_t)b[i] << 16;
			memcpy(&h[i], &u, 4);
		}
		free(b);
	}
	snprintf(r->name[r->n], sizeof r->name[0], "%s", layer);
	r->x[r->n] = h;
	r->len[r->n++] = n;
}

static void probe_clear(struct probe_rec *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->x[i]);
	r->n = 0;
}

static double rel_err(const float *got, const float *want, size_t n)
{
	double e = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(got[i]) != isnan(want[i]))
			return INFINITY;
		if (isnan(want[i]))
			continue;
		double d = (double)got[i] - want[i];
		e += d * d;
		m += (double)want[i] * want[i];
	}
	return sqrt(e) / (m > 0 ? sqrt(m) : 1);
}

/* One line: the first layer above tol, the worst, the last. */
static void probe_compare(const char *what, const struct probe_rec *g,
			  const struct probe_rec *c, double tol)
{
	int first = -1, worst = -1;
	double wr = 0, fr = 0, lr = 0;
	int ok = g->n == c->n && g->n > 0;
	for (int i = 0; ok && i < c->n; i++) {
		if (strcmp(g->name[i], c->name[i]) || g->len[i] != c->len[i]) {
			ok = 0;
			break;
		}
		double r = rel_err(g->x[i], c->x[i], c->len[i]);
		if (!(r <= tol) && first < 0)
			first = i, fr = r;
		if (worst < 0 || !(r <= wr))
			worst = i, wr = r;
		lr = r;
	}
	ok = ok && first < 0;
	char buf[256] = "";
	if (first >= 0)
		snprintf(buf, sizeof buf, "first above %.0e: %s rel=%.2e; ", tol,
			 c->name[first], fr);
	if (g->n != c->n)
		snprintf(buf, sizeof buf, "%d layers against %d; ", g->n, c->n);
	printf("%-5s %-4s %s: %sworst %s rel=%.2e; %s rel=%.2e\n", ok ? "ok" : "FAIL",
	       tk_precision_name(prec), what, buf,
	       worst >= 0 ? c->name[worst] : "-", wr,
	       c->n ? c->name[c->n - 1] : "-", lr);
	CHECK(ok);
}

/* Smooth colours with some grain, as tests/ref/synth_images.py makes. */
static uint8_t *synth(int H, int W)
{
	uint8_t *p = xmalloc((size_t)H * W * 3);
	double a = frand() * 0.2, b = frand() * 0.2;
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			for (int c = 0; c < 3; c++) {
				double v = 128 + 90 * sin(a * x + b * y + c * 2.1 +
							  0.03 * x * (c + 1)) +
					   25 * frand();
				p[((size_t)y * W + x) * 3 + c] =
				    (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
	return p;
}

static void t_tiny_net(void)
{
	if (!tiny || access(tiny, R_OK) != 0) {
		printf("skip  %-4s tiny network: no %s (test_cuda --tiny FILE)\n",
		       tk_precision_name(prec), tiny ? tiny : "model");
		return;
	}
	struct tk_dev cpu, gpu;
	char err[512];
	CHECK(tk_dev_parse(&cpu, "cpu", NULL, err, sizeof err) == 0);
	CHECK(tk_dev_parse(&gpu, tiny_dev, tk_precision_name(prec), err,
			   sizeof err) == 0);
	tk_dev_open(&cpu);
	tk_dev_open(&gpu);
	struct tk_extractor e;
	tk_extractor_init(&e, tiny);
	static const char *const keep[] = {"tr.query", "tr.token_norm.",
					   "tr.decoder.", "tr.proj.", NULL};
	struct tk_model m;
	tk_infer_load(&m, tiny, keep);
	struct tk_head hd;
	tk_head_init(&hd, &m);
	struct tk_devnet nc, ng;
	tk_devnet_init(&nc, &cpu, &e.backbone, &e.lfsa, &hd);
	tk_devnet_init(&ng, &gpu, &e.backbone, &e.lfsa, &hd);
	struct probe_rec rc = {.dv = &cpu}, rg = {.dv = &gpu};
	nc.probe = ng.probe = probe_take;
	nc.probe_ctx = &rc;
	ng.probe_ctx = &rg;
	double tol = prec == TK_FP32 ? 1e-4 : prec == TK_TF32 ? 3e-2 : 0.15;
	static const int sizes[][2] = {{333, 517}, {97, 65}, {2, 3}, {40, 33}};
	static const double scales[] = {1, 1.41421356, 0.70710678};
	for (int i = 0; i < 4; i++) {
		int H = sizes[i][0], W = sizes[i][1];
		uint8_t *px = synth(H, W);
		tk_devnet_image(&nc, px, 1, H, W);
		tk_devnet_image(&ng, px, 1, H, W);
		for (int k = 0; k < 3; k++) {
			int gh, gw;
			if (tk_devnet_grid(&nc, H, W, scales[k], &gh, &gw, err,
					   sizeof err) < 0)
				continue;
			size_t nd = (size_t)gh * gw * nc.dim;
			float *lc = dev_host_alloc(&cpu, nd * 4);
			float *lg = dev_host_alloc(&gpu, nd * 4);
			CHECK(tk_devnet_extract(&nc, scales[k], lc, 0, err, sizeof err) == 0);
			CHECK(tk_devnet_extract(&ng, scales[k], lg, 0, err, sizeof err) == 0);
			tk_devnet_wait(&ng);
			char what[128];
			snprintf(what, sizeof what, "tiny net %dx%d scale %g (grid %dx%d)",
				 H, W, scales[k], gh, gw);
			probe_compare(what, &rg, &rc, tol);
			probe_clear(&rc);
			probe_clear(&rg);
			/* the head on the CPU's local features, both devices */
			float dc[256], dg[256];
			CHECK(hd.out_dim <= 256);
			CHECK(tk_devnet_head(&nc, dc, lc, gh * gw, 0, err, sizeof err) == 0);
			CHECK(tk_devnet_head(&ng, dg, lc, gh * gw, 0, err, sizeof err) == 0);
			snprintf(what, sizeof what, "tiny head %d tokens", gh * gw);
			probe_compare(what, &rg, &rc, tol);
			probe_clear(&rc);
			probe_clear(&rg);
			dev_host_free(&cpu, lc);
			dev_host_free(&gpu, lg);
		}
		free(px);
	}
	tk_devnet_free(&ng);
	tk_devnet_free(&nc);
	tk_head_free(&hd);
	tk_model_free(&m);
	tk_extractor_free(&e);
	tk_dev_close(&gpu);
	tk_dev_close(&cpu);
	tk_cuda_set_precision(prec);
}

/* ---- main ---- */

static void run_all(void)
{
	tk_cuda_set_precision(prec);
	/* The tiny model first: what the whole-model test saw differ. */
	t_tiny_routes();
	t_tiny_net();
	if (prec == TK_FP32) { /* precision-free ops once */
		t_act();
		t_norm();
		t_bn(3, 5, 1000, 0);
		t_bn(3, 5, 1000, 1);
		t_bn(2, 64, 40000, 0);
		t_bn(2, 64, 40000, 1);
		t_bn(97, 1024, 1, 0);
		t_bn(97, 1024, 1, 1);
		t_pool(6, 17, 23);
		t_pool(2, 64, 65);
		t_resize(3, 23, 31, sqrt(2.0), 0, 0);
		t_resize(3, 64, 48, 1 / sqrt(2.0), 0, 0);
		t_resize(2, 10, 13, 0, 17, 9);
		t_image(37, 53);
		t_image(768, 1024);
		t_transpose(1024, 777);
		t_transpose(3, 5);
		t_train();
		t_sgd_runs();
		t_repeat();
		t_nccl();
		t_dispatch();
	}
	t_gemm();
	t_linear(67, 259, 131, 1);
	t_linear(67, 259, 131, 0);
	t_linear(512, 1024, 1024, 1);
	t_attention(2, 5, 77, 64, 8, 0);
	t_attention(1, 300, 300, 256, 8, 0);
	t_attention(2, 4, 97, 128, 8, 0.1f);
	/* more images than heads (the GEMMs batched over images, a call a
	 * head): the decoder's 4 tokens; and the backward's images in
	 * groups, each group's scratch within its bound (TK_ATTN_SCRATCH,
	 * 256 MiB: here 2 images a group, and 1) */
	t_attention(9, 4, 50, 64, 8, 0.1f);
	t_attention(5, 6, 6, 32, 4, 0);
	setenv("TK_ATTN_SCRATCH", "70000", 1); /* 28800 bytes an image */
	t_attention(5, 20, 30, 32, 4, 0.1f);
	setenv("TK_ATTN_SCRATCH", "1", 1);
	t_attention(3, 20, 30, 32, 4, 0);
	unsetenv("TK_ATTN_SCRATCH");
	static const struct conv2d_dims shapes[] = {
	    {2, 3, 64, 48, 16, 7, 2, 3},  {2, 32, 28, 20, 32, 3, 1, 1},
	    {2, 32, 28, 20, 64, 1, 1, 0}, {2, 32, 27, 21, 24, 3, 2, 1},
	    {2, 32, 28, 20, 48, 1, 2, 0}, {1, 256, 24, 32, 512, 3, 1, 1},
	};
	static const int epi[][3] = {{1, 0, 1}, {1, 1, 1}, {1, 2, 1},
				     {0, 0, 0}, {0, 1, 0}, {1, 2, 0}};
	for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
		t_conv(shapes[i], epi[i][0], epi[i][1], epi[i][2]);
	t_rank(3, 5000, 64, 5000, 0);
	t_rank(2, 3000, 128, 10, 0);
	loud = 1; /* the top-K ways: tiles in 2 and 3 rounds, selection */
	t_rank(3, 50000, 64, 100, 0);
	t_rank(70, 20000, 32, 512, 0);
	t_rank(2, 9000, 16, 1, 0);
	t_rank(1, 300000, 8, 300, 0);
	t_rank(2, 20000, 4, 4096, 50); /* ~400 positions a score */
	loud = 0;
	/* channels-last: the stem (padded input), 1x1 GEMMs with and without
	 * a residual, 3x3, strided, the LFSA's float output, odd channels */
	t_conv_nhwc((struct conv2d_dims){1, 3, 37, 53, 64, 7, 2, 3}, 8, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 64, 20, 28, 256, 1, 1, 0}, 64, 1, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 256, 20, 28, 64, 1, 1, 0}, 256, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 64, 20, 28, 64, 3, 1, 1}, 64, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 64, 21, 27, 64, 3, 2, 1}, 64, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 64, 21, 27, 256, 1, 2, 0}, 64, 0, 0, 0);
	t_conv_nhwc((struct conv2d_dims){1, 512, 12, 16, 128, 1, 1, 0}, 512, 0, 0, 1);
	t_conv_nhwc((struct conv2d_dims){1, 4, 15, 17, 4, 3, 1, 1}, 4, 0, 1, 0);
	t_conv_nhwc((struct conv2d_dims){1, 4, 15, 17, 16, 1, 1, 0}, 4, 1, 1, 0);
	t_pool_nhwc(64, 33, 47);
	/* channels-last training: the stem (its input padded), a
	 * Bottleneck's shapes (1x1, 3x3, strided 3x3 and downsampling 1x1),
	 * an odd channel count; the stem's max-pool */
	t_train_act((struct conv2d_dims){2, 3, 37, 29, 16, 7, 2, 3}, 8);
	t_train_act((struct conv2d_dims){2, 64, 17, 23, 32, 1, 1, 0}, 64);
	t_train_act((struct conv2d_dims){2, 32, 17, 23, 32, 3, 1, 1}, 32);
	t_train_act((struct conv2d_dims){3, 32, 17, 23, 48, 3, 2, 1}, 32);
	t_train_act((struct conv2d_dims){2, 64, 17, 23, 128, 1, 2, 0}, 64);
	t_train_act((struct conv2d_dims){2, 5, 9, 11, 7, 3, 1, 1}, 5);
	t_pool_act(2, 16, 19, 17);
	t_pool_act(3, 5, 8, 9);
	/* batch norm: more channel groups than a block's 256 threads (bf16:
	 * 8 channels a thread), many chunks of rows */
	t_bn_act_shape(2, 4104, 3);
	t_bn_act_shape(3, 64, 4001);
}

int main(int argc, char **argv)
{
	tk_init("test_cuda");
	tk_threads_set(0);
	int n = tk_cuda_device_count();
	if (n == 0) {
		printf("skipped: no CUDA device (or no driver) on this machine\n");
		return 77;
	}
	tk_cuda_init(0);
	printf("device: %s\n", tk_cuda_device_name());
	if (!tiny) {
		const char *root = getenv("TK_ROOT");
		static char path[4096];
		snprintf(path, sizeof path, "%s/tests/data/token-tiny.safetensors",
			 root && *root ? root : ".");
		tiny = path;
	}
	int any = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			verbose = 1;
			continue;
		}
		if (strcmp(argv[i], "--tiny") == 0 && i + 1 < argc) {
			tiny = argv[++i];
			continue;
		}
		if (tk_precision_parse(argv[i], &prec) != 0) {
			fprintf(stderr, "usage: test_cuda [-v] [--tiny MODEL] [fp32|tf32|bf16 ...]\n");
			return 1;
		}
		run_all();
		any = 1;
	}
	if (!any)
		for (int p = TK_FP32; p <= TK_BF16; p++) {
			prec = (enum tk_precision)p;
			run_all();
		}
	printf("%s\n", check_failures ? "some checks FAILED" : "all checks passed");
	return CHECK_DONE();
}
