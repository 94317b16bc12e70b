/* bench_conv - the convolutions of a ResNet-101 on one image, each
 * algorithm timed, weighted by how often the network uses it; and
 * OpenBLAS sgemm on a square GEMM, the practical ceiling.
 *
 *   make && gcc -O2 -fopenmp -I. tests/bench/bench_conv.c build/cpu/libtk.a \
 *       $(pkg-config --libs openblas) -lm -o build/bench_conv
 *   build/bench_conv [H W [threads [reps]]]      default 768 1024 1 3
 *   build/bench_conv sgemm [threads [reps]]      only the sgemm
 *
 * Times are the best of reps runs, in CPU time of the process (on a
 * shared machine, time spent descheduled does not count; with one thread
 * that is the time the work takes on a core of its own). */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/threads.h"
#include "common/tk.h"
#include "kernels/conv.h"
#include "kernels/cpu/conv_algo.h"

struct layer {
	int C, OC, K, stride, hdiv, count; /* input at H/hdiv x W/hdiv */
	const char *what;
};

/* ResNet-101 (width 64): every distinct convolution and its count. */
static const struct layer r101[] = {
    {3, 64, 7, 2, 1, 1, "stem 7x7/2"},
    {64, 64, 1, 1, 4, 1, "s2 c1 first"},
    {256, 64, 1, 1, 4, 2, "s2 c1"},
    {64, 64, 3, 1, 4, 3, "s2 c2 3x3"},
    {64, 256, 1, 1, 4, 3, "s2 c3"},
    {64, 256, 1, 1, 4, 1, "s2 ds"},
    {256, 128, 1, 1, 4, 1, "s3 c1 first"},
    {128, 128, 3, 2, 4, 1, "s3 c2 3x3/2"},
    {512, 128, 1, 1, 8, 3, "s3 c1"},
    {128, 128, 3, 1, 8, 3, "s3 c2 3x3"},
    {128, 512, 1, 1, 8, 4, "s3 c3"},
    {256, 512, 1, 2, 4, 1, "s3 ds /2"},
    {512, 256, 1, 1, 8, 1, "s4 c1 first"},
    {256, 256, 3, 2, 8, 1, "s4 c2 3x3/2"},
    {1024, 256, 1, 1, 16, 22, "s4 c1"},
    {256, 256, 3, 1, 16, 22, "s4 c2 3x3"},
    {256, 1024, 1, 1, 16, 23, "s4 c3"},
    {512, 1024, 1, 2, 8, 1, "s4 ds /2"},
    {1024, 512, 1, 1, 16, 1, "s5 c1 first"},
    {512, 512, 3, 2, 16, 1, "s5 c2 3x3/2"},
    {2048, 512, 1, 1, 32, 2, "s5 c1"},
    {512, 512, 3, 1, 32, 2, "s5 c2 3x3"},
    {512, 2048, 1, 1, 32, 3, "s5 c3"},
    {1024, 2048, 1, 2, 16, 1, "s5 ds /2"},
};

static double cpu(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *rnd(size_t n)
{
	float *x = xmalloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)rand() / RAND_MAX - 0.5f;
	return x;
}

typedef void conv_fn(float *, float *, const float *, const float *,
		     const float *, const float *, int, struct conv2d_dims);

static double best(conv_fn *f, float *out, float *work, const float *in,
		   const float *w, const float *b, struct conv2d_dims d, int reps)
{
	double t = 1e9;
	for (int r = 0; r < reps; r++) {
		double s = cpu();
		f(out, work, in, w, b, NULL, 1, d);
		s = cpu() - s;
		t = s < t ? s : t;
	}
	return t;
}

static void sgemm(int th, int reps)
{
	int n = 2048;
	float *A = rnd((size_t)n * n), *B = rnd((size_t)n * n), *C = rnd((size_t)n * n);
	double t = 1e9, tw = 1e9;
	/* OpenBLAS's own threads, as many as the kernels would use. */
	openblas_set_num_threads(th);
	for (int r = 0; r < reps; r++) {
		double s = cpu(), w = tk_now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n,
			    B, n, 0, C, n);
		s = cpu() - s;
		w = tk_now() - w;
		t = s < t ? s : t;
		tw = w < tw ? w : tw;
	}
	printf("OpenBLAS sgemm %d^3, %d thread(s): %.1f GFLOP/s per core (CPU "
	       "time), %.1f GFLOP/s (wall)\n",
	       n, th, 2.0 * n * n * n / t * th / 1e9 / th, 2.0 * n * n * n / tw / 1e9);
	free(A), free(B), free(C);
}

int main(int argc, char **argv)
{
	tk_init("bench_conv");
	if (argc > 1 && strcmp(argv[1], "sgemm") == 0) {
		int th = argc > 2 ? atoi(argv[2]) : 1;
		sgemm(th, argc > 3 ? atoi(argv[3]) : 3);
		return 0;
	}
	int H = argc > 2 ? atoi(argv[1]) : 768, W = argc > 2 ? atoi(argv[2]) : 1024;
	int th = argc > 3 ? atoi(argv[3]) : 1, reps = argc > 4 ? atoi(argv[4]) : 3;
	tk_threads_set(th);
	double tot_auto = 0, tot_gemm = 0, flops = 0;
	printf("%-14s %5s %5s %2s %9s %4s %9s %9s %9s %7s\n", "layer", "C", "OC", "K",
	       "in", "x", "auto ms", "gemm ms", "wino ms", "GF/s");
	for (size_t i = 0; i < sizeof r101 / sizeof *r101; i++) {
		const struct layer *l = &r101[i];
		int h = l->hdiv == 1 ? H : (H + l->hdiv - 1) / l->hdiv * 1;
		int w = l->hdiv == 1 ? W : (W + l->hdiv - 1) / l->hdiv;
		if (l->hdiv > 1) { /* the stem and pool halve twice with padding */
			h = H;
			w = W;
			for (int k = 1; k < l->hdiv; k *= 2)
				h = (h + 1) / 2, w = (w + 1) / 2;
		}
		struct conv2d_dims d = {1, l->C, h, w, l->OC, l->K, l->stride, l->K / 2};
		int oh = conv2d_out_size(h, l->K, l->stride, d.pad);
		int ow = conv2d_out_size(w, l->K, l->stride, d.pad);
		float *in = rnd((size_t)l->C * h * w);
		float *wt = rnd((size_t)l->OC * l->C * l->K * l->K), *b = rnd(l->OC);
		float *out = xmalloc((size_t)l->OC * oh * ow * sizeof(float));
		size_t wk = conv2d_workspace(d, th);
		size_t wk2 = conv2d_gemm_workspace(d, th);
		float *work = xmalloc(((wk > wk2 ? wk : wk2) + 1) * sizeof(float));
		double ta = best(conv2d_forward, out, work, in, wt, b, d, reps);
		double tg = best(conv2d_gemm_forward, out, work, in, wt, b, d, reps);
		double tw = 0;
		if (winograd_suits(d))
			tw = best(winograd_forward, out, work, in, wt, b, d, reps);
		double f = 2.0 * l->OC * l->C * l->K * l->K * oh * ow;
		printf("%-14s %5d %5d %2d %4dx%-4d %4d %9.2f %9.2f %9.2f %7.1f\n",
		       l->what, l->C, l->OC, l->K, h, w, l->count, ta * 1e3, tg * 1e3,
		       tw * 1e3, f / ta / 1e9);
		tot_auto += ta * l->count;
		tot_gemm += tg * l->count;
		flops += f * l->count;
		free(in), free(wt), free(b), free(out), free(work);
	}
	printf("R101 convolutions %dx%d, %d thread(s): %.3f s (im2col/GEMM only: "
	       "%.3f s), %.1f GFLOP, %.1f effective GFLOP/s\n",
	       W, H, th, tot_auto, tot_gemm, flops / 1e9, flops / tot_auto / 1e9);
	sgemm(th, reps);
	return 0;
}
