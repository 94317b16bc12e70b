"""synth_images - photograph-like test images as a stream of image frames:
smooth colour blobs (bilinearly upsampled noise, about 16 px) plus grain,
the statistics the random test models are calibrated on.  Deterministic:
numpy's legacy RandomState stream never changes.

    synth_images.py OUT.bin SEED HxW [HxW...]
"""
import sys

import numpy as np

import tkio


def smooth(rng, h, w):
    gh, gw = h // 16 + 2, w // 16 + 2
    base = rng.random_sample((gh, gw, 3))
    ys = np.linspace(0, gh - 1.001, h)
    xs = np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    b = (base[y0][:, x0] * (1 - fy) * (1 - fx) + base[y0 + 1][:, x0] * fy * (1 - fx)
         + base[y0][:, x0 + 1] * (1 - fy) * fx + base[y0 + 1][:, x0 + 1] * fy * fx)
    img = 0.8 * b + 0.2 * rng.random_sample((h, w, 3))
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def main():
    out, seed, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    rng = np.random.RandomState(seed)
    frames = []
    for i, spec in enumerate(specs):
        h, w = map(int, spec.split("x"))
        frames.append(({"key": "img%d" % i, "src": "img%d.jpg" % i},
                       {"image": smooth(rng, h, w)}))
    tkio.write_frames(out, frames)


if __name__ == "__main__":
    main()
