// attention.cu - multi-head attention (attention.h): per image, the
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

} // namespace

extern "C" {

void attention_forward_cuda(float *out, float *att, const float *q,
			    const float *k, const float *v, int B, int Nq,
			    int Nk, int D, int heads, tk_stream s)
{
	int dh = D / heads;
	float scale = (float)pow((double)dh, -0.5);
	long long plane = (long long)Nq * Nk;
	for (int b = 0; b < B; b++) {
		const float *qb = q + (size_t)b * Nq * D;
		const float *kb = k + (size_t)b * Nk * D;
		float *ab = att + (size_t)b * heads * plane;
		// As the CPU and torch: (q k^T) * scale, the scale applied
		// to the rounded product.
		gemm_batched_cuda(0, 1, Nq, Nk, dh, 1.0f, qb, D, dh, kb, D, dh, 0.0f,
				  ab, Nk, plane, heads, s);
	}
	size_t n = (size_t)B * heads * plane;
	scale_rows<<<tk::blocks(n, 256), 256, 0, s>>>(att, scale, n);
	LAUNCH_CHECK();
	softmax_forward_cuda(att, att, B * heads * Nq, Nk, s);
	for (int b = 0; b < B; b++)
		gemm_batched_cuda(0, 0, Nq, dh, Nk, 1.0f,
				  att + (size_t)b * heads * plane, Nk, plane,
				  v + (size_t)b * Nk * D, D, dh, 0.0f,
				  out + (size_t)b * Nq * D, D, dh, heads, s);
}

void attention_backward_cuda(float *dq, float *dk, float *dv,
			     const float *dout, const float *att,
			     const float *q, const float *k, const float *v,
			     int B, int Nq, int Nk, int D, int heads,
			     tk_stream s)
{
	int dh = D / heads;
	float scale = (float)pow((double)dh, -0.5);
	long long plane = (long long)Nq * Nk;
	size_t per = (size_t)heads * plane;
	// Two [heads, Nq, Nk] planes of scratch per image: d(att) and the
	// score gradient.
	float *datt = (float *)tk::workspace(2 * per * sizeof(float));
	float *dsc = datt + per;
	for (int b = 0; b < B; b++) {
		const float *ab = att + (size_t)b * per;
		const float *gb = dout + (size_t)b * Nq * D;
		const float *qb = q + (size_t)b * Nq * D;
		const float *kb = k + (size_t)b * Nk * D;
		const float *vb = v + (size_t)b * Nk * D;
		// dv += att^T dout; datt = dout v^T.
		gemm_batched_cuda(1, 0, Nk, dh, Nq, 1.0f, ab, Nk, plane, gb, D, dh,
				  1.0f, dv + (size_t)b * Nk * D, D, dh, heads, s);
		gemm_batched_cuda(0, 1, Nq, Nk, dh, 1.0f, gb, D, dh, vb, D, dh, 0.0f,
				  datt, Nk, plane, heads, s);
		CUDA_CHECK(cudaMemsetAsync(dsc, 0, per * sizeof(float), s));
		softmax_backward_cuda(dsc, datt, ab, heads * Nq, Nk, s);
		// scores = scale * q k^T: dq += scale dsc k, dk += scale dsc^T q.
		gemm_batched_cuda(0, 0, Nq, dh, Nk, scale, dsc, Nk, plane, kb, D, dh,
				  1.0f, dq + (size_t)b * Nq * D, D, dh, heads, s);
		gemm_batched_cuda(1, 0, Nk, dh, Nq, scale, dsc, Nk, plane, qb, D, dh,
				  1.0f, dk + (size_t)b * Nk * D, D, dh, heads, s);
	}
}

} // extern "C"
