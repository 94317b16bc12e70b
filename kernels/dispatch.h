/* dispatch.h - the network code's one door to the kernels when it may run
 * on either device.  A struct tk_dev names the device (the CPU, or one
 * CUDA GPU with its compute and copy streams and its precision); memory
 * comes from dev_alloc (host or device memory accordingly); every op of
 * the kernel headers is here under its own name with "dev_" before it
 * and the device first, the rest of the arguments unchanged:
 *
 *     conv2d_train_forward(out, work, in, w, b, res, relu, d)
 *  -> dev_conv2d_train_forward(dv, out, work, in, w, b, res, relu, d)
 *
 * so moving network code onto it is a mechanical edit, and the CPU path
 * stays exactly what it was (dev_* on the CPU device calls the CPU op).
 * Only dispatch.c knows about CUDA (#ifdef TK_CUDA); in a CPU build
 * "--device cuda" is a usage error saying CUDA support is not built in.
 *
 * Scratch: the CPU's "work" arguments keep their meaning; on the GPU
 * they are ignored (cuDNN's scratch is the device context's) and may be
 * NULL.  Host-side loops over activations (copies, repeats, checks) go
 * through dev_copy / dev_fill_rows / dev_all_finite. */
#ifndef TK_KERNELS_DISPATCH_H
#define TK_KERNELS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "kernels/optim.h"

enum tk_dev_kind { TK_DEV_CPU, TK_DEV_CUDA };

struct tk_dev {
	enum tk_dev_kind kind;
	int index;        /* cuda:N */
	int precision;    /* enum tk_precision (kernels/cuda/cuda.h): 0 fp32 */
	int deterministic; /* CUDA: tk_cuda_set_deterministic, at tk_dev_open */
	void *stream;     /* compute stream (cudaStream_t) */
	void *copy;       /* host-to-device copies, overlapping compute */
	void *copied;     /* event: the last upload on 'copy' done */
	void *fence[4];   /* events: dev_fence */
};

/* "cpu", "cuda", "cuda:N" and a precision "fp32", "tf32", "bf16" (NULL:
 * fp32); 0, or -1 with a message for the usage error. */
int tk_dev_parse(struct tk_dev *dv, const char *device, const char *precision,
		 char *err, size_t errlen);
/* The machine's CUDA devices (0 in a build without CUDA). */
int tk_dev_cuda_count(void);
/* Start the device (CUDA: select it, streams, handles); dies on failure. */
void tk_dev_open(struct tk_dev *dv);
void tk_dev_close(struct tk_dev *dv);
/* "cpu (16 threads)" or "cuda:0 (NVIDIA H200, sm_90, ...), tf32". */
const char *tk_dev_describe(const struct tk_dev *dv);
static inline int tk_dev_is_cuda(const struct tk_dev *dv)
{
	return dv->kind == TK_DEV_CUDA;
}

/* ---- memory ---- */
void *dev_alloc(const struct tk_dev *dv, size_t bytes);   /* dies if out */
void dev_free(const struct tk_dev *dv, void *p);
/* Host memory that uploads fast and asynchronously (pinned on CUDA). */
void *dev_host_alloc(const struct tk_dev *dv, size_t bytes);
void dev_host_free(const struct tk_dev *dv, void *p);
/* Copies between host and device memory, ordered on the compute stream;
 * download waits for it.  dev_copy: device to device. */
void dev_upload(const struct tk_dev *dv, void *dst, const void *src,
		size_t bytes);
void dev_download(const struct tk_dev *dv, void *dst, const void *src,
		  size_t bytes);
void dev_copy(const struct tk_dev *dv, void *dst, const void *src,
	      size_t bytes);
/* rows x width bytes, the rows dpitch and spitch bytes apart: host to
 * device (ordered on the compute stream), device to host (waits). */
void dev_upload_rows(const struct tk_dev *dv, void *dst, size_t dpitch,
		     const void *src, size_t spitch, size_t width,
		     size_t rows);
void dev_download_rows(const struct tk_dev *dv, void *dst, size_t dpitch,
		       const void *src, size_t spitch, size_t width,
		       size_t rows);
void dev_zero(const struct tk_dev *dv, void *dst, size_t bytes);
/* An upload on the copy stream (src pinned: dev_host_alloc), so that the
 * next input moves while the compute stream works on this one; then
 * dev_upload_wait makes the compute stream wait for it before use.  The
 * copy stream does not wait for the compute stream: dst must not be in
 * use by work queued there (double-buffer it), and src may be refilled
 * only after dev_upload_wait and a dev_sync. */
void dev_upload_async(const struct tk_dev *dv, void *dst, const void *src,
		      size_t bytes);
void dev_upload_wait(const struct tk_dev *dv);
void dev_sync(const struct tk_dev *dv); /* the compute stream's work done */
/* A point in the compute stream's work (i < 4): dev_fence marks it,
 * dev_fence_wait returns once the work queued before it is done, so
 * that the host can use what it made while later work runs. */
void dev_fence(const struct tk_dev *dv, int i);
void dev_fence_wait(const struct tk_dev *dv, int i);

/* out[r, :] = row for r < N (a bias broadcast, the query repeated). */
void dev_fill_rows(const struct tk_dev *dv, float *out, const float *row,
		   int N, int C);
/* Whether n floats are all finite; *at the first that is not. */
int dev_all_finite(const struct tk_dev *dv, const float *x, size_t n,
		   size_t *at);
/* out[c, r] = in[r, c]. */
void dev_transpose(const struct tk_dev *dv, float *out, const float *in,
		   int R, int C);

/* ---- channels-last inference (kernels/nhwc.h; common/devnet.c) ----
 * One image's activations [H, W, ld] of dev_act_size bytes a value:
 * bf16 under --precision bf16 on the GPU, float otherwise. */
size_t dev_act_size(const struct tk_dev *dv);
/* A convolution with its weights where and as the device wants them;
 * weight [OC, C, K, K] and bias [OC] (or NULL) are host arrays, copied.
 * Its input has ld >= C channels a pixel. */
struct dev_conv;
struct dev_conv *dev_conv_create(const struct tk_dev *dv, const float *weight,
				 const float *bias, int C, int ld, int OC,
				 int K, int stride, int pad);
void dev_conv_free(const struct tk_dev *dv, struct dev_conv *c);
/* out [OH, OW, OC] = relu?(conv(in [H, W, ld]) + bias + residual);
 * out_f32: out (and residual) float whatever the activation type.
 * residual must not be out. */
void dev_conv_nhwc_forward(const struct tk_dev *dv, const struct dev_conv *c,
			   void *out, int out_f32, const void *in,
			   const void *residual, int relu, int H, int W);
/* out [H, W, ld] (activations) = in [C, H, W] (float), padded with 0. */
void dev_nchw_to_nhwc(const struct tk_dev *dv, void *out, const float *in,
		      int C, int ld, int H, int W);
void dev_maxpool_nhwc(const struct tk_dev *dv, void *out, const void *in,
		      int C, int H, int W, int K, int stride, int pad);
/* The first NaN or Inf of n values (act: activations, else float): its
 * index, and the value in *val; -1 if none.  Waits for the device. */
long dev_first_nonfinite(const struct tk_dev *dv, const void *x, size_t n,
			 int act, float *val);
/* dev_download without the wait: dst (pinned, from dev_host_alloc, for
 * the copy to run alongside the host) is filled once dev_sync returns. */
void dev_download_async(const struct tk_dev *dv, void *dst, const void *src,
			size_t bytes);

/* ---- channels-last training (GPU only; common/trainnet_resnet.c) ----
 * Under --precision bf16 the training backbone keeps its activations and
 * gradients channels-last, [rows, C] with rows = B*H*W, of dev_act_size
 * bytes a value (bf16), and convolves with cuDNN on them and on weights
 * converted to [OC, K, K, C] of that type each step; its input, 3
 * channels, is padded to 8.  TK_TRAIN_NHWC=1 (or 0) in the environment
 * turns this on (off) at any precision: in fp32 it is the tests' check
 * of this path's indexing against the NCHW one.  On the CPU
 * dev_train_nhwc is 0 and the ops below must not be called (they die).
 * Their contracts: kernels/cuda/cuda.h's *_act_cuda; ld >= C, the
 * channels as stored. */
int dev_train_nhwc(const struct tk_dev *dv);
void dev_nchw_to_act(const struct tk_dev *dv, void *out, const float *in,
		     int B, int C, int ld, long HW);
void dev_act_to_nchw(const struct tk_dev *dv, float *out, const void *in,
		     int B, int C, int ld, long HW);
void dev_conv_act_weights(const struct tk_dev *dv, void *wa, const float *w,
			  int OC, int C, int ld, int K);
/* dw [OC, C, K, K] += dwa [OC, K, K, ld]. */
void dev_conv_act_dweights(const struct tk_dev *dv, float *dw,
			   const void *dwa, int OC, int C, int ld, int K);
void dev_maxpool_act_forward(const struct tk_dev *dv, void *out, int *argmax,
			     const void *in, int B, int C, int H, int W, int K,
			     int stride, int pad);
/* din overwritten. */
void dev_maxpool_act_backward(const struct tk_dev *dv, void *din,
			      const void *dout, const int *argmax, int B,
			      int C, int H, int W, int K, int stride, int pad);
void dev_conv_act_forward(const struct tk_dev *dv, void *out, const void *in,
			  const void *wa, struct conv2d_dims d);
void dev_conv_act_backward(const struct tk_dev *dv, void *din, int din_add,
			   void *dwa, const void *dout, const void *in,
			   const void *wa, struct conv2d_dims d);
/* SyncBatchNorm over the ranks, as dev_batchnorm_train_forward. */
void dev_bn_act_train_forward(const struct tk_dev *dv, void *out,
			      float *bmean, float *brstd, float *running_mean,
			      float *running_var, const void *in,
			      const float *gamma, const float *beta, float eps,
			      double momentum, int relu, long rows, int C);
void dev_bn_act_eval_forward(const struct tk_dev *dv, void *out,
			     const void *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int relu, long rows,
			     int C);
/* din overwritten; dgamma, dbeta accumulate. */
void dev_bn_act_backward(const struct tk_dev *dv, void *din, float *dgamma,
			 float *dbeta, const void *dout, const void *mask,
			 const void *in, const float *bmean,
			 const float *brstd, const float *gamma, long rows,
			 int C);
void dev_add_relu_act(const struct tk_dev *dv, void *out, const void *a,
		      const void *b, size_t n);
/* din overwritten. */
void dev_relu_backward_act(const struct tk_dev *dv, void *din,
			   const void *dout, const void *out, size_t n);

/* Exact search: s [nq, m] = q [nq, D] . db [m, D]^T, on the CPU device
 * scores_forward's fixed sums (kernels/scores.h), on a GPU dev_gemm's. */
void dev_scores(const struct tk_dev *dv, float *s, const float *q,
		const float *db, int nq, long m, int D);
/* Exact search, one chunk (rank_chunk_cuda): keys [nq, kk] (host)
 * receive each query's kk best rank keys (common/rank.h) among the m
 * database rows db [m, D] at positions base.., best first, from the
 * scores q [nq, D] . db^T (dev_scores'). */
void dev_rank_chunk(const struct tk_dev *dv, uint64_t *keys, const float *q,
		    const float *db, int nq, long m, int D, uint32_t base,
		    long kk);

/* ---- data parallel: one process per device ----
 * dev_group_init joins the ranks of d (common/dist.h): on GPUs a NCCL
 * communicator (its id from rank 0 through tk_dist_bootstrap), on CPUs
 * the host collective of common/dist.c (the tests' way to run several
 * ranks without a GPU).  World 1: nothing.  Dies on failure. */
struct tk_dist;
void dev_group_init(const struct tk_dev *dv, const struct tk_dist *d);
void dev_group_free(const struct tk_dev *dv);
int dev_world(const struct tk_dev *dv);
/* Sums over the ranks in place (device memory), queued on the compute
 * stream (the CPU's waits for the others). */
void dev_allreduce_f64(const struct tk_dev *dv, double *buf, size_t n);
/* The gradient's all-reduce in buckets while the backward runs: mark
 * each range of grad [n] final with dev_ddp_ready (any order, each float
 * once); a bucket all of whose floats are final is summed over the ranks
 * on its own stream, overlapping the rest of the backward (GPUs);
 * dev_ddp_finish sums what is left and orders the compute stream after
 * it all.  On CPUs, dev_ddp_finish sums the whole gradient at once. */
struct dev_ddp;
struct dev_ddp *dev_ddp_create(const struct tk_dev *dv, float *grad, size_t n,
			       size_t bucket_bytes);
void dev_ddp_ready(const struct tk_dev *dv, struct dev_ddp *d, size_t off,
		   size_t n);
void dev_ddp_finish(const struct tk_dev *dv, struct dev_ddp *d);
/* Under TK_PROFILE, on stderr (GPUs): how many buckets were summed while
 * the backward ran and how many at its end. */
void dev_ddp_report(const struct tk_dev *dv, const struct dev_ddp *d,
		    size_t bucket_bytes);
void dev_ddp_free(const struct tk_dev *dv, struct dev_ddp *d);

/* ---- where the time goes ----
 * With TK_PROFILE=1 in the environment, dev_mark(dv, label) starts a
 * span that lasts until the next mark (NULL: none), timed on the device
 * (CUDA events on the compute stream; the wall clock on the CPU), and
 * dev_profile_report prints each label's total, count and share to
 * stderr, most first.  Labels are string constants.  Without
 * TK_PROFILE both do nothing. */
void dev_mark(const struct tk_dev *dv, const char *label);
void dev_profile_report(const struct tk_dev *dv);
/* Forget the spans so far (the work queued since the last mark stays
 * in the next one); waits for the device. */
void dev_profile_restart(const struct tk_dev *dv);
/* Profile from now on (1) or not (0), whatever TK_PROFILE says: a
 * benchmark's untimed step. */
void dev_profile_set(int on);

/* ---- the ops (their contracts: kernels/act.h, conv.h, ...) ----
 * Beyond those: dev_relu_backward's, dev_conv2d_backward's and
 * dev_batchnorm_backward's din_add (1: din accumulates, as the kernels'
 * contracts; 0: din is overwritten, which on a GPU saves the zeroing
 * pass). */
void dev_relu_forward(const struct tk_dev *dv, float *out, const float *in,
		      size_t n);
void dev_relu_backward(const struct tk_dev *dv, float *din, int din_add,
		       const float *dout, const float *out, size_t n);
void dev_gelu_forward(const struct tk_dev *dv, float *out, const float *in,
		      size_t n);
void dev_gelu_backward(const struct tk_dev *dv, float *din, const float *dout,
		       const float *in, size_t n);
void dev_add_forward(const struct tk_dev *dv, float *out, const float *a,
		     const float *b, size_t n);
void dev_add_relu_forward(const struct tk_dev *dv, float *out, const float *a,
			  const float *b, size_t n);
void dev_softmax_forward(const struct tk_dev *dv, float *out, const float *in,
			 int N, int C);
void dev_softmax_backward(const struct tk_dev *dv, float *din,
			  const float *dout, const float *out, int N, int C);

void dev_attention_forward(const struct tk_dev *dv, float *out, float *att,
			   const float *q, const float *k, const float *v,
			   int B, int Nq, int Nk, int D, int heads);
void dev_attention_train_forward(const struct tk_dev *dv, float *out,
				 float *att, uint8_t *mask, const float *q,
				 const float *k, const float *v, float p,
				 uint64_t seed, int B, int Nq, int Nk, int D,
				 int heads);
void dev_attention_backward(const struct tk_dev *dv, float *dq, float *dk,
			    float *dv_, const float *dout, const float *att,
			    const uint8_t *mask, const float *q,
			    const float *k, const float *v, float p, int B,
			    int Nq, int Nk, int D, int heads);

/* Scratch floats for the CPU op (0 on the GPU). */
size_t dev_conv2d_backward_workspace(const struct tk_dev *dv,
				     struct conv2d_dims d);
/* Training's forward (conv.h's conv2d_train_forward on the CPU; on the
 * GPU the cuDNN convolution inference runs, conv2d_forward_cuda). */
void dev_conv2d_train_forward(const struct tk_dev *dv, float *out, float *work,
			      const float *in, const float *weight,
			      const float *bias, const float *residual,
			      int relu, struct conv2d_dims d);
void dev_conv2d_backward(const struct tk_dev *dv, float *din, int din_add,
			 float *dweight, float *dbias, float *work,
			 const float *dout, const float *in,
			 const float *weight, struct conv2d_dims d);

void dev_linear_forward(const struct tk_dev *dv, float *out, const float *in,
			const float *weight, const float *bias, int N, int IN,
			int OUT);
void dev_linear_backward(const struct tk_dev *dv, float *din, float *dweight,
			 float *dbias, const float *dout, const float *in,
			 const float *weight, int N, int IN, int OUT);
void dev_gemm(const struct tk_dev *dv, int ta, int tb, int M, int N, int K,
	      float alpha, const float *A, int lda, const float *B, int ldb,
	      float beta, float *C, int ldc);

void dev_batchnorm1d_forward(const struct tk_dev *dv, float *out,
			     const float *in, const float *gamma,
			     const float *beta, const float *mean,
			     const float *var, float eps, int N, int C);
void dev_batchnorm_eval_forward(const struct tk_dev *dv, float *out,
				const float *in, const float *gamma,
				const float *beta, const float *mean,
				const float *var, float eps, int B, int C,
				int S);
/* With a group of several ranks (dev_group_init), the batch statistics
 * and the backward's sums are all-reduced: SyncBatchNorm (every rank's
 * batch the same size). */
void dev_batchnorm_train_forward(const struct tk_dev *dv, float *out,
				 float *bmean, float *brstd,
				 float *running_mean, float *running_var,
				 const float *in, const float *gamma,
				 const float *beta, float eps,
				 double momentum, int relu, int B, int C,
				 int S);
void dev_batchnorm_backward(const struct tk_dev *dv, float *din,
			    int din_add, float *dgamma, float *dbeta,
			    const float *dout, const float *mask,
			    const float *in, const float *bmean,
			    const float *brstd, const float *gamma, int B,
			    int C, int S);
void dev_layernorm_forward(const struct tk_dev *dv, float *out, float *mean,
			   float *rstd, const float *in, const float *weight,
			   const float *bias, float eps, int N, int C);
void dev_layernorm_backward(const struct tk_dev *dv, float *din,
			    float *dweight, float *dbias, const float *dout,
			    const float *in, const float *weight,
			    const float *mean, const float *rstd, int N,
			    int C);
void dev_l2norm_forward(const struct tk_dev *dv, float *out, const float *in,
			float eps, int N, int C);
void dev_l2norm_backward(const struct tk_dev *dv, float *din,
			 const float *dout, const float *in, float eps, int N,
			 int C);

void dev_maxpool2d_forward(const struct tk_dev *dv, float *out, int *argmax,
			   const float *in, int P, int H, int W, int K,
			   int stride, int pad);
void dev_maxpool2d_backward(const struct tk_dev *dv, float *din,
			    const float *dout, const int *argmax, int P, int H,
			    int W, int K, int stride, int pad);
void dev_resize_bilinear_forward(const struct tk_dev *dv, float *out,
				 const float *in, int P, int H, int W, int OH,
				 int OW, double scale_h, double scale_w);
/* mean, std: host arrays of 3. */
void dev_image_normalize_forward(const struct tk_dev *dv, float *out,
				 const uint8_t *in, const float *mean,
				 const float *std, int H, int W);

void dev_dropout_forward(const struct tk_dev *dv, float *out, uint8_t *mask,
			 const float *in, float p, uint64_t seed, size_t n);
void dev_dropout_backward(const struct tk_dev *dv, float *din,
			  const float *dout, const uint8_t *mask, float p,
			  size_t n);
void dev_droppath_forward(const struct tk_dev *dv, float *out, uint8_t *mask,
			  const float *in, float p, uint64_t seed, int B,
			  size_t per);
void dev_droppath_backward(const struct tk_dev *dv, float *din,
			   const float *dout, const uint8_t *mask, float p,
			   int B, size_t per);
void dev_arcface_forward(const struct tk_dev *dv, float *logits,
			 const float *cos, const int32_t *label, float s,
			 float m, float eps, int N, int K);
void dev_arcface_backward(const struct tk_dev *dv, float *dcos,
			  const float *dlogits, const float *cos,
			  const int32_t *label, float s, float m, float eps,
			  int N, int K);
void dev_cross_entropy_forward(const struct tk_dev *dv, float *loss,
			       float *prob, const float *logits,
			       const int32_t *label, int N, int K);
void dev_cross_entropy_backward(const struct tk_dev *dv, float *dlogits,
				const float *prob, const int32_t *label,
				float scale, int N, int K);
void dev_sgd_update_runs(const struct tk_dev *dv, float *param, float *buf,
			 const float *grad, const struct sgd_run *runs,
			 int nruns, float lr, float momentum,
			 float dampening, float wd, int nesterov);
double dev_sumsq(const struct tk_dev *dv, const float *x, size_t n);
void dev_scale_inplace(const struct tk_dev *dv, float *x, float a, size_t n);

#endif
