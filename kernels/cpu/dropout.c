/* dropout.c - dropout and drop-path with hashed keep flags. */
#include "kernels/dropout.h"

#define PAR_MIN 32768

void dropout_forward(float *out, uint8_t *mask, const float *in, float p,
		     uint64_t seed, size_t n)
{
	float scale = 1.0f / (float)(1.0 - (double)p);
#pragma omp parallel for if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		mask[i] = (uint8_t)dropout_keep(seed, i, p);
		out[i] = mask[i] ? in[i] * scale : 0.0f;
	}
}

void dropout_backward(float *din, const float *dout, const uint8_t *mask,
		      float p, size_t n)
{
	float scale = 1.0f / (float)(1.0 - (double)p);
#pragma omp parallel for if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		din[i] += mask[i] ? dout[i] * scale : 0.0f;
}

/* As the reference: x.div(keep_prob) * floor(keep_prob + rand). */
void droppath_forward(float *out, uint8_t *mask, const float *in, float p,
		      uint64_t seed, int B, size_t per)
{
	float keep = (float)(1.0 - (double)p);
	for (int b = 0; b < B; b++) {
		mask[b] = (uint8_t)dropout_keep(seed, (uint64_t)b, p);
		const float *x = in + (size_t)b * per;
		float *y = out + (size_t)b * per;
		for (size_t i = 0; i < per; i++)
			y[i] = mask[b] ? x[i] / keep : 0.0f;
	}
}

void droppath_backward(float *din, const float *dout, const uint8_t *mask,
		       float p, int B, size_t per)
{
	float keep = (float)(1.0 - (double)p);
	for (int b = 0; b < B; b++) {
		if (!mask[b])
			continue;
		const float *dy = dout + (size_t)b * per;
		float *dx = din + (size_t)b * per;
		for (size_t i = 0; i < per; i++)
			dx[i] += dy[i] / keep;
	}
}
