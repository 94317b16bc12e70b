"""tkrand - the keep flags of kernels/dropout.h in NumPy: the same
counter-based hash of (seed, index), so that a torch reference drops
exactly what tk drops."""
import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def uniform(seed, n):
    """tk_uniform(seed, i) for i in 0..n-1, as float32."""
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(seed) ^ mix64(i + np.uint64(0x9e3779b97f4a7c15)))
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def keep(seed, n, p):
    """dropout_keep(seed, i, p) for i in 0..n-1."""
    return uniform(seed, n) >= np.float32(p)
