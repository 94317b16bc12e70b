/* linear.h - fully connected layers, y = x W^T + b (torch's nn.Linear),
 * and the GEMM every kernel uses. */
#ifndef TK_KERNELS_LINEAR_H
#define TK_KERNELS_LINEAR_H

#ifdef __cplusplus
extern "C" {
#endif

void linear_forward(float *out,          /* [N, OUT] */
		    const float *in,     /* [N, IN] */
		    const float *weight, /* [OUT, IN] */
		    const float *bias,   /* [OUT] or NULL */
		    int N, int IN, int OUT);
/* dweight and dbias accumulate; din accumulates and may be NULL. */
void linear_backward(float *din, float *dweight, float *dbias,
		     const float *dout, const float *in,
		     const float *weight, int N, int IN, int OUT);

/* Row-major C = alpha * op(A) op(B) + beta * C over all threads:
 * op(A) is [M, K], op(B) is [K, N]; ta / tb: the stored matrix is the
 * transpose.  lda, ldb, ldc: row strides as stored. */
void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
	  int lda, const float *B, int ldb, float beta, float *C, int ldc);

#ifdef __cplusplus
}
#endif
#endif
