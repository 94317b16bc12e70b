/* resize.c - bilinear resampling, align_corners=False, as torch's CPU
 * upsample_bilinear2d computes it: the same source indices and weights,
 * bit for bit; the weighted sums may differ from torch's in the last bit
 * (its vectorised loop groups them differently). */
#include "kernels/resize.h"

#include <math.h>
#include <stdlib.h>

int resize_out_size(int in, double scale)
{
	return (int)floor((double)in * scale);
}

struct taps {
	int i0, i1;
	float l0, l1;
};

/* As torch 1.13's CPU kernel: the ratio in float (1/scale, or in/out),
 * the source index in double (its accumulate type) clamped at 0, the
 * weights rounded to float; an axis whose size does not change is copied
 * even when the scale factor is not 1 (2 rows at scale 1.41 stay 2). */
static void compute_taps(struct taps *t, int in, int out, double scale)
{
	float ratio = scale > 0.0 ? (float)(1.0 / scale) : (float)in / (float)out;
	for (int i = 0; i < out; i++) {
		if (in == out) { /* torch copies, whatever the scale factor */
			t[i] = (struct taps){i, i, 1.0f, 0.0f};
			continue;
		}
		double r = (double)ratio * (i + 0.5) - 0.5;
		if (r < 0.0)
			r = 0.0;
		int i0 = (int)r;
		double l1 = r - i0;
		l1 = l1 < 0.0 ? 0.0 : l1 > 1.0 ? 1.0 : l1;
		t[i].i0 = i0;
		t[i].i1 = i0 + (i0 < in - 1 ? 1 : 0);
		t[i].l1 = (float)l1;
		t[i].l0 = 1.0f - t[i].l1;
	}
}

void resize_bilinear_forward(float *out, const float *in, int P, int H, int W,
			     int OH, int OW, double scale_h, double scale_w)
{
	struct taps *ty = malloc(sizeof *ty * (size_t)OH);
	struct taps *tx = malloc(sizeof *tx * (size_t)OW);
	if (!ty || !tx)
		abort();
	compute_taps(ty, H, OH, scale_h);
	compute_taps(tx, W, OW, scale_w);
#pragma omp parallel for collapse(2) schedule(static)
	for (int p = 0; p < P; p++) {
		for (int oy = 0; oy < OH; oy++) {
			const float *r0 = in + ((size_t)p * H + ty[oy].i0) * W;
			const float *r1 = in + ((size_t)p * H + ty[oy].i1) * W;
			float h0 = ty[oy].l0, h1 = ty[oy].l1;
			float *o = out + ((size_t)p * OH + oy) * OW;
			for (int ox = 0; ox < OW; ox++) {
				const struct taps *t = &tx[ox];
				float a = r0[t->i0] * t->l0 + r0[t->i1] * t->l1;
				float b = r1[t->i0] * t->l0 + r1[t->i1] * t->l1;
				o[ox] = a * h0 + b * h1;
			}
		}
	}
	free(ty);
	free(tx);
}

/* The adjoint of the forward: each output's gradient spread over its four
 * sources with the same weights (planes in parallel, serial within one:
 * neighbouring outputs share sources). */
void resize_bilinear_backward(float *din, const float *dout, int P, int H,
			      int W, int OH, int OW, double scale_h,
			      double scale_w)
{
	struct taps *ty = malloc(sizeof *ty * (size_t)OH);
	struct taps *tx = malloc(sizeof *tx * (size_t)OW);
	if (!ty || !tx)
		abort();
	compute_taps(ty, H, OH, scale_h);
	compute_taps(tx, W, OW, scale_w);
#pragma omp parallel for schedule(static)
	for (int p = 0; p < P; p++) {
		for (int oy = 0; oy < OH; oy++) {
			float *r0 = din + ((size_t)p * H + ty[oy].i0) * W;
			float *r1 = din + ((size_t)p * H + ty[oy].i1) * W;
			float h0 = ty[oy].l0, h1 = ty[oy].l1;
			const float *g = dout + ((size_t)p * OH + oy) * OW;
			for (int ox = 0; ox < OW; ox++) {
				const struct taps *t = &tx[ox];
				float a = g[ox] * h0, b = g[ox] * h1;
				r0[t->i0] += a * t->l0;
				r0[t->i1] += a * t->l1;
				r1[t->i0] += b * t->l0;
				r1[t->i1] += b * t->l1;
			}
		}
	}
	free(ty);
	free(tx);
}
