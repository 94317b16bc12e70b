// norm.cu - batch norm (evaluation; training over [B, C, S] in halves
// for SyncBatchNorm), layer norm and L2 normalisation (norm.h), with their
// gradients.  Statistics in float two-pass or double sums.
#include "kernels/cuda/common.cuh"
#include "kernels/norm.h"

namespace {

const int CT = 32, RT = 16; // column reductions: 32 columns x 16 rows

// Column sums of dout and of dout * xhat, xhat = (in - mean) * rstd with
// per-column (bn1d) or per-row (layer norm: row_stats) statistics.
__global__ void col_dsums(float *sdy, float *sdyx, const float *dout,
			  const float *in, const float *mean, const float *rstd,
			  int row_stats, int N, int C)
{
	__shared__ float s1[RT][CT + 1], s2[RT][CT + 1];
	int c = blockIdx.x * CT + threadIdx.x;
	float a = 0, b = 0;
	if (c < C)
		for (int r = threadIdx.y; r < N; r += RT) {
			size_t i = (size_t)r * C + c;
			int k = row_stats ? r : c;
			float xh = (in[i] - mean[k]) * rstd[k];
			a += dout[i];
			b += dout[i] * xh;
		}
	s1[threadIdx.y][threadIdx.x] = a;
	s2[threadIdx.y][threadIdx.x] = b;
	__syncthreads();
	if (threadIdx.y == 0 && c < C) {
		for (int k = 1; k < RT; k++) {
			a += s1[k][threadIdx.x];
			b += s2[k][threadIdx.x];
		}
		sdy[c] += a;
		sdyx[c] += b;
	}
}


// One block per row: two-pass mean and variance.
__global__ void ln_fwd(float *out, float *mean, float *rstd, const float *in,
		       const float *w, const float *b, float eps, int C)
{
	__shared__ float buf[32];
	const float *x = in + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	float s = 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		s += x[i];
	float m = block_sum(s, buf) / C;
	float v = 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		v += (x[i] - m) * (x[i] - m);
	v = block_sum(v, buf) / C;
	float rs = rsqrtf(v + eps);
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		y[i] = (x[i] - m) * rs * w[i] + b[i];
	if (threadIdx.x == 0) {
		if (mean)
			mean[blockIdx.x] = m;
		if (rstd)
			rstd[blockIdx.x] = rs;
	}
}

// din += rstd (g - mean(g) - xhat mean(g xhat)), g = dout * w.
__global__ void ln_bwd(float *din, const float *dout, const float *in,
		       const float *w, const float *mean, const float *rstd,
		       int C)
{
	__shared__ float buf[32];
	size_t r0 = (size_t)blockIdx.x * C;
	float m = mean[blockIdx.x], rs = rstd[blockIdx.x];
	float a = 0, b = 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		float g = dout[r0 + i] * w[i];
		a += g;
		b += g * (in[r0 + i] - m) * rs;
	}
	a = block_sum(a, buf) / C;
	b = block_sum(b, buf) / C;
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		float g = dout[r0 + i] * w[i];
		float xh = (in[r0 + i] - m) * rs;
		din[r0 + i] += rs * (g - a - xh * b);
	}
}

__global__ void l2_fwd(float *out, const float *in, float eps, int C)
{
	__shared__ double buf[32];
	size_t r0 = (size_t)blockIdx.x * C;
	double s = 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		s += (double)in[r0 + i] * in[r0 + i];
	float n = (float)sqrt(block_sum(s, buf));
	n = n < eps ? eps : n;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		out[r0 + i] = in[r0 + i] / n;
}

// y = x / max(|x|, eps): din += (dy - y (dy . y)) / |x| above eps, dy /
// eps below (the norm is then a constant).
__global__ void l2_bwd(float *din, const float *dout, const float *in,
		       float eps, int C)
{
	__shared__ double buf[32];
	size_t r0 = (size_t)blockIdx.x * C;
	double s = 0, d = 0;
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		s += (double)in[r0 + i] * in[r0 + i];
		d += (double)in[r0 + i] * dout[r0 + i];
	}
	s = block_sum(s, buf);
	d = block_sum(d, buf);
	double n = sqrt(s);
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		if (n > eps)
			din[r0 + i] += (float)((dout[r0 + i] - in[r0 + i] * d / s) / n);
		else
			din[r0 + i] += dout[r0 + i] / eps;
	}
}

// ---- BatchNorm2d, NCS: block (c, chunk) sums a chunk of the B*S
// values of channel c; the chunks' sums add in order (common.cuh's
// fold_rows), so a batch's statistics and gradients are the same bits
// every run ----

const int BN_CHUNK = 16384;

__global__ void bn_stats(double *sums, const float *in, int B, int C,
			 int S, channel_of ch)
{
	__shared__ double buf[32];
	int c = blockIdx.x;
	size_t total = (size_t)B * S;
	size_t j0 = (size_t)blockIdx.y * BN_CHUNK;
	size_t j1 = j0 + BN_CHUNK < total ? j0 + BN_CHUNK : total;
	double a = 0, b = 0;
	for (size_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
		size_t bi, p;
		ch.split(j, &bi, &p);
		double x = in[(bi * C + c) * S + p];
		a += x;
		b += x * x;
	}
	a = block_sum(a, buf);
	b = block_sum(b, buf);
	if (threadIdx.x == 0) {
		*row_slot(sums, 2 * (size_t)C, c) = a;
		*row_slot(sums, 2 * (size_t)C, C + c) = b;
	}
}

__global__ void bn_finish(float *mean, float *rstd, float *rmean,
			    float *rvar, const double *sums, double count,
			    double momentum, float eps, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	bn_stats_from_sums(mean, rstd, rmean, rvar, sums, count, momentum, eps, C, c);
}

// dout through the ReLU whose output is mask (NULL: none): relu_backward's
// rule.
__device__ inline float gated(const float *dout, const float *mask, size_t i)
{
	return !mask || mask[i] > 0.0f ? dout[i] : 0.0f;
}

__global__ void bn_dsums(double *sums, const float *dout, const float *mask,
			 const float *in, const float *mean, const float *rstd,
			 int B, int C, int S, channel_of ch)
{
	__shared__ double buf[32];
	int c = blockIdx.x;
	size_t total = (size_t)B * S;
	size_t j0 = (size_t)blockIdx.y * BN_CHUNK;
	size_t j1 = j0 + BN_CHUNK < total ? j0 + BN_CHUNK : total;
	float m = mean[c], rs = rstd[c];
	double a = 0, b = 0;
	for (size_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
		size_t bi, p;
		ch.split(j, &bi, &p);
		size_t i = (bi * C + c) * S + p;
		float g = gated(dout, mask, i);
		a += g;
		b += (double)g * ((in[i] - m) * rs);
	}
	a = block_sum(a, buf);
	b = block_sum(b, buf);
	if (threadIdx.x == 0) {
		*row_slot(sums, 2 * (size_t)C, c) = a;
		*row_slot(sums, 2 * (size_t)C, C + c) = b;
	}
}

__global__ void bn_dparams(float *dgamma, float *dbeta, const double *sums,
			     int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	dbeta[c] += (float)sums[c];
	dgamma[c] += (float)sums[C + c];
}

// ---- BatchNorm2d NCHW's element-wise passes (float) ----

__global__ void bn_norm(float *out, const float *in, const float *mean,
			const float *rstd, const float *gamma, const float *beta,
			int relu, channel_of ch, size_t n)
{
	FOR_N(i, n)
	{
		int c = ch(i);
		float v = (in[i] - mean[c]) * rstd[c] * gamma[c] + beta[c];
		out[i] = !relu || v > 0.0f ? v : 0.0f;
	}
}

// Evaluation: the running statistics, a ReLU after with relu.
template <typename T>
__global__ void bn_eval(T *out, const T *in, const float *gamma,
			 const float *beta, const float *mean, const float *var,
			 float eps, int relu, channel_of ch, size_t n)
{
	FOR_N(i, n)
	{
		int c = ch(i);
		float a = gamma[c] / sqrtf(var[c] + eps);
		float b = beta[c] - mean[c] * a;
		float v = to_f(in[i]) * a + b;
		out[i] = from_f<T>(!relu || v > 0.0f ? v : 0.0f);
	}
}

// The backward's means of dy and dy * xhat, from the all-reduced sums:
// mdy[c], then mdyx at mdy + C.  Once a channel (not a division in
// double for every element: on an H200 those took about half of the
// backward pass).
__global__ void bn_dmeans(float *mdy, const double *sums, double count, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	mdy[c] = (float)(sums[c] / count);
	mdy[C + c] = (float)(sums[C + c] / count);
}

// gated's rule for a value g of dy and m of the ReLU's output (mask:
// whether there is one)
template <typename T>
__device__ inline float gate(float g, bool mask, T m)
{
	return !mask || to_f(m) > 0.0f ? g : 0.0f;
}

// din (+)= gamma rstd (dy - mdy - xhat mdyx); dout through the ReLU
// whose output is mask (NULL: none), relu_backward's rule.
__global__ void bn_bwd(float *din, int add, const float *dout,
		       const float *mask, const float *in, const float *mean,
		       const float *rstd, const float *gamma, const float *mdy,
		       int C, channel_of ch, size_t n)
{
	FOR_N(i, n)
	{
		int c = ch(i);
		float xh = (in[i] - mean[c]) * rstd[c];
		float gk = gated(dout, mask, i);
		float v = gamma[c] * rstd[c] * (gk - mdy[c] - xh * mdy[C + c]);
		// 0 + v when overwriting: the CPU's zeroed buffer, to the bit
		din[i] = (add ? din[i] : 0.0f) + v;
	}
}

// ---- BatchNorm2d channels-last: activations [rows, C] of the
// activation type (the training backbone under bf16).  Every pass has
// the same shape (cl_shape): a block of 256 threads takes GB groups of V
// adjacent channels (G = C / V groups in all; V values a thread, 16
// bytes, where the arrays allow; GB a power of two, at most 256) and R =
// 256 / GB rows at a time, down its chunk of rows.  So a thread's
// channels stay the same: their statistics and coefficients sit in its
// registers, loaded once.  Sums are double, each thread's in row order,
// then a block's threads' in order, then the chunks' (fold_rows): the
// same bits every run, on any GPU (the chunks depend on rows and C
// alone). ----

// About this many blocks a pass (two or three waves of an H200's 132
// SMs), a constant so that the sums' order is the same on every GPU.
const int CL_BLOCKS = 512;

struct cl_shape {
	int GB;
	long chunk;
	dim3 grid;
	cl_shape(long rows, int C, int V)
	{
		int G = C / V;
		GB = 1;
		while (GB * 2 <= G && GB < 256)
			GB *= 2;
		int R = 256 / GB;
		unsigned gx = (unsigned)((G + GB - 1) / GB);
		long want = CL_BLOCKS / gx > 1 ? CL_BLOCKS / gx : 1;
		long steps = (rows + R - 1) / R; // row steps of R in all
		if (want > steps)
			want = steps > 0 ? steps : 1;
		chunk = steps ? (steps + want - 1) / want * R : R;
		grid = dim3(gx, (unsigned)((rows + chunk - 1) / chunk));
	}
};

// The thread's first channel (C or more: none) and its rows r0, r0 + R,
// ... below r1.
struct cl_place {
	int c0, R;
	long r0, r1;
	__device__ cl_place(int V, int GB, long chunk, long rows)
	{
		c0 = (blockIdx.x * GB + threadIdx.x % GB) * V;
		R = blockDim.x / GB;
		long b = (long)blockIdx.y * chunk;
		r0 = b + threadIdx.x / GB;
		r1 = b + chunk < rows ? b + chunk : rows;
	}
};

// Sums of x (and x^2) per column, or with dsums of the ReLU-gated dy and
// dy * xhat.
template <typename T, bool dsums, int V>
__global__ void __launch_bounds__(256)
    cl_sums(double *sums, const T *x, const T *dout, const T *mask,
	    const float *mean, const float *rstd, long rows, int C, int GB,
	    long chunk)
{
	typedef packed<T, V> P;
	__shared__ double s1[256 * V], s2[256 * V];
	cl_place at(V, GB, chunk, rows);
	double a[V], b[V];
	float m[V], rs[V];
	bool on = at.c0 < C;
	for (int k = 0; k < V; k++) {
		a[k] = b[k] = 0;
		m[k] = dsums && on ? mean[at.c0 + k] : 0.0f;
		rs[k] = dsums && on ? rstd[at.c0 + k] : 0.0f;
	}
	UNROLL(4)
	for (long r = on ? at.r0 : at.r1; r < at.r1; r += at.R) {
		size_t i = ((size_t)r * C + at.c0) / V;
		P xv = ((const P *)x)[i], gv, mv;
		if (dsums) {
			gv = ((const P *)dout)[i];
			if (mask)
				mv = ((const P *)mask)[i];
		}
		for (int k = 0; k < V; k++) {
			float v = to_f(xv.v[k]);
			if (dsums) {
				float g = gate(to_f(gv.v[k]), mask, mv.v[k]);
				a[k] += g;
				b[k] += (double)g * ((v - m[k]) * rs[k]);
			} else {
				a[k] += v;
				b[k] += (double)v * v;
			}
		}
	}
	for (int k = 0; k < V; k++) {
		s1[threadIdx.x * V + k] = a[k];
		s2[threadIdx.x * V + k] = b[k];
	}
	__syncthreads();
	// column q of the block's GB * V: its R threads' sums in order
	for (int q = threadIdx.x; q < GB * V; q += blockDim.x) {
		int c = blockIdx.x * GB * V + q;
		if (c >= C)
			continue;
		int t = q / V, k = q % V;
		double u = 0, w = 0;
		for (int y = 0; y < at.R; y++) {
			u += s1[(t + y * GB) * V + k];
			w += s2[(t + y * GB) * V + k];
		}
		*row_slot(sums, 2 * (size_t)C, c) = u;
		*row_slot(sums, 2 * (size_t)C, C + c) = w;
	}
}

template <typename T, int V>
__global__ void __launch_bounds__(256)
    cl_norm(T *out, const T *in, const float *mean, const float *rstd,
	    const float *gamma, const float *beta, int relu, long rows, int C,
	    int GB, long chunk)
{
	typedef packed<T, V> P;
	cl_place at(V, GB, chunk, rows);
	if (at.c0 >= C)
		return;
	float m[V], rs[V], g[V], b[V];
	for (int k = 0; k < V; k++) {
		m[k] = mean[at.c0 + k];
		rs[k] = rstd[at.c0 + k];
		g[k] = gamma[at.c0 + k];
		b[k] = beta[at.c0 + k];
	}
	UNROLL(4)
	for (long r = at.r0; r < at.r1; r += at.R) {
		size_t i = ((size_t)r * C + at.c0) / V;
		P x = ((const P *)in)[i], y;
		for (int k = 0; k < V; k++) {
			float v = (to_f(x.v[k]) - m[k]) * rs[k] * g[k] + b[k];
			y.v[k] = from_f<T>(!relu || v > 0.0f ? v : 0.0f);
		}
		((P *)out)[i] = y;
	}
}

// din = gamma rstd (dy - mdy - xhat mdyx), bn_bwd's arithmetic
template <typename T, int V>
__global__ void __launch_bounds__(256)
    cl_bwd(T *din, const T *dout, const T *mask, const T *in,
	   const float *mean, const float *rstd, const float *gamma,
	   const float *mdy, long rows, int C, int GB, long chunk)
{
	typedef packed<T, V> P;
	cl_place at(V, GB, chunk, rows);
	if (at.c0 >= C)
		return;
	float m[V], rs[V], gr[V], my[V], myx[V];
	for (int k = 0; k < V; k++) {
		int c = at.c0 + k;
		m[k] = mean[c];
		rs[k] = rstd[c];
		gr[k] = gamma[c] * rstd[c];
		my[k] = mdy[c];
		myx[k] = mdy[C + c];
	}
	UNROLL(4)
	for (long r = at.r0; r < at.r1; r += at.R) {
		size_t i = ((size_t)r * C + at.c0) / V;
		P x = ((const P *)in)[i], g = ((const P *)dout)[i], o, mv;
		if (mask)
			mv = ((const P *)mask)[i];
		for (int k = 0; k < V; k++) {
			float xh = (to_f(x.v[k]) - m[k]) * rs[k];
			float gk = gate(to_f(g.v[k]), mask, mv.v[k]);
			o.v[k] = from_f<T>(0.0f + gr[k] * (gk - my[k] - xh * myx[k]));
		}
		((P *)din)[i] = o;
	}
}

template <typename T, bool dsums>
void launch_sums(double *sums, const void *x, const void *dout,
		 const void *mask, const float *mean, const float *rstd,
		 long rows, int C, tk_stream s)
{
	if (rows <= 0) { // no rows: sums of nothing
		CUDA_CHECK(cudaMemsetAsync(sums, 0, 2 * (size_t)C * sizeof *sums, s));
		return;
	}
	tk::by_width<T>(
	    [&](auto, auto v) {
		    cl_shape sh(rows, C, v());
		    double *part = tk::rows_of(sums, sh.grid.y, 2 * (size_t)C);
		    cl_sums<T, dsums, v()><<<sh.grid, 256, 0, s>>>(
			part, (const T *)x, (const T *)dout, (const T *)mask, mean,
			rstd, rows, C, sh.GB, sh.chunk);
		    LAUNCH_CHECK();
		    tk::fold_rows(sums, part, sh.grid.y, 2 * (size_t)C, false, s);
	    },
	    C, 0, x, dout, mask);
}

unsigned row_threads(int C)
{
	unsigned t = 32;
	while (t < 512 && (int)t < C)
		t *= 2;
	return t;
}

} // namespace

extern "C" {

void batchnorm1d_forward_cuda(float *out, const float *in, const float *gamma,
			      const float *beta, const float *mean,
			      const float *var, float eps, int N, int C,
			      tk_stream s)
{
	batchnorm_eval_forward_cuda(out, in, gamma, beta, mean, var, eps, N, C, 1,
				    s);
}

void batchnorm_eval_forward_cuda(float *out, const float *in,
				 const float *gamma, const float *beta,
				 const float *mean, const float *var, float eps,
				 int B, int C, int S, tk_stream s)
{
	size_t n = (size_t)B * C * S;
	if (!n)
		return;
	bn_eval<float><<<tk::blocks(n, 256), 256, 0, s>>>(
	    out, in, gamma, beta, mean, var, eps, 0, channel_of(n, C, (size_t)S), n);
	LAUNCH_CHECK();
}

void batchnorm_train_forward_cuda(float *out, float *bmean, float *brstd,
				  float *running_mean, float *running_var,
				  const float *in, const float *gamma,
				  const float *beta, float eps, double momentum,
				  int relu, int B, int C, int S, tk_stream s)
{
	double *sums = (double *)tk::workspace(2 * (size_t)C * sizeof(double));
	batchnorm_stats_cuda(sums, in, B, C, S, s);
	batchnorm_apply_cuda(out, bmean, brstd, running_mean, running_var, in,
			     sums, gamma, beta, (double)B * S, momentum, eps, relu,
			     B, C, S, s);
}

void batchnorm_backward_cuda(float *din, int din_add, float *dgamma,
			     float *dbeta, const float *dout, const float *mask,
			     const float *in, const float *bmean,
			     const float *brstd, const float *gamma, int B, int C,
			     int S, tk_stream s)
{
	double *sums = (double *)tk::workspace(2 * (size_t)C * sizeof(double));
	batchnorm_backward_reduce_cuda(sums, dgamma, dbeta, dout, mask, in, bmean,
				       brstd, B, C, S, s);
	if (din)
		batchnorm_backward_apply_cuda(din, din_add, dout, mask, in, bmean,
					      brstd, gamma, sums, (double)B * S, B, C,
					      S, s);
}

void layernorm_forward_cuda(float *out, float *mean, float *rstd,
			    const float *in, const float *weight,
			    const float *bias, float eps, int N, int C,
			    tk_stream s)
{
	if (N <= 0)
		return;
	ln_fwd<<<N, row_threads(C), 0, s>>>(out, mean, rstd, in, weight, bias,
					    eps, C);
	LAUNCH_CHECK();
}

void layernorm_backward_cuda(float *din, float *dweight, float *dbias,
			     const float *dout, const float *in,
			     const float *weight, const float *mean,
			     const float *rstd, int N, int C, tk_stream s)
{
	if (N <= 0)
		return;
	if (din) {
		ln_bwd<<<N, row_threads(C), 0, s>>>(din, dout, in, weight, mean,
						    rstd, C);
		LAUNCH_CHECK();
	}
	col_dsums<<<(C + CT - 1) / CT, dim3(CT, RT), 0, s>>>(
	    dbias, dweight, dout, in, mean, rstd, 1, N, C);
	LAUNCH_CHECK();
}

void l2norm_forward_cuda(float *out, const float *in, float eps, int N, int C,
			 tk_stream s)
{
	if (N <= 0)
		return;
	l2_fwd<<<N, row_threads(C), 0, s>>>(out, in, eps, C);
	LAUNCH_CHECK();
}

void l2norm_backward_cuda(float *din, const float *dout, const float *in,
			  float eps, int N, int C, tk_stream s)
{
	if (N <= 0)
		return;
	l2_bwd<<<N, row_threads(C), 0, s>>>(din, dout, in, eps, C);
	LAUNCH_CHECK();
}

void batchnorm_stats_cuda(double *sums, const float *in, int B, int C,
			    int S, tk_stream s)
{
	size_t total = (size_t)B * S;
	dim3 grid(C, (unsigned)((total + BN_CHUNK - 1) / BN_CHUNK));
	double *part = tk::rows_of(sums, grid.y, 2 * (size_t)C);
	bn_stats<<<grid, 256, 0, s>>>(part, in, B, C, S,
				      channel_of(total * C, C, (size_t)S));
	LAUNCH_CHECK();
	tk::fold_rows(sums, part, grid.y, 2 * (size_t)C, false, s);
}

void batchnorm_apply_cuda(float *out, float *mean, float *rstd,
			  float *running_mean, float *running_var,
			  const float *in, const double *sums,
			  const float *gamma, const float *beta, double count,
			  double momentum, float eps, int relu, int B, int C,
			  int S, tk_stream s)
{
	bn_finish<<<(C + 255) / 256, 256, 0, s>>>(
	    mean, rstd, running_mean, running_var, sums, count, momentum, eps, C);
	LAUNCH_CHECK();
	size_t n = (size_t)B * C * S;
	bn_norm<<<tk::blocks(n, 256), 256, 0, s>>>(
	    out, in, mean, rstd, gamma, beta, relu, channel_of(n, C, (size_t)S), n);
	LAUNCH_CHECK();
}

void batchnorm_backward_reduce_cuda(double *sums, float *dgamma,
				    float *dbeta, const float *dout,
				    const float *mask, const float *in,
				    const float *mean, const float *rstd, int B,
				    int C, int S, tk_stream s)
{
	size_t total = (size_t)B * S;
	dim3 grid(C, (unsigned)((total + BN_CHUNK - 1) / BN_CHUNK));
	double *part = tk::rows_of(sums, grid.y, 2 * (size_t)C);
	bn_dsums<<<grid, 256, 0, s>>>(part, dout, mask, in, mean, rstd, B, C, S,
				      channel_of(total * C, C, (size_t)S));
	LAUNCH_CHECK();
	tk::fold_rows(sums, part, grid.y, 2 * (size_t)C, false, s);
	bn_dparams<<<(C + 255) / 256, 256, 0, s>>>(dgamma, dbeta, sums, C);
	LAUNCH_CHECK();
}

void batchnorm_backward_apply_cuda(float *din, int din_add,
				   const float *dout, const float *mask,
				   const float *in,
				   const float *mean, const float *rstd,
				   const float *gamma, const double *sums,
				   double count, int B, int C, int S,
				   tk_stream s)
{
	size_t n = (size_t)B * C * S;
	float *mdy = (float *)tk::partials(2 * (size_t)C * sizeof(float));
	bn_dmeans<<<(C + 255) / 256, 256, 0, s>>>(mdy, sums, count, C);
	LAUNCH_CHECK();
	bn_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, din_add, dout, mask, in,
						   mean, rstd, gamma, mdy, C,
						   channel_of(n, C, (size_t)S), n);
	LAUNCH_CHECK();
}

void batchnorm_act_stats_cuda(double *sums, const void *in, long rows, int C,
			      tk_stream s)
{
	if (tk::act_bf16())
		launch_sums<bf16, false>(sums, in, nullptr, nullptr, nullptr, nullptr,
					 rows, C, s);
	else
		launch_sums<float, false>(sums, in, nullptr, nullptr, nullptr, nullptr,
					  rows, C, s);
}

void batchnorm_act_apply_cuda(void *out, float *mean, float *rstd,
			      float *running_mean, float *running_var,
			      const void *in, const double *sums,
			      const float *gamma, const float *beta,
			      double count, double momentum, float eps,
			      int relu, long rows, int C, tk_stream s)
{
	bn_finish<<<(C + 255) / 256, 256, 0, s>>>(
	    mean, rstd, running_mean, running_var, sums, count, momentum, eps, C);
	LAUNCH_CHECK();
	if (!rows || !C)
		return;
	tk::by_act(
	    [&](auto t, auto v) {
		    typedef std::remove_pointer_t<decltype(t)> T;
		    cl_shape sh(rows, C, v());
		    cl_norm<T, v()><<<sh.grid, 256, 0, s>>>(
			(T *)out, (const T *)in, mean, rstd, gamma, beta, relu, rows, C,
			sh.GB, sh.chunk);
	    },
	    C, 0, out, in);
	LAUNCH_CHECK();
}

void batchnorm_act_eval_cuda(void *out, const void *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int relu, long rows,
			     int C, tk_stream s)
{
	size_t n = (size_t)rows * C;
	if (!n)
		return;
	channel_of ch(n, C, 1);
	if (tk::act_bf16())
		bn_eval<bf16><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (bf16 *)out, (const bf16 *)in, gamma, beta, mean, var, eps, relu,
		    ch, n);
	else
		bn_eval<float><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (float *)out, (const float *)in, gamma, beta, mean, var, eps, relu,
		    ch, n);
	LAUNCH_CHECK();
}

void batchnorm_act_backward_reduce_cuda(double *sums, float *dgamma,
					float *dbeta, const void *dout,
					const void *mask, const void *in,
					const float *mean, const float *rstd,
					long rows, int C, tk_stream s)
{
	if (tk::act_bf16())
		launch_sums<bf16, true>(sums, in, dout, mask, mean, rstd, rows, C, s);
	else
		launch_sums<float, true>(sums, in, dout, mask, mean, rstd, rows, C, s);
	bn_dparams<<<(C + 255) / 256, 256, 0, s>>>(dgamma, dbeta, sums, C);
	LAUNCH_CHECK();
}

void batchnorm_act_backward_apply_cuda(void *din, const void *dout,
				       const void *mask, const void *in,
				       const float *mean, const float *rstd,
				       const float *gamma, const double *sums,
				       double count, long rows, int C,
				       tk_stream s)
{
	if (!rows || !C)
		return;
	float *mdy = (float *)tk::partials(2 * (size_t)C * sizeof(float));
	bn_dmeans<<<(C + 255) / 256, 256, 0, s>>>(mdy, sums, count, C);
	LAUNCH_CHECK();
	tk::by_act(
	    [&](auto t, auto v) {
		    typedef std::remove_pointer_t<decltype(t)> T;
		    cl_shape sh(rows, C, v());
		    cl_bwd<T, v()><<<sh.grid, 256, 0, s>>>(
			(T *)din, (const T *)dout, (const T *)mask, (const T *)in, mean,
			rstd, gamma, mdy, rows, C, sh.GB, sh.chunk);
	    },
	    C, 0, din, dout, mask, in);
	LAUNCH_CHECK();
}

} // extern "C"
