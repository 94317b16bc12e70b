"""make_gldv2 - a tiny Google Landmarks v2 layout for pipelines/train.mk's
test: train_clean.csv (landmark_id,images) and train/a/b/c/ID.jpg, each
landmark's images a colour and a stripe direction of its own with noise,
so that a few steps of training can tell them apart.

    make_gldv2.py DIR CLASSES IMAGES_PER_CLASS [SIZE]"""
import os
import sys

import numpy as np
from PIL import Image


def main():
    root, classes, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 48
    rs = np.random.RandomState(1)
    rows = []
    for c in range(classes):
        landmark = 1000 + 37 * c
        ids = []
        for i in range(per):
            fid = "%016x" % rs.randint(0, 2 ** 62)
            ids.append(fid)
            d = os.path.join(root, "train", fid[0], fid[1], fid[2])
            os.makedirs(d, exist_ok=True)
            colour = np.array([(c * 67) % 256, (c * 131) % 256, (c * 199) % 256])
            yy, xx = np.mgrid[0:size, 0:size + 8]
            stripe = ((xx if c % 2 else yy) // 4) % 2
            img = colour[None, None, :] * (0.5 + 0.5 * stripe[..., None])
            img = np.clip(img + rs.randint(-30, 31, img.shape), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(os.path.join(d, fid + ".jpg"),
                                                       quality=90)
        rows.append("%d,%s" % (landmark, " ".join(ids)))
    with open(os.path.join(root, "train_clean.csv"), "w") as f:
        f.write("landmark_id,images\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
