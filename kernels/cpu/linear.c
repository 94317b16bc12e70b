/* linear.c - GEMM over all threads, and nn.Linear on top of it. */
#include "kernels/linear.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/simd.h"

/* Up to this many rows, linear_forward reads the weights once itself:
 * a GEMM would pack the whole weight matrix to use each value that many
 * times (the Token head's 4 tokens, its one concatenated vector). */
#define SKINNY 8

/* Below this many multiply-adds a GEMM is not worth splitting. */
#define GEMM_SPLIT_MIN (1 << 20)

void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
	  int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
	if (nt == 1 || (double)M * N * K < GEMM_SPLIT_MIN) {
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
			    tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
			    lda, B, ldb, beta, C, ldc);
		return;
	}
	/* Each thread one band of C's columns (or rows, when C is tall),
	 * single-threaded OpenBLAS inside: no second thread pool. */
	int split_n = N >= M;
	int len = split_n ? N : M;
	int chunk = (len + nt - 1) / nt;
	chunk = (chunk + 15) & ~15;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
	for (int t = 0; t < nt; t++) {
		int s = t * chunk, e = s + chunk < len ? s + chunk : len;
		if (s >= e)
			continue;
		if (split_n)
			cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
				    tb ? CblasTrans : CblasNoTrans, M, e - s, K,
				    alpha, A, lda,
				    tb ? B + (size_t)s * ldb : B + s, ldb, beta,
				    C + s, ldc);
		else
			cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
				    tb ? CblasTrans : CblasNoTrans, e - s, N, K,
				    alpha, ta ? A + s : A + (size_t)s * lda, lda, B,
				    ldb, beta, C + (size_t)s * ldc, ldc);
	}
}

/* out[r][o] = in[r] . weight[o] (+ bias) for r < N <= SKINNY. */
TK_SIMD
static void skinny_row(float *out, const float *in, const float *restrict w,
		       float b, int N, int IN, int OUT)
{
	float acc[SKINNY];
	for (int r = 0; r < N; r++) {
		const float *restrict x = in + (size_t)r * IN;
		float s = 0.0f;
#pragma omp simd reduction(+ : s)
		for (int i = 0; i < IN; i++)
			s += x[i] * w[i];
		acc[r] = s;
	}
	for (int r = 0; r < N; r++)
		out[(size_t)r * OUT] = acc[r] + b;
}

void linear_forward(float *out, const float *in, const float *weight,
		    const float *bias, int N, int IN, int OUT)
{
	if (N <= SKINNY) {
#pragma omp parallel for schedule(static) if ((size_t)OUT * IN > 65536)
		for (int o = 0; o < OUT; o++)
			skinny_row(out + o, in, weight + (size_t)o * IN,
				   bias ? bias[o] : 0.0f, N, IN, OUT);
		return;
	}
	if (bias) {
#pragma omp parallel for if ((size_t)N * OUT > 65536)
		for (int i = 0; i < N; i++)
			memcpy(out + (size_t)i * OUT, bias, OUT * sizeof *out);
	}
	gemm(0, 1, N, OUT, IN, 1.0f, in, IN, weight, IN, bias ? 1.0f : 0.0f,
	     out, OUT);
}
