// train.cu - the training-only ops (dropout.h, loss.h, optim.h) with the
// CPU's float operations: dropout and drop-path from the same hashed keep
// flags, ArcFace's margin, softmax cross-entropy, the SGD step.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"

namespace {

__global__ void dropout_fwd(float *out, uint8_t *mask, const float *in, float p,
			    float scale, uint64_t seed, size_t n)
{
	FOR_N(i, n)
	{
		uint8_t k = (uint8_t)dropout_keep(seed, i, p);
		mask[i] = k;
		out[i] = k ? in[i] * scale : 0.0f;
	}
}

__global__ void dropout_bwd(float *din, const float *dout, const uint8_t *mask,
			    float scale, size_t n)
{
	FOR_N(i, n) din[i] += mask[i] ? dout[i] * scale : 0.0f;
}

__global__ void droppath_flags(uint8_t *mask, float p, uint64_t seed, int B)
{
	int b = blockIdx.x * blockDim.x + threadIdx.x;
	if (b < B)
		mask[b] = (uint8_t)dropout_keep(seed, (uint64_t)b, p);
}

__global__ void droppath_fwd(float *out, const uint8_t *mask, const float *in,
			     float keep, size_t per, size_t n)
{
	FOR_N(i, n) out[i] = mask[i / per] ? __fdiv_rn(in[i], keep) : 0.0f;
}

__global__ void droppath_bwd(float *din, const float *dout, const uint8_t *mask,
			     float keep, size_t per, size_t n)
{
	FOR_N(i, n)
	{
		if (mask[i / per])
			din[i] += __fdiv_rn(dout[i], keep);
	}
}

struct arc {
	float s, m, eps, threshold;
};

__device__ float arc_angle(float c, arc a, bool is_label, bool *margin)
{
	float lo = -1.0f + a.eps, hi = 1.0f - a.eps;
	float cc = c < lo ? lo : c > hi ? hi : c;
	float theta = acosf(cc);
	*margin = is_label && !(theta > a.threshold);
	return theta;
}

__global__ void arcface_fwd(float *logits, const float *cos,
			    const int32_t *label, arc a, int K, size_t n)
{
	FOR_N(i, n)
	{
		bool mg;
		float th = arc_angle(cos[i], a, (int)(i % K) == label[i / K], &mg);
		logits[i] = cosf(mg ? th + a.m : th) * a.s;
	}
}

__global__ void arcface_bwd(float *dcos, const float *dlogits, const float *cos,
			    const int32_t *label, arc a, int K, size_t n)
{
	float lo = -1.0f + a.eps, hi = 1.0f - a.eps;
	FOR_N(i, n)
	{
		float c = cos[i];
		if (!(c >= lo && c <= hi))
			continue;
		bool mg;
		float th = arc_angle(c, a, (int)(i % K) == label[i / K], &mg);
		float phi = mg ? th + a.m : th;
		float dphi = -(dlogits[i] * a.s) * sinf(phi);
		// No fused multiply-add: 1 - c^2 cancels near the clamp, where the
		// CPU's separately rounded square decides the value.
		dcos[i] += dphi * -(1.0f / sqrtf(1.0f - __fmul_rn(c, c)));
	}
}

// One block per row: max, sum of exponentials in double, probabilities.
__global__ void ce_fwd(float *loss, float *prob, const float *logits,
		       const int32_t *label, int K)
{
	__shared__ float fbuf[32];
	__shared__ double dbuf[32];
	size_t r0 = (size_t)blockIdx.x * K;
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < K; j += blockDim.x)
		mx = logits[r0 + j] > mx ? logits[r0 + j] : mx;
	mx = block_max(mx, fbuf, -INFINITY);
	double sum = 0;
	for (int j = threadIdx.x; j < K; j += blockDim.x) {
		float e = expf(logits[r0 + j] - mx);
		prob[r0 + j] = e;
		sum += e;
	}
	sum = block_sum(sum, dbuf);
	float inv = (float)(1.0 / sum);
	for (int j = threadIdx.x; j < K; j += blockDim.x)
		prob[r0 + j] *= inv;
	if (threadIdx.x == 0)
		loss[blockIdx.x] = (float)(log(sum) -
					   (double)(logits[r0 + label[blockIdx.x]] - mx));
}

__global__ void ce_bwd(float *dlogits, const float *prob, const int32_t *label,
		       float scale, int K, size_t n)
{
	FOR_N(i, n)
	{
		float one = (int)(i % K) == label[i / K] ? 1.0f : 0.0f;
		dlogits[i] += scale * (prob[i] - one);
	}
}

// One parameter's step.
__device__ inline void sgd_one(float &param, float &buf, float grad, float lr,
			       float momentum, float damp, float wd,
			       int nesterov)
{
	float g = wd != 0.0f ? fmaf(param, wd, grad) : grad;
	if (momentum != 0.0f) {
		float b = fmaf(g, damp, buf * momentum);
		buf = b;
		g = nesterov ? fmaf(b, momentum, g) : b;
	}
	param = fmaf(g, -lr, param);
}

__global__ void sgd(float *param, float *buf, const float *grad, float lr,
		    float momentum, float damp, float wd, int nesterov, size_t n)
{
	FOR_N(i, n)
	{
		sgd_one(param[i], buf[i], grad[i], lr, momentum, damp, wd, nesterov);
	}
}

// A block's share of sgd_update_runs: len values from off, decaying or
// not.
struct sgd_chunk {
	size_t off;
	unsigned len, decay;
};
const unsigned SGD_CHUNK = 1u << 16;

__global__ void sgd_chunks(float *param, float *buf, const float *grad,
			   const sgd_chunk *tab, float lr, float momentum,
			   float damp, float wd, int nesterov)
{
	sgd_chunk c = tab[blockIdx.x];
	float w = c.decay ? wd : 0.0f;
	for (unsigned i = threadIdx.x; i < c.len; i += blockDim.x) {
		size_t j = c.off + i;
		float b = momentum != 0.0f ? buf[j] : 0.0f;
		sgd_one(param[j], b, grad[j], lr, momentum, damp, w, nesterov);
		if (momentum != 0.0f)
			buf[j] = b;
	}
}

// part[block] = its sum (common.cuh's fold_rows adds them in order).
__global__ void sumsq_k(double *part, const float *x, size_t n)
{
	__shared__ double buf[32];
	double s = 0;
	FOR_N(i, n) s += (double)x[i] * x[i];
	s = block_sum(s, buf);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

__global__ void scale_k(float *x, float a, size_t n)
{
	FOR_N(i, n) x[i] *= a;
}

unsigned row_threads(int K)
{
	unsigned t = 32;
	while (t < 1024 && (int)t < K)
		t *= 2;
	return t;
}

} // namespace

extern "C" {

void dropout_forward_cuda(float *out, uint8_t *mask, const float *in, float p,
			  uint64_t seed, size_t n, tk_stream s)
{
	if (!n)
		return;
	float scale = 1.0f / (float)(1.0 - (double)p);
	dropout_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, mask, in, p, scale,
						       seed, n);
	LAUNCH_CHECK();
}

void dropout_backward_cuda(float *din, const float *dout, const uint8_t *mask,
			   float p, size_t n, tk_stream s)
{
	if (!n)
		return;
	float scale = 1.0f / (float)(1.0 - (double)p);
	dropout_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, mask, scale, n);
	LAUNCH_CHECK();
}

void droppath_forward_cuda(float *out, uint8_t *mask, const float *in, float p,
			   uint64_t seed, int B, size_t per, tk_stream s)
{
	size_t n = (size_t)B * per;
	if (!n)
		return;
	droppath_flags<<<(B + 255) / 256, 256, 0, s>>>(mask, p, seed, B);
	LAUNCH_CHECK();
	droppath_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(
	    out, mask, in, (float)(1.0 - (double)p), per, n);
	LAUNCH_CHECK();
}

void droppath_backward_cuda(float *din, const float *dout, const uint8_t *mask,
			    float p, int B, size_t per, tk_stream s)
{
	size_t n = (size_t)B * per;
	if (!n)
		return;
	droppath_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(
	    din, dout, mask, (float)(1.0 - (double)p), per, n);
	LAUNCH_CHECK();
}

void arcface_forward_cuda(float *logits, const float *cos, const int32_t *label,
			  float sc, float m, float eps, int N, int K, tk_stream s)
{
	size_t n = (size_t)N * K;
	if (!n)
		return;
	arc a = {sc, m, eps, (float)(M_PI - (double)m)};
	arcface_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(logits, cos, label, a, K, n);
	LAUNCH_CHECK();
}

void arcface_backward_cuda(float *dcos, const float *dlogits, const float *cos,
			   const int32_t *label, float sc, float m, float eps,
			   int N, int K, tk_stream s)
{
	size_t n = (size_t)N * K;
	if (!n)
		return;
	arc a = {sc, m, eps, (float)(M_PI - (double)m)};
	arcface_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(dcos, dlogits, cos, label,
						       a, K, n);
	LAUNCH_CHECK();
}

void cross_entropy_forward_cuda(float *loss, float *prob, const float *logits,
				const int32_t *label, int N, int K, tk_stream s)
{
	if (N <= 0)
		return;
	ce_fwd<<<N, row_threads(K), 0, s>>>(loss, prob, logits, label, K);
	LAUNCH_CHECK();
}

void cross_entropy_backward_cuda(float *dlogits, const float *prob,
				 const int32_t *label, float scale, int N, int K,
				 tk_stream s)
{
	size_t n = (size_t)N * K;
	if (!n)
		return;
	ce_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(dlogits, prob, label, scale, K, n);
	LAUNCH_CHECK();
}

void sgd_update_cuda(float *param, float *buf, const float *grad, float lr,
		     float momentum, float dampening, float wd, int nesterov,
		     size_t n, tk_stream s)
{
	if (!n)
		return;
	sgd<<<tk::blocks(n, 256), 256, 0, s>>>(param, buf, grad, lr, momentum,
					       1.0f - dampening, wd, nesterov, n);
	LAUNCH_CHECK();
}

void sgd_update_runs_cuda(float *param, float *buf, const float *grad,
			  const struct sgd_run *runs, int nruns, float lr,
			  float momentum, float dampening, float wd,
			  int nesterov, tk_stream s)
{
	// The chunks' table on the device, sent again only when it changes
	// (a model's is the same every step).
	static std::vector<sgd_chunk> *sent = new std::vector<sgd_chunk>;
	static sgd_chunk *dtab;
	static size_t cap;
	std::vector<sgd_chunk> t;
	for (int r = 0; r < nruns; r++)
		for (size_t o = 0; o < runs[r].numel; o += SGD_CHUNK) {
			size_t left = runs[r].numel - o;
			t.push_back(sgd_chunk{runs[r].offset + o,
					      (unsigned)(left < SGD_CHUNK ? left : SGD_CHUNK),
					      (unsigned)(runs[r].decay != 0)});
		}
	if (t.empty())
		return;
	if (t.size() != sent->size() ||
	    memcmp(t.data(), sent->data(), t.size() * sizeof t[0])) {
		if (t.size() > cap) {
			CUDA_CHECK(cudaStreamSynchronize(s)); // the old table's readers
			CUDA_CHECK(cudaFree(dtab));
			CUDA_CHECK(cudaMalloc(&dtab, t.size() * sizeof t[0]));
			cap = t.size();
		}
		CUDA_CHECK(cudaMemcpyAsync(dtab, t.data(), t.size() * sizeof t[0],
					   cudaMemcpyHostToDevice, s));
		CUDA_CHECK(cudaStreamSynchronize(s)); // t goes out of scope
		*sent = t;
	}
	sgd_chunks<<<(unsigned)t.size(), 256, 0, s>>>(param, buf, grad, dtab, lr,
						       momentum, 1.0f - dampening, wd,
						       nesterov);
	LAUNCH_CHECK();
}

double sumsq_cuda(const float *x, size_t n, tk_stream s)
{
	if (!n) {
		CUDA_CHECK(cudaStreamSynchronize(s)); // it waits, whatever n
		return 0;
	}
	double *d = (double *)tk::workspace(sizeof(double)), h = 0;
	unsigned b = tk::blocks(n, 256);
	b = b < 4096 ? b : 4096;
	double *part = tk::rows_of(d, b, 1);
	sumsq_k<<<b, 256, 0, s>>>(part, x, n);
	LAUNCH_CHECK();
	tk::fold_rows(d, part, b, 1, false, s);
	CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
	return h;
}

void scale_inplace_cuda(float *x, float a, size_t n, tk_stream s)
{
	if (!n)
		return;
	scale_k<<<tk::blocks(n, 256), 256, 0, s>>>(x, a, n);
	LAUNCH_CHECK();
}

} // extern "C"
