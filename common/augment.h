/* augment.h - the reference's training and validation transforms
 * (configdataset.py, GLDv2) as torchvision 0.14 applies them to PIL
 * images, on RGB images, with the random numbers of a counter-based
 * generator so that an image's transform depends only on (seed, epoch,
 * index). */
#ifndef TK_AUGMENT_H
#define TK_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* RandomResizedCrop(size, scale=(0.2, 1), ratio=(3/4, 4/3)) (bilinear),
 * RandomHorizontalFlip(0.5), RandomApply([ColorJitter(0.4, 0.4, 0.2,
 * 0.1)], p=0.8).  What was drawn is written to desc (e.g. "crop=12,0,160,
 * 148 flip=1 jitter=hbsc b=... c=... s=... h=..."). */
void tk_augment_train(struct tk_image *out, const struct tk_image *in,
		      int size, uint64_t seed, uint64_t epoch, uint64_t index,
		      char *desc, size_t desclen);

/* Resize(int(size * 8 / 7), BICUBIC) of the shorter side, then
 * CenterCrop(size); desc says the resized size and the crop box. */
void tk_augment_val(struct tk_image *out, const struct tk_image *in,
		    int size, char *desc, size_t desclen);

#endif
