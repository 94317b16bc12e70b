/* token.h - the Token head for inference, in the two halves the tools
 * split it into:
 *
 * LFSA (tk-extract): 1x1 convolution + BatchNorm2d (folded) from the
 * backbone's [C, h, w] to [h*w, D] tokens, then the encoder layer(s):
 * x + attn(x), then x + mlp(BatchNorm1d(x)).
 *
 * Head (tk-aggregate): the tokenizer (softmax over the *token* axis of
 * query . x^T, tokens = weights . x, linear + LayerNorm), the decoder
 * layers (q + cross_attn(LN1(q), x, x); q + mlp(q) with GELU; q +
 * self_attn(LN2(q))), the projection of the concatenated tokens, its
 * BatchNorm1d, and L2 normalisation: the reference's forward_test. */
#ifndef TK_TOKEN_H
#define TK_TOKEN_H

#include <stddef.h>

#include "model.h"
#include "resnet.h"

struct tk_linear {
	const float *w, *b; /* [out, in], [out] */
	int in, out;
};

struct tk_attn {
	struct tk_linear q, k, v, proj;
	int heads;
};

struct tk_bn1d {
	const float *w, *b, *mean, *var;
};

struct tk_encoder {
	struct tk_attn attn;
	struct tk_bn1d bn;
	struct tk_linear mlp;
};

struct tk_decoder {
	struct tk_attn self, cross;
	const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
	struct tk_linear fc1, fc2;
};

struct tk_lfsa {
	struct tk_conv conv; /* tr.conv.0 with tr.conv.1 folded in */
	struct tk_encoder *enc;
	int nenc, dim;
};

/* Folds tr.conv.1 into tr.conv.0 in m's data. */
void tk_lfsa_init(struct tk_lfsa *l, struct tk_model *m);
void tk_lfsa_free(struct tk_lfsa *l);
/* Scratch floats tk_lfsa_forward needs for N tokens. */
size_t tk_lfsa_scratch(const struct tk_lfsa *l, int N);
/* out [N, D] from the backbone's in [C, N].  check: NaN/Inf in a
 * layer's output returns -1 with the layer named in err. */
int tk_lfsa_forward(const struct tk_lfsa *l, float *out, float *scratch,
		    const float *in, int N, int check, char *err, size_t errlen);

struct tk_head {
	const float *query; /* [T, D] */
	struct tk_linear token;
	const float *ln_w, *ln_b;
	struct tk_decoder *dec;
	int ndec;
	struct tk_linear proj;
	struct tk_bn1d bn;
	int dim, tokens, out_dim;
};

void tk_head_init(struct tk_head *h, const struct tk_model *m);
void tk_head_free(struct tk_head *h);
size_t tk_head_scratch(const struct tk_head *h, int N);
/* desc [out_dim], L2-normalised, from local features x [N, D]. */
int tk_head_forward(const struct tk_head *h, float *desc, float *scratch,
		    const float *x, int N, int check, char *err, size_t errlen);

#endif
