#!/usr/bin/env python3
"""train_flops - the arithmetic of R101-Token's training step at 512x512
(tests/gpu/bench_train's), for the TFLOP/s that README reports: forward
FLOPs an image (2 a multiply-add) of the backbone's convolutions (torchvision's
ResNet-101, stride in the 3x3), the Token head's GEMMs and attention
products (mid_dim 1024, 4 tokens, 1 encoder and 2 decoder layers, a 32x32
feature map) and the ArcFace classifier over GLDv2's 81,313 classes; a
training step counted as three forward passes (each product's backward
makes two of the same size).  Prints the counts and the TFLOP/s of a step
of 32 at the step times given (ms; default: the H200 run's).

    /usr/bin/python3 tests/gpu/train_flops.py [MS...]"""
import sys

def conv(c, oc, k, h, w, s, p):
    oh = (h + 2*p - k)//s + 1; ow = (w + 2*p - k)//s + 1
    return 2*c*oc*k*k*oh*ow, oh, ow
H = W = 512
f, h, w = conv(3, 64, 7, H, W, 2, 3); tot = f
h = (h + 2 - 3)//2 + 1; w = (w + 2 - 3)//2 + 1
cin = 64
for s, (planes, n) in enumerate([(64, 3), (128, 4), (256, 23), (512, 3)]):
    for i in range(n):
        st = 2 if (s and i == 0) else 1
        a, _, _ = conv(cin, planes, 1, h, w, 1, 0)
        b, oh, ow = conv(planes, planes, 3, h, w, st, 1)
        c, _, _ = conv(planes, planes*4, 1, oh, ow, 1, 0)
        d = conv(cin, planes*4, 1, h, w, st, 0)[0] if i == 0 else 0
        tot += a + b + c + d
        cin = planes*4; h, w = oh, ow
backbone = tot
N = h*w; D = 1024; T = 4
head = 2*2048*D*N                      # tr.conv 1x1
head += 4*2*N*D*D + 2*2*N*N*D + 2*N*D*D  # encoder: qkv+proj, scores+values, mlp
head += 2*T*N*D*2                      # tokenizer: attention map and tokens (approx.)
head += 2*T*D*D                        # token_norm linear
for l in range(2):                     # decoder: cross (q from T, k v from N), self, mlp
    head += 2*T*D*D + 2*2*N*D*D + 2*2*T*N*D + 2*T*D*D
    head += 4*2*T*D*D + 2*2*T*T*D
    head += 2*2*T*D*2*D
head += 2*T*D*1024                     # projection
cls = 2*1024*81313
fwd = backbone + head + cls
print("backbone %.2f GFLOP, head %.2f, classifier %.2f; forward %.2f GFLOP an image; training step (3x) %.1f GFLOP an image"
      % (backbone/1e9, head/1e9, cls/1e9, fwd/1e9, 3*fwd/1e9))
for ms in [float(a) for a in sys.argv[1:]] or (60.0, 60.3, 79.1, 82.6):
    print("batch 32 at %.1f ms: %.0f TFLOP/s" % (ms, 3*fwd*32/(ms/1e3)/1e12))
