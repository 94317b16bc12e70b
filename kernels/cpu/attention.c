/* attention.c - multi-head attention: per (image, head) two GEMMs on
 * strided views of q, k, v (no reshuffling) and a row softmax between;
 * without att, in blocks of query rows, so that memory does not grow
 * with the square of the sequence. */
#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "kernels/act.h"

/* Query rows per block when the probabilities are not kept. */
#define ROWS 64

/* Rows r0 .. r0+n-1 of one head: a = softmax(q k^T * scale), out = a v. */
static void head_rows(float *out, float *a, const float *q, const float *k,
		      const float *v, int n, int Nk, int D, int dh, float scale)
{
	/* OpenBLAS applies alpha to the finished dot products: the same
	 * roundings as torch's (q @ k^T) * scale. */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Nk, dh, scale, q,
		    D, k, D, 0.0f, a, Nk);
	softmax_forward(a, a, n, Nk);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dh, Nk, 1.0f, a,
		    Nk, v, D, 0.0f, out, D);
}

void attention_forward(float *out, float *att, const float *q, const float *k,
		       const float *v, int B, int Nq, int Nk, int D, int heads)
{
	int dh = D / heads;
	/* As torch: (q k^T) * scale, the scale a Python float made float. */
	float scale = (float)pow((double)dh, -0.5);
	if (att) {
#pragma omp parallel for schedule(dynamic) collapse(2)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < heads; h++)
				head_rows(out + (size_t)b * Nq * D + h * dh,
					  att + ((size_t)b * heads + h) * Nq * Nk,
					  q + (size_t)b * Nq * D + h * dh,
					  k + (size_t)b * Nk * D + h * dh,
					  v + (size_t)b * Nk * D + h * dh, Nq, Nk, D, dh,
					  scale);
		return;
	}
	int blocks = (Nq + ROWS - 1) / ROWS;
#pragma omp parallel
	{
		float *a = malloc(sizeof *a * ROWS * (size_t)Nk);
		if (!a)
			abort();
#pragma omp for schedule(dynamic) collapse(3)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < heads; h++)
				for (int r = 0; r < blocks; r++) {
					int r0 = r * ROWS;
					int n = Nq - r0 < ROWS ? Nq - r0 : ROWS;
					size_t qo = ((size_t)b * Nq + r0) * D + h * dh;
					head_rows(out + qo, a, q + qo,
						  k + (size_t)b * Nk * D + h * dh,
						  v + (size_t)b * Nk * D + h * dh, n, Nk, D,
						  dh, scale);
				}
		free(a);
	}
}
