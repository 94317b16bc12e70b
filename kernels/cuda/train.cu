// train.cu - the training-only ops: SGD with momentum, dropout and
// drop-path from counter-based random numbers (kernels/rng.h), and
// ArcFace logits with the cross-entropy and its gradient.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/rng.h"

namespace {

__global__ void sgd(float *p, float *mom, const float *g, float lr, float mu,
		    float wd, float gs, size_t n)
{
	FOR_N(i, n)
	{
		float d = g[i] * gs + wd * p[i];
		float m = mu * mom[i] + d;
		mom[i] = m;
		p[i] -= lr * m;
	}
}

__global__ void dropout_fwd(float *out, uint8_t *mask, const float *in, float p,
			    float scale, uint64_t seed, size_t n)
{
	FOR_N(i, n)
	{
		bool keep = tk_uniform(seed, i) >= p;
		out[i] = keep ? in[i] * scale : 0.0f;
		if (mask)
			mask[i] = keep;
	}
}

__global__ void dropout_bwd(float *din, const float *dout, const uint8_t *mask,
			    float scale, size_t n)
{
	FOR_N(i, n) din[i] += mask[i] ? dout[i] * scale : 0.0f;
}

__global__ void droppath_fwd(float *out, uint8_t *keep, const float *in,
			     float p, float scale, uint64_t seed, int C,
			     size_t n)
{
	FOR_N(i, n)
	{
		size_t r = i / C;
		bool k = tk_uniform(seed, r) >= p;
		out[i] = k ? in[i] * scale : 0.0f;
		if (keep && i % C == 0)
			keep[r] = k;
	}
}

__global__ void droppath_bwd(float *din, const float *dout, const uint8_t *keep,
			     float scale, int C, size_t n)
{
	FOR_N(i, n) din[i] += keep[i / C] ? dout[i] * scale : 0.0f;
}

struct arc {
	float s, m, eps, threshold;
};

// The reference's ArcFace on one cosine: theta = acos(clamp(cos)); the
// label's logit is s cos(theta + m) unless theta > pi - m.  *d receives
// d logit / d cos (zero outside the clamp, as torch's clamp).
__device__ float arc_logit(float c, bool label, arc a, float *d)
{
	float lo = -1.0f + a.eps, hi = 1.0f - a.eps;
	float cc = fminf(fmaxf(c, lo), hi);
	float th = acosf(cc);
	bool sel = label && !(th > a.threshold);
	float t = sel ? th + a.m : th;
	if (d) {
		float inside = c >= lo && c <= hi ? 1.0f : 0.0f;
		*d = inside * a.s * sinf(t) / sqrtf(1.0f - cc * cc);
	}
	return a.s * cosf(t);
}

// One block per row.
__global__ void arcface_ce(float *loss, float *dcos, const float *cos,
			   const int *labels, arc a, int N, int C)
{
	__shared__ float buf[32];
	size_t r0 = (size_t)blockIdx.x * C;
	int y = labels[blockIdx.x];
	float m = -INFINITY;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float l = arc_logit(cos[r0 + c], c == y, a, nullptr);
		m = l > m ? l : m;
	}
	m = block_max(m, buf, -INFINITY);
	float sum = 0.0f;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		sum += expf(arc_logit(cos[r0 + c], c == y, a, nullptr) - m);
	sum = block_sum(sum, buf);
	if (threadIdx.x == 0)
		loss[blockIdx.x] = logf(sum) + m - arc_logit(cos[r0 + y], true, a, nullptr);
	if (!dcos)
		return;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float d;
		float l = arc_logit(cos[r0 + c], c == y, a, &d);
		float g = (expf(l - m) / sum - (c == y ? 1.0f : 0.0f)) / N;
		dcos[r0 + c] = g * d;
	}
}

} // namespace

extern "C" {

void sgd_update_cuda(float *param, float *mom, const float *grad, float lr,
		     float momentum, float weight_decay, float grad_scale,
		     size_t n, tk_stream s)
{
	if (!n)
		return;
	sgd<<<tk::blocks(n, 256), 256, 0, s>>>(param, mom, grad, lr, momentum,
					       weight_decay, grad_scale, n);
	LAUNCH_CHECK();
}

void dropout_forward_cuda(float *out, uint8_t *mask, const float *in, float p,
			  uint64_t seed, size_t n, tk_stream s)
{
	if (!n)
		return;
	dropout_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, mask, in, p,
						       1.0f / (1.0f - p), seed, n);
	LAUNCH_CHECK();
}

void dropout_backward_cuda(float *din, const float *dout, const uint8_t *mask,
			   float p, size_t n, tk_stream s)
{
	if (!n)
		return;
	dropout_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, mask,
						       1.0f / (1.0f - p), n);
	LAUNCH_CHECK();
}

void droppath_forward_cuda(float *out, uint8_t *keep, const float *in, float p,
			   uint64_t seed, int N, int C, tk_stream s)
{
	size_t n = (size_t)N * C;
	if (!n)
		return;
	droppath_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(
	    out, keep, in, p, 1.0f / (1.0f - p), seed, C, n);
	LAUNCH_CHECK();
}

void droppath_backward_cuda(float *din, const float *dout, const uint8_t *keep,
			    float p, int N, int C, tk_stream s)
{
	size_t n = (size_t)N * C;
	if (!n)
		return;
	droppath_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, keep,
							1.0f / (1.0f - p), C, n);
	LAUNCH_CHECK();
}

void arcface_ce_forward_cuda(float *loss, float *dcos, const float *cos,
			     const int *labels, float s, float m, int N,
			     int classes, tk_stream st)
{
	if (N <= 0)
		return;
	arc a = {s, m, 1e-6f, (float)(M_PI - m)};
	arcface_ce<<<N, 512, 0, st>>>(loss, dcos, cos, labels, a, N, classes);
	LAUNCH_CHECK();
}

} // extern "C"
