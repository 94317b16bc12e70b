// resize.cu - bilinear resampling (resize.h) with the CPU's taps: the
// ratio rounded to float on the host, the source index in double, the
// weights rounded to float, and products and sums rounded one by one
// (no fused multiply-add), so the GPU gives the CPU's bits (the backward
// pass too, gathered in the CPU's order, no atomics); an axis
// whose size does not change is copied, as torch does whatever the
// scale factor (2 rows at scale 1.41 stay 2).
#include "kernels/cuda/common.cuh"

namespace {

struct tap {
	int i0, i1;
	float l0, l1;
};

__device__ tap taps(int o, int in, int out, float ratio)
{
	tap t;
	if (in == out) {
		t.i0 = t.i1 = o;
		t.l0 = 1.0f;
		t.l1 = 0.0f;
		return t;
	}
	double r = (double)ratio * (o + 0.5) - 0.5;
	if (r < 0.0)
		r = 0.0;
	t.i0 = (int)r;
	double l1 = r - t.i0;
	l1 = l1 < 0.0 ? 0.0 : l1 > 1.0 ? 1.0 : l1;
	t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
	t.l1 = (float)l1;
	t.l0 = 1.0f - t.l1;
	return t;
}

__device__ inline float lerp2(float a, float wa, float b, float wb)
{
	return __fadd_rn(__fmul_rn(a, wa), __fmul_rn(b, wb));
}

__global__ void bilinear_fwd(float *out, const float *in, int H, int W,
			     int OH, int OW, float ry, float rx, size_t n)
{
	FOR_N(i, n)
	{
		int ox = i % OW, oy = (i / OW) % OH;
		size_t p = i / ((size_t)OW * OH);
		tap ty = taps(oy, H, OH, ry), tx = taps(ox, W, OW, rx);
		const float *r0 = in + (p * H + ty.i0) * W;
		const float *r1 = in + (p * H + ty.i1) * W;
		float a = lerp2(r0[tx.i0], tx.l0, r0[tx.i1], tx.l1);
		float b = lerp2(r1[tx.i0], tx.l0, r1[tx.i1], tx.l1);
		out[i] = lerp2(a, ty.l0, b, ty.l1);
	}
}

// The outputs o of an axis (in -> out) whose taps may hold input i:
// those with i0 in [i - 1, i] (i0 does not decrease with o), [*lo, *hi).
__device__ void outputs_of(int i, int in, int out, float ratio, int *lo,
			   int *hi)
{
	if (in == out) {
		*lo = i;
		*hi = i + 1;
		return;
	}
	int a = 0, b = out; // first o with i0 >= i - 1
	while (a < b) {
		int m = (a + b) / 2;
		if (taps(m, in, out, ratio).i0 >= i - 1)
			b = m;
		else
			a = m + 1;
	}
	*lo = a;
	b = out; // first o with i0 > i
	while (a < b) {
		int m = (a + b) / 2;
		if (taps(m, in, out, ratio).i0 > i)
			b = m;
		else
			a = m + 1;
	}
	*hi = a;
}

// The backward pass gathered: each input value adds, in output order and
// in the order the CPU adds them (an output's row i0 before i1, column i0
// before i1), the products that the CPU's scatter adds into it: the
// CPU's bits, the same every run.
__global__ void bilinear_bwd(float *din, const float *dout, int H, int W,
			     int OH, int OW, float ry, float rx, size_t n)
{
	FOR_N(i, n)
	{
		int ix = i % W, iy = (i / W) % H;
		size_t p = i / ((size_t)W * H);
		int y0, y1, x0, x1;
		outputs_of(iy, H, OH, ry, &y0, &y1);
		outputs_of(ix, W, OW, rx, &x0, &x1);
		float v = din[i];
		for (int oy = y0; oy < y1; oy++) {
			tap ty = taps(oy, H, OH, ry);
			const float *g = dout + (p * OH + oy) * OW;
			for (int ox = x0; ox < x1; ox++) {
				tap tx = taps(ox, W, OW, rx);
				float a = __fmul_rn(g[ox], ty.l0), b = __fmul_rn(g[ox], ty.l1);
				if (ty.i0 == iy) {
					if (tx.i0 == ix)
						v = __fadd_rn(v, __fmul_rn(a, tx.l0));
					if (tx.i1 == ix)
						v = __fadd_rn(v, __fmul_rn(a, tx.l1));
				}
				if (ty.i1 == iy) {
					if (tx.i0 == ix)
						v = __fadd_rn(v, __fmul_rn(b, tx.l0));
					if (tx.i1 == ix)
						v = __fadd_rn(v, __fmul_rn(b, tx.l1));
				}
			}
		}
		din[i] = v;
	}
}

float ratio(int in, int out, double scale)
{
	return scale > 0.0 ? (float)(1.0 / scale) : (float)in / (float)out;
}

} // namespace

extern "C" {

void resize_bilinear_forward_cuda(float *out, const float *in, int P, int H,
				  int W, int OH, int OW, double scale_h,
				  double scale_w, tk_stream s)
{
	size_t n = (size_t)P * OH * OW;
	if (!n)
		return;
	bilinear_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(
	    out, in, H, W, OH, OW, ratio(H, OH, scale_h), ratio(W, OW, scale_w), n);
	LAUNCH_CHECK();
}

void resize_bilinear_backward_cuda(float *din, const float *dout, int P, int H,
				   int W, int OH, int OW, double scale_h,
				   double scale_w, tk_stream s)
{
	size_t n = (size_t)P * H * W;
	if (!n || !OH || !OW)
		return;
	bilinear_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(
	    din, dout, H, W, OH, OW, ratio(H, OH, scale_h), ratio(W, OW, scale_w), n);
	LAUNCH_CHECK();
}

} // extern "C"
