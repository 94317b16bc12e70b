/* norm.h - normalisations: batch norm (folded into a convolution, 1-d
 * over rows with running statistics, and in training over [B, C, S] for
 * both), layer norm, L2 normalisation. */
#ifndef TK_KERNELS_NORM_H
#define TK_KERNELS_NORM_H

#include <math.h>

#include "kernels/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Batch norm's statistics of channel c from sums over count values (all
 * ranks' under SyncBatchNorm): sums[c] of x, sums[C + c] of x squared.
 * mean[c] and rstd[c] = 1 / sqrt(var + eps) with the biased variance; the
 * running statistics (either may be NULL) move by momentum towards the
 * mean and the unbiased variance, as torch's.  The CPU and CUDA devices
 * both call this. */
static inline TK_HD void bn_stats_from_sums(float *mean, float *rstd,
					     float *rmean, float *rvar,
					     const double *sums, double count,
					     double momentum, float eps,
					     int C, int c)
{
	double m = sums[c] / count, v = sums[C + c] / count - m * m;
	v = v < 0 ? 0 : v;
	mean[c] = (float)m;
	rstd[c] = (float)(1.0 / sqrt(v + eps));
	double unb = count > 1 ? v * count / (count - 1) : NAN;
	if (rmean)
		rmean[c] = (float)((1.0 - momentum) * rmean[c] + momentum * m);
	if (rvar)
		rvar[c] = (float)((1.0 - momentum) * rvar[c] + momentum * unb);
}

/* Fold an inference BatchNorm2d into the convolution before it:
 * weight[o] *= gamma[o] / sqrt(var[o] + eps) and
 * bias[o] = beta[o] + (bias[o] - mean[o]) * gamma[o] / sqrt(var[o] + eps).
 * bias is written; conv_bias (the convolution's own, or NULL) and beta
 * are read and either may be the same array as bias.  In double, so the fold adds no rounding of its
 * own beyond the final float. */
void batchnorm2d_fold(float *weight,          /* [OC, per] in place */
		      float *bias,            /* [OC] out */
		      const float *conv_bias, /* [OC] or NULL */
		      const float *gamma,     /* [OC] */
		      const float *beta,      /* [OC] */
		      const float *mean,      /* [OC] */
		      const float *var,       /* [OC] */
		      float eps, int OC, int per);

/* Inference BatchNorm1d over the rows of a [N, C] array:
 * out = (in - mean) / sqrt(var + eps) * gamma + beta.  out may be in. */
void batchnorm1d_forward(float *out,         /* [N, C] */
			 const float *in,    /* [N, C] */
			 const float *gamma, /* [C] */
			 const float *beta,  /* [C] */
			 const float *mean,  /* [C] */
			 const float *var,   /* [C] */
			 float eps, int N, int C);
/* Batch norm in training mode over [B, C, S] (BatchNorm2d: S = H * W;
 * BatchNorm1d over the rows of [N, C]: B = N, S = 1), as torch computes
 * it: the batch mean and biased variance normalise; bmean and brstd
 * (1 / sqrt(var + eps)) are kept for the backward pass; running_mean and
 * running_var (may be NULL) move towards the batch mean and the unbiased
 * variance by momentum (torch's 0.1); relu: the ReLU after it applied to
 * out in the same pass (relu_forward's values).  out may be in. */
void batchnorm_train_forward(float *out,          /* [B, C, S] */
			     float *bmean,        /* [C] */
			     float *brstd,        /* [C] */
			     float *running_mean, /* [C] or NULL */
			     float *running_var,  /* [C] or NULL */
			     const float *in,     /* [B, C, S] */
			     const float *gamma,  /* [C] */
			     const float *beta,   /* [C] */
			     float eps, double momentum, int relu, int B,
			     int C, int S);
/* din, dgamma and dbeta accumulate; din may be NULL.  mask: NULL, or
 * the output of a ReLU after the batch norm, whose gradient dout then
 * is: dout counts where mask > 0 (relu_backward's rule), as if passed
 * through relu_backward first. */
void batchnorm_backward(float *din,          /* [B, C, S] or NULL */
			float *dgamma,       /* [C] */
			float *dbeta,        /* [C] */
			const float *dout,   /* [B, C, S] */
			const float *mask,   /* [B, C, S] or NULL */
			const float *in,     /* [B, C, S] */
			const float *bmean,  /* [C] */
			const float *brstd,  /* [C] */
			const float *gamma,  /* [C] */
			int B, int C, int S);
/* Batch norm in evaluation mode over [B, C, S], with the running
 * statistics, as torch: out = in * alpha + (beta - mean * alpha), alpha =
 * gamma / sqrt(var + eps).  out may be in. */
void batchnorm_eval_forward(float *out,         /* [B, C, S] */
			    const float *in,    /* [B, C, S] */
			    const float *gamma, /* [C] */
			    const float *beta,  /* [C] */
			    const float *mean,  /* [C] */
			    const float *var,   /* [C] */
			    float eps, int B, int C, int S);

/* LayerNorm over the last axis.  mean and rstd ([N], may be NULL) are
 * kept for the backward pass.  out may be in. */
void layernorm_forward(float *out,          /* [N, C] */
		       float *mean,         /* [N] or NULL */
		       float *rstd,         /* [N] or NULL */
		       const float *in,     /* [N, C] */
		       const float *weight, /* [C] */
		       const float *bias,   /* [C] */
		       float eps, int N, int C);
/* din, dweight and dbias accumulate. */
void layernorm_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, const float *mean,
			const float *rstd, int N, int C);

/* Each row divided by max(its L2 norm, eps) (torch's F.normalize).
 * out may be in. */
void l2norm_forward(float *out,      /* [N, C] */
		    const float *in, /* [N, C] */
		    float eps, int N, int C);
/* din accumulates. */
void l2norm_backward(float *din, const float *dout, const float *in,
		     float eps, int N, int C);

#ifdef __cplusplus
}
#endif
#endif
