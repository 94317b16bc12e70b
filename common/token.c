/* token.c - the Token head's forward pass: attention modules, the LFSA
 * encoder, the tokenizer, the refinement decoders, the projection. */
#include "token.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "tk.h"

static const float *get(const struct tk_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const float *get(const struct tk_model *m, const char *fmt, ...)
{
	char name[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	const float *t = tk_model_tensor(m, name);
	if (!t)
		tk_die(TK_EXIT_DATA, "model has no tensor '%s'", name);
	return t;
}

static struct tk_linear linear(const struct tk_model *m, const char *name,
			       int in, int out)
{
	return (struct tk_linear){get(m, "%s.weight", name),
				  get(m, "%s.bias", name), in, out};
}

static struct tk_attn attn(const struct tk_model *m, const char *name, int d,
			   int heads)
{
	char n[128];
	struct tk_attn a;
	snprintf(n, sizeof n, "%s.q", name);
	a.q = linear(m, n, d, d);
	snprintf(n, sizeof n, "%s.k", name);
	a.k = linear(m, n, d, d);
	snprintf(n, sizeof n, "%s.v", name);
	a.v = linear(m, n, d, d);
	snprintf(n, sizeof n, "%s.proj", name);
	a.proj = linear(m, n, d, d);
	a.heads = heads;
	return a;
}

static struct tk_bn1d bn1d(const struct tk_model *m, const char *name)
{
	return (struct tk_bn1d){get(m, "%s.weight", name), get(m, "%s.bias", name),
				get(m, "%s.running_mean", name),
				get(m, "%s.running_var", name)};
}

static void lin(float *out, const struct tk_linear *l, const float *in, int n)
{
	linear_forward(out, in, l->w, l->b, n, l->in, l->out);
}

/* Scratch of an attention module for Nq queries and Nk keys (the
 * probabilities are not kept: inference). */
struct attn_bufs {
	float *q, *k, *v, *a;
};

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

static size_t attn_layout(struct attn_bufs *b, float *base, int Nq, int Nk,
			  int d)
{
	size_t sz[4] = {round16((size_t)Nq * d), round16((size_t)Nk * d),
			round16((size_t)Nk * d), round16((size_t)Nq * d)};
	float **p[4] = {&b->q, &b->k, &b->v, &b->a};
	size_t off = 0;
	for (int i = 0; i < 4; i++) {
		if (base)
			*p[i] = base + off;
		off += sz[i];
	}
	return off;
}

/* out [Nq, D] = proj(attention(q(xq), k(xkv), v(xkv))). */
static void attn_forward(float *out, const struct tk_attn *a,
			 const struct attn_bufs *b, const float *xq,
			 const float *xkv, int Nq, int Nk)
{
	int d = a->q.out;
	lin(b->q, &a->q, xq, Nq);
	lin(b->k, &a->k, xkv, Nk);
	lin(b->v, &a->v, xkv, Nk);
	attention_forward(b->a, NULL, b->q, b->k, b->v, 1, Nq, Nk, d, a->heads);
	lin(out, &a->proj, b->a, Nq);
}

/* ---- LFSA ---- */

void tk_lfsa_init(struct tk_lfsa *l, struct tk_model *m)
{
	const struct tk_arch *a = &m->arch;
	int d = a->mid_dim, c = 32 * a->width;
	memset(l, 0, sizeof *l);
	float *w = tk_model_tensor(m, "tr.conv.0.weight");
	float *bias = tk_model_tensor(m, "tr.conv.1.bias");
	batchnorm2d_fold(w, bias, tk_model_tensor(m, "tr.conv.0.bias"),
			 tk_model_tensor(m, "tr.conv.1.weight"), bias,
			 tk_model_tensor(m, "tr.conv.1.running_mean"),
			 tk_model_tensor(m, "tr.conv.1.running_var"), 1e-5f, d, c);
	l->conv = (struct tk_conv){w, bias, c, d, 1, 1, 0};
	l->dim = d;
	l->nenc = a->enc_layers;
	l->enc = xcalloc(l->nenc ? l->nenc : 1, sizeof *l->enc);
	for (int i = 0; i < l->nenc; i++) {
		char n[64];
		snprintf(n, sizeof n, "tr.encoder.%d.attn", i);
		l->enc[i].attn = attn(m, n, d, a->heads);
		snprintf(n, sizeof n, "tr.encoder.%d.bn", i);
		l->enc[i].bn = bn1d(m, n);
		snprintf(n, sizeof n, "tr.encoder.%d.mlp", i);
		l->enc[i].mlp = linear(m, n, d, d);
	}
}

void tk_lfsa_free(struct tk_lfsa *l)
{
	free(l->enc);
	memset(l, 0, sizeof *l);
}

static size_t lfsa_layout(const struct tk_lfsa *l, int N, float *base,
			  struct attn_bufs *ab, float **t)
{
	size_t off = attn_layout(ab, base, N, N, l->dim);
	if (base)
		*t = base + off;
	return off + round16((size_t)N * l->dim);
}

size_t tk_lfsa_scratch(const struct tk_lfsa *l, int N)
{
	struct attn_bufs ab;
	return lfsa_layout(l, N, NULL, &ab, NULL);
}

int tk_lfsa_forward(const struct tk_lfsa *l, float *out, float *scratch,
		    const float *in, int N, int check, char *err, size_t errlen)
{
	struct attn_bufs ab;
	float *t = NULL;
	lfsa_layout(l, N, scratch, &ab, &t);
	int d = l->dim;
	size_t nd = (size_t)N * d;
	/* The 1x1 convolution straight into token-major [N, D]:
	 * out = in^T W^T + b. */
	for (int i = 0; i < N; i++)
		memcpy(out + (size_t)i * d, l->conv.b, d * sizeof *out);
	gemm(1, 1, N, d, l->conv.C, 1.0f, in, N, l->conv.w, l->conv.C, 1.0f, out, d);
	if (tk_check_finite(check, out, nd, "tr.conv", err, errlen))
		return -1;
	for (int i = 0; i < l->nenc; i++) {
		const struct tk_encoder *e = &l->enc[i];
		attn_forward(t, &e->attn, &ab, out, out, N, N);
		add_forward(out, out, t, nd);
		batchnorm1d_forward(t, out, e->bn.w, e->bn.b, e->bn.mean, e->bn.var,
				    1e-5f, N, d);
		lin(ab.q, &e->mlp, t, N);
		add_forward(out, out, ab.q, nd);
		char what[32];
		snprintf(what, sizeof what, "tr.encoder.%d", i);
		if (tk_check_finite(check, out, nd, what, err, errlen))
			return -1;
	}
	return 0;
}

/* ---- head ---- */

void tk_head_init(struct tk_head *h, const struct tk_model *m)
{
	const struct tk_arch *a = &m->arch;
	int d = a->mid_dim;
	memset(h, 0, sizeof *h);
	h->dim = d;
	h->tokens = a->tokens;
	h->out_dim = a->out_dim;
	h->query = get(m, "tr.query");
	h->token = linear(m, "tr.token_norm.0", d, d);
	h->ln_w = get(m, "tr.token_norm.1.weight");
	h->ln_b = get(m, "tr.token_norm.1.bias");
	h->ndec = a->dec_layers;
	h->dec = xcalloc(h->ndec ? h->ndec : 1, sizeof *h->dec);
	for (int i = 0; i < h->ndec; i++) {
		struct tk_decoder *dc = &h->dec[i];
		char n[64];
		snprintf(n, sizeof n, "tr.decoder.%d.self_attn", i);
		dc->self = attn(m, n, d, a->heads);
		snprintf(n, sizeof n, "tr.decoder.%d.cross_attn", i);
		dc->cross = attn(m, n, d, a->heads);
		dc->ln1_w = get(m, "tr.decoder.%d.bn1.weight", i);
		dc->ln1_b = get(m, "tr.decoder.%d.bn1.bias", i);
		dc->ln2_w = get(m, "tr.decoder.%d.bn2.weight", i);
		dc->ln2_b = get(m, "tr.decoder.%d.bn2.bias", i);
		snprintf(n, sizeof n, "tr.decoder.%d.mlp.fc1", i);
		dc->fc1 = linear(m, n, d, 2 * d);
		snprintf(n, sizeof n, "tr.decoder.%d.mlp.fc2", i);
		dc->fc2 = linear(m, n, 2 * d, d);
	}
	h->proj = linear(m, "tr.proj.0", d * a->tokens, a->out_dim);
	h->bn = bn1d(m, "tr.proj.1");
}

void tk_head_free(struct tk_head *h)
{
	free(h->dec);
	memset(h, 0, sizeof *h);
}

struct head_bufs {
	struct attn_bufs ab;         /* self-attention: T queries and keys */
	float *qk, *logits, *ax;     /* cross-attention, per head */
	float *tok, *qb, *t, *hid;
};

static size_t head_layout(const struct tk_head *h, int N, float *base,
			  struct head_bufs *b)
{
	int T = h->tokens, d = h->dim, H = h->ndec ? h->dec[0].cross.heads : 1;
	size_t off = attn_layout(&b->ab, base, T, T, d);
	size_t out = (size_t)T * d > (size_t)h->out_dim ? (size_t)T * d
							 : (size_t)h->out_dim;
	size_t sz[7] = {round16((size_t)H * T * d), round16((size_t)H * T * N),
			round16((size_t)H * T * d), round16((size_t)T * d),
			round16((size_t)T * d), round16(out),
			round16((size_t)T * 2 * d)};
	float **p[7] = {&b->qk, &b->logits, &b->ax, &b->tok, &b->qb, &b->t, &b->hid};
	for (int i = 0; i < 7; i++) {
		if (base)
			*p[i] = base + off;
		off += sz[i];
	}
	return off;
}

/* out [T, D] = proj(cross_attn(q(xq), k(x), v(x))) for few queries (T)
 * and many keys (N), without projecting the N keys and values: per head
 * h, q_h k_h^T = (q_h Wk_h) x^T + q_h . bk_h and a_h v_h = (a_h x) Wv_h^T
 * + bv_h (a_h's rows sum to 1), so the work is O(T D (D + N)) instead
 * of O(N D^2): the same values up to float rounding. */
static void cross_attn_forward(float *out, const struct tk_attn *a,
			       const struct head_bufs *b, const float *xq,
			       const float *x, int T, int N)
{
	int d = a->q.out, H = a->heads, dh = d / H;
	float scale = (float)pow((double)dh, -0.5);
	float *q = b->ab.q, *o = b->ab.a;
	lin(q, &a->q, xq, T);
#pragma omp parallel for schedule(static)
	for (int h = 0; h < H; h++) {
		float *qk = b->qk + (size_t)h * T * d;
		float *lg = b->logits + (size_t)h * T * N;
		float *ax = b->ax + (size_t)h * T * d;
		const float *wk = a->k.w + (size_t)h * dh * d;
		const float *wv = a->v.w + (size_t)h * dh * d;
		/* qk = q_h Wk_h: [T, dh] x [dh, D]. */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, dh, 1.0f,
			    q + h * dh, d, wk, d, 0.0f, qk, d);
		/* logits = qk x^T + q_h . bk_h, then scaled. */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, d, 1.0f, qk,
			    d, x, d, 0.0f, lg, N);
		for (int t = 0; t < T; t++) {
			float c = 0.0f;
			for (int j = 0; j < dh; j++)
				c += q[(size_t)t * d + h * dh + j] * a->k.b[h * dh + j];
			for (int n = 0; n < N; n++)
				lg[(size_t)t * N + n] = (lg[(size_t)t * N + n] + c) * scale;
		}
		softmax_forward(lg, lg, T, N);
		/* o_h = (a_h x) Wv_h^T + bv_h. */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, N, 1.0f, lg,
			    N, x, d, 0.0f, ax, d);
		for (int t = 0; t < T; t++)
			memcpy(o + (size_t)t * d + h * dh, a->v.b + h * dh,
			       dh * sizeof *o);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, dh, d, 1.0f, ax,
			    d, wv, d, 1.0f, o + h * dh, d);
	}
	lin(out, &a->proj, o, T);
}

size_t tk_head_scratch(const struct tk_head *h, int N)
{
	struct head_bufs b;
	return head_layout(h, N, NULL, &b);
}

int tk_head_forward(const struct tk_head *h, float *desc, float *scratch,
		    const float *x, int N, int check, char *err, size_t errlen)
{
	struct head_bufs b;
	head_layout(h, N, scratch, &b);
	int T = h->tokens, d = h->dim;
	size_t td = (size_t)T * d;
	/* Tokenizer: for each position, a softmax over the T queries. */
	gemm(0, 1, N, T, d, 1.0f, x, d, h->query, d, 0.0f, b.logits, T);
	softmax_forward(b.logits, b.logits, N, T);
	gemm(1, 0, T, d, N, 1.0f, b.logits, T, x, d, 0.0f, b.t, d);
	lin(b.tok, &h->token, b.t, T);
	layernorm_forward(b.tok, NULL, NULL, b.tok, h->ln_w, h->ln_b, 1e-5f, T, d);
	if (tk_check_finite(check, b.tok, td, "tr.token_norm", err, errlen))
		return -1;
	for (int i = 0; i < h->ndec; i++) {
		const struct tk_decoder *dc = &h->dec[i];
		layernorm_forward(b.qb, NULL, NULL, b.tok, dc->ln1_w, dc->ln1_b, 1e-5f,
				  T, d);
		cross_attn_forward(b.t, &dc->cross, &b, b.qb, x, T, N);
		add_forward(b.tok, b.tok, b.t, td);
		lin(b.hid, &dc->fc1, b.tok, T);
		gelu_forward(b.hid, b.hid, (size_t)T * 2 * d);
		lin(b.t, &dc->fc2, b.hid, T);
		add_forward(b.tok, b.tok, b.t, td);
		layernorm_forward(b.qb, NULL, NULL, b.tok, dc->ln2_w, dc->ln2_b, 1e-5f,
				  T, d);
		attn_forward(b.t, &dc->self, &b.ab, b.qb, b.qb, T, T);
		add_forward(b.tok, b.tok, b.t, td);
		char what[32];
		snprintf(what, sizeof what, "tr.decoder.%d", i);
		if (tk_check_finite(check, b.tok, td, what, err, errlen))
			return -1;
	}
	/* The tokens concatenated: [1, T*D]. */
	lin(b.t, &h->proj, b.tok, 1);
	batchnorm1d_forward(b.t, b.t, h->bn.w, h->bn.b, h->bn.mean, h->bn.var, 1e-5f,
			    1, h->out_dim);
	if (tk_check_finite(check, b.t, h->out_dim, "tr.proj", err, errlen))
		return -1;
	l2norm_forward(desc, b.t, 1e-12f, 1, h->out_dim);
	return 0;
}
