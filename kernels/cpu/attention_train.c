/* attention_train.c - multi-head attention for training: the forward
 * with dropout on the probabilities, and the gradient.  Per (image, head)
 * GEMMs on strided views of q, k, v, as attention.c. */
#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/dropout.h"

static float head_scale(int dh)
{
	return (float)pow((double)dh, -0.5);
}

void attention_train_forward(float *out, float *att, uint8_t *mask,
			     const float *q, const float *k, const float *v,
			     float p, uint64_t seed, int B, int Nq, int Nk, int D,
			     int heads)
{
	int dh = D / heads;
	float scale = head_scale(dh);
	float keep = 1.0f / (float)(1.0 - (double)p);
	size_t nn = (size_t)Nq * Nk;
	float *drop = NULL;
	int nt = omp_get_max_threads();
	if (p > 0.0f && !(drop = malloc(sizeof *drop * nn * nt)))
		abort();
#pragma omp parallel for schedule(dynamic) collapse(2)
	for (int b = 0; b < B; b++) {
		for (int h = 0; h < heads; h++) {
			const float *qb = q + (size_t)b * Nq * D + h * dh;
			const float *kb = k + (size_t)b * Nk * D + h * dh;
			const float *vb = v + (size_t)b * Nk * D + h * dh;
			size_t bh = (size_t)b * heads + h;
			float *a = att + bh * nn;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nq, Nk,
				    dh, 1.0f, qb, D, kb, D, 0.0f, a, Nk);
			for (size_t i = 0; i < nn; i++)
				a[i] *= scale;
			softmax_forward(a, a, Nq, Nk);
			const float *use = a;
			if (p > 0.0f) {
				float *d = drop + (size_t)omp_get_thread_num() * nn;
				uint8_t *m = mask + bh * nn;
				for (size_t i = 0; i < nn; i++) {
					m[i] = (uint8_t)dropout_keep(seed, bh * nn + i, p);
					d[i] = m[i] ? a[i] * keep : 0.0f;
				}
				use = d;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nq,
				    dh, Nk, 1.0f, use, Nk, vb, D, 0.0f,
				    out + (size_t)b * Nq * D + h * dh, D);
		}
	}
	free(drop);
}

/* With P the probabilities and Pd = P * dropout:
 * dV += Pd^T dO;  dPd = dO V^T;  dP = dPd * dropout;
 * dS = softmax'(dP);  dQ += scale dS K;  dK += scale dS^T Q. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout,
			const float *att, const uint8_t *mask, const float *q,
			const float *k, const float *v, float p, int B, int Nq,
			int Nk, int D, int heads)
{
	int dh = D / heads;
	float scale = head_scale(dh);
	float keep = 1.0f / (float)(1.0 - (double)p);
	size_t nn = (size_t)Nq * Nk;
	int nt = omp_get_max_threads();
	float *scratch = malloc(sizeof *scratch * 3 * nn * nt);
	if (!scratch)
		abort();
	/* Heads of one image write disjoint columns of dq, dk, dv; images
	 * disjoint rows: every (b, h) pair is independent. */
#pragma omp parallel for schedule(dynamic) collapse(2)
	for (int b = 0; b < B; b++) {
		for (int h = 0; h < heads; h++) {
			size_t bh = (size_t)b * heads + h;
			size_t qo = (size_t)b * Nq * D + h * dh;
			size_t ko = (size_t)b * Nk * D + h * dh;
			const float *P = att + bh * nn;
			float *Pd = scratch + (size_t)omp_get_thread_num() * 3 * nn;
			float *dPd = Pd + nn, *dS = dPd + nn;
			const uint8_t *m = mask ? mask + bh * nn : NULL;
			if (m)
				for (size_t i = 0; i < nn; i++)
					Pd[i] = m[i] ? P[i] * keep : 0.0f;
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, dh,
				    Nq, 1.0f, m ? Pd : P, Nk, dout + qo, D, 1.0f,
				    dv + ko, D);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nq, Nk,
				    dh, 1.0f, dout + qo, D, v + ko, D, 0.0f, dPd, Nk);
			if (m)
				for (size_t i = 0; i < nn; i++)
					dPd[i] = m[i] ? dPd[i] * keep : 0.0f;
			memset(dS, 0, nn * sizeof *dS);
			softmax_backward(dS, dPd, P, Nq, Nk);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nq,
				    dh, Nk, scale, dS, Nk, k + ko, D, 1.0f, dq + qo,
				    D);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, dh,
				    Nq, scale, dS, Nk, q + qo, D, 1.0f, dk + ko, D);
		}
	}
	free(scratch);
}
