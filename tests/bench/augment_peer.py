"""augment_peer - PyTorch's side of tests/bench/augment.sh: the reference's
training loader in a DataLoader worker's place (PIL open + convert("RGB"),
then RandomResizedCrop(N, scale 0.2-1), RandomHorizontalFlip,
RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p 0.8), ToTensor,
Normalize), in PROCESSES processes over the files.  Prints the best pass's
images per second (wall) and its CPU milliseconds per image (the workers'
process time, so Python's start and torch's import are left out).

  /usr/bin/python3 augment_peer.py N PROCESSES REPEAT FILE..."""
import sys
import time
from multiprocessing import Pool

import torch
import torchvision.transforms as T
from PIL import Image

torch.set_num_threads(1)  # as a DataLoader worker runs


def transform(n):
    return T.Compose([
        T.RandomResizedCrop(n, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])


def run(args):
    n, files = args
    tf = transform(n)
    c = time.process_time()
    for f in files:
        with open(f, "rb") as fh:
            img = Image.open(fh).convert("RGB")
        tf(img)
    return time.process_time() - c


def main():
    n, procs, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    files = sys.argv[4:]
    best = None
    with Pool(procs) as pool:
        pool.map(run, [(n, files[:1])] * procs)  # warm up the workers
        for _ in range(repeat):
            t = time.perf_counter()
            cpu = sum(pool.map(run, [(n, files[i::procs]) for i in range(procs)]))
            wall = time.perf_counter() - t
            if best is None or wall < best[0]:
                best = (wall, cpu)
    print(f"{len(files) / best[0]:.2f} {1000 * best[1] / len(files):.1f}")


if __name__ == "__main__":
    main()
