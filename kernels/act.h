/* act.h - element-wise ops: ReLU, GELU (erf form, as torch's default),
 * residual add; and the softmax over the last axis. */
#ifndef TK_KERNELS_ACT_H
#define TK_KERNELS_ACT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out may be in for all forward ops. */
void relu_forward(float *out, const float *in, size_t n);        /* [n] */
void relu_backward(float *din, const float *dout, const float *out,
		   size_t n);
/* 0.5 * x * (1 + erf(x / sqrt(2))) */
void gelu_forward(float *out, const float *in, size_t n);        /* [n] */
void gelu_backward(float *din, const float *dout, const float *in,
		   size_t n);
/* out = a + b; out may be a or b. */
void add_forward(float *out, const float *a, const float *b, size_t n);
/* out = relu(a + b) in one pass (a ResNet block's end): add_forward then
 * relu_forward, the same values.  out may be a or b. */
void add_relu_forward(float *out, const float *a, const float *b, size_t n);

/* Softmax of each row, max-subtracted.  out may be in. */
void softmax_forward(float *out,      /* [N, C] */
		     const float *in, /* [N, C] */
		     int N, int C);
void softmax_backward(float *din, const float *dout, const float *out,
		      int N, int C);

#ifdef __cplusplus
}
#endif
#endif
