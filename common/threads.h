/* threads.h - how many threads the CPU kernels use.  Every parallel loop
 * is OpenMP; OpenBLAS is told to use one thread (blas.h), because the
 * kernels call it from inside their own parallel loops (each thread its
 * own tile), and two thread pools on the same cores would fight. */
#ifndef TK_THREADS_H
#define TK_THREADS_H

/* n > 0: that many threads; 0: OMP_NUM_THREADS, else every core. */
void tk_threads_set(int n);
int tk_threads(void);

#endif
