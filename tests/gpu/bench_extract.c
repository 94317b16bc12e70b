/* bench_extract - R101-Token descriptor extraction on the GPU with tk's
 * CUDA ops, as tk-extract | tk-aggregate compute it: one 1024x768 image,
 * scales 1, sqrt2, 1/sqrt2 by bilinear resize of the normalised tensor,
 * the per-scale descriptors summed and L2-normalised.  Random weights
 * with the reference's shapes, BatchNorm folded into the convolutions
 * (inference).  Reports images/s and achieved TFLOP/s per precision;
 * bench_torch.py times the same model in PyTorch.
 *
 * Until the network code (common/) runs on the dispatch layer, this file
 * carries its own forward pass, written with the kernels' CUDA API only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tk.h"
#include "kernels/cuda/cuda.h"
#include "kernels/image.h"
#include "kernels/resize.h"

static double flops; /* counted while the forward runs */
static uint64_t seed = 1;

static float *param(size_t n, float scale)
{
	float *h = xmalloc(xmul(n, sizeof *h));
	uint64_t x = ++seed * 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		h[i] = ((x >> 40) / 16777216.0f * 2 - 1) * scale;
	}
	float *d = tk_cuda_malloc(n * sizeof *d);
	tk_cuda_copy(d, h, n * sizeof *d, NULL);
	tk_cuda_sync(NULL);
	free(h);
	return d;
}

/* ---- backbone: ResNet-101, BN folded ---- */

struct conv {
	int C, OC, K, stride, pad;
	float *w, *b;
};

static struct conv mkconv(int C, int OC, int K, int stride, float gain)
{
	struct conv c = {C, OC, K, stride, K / 2, NULL, NULL};
	c.w = param((size_t)OC * C * K * K, gain * sqrtf(3.0f / (C * K * K)));
	c.b = param(OC, 0.1f);
	return c;
}

struct block {
	struct conv c1, c2, c3, ds;
	int has_ds;
};

static struct conv stem;
static struct block blocks[33];
static int nblocks;

static void build_backbone(void)
{
	static const int depth[4] = {3, 4, 23, 3};
	stem = mkconv(3, 64, 7, 2, 1.4f);
	int in = 64;
	for (int l = 0; l < 4; l++) {
		int w = 64 << l;
		for (int i = 0; i < depth[l]; i++) {
			struct block *b = &blocks[nblocks++];
			int s = i == 0 && l > 0 ? 2 : 1;
			b->c1 = mkconv(in, w, 1, 1, 1.4f);
			b->c2 = mkconv(w, w, 3, s, 1.4f);
			b->c3 = mkconv(w, 4 * w, 1, 1, 0.2f);
			b->has_ds = i == 0;
			if (b->has_ds)
				b->ds = mkconv(in, 4 * w, 1, s, 1.0f);
			in = 4 * w;
		}
	}
}

static void run_conv(float *out, const float *in, const struct conv *c, int *C,
		     int *H, int *W, const float *res, int relu)
{
	struct conv2d_dims d = {1, *C, *H, *W, c->OC, c->K, c->stride, c->pad};
	conv2d_forward_cuda(out, NULL, in, c->w, c->b, res, relu, d, NULL);
	*C = c->OC;
	*H = conv2d_out_size(*H, c->K, c->stride, c->pad);
	*W = conv2d_out_size(*W, c->K, c->stride, c->pad);
	flops += 2.0 * c->OC * c->C * c->K * c->K * *H * *W;
}

/* x: the image [3, H, W]; returns the buffer holding [2048, h, w]. */
static float *backbone(float *buf[5], const float *x, int H, int W, int *h,
		       int *w)
{
	int C = 3;
	run_conv(buf[1], x, &stem, &C, &H, &W, NULL, 1);
	int oh = (H + 2 - 3) / 2 + 1, ow = (W + 2 - 3) / 2 + 1;
	maxpool2d_forward_cuda(buf[0], NULL, buf[1], C, H, W, 3, 2, 1, NULL);
	H = oh, W = ow;
	float *cur = buf[0], *t1 = buf[1], *t2 = buf[2], *ds = buf[3], *nxt = buf[4];
	for (int i = 0; i < nblocks; i++) {
		struct block *b = &blocks[i];
		int c = C, hh = H, ww = W;
		run_conv(t1, cur, &b->c1, &c, &hh, &ww, NULL, 1);
		run_conv(t2, t1, &b->c2, &c, &hh, &ww, NULL, 1);
		const float *res = cur;
		if (b->has_ds) {
			int c2 = C, h2 = H, w2 = W;
			run_conv(ds, cur, &b->ds, &c2, &h2, &w2, NULL, 0);
			res = ds;
		}
		run_conv(nxt, t2, &b->c3, &c, &hh, &ww, res, 1);
		float *t = cur;
		cur = nxt, nxt = t;
		C = c, H = hh, W = ww;
	}
	*h = H, *w = W;
	return cur;
}

/* ---- Token head ---- */

enum { D = 1024, TOK = 4, HEADS = 8 };

struct lin {
	int in, out;
	float *w, *b;
};

static struct lin mklin(int in, int out)
{
	struct lin l = {in, out, param((size_t)out * in, sqrtf(3.0f / in)),
			param(out, 0.02f)};
	return l;
}

static void run_lin(float *out, const float *in, const struct lin *l, int N)
{
	linear_forward_cuda(out, in, l->w, l->b, N, l->in, l->out, NULL);
	flops += 2.0 * N * l->in * l->out;
}

struct attn {
	struct lin q, k, v, proj;
};

static struct attn mkattn(void)
{
	struct attn a = {mklin(D, D), mklin(D, D), mklin(D, D), mklin(D, D)};
	return a;
}

struct ln {
	float *w, *b;
};

static struct ln mkln(void)
{
	struct ln l = {param(D, 0.1f), param(D, 0.1f)};
	return l;
}

static struct {
	struct conv lfsa;         /* 1x1 2048 -> D, BN folded */
	struct attn enc;
	float *enc_bn[4];         /* gamma, beta, mean, var */
	struct lin enc_mlp;
	float *query;             /* [TOK, D] */
	struct lin tok_lin;
	struct ln tok_ln;
	struct {
		struct ln ln1, ln2;
		struct attn self, cross;
		struct lin fc1, fc2;
	} dec[2];
	struct lin proj;          /* TOK*D -> 1024 */
	float *proj_bn[4];
} hd;

static void build_head(void)
{
	hd.lfsa.C = 2048, hd.lfsa.OC = D;
	hd.lfsa.w = param((size_t)D * 2048, sqrtf(3.0f / 2048));
	hd.lfsa.b = param(D, 0.1f);
	hd.enc = mkattn();
	for (int i = 0; i < 4; i++)
		hd.enc_bn[i] = param(D, 0.1f);
	hd.enc_mlp = mklin(D, D);
	hd.query = param((size_t)TOK * D, 1.0f);
	hd.tok_lin = mklin(D, D);
	hd.tok_ln = mkln();
	for (int i = 0; i < 2; i++) {
		hd.dec[i].ln1 = mkln(), hd.dec[i].ln2 = mkln();
		hd.dec[i].self = mkattn(), hd.dec[i].cross = mkattn();
		hd.dec[i].fc1 = mklin(D, 2 * D), hd.dec[i].fc2 = mklin(2 * D, D);
	}
	hd.proj = mklin(TOK * D, 1024);
	for (int i = 0; i < 4; i++)
		hd.proj_bn[i] = param(1024, 0.1f);
	/* variances must be positive: |x| + 0.5 is not needed for timing,
	 * but keep sqrt finite */
	float ones[1024];
	for (int i = 0; i < 1024; i++)
		ones[i] = 1.0f;
	tk_cuda_copy(hd.enc_bn[3], ones, sizeof ones, NULL);
	tk_cuda_copy(hd.proj_bn[3], ones, sizeof ones, NULL);
}

struct scratch {
	float *q, *k, *v, *o, *att, *t1, *t2;
};

/* out [Nq, D] += proj(attention(q_in W_q, kv_in W_k, kv_in W_v)). */
static void run_attn(float *acc, const float *q_in, const float *kv_in, int Nq,
		     int Nk, const struct attn *a, struct scratch *s)
{
	run_lin(s->q, q_in, &a->q, Nq);
	run_lin(s->k, kv_in, &a->k, Nk);
	run_lin(s->v, kv_in, &a->v, Nk);
	attention_forward_cuda(s->o, s->att, s->q, s->k, s->v, 1, Nq, Nk, D,
			       HEADS, NULL);
	flops += 4.0 * Nq * Nk * D;
	run_lin(s->t1, s->o, &a->proj, Nq);
	add_forward_cuda(acc, acc, s->t1, (size_t)Nq * D, NULL);
}

/* feat: [2048, N] (the backbone's output); desc: [1024] */
static void head(float *desc, const float *feat, int N, struct scratch *s,
		 float *x, float *xb)
{
	/* LFSA: 1x1 conv + BN (folded) on [2048, N], then to token rows */
	struct conv2d_dims d = {1, 2048, 1, N, D, 1, 1, 0};
	conv2d_forward_cuda(xb, NULL, feat, hd.lfsa.w, hd.lfsa.b, NULL, 0, d, NULL);
	transpose_forward_cuda(x, xb, D, N, NULL);
	flops += 2.0 * N * D * 2048;
	/* encoder */
	run_attn(x, x, x, N, N, &hd.enc, s);
	batchnorm1d_forward_cuda(xb, x, hd.enc_bn[0], hd.enc_bn[1], hd.enc_bn[2],
				 hd.enc_bn[3], 1e-5f, N, D, NULL);
	run_lin(s->t1, xb, &hd.enc_mlp, N);
	add_forward_cuda(x, x, s->t1, (size_t)N * D, NULL);
	/* tokens: softmax over the token axis of query x^T, computed as
	 * [N, TOK] rows */
	float *sc = s->t2;
	gemm_cuda(0, 1, N, TOK, D, 1.0f, x, D, hd.query, D, 0.0f, sc, TOK, NULL);
	softmax_forward_cuda(sc, sc, N, TOK, NULL);
	float *tok = s->t1 + (size_t)N * D; /* [TOK, D] */
	gemm_cuda(1, 0, TOK, D, N, 1.0f, sc, TOK, x, D, 0.0f, tok, D, NULL);
	flops += 4.0 * N * TOK * D;
	float *t = s->t2 + (size_t)N * TOK; /* [TOK, D] */
	run_lin(t, tok, &hd.tok_lin, TOK);
	layernorm_forward_cuda(t, NULL, NULL, t, hd.tok_ln.w, hd.tok_ln.b, 1e-5f,
			       TOK, D, NULL);
	float *qb = tok, *h1 = s->t2 + (size_t)N * TOK + TOK * D;
	for (int i = 0; i < 2; i++) {
		layernorm_forward_cuda(qb, NULL, NULL, t, hd.dec[i].ln1.w,
				       hd.dec[i].ln1.b, 1e-5f, TOK, D, NULL);
		run_attn(t, qb, x, TOK, N, &hd.dec[i].cross, s);
		run_lin(h1, t, &hd.dec[i].fc1, TOK);
		gelu_forward_cuda(h1, h1, (size_t)TOK * 2 * D, NULL);
		run_lin(qb, h1, &hd.dec[i].fc2, TOK);
		add_forward_cuda(t, t, qb, (size_t)TOK * D, NULL);
		layernorm_forward_cuda(qb, NULL, NULL, t, hd.dec[i].ln2.w,
				       hd.dec[i].ln2.b, 1e-5f, TOK, D, NULL);
		run_attn(t, qb, qb, TOK, TOK, &hd.dec[i].self, s);
	}
	run_lin(desc, t, &hd.proj, 1);
	batchnorm1d_forward_cuda(desc, desc, hd.proj_bn[0], hd.proj_bn[1],
				 hd.proj_bn[2], hd.proj_bn[3], 1e-5f, 1, 1024, NULL);
	l2norm_forward_cuda(desc, desc, 1e-12f, 1, 1024, NULL);
}

/* ---- one image, three scales ---- */

static float *buf[5], *img, *scaled, *descs, *x, *xb;
static struct scratch sc;
static int IH = 768, IW = 1024;

static void extract(void)
{
	static const double scales[3] = {1.0, M_SQRT2, M_SQRT1_2};
	for (int i = 0; i < 3; i++) {
		const float *in = img;
		int H = IH, W = IW;
		if (scales[i] != 1.0) {
			H = resize_out_size(IH, scales[i]);
			W = resize_out_size(IW, scales[i]);
			resize_bilinear_forward_cuda(scaled, img, 3, IH, IW, H, W,
						     scales[i], scales[i], NULL);
			in = scaled;
		}
		int h, w;
		float *feat = backbone(buf, in, H, W, &h, &w);
		head(descs + i * 1024, feat, h * w, &sc, x, xb);
	}
	/* sum of the three, L2-normalised: one GEMM-free pass on 3 rows */
	add_forward_cuda(descs, descs, descs + 1024, 1024, NULL);
	add_forward_cuda(descs, descs, descs + 2048, 1024, NULL);
	l2norm_forward_cuda(descs, descs, 1e-12f, 1, 1024, NULL);
}

static int cmpf(const void *a, const void *b)
{
	float p = *(const float *)a, q = *(const float *)b;
	return p < q ? -1 : p > q;
}

int main(void)
{
	tk_init("bench_extract");
	if (tk_cuda_device_count() == 0) {
		printf("skipped: no CUDA device\n");
		return 77;
	}
	tk_cuda_init(0);
	printf("device: %s\n", tk_cuda_device_name());
	build_backbone();
	build_head();
	/* Largest activation: the stem's output at scale sqrt2 (64 x H/2 x
	 * W/2) and layer1's (256 x H/4 x W/4) are equal; plus margin. */
	int H2 = resize_out_size(IH, M_SQRT2), W2 = resize_out_size(IW, M_SQRT2);
	size_t big = (size_t)64 * (H2 / 2 + 2) * (W2 / 2 + 2);
	for (int i = 0; i < 5; i++)
		buf[i] = tk_cuda_malloc(big * 4);
	size_t N = (size_t)(H2 / 32 + 2) * (W2 / 32 + 2);
	img = param((size_t)3 * IH * IW, 2.0f);
	scaled = tk_cuda_malloc((size_t)3 * H2 * W2 * 4);
	descs = tk_cuda_malloc(3 * 1024 * 4);
	x = tk_cuda_malloc(N * D * 4), xb = tk_cuda_malloc(N * D * 4);
	sc.q = tk_cuda_malloc(N * D * 4), sc.k = tk_cuda_malloc(N * D * 4);
	sc.v = tk_cuda_malloc(N * D * 4), sc.o = tk_cuda_malloc(N * D * 4);
	sc.att = tk_cuda_malloc(N * N * HEADS * 4);
	sc.t1 = tk_cuda_malloc((N * D + TOK * D) * 4);
	sc.t2 = tk_cuda_malloc((N * TOK + TOK * D + TOK * 2 * D) * 4);
	tk_event a = tk_cuda_event_create(), b = tk_cuda_event_create();
	for (int p = TK_FP32; p <= TK_BF16; p++) {
		tk_cuda_set_precision(p);
		double t0 = tk_now();
		extract(); /* first: cuDNN's algorithm search */
		tk_cuda_sync(NULL);
		double first = tk_now() - t0;
		extract();
		float ms[10];
		int reps = 10;
		for (int r = 0; r < reps; r++) {
			flops = 0;
			tk_cuda_event_record(a, NULL);
			extract();
			tk_cuda_event_record(b, NULL);
			ms[r] = tk_cuda_event_ms(a, b);
		}
		qsort(ms, reps, sizeof *ms, cmpf);
		float m = ms[reps / 2];
		float d[1024];
		tk_cuda_copy(d, descs, sizeof d, NULL);
		tk_cuda_sync(NULL);
		double norm = 0;
		int finite = 1;
		for (int i = 0; i < 1024; i++) {
			norm += (double)d[i] * d[i];
			finite &= isfinite(d[i]);
		}
		printf("RESULT tk extract %s 1024x768 3 scales: %.2f images/s (%.1f ms; "
		       "%.1f GFLOP, %.1f TFLOP/s; first call %.2f s; |desc| %.4f%s)\n",
		       tk_precision_name(p), 1000 / m, m, flops / 1e9,
		       flops / m / 1e9, first, sqrt(norm), finite ? "" : " NOT FINITE");
	}
	return 0;
}
