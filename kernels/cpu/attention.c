/* attention.c - multi-head attention: per (image, head) two GEMMs on
 * strided views of q, k, v (no reshuffling) and a row softmax between. */
#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>

#include "kernels/act.h"

void attention_forward(float *out, float *att, const float *q, const float *k,
		       const float *v, int B, int Nq, int Nk, int D, int heads)
{
	int dh = D / heads;
	/* As torch: (q k^T) * scale, the scale a Python float made float. */
	float scale = (float)pow((double)dh, -0.5);
#pragma omp parallel for schedule(dynamic) collapse(2)
	for (int b = 0; b < B; b++) {
		for (int h = 0; h < heads; h++) {
			const float *qb = q + (size_t)b * Nq * D + h * dh;
			const float *kb = k + (size_t)b * Nk * D + h * dh;
			const float *vb = v + (size_t)b * Nk * D + h * dh;
			float *a = att + ((size_t)b * heads + h) * Nq * Nk;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nq, Nk,
				    dh, 1.0f, qb, D, kb, D, 0.0f, a, Nk);
			for (size_t i = 0; i < (size_t)Nq * Nk; i++)
				a[i] *= scale;
			softmax_forward(a, a, Nq, Nk);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nq,
				    dh, Nk, 1.0f, a, Nk, vb, D, 0.0f,
				    out + (size_t)b * Nq * D + h * dh, D);
		}
	}
}
