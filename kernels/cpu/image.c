/* image.c - u8 HWC pixels to the normalised float CHW tensor. */
#include "kernels/image.h"

#include <stddef.h>

const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

void image_normalize_forward(float *out, const uint8_t *in, const float *mean,
			     const float *std, int H, int W)
{
	size_t hw = (size_t)H * W;
	/* Exactly torchvision's float ops: x / 255, then (x - m) / s. */
#pragma omp parallel for if (hw > 65536)
	for (int y = 0; y < H; y++) {
		for (int x = 0; x < W; x++) {
			const uint8_t *px = in + ((size_t)y * W + x) * 3;
			for (int c = 0; c < 3; c++) {
				float v = (float)px[c] / 255.0f;
				out[c * hw + (size_t)y * W + x] = (v - mean[c]) / std[c];
			}
		}
	}
}
