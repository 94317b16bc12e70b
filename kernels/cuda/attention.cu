// attention.cu - multi-head attention (attention.h), with dropout on
// the probabilities in training: the score GEMMs of every image and head
// in strided batches (gemm_bh), a row softmax, and the value GEMMs
// likewise.  q, k, v are read in place
// ([B, N, D] with head h in columns h*dh .. h*dh+dh-1).
#include <cmath>
#include <cstdlib>

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

// C[b][h] = alpha op(A[b][h]) op(B[b][h]) + beta C[b][h] for nb images
// and nh heads, X[b][h] at X + b sXb + h sXh: strided batches over the
// more numerous of the two, in min(nb, nh) calls.  (Per image, the
// decoder's attention of 4 tokens, whose products are tiny, took 1.7 ms
// a layer's backward on an H200 in its 192 launches for a batch of 32.)
void gemm_bh(int ta, int tb, int M, int N, int K, float alpha, const float *A,
	     int lda, long long sAb, long long sAh, const float *Bm, int ldb,
	     long long sBb, long long sBh, float beta, float *C, int ldc,
	     long long sCb, long long sCh, int nb, int nh, cudaStream_t s)
{
	if (nb >= nh)
		for (int h = 0; h < nh; h++)
			gemm_batched_cuda(ta, tb, M, N, K, alpha, A + h * sAh, lda, sAb,
					  Bm + h * sBh, ldb, sBb, beta, C + h * sCh, ldc,
					  sCb, nb, s);
	else
		for (int b = 0; b < nb; b++)
			gemm_batched_cuda(ta, tb, M, N, K, alpha, A + b * sAb, lda, sAh,
					  Bm + b * sBb, ldb, sBh, beta, C + b * sCb, ldc,
					  sCh, nh, s);
}

// att = softmax((q k^T) * scale) per image and head, as the CPU and
// torch: the scale applied to the rounded product.
void scores(float *att, const float *q, const float *k, int B, int Nq, int Nk,
	    int D, int heads, cudaStream_t s)
{
	int dh = D / heads;
	float scale = (float)pow((double)dh, -0.5);
	long long plane = (long long)Nq * Nk;
	gemm_bh(0, 1, Nq, Nk, dh, 1.0f, q, D, (long long)Nq * D, dh, k, D,
		(long long)Nk * D, dh, 0.0f, att, Nk, heads * plane, plane, B, heads,
		s);
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
	gemm_bh(0, 0, Nq, dh, Nk, 1.0f, att, Nk, heads * plane, plane, v, D,
		(long long)Nk * D, dh, 0.0f, out, D, (long long)Nq * D, dh, B, heads,
		s);
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
	gemm_bh(0, 0, Nq, dh, Nk, 1.0f, drop, Nk, heads * plane, plane, v, D,
		(long long)Nk * D, dh, 0.0f, out, D, (long long)Nq * D, dh, B, heads,
		s);
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
	long long plane = (long long)Nq * Nk, per = heads * plane;
	long long qs = (long long)Nq * D, ks = (long long)Nk * D;
	// Images a group: their three [heads, Nq, Nk] planes of scratch (Pd,
	// dPd then dP, dS) within 256 MiB (TK_ATTN_SCRATCH bytes: for tests),
	// at least one image.
	const char *e = getenv("TK_ATTN_SCRATCH");
	long long bound = e && *e ? atoll(e) : (long long)256 << 20;
	long long G = bound / (3 * per * (long long)sizeof(float));
	G = G < 1 ? 1 : G > B ? B : G;
	float *pd = (float *)tk::workspace(3 * (size_t)(G * per) * sizeof(float));
	float *datt = pd + G * per, *dsc = datt + G * per;
	float keep = 1.0f / (float)(1.0 - (double)p);
	for (int b0 = 0; b0 < B; b0 += (int)G) {
		int g = B - b0 < G ? B - b0 : (int)G;
		size_t gn = (size_t)g * per;
		const float *ab = att + (size_t)b0 * per;
		const float *gb = dout + (size_t)b0 * qs;
		const float *qb = q + (size_t)b0 * qs;
		const float *kb = k + (size_t)b0 * ks;
		const float *vb = v + (size_t)b0 * ks;
		const uint8_t *mb = mask ? mask + (size_t)b0 * per : nullptr;
		const float *use = ab;
		if (mb) {
			mask_scale<<<tk::blocks(gn, 256), 256, 0, s>>>(pd, ab, mb, keep, gn);
			LAUNCH_CHECK();
			use = pd;
		}
		gemm_bh(1, 0, Nk, dh, Nq, 1.0f, use, Nk, per, plane, gb, D, qs, dh, 1.0f,
			dv + (size_t)b0 * ks, D, ks, dh, g, heads, s);
		gemm_bh(0, 1, Nq, Nk, dh, 1.0f, gb, D, qs, dh, vb, D, ks, dh, 0.0f,
			datt, Nk, per, plane, g, heads, s);
		if (mb) {
			mask_scale<<<tk::blocks(gn, 256), 256, 0, s>>>(datt, datt, mb, keep,
								      gn);
			LAUNCH_CHECK();
		}
		CUDA_CHECK(cudaMemsetAsync(dsc, 0, gn * sizeof(float), s));
		softmax_backward_cuda(dsc, datt, ab, g * heads * Nq, Nk, s);
		gemm_bh(0, 0, Nq, dh, Nk, scale, dsc, Nk, per, plane, kb, D, ks, dh,
			1.0f, dq + (size_t)b0 * qs, D, qs, dh, g, heads, s);
		gemm_bh(1, 0, Nk, dh, Nq, scale, dsc, Nk, per, plane, qb, D, qs, dh,
			1.0f, dk + (size_t)b0 * ks, D, ks, dh, g, heads, s);
	}
}

} // extern "C"
