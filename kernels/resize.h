/* resize.h - bilinear resampling of NCHW planes with align_corners=False,
 * as torch's F.interpolate(mode='bilinear') on the CPU: the source
 * coordinate (dst + 0.5) * ratio - 0.5 clamped at 0, where ratio is
 * float(1/scale) when a scale factor was given (not in/out: the two
 * differ), else float(in)/out; the second neighbour clamped to the last
 * row or column; an axis that keeps its size is copied whatever the
 * scale (floor(2 * 1.41) = 2 rows stay as they are).  Indices and weights equal torch's; values agree to the
 * last bit of float. */
#ifndef TK_KERNELS_RESIZE_H
#define TK_KERNELS_RESIZE_H

#ifdef __cplusplus
extern "C" {
#endif

/* The output size torch gives for a scale factor: floor(in * scale). */
int resize_out_size(int in, double scale);

/* scale_h, scale_w: the scale factors given to F.interpolate, or 0 when
 * the output size was given instead. */
void resize_bilinear_forward(float *out,      /* [P, OH, OW] */
			     const float *in, /* [P, H, W] */
			     int P, int H, int W, int OH, int OW,
			     double scale_h, double scale_w);
void resize_bilinear_backward(float *din, const float *dout, int P, int H,
			      int W, int OH, int OW, double scale_h,
			      double scale_w);

#ifdef __cplusplus
}
#endif
#endif
