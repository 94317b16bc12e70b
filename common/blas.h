/* blas.h - what tk asks of OpenBLAS beside its products, in the programs
 * that use it.  The references are weak: a program that makes no BLAS
 * call does not load OpenBLAS for these (the linker's --as-needed drops
 * it), and they do nothing there. */
#ifndef TK_BLAS_H
#define TK_BLAS_H

/* OpenBLAS to one thread, its idle server threads stopped; tk_init calls
 * it.  Every parallel loop is OpenMP, OpenBLAS being called from inside
 * them (threads.h). */
void tk_blas_single(void);
/* "OpenBLAS 0.3.21 ... Cooperlake MAX_THREADS=64", the word before
 * MAX_THREADS naming the kernels it runs (its choice for this CPU, or
 * OPENBLAS_CORETYPE's); NULL in a program without OpenBLAS. */
const char *tk_blas_config(void);

#endif
