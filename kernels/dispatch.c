/* dispatch.c - each dev_* op to the CPU kernel or to its CUDA twin; the
 * one place (with the tools' --device parsing it serves) that knows
 * whether CUDA is built in. */
#include "kernels/dispatch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dist.h"
#include "common/rank.h"
#include "common/threads.h"
#include "common/tk.h"
#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/dropout.h"
#include "kernels/image.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/nhwc.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/resize.h"
#include "kernels/scores.h"

#ifdef TK_CUDA
#include "kernels/cuda/cuda.h"
#define ST(dv) ((tk_stream)(dv)->stream)
#define ON(dv, cpu, cuda)                                                      \
	do {                                                                   \
		if ((dv)->kind == TK_DEV_CUDA) {                               \
			cuda;                                                  \
		} else {                                                       \
			cpu;                                                   \
		}                                                              \
	} while (0)
#else
#define ON(dv, cpu, cuda)                                                      \
	do {                                                                   \
		(void)(dv);                                                    \
		cpu;                                                           \
	} while (0)
#endif

int tk_dev_parse(struct tk_dev *dv, const char *device, const char *precision,
		 char *err, size_t errlen)
{
	memset(dv, 0, sizeof *dv);
	if (!device || !strcmp(device, "cpu")) {
		dv->kind = TK_DEV_CPU;
	} else if (!strncmp(device, "cuda", 4) &&
		   (device[4] == 0 || device[4] == ':')) {
		dv->kind = TK_DEV_CUDA;
		if (device[4] == ':') {
			char *end;
			long i = strtol(device + 5, &end, 10);
			if (!device[5] || *end || i < 0 || i > 1023) {
				snprintf(err, errlen, "--device %s: expected cuda:N", device);
				return -1;
			}
			dv->index = (int)i;
		}
		if (!tk_have_cuda()) {
			snprintf(err, errlen,
				 "--device %s: CUDA support is not built in (make CUDA=1)",
				 device);
			return -1;
		}
	} else {
		snprintf(err, errlen, "--device %s: expected cpu, cuda or cuda:N",
			 device);
		return -1;
	}
	static const char *names[] = {"fp32", "tf32", "bf16"};
	dv->precision = -1;
	for (int i = 0; i < 3; i++)
		if (!precision || !strcmp(precision, names[i])) {
			dv->precision = i;
			break;
		}
	if (dv->precision < 0) {
		snprintf(err, errlen, "--precision %s: expected fp32, tf32 or bf16",
			 precision);
		return -1;
	}
	if (dv->precision != 0 && dv->kind == TK_DEV_CPU) {
		snprintf(err, errlen, "--precision %s: the CPU computes in fp32 only",
			 precision);
		return -1;
	}
	return 0;
}

int tk_dev_cuda_count(void)
{
#ifdef TK_CUDA
	return tk_cuda_device_count();
#else
	return 0;
#endif
}

void tk_dev_open(struct tk_dev *dv)
{
#ifdef TK_CUDA
	if (dv->kind == TK_DEV_CUDA) {
		tk_cuda_init(dv->index);
		tk_cuda_set_precision((enum tk_precision)dv->precision);
		tk_cuda_set_deterministic(dv->deterministic);
		dv->stream = tk_cuda_stream_create();
		dv->copy = tk_cuda_stream_create();
		dv->copied = tk_cuda_event_create();
		for (int i = 0; i < 4; i++)
			dv->fence[i] = tk_cuda_event_create();
	}
#else
	(void)dv;
#endif
}

void tk_dev_close(struct tk_dev *dv)
{
#ifdef TK_CUDA
	if (dv->kind == TK_DEV_CUDA && dv->stream) {
		tk_cuda_sync(NULL);
		tk_cuda_event_destroy(dv->copied);
		for (int i = 0; i < 4; i++)
			tk_cuda_event_destroy(dv->fence[i]);
		tk_cuda_stream_destroy(dv->copy);
		tk_cuda_stream_destroy(dv->stream);
		dv->stream = dv->copy = dv->copied = NULL;
	}
#else
	(void)dv;
#endif
}

const char *tk_dev_describe(const struct tk_dev *dv)
{
	static char buf[640];
	static const char *names[] = {"fp32", "tf32", "bf16"};
#ifdef TK_CUDA
	if (dv->kind == TK_DEV_CUDA) {
		snprintf(buf, sizeof buf, "cuda:%d (%s), %s%s", dv->index,
			 tk_cuda_device_name(), names[dv->precision],
			 dv->deterministic ? ", deterministic" : "");
		return buf;
	}
#endif
	snprintf(buf, sizeof buf, "cpu (%d threads), %s", tk_threads(),
		 names[dv->precision < 0 ? 0 : dv->precision]);
	return buf;
}

/* ---- memory ---- */

void *dev_alloc(const struct tk_dev *dv, size_t bytes)
{
	void *p = NULL;
	ON(dv, p = xmalloc(bytes ? bytes : 1), p = tk_cuda_malloc(bytes));
	return p;
}

void dev_free(const struct tk_dev *dv, void *p)
{
	ON(dv, free(p), tk_cuda_free(p));
}

void *dev_host_alloc(const struct tk_dev *dv, size_t bytes)
{
	void *p = NULL;
	ON(dv, p = xmalloc(bytes ? bytes : 1), p = tk_cuda_host_alloc(bytes));
	return p;
}

void dev_host_free(const struct tk_dev *dv, void *p)
{
	ON(dv, free(p), tk_cuda_host_free(p));
}

void dev_upload(const struct tk_dev *dv, void *dst, const void *src,
		size_t bytes)
{
	ON(dv, memcpy(dst, src, bytes), tk_cuda_copy(dst, src, bytes, ST(dv)));
}

void dev_download(const struct tk_dev *dv, void *dst, const void *src,
		  size_t bytes)
{
	ON(dv, memcpy(dst, src, bytes),
	   (tk_cuda_copy(dst, src, bytes, ST(dv)), tk_cuda_sync(ST(dv))));
}

void dev_copy(const struct tk_dev *dv, void *dst, const void *src,
	      size_t bytes)
{
	ON(dv, memmove(dst, src, bytes), tk_cuda_copy(dst, src, bytes, ST(dv)));
}

static void copy_rows(void *dst, size_t dpitch, const void *src, size_t spitch,
		      size_t width, size_t rows)
{
	for (size_t r = 0; r < rows; r++)
		memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

void dev_upload_rows(const struct tk_dev *dv, void *dst, size_t dpitch,
		     const void *src, size_t spitch, size_t width, size_t rows)
{
	ON(dv, copy_rows(dst, dpitch, src, spitch, width, rows),
	   tk_cuda_copy2d(dst, dpitch, src, spitch, width, rows, ST(dv)));
}

void dev_download_rows(const struct tk_dev *dv, void *dst, size_t dpitch,
		       const void *src, size_t spitch, size_t width,
		       size_t rows)
{
	ON(dv, copy_rows(dst, dpitch, src, spitch, width, rows),
	   (tk_cuda_copy2d(dst, dpitch, src, spitch, width, rows, ST(dv)),
	    tk_cuda_sync(ST(dv))));
}

void dev_zero(const struct tk_dev *dv, void *dst, size_t bytes)
{
	ON(dv, memset(dst, 0, bytes), tk_cuda_memset(dst, 0, bytes, ST(dv)));
}

void dev_upload_async(const struct tk_dev *dv, void *dst, const void *src,
		      size_t bytes)
{
	ON(dv, memcpy(dst, src, bytes),
	   (tk_cuda_copy(dst, src, bytes, (tk_stream)dv->copy),
	    tk_cuda_event_record((tk_event)dv->copied, (tk_stream)dv->copy)));
}

void dev_upload_wait(const struct tk_dev *dv)
{
	ON(dv, (void)0, tk_cuda_stream_wait(ST(dv), (tk_event)dv->copied));
}

void dev_download_async(const struct tk_dev *dv, void *dst, const void *src,
			size_t bytes)
{
	ON(dv, memcpy(dst, src, bytes), tk_cuda_copy(dst, src, bytes, ST(dv)));
}

void dev_sync(const struct tk_dev *dv)
{
	ON(dv, (void)0, tk_cuda_sync(ST(dv)));
}

void dev_fence(const struct tk_dev *dv, int i)
{
	ON(dv, (void)i, tk_cuda_event_record((tk_event)dv->fence[i & 3], ST(dv)));
}

void dev_fence_wait(const struct tk_dev *dv, int i)
{
	ON(dv, (void)i, tk_cuda_event_sync((tk_event)dv->fence[i & 3]));
}

void dev_fill_rows(const struct tk_dev *dv, float *out, const float *row, int N,
		   int C)
{
	if (N <= 0)
		return;
	size_t rb = (size_t)C * sizeof *out;
	/* Row 0 from 'row' (host or device memory alike on the GPU), then
	 * doubling copies: log2(N) transfers. */
	ON(dv, memcpy(out, row, rb), tk_cuda_copy(out, row, rb, ST(dv)));
	for (size_t have = 1; have < (size_t)N;) {
		size_t n = have < (size_t)N - have ? have : (size_t)N - have;
		dev_copy(dv, out + have * C, out, n * rb);
		have += n;
	}
}

int dev_all_finite(const struct tk_dev *dv, const float *x, size_t n,
		   size_t *at)
{
	const float *h = x;
	float *buf = NULL;
	size_t chunk = n, base = 0;
	if (tk_dev_is_cuda(dv)) {
		chunk = n < ((size_t)1 << 22) ? n : (size_t)1 << 22;
		buf = xmalloc((chunk ? chunk : 1) * sizeof *buf);
	}
	int ok = 1;
	while (ok && base < n) {
		size_t len = n - base < chunk ? n - base : chunk;
		if (buf) {
			dev_download(dv, buf, x + base, len * sizeof *buf);
			h = buf;
		} else {
			h = x + base;
		}
		for (size_t i = 0; i < len; i++)
			if (!isfinite(h[i])) {
				if (at)
					*at = base + i;
				ok = 0;
				break;
			}
		base += len;
	}
	free(buf);
	return ok;
}

void dev_transpose(const struct tk_dev *dv, float *out, const float *in, int R,
		   int C)
{
	ON(dv,
	   for (int r = 0; r < R; r++) for (int c = 0; c < C; c++)
		   out[(size_t)c * R + r] = in[(size_t)r * C + c],
	   transpose_forward_cuda(out, in, R, C, ST(dv)));
}

/* ---- ops ---- */

/* The CPU's kernels accumulate only: a zeroing pass first there. */
static void cpu_fresh(float *p, size_t n, int add)
{
	if (p && !add)
		memset(p, 0, n * sizeof *p);
}

void dev_relu_forward(const struct tk_dev *dv, float *out, const float *in,
		      size_t n)
{
	ON(dv, relu_forward(out, in, n), relu_forward_cuda(out, in, n, ST(dv)));
}

void dev_relu_backward(const struct tk_dev *dv, float *din, int din_add,
		       const float *dout, const float *out, size_t n)
{
	ON(dv, (cpu_fresh(din, n, din_add), relu_backward(din, dout, out, n)),
	   relu_backward_cuda(din, din_add, dout, out, n, ST(dv)));
}

void dev_gelu_forward(const struct tk_dev *dv, float *out, const float *in,
		      size_t n)
{
	ON(dv, gelu_forward(out, in, n), gelu_forward_cuda(out, in, n, ST(dv)));
}

void dev_gelu_backward(const struct tk_dev *dv, float *din, const float *dout,
		       const float *in, size_t n)
{
	ON(dv, gelu_backward(din, dout, in, n),
	   gelu_backward_cuda(din, dout, in, n, ST(dv)));
}

void dev_add_forward(const struct tk_dev *dv, float *out, const float *a,
		     const float *b, size_t n)
{
	ON(dv, add_forward(out, a, b, n), add_forward_cuda(out, a, b, n, ST(dv)));
}

void dev_add_relu_forward(const struct tk_dev *dv, float *out, const float *a,
			  const float *b, size_t n)
{
	ON(dv, add_relu_forward(out, a, b, n),
	   add_relu_forward_cuda(out, a, b, n, ST(dv)));
}

void dev_softmax_forward(const struct tk_dev *dv, float *out, const float *in,
			 int N, int C)
{
	ON(dv, softmax_forward(out, in, N, C),
	   softmax_forward_cuda(out, in, N, C, ST(dv)));
}

void dev_softmax_backward(const struct tk_dev *dv, float *din,
			  const float *dout, const float *out, int N, int C)
{
	ON(dv, softmax_backward(din, dout, out, N, C),
	   softmax_backward_cuda(din, dout, out, N, C, ST(dv)));
}

void dev_attention_forward(const struct tk_dev *dv, float *out, float *att,
			   const float *q, const float *k, const float *v, int B,
			   int Nq, int Nk, int D, int heads)
{
	ON(dv, attention_forward(out, att, q, k, v, B, Nq, Nk, D, heads),
	   attention_forward_cuda(out, att, q, k, v, B, Nq, Nk, D, heads, ST(dv)));
}

void dev_attention_train_forward(const struct tk_dev *dv, float *out,
				 float *att, uint8_t *mask, const float *q,
				 const float *k, const float *v, float p,
				 uint64_t seed, int B, int Nq, int Nk, int D,
				 int heads)
{
	ON(dv,
	   attention_train_forward(out, att, mask, q, k, v, p, seed, B, Nq, Nk, D,
				   heads),
	   attention_train_forward_cuda(out, att, mask, q, k, v, p, seed, B, Nq,
					Nk, D, heads, ST(dv)));
}

void dev_attention_backward(const struct tk_dev *dv, float *dq, float *dk,
			    float *dv_, const float *dout, const float *att,
			    const uint8_t *mask, const float *q, const float *k,
			    const float *v, float p, int B, int Nq, int Nk, int D,
			    int heads)
{
	ON(dv,
	   attention_backward(dq, dk, dv_, dout, att, mask, q, k, v, p, B, Nq, Nk,
			      D, heads),
	   attention_backward_cuda(dq, dk, dv_, dout, att, mask, q, k, v, p, B, Nq,
				   Nk, D, heads, ST(dv)));
}

size_t dev_conv2d_backward_workspace(const struct tk_dev *dv,
				     struct conv2d_dims d)
{
	return tk_dev_is_cuda(dv) ? 0 : conv2d_backward_workspace(d, tk_threads());
}

void dev_conv2d_train_forward(const struct tk_dev *dv, float *out, float *work,
			      const float *in, const float *weight,
			      const float *bias, const float *residual,
			      int relu, struct conv2d_dims d)
{
	ON(dv, conv2d_train_forward(out, work, in, weight, bias, residual, relu, d),
	   conv2d_forward_cuda(out, work, in, weight, bias, residual, relu, d,
			       ST(dv)));
}

void dev_conv2d_backward(const struct tk_dev *dv, float *din, int din_add,
			 float *dweight, float *dbias, float *work,
			 const float *dout, const float *in,
			 const float *weight, struct conv2d_dims d)
{
	ON(dv,
	   (cpu_fresh(din, (size_t)d.B * d.C * d.H * d.W, din_add),
	    conv2d_backward(din, dweight, dbias, work, dout, in, weight, d)),
	   conv2d_backward_cuda(din, din_add, dweight, dbias, work, dout, in,
				weight, d, ST(dv)));
}

void dev_linear_forward(const struct tk_dev *dv, float *out, const float *in,
			const float *weight, const float *bias, int N, int IN,
			int OUT)
{
	ON(dv, linear_forward(out, in, weight, bias, N, IN, OUT),
	   linear_forward_cuda(out, in, weight, bias, N, IN, OUT, ST(dv)));
}

void dev_linear_backward(const struct tk_dev *dv, float *din, float *dweight,
			 float *dbias, const float *dout, const float *in,
			 const float *weight, int N, int IN, int OUT)
{
	ON(dv, linear_backward(din, dweight, dbias, dout, in, weight, N, IN, OUT),
	   linear_backward_cuda(din, dweight, dbias, dout, in, weight, N, IN, OUT,
				ST(dv)));
}

void dev_gemm(const struct tk_dev *dv, int ta, int tb, int M, int N, int K,
	      float alpha, const float *A, int lda, const float *B, int ldb,
	      float beta, float *C, int ldc)
{
	ON(dv, gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc),
	   gemm_cuda(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
		     ST(dv)));
}

void dev_batchnorm1d_forward(const struct tk_dev *dv, float *out,
			     const float *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int N, int C)
{
	ON(dv, batchnorm1d_forward(out, in, gamma, beta, mean, var, eps, N, C),
	   batchnorm1d_forward_cuda(out, in, gamma, beta, mean, var, eps, N, C,
				    ST(dv)));
}

void dev_batchnorm_eval_forward(const struct tk_dev *dv, float *out,
				const float *in, const float *gamma,
				const float *beta, const float *mean,
				const float *var, float eps, int B, int C, int S)
{
	ON(dv,
	   batchnorm_eval_forward(out, in, gamma, beta, mean, var, eps, B, C, S),
	   batchnorm_eval_forward_cuda(out, in, gamma, beta, mean, var, eps, B, C,
				       S, ST(dv)));
}

/* ---- SyncBatchNorm ---- */

static int group_cpu; /* the CPU's group is joined (common/dist.c) */

int dev_world(const struct tk_dev *dv)
{
#ifdef TK_CUDA
	if (tk_dev_is_cuda(dv))
		return tk_nccl_world();
#endif
	(void)dv;
	return group_cpu ? tk_dist_group_world() : 1;
}

/* SyncBatchNorm's halves even in one rank (TK_SYNCBN=1): the tests'
 * one-process reference for several ranks, the same formulas. */
static int bn_halves(const struct tk_dev *dv)
{
	static int forced = -1;
	if (forced < 0) {
		const char *e = getenv("TK_SYNCBN");
		forced = e && !strcmp(e, "1");
	}
	return forced || dev_world(dv) > 1;
}

/* The sums of every rank: 2C doubles of device memory, kept. */
static double *sync_sums(const struct tk_dev *dv, int C)
{
	static double *s;
	static int cap;
	if (C > cap) {
		dev_free(dv, s);
		s = dev_alloc(dv, 2 * (size_t)C * sizeof *s);
		cap = C;
	}
	return s;
}

/* The CPU's halves, as the GPU's (kernels/cuda/norm.cu): per channel the
 * sums of x and x^2 (double); from the ranks' sums, the statistics and
 * the normalisation; the backward's sums of dy and dy * xhat; din. */
static void bn_stats_cpu(double *sums, const float *in, int B, int C, int S)
{
	size_t cs = (size_t)C * S;
	for (int c = 0; c < C; c++) {
		double a = 0, q = 0;
		for (int b = 0; b < B; b++) {
			const float *x = in + b * cs + (size_t)c * S;
			for (int i = 0; i < S; i++) {
				a += x[i];
				q += (double)x[i] * x[i];
			}
		}
		sums[c] = a;
		sums[C + c] = q;
	}
}

static void bn_apply_cpu(float *out, float *mean, float *rstd, float *rmean,
			 float *rvar, const float *in, const double *sums,
			 const float *gamma, const float *beta, double count,
			 double momentum, float eps, int relu, int B, int C,
			 int S)
{
	for (int c = 0; c < C; c++)
		bn_stats_from_sums(mean, rstd, rmean, rvar, sums, count, momentum, eps, C, c);
	size_t cs = (size_t)C * S;
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (int i = 0; i < S; i++) {
				size_t k = b * cs + (size_t)c * S + i;
				float v = (in[k] - mean[c]) * rstd[c] * gamma[c] + beta[c];
				out[k] = !relu || v > 0.0f ? v : 0.0f;
			}
}

/* dout through the ReLU whose output is mask (NULL: none). */
static float gated(const float *dout, const float *mask, size_t k)
{
	return !mask || mask[k] > 0.0f ? dout[k] : 0.0f;
}

static void bn_dsums_cpu(double *sums, float *dgamma, float *dbeta,
			 const float *dout, const float *mask, const float *in,
			 const float *mean, const float *rstd, int B, int C,
			 int S)
{
	size_t cs = (size_t)C * S;
	for (int c = 0; c < C; c++) {
		double a = 0, q = 0;
		for (int b = 0; b < B; b++)
			for (int i = 0; i < S; i++) {
				size_t k = b * cs + (size_t)c * S + i;
				float g = gated(dout, mask, k);
				a += g;
				q += (double)g * ((in[k] - mean[c]) * rstd[c]);
			}
		sums[c] = a;
		sums[C + c] = q;
		dbeta[c] += (float)a;
		dgamma[c] += (float)q;
	}
}

static void bn_dapply_cpu(float *din, const float *dout, const float *mask,
			  const float *in, const float *mean, const float *rstd,
			  const float *gamma, const double *sums, double count,
			  int B, int C, int S)
{
	size_t cs = (size_t)C * S;
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			float mdy = (float)(sums[c] / count);
			float mdyx = (float)(sums[C + c] / count);
			for (int i = 0; i < S; i++) {
				size_t k = b * cs + (size_t)c * S + i;
				float xh = (in[k] - mean[c]) * rstd[c];
				din[k] += gamma[c] * rstd[c] *
					  (gated(dout, mask, k) - mdy - xh * mdyx);
			}
		}
}

void dev_batchnorm_train_forward(const struct tk_dev *dv, float *out,
				 float *bmean, float *brstd, float *running_mean,
				 float *running_var, const float *in,
				 const float *gamma, const float *beta,
				 float eps, double momentum, int relu, int B,
				 int C, int S)
{
	int world = dev_world(dv);
	if (bn_halves(dv)) {
		double *sums = sync_sums(dv, C);
		double count = (double)B * S * world;
		ON(dv, bn_stats_cpu(sums, in, B, C, S),
		   batchnorm_stats_cuda(sums, in, B, C, S, ST(dv)));
		dev_allreduce_f64(dv, sums, 2 * (size_t)C);
		ON(dv,
		   bn_apply_cpu(out, bmean, brstd, running_mean, running_var, in, sums,
				gamma, beta, count, momentum, eps, relu, B, C, S),
		   batchnorm_apply_cuda(out, bmean, brstd, running_mean, running_var,
					in, sums, gamma, beta, count, momentum, eps,
					relu, B, C, S, ST(dv)));
		return;
	}
	ON(dv,
	   batchnorm_train_forward(out, bmean, brstd, running_mean, running_var,
				   in, gamma, beta, eps, momentum, relu, B, C, S),
	   batchnorm_train_forward_cuda(out, bmean, brstd, running_mean,
					running_var, in, gamma, beta, eps,
					momentum, relu, B, C, S, ST(dv)));
}

void dev_batchnorm_backward(const struct tk_dev *dv, float *din, int din_add,
			    float *dgamma, float *dbeta, const float *dout,
			    const float *mask, const float *in,
			    const float *bmean, const float *brstd,
			    const float *gamma, int B, int C, int S)
{
	int world = dev_world(dv);
	ON(dv, cpu_fresh(din, (size_t)B * C * S, din_add), (void)0);
	if (bn_halves(dv)) {
		double *sums = sync_sums(dv, C);
		double count = (double)B * S * world;
		ON(dv,
		   bn_dsums_cpu(sums, dgamma, dbeta, dout, mask, in, bmean, brstd, B,
				C, S),
		   batchnorm_backward_reduce_cuda(sums, dgamma, dbeta, dout, mask, in,
						  bmean, brstd, B, C, S, ST(dv)));
		dev_allreduce_f64(dv, sums, 2 * (size_t)C);
		if (din)
			ON(dv,
			   bn_dapply_cpu(din, dout, mask, in, bmean, brstd, gamma, sums,
					 count, B, C, S),
			   batchnorm_backward_apply_cuda(din, din_add, dout, mask, in,
							 bmean, brstd, gamma, sums,
							 count, B, C, S, ST(dv)));
		return;
	}
	ON(dv,
	   batchnorm_backward(din, dgamma, dbeta, dout, mask, in, bmean, brstd,
			      gamma, B, C, S),
	   batchnorm_backward_cuda(din, din_add, dgamma, dbeta, dout, mask, in,
				   bmean, brstd, gamma, B, C, S, ST(dv)));
}

/* ---- channels-last training (GPU only) ---- */

int dev_train_nhwc(const struct tk_dev *dv)
{
	if (!tk_dev_is_cuda(dv))
		return 0;
	const char *e = getenv("TK_TRAIN_NHWC");
	if (e && (!strcmp(e, "0") || !strcmp(e, "1")))
		return *e == '1';
	return dv->precision == 2; /* bf16 */
}

/* The CPU build has these ops for the linker only: their arguments and
 * the sums' count go unused there. */
#ifdef TK_CUDA
#define GPU(dv, call) ON(dv, gpu_only(__func__), call)
#else
#define GPU(dv, call) ON(dv, gpu_only(__func__), (void)0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
static void gpu_only(const char *op)
{
	tk_die(TK_EXIT_IO, "internal error: %s on the CPU (channels-last "
			   "training runs on a GPU only)", op);
}

void dev_nchw_to_act(const struct tk_dev *dv, void *out, const float *in,
		     int B, int C, int ld, long HW)
{
	GPU(dv, nchw_to_act_cuda(out, in, B, C, ld, HW, ST(dv)));
}

void dev_act_to_nchw(const struct tk_dev *dv, float *out, const void *in,
		     int B, int C, int ld, long HW)
{
	GPU(dv, act_to_nchw_cuda(out, in, B, C, ld, HW, ST(dv)));
}

void dev_conv_act_weights(const struct tk_dev *dv, void *wa, const float *w,
			  int OC, int C, int ld, int K)
{
	GPU(dv, conv_weights_to_act_cuda(wa, w, OC, C, ld, K, ST(dv)));
}

void dev_conv_act_dweights(const struct tk_dev *dv, float *dw,
			   const void *dwa, int OC, int C, int ld, int K)
{
	GPU(dv, conv_dweights_from_act_cuda(dw, dwa, OC, C, ld, K, ST(dv)));
}

void dev_maxpool_act_forward(const struct tk_dev *dv, void *out, int *argmax,
			     const void *in, int B, int C, int H, int W, int K,
			     int stride, int pad)
{
	GPU(dv, maxpool2d_act_forward_cuda(out, argmax, in, B, C, H, W, K, stride,
					   pad, ST(dv)));
}

void dev_maxpool_act_backward(const struct tk_dev *dv, void *din,
			      const void *dout, const int *argmax, int B,
			      int C, int H, int W, int K, int stride, int pad)
{
	GPU(dv, maxpool2d_act_backward_cuda(din, dout, argmax, B, C, H, W, K,
					    stride, pad, ST(dv)));
}

void dev_conv_act_forward(const struct tk_dev *dv, void *out, const void *in,
			  const void *wa, struct conv2d_dims d)
{
	GPU(dv, conv2d_act_forward_cuda(out, in, wa, d, ST(dv)));
}

void dev_conv_act_backward(const struct tk_dev *dv, void *din, int din_add,
			   void *dwa, const void *dout, const void *in,
			   const void *wa, struct conv2d_dims d)
{
	GPU(dv, conv2d_act_backward_cuda(din, din_add, dwa, dout, in, wa, d,
					 ST(dv)));
}

void dev_bn_act_train_forward(const struct tk_dev *dv, void *out,
			      float *bmean, float *brstd, float *running_mean,
			      float *running_var, const void *in,
			      const float *gamma, const float *beta, float eps,
			      double momentum, int relu, long rows, int C)
{
	double *sums = sync_sums(dv, C);
	double count = (double)rows * dev_world(dv);
	GPU(dv, batchnorm_act_stats_cuda(sums, in, rows, C, ST(dv)));
	dev_allreduce_f64(dv, sums, 2 * (size_t)C);
	GPU(dv, batchnorm_act_apply_cuda(out, bmean, brstd, running_mean,
					 running_var, in, sums, gamma, beta, count,
					 momentum, eps, relu, rows, C, ST(dv)));
}

void dev_bn_act_eval_forward(const struct tk_dev *dv, void *out,
			     const void *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int relu, long rows,
			     int C)
{
	GPU(dv, batchnorm_act_eval_cuda(out, in, gamma, beta, mean, var, eps, relu,
					rows, C, ST(dv)));
}

void dev_bn_act_backward(const struct tk_dev *dv, void *din, float *dgamma,
			 float *dbeta, const void *dout, const void *mask,
			 const void *in, const float *bmean,
			 const float *brstd, const float *gamma, long rows,
			 int C)
{
	double *sums = sync_sums(dv, C);
	double count = (double)rows * dev_world(dv);
	GPU(dv, batchnorm_act_backward_reduce_cuda(sums, dgamma, dbeta, dout, mask,
						   in, bmean, brstd, rows, C,
						   ST(dv)));
	dev_allreduce_f64(dv, sums, 2 * (size_t)C);
	GPU(dv, batchnorm_act_backward_apply_cuda(din, dout, mask, in, bmean, brstd,
						  gamma, sums, count, rows, C,
						  ST(dv)));
}

void dev_add_relu_act(const struct tk_dev *dv, void *out, const void *a,
		      const void *b, size_t n)
{
	GPU(dv, add_relu_act_cuda(out, a, b, n, ST(dv)));
}

void dev_relu_backward_act(const struct tk_dev *dv, void *din,
			   const void *dout, const void *out, size_t n)
{
	GPU(dv, relu_backward_act_cuda(din, 0, dout, out, n, ST(dv)));
}
#ifndef TK_CUDA
#pragma GCC diagnostic pop
#endif

/* ---- data parallel ---- */

void dev_group_init(const struct tk_dev *dv, const struct tk_dist *d)
{
	if (d->world <= 1)
		return;
	char err[512];
	if (tk_dev_is_cuda(dv)) {
#ifdef TK_CUDA
		unsigned char id[TK_NCCL_ID_BYTES];
		if (d->rank == 0)
			tk_nccl_unique_id(id);
		/* NCCL waits for a lost rank forever: the watch stops this
		 * one instead */
		if (tk_dist_bootstrap_watched(d, id, sizeof id, d->timeout, err,
					      sizeof err) < 0)
			die_io("%s", err);
		tk_nccl_init(id, d->world, d->rank);
		tk_dist_watch_check(tk_nccl_async_error);
#endif
		return;
	}
	if (tk_dist_connect(d, d->timeout, err, sizeof err) < 0)
		die_io("%s", err);
	group_cpu = 1;
}

void dev_group_free(const struct tk_dev *dv)
{
#ifdef TK_CUDA
	if (tk_dev_is_cuda(dv)) {
		/* NCCL's teardown may wait for a lost rank: not then */
		if (tk_dist_watch_closing())
			tk_nccl_destroy();
		tk_dist_watch_stop();
		return;
	}
#endif
	(void)dv;
	if (group_cpu)
		tk_dist_close();
	group_cpu = 0;
}

void dev_allreduce_f64(const struct tk_dev *dv, double *buf, size_t n)
{
	ON(dv, tk_dist_allreduce_f64(buf, n),
	   tk_nccl_allreduce_f64(buf, n, ST(dv)));
}

struct dev_ddp {
	float *grad;
	size_t n;
	void *nccl; /* struct tk_ddp */
};

struct dev_ddp *dev_ddp_create(const struct tk_dev *dv, float *grad, size_t n,
			       size_t bucket_bytes)
{
	struct dev_ddp *d = xcalloc(1, sizeof *d);
	d->grad = grad;
	d->n = n;
	ON(dv, (void)bucket_bytes,
	   d->nccl = tk_ddp_create(grad, n, bucket_bytes));
	return d;
}

void dev_ddp_ready(const struct tk_dev *dv, struct dev_ddp *d, size_t off,
		   size_t n)
{
	ON(dv, ((void)d, (void)off, (void)n),
	   tk_ddp_ready(d->nccl, off, n, ST(dv)));
}

void dev_ddp_finish(const struct tk_dev *dv, struct dev_ddp *d)
{
	ON(dv, tk_dist_allreduce_f32(d->grad, d->n), tk_ddp_finish(d->nccl, ST(dv)));
}

void dev_ddp_free(const struct tk_dev *dv, struct dev_ddp *d)
{
	if (!d)
		return;
	ON(dv, (void)0, tk_ddp_free(d->nccl));
	free(d);
}

void dev_layernorm_forward(const struct tk_dev *dv, float *out, float *mean,
			   float *rstd, const float *in, const float *weight,
			   const float *bias, float eps, int N, int C)
{
	ON(dv, layernorm_forward(out, mean, rstd, in, weight, bias, eps, N, C),
	   layernorm_forward_cuda(out, mean, rstd, in, weight, bias, eps, N, C,
				  ST(dv)));
}

void dev_layernorm_backward(const struct tk_dev *dv, float *din, float *dweight,
			    float *dbias, const float *dout, const float *in,
			    const float *weight, const float *mean,
			    const float *rstd, int N, int C)
{
	ON(dv,
	   layernorm_backward(din, dweight, dbias, dout, in, weight, mean, rstd, N,
			      C),
	   layernorm_backward_cuda(din, dweight, dbias, dout, in, weight, mean,
				   rstd, N, C, ST(dv)));
}

void dev_l2norm_forward(const struct tk_dev *dv, float *out, const float *in,
			float eps, int N, int C)
{
	ON(dv, l2norm_forward(out, in, eps, N, C),
	   l2norm_forward_cuda(out, in, eps, N, C, ST(dv)));
}

void dev_l2norm_backward(const struct tk_dev *dv, float *din, const float *dout,
			 const float *in, float eps, int N, int C)
{
	ON(dv, l2norm_backward(din, dout, in, eps, N, C),
	   l2norm_backward_cuda(din, dout, in, eps, N, C, ST(dv)));
}

void dev_maxpool2d_forward(const struct tk_dev *dv, float *out, int *argmax,
			   const float *in, int P, int H, int W, int K,
			   int stride, int pad)
{
	ON(dv, maxpool2d_forward(out, argmax, in, P, H, W, K, stride, pad),
	   maxpool2d_forward_cuda(out, argmax, in, P, H, W, K, stride, pad,
				  ST(dv)));
}

void dev_maxpool2d_backward(const struct tk_dev *dv, float *din,
			    const float *dout, const int *argmax, int P, int H,
			    int W, int K, int stride, int pad)
{
	ON(dv, maxpool2d_backward(din, dout, argmax, P, H, W, K, stride, pad),
	   maxpool2d_backward_cuda(din, dout, argmax, P, H, W, K, stride, pad,
				   ST(dv)));
}

void dev_resize_bilinear_forward(const struct tk_dev *dv, float *out,
				 const float *in, int P, int H, int W, int OH,
				 int OW, double scale_h, double scale_w)
{
	ON(dv, resize_bilinear_forward(out, in, P, H, W, OH, OW, scale_h, scale_w),
	   resize_bilinear_forward_cuda(out, in, P, H, W, OH, OW, scale_h,
					scale_w, ST(dv)));
}

void dev_image_normalize_forward(const struct tk_dev *dv, float *out,
				 const uint8_t *in, const float *mean,
				 const float *std, int H, int W)
{
	ON(dv, image_normalize_forward(out, in, mean, std, H, W),
	   image_normalize_forward_cuda(out, in, mean, std, H, W, ST(dv)));
}

void dev_dropout_forward(const struct tk_dev *dv, float *out, uint8_t *mask,
			 const float *in, float p, uint64_t seed, size_t n)
{
	ON(dv, dropout_forward(out, mask, in, p, seed, n),
	   dropout_forward_cuda(out, mask, in, p, seed, n, ST(dv)));
}

void dev_dropout_backward(const struct tk_dev *dv, float *din,
			  const float *dout, const uint8_t *mask, float p,
			  size_t n)
{
	ON(dv, dropout_backward(din, dout, mask, p, n),
	   dropout_backward_cuda(din, dout, mask, p, n, ST(dv)));
}

void dev_droppath_forward(const struct tk_dev *dv, float *out, uint8_t *mask,
			  const float *in, float p, uint64_t seed, int B,
			  size_t per)
{
	ON(dv, droppath_forward(out, mask, in, p, seed, B, per),
	   droppath_forward_cuda(out, mask, in, p, seed, B, per, ST(dv)));
}

void dev_droppath_backward(const struct tk_dev *dv, float *din,
			   const float *dout, const uint8_t *mask, float p, int B,
			   size_t per)
{
	ON(dv, droppath_backward(din, dout, mask, p, B, per),
	   droppath_backward_cuda(din, dout, mask, p, B, per, ST(dv)));
}

void dev_arcface_forward(const struct tk_dev *dv, float *logits,
			 const float *cos, const int32_t *label, float s,
			 float m, float eps, int N, int K)
{
	ON(dv, arcface_forward(logits, cos, label, s, m, eps, N, K),
	   arcface_forward_cuda(logits, cos, label, s, m, eps, N, K, ST(dv)));
}

void dev_arcface_backward(const struct tk_dev *dv, float *dcos,
			  const float *dlogits, const float *cos,
			  const int32_t *label, float s, float m, float eps,
			  int N, int K)
{
	ON(dv, arcface_backward(dcos, dlogits, cos, label, s, m, eps, N, K),
	   arcface_backward_cuda(dcos, dlogits, cos, label, s, m, eps, N, K,
				 ST(dv)));
}

void dev_cross_entropy_forward(const struct tk_dev *dv, float *loss,
			       float *prob, const float *logits,
			       const int32_t *label, int N, int K)
{
	ON(dv, cross_entropy_forward(loss, prob, logits, label, N, K),
	   cross_entropy_forward_cuda(loss, prob, logits, label, N, K, ST(dv)));
}

void dev_cross_entropy_backward(const struct tk_dev *dv, float *dlogits,
				const float *prob, const int32_t *label,
				float scale, int N, int K)
{
	ON(dv, cross_entropy_backward(dlogits, prob, label, scale, N, K),
	   cross_entropy_backward_cuda(dlogits, prob, label, scale, N, K,
				       ST(dv)));
}

void dev_sgd_update_runs(const struct tk_dev *dv, float *param, float *buf,
			 const float *grad, const struct sgd_run *runs,
			 int nruns, float lr, float momentum,
			 float dampening, float wd, int nesterov)
{
	ON(dv,
	   sgd_update_runs(param, buf, grad, runs, nruns, lr, momentum, dampening,
			   wd, nesterov),
	   sgd_update_runs_cuda(param, buf, grad, runs, nruns, lr, momentum,
				dampening, wd, nesterov, ST(dv)));
}

double dev_sumsq(const struct tk_dev *dv, const float *x, size_t n)
{
	double r = 0;
	ON(dv, r = sumsq(x, n), r = sumsq_cuda(x, n, ST(dv)));
	return r;
}

void dev_scale_inplace(const struct tk_dev *dv, float *x, float a, size_t n)
{
	ON(dv, scale_inplace(x, a, n), scale_inplace_cuda(x, a, n, ST(dv)));
}

/* ---- channels-last inference ---- */

struct dev_conv {
	float *w, *b; /* the CPU's copies */
	int C, ld, OC, K, stride, pad;
	void *cuda;   /* struct tk_cuda_conv */
};

size_t dev_act_size(const struct tk_dev *dv)
{
	size_t n = sizeof(float);
	ON(dv, (void)0, n = tk_cuda_act_size());
	return n;
}

struct dev_conv *dev_conv_create(const struct tk_dev *dv, const float *weight,
				 const float *bias, int C, int ld, int OC,
				 int K, int stride, int pad)
{
	struct dev_conv *c = xcalloc(1, sizeof *c);
	*c = (struct dev_conv){NULL, NULL, C, ld, OC, K, stride, pad, NULL};
	size_t nw = xmul(xmul((size_t)OC * C, K), K);
	ON(dv,
	   (c->w = xmalloc(xmul(nw, sizeof *c->w)),
	    memcpy(c->w, weight, nw * sizeof *c->w),
	    c->b = bias ? xmalloc(xmul(OC, sizeof *c->b)) : NULL,
	    bias ? (void)memcpy(c->b, bias, OC * sizeof *c->b) : (void)0),
	   c->cuda = conv2d_nhwc_create_cuda(weight, bias, C, ld, OC, K, stride,
					     pad));
	return c;
}

void dev_conv_free(const struct tk_dev *dv, struct dev_conv *c)
{
	if (!c)
		return;
	ON(dv, (free(c->w), free(c->b)), conv2d_nhwc_free_cuda(c->cuda));
	free(c);
}

void dev_conv_nhwc_forward(const struct tk_dev *dv, const struct dev_conv *c,
			   void *out, int out_f32, const void *in,
			   const void *residual, int relu, int H, int W)
{
	struct conv2d_dims d = {1, c->C, H, W, c->OC, c->K, c->stride, c->pad};
	(void)out_f32; /* the CPU's activations are float */
	ON(dv, conv2d_nhwc_forward(out, in, c->w, c->b, residual, relu, c->ld, d),
	   conv2d_nhwc_forward_cuda(c->cuda, out, out_f32, in, residual, relu, H,
				    W, ST(dv)));
}

void dev_nchw_to_nhwc(const struct tk_dev *dv, void *out, const float *in,
		      int C, int ld, int H, int W)
{
	ON(dv, nchw_to_nhwc_forward(out, in, C, ld, H, W),
	   nchw_to_nhwc_forward_cuda(out, in, C, ld, H, W, ST(dv)));
}

void dev_maxpool_nhwc(const struct tk_dev *dv, void *out, const void *in,
		      int C, int H, int W, int K, int stride, int pad)
{
	ON(dv, maxpool2d_nhwc_forward(out, in, C, H, W, K, stride, pad),
	   maxpool2d_nhwc_forward_cuda(out, in, C, H, W, K, stride, pad, ST(dv)));
}

long dev_first_nonfinite(const struct tk_dev *dv, const void *x, size_t n,
			 int act, float *val)
{
	long at = -1;
	if (!tk_dev_is_cuda(dv)) {
		const float *f = x;
		for (size_t i = 0; i < n; i++)
			if (!isfinite(f[i])) {
				*val = f[i];
				return (long)i;
			}
		return -1;
	}
#ifdef TK_CUDA
	at = tk_cuda_first_nonfinite(x, n, act, ST(dv));
	if (at >= 0) {
		size_t es = act ? tk_cuda_act_size() : sizeof(float);
		uint32_t bits = 0;
		if (es == 2) { /* bf16: the high half of a float */
			uint16_t h;
			dev_download(dv, &h, (const char *)x + at * es, 2);
			bits = (uint32_t)h << 16;
		} else {
			dev_download(dv, &bits, (const char *)x + at * es, 4);
		}
		memcpy(val, &bits, sizeof *val);
	}
#else
	(void)act;
#endif
	return at;
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

void dev_scores(const struct tk_dev *dv, float *s, const float *q,
		const float *db, int nq, long m, int D)
{
	ON(dv, scores_forward(s, q, db, nq, m, D, m, D, 0),
	   gemm_cuda(0, 1, nq, (int)m, D, 1.0f, q, D, db, D, 0.0f, s, (int)m,
		     ST(dv)));
}

void dev_rank_chunk(const struct tk_dev *dv, uint64_t *keys, const float *q,
		    const float *db, int nq, long m, int D, uint32_t base,
		    long kk)
{
	if (nq <= 0 || m <= 0 || kk <= 0)
		return;
	kk = kk < m ? kk : m;
	if (tk_dev_is_cuda(dv)) {
#ifdef TK_CUDA
		rank_chunk_cuda(keys, q, db, nq, m, D, base, kk, ST(dv));
#endif
		return;
	}
	float *s = xmalloc(xmul(xmul(nq, m), sizeof *s));
	uint64_t *k = xmalloc(xmul(m, sizeof *k));
	dev_scores(dv, s, q, db, nq, m, D);
	for (int i = 0; i < nq; i++) {
		for (long j = 0; j < m; j++)
			k[j] = rank_key(s[(size_t)i * m + j], base + (uint32_t)j);
		qsort(k, m, sizeof *k, cmp_key);
		memcpy(keys + (size_t)i * kk, k, kk * sizeof *k);
	}
	free(s);
	free(k);
}

/* ---- where the time goes ---- */

enum { PROF_MARKS = 1024, PROF_LABELS = 256 };
static struct {
	int on; /* -1: not yet read from the environment */
	const char *label[PROF_MARKS];
	void *ev[PROF_MARKS]; /* CUDA events */
	double t[PROF_MARKS]; /* the CPU's clock */
	int n;
	struct {
		const char *label;
		double ms;
		long count;
	} sum[PROF_LABELS];
	int nsum;
} prof = {.on = -1};

static void prof_add(const char *label, double ms)
{
	int i = 0;
	while (i < prof.nsum && strcmp(prof.sum[i].label, label))
		i++;
	if (i == prof.nsum) {
		if (prof.nsum == PROF_LABELS)
			return;
		prof.sum[prof.nsum++].label = label;
	}
	prof.sum[i].ms += ms;
	prof.sum[i].count++;
}

/* The spans between the marks so far; the last mark stays, opening the
 * next span. */
static void prof_flush(const struct tk_dev *dv)
{
	if (prof.n == 0)
		return;
	for (int i = 0; i + 1 < prof.n; i++) {
		double ms = 0;
		ON(dv, ms = (prof.t[i + 1] - prof.t[i]) * 1e3,
		   ms = tk_cuda_event_ms(prof.ev[i], prof.ev[i + 1]));
		if (prof.label[i])
			prof_add(prof.label[i], ms);
	}
	int last = prof.n - 1;
	const char *l = prof.label[last];
	void *e = prof.ev[0];
	prof.ev[0] = prof.ev[last];
	prof.ev[last] = e;
	prof.t[0] = prof.t[last];
	prof.label[0] = l;
	prof.n = 1;
}

void dev_mark(const struct tk_dev *dv, const char *label)
{
	if (prof.on < 0) {
		const char *e = getenv("TK_PROFILE");
		prof.on = e && *e && strcmp(e, "0");
	}
	if (!prof.on)
		return;
	if (prof.n == PROF_MARKS)
		prof_flush(dv);
	int i = prof.n++;
	prof.label[i] = label;
	ON(dv, prof.t[i] = tk_now(),
	   (prof.ev[i] = prof.ev[i] ? prof.ev[i] : tk_cuda_event_create(),
	    tk_cuda_event_record(prof.ev[i], ST(dv))));
}

void dev_profile_set(int on)
{
	prof.on = on;
}

void dev_profile_restart(const struct tk_dev *dv)
{
	if (prof.on <= 0)
		return;
	prof_flush(dv);
	memset(prof.sum, 0, sizeof prof.sum);
	prof.nsum = 0;
}

void dev_ddp_report(const struct tk_dev *dv, const struct dev_ddp *d,
		    size_t bucket_bytes)
{
	if (prof.on <= 0 || !d)
		return;
	long early = 0, late = 0;
	ON(dv, return, tk_ddp_counts(d->nccl, &early, &late));
	size_t all = d->n * sizeof(float);
	if (!bucket_bytes || bucket_bytes > all)
		bucket_bytes = all; /* one bucket */
	fprintf(stderr, "%s: profile all-reduce: %ld bucket%s of %.3g MiB, %ld "
		"started during the backward, %ld at its end\n", tk_progname,
		early + late, early + late == 1 ? "" : "s",
		bucket_bytes / 1048576.0, early, late);
}

void dev_profile_report(const struct tk_dev *dv)
{
	if (prof.on <= 0)
		return;
	dev_mark(dv, NULL);
	prof_flush(dv);
	double total = 0;
	for (int i = 0; i < prof.nsum; i++)
		total += prof.sum[i].ms;
	for (int i = 1; i < prof.nsum; i++) /* most first */
		for (int j = i; j > 0 && prof.sum[j].ms > prof.sum[j - 1].ms; j--) {
			__typeof__(prof.sum[0]) t = prof.sum[j];
			prof.sum[j] = prof.sum[j - 1];
			prof.sum[j - 1] = t;
		}
	fprintf(stderr, "%s: profile (%s): %.1f ms in all\n", tk_progname,
		tk_dev_describe(dv), total);
	for (int i = 0; i < prof.nsum; i++)
		fprintf(stderr, "%s: profile %-28s %10.2f ms %7ld x %8.3f ms %5.1f%%\n",
			tk_progname, prof.sum[i].label, prof.sum[i].ms,
			prof.sum[i].count, prof.sum[i].ms / prof.sum[i].count,
			total > 0 ? 100 * prof.sum[i].ms / total : 0);
}
