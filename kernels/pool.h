/* pool.h - max pooling over NCHW planes (the ResNet stem's 3x3 stride 2
 * pad 1).  Padding never wins: it counts as -infinity, as in torch. */
#ifndef TK_KERNELS_POOL_H
#define TK_KERNELS_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

static inline int maxpool2d_out_size(int in, int k, int stride, int pad)
{
	return (in + 2 * pad - k) / stride + 1;
}

/* argmax (may be NULL) receives the index within its plane of each
 * output's maximum, for the backward pass. */
void maxpool2d_forward(float *out,      /* [P, OH, OW] */
		       int *argmax,     /* [P, OH, OW] or NULL */
		       const float *in, /* [P, H, W], P = batch * channels */
		       int P, int H, int W, int K, int stride, int pad);
void maxpool2d_backward(float *din,        /* [P, H, W] */
			const float *dout, /* [P, OH, OW] */
			const int *argmax, /* [P, OH, OW] */
			int P, int H, int W, int K, int stride, int pad);

#ifdef __cplusplus
}
#endif
#endif
