/* conv.h - 2-D convolution over NCHW arrays, with the bias, residual and
 * ReLU that follow it in a ResNet fused into its output pass.
 *
 * For inference a BatchNorm2d is folded into the convolution before it
 * (batchnorm2d_fold in norm.h), so "conv + BN + add + ReLU" is one call.
 * The CPU version computes 1x1 convolutions as GEMMs on the input itself,
 * 3x3 stride-1 convolutions by Winograd F(4x4,3x3) when the channels are
 * many enough, and everything else by im2col + GEMM, in tiles of output
 * pixels so that no whole im2col matrix is ever built. */
#ifndef TK_KERNELS_CONV_H
#define TK_KERNELS_CONV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Square kernels, the same stride and zero padding on both axes: all a
 * torchvision ResNet needs. */
struct conv2d_dims {
	int B, C, H, W; /* input */
	int OC, K, stride, pad;
};

static inline int conv2d_out_size(int in, int k, int stride, int pad)
{
	return (in + 2 * pad - k) / stride + 1;
}

/* Floats of scratch conv2d_forward needs for d with 'threads' threads. */
size_t conv2d_workspace(struct conv2d_dims d, int threads);

/* out = relu?(conv(in, weight) + bias + residual).  bias and residual may
 * be NULL; residual may be out itself (the identity branch of a ResNet
 * block, added in place).  work: conv2d_workspace floats. */
void conv2d_forward(float *out,            /* [B, OC, OH, OW] */
		    float *work,           /* scratch */
		    const float *in,       /* [B, C, H, W] */
		    const float *weight,   /* [OC, C, K, K] */
		    const float *bias,     /* [OC] or NULL */
		    const float *residual, /* [B, OC, OH, OW] or NULL */
		    int relu, struct conv2d_dims d);

/* Training's forward: conv2d_forward without the fast algorithms whose
 * rounding differs from a direct convolution's (Winograd), so that the
 * values that fall on a ReLU's kink fall as torch's do and the gradients
 * follow the same branches. */
void conv2d_train_forward(float *out,            /* [B, OC, OH, OW] */
			  float *work,           /* scratch */
			  const float *in,       /* [B, C, H, W] */
			  const float *weight,   /* [OC, C, K, K] */
			  const float *bias,     /* [OC] or NULL */
			  const float *residual, /* [B, OC, OH, OW] or NULL */
			  int relu, struct conv2d_dims d);

/* Floats of scratch conv2d_backward and conv2d_train_forward need for d. */
size_t conv2d_backward_workspace(struct conv2d_dims d, int threads);

/* Gradients of conv2d_forward without its fused bias/residual/ReLU (the
 * caller applies relu_backward and sums the residual's gradient itself):
 * din, dweight and dbias accumulate (+=); din and dbias may be NULL. */
void conv2d_backward(float *din,          /* [B, C, H, W] or NULL */
		     float *dweight,      /* [OC, C, K, K] */
		     float *dbias,        /* [OC] or NULL */
		     float *work,         /* scratch */
		     const float *dout,   /* [B, OC, OH, OW] */
		     const float *in,     /* [B, C, H, W] */
		     const float *weight, /* [OC, C, K, K] */
		     struct conv2d_dims d);

#ifdef __cplusplus
}
#endif
#endif
