/* batchnorm.c - batch norm over [B, C, S] in training (batch statistics,
 * running statistics updated) and evaluation, and its gradient, with
 * torch 1.13's CPU arithmetic: planes (S > 1) reduce channel by channel
 * in double, as its contiguous kernels; rows (S = 1, BatchNorm1d) reduce
 * row by row into float partial sums, one per thread over contiguous
 * chunks of rows, then in double, as its channels-last kernels.  With the
 * same thread count the statistics are torch's to the bit.  Its
 * vectorised loops are compiled with FMA contraction, so the affine
 * steps here are fused multiply-adds too: with a variance near eps the
 * output is a small difference of large terms, and only the same
 * rounding gives the same result. */
#include "kernels/norm.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/cpu/simd.h"

#define PAR_MIN 65536

/* Per-thread float partial sums over chunks of rows, summed in double:
 * sum[c] of in[r][c], or with mean, of (in[r][c] - mean[c])^2, or with
 * dy, of (in[r][c] - mean[c]) * dy[r][c]. */
static void row_sums(double *sum, const float *in, const float *mean,
		     const float *dy, int N, int C)
{
	int T = omp_get_max_threads();
	if ((size_t)N * C <= PAR_MIN)
		T = 1;
	float *part = calloc((size_t)T * C, sizeof *part);
	if (!part)
		abort();
	int chunk = (N + T - 1) / T;
#pragma omp parallel for num_threads(T) schedule(static, 1)
	for (int t = 0; t < T; t++) {
		float *p = part + (size_t)t * C;
		int r1 = (t + 1) * chunk < N ? (t + 1) * chunk : N;
		for (int r = t * chunk; r < r1; r++) {
			const float *x = in + (size_t)r * C;
			if (dy) {
				const float *g = dy + (size_t)r * C;
				for (int c = 0; c < C; c++)
					p[c] = p[c] + (x[c] - mean[c]) * g[c];
			} else if (mean) {
				for (int c = 0; c < C; c++)
					p[c] = p[c] + (x[c] - mean[c]) * (x[c] - mean[c]);
			} else {
				for (int c = 0; c < C; c++)
					p[c] = p[c] + x[c];
			}
		}
	}
	for (int c = 0; c < C; c++) {
		double s = 0.0;
		for (int t = 0; t < T; t++)
			s += part[(size_t)t * C + c];
		sum[c] = s;
	}
	free(part);
}

/* From the sum and the float sum of squares: the saved statistics and the
 * running ones, as torch's batch_norm_cpu_update_stats_template. */
static void finish_stats(float *bmean, float *brstd, float *running_mean,
			 float *running_var, int c, float mean, float var_sum,
			 size_t n, float eps, double momentum)
{
	float var = var_sum / (float)n;
	bmean[c] = mean;
	brstd[c] = (float)(1.0 / sqrt((double)var + (double)eps));
	if (running_mean)
		running_mean[c] = (float)(momentum * (double)mean +
					  (1.0 - momentum) * running_mean[c]);
	if (running_var) {
		float unbiased = n > 1 ? var_sum / (float)(n - 1) : NAN;
		running_var[c] = (float)(momentum * (double)unbiased +
					 (1.0 - momentum) * running_var[c]);
	}
}

/* relu_forward's rule, for the fused ReLU. */
static inline float relu1(float v)
{
	return v > 0.0f ? v : 0.0f;
}

TK_SIMD
static void affine(float *out, const float *in, const float *alpha,
		   const float *shift, int relu, int B, int C, int S)
{
	size_t cs = (size_t)C * S;
	if (S == 1) {
#pragma omp parallel for schedule(static) if ((size_t)B * cs > PAR_MIN)
		for (int b = 0; b < B; b++)
			for (int c = 0; c < C; c++) {
				float v = fmaf(in[b * cs + c], alpha[c], shift[c]);
				out[b * cs + c] = relu ? relu1(v) : v;
			}
		return;
	}
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * cs > PAR_MIN)
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			const float *x = in + b * cs + (size_t)c * S;
			float *y = out + b * cs + (size_t)c * S;
			if (relu)
				for (int i = 0; i < S; i++)
					y[i] = relu1(fmaf(x[i], alpha[c], shift[c]));
			else
				for (int i = 0; i < S; i++)
					y[i] = fmaf(x[i], alpha[c], shift[c]);
		}
}

/* Sums of a plane: in double (torch's contiguous statistics), and in
 * float over vector lanes (torch's vectorised reduce_all). */
TK_SIMD
static double plane_sum(const float *x, int n)
{
	double s = 0.0;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++)
		s += x[i];
	return s;
}

TK_SIMD
static double plane_sqdev(const float *x, float mean, int n)
{
	double s = 0.0;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++) {
		float d = x[i] - mean;
		s += d * d;
	}
	return s;
}

/* The sum of dy and of (x - mean) dy over a plane, and dx from them;
 * with m (the output of a ReLU after the batch norm), dy where m > 0 and
 * 0 elsewhere: relu_backward's rule, without its pass.  Separate loops
 * with and without m, so that each vectorises. */
TK_SIMD
static void plane_dot(const float *x, const float *dy, const float *m,
		      float mean, int n, float *sum, float *dot)
{
	float ps = 0.0f, pd = 0.0f;
	if (m) {
#pragma omp simd reduction(+ : ps, pd)
		for (int i = 0; i < n; i++) {
			float g = m[i] > 0.0f ? dy[i] : 0.0f;
			ps += g;
			pd += (x[i] - mean) * g;
		}
	} else {
#pragma omp simd reduction(+ : ps, pd)
		for (int i = 0; i < n; i++) {
			ps += dy[i];
			pd += (x[i] - mean) * dy[i];
		}
	}
	*sum = ps;
	*dot = pd;
}

TK_SIMD
static void plane_dx(float *dx, const float *x, const float *dy,
		     const float *m, float mean, float k, float gmean,
		     float rstd, float gamma, int n)
{
	if (m) {
#pragma omp simd
		for (int i = 0; i < n; i++) {
			float g = m[i] > 0.0f ? dy[i] : 0.0f;
			dx[i] += fmaf(-(x[i] - mean), k, g - gmean) * rstd * gamma;
		}
	} else {
#pragma omp simd
		for (int i = 0; i < n; i++)
			dx[i] += fmaf(-(x[i] - mean), k, dy[i] - gmean) * rstd * gamma;
	}
}

void batchnorm_train_forward(float *out, float *bmean, float *brstd,
			     float *running_mean, float *running_var,
			     const float *in, const float *gamma,
			     const float *beta, float eps, double momentum,
			     int relu, int B, int C, int S)
{
	size_t cs = (size_t)C * S, n = (size_t)B * S;
	if (S == 1) {
		double *sum = malloc(sizeof *sum * C);
		if (!sum)
			abort();
		row_sums(sum, in, NULL, NULL, B, C);
		for (int c = 0; c < C; c++)
			bmean[c] = (float)(sum[c] / (double)n);
		row_sums(sum, in, bmean, NULL, B, C);
		for (int c = 0; c < C; c++)
			finish_stats(bmean, brstd, running_mean, running_var, c,
				     bmean[c], (float)sum[c], n, eps, momentum);
		free(sum);
	} else {
#pragma omp parallel for schedule(static) if ((size_t)B * cs > PAR_MIN)
		for (int c = 0; c < C; c++) {
			double sum = 0.0;
			for (int b = 0; b < B; b++)
				sum += plane_sum(in + b * cs + (size_t)c * S, S);
			float mean = (float)(sum / (double)n);
			double vs = 0.0;
			for (int b = 0; b < B; b++)
				vs += plane_sqdev(in + b * cs + (size_t)c * S, mean, S);
			finish_stats(bmean, brstd, running_mean, running_var, c,
				     mean, (float)vs, n, eps, momentum);
		}
	}
	float *ab = malloc(sizeof *ab * 2 * C);
	if (!ab)
		abort();
	for (int c = 0; c < C; c++) {
		ab[c] = brstd[c] * gamma[c];
		ab[C + c] = fmaf(-bmean[c], ab[c], beta[c]);
	}
	affine(out, in, ab, ab + C, relu, B, C, S);
	free(ab);
}

void batchnorm_eval_forward(float *out, const float *in, const float *gamma,
			    const float *beta, const float *mean,
			    const float *var, float eps, int B, int C, int S)
{
	float *ab = malloc(sizeof *ab * 2 * C);
	if (!ab)
		abort();
	for (int c = 0; c < C; c++) {
		float rstd = 1.0f / sqrtf(var[c] + eps);
		ab[c] = rstd * gamma[c];
		ab[C + c] = fmaf(-mean[c], ab[c], beta[c]);
	}
	affine(out, in, ab, ab + C, 0, B, C, S);
	free(ab);
}

/* dx = (dy - sum(dy) / n - (x - mean) * k) * rstd * gamma with
 * k = dot(x - mean, dy) * rstd^2 / n, as torch forms it. */
void batchnorm_backward(float *din, float *dgamma, float *dbeta,
			const float *dout, const float *mask, const float *in,
			const float *bmean, const float *brstd,
			const float *gamma, int B, int C, int S)
{
	size_t cs = (size_t)C * S, n = (size_t)B * S;
	float *gated = NULL;
	if (mask && S == 1) {
		/* rows: through the ReLU first (relu_backward into zeros), then
		 * as without one */
		gated = calloc((size_t)B * cs, sizeof *gated);
		if (!gated)
			abort();
		relu_backward(gated, dout, mask, (size_t)B * cs);
		dout = gated;
		mask = NULL;
	}
	if (S == 1) {
		double *sd = malloc(sizeof *sd * 2 * C);
		float *kg = malloc(sizeof *kg * 2 * C);
		if (!sd || !kg)
			abort();
		row_sums(sd, dout, NULL, NULL, B, C);
		row_sums(sd + C, in, bmean, dout, B, C);
		for (int c = 0; c < C; c++) {
			float sum = (float)sd[c], dot = (float)sd[C + c];
			dgamma[c] += dot * brstd[c];
			dbeta[c] += sum;
			kg[c] = dot * brstd[c] * brstd[c] / (float)n;
			kg[C + c] = sum / (float)n;
		}
		if (din) {
#pragma omp parallel for schedule(static) if ((size_t)B * cs > PAR_MIN)
			for (int b = 0; b < B; b++) {
				const float *x = in + b * cs, *dy = dout + b * cs;
				float *dx = din + b * cs;
				for (int c = 0; c < C; c++)
					dx[c] += fmaf(-(x[c] - bmean[c]), kg[c], dy[c] - kg[C + c]) *
						 brstd[c] * gamma[c];
			}
		}
		free(sd);
		free(kg);
		free(gated);
		return;
	}
#pragma omp parallel for schedule(static) if ((size_t)B * cs > PAR_MIN)
	for (int c = 0; c < C; c++) {
		float mean = bmean[c], rstd = brstd[c];
		double sum = 0.0, dot = 0.0;
		for (int b = 0; b < B; b++) {
			float ps, pd; /* a plane in float */
			size_t o = b * cs + (size_t)c * S;
			plane_dot(in + o, dout + o, mask ? mask + o : NULL, mean, S,
				  &ps, &pd);
			sum += ps;
			dot += pd;
		}
		dgamma[c] += (float)(dot * rstd);
		dbeta[c] += (float)sum;
		if (!din)
			continue;
		float k = (float)dot * rstd * rstd / (float)n;
		float gmean = (float)(sum / (double)n);
		for (int b = 0; b < B; b++) {
			size_t o = b * cs + (size_t)c * S;
			plane_dx(din + o, in + o, dout + o, mask ? mask + o : NULL,
				 mean, k, gmean, rstd, gamma[c], S);
		}
	}
}
