/* hd.h - TK_HD marks a small inline function that the CPU kernels and
 * their CUDA twins share, so that both compute it with the same code. */
#ifndef TK_KERNELS_HD_H
#define TK_KERNELS_HD_H

#ifdef __CUDACC__
#define TK_HD __host__ __device__
#else
#define TK_HD
#endif

#endif
