// attention.cu - multi-head attention (attention.h), with dropout on
// the probabilities in training: per image, the
// heads' score GEMMs batched with the head offset as stride, a row
// softmax, and the value GEMMs likewise.  q, k, v are read in place
// ([B, N, D] with head h in columns h*dh .. h*dh+dh-1).
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace {

__global__ void scale_rows(float *a, float s, size_t n)
{
	FOR_N(i, n) a[i] *= s;
}

// out = in * mask * scale (the dropout of probabilities, or of their
// gradient, by attention_train_forward's flags).
__global__ void mask_scale(float *out, const float *in, const uint8_t *mask,
			   float scale, size_t n)
{
	FOR_N(i, n) out[i] = mask[i] ? in[i] * scale : 0.0f;
}

// att = softmax((q k^T) * scale) per image and head, as the CPU and
// torch: the scale applied to the rounded product.
void scores(float *att, const float *q, const float *k, int B, int Nq, int Nk,
	    int D, int heads, cudaStream_t s)
{
	int dh = D / heads;
	float scale = (float)pow((double)dh, -0.5);
	long long plane = (long long)Nq * Nk;
	for (int b = 0; b < B; b++)
		gemm_batched_cuda(0, 1, Nq, Nk, dh, 1.0f, q + (size_t)b * Nq * D, D,
				  dh, k + (size_t)b * Nk * D, D, dh, 0.0f,
				  att + (size_t)b * heads * plane, Nk, plane,
				  heads, s);
	size_t n = (size_t)B * heads * plane;
	scale_rows<<<tk::blocks(n, 256), 256, 0, s>>>(att, scale, n);
	LAUNCH_CHECK();
	softmax_forward_cuda(att, att, B * heads * Nq, Nk, s);
}

} // namespace

extern "C" {

void attention_forward_cuda(float *out, float *att, const float *q,
			    const float *k, const float *v, int B, int Nq,
			    int Nk, int D, int heads, tk_stream s)
{
	int dh = D / heads;
	long long plane = (long long)Nq * Nk;
	scores(att, q, k, B, Nq, Nk, D, heads, s);
	for (int b = 0; b < B; b++)
		gemm_batched_cuda(0, 0, Nq, dh, Nk, 1.0f,
				  att + (size_t)b * heads * plane, Nk, plane,
				  v + (size_t)b * Nk * D, D, dh, 0.0f,
				  out + (size_t)b * Nq * D, D, dh, heads, s);
}

void attention_train_forward_cuda(float *out, float *att, uint8_t *mask,
				  const float *q, const float *k, const float *v,
				  float p, uint64_t seed, int B, int Nq, int Nk,
				  int D, int heads, tk_stream s)
{
	if (!(p > 0.0f)) {
		attention_forward_cuda(out, att, q, k, v, B, Nq, Nk, D, heads, s);
		return;
	}
	int dh = D / heads;
	long long plane = (long long)Nq * Nk;
	size_t n = (size_t)B * heads * plane;
	scores(att, q, k, B, Nq, Nk, D, heads, s);
	// The dropped probabilities, in scratch; att keeps them undropped.
	float *drop = (float *)tk::workspace(n * sizeof(float));
	dropout_forward_cuda(drop, mask, att, p, seed, n, s);
	for (int b = 0; b < B; b++)
		gemm_batched_cuda(0, 0, Nq, dh, Nk, 1.0f,
				  drop + (size_t)b * heads * plane, Nk, plane,
				  v + (size_t)b * Nk * D, D, dh, 0.0f,
				  out + (size_t)b * Nq * D, D, dh, heads, s);
}

// With P the probabilities and Pd = P * dropout (P when mask is NULL):
// dV += Pd^T dO; dPd = dO V^T; dP = dPd * dropout; dS = softmax'(dP);
// dQ += scale dS K; dK += scale dS^T Q.
void attention_backward_cuda(float *dq, float *dk, float *dv,
			     const float *dout, const float *att,
			     const uint8_t *mask, const float *q, const float *k,
			     const float *v, float p, int B, int Nq, int Nk,
			     int D, int heads, tk_stream s)
{
	int dh = D / heads;
	float scale = (float)pow((double)dh, -0.5);
	long long plane = (long long)Nq * Nk;
	size_t per = (size_t)heads * plane;
	// Three [heads, Nq, Nk] planes of scratch per image: Pd, dPd (then
	// dP) and dS.
	float *pd = (float *)tk::workspace(3 * per * sizeof(float));
	float *datt = pd + per, *dsc = datt + per;
	for (int b = 0; b < B; b++) {
		const float *ab = att + (size_t)b * per;
		const float *gb = dout + (size_t)b * Nq * D;
		const float *qb = q + (size_t)b * Nq * D;
		const float *kb = k + (size_t)b * Nk * D;
		const float *vb = v + (size_t)b * Nk * D;
		const uint8_t *mb = mask ? mask + (size_t)b * per : nullptr;
		const float *use = ab;
		if (mb) {
			mask_scale<<<tk::blocks(per, 256), 256, 0, s>>>(
			    pd, ab, mb, 1.0f / (float)(1.0 - (double)p), per);
			LAUNCH_CHECK();
			use = pd;
		}
		gemm_batched_cuda(1, 0, Nk, dh, Nq, 1.0f, use, Nk, plane, gb, D, dh,
				  1.0f, dv + (size_t)b * Nk * D, D, dh, heads, s);
		gemm_batched_cuda(0, 1, Nq, Nk, dh, 1.0f, gb, D, dh, vb, D, dh, 0.0f,
				  datt, Nk, plane, heads, s);
		if (mb) {
			mask_scale<<<tk::blocks(per, 256), 256, 0, s>>>(
			    datt, datt, mb, 1.0f / (float)(1.0 - (double)p), per);
			LAUNCH_CHECK();
		}
		CUDA_CHECK(cudaMemsetAsync(dsc, 0, per * sizeof(float), s));
		softmax_backward_cuda(dsc, datt, ab, heads * Nq, Nk, s);
		gemm_batched_cuda(0, 0, Nq, dh, Nk, scale, dsc, Nk, plane, kb, D, dh,
				  1.0f, dq + (size_t)b * Nq * D, D, dh, heads, s);
		gemm_batched_cuda(1, 0, Nk, dh, Nq, scale, dsc, Nk, plane, qb, D, dh,
				  1.0f, dk + (size_t)b * Nk * D, D, dh, heads, s);
	}
}

} // extern "C"
