/* loss.c - ArcFace margin and softmax cross-entropy, in torch's float
 * operations where they decide the value (acos, cos, the clamp, the
 * threshold compared in float). */
#include "kernels/loss.h"

#include <math.h>
#include <stddef.h>

#define PAR_MIN 65536

/* The angle and whether the margin applies, as the reference decides. */
static float arc_angle(float c, float eps, int is_label, float m, int *margin)
{
	float lo = -1.0f + eps, hi = 1.0f - eps;
	float cc = c < lo ? lo : c > hi ? hi : c;
	float theta = acosf(cc);
	float threshold = (float)(M_PI - (double)m);
	*margin = is_label && !(theta > threshold);
	return theta;
}

void arcface_forward(float *logits, const float *cos, const int32_t *label,
		     float s, float m, float eps, int N, int K)
{
#pragma omp parallel for if ((size_t)N * K > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *c = cos + (size_t)r * K;
		float *z = logits + (size_t)r * K;
		for (int j = 0; j < K; j++) {
			int margin;
			float theta = arc_angle(c[j], eps, j == label[r], m, &margin);
			z[j] = cosf(margin ? theta + m : theta) * s;
		}
	}
}

void arcface_backward(float *dcos, const float *dlogits, const float *cos,
		      const int32_t *label, float s, float m, float eps, int N,
		      int K)
{
	float lo = -1.0f + eps, hi = 1.0f - eps;
#pragma omp parallel for if ((size_t)N * K > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *c = cos + (size_t)r * K, *dz = dlogits + (size_t)r * K;
		float *dc = dcos + (size_t)r * K;
		for (int j = 0; j < K; j++) {
			/* torch's clamp passes the gradient where lo <= x <= hi. */
			if (!(c[j] >= lo && c[j] <= hi))
				continue;
			int margin;
			float theta = arc_angle(c[j], eps, j == label[r], m, &margin);
			float phi = margin ? theta + m : theta;
			/* cos' = -sin; acos'(x) = -1 / sqrt(1 - x^2). */
			float dphi = -(dz[j] * s) * sinf(phi);
			dc[j] += dphi * -(1.0f / sqrtf(1.0f - c[j] * c[j]));
		}
	}
}

void cross_entropy_forward(float *loss, float *prob, const float *logits,
			   const int32_t *label, int N, int K)
{
#pragma omp parallel for if ((size_t)N * K > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *z = logits + (size_t)r * K;
		float *p = prob + (size_t)r * K;
		float mx = -INFINITY;
		for (int j = 0; j < K; j++)
			mx = z[j] > mx ? z[j] : mx;
		double sum = 0.0;
		for (int j = 0; j < K; j++) {
			p[j] = expf(z[j] - mx);
			sum += p[j];
		}
		float inv = (float)(1.0 / sum);
		for (int j = 0; j < K; j++)
			p[j] *= inv;
		loss[r] = (float)(log(sum) - (double)(z[label[r]] - mx));
	}
}

void cross_entropy_backward(float *dlogits, const float *prob,
			    const int32_t *label, float scale, int N, int K)
{
#pragma omp parallel for if ((size_t)N * K > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *p = prob + (size_t)r * K;
		float *d = dlogits + (size_t)r * K;
		for (int j = 0; j < K; j++)
			d[j] += scale * (p[j] - (j == label[r] ? 1.0f : 0.0f));
	}
}
