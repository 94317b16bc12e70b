/* image.h - from decoded pixels to the network's input tensor. */
#ifndef TK_KERNELS_IMAGE_H
#define TK_KERNELS_IMAGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ImageNet statistics, as torchvision's Normalize in the reference. */
extern const float imagenet_mean[3], imagenet_std[3];

/* out[c, y, x] = (in[y, x, c] / 255 - mean[c]) / std[c]: torchvision's
 * ToTensor then Normalize, with the same float operations. */
void image_normalize_forward(float *out,        /* [3, H, W] */
			     const uint8_t *in, /* [H, W, 3] */
			     const float *mean, /* [3] */
			     const float *std,  /* [3] */
			     int H, int W);

#ifdef __cplusplus
}
#endif
#endif
