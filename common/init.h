/* init.h - a fresh model initialised as the reference initialises Token:
 *   backbone convs      torchvision's ResNet: kaiming normal, fan_out, ReLU
 *                       gain (std sqrt(2 / (out * k * k)))
 *   attention q, k, v   truncated normal, std 0.02 on [-2, 2]; bias 0
 *   attention proj      0, bias 0 (set after the truncated normal)
 *   tr.query            N(0, 1)
 *   classifier (ArcFace) xavier uniform, bound sqrt(6 / (in + out))
 *   other convs/linears PyTorch's default: kaiming uniform a = sqrt(5),
 *                       bound 1 / sqrt(fan_in), bias the same bound
 *   BatchNorm/LayerNorm weight 1, bias 0; running mean 0, variance 1;
 *                       num_batches_tracked 0 */
#ifndef TK_INIT_H
#define TK_INIT_H

#include <stdint.h>

#include "model.h"

/* What initialises a tensor of the table, for tk-init and its tests. */
enum tk_init_kind {
	TK_INIT_ZERO, TK_INIT_ONE, TK_INIT_NORMAL, TK_INIT_TRUNC_NORMAL,
	TK_INIT_UNIFORM,
};
struct tk_init_rule {
	enum tk_init_kind kind;
	double scale; /* std for the normals, bound for the uniform */
};
struct tk_init_rule tk_init_rule(const struct tk_model *m,
				 const struct tk_param *p);

/* Initialise every tensor of m, each from its own random stream of
 * (seed, name): the same seed gives the same tensors whatever the
 * architecture's other sizes and the number of threads.  With
 * keep_backbone, backbone.* tensors are left as they are (a pretrained
 * backbone copied in). */
void tk_model_init_weights(struct tk_model *m, uint64_t seed,
			   int keep_backbone);

#endif
