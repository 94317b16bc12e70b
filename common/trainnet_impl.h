/* trainnet_impl.h - the training network's layers and buffers, shared by
 * trainnet.c (setup, loss), trainnet_resnet.c (backbone) and
 * trainnet_head.c (the Token head).  Parameters are held as offsets into
 * the model table, so that the same offset finds a gradient. */
#ifndef TK_TRAINNET_IMPL_H
#define TK_TRAINNET_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "kernels/dispatch.h"
#include "model.h"
#include "trainnet.h"

#define NO_PARAM ((size_t)-1)
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1
#define LN_EPS 1e-5f

/* A convolution and the batch norm after it. */
struct cbn {
	size_t w, bias, g, b, rm, rv, cnt; /* bias: NO_PARAM for none */
	struct conv2d_dims d;             /* d.B: the planned batch */
	int oh, ow;
	void *t;           /* convolution output, the batch norm's input */
	float *mean, *rstd; /* batch statistics */
	/* channels-last (dev_train_nhwc): the weights as cuDNN takes them,
	 * [OC, K, K, ld] of the activation type, and their gradient; t, the
	 * input (ld channels a pixel) and output are then activations
	 * [B, H, W, C] of that type.  NULL: NCHW float. */
	void *wa, *dwa;
	int ld;
};

/* A torchvision Bottleneck: 1x1, 3x3 (stride), 1x1, and a downsampling
 * 1x1 + BN on the identity in the first block of a stage. */
struct block {
	struct cbn c1, c2, c3, down;
	int has_down;
	void *u1, *u2; /* the ReLU outputs after bn1, bn2 */
	void *out;     /* ReLU(bn3 + identity) */
};

/* The reference's Attention: q, k, v and proj linears (with bias). */
struct attn {
	size_t wq, bq, wk, bk, wv, bv, wp, bp;
	int Nq, Nk;
	float *q, *k, *v, *ao, *att;
	uint8_t *amask; /* attention-probability dropout */
	uint8_t *pmask; /* projection dropout */
	uint8_t *dpath; /* drop-path of the branch, per image */
};

struct enc_layer {
	struct attn a;
	size_t bng, bnb, bnrm, bnrv, bncnt, mw, mb;
	float *x1;          /* after the attention residual: the BN's input */
	float *xb;          /* BN output: the mlp's input */
	float *out;
	float *mean, *rstd;
	uint8_t *dpath2;    /* drop-path of the mlp branch */
};

struct dec_layer {
	struct attn ca, sa;
	size_t ln1w, ln1b, ln2w, ln2b, fc1w, fc1b, fc2w, fc2b;
	float *qn, *m1, *r1; /* bn1 (LayerNorm) output and statistics */
	float *q1;           /* after cross-attention: the MLP's input */
	float *h1;           /* fc1 output: GELU's input */
	float *gd;           /* GELU, dropped out: fc2's input */
	uint8_t *actmask, *fc2mask, *dpath_mlp;
	float *q2;           /* after the MLP: bn2's input */
	float *qn2, *m2, *r2;
	float *out;
};

struct tk_net {
	/* the device (kernels/dispatch.h; a CPU one for tk_net_new), and the
	 * parameters and buffers there (NULL: m->data) */
	const struct tk_dev *dv;
	float *P;
	float *hloss, *hlogits; /* host copies on a GPU */
	int logits_down;        /* hlogits holds this forward's */
	struct dev_ddp *ddp;    /* the gradient's all-reduce in this backward */
	struct tk_arch arch;
	int B, H, W; /* planned */
	float p;
	int curB, trained;
	uint64_t seed;

	/* backbone */
	float *img;  /* the batch, kept for the stem's weight gradient */
	uint8_t *raw; /* the batch's pixels on the device (forward_u8) */
	struct cbn stem;
	void *a1;    /* stem ReLU output */
	int *argmax; /* max-pool winners */
	float *pool; /* NCHW float only */
	int ph, pw;
	struct block *blocks;
	int nblocks;
	int fh, fw, n; /* the backbone's output: fh x fw = n positions */
	/* channels-last (nhwc: dev_train_nhwc): the batch as activations, 8
	 * channels a pixel (3 and zeros), the max-pool's output, and the
	 * backbone's output as [B, C, n] float for the head; NULL otherwise
	 * (then a1 and the blocks' buffers are float NCHW, else activations) */
	int nhwc;
	void *img_act, *pool_act;
	float *feat;

	/* head */
	struct cbn tconv;  /* 1x1 convolution with bias + BatchNorm2d */
	float *x0;         /* [B, n, D]: the encoder's input */
	struct enc_layer *enc;
	size_t query, tnw, tnb, tlnw, tlnb;
	float *at;         /* [B, n, tokens]: softmax over tokens */
	float *tok;        /* [B, tokens, D] */
	float *tl, *tq, *tm, *tr; /* token_norm: linear out, LN out, stats */
	struct dec_layer *dec;
	size_t pw0, pb0, pg, pbb, prm, prv, pcnt;
	float *pj, *e, *pmean, *prstd;
	float *gx, *gq, *dln, *de; /* gradients: encoder stream [B, n, D],
				     token stream [B, tokens, D], a layer
				     norm's output, the descriptor */

	/* ArcFace */
	size_t cls;
	float *xn, *wn, *cos, *logits, *prob, *loss;
	int32_t *label;

	/* scratch: backbone-sized gradient buffers (also the forward's
	 * temporaries; gsize values of the backbone's activation type),
	 * head-sized ones, convolution workspace */
	float *g[4];
	size_t gsize;
	float *h[6];
	size_t hsize;
	float *dwn, *dlogits;
	float *work;
	size_t wsize;

	struct tk_net_memory mem;
	void **allocs;
	int nallocs;
};

/* Allocation counted in the memory plan; zeroed. */
enum { MEM_ACT, MEM_SCRATCH, MEM_WORK };
void *net_alloc(struct tk_net *n, size_t count, size_t size, int kind);
size_t net_param(const struct tk_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The parameters and buffers the network computes with. */
static inline float *net_P(const struct tk_net *n, const struct tk_model *m)
{
	return n->P ? n->P : m->data;
}
/* The gradient of [off, off + len) is final in this backward (NO_PARAM:
 * none): its bucket may go (tk_net_backward_sync). */
void net_ready(struct tk_net *n, size_t off, size_t len);
/* The dropout seed of site 'id' of this forward pass. */
uint64_t net_site_seed(const struct tk_net *n, int id);

/* ld: 0 for NCHW float; else channels-last (struct cbn's wa), the input
 * stored with ld >= C channels a pixel. */
void cbn_plan(struct tk_net *n, struct cbn *c, const struct tk_model *m,
	      const char *conv, const char *bn, int C, int H, int W, int OC,
	      int K, int stride, int pad, int bias, int ld);
/* x -> c->t (convolution) -> dst (batch norm), optionally ReLU (in the
 * batch norm's pass when training). */
void cbn_forward(struct tk_net *n, struct cbn *c, struct tk_model *m,
		 void *dst, const void *x, int relu);
/* dy: gradient of the batch norm's output, or with relu_out (the output
 * of the ReLU after it) of that ReLU's output, taken through the ReLU in
 * the batch norm's pass; dt receives the gradient of the convolution
 * output; dx (may be NULL) receives (dx_add: accumulates) the gradient of
 * the input x. */
void cbn_backward(struct tk_net *n, const struct cbn *c,
		  const struct tk_model *m, float *grad, void *dx, int dx_add,
		  void *dt, const void *dy, const void *relu_out,
		  const void *x);

void resnet_plan(struct tk_net *n, const struct tk_model *m);
/* x: the normalised batch, uploaded to n->img; NULL: n->img holds it. */
void resnet_forward(struct tk_net *n, struct tk_model *m, const float *x);
/* From the gradient of the backbone's output, [B, C, n] float in n->g[0]
 * (consumed). */
void resnet_backward(struct tk_net *n, const struct tk_model *m, float *grad);
const float *resnet_output(const struct tk_net *n);

void head_plan(struct tk_net *n, const struct tk_model *m);
/* feat [B, 32 width, n] to the descriptor n->e [B, out_dim]. */
void head_forward(struct tk_net *n, struct tk_model *m, const float *feat);
/* de [B, out_dim]: the descriptor's gradient; dfeat receives (zeroed
 * first) the gradient of the backbone's output. */
void head_backward(struct tk_net *n, const struct tk_model *m, float *grad,
		   const float *de, float *dfeat, const float *feat);

#endif
