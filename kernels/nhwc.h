/* nhwc.h - inference ops on channels-last activations, the layout GPU
 * tensor cores want: one image's activations [H, W, ld], a pixel's
 * channels contiguous, ld >= C channels a pixel (the extra ones zero:
 * the 3-channel image padded for aligned loads).  The device network
 * (common/devnet.c) runs on these; the CPU versions here are its
 * reference in the tests (the CPU tools run common/resnet.c's NCHW
 * network).  Weights stay in conv.h's [OC, C, K, K]. */
#ifndef TK_KERNELS_NHWC_H
#define TK_KERNELS_NHWC_H

#include "kernels/conv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out [H, W, ld] = in [C, H, W], channels C .. ld-1 zero. */
void nchw_to_nhwc_forward(float *out, const float *in, int C, int ld, int H,
			  int W);

/* conv2d_forward on channels-last activations (d.B must be 1): input
 * [H, W, ld] (channels ld - d.C .. unused), output and residual
 * [OH, OW, OC]. */
void conv2d_nhwc_forward(float *out,            /* [OH, OW, OC] */
			 const float *in,       /* [H, W, ld] */
			 const float *weight,   /* [OC, C, K, K] */
			 const float *bias,     /* [OC] or NULL */
			 const float *residual, /* [OH, OW, OC] or NULL */
			 int relu, int ld, struct conv2d_dims d);

/* Max pooling (a NaN wins), [OH, OW, C] from [H, W, C]. */
void maxpool2d_nhwc_forward(float *out, const float *in, int C, int H, int W,
			    int K, int stride, int pad);

#ifdef __cplusplus
}
#endif
#endif
