"""train_traffic - an estimate, not a measurement: the bytes that the
memory-bound passes of a training step of R101 at 512 x 512, batch 32,
move over the activations in float (batch norm statistics and
normalisation, ReLU, the residual adds, zeroing, copies and cuDNN's
accumulation into an input gradient; not the convolutions' own reads and
writes), as common/trainnet_resnet.c ran them before the ReLU and
overwrite fusions (old) and after (new), and with the Bottleneck blocks'
activations in bf16 channels-last (bf16: 2 bytes a value, plus the
layout changes at the backbone's edges and the weights' conversions
each step), and the time that traffic takes at 3.5
TB/s (about 73 % of an H200's 4.8 TB/s).  A GPU run's profile
(bench_train's, or TK_PROFILE=1 tk-train) measures what this guesses.

    /usr/bin/python3 tests/gpu/train_traffic.py [SIZE] [BATCH]
"""
import sys

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 512
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 32


def blocks(size):
    """Per Bottleneck: floats of its input, conv1, conv2, conv3 outputs
    (per image), and whether it downsamples."""
    h, cin, out = size // 4, 64, []
    for s, nb in enumerate([3, 4, 23, 3]):
        planes = 64 << s
        for i in range(nb):
            ho = h // 2 if i == 0 and s > 0 else h
            out.append((cin * h * h, planes * h * h, planes * ho * ho,
                        4 * planes * ho * ho, i == 0))
            cin, h = 4 * planes, ho
    return out


def passes(new):
    """Floats read plus written per image, forward and backward, of the
    stem and of the blocks."""
    stem = 64 * (SIZE // 2) ** 2
    # batch norm: statistics (1 read) + normalisation (1 read, 1 write);
    # a separate ReLU: 1 read, 1 write; its backward into a zeroed
    # buffer: 1 write + 3 reads + 1 write; the batch norm's backward:
    # 2 reads (sums) + 3 reads and 1 write (apply), + 1 read per mask
    sf = stem * (3 if new else 5)
    sb = stem * (7 if new else 1 + 4 + 1 + 2 + 4)
    f = b = 0
    for inn, c1, c2, c3, down in blocks(SIZE):
        if new:
            f += 3 * c1 + 3 * c2 + 3 * c3 + (3 * c3 if down else 0) + 3 * c3
            b += (3 * c3 + (5 * c3 if down else 0) + 5 * c3 + 7 * c2 + 7 * c1
                  + inn)
        else:
            f += 5 * c1 + 5 * c2 + 3 * c3 + (3 * c3 if down else 0) + 5 * c3
            b += (5 * c3 + (inn + 7 * c3 + inn if down else 2 * inn)
                  + (c2 + 7 * c3 + c2) + (c2 + 4 * c2 + c1 + 7 * c2 + c1)
                  + (c1 + 4 * c1 + 7 * c1 + inn))
    return sf + sb, f + b


R101_PARAMS = 42.5e6  # the backbone's convolution weights


def edges():
    """Bytes per image of the bf16 backbone's layout changes: the batch
    (3 float channels) to 8 bf16 ones, the backbone's output to float
    for the head and its gradient back."""
    feat = 2048 * (SIZE // 32) ** 2
    return SIZE * SIZE * (3 * 4 + 8 * 2) + 2 * feat * (4 + 2)


for mode in ("old", "new", "bf16"):
    stem, blk = passes(mode != "old")
    gb = (stem + blk) * (2 if mode == "bf16" else 4) * BATCH / 1e9
    if mode == "bf16":  # weights to bf16 (4 + 2), gradients back (2 + 4 + 4)
        gb += (edges() * BATCH + R101_PARAMS * 16) / 1e9
    print("%s: stem %.1f, blocks %.1f G values; %.0f GB, %.1f ms at 3.5 TB/s"
          % (mode, stem * BATCH / 1e9, blk * BATCH / 1e9, gb, gb / 3.5e3 * 1e3))
