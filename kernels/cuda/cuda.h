/* cuda.h - the CUDA kernels: one device per process, the same ops as the
 * CPU headers (kernels/act.h, conv.h, ...) under the same name stem with
 * "_cuda" added, the same arguments in the same order, and a stream last.
 * Every pointer is device memory unless its comment says "host".
 *
 * Only kernels/dispatch.c, the CUDA tests and the benchmarks include this
 * file; it needs no CUDA header (a stream is CUDA's own opaque struct
 * pointer, cudaStream_t under another name). */
#ifndef TK_KERNELS_CUDA_H
#define TK_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "kernels/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *tk_stream; /* cudaStream_t; NULL: default */

/* ---- device, precision, memory (context.cu) ---- */

/* GPUs visible; 0 when there is none or no driver (never dies). */
int tk_cuda_device_count(void);
/* "NVIDIA H200, sm_90, 132 SMs, 139.8 GiB", for the device in use. */
const char *tk_cuda_device_name(void);
/* Select the device and create the cuBLAS and cuDNN handles; dies with a
 * message when the device is missing.  Safe to call again. */
void tk_cuda_init(int device);
/* Which device tk_cuda_init selected; -1 before. */
int tk_cuda_current(void);

/* Arithmetic for GEMMs and convolutions; data stays float.
 *   FP32: IEEE float everywhere (no TF32);
 *   TF32: tensor cores with TF32 inputs, float accumulation;
 *   BF16: GEMMs on bf16 tensor cores (float accumulation), convolutions
 *         in TF32.  Element-wise ops and reductions are float in all. */
enum tk_precision { TK_FP32, TK_TF32, TK_BF16 };
void tk_cuda_set_precision(enum tk_precision p);
enum tk_precision tk_cuda_precision(void);
/* "fp32", "tf32", "bf16" -> 0 and *p; -1 for anything else. */
int tk_precision_parse(const char *s, enum tk_precision *p);
const char *tk_precision_name(enum tk_precision p);
/* Training that gives the same bits every run (tk-train --deterministic):
 * cuDNN's convolution algorithms taken from its heuristics among the
 * deterministic ones, not timed.  The reductions that sum across blocks
 * add their partial sums in a fixed order in either mode. */
void tk_cuda_set_deterministic(int on);

void *tk_cuda_malloc(size_t bytes);   /* dies when out of memory */
void tk_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
void tk_cuda_free(void *p);           /* NULL is fine */
void *tk_cuda_host_alloc(size_t bytes); /* pinned host memory */
void tk_cuda_host_free(void *p);
void tk_cuda_memset(void *dst, int byte, size_t bytes, tk_stream s);
/* Copies in either direction (the driver tells host from device). */
void tk_cuda_copy(void *dst, const void *src, size_t bytes, tk_stream s);
/* rows x width bytes, the rows dpitch and spitch bytes apart. */
void tk_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
		    size_t width, size_t rows, tk_stream s);
void tk_cuda_sync(tk_stream s);       /* NULL: the whole device */
tk_stream tk_cuda_stream_create(void);
void tk_cuda_stream_destroy(tk_stream s);
/* Events, for overlapping copies with compute and for timing. */
typedef struct CUevent_st *tk_event;
tk_event tk_cuda_event_create(void);
void tk_cuda_event_destroy(tk_event e);
void tk_cuda_event_record(tk_event e, tk_stream s);
void tk_cuda_stream_wait(tk_stream s, tk_event e);
float tk_cuda_event_ms(tk_event start, tk_event end); /* syncs on end */
void tk_cuda_event_sync(tk_event e); /* the host waits for it */

/* ---- act.h ---- */
void relu_forward_cuda(float *out, const float *in, size_t n, tk_stream s);
/* din_add: din accumulates (act.h's contract); 0: overwritten. */
void relu_backward_cuda(float *din, int din_add, const float *dout,
			const float *out, size_t n, tk_stream s);
void gelu_forward_cuda(float *out, const float *in, size_t n, tk_stream s);
void gelu_backward_cuda(float *din, const float *dout, const float *in,
			size_t n, tk_stream s);
void add_forward_cuda(float *out, const float *a, const float *b, size_t n,
		      tk_stream s);
void add_relu_forward_cuda(float *out, const float *a, const float *b,
			   size_t n, tk_stream s);
void softmax_forward_cuda(float *out, const float *in, int N, int C,
			  tk_stream s);
void softmax_backward_cuda(float *din, const float *dout, const float *out,
			   int N, int C, tk_stream s);

/* out[c, r] = in[r, c]: [R, C] -> [C, R] (a [B, C, HW] feature map to
 * token rows [B, HW, C] is B of these). */
void transpose_forward_cuda(float *out, const float *in, int R, int C,
			    tk_stream s);

/* ---- attention.h ---- */
void attention_forward_cuda(float *out, float *att, const float *q,
			    const float *k, const float *v, int B, int Nq,
			    int Nk, int D, int heads, tk_stream s);
void attention_train_forward_cuda(float *out, float *att, uint8_t *mask,
				  const float *q, const float *k,
				  const float *v, float p, uint64_t seed,
				  int B, int Nq, int Nk, int D, int heads,
				  tk_stream s);
void attention_backward_cuda(float *dq, float *dk, float *dv,
			     const float *dout, const float *att,
			     const uint8_t *mask, const float *q,
			     const float *k, const float *v, float p, int B,
			     int Nq, int Nk, int D, int heads, tk_stream s);

/* ---- conv.h (cuDNN; work is not used: cuDNN's scratch is the
 * context's, at most 1 GiB or TK_CUDA_WORKSPACE, like 256M) ---- */
void conv2d_forward_cuda(float *out, float *work, const float *in,
			 const float *weight, const float *bias,
			 const float *residual, int relu,
			 struct conv2d_dims d, tk_stream s);
/* din_add: din accumulates (conv.h's contract); 0: din is overwritten
 * (not read: the caller's zeroing pass saved). */
void conv2d_backward_cuda(float *din, int din_add, float *dweight,
			  float *dbias, float *work, const float *dout,
			  const float *in, const float *weight,
			  struct conv2d_dims d, tk_stream s);

/* ---- linear.h (cuBLAS / cuBLASLt) ---- */
void linear_forward_cuda(float *out, const float *in, const float *weight,
			 const float *bias, int N, int IN, int OUT,
			 tk_stream s);
void linear_backward_cuda(float *din, float *dweight, float *dbias,
			  const float *dout, const float *in,
			  const float *weight, int N, int IN, int OUT,
			  tk_stream s);
void gemm_cuda(int ta, int tb, int M, int N, int K, float alpha,
	       const float *A, int lda, const float *B, int ldb, float beta,
	       float *C, int ldc, tk_stream s);
/* 'batch' GEMMs, the i-th on A + i*sA, B + i*sB, C + i*sC (floats). */
void gemm_batched_cuda(int ta, int tb, int M, int N, int K, float alpha,
		       const float *A, int lda, long long sA, const float *B,
		       int ldb, long long sB, float beta, float *C, int ldc,
		       long long sC, int batch, tk_stream s);

/* ---- norm.h ---- */
void batchnorm1d_forward_cuda(float *out, const float *in,
			      const float *gamma, const float *beta,
			      const float *mean, const float *var, float eps,
			      int N, int C, tk_stream s);
void batchnorm_train_forward_cuda(float *out, float *bmean, float *brstd,
				  float *running_mean, float *running_var,
				  const float *in, const float *gamma,
				  const float *beta, float eps, double momentum,
				  int relu, int B, int C, int S, tk_stream s);
/* din_add: din accumulates (norm.h's contract); 0: overwritten. */
void batchnorm_backward_cuda(float *din, int din_add, float *dgamma,
			     float *dbeta,
			     const float *dout, const float *mask,
			     const float *in,
			     const float *bmean, const float *brstd,
			     const float *gamma, int B, int C, int S,
			     tk_stream s);
void batchnorm_eval_forward_cuda(float *out, const float *in,
				 const float *gamma, const float *beta,
				 const float *mean, const float *var, float eps,
				 int B, int C, int S, tk_stream s);
void layernorm_forward_cuda(float *out, float *mean, float *rstd,
			    const float *in, const float *weight,
			    const float *bias, float eps, int N, int C,
			    tk_stream s);
void layernorm_backward_cuda(float *din, float *dweight, float *dbias,
			     const float *dout, const float *in,
			     const float *weight, const float *mean,
			     const float *rstd, int N, int C, tk_stream s);
void l2norm_forward_cuda(float *out, const float *in, float eps, int N, int C,
			 tk_stream s);
void l2norm_backward_cuda(float *din, const float *dout, const float *in,
			  float eps, int N, int C, tk_stream s);

/* batchnorm_train_forward_cuda and batchnorm_backward_cuda in halves,
 * so that SyncBatchNorm can sum the statistics over the ranks between
 * them (tk_nccl_allreduce_f64 on sums):
 *   stats:  sums[0..C) = sum of x, sums[C..2C) = sum of x^2 per channel;
 *   apply:  from the (all-reduced) sums over 'count' values per channel,
 *           the batch statistics, running ones (may be NULL) and out
 *           (through a ReLU with relu);
 *   backward_reduce: sums[0..C) = sum dy, sums[C..2C) = sum dy * xhat,
 *           and dgamma, dbeta accumulate these local sums;
 *   backward_apply: din += (din = without din_add) from the
 *           (all-reduced) sums.
 * dy: dout, or with mask (a ReLU's output) dout where mask > 0, else 0. */
void batchnorm_stats_cuda(double *sums, const float *in, int B, int C, int S,
			  tk_stream s);
void batchnorm_apply_cuda(float *out, float *bmean, float *brstd,
			  float *running_mean, float *running_var,
			  const float *in, const double *sums,
			  const float *gamma, const float *beta, double count,
			  double momentum, float eps, int relu, int B, int C,
			  int S, tk_stream s);
void batchnorm_backward_reduce_cuda(double *sums, float *dgamma, float *dbeta,
				    const float *dout, const float *mask,
				    const float *in, const float *bmean,
				    const float *brstd, int B, int C, int S,
				    tk_stream s);
void batchnorm_backward_apply_cuda(float *din, int din_add,
				   const float *dout,
				   const float *mask, const float *in,
				   const float *bmean,
				   const float *brstd, const float *gamma,
				   const double *sums, double count, int B,
				   int C, int S, tk_stream s);

/* ---- pool.h ---- */
void maxpool2d_forward_cuda(float *out, int *argmax, const float *in, int P,
			    int H, int W, int K, int stride, int pad,
			    tk_stream s);
void maxpool2d_backward_cuda(float *din, const float *dout, const int *argmax,
			     int P, int H, int W, int K, int stride, int pad,
			     tk_stream s);

/* ---- resize.h ---- */
void resize_bilinear_forward_cuda(float *out, const float *in, int P, int H,
				  int W, int OH, int OW, double scale_h,
				  double scale_w, tk_stream s);
void resize_bilinear_backward_cuda(float *din, const float *dout, int P,
				   int H, int W, int OH, int OW,
				   double scale_h, double scale_w,
				   tk_stream s);

/* ---- image.h (mean and std: host arrays of 3) ---- */
void image_normalize_forward_cuda(float *out, const uint8_t *in,
				  const float *mean, const float *std, int H,
				  int W, tk_stream s);

/* ---- dropout.h, loss.h, optim.h (train.cu) ---- */
void dropout_forward_cuda(float *out, uint8_t *mask, const float *in, float p,
			  uint64_t seed, size_t n, tk_stream s);
void dropout_backward_cuda(float *din, const float *dout, const uint8_t *mask,
			   float p, size_t n, tk_stream s);
void droppath_forward_cuda(float *out, uint8_t *mask, const float *in,
			   float p, uint64_t seed, int B, size_t per,
			   tk_stream s);
void droppath_backward_cuda(float *din, const float *dout,
			    const uint8_t *mask, float p, int B, size_t per,
			    tk_stream s);
void arcface_forward_cuda(float *logits, const float *cos,
			  const int32_t *label, float sc, float m, float eps,
			  int N, int K, tk_stream s);
void arcface_backward_cuda(float *dcos, const float *dlogits,
			   const float *cos, const int32_t *label, float sc,
			   float m, float eps, int N, int K, tk_stream s);
void cross_entropy_forward_cuda(float *loss, float *prob,
				const float *logits, const int32_t *label,
				int N, int K, tk_stream s);
void cross_entropy_backward_cuda(float *dlogits, const float *prob,
				 const int32_t *label, float scale, int N,
				 int K, tk_stream s);
void sgd_update_cuda(float *param, float *buf, const float *grad, float lr,
		     float momentum, float dampening, float wd, int nesterov,
		     size_t n, tk_stream s);
void sgd_update_runs_cuda(float *param, float *buf, const float *grad,
			  const struct sgd_run *runs, /* host */
			  int nruns, float lr, float momentum, float dampening,
			  float wd, int nesterov, tk_stream s);
double sumsq_cuda(const float *x, size_t n, tk_stream s); /* waits */
void scale_inplace_cuda(float *x, float a, size_t n, tk_stream s);

/* ---- channels-last inference (infer.cu; nhwc.h's ops) ----
 * Activations [H, W, ld] in the activation type of the precision set
 * when they are made: bf16 under TK_BF16, float otherwise
 * (tk_cuda_act_size bytes).  A convolution holds its weights on the
 * device in that type, [OC, K, K, ld] (the channels C .. ld-1 zero);
 * weight [OC, C, K, K] and bias [OC] (or NULL) are host arrays.
 * out_f32: the output in float whatever the activation type (the LFSA's
 * tokens); the residual, when given, is of the output's type and must
 * not be out. */
struct tk_cuda_conv;
size_t tk_cuda_act_size(void);
struct tk_cuda_conv *conv2d_nhwc_create_cuda(const float *weight,
					     const float *bias, int C, int ld,
					     int OC, int K, int stride, int pad);
void conv2d_nhwc_free_cuda(struct tk_cuda_conv *c);
void conv2d_nhwc_forward_cuda(const struct tk_cuda_conv *c, void *out,
			      int out_f32, const void *in, const void *residual,
			      int relu, int H, int W, tk_stream s);
/* The ways a convolution may go: 0 the fastest its shape allows (the
 * default; TK_CONV_PATH=dnn or direct in the environment sets 2 or 3), 2
 * cuDNN or the direct kernel, 3 the direct kernel only. */
void tk_cuda_set_conv_path(int path);
/* out [H, W, ld] (activation type) = in [C, H, W] (float). */
void nchw_to_nhwc_forward_cuda(void *out, const float *in, int C, int ld,
			       int H, int W, tk_stream s);
void maxpool2d_nhwc_forward_cuda(void *out, const void *in, int C, int H,
				 int W, int K, int stride, int pad,
				 tk_stream s);
/* The index of the first NaN or Inf of n values (act: of the activation
 * type, else float), -1 if none; waits for the stream. */
long tk_cuda_first_nonfinite(const void *x, size_t n, int act, tk_stream s);

/* ---- channels-last training (the backbone under bf16;
 * common/trainnet_resnet.c) ----
 * Activations [rows, C] (rows = B*H*W) of the activation type, as above.
 * Layout (layout.cu): in [B, C, HW] float to activations [B, HW, ld] and
 * back; convolution weights [OC, C, K, K] float to [OC, K, K, ld] of the
 * activation type, and a weight gradient of that layout added to dw
 * [OC, C, K, K]; ld >= C, the channels C .. ld-1 left as they are (the
 * stem's input, 3 channels, is padded to 8 with zeros).  Convolutions
 * (conv.cu, cuDNN channels-last, no bias; d.C: the channels as stored):
 * forward out = conv(in); backward din (NULL: none; din_add:
 * accumulates) and dweight (overwritten), of the activation type.
 * Batch norm in halves (norm.cu), as batchnorm_*_cuda above but din
 * always overwritten, with relu in the apply and the evaluation.
 * add_relu: out = relu(a + b); relu_backward: din (+)= dout where
 * out > 0 (act.cu).  Max-pool (pool.cu): out [B, OH, OW, C] and each
 * output's winner's index in its plane; the backward overwrites din. */
void nchw_to_act_cuda(void *out, const float *in, int B, int C, int ld,
		      long HW, tk_stream s);
void act_to_nchw_cuda(float *out, const void *in, int B, int C, int ld,
		      long HW, tk_stream s);
void conv_weights_to_act_cuda(void *out, const float *w, int OC, int C,
			      int ld, int K, tk_stream s);
void conv_dweights_from_act_cuda(float *dw, const void *dwa, int OC, int C,
				 int ld, int K, tk_stream s);
void maxpool2d_act_forward_cuda(void *out, int *argmax, const void *in, int B,
				int C, int H, int W, int K, int stride, int pad,
				tk_stream s);
void maxpool2d_act_backward_cuda(void *din, const void *dout,
				 const int *argmax, int B, int C, int H, int W,
				 int K, int stride, int pad, tk_stream s);
void conv2d_act_forward_cuda(void *out, const void *in, const void *weight,
			     struct conv2d_dims d, tk_stream s);
void conv2d_act_backward_cuda(void *din, int din_add, void *dweight,
			      const void *dout, const void *in,
			      const void *weight, struct conv2d_dims d,
			      tk_stream s);
void batchnorm_act_stats_cuda(double *sums, const void *in, long rows, int C,
			      tk_stream s);
void batchnorm_act_apply_cuda(void *out, float *bmean, float *brstd,
			      float *running_mean, float *running_var,
			      const void *in, const double *sums,
			      const float *gamma, const float *beta,
			      double count, double momentum, float eps,
			      int relu, long rows, int C, tk_stream s);
void batchnorm_act_eval_cuda(void *out, const void *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int relu, long rows,
			     int C, tk_stream s);
void batchnorm_act_backward_reduce_cuda(double *sums, float *dgamma,
					float *dbeta, const void *dout,
					const void *mask, const void *in,
					const float *bmean, const float *brstd,
					long rows, int C, tk_stream s);
void batchnorm_act_backward_apply_cuda(void *din, const void *dout,
				       const void *mask, const void *in,
				       const float *bmean, const float *brstd,
				       const float *gamma, const double *sums,
				       double count, long rows, int C,
				       tk_stream s);
void add_relu_act_cuda(void *out, const void *a, const void *b, size_t n,
		       tk_stream s);
void relu_backward_act_cuda(void *din, int din_add, const void *dout,
			    const void *out, size_t n, tk_stream s);

/* ---- ranking (rank.cu) ---- */
/* One chunk of an exact inner-product search: for each of nq queries
 * ([nq, D]) against m database rows ([m, D], positions base ..
 * base+m-1), the kk best as tk-rank's rank keys (common/rank.h on the
 * rank branch: the score mapped to sort descending in the high 32 bits,
 * the position in the low 32; smaller is better, ties to the lower
 * position), best first: keys [nq, kk], host or device memory.  The
 * scores go through gemm_cuda, so --precision applies. */
void rank_chunk_cuda(uint64_t *keys, const float *q, const float *db, int nq,
		     long m, int D, uint32_t base, long kk, tk_stream s);

/* ---- NCCL data parallel (nccl.cu) ---- */
/* One communicator per process over the device tk_cuda_init chose.
 * NCCL refuses two ranks on one GPU: one process per GPU. */
enum { TK_NCCL_ID_BYTES = 128 };
void tk_nccl_unique_id(void *id); /* rank 0; then common/dist.h's bootstrap */
void tk_nccl_init(const void *id, int world, int rank);
void tk_nccl_destroy(void);
/* 1, why filled in, once NCCL has put an asynchronous error aside (its
 * work then waits forever); callable from any thread, see common/dist.h's
 * tk_dist_watch_check. */
int tk_nccl_async_error(char *why, size_t n);
int tk_nccl_world(void); /* 1 before init */
void tk_nccl_allreduce(float *buf, size_t n, tk_stream s);        /* sum */
void tk_nccl_allreduce_f64(double *buf, size_t n, tk_stream s);   /* sum */

/* Gradients all-reduced in buckets while the backward runs (PyTorch
 * DDP's scheme on llm.c's single gradient buffer): the buffer is cut
 * into buckets of about bucket_bytes; the backward says which ranges are
 * final (tk_ddp_ready, any order, e.g. one parameter's gradient after
 * its layer's backward), and a bucket whose every float is final is
 * summed over the ranks on a stream of its own, after an event on the
 * compute stream.  tk_ddp_finish reduces what is left and makes the
 * compute stream wait for all of it. */
struct tk_ddp;
struct tk_ddp *tk_ddp_create(float *grads, size_t n, size_t bucket_bytes);
void tk_ddp_ready(struct tk_ddp *d, size_t off, size_t n, tk_stream compute);
void tk_ddp_finish(struct tk_ddp *d, tk_stream compute);
/* The buckets sent so far: when their last floats were marked (early),
 * and by tk_ddp_finish (late). */
void tk_ddp_counts(const struct tk_ddp *d, long *early, long *late);
void tk_ddp_free(struct tk_ddp *d);

#ifdef __cplusplus
}
#endif
#endif
