/* trainnet_head.c - the Token head for training, as the reference's
 * Token_Refine: 1x1 convolution + BatchNorm2d; encoder layers
 * (self-attention, residual, BatchNorm1d over all tokens, linear,
 * residual); the tokenizer (softmax over the token axis of
 * query . feature^T, tokens = weights x features, linear + LayerNorm);
 * decoder layers (LayerNorm -> cross-attention -> residual; MLP with GELU
 * -> residual; LayerNorm -> self-attention -> residual); the tokens
 * concatenated -> linear -> BatchNorm1d.  Dropout (attention
 * probabilities, projections, the MLP) and drop-path on every residual
 * branch, as the reference passes drop, attn_drop and drop_path to both
 * encoder and decoder. */
#include <string.h>

#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "tk.h"
#include "trainnet_impl.h"

/* Dropout sites: per layer, a base and an index. */
#define ENC_SITE(l) (16 * (l))
#define DEC_SITE(l) (1000 + 16 * (l))

static size_t max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

static int dropping(const struct tk_net *n)
{
	return n->trained && n->p > 0.0f;
}

static void attn_plan(struct tk_net *n, struct attn *a, const struct tk_model *m,
		      const char *name, int Nq, int Nk)
{
	int B = n->B, D = n->arch.mid_dim, h = n->arch.heads;
	a->wq = net_param(m, "%s.q.weight", name);
	a->bq = net_param(m, "%s.q.bias", name);
	a->wk = net_param(m, "%s.k.weight", name);
	a->bk = net_param(m, "%s.k.bias", name);
	a->wv = net_param(m, "%s.v.weight", name);
	a->bv = net_param(m, "%s.v.bias", name);
	a->wp = net_param(m, "%s.proj.weight", name);
	a->bp = net_param(m, "%s.proj.bias", name);
	a->Nq = Nq;
	a->Nk = Nk;
	size_t nq = (size_t)B * Nq * D, nk = (size_t)B * Nk * D;
	size_t na = (size_t)B * h * Nq * Nk;
	a->q = net_alloc(n, nq, 4, MEM_ACT);
	a->k = net_alloc(n, nk, 4, MEM_ACT);
	a->v = net_alloc(n, nk, 4, MEM_ACT);
	a->ao = net_alloc(n, nq, 4, MEM_ACT);
	a->att = net_alloc(n, na, 4, MEM_ACT);
	if (n->p > 0.0f) {
		a->amask = net_alloc(n, na, 1, MEM_ACT);
		a->pmask = net_alloc(n, nq, 1, MEM_ACT);
		a->dpath = net_alloc(n, B, 1, MEM_ACT);
	}
	n->hsize = max_sz(n->hsize, nk);
}

/* br = drop_path(dropout(proj(attention(q(qin), k(kvin), v(kvin))))). */
static void attn_forward(struct tk_net *n, const struct tk_model *m,
			 struct attn *a, float *br, const float *qin,
			 const float *kvin, int site)
{
	int B = n->curB, D = n->arch.mid_dim, Nq = a->Nq, Nk = a->Nk;
	const float *P = net_P(n, m);
	int drop = dropping(n);
	dev_linear_forward(n->dv, a->q, qin, P + a->wq, P + a->bq, B * Nq, D, D);
	dev_linear_forward(n->dv, a->k, kvin, P + a->wk, P + a->bk, B * Nk, D, D);
	dev_linear_forward(n->dv, a->v, kvin, P + a->wv, P + a->bv, B * Nk, D, D);
	dev_attention_train_forward(n->dv, a->ao, a->att, drop ? a->amask : NULL, a->q, a->k,
				a->v, drop ? n->p : 0.0f, net_site_seed(n, site), B,
				Nq, Nk, D, n->arch.heads);
	dev_linear_forward(n->dv, br, a->ao, P + a->wp, P + a->bp, B * Nq, D, D);
	if (drop) {
		size_t nq = (size_t)B * Nq * D;
		dev_dropout_forward(n->dv, br, a->pmask, br, n->p, net_site_seed(n, site + 1), nq);
		dev_droppath_forward(n->dv, br, a->dpath, br, n->p, net_site_seed(n, site + 2), B,
				 (size_t)Nq * D);
	}
}

/* dbr: the branch's gradient (read first); dqin and dkvin accumulate and
 * may be dbr itself, or each other.  Uses n->h[0..5]. */
static void attn_backward(struct tk_net *n, const struct tk_model *m,
			  float *grad, const struct attn *a, const float *dbr,
			  float *dqin, float *dkvin, const float *qin,
			  const float *kvin)
{
	int B = n->curB, D = n->arch.mid_dim, Nq = a->Nq, Nk = a->Nk;
	size_t nq = (size_t)B * Nq * D, nk = (size_t)B * Nk * D;
	const float *P = net_P(n, m);
	int drop = dropping(n);
	const float *dproj = dbr;
	if (drop) {
		dev_zero(n->dv, n->h[0], nq * 4);
		dev_droppath_backward(n->dv, n->h[0], dbr, a->dpath, n->p, B, (size_t)Nq * D);
		dev_zero(n->dv, n->h[1], nq * 4);
		dev_dropout_backward(n->dv, n->h[1], n->h[0], a->pmask, n->p, nq);
		dproj = n->h[1];
	}
	float *dao = n->h[2], *dq = n->h[3], *dk = n->h[4], *dv = n->h[5];
	dev_zero(n->dv, dao, nq * 4);
	dev_linear_backward(n->dv, dao, grad + a->wp, grad + a->bp, dproj, a->ao, P + a->wp,
			B * Nq, D, D);
	dev_zero(n->dv, dq, nq * 4);
	dev_zero(n->dv, dk, nk * 4);
	dev_zero(n->dv, dv, nk * 4);
	dev_attention_backward(n->dv, dq, dk, dv, dao, a->att, drop ? a->amask : NULL, a->q,
			   a->k, a->v, drop ? n->p : 0.0f, B, Nq, Nk, D,
			   n->arch.heads);
	dev_linear_backward(n->dv, dqin, grad + a->wq, grad + a->bq, dq, qin, P + a->wq,
			B * Nq, D, D);
	dev_linear_backward(n->dv, dkvin, grad + a->wk, grad + a->bk, dk, kvin, P + a->wk,
			B * Nk, D, D);
	dev_linear_backward(n->dv, dkvin, grad + a->wv, grad + a->bv, dv, kvin, P + a->wv,
			B * Nk, D, D);
}

void head_plan(struct tk_net *n, const struct tk_model *m)
{
	const struct tk_arch *A = &m->arch;
	int B = n->B, D = A->mid_dim, T = A->tokens, O = A->out_dim, N = n->n;
	size_t bnd = (size_t)B * N * D, btd = (size_t)B * T * D;
	char name[96];
	cbn_plan(n, &n->tconv, m, "tr.conv.0", "tr.conv.1", 32 * A->width, n->fh,
		 n->fw, D, 1, 1, 0, 1, 0);
	n->x0 = net_alloc(n, bnd, 4, MEM_ACT);
	n->enc = xcalloc(A->enc_layers ? A->enc_layers : 1, sizeof *n->enc);
	for (int l = 0; l < A->enc_layers; l++) {
		struct enc_layer *e = &n->enc[l];
		snprintf(name, sizeof name, "tr.encoder.%d.attn", l);
		attn_plan(n, &e->a, m, name, N, N);
		e->bng = net_param(m, "tr.encoder.%d.bn.weight", l);
		e->bnb = net_param(m, "tr.encoder.%d.bn.bias", l);
		e->bnrm = net_param(m, "tr.encoder.%d.bn.running_mean", l);
		e->bnrv = net_param(m, "tr.encoder.%d.bn.running_var", l);
		e->bncnt = net_param(m, "tr.encoder.%d.bn.num_batches_tracked", l);
		e->mw = net_param(m, "tr.encoder.%d.mlp.weight", l);
		e->mb = net_param(m, "tr.encoder.%d.mlp.bias", l);
		e->x1 = net_alloc(n, bnd, 4, MEM_ACT);
		e->xb = net_alloc(n, bnd, 4, MEM_ACT);
		e->out = net_alloc(n, bnd, 4, MEM_ACT);
		e->mean = net_alloc(n, D, 4, MEM_ACT);
		e->rstd = net_alloc(n, D, 4, MEM_ACT);
		if (n->p > 0.0f)
			e->dpath2 = net_alloc(n, B, 1, MEM_ACT);
	}
	n->query = net_param(m, "tr.query");
	n->tnw = net_param(m, "tr.token_norm.0.weight");
	n->tnb = net_param(m, "tr.token_norm.0.bias");
	n->tlnw = net_param(m, "tr.token_norm.1.weight");
	n->tlnb = net_param(m, "tr.token_norm.1.bias");
	n->at = net_alloc(n, (size_t)B * N * T, 4, MEM_ACT);
	n->tok = net_alloc(n, btd, 4, MEM_ACT);
	n->tl = net_alloc(n, btd, 4, MEM_ACT);
	n->tq = net_alloc(n, btd, 4, MEM_ACT);
	n->tm = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
	n->tr = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
	n->dec = xcalloc(A->dec_layers ? A->dec_layers : 1, sizeof *n->dec);
	for (int l = 0; l < A->dec_layers; l++) {
		struct dec_layer *d = &n->dec[l];
		snprintf(name, sizeof name, "tr.decoder.%d.cross_attn", l);
		attn_plan(n, &d->ca, m, name, T, N);
		snprintf(name, sizeof name, "tr.decoder.%d.self_attn", l);
		attn_plan(n, &d->sa, m, name, T, T);
		d->ln1w = net_param(m, "tr.decoder.%d.bn1.weight", l);
		d->ln1b = net_param(m, "tr.decoder.%d.bn1.bias", l);
		d->ln2w = net_param(m, "tr.decoder.%d.bn2.weight", l);
		d->ln2b = net_param(m, "tr.decoder.%d.bn2.bias", l);
		d->fc1w = net_param(m, "tr.decoder.%d.mlp.fc1.weight", l);
		d->fc1b = net_param(m, "tr.decoder.%d.mlp.fc1.bias", l);
		d->fc2w = net_param(m, "tr.decoder.%d.mlp.fc2.weight", l);
		d->fc2b = net_param(m, "tr.decoder.%d.mlp.fc2.bias", l);
		d->qn = net_alloc(n, btd, 4, MEM_ACT);
		d->m1 = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
		d->r1 = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
		d->q1 = net_alloc(n, btd, 4, MEM_ACT);
		d->h1 = net_alloc(n, 2 * btd, 4, MEM_ACT);
		d->gd = net_alloc(n, 2 * btd, 4, MEM_ACT);
		d->q2 = net_alloc(n, btd, 4, MEM_ACT);
		d->qn2 = net_alloc(n, btd, 4, MEM_ACT);
		d->m2 = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
		d->r2 = net_alloc(n, (size_t)B * T, 4, MEM_ACT);
		d->out = net_alloc(n, btd, 4, MEM_ACT);
		if (n->p > 0.0f) {
			d->actmask = net_alloc(n, 2 * btd, 1, MEM_ACT);
			d->fc2mask = net_alloc(n, btd, 1, MEM_ACT);
			d->dpath_mlp = net_alloc(n, B, 1, MEM_ACT);
		}
	}
	n->pw0 = net_param(m, "tr.proj.0.weight");
	n->pb0 = net_param(m, "tr.proj.0.bias");
	n->pg = net_param(m, "tr.proj.1.weight");
	n->pbb = net_param(m, "tr.proj.1.bias");
	n->prm = net_param(m, "tr.proj.1.running_mean");
	n->prv = net_param(m, "tr.proj.1.running_var");
	n->pcnt = net_param(m, "tr.proj.1.num_batches_tracked");
	n->pj = net_alloc(n, (size_t)B * O, 4, MEM_ACT);
	n->e = net_alloc(n, (size_t)B * O, 4, MEM_ACT);
	n->pmean = net_alloc(n, O, 4, MEM_ACT);
	n->prstd = net_alloc(n, O, 4, MEM_ACT);
	n->hsize = max_sz(n->hsize, bnd);
	n->hsize = max_sz(n->hsize, 2 * btd);
	n->hsize = max_sz(n->hsize, (size_t)B * N * T);
	n->hsize = max_sz(n->hsize, (size_t)B * O);
	for (int i = 0; i < 6; i++)
		n->h[i] = net_alloc(n, n->hsize, 4, MEM_SCRATCH);
	n->gx = net_alloc(n, bnd, 4, MEM_SCRATCH);
	n->gq = net_alloc(n, btd, 4, MEM_SCRATCH);
	n->dln = net_alloc(n, btd, 4, MEM_SCRATCH);
	n->de = net_alloc(n, (size_t)B * O, 4, MEM_SCRATCH);
}

/* [B, R, C] <-> [B, C, R] */
static void transpose(const struct tk_net *n, float *dst, const float *src,
		      int B, int R, int C)
{
	if (tk_dev_is_cuda(n->dv)) {
		for (int b = 0; b < B; b++)
			dev_transpose(n->dv, dst + (size_t)b * R * C,
				      src + (size_t)b * R * C, R, C);
		return;
	}
#pragma omp parallel for collapse(2) if ((size_t)B * R * C > 65536)
	for (int b = 0; b < B; b++)
		for (int r = 0; r < R; r++) {
			const float *s = src + ((size_t)b * R + r) * C;
			float *d = dst + (size_t)b * R * C + r;
			for (int c = 0; c < C; c++)
				d[(size_t)c * R] = s[c];
		}
}

static const float *encoder_output(const struct tk_net *n)
{
	int L = n->arch.enc_layers;
	return L ? n->enc[L - 1].out : n->x0;
}

static const float *decoder_output(const struct tk_net *n)
{
	int L = n->arch.dec_layers;
	return L ? n->dec[L - 1].out : n->tq;
}

void head_forward(struct tk_net *n, struct tk_model *m, const float *feat)
{
	const struct tk_arch *A = &n->arch;
	int B = n->curB, D = A->mid_dim, T = A->tokens, O = A->out_dim, N = n->n;
	size_t bnd = (size_t)B * N * D, btd = (size_t)B * T * D;
	float *P = net_P(n, m), *br = n->h[0];
	int drop = dropping(n);
	cbn_forward(n, &n->tconv, m, n->h[1], feat, 0);
	dev_mark(n->dv, "head encoder forward");
	transpose(n, n->x0, n->h[1], B, D, N);
	const float *x = n->x0;
	for (int l = 0; l < A->enc_layers; l++) {
		struct enc_layer *e = &n->enc[l];
		attn_forward(n, m, &e->a, br, x, x, ENC_SITE(l));
		dev_add_forward(n->dv, e->x1, x, br, bnd);
		if (n->trained) {
			dev_batchnorm_train_forward(n->dv, e->xb, e->mean, e->rstd, P + e->bnrm,
						P + e->bnrv, e->x1, P + e->bng,
						P + e->bnb, BN_EPS, BN_MOMENTUM, 0,
						B * N, D, 1);
			m->data[e->bncnt] += 1.0f;
		} else {
			dev_batchnorm_eval_forward(n->dv, e->xb, e->x1, P + e->bng, P + e->bnb,
					       P + e->bnrm, P + e->bnrv, BN_EPS,
					       B * N, D, 1);
		}
		dev_linear_forward(n->dv, br, e->xb, P + e->mw, P + e->mb, B * N, D, D);
		if (drop)
			dev_droppath_forward(n->dv, br, e->dpath2, br, n->p,
					 net_site_seed(n, ENC_SITE(l) + 3), B,
					 (size_t)N * D);
		dev_add_forward(n->dv, e->out, e->x1, br, bnd);
		x = e->out;
	}
	dev_mark(n->dv, "head tokenizer forward");
	/* Tokenizer: at[b] = softmax_tokens(x[b] query^T), [N, T]; tokens =
	 * at[b]^T x[b]. */
	const float *Q = P + n->query;
	for (int b = 0; b < B; b++)
		dev_gemm(n->dv, 0, 1, N, T, D, 1.0f, x + (size_t)b * N * D, D, Q, D, 0.0f,
		     n->at + (size_t)b * N * T, T);
	dev_softmax_forward(n->dv, n->at, n->at, B * N, T);
	for (int b = 0; b < B; b++)
		dev_gemm(n->dv, 1, 0, T, D, N, 1.0f, n->at + (size_t)b * N * T, T,
		     x + (size_t)b * N * D, D, 0.0f, n->tok + (size_t)b * T * D, D);
	dev_linear_forward(n->dv, n->tl, n->tok, P + n->tnw, P + n->tnb, B * T, D, D);
	dev_layernorm_forward(n->dv, n->tq, n->tm, n->tr, n->tl, P + n->tlnw, P + n->tlnb,
			  LN_EPS, B * T, D);
	dev_mark(n->dv, "head decoder forward");
	const float *q = n->tq;
	for (int l = 0; l < A->dec_layers; l++) {
		struct dec_layer *d = &n->dec[l];
		int s = DEC_SITE(l);
		dev_layernorm_forward(n->dv, d->qn, d->m1, d->r1, q, P + d->ln1w, P + d->ln1b,
				  LN_EPS, B * T, D);
		attn_forward(n, m, &d->ca, br, d->qn, x, s);
		dev_add_forward(n->dv, d->q1, q, br, btd);
		/* The MLP works on q1 itself, without a norm, as the
		 * reference's. */
		dev_linear_forward(n->dv, d->h1, d->q1, P + d->fc1w, P + d->fc1b, B * T, D, 2 * D);
		dev_gelu_forward(n->dv, d->gd, d->h1, 2 * btd);
		if (drop)
			dev_dropout_forward(n->dv, d->gd, d->actmask, d->gd, n->p,
					net_site_seed(n, s + 3), 2 * btd);
		dev_linear_forward(n->dv, br, d->gd, P + d->fc2w, P + d->fc2b, B * T, 2 * D, D);
		if (drop) {
			dev_dropout_forward(n->dv, br, d->fc2mask, br, n->p,
					net_site_seed(n, s + 4), btd);
			dev_droppath_forward(n->dv, br, d->dpath_mlp, br, n->p,
					 net_site_seed(n, s + 5), B, (size_t)T * D);
		}
		dev_add_forward(n->dv, d->q2, d->q1, br, btd);
		dev_layernorm_forward(n->dv, d->qn2, d->m2, d->r2, d->q2, P + d->ln2w,
				  P + d->ln2b, LN_EPS, B * T, D);
		attn_forward(n, m, &d->sa, br, d->qn2, d->qn2, s + 6);
		dev_add_forward(n->dv, d->out, d->q2, br, btd);
		q = d->out;
	}
	dev_mark(n->dv, "head projection forward");
	dev_linear_forward(n->dv, n->pj, q, P + n->pw0, P + n->pb0, B, T * D, O);
	if (n->trained) {
		dev_batchnorm_train_forward(n->dv, n->e, n->pmean, n->prstd, P + n->prm,
					P + n->prv, n->pj, P + n->pg, P + n->pbb,
					BN_EPS, BN_MOMENTUM, 0, B, O, 1);
		m->data[n->pcnt] += 1.0f;
	} else {
		dev_batchnorm_eval_forward(n->dv, n->e, n->pj, P + n->pg, P + n->pbb,
				       P + n->prm, P + n->prv, BN_EPS, B, O, 1);
	}
}

void head_backward(struct tk_net *n, const struct tk_model *m, float *grad,
		   const float *de, float *dfeat, const float *feat)
{
	const struct tk_arch *A = &n->arch;
	int B = n->curB, D = A->mid_dim, T = A->tokens, O = A->out_dim, N = n->n;
	size_t bnd = (size_t)B * N * D, btd = (size_t)B * T * D;
	const float *P = net_P(n, m);
	float **h = n->h, *gq = n->gq, *gx = n->gx, *dln = n->dln;
	int drop = dropping(n);
	dev_mark(n->dv, "head projection backward");
	/* proj: BatchNorm1d, linear */
	dev_batchnorm_backward(n->dv, h[0], 0, grad + n->pg, grad + n->pbb, de, NULL,
			       n->pj, n->pmean, n->prstd, P + n->pg, B, O, 1);
	dev_zero(n->dv, gq, btd * 4);
	dev_linear_backward(n->dv, gq, grad + n->pw0, grad + n->pb0, h[0], decoder_output(n),
			P + n->pw0, B, T * D, O);
	const float *x = encoder_output(n);
	dev_mark(n->dv, "head decoder backward");
	dev_zero(n->dv, gx, bnd * 4);
	/* (the layers' parts marked apart: the profile of TK_PROFILE) */
	for (int l = A->dec_layers - 1; l >= 0; l--) {
		const struct dec_layer *d = &n->dec[l];
		const float *qin = l ? n->dec[l - 1].out : n->tq;
		/* self-attention branch, bn2 */
		dev_mark(n->dv, "head decoder self-attention backward");
		dev_zero(n->dv, dln, btd * 4);
		attn_backward(n, m, grad, &d->sa, gq, dln, dln, d->qn2, d->qn2);
		dev_layernorm_backward(n->dv, gq, grad + d->ln2w, grad + d->ln2b, dln, d->q2,
				   P + d->ln2w, d->m2, d->r2, B * T, D);
		/* MLP branch */
		dev_mark(n->dv, "head decoder mlp backward");
		const float *dy = gq;
		if (drop) {
			dev_zero(n->dv, h[0], btd * 4);
			dev_droppath_backward(n->dv, h[0], gq, d->dpath_mlp, n->p, B, (size_t)T * D);
			dev_zero(n->dv, h[1], btd * 4);
			dev_dropout_backward(n->dv, h[1], h[0], d->fc2mask, n->p, btd);
			dy = h[1];
		}
		dev_zero(n->dv, h[2], 2 * btd * 4);
		dev_linear_backward(n->dv, h[2], grad + d->fc2w, grad + d->fc2b, dy, d->gd,
				P + d->fc2w, B * T, 2 * D, D);
		const float *dg = h[2];
		if (drop) {
			dev_zero(n->dv, h[3], 2 * btd * 4);
			dev_dropout_backward(n->dv, h[3], h[2], d->actmask, n->p, 2 * btd);
			dg = h[3];
		}
		dev_zero(n->dv, h[4], 2 * btd * 4);
		dev_gelu_backward(n->dv, h[4], dg, d->h1, 2 * btd);
		dev_linear_backward(n->dv, gq, grad + d->fc1w, grad + d->fc1b, h[4], d->q1,
				P + d->fc1w, B * T, D, 2 * D);
		/* cross-attention branch, bn1 */
		dev_mark(n->dv, "head decoder cross-attention backward");
		dev_zero(n->dv, dln, btd * 4);
		attn_backward(n, m, grad, &d->ca, gq, dln, gx, d->qn, x);
		dev_layernorm_backward(n->dv, gq, grad + d->ln1w, grad + d->ln1b, dln, qin,
				   P + d->ln1w, d->m1, d->r1, B * T, D);
	}
	dev_mark(n->dv, "head tokenizer backward");
	/* token_norm: LayerNorm, linear */
	dev_zero(n->dv, h[0], btd * 4);
	dev_layernorm_backward(n->dv, h[0], grad + n->tlnw, grad + n->tlnb, gq, n->tl,
			   P + n->tlnw, n->tm, n->tr, B * T, D);
	float *dtok = h[1];
	dev_zero(n->dv, dtok, btd * 4);
	dev_linear_backward(n->dv, dtok, grad + n->tnw, grad + n->tnb, h[0], n->tok,
			P + n->tnw, B * T, D, D);
	/* tokenizer */
	float *dat = h[2], *dlog = h[3];
	for (int b = 0; b < B; b++) {
		const float *xb = x + (size_t)b * N * D, *atb = n->at + (size_t)b * N * T;
		const float *dt = dtok + (size_t)b * T * D;
		dev_gemm(n->dv, 0, 1, N, T, D, 1.0f, xb, D, dt, D, 0.0f, dat + (size_t)b * N * T, T);
		dev_gemm(n->dv, 0, 0, N, D, T, 1.0f, atb, T, dt, D, 1.0f, gx + (size_t)b * N * D, D);
	}
	dev_zero(n->dv, dlog, (size_t)B * N * T * 4);
	dev_softmax_backward(n->dv, dlog, dat, n->at, B * N, T);
	const float *Q = P + n->query;
	for (int b = 0; b < B; b++) {
		const float *dl = dlog + (size_t)b * N * T;
		dev_gemm(n->dv, 1, 0, T, D, N, 1.0f, dl, T, x + (size_t)b * N * D, D, 1.0f,
		     grad + n->query, D);
		dev_gemm(n->dv, 0, 0, N, D, T, 1.0f, dl, T, Q, D, 1.0f, gx + (size_t)b * N * D, D);
	}
	dev_mark(n->dv, "head encoder backward");
	/* encoder layers */
	for (int l = A->enc_layers - 1; l >= 0; l--) {
		const struct enc_layer *e = &n->enc[l];
		const float *xin = l ? n->enc[l - 1].out : n->x0;
		const float *dy = gx;
		if (drop) {
			dev_zero(n->dv, h[0], bnd * 4);
			dev_droppath_backward(n->dv, h[0], gx, e->dpath2, n->p, B, (size_t)N * D);
			dy = h[0];
		}
		dev_zero(n->dv, h[1], bnd * 4);
		dev_linear_backward(n->dv, h[1], grad + e->mw, grad + e->mb, dy, e->xb, P + e->mw,
				B * N, D, D);
		dev_batchnorm_backward(n->dv, gx, 1, grad + e->bng, grad + e->bnb, h[1],
				       NULL, e->x1, e->mean, e->rstd, P + e->bng, B * N,
				       D, 1);
		dev_mark(n->dv, "head encoder attention backward");
		attn_backward(n, m, grad, &e->a, gx, gx, gx, xin, xin);
		if (l)
			dev_mark(n->dv, "head encoder backward");
	}
	/* Every gradient of the head is final now but tr.conv's, which its
	 * backward below marks: the all-reduce of their buckets may start. */
	if (n->ddp)
		for (int i = 0; i < m->n; i++) {
			const struct tk_param *p = &m->p[i];
			if (!strncmp(p->name, "tr.", 3) && strncmp(p->name, "tr.conv.", 8))
				net_ready(n, p->offset, p->numel);
		}
	/* 1x1 convolution + BatchNorm2d, into the backbone's gradient */
	transpose(n, h[0], gx, B, N, D);
	cbn_backward(n, &n->tconv, m, grad, dfeat, 0, h[1], h[0], NULL, feat);
}
