/* bench_train_conv - training's convolutions of a ResNet-50 of a given
 * width, layer by layer: the forward (conv2d_train_forward) and the
 * backward (conv2d_backward: weight gradient, and input gradient but for
 * the stem's) on a batch, best of reps, wall time; and for each the
 * GEMMs alone on the same shapes (linear.h's gemm, as the convolutions
 * call it), so that what the GEMMs cost and what the copies around them
 * cost can be told apart.  Run by
 * tests/bench/train_conv.py, which times PyTorch on the same shapes.
 *
 *   make && gcc -O2 -fopenmp -I. tests/bench/bench_train_conv.c \
 *       build/cpu/libtk.a $(pkg-config --libs openblas) -lm \
 *       -o build/bench_train_conv
 *   build/bench_train_conv [width [batch [size [threads [reps]]]]]
 *                                           default 16 32 224 1 3
 *
 * One line per distinct layer: "layer NAME C OC K stride H count fwd_ms
 * bwd_ms gemm_fwd_ms gemm_bwd_ms" (H the input's side). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/threads.h"
#include "common/tk.h"
#include "kernels/conv.h"
#include "kernels/linear.h"

struct layer {
	int C, OC, K, stride, H, count;
	char name[24];
};

/* ResNet-50 (3, 4, 6, 3 bottlenecks) of stem width w on size x size. */
static int r50_layers(struct layer *L, int w, int size)
{
	static const int blocks[4] = {3, 4, 6, 3};
	int n = 0, H = (size + 1) / 2; /* after the stem */
	L[n++] = (struct layer){3, w, 7, 2, size, 1, "stem 7x7/2"};
	H = (H + 1) / 2; /* after the max pool */
	int cin = w;
	for (int s = 0; s < 4; s++) {
		int mid = w << s, out = 4 * mid, st = s ? 2 : 1, Ho = (H - 1) / st + 1;
		struct layer *l = L + n;
		l[0] = (struct layer){cin, mid, 1, 1, H, 1, ""};
		l[1] = (struct layer){mid, mid, 3, st, H, 1, ""};
		l[2] = (struct layer){out, mid, 1, 1, Ho, blocks[s] - 1, ""};
		l[3] = (struct layer){mid, mid, 3, 1, Ho, blocks[s] - 1, ""};
		l[4] = (struct layer){mid, out, 1, 1, Ho, blocks[s], ""};
		l[5] = (struct layer){cin, out, 1, st, H, 1, ""};
		snprintf(l[0].name, sizeof l[0].name, "s%d c1 first", s + 2);
		snprintf(l[1].name, sizeof l[1].name, "s%d c2 first%s", s + 2, st > 1 ? "/2" : "");
		snprintf(l[2].name, sizeof l[2].name, "s%d c1", s + 2);
		snprintf(l[3].name, sizeof l[3].name, "s%d c2 3x3", s + 2);
		snprintf(l[4].name, sizeof l[4].name, "s%d c3", s + 2);
		snprintf(l[5].name, sizeof l[5].name, "s%d ds%s", s + 2, st > 1 ? "/2" : "");
		n += 6;
		cin = out;
		H = Ho;
	}
	return n;
}

static float *rnd(size_t n)
{
	float *x = xmalloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)rand() / RAND_MAX - 0.5f;
	return x;
}

/* C = A B (+ C), as conv_backward.c calls it: linear.h's gemm, OpenBLAS
 * over the tools' threads. */
static void mm(int ta, int tb, int M, int N, int K, const float *A,
	       const float *B, float beta, float *C)
{
	gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

int main(int argc, char **argv)
{
	tk_init("bench_train_conv");
	int width = argc > 1 ? atoi(argv[1]) : 16, B = argc > 2 ? atoi(argv[2]) : 32;
	int size = argc > 3 ? atoi(argv[3]) : 224, th = argc > 4 ? atoi(argv[4]) : 1;
	int reps = argc > 5 ? atoi(argv[5]) : 3;
	tk_threads_set(th);
	struct layer L[32];
	int nl = r50_layers(L, width, size);
	for (int i = 0; i < nl; i++) {
		const struct layer *l = &L[i];
		struct conv2d_dims d = {B, l->C, l->H, l->H, l->OC, l->K, l->stride, l->K / 2};
		int oh = conv2d_out_size(l->H, l->K, l->stride, d.pad);
		size_t ni = (size_t)B * d.C * d.H * d.W, no = (size_t)B * d.OC * oh * oh;
		int ckk = d.C * d.K * d.K;
		size_t nw = (size_t)d.OC * ckk, cols = (size_t)B * oh * oh;
		float *in = rnd(ni), *w = rnd(nw), *out = rnd(no), *dout = rnd(no);
		float *din = xcalloc(ni, sizeof *din), *dw = xcalloc(nw, sizeof *dw);
		float *work = rnd(conv2d_backward_workspace(d, th));
		/* the GEMMs alone, all images' columns at once */
		float *col = rnd((size_t)ckk * cols), *dcol = rnd((size_t)ckk * cols);
		double f = 1e9, b = 1e9, gf = 1e9, gb = 1e9;
		for (int r = 0; r < reps; r++) {
			double t = tk_now();
			conv2d_train_forward(out, work, in, w, NULL, NULL, 0, d);
			t = tk_now() - t;
			f = t < f ? t : f;
			t = tk_now();
			conv2d_backward(i ? din : NULL, dw, NULL, work, dout, in, w, d);
			t = tk_now() - t;
			b = t < b ? t : b;
			t = tk_now();
			mm(0, 0, d.OC, (int)cols, ckk, w, col, 0.0f, out);
			t = tk_now() - t;
			gf = t < gf ? t : gf;
			t = tk_now();
			mm(0, 1, d.OC, ckk, (int)cols, dout, col, 1.0f, dw);
			if (i)
				mm(1, 0, ckk, (int)cols, d.OC, w, dout, 0.0f, dcol);
			t = tk_now() - t;
			gb = t < gb ? t : gb;
		}
		printf("layer %s|%d %d %d %d %d %d %.3f %.3f %.3f %.3f\n", l->name, l->C,
		       l->OC, l->K, l->stride, l->H, l->count, f * 1e3, b * 1e3, gf * 1e3,
		       gb * 1e3);
		fflush(stdout);
		free(in), free(w), free(out), free(dout), free(din), free(dw);
		free(work), free(col), free(dcol);
	}
	return 0;
}
