/* simd.h - the CPU kernels' one portability device: hot loops are
 * compiled for AVX-512, AVX2+FMA and baseline x86-64 and the best is
 * picked when the program starts (GCC/clang function multiversioning), so
 * one binary runs everywhere and uses the vector units it finds. */
#ifndef TK_KERNELS_CPU_SIMD_H
#define TK_KERNELS_CPU_SIMD_H

#if defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TK_SIMD \
	__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TK_SIMD
#endif

#endif
