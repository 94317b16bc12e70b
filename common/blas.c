/* blas.c - OpenBLAS's threads and kernels, where it is loaded. */
#include "blas.h"

#include <stddef.h>

extern void openblas_set_num_threads(int n) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));
/* OpenBLAS's pthread build starts a server thread for every core but one
 * as it loads, and each spins (sched_yield) for about 0.1 s before it
 * sleeps: a core's worth of CPU in each program's first 0.1 s, taken
 * from its own threads and its neighbours in the pipeline.  tk never
 * gives those threads work, so they are stopped.  OpenBLAS must not be
 * told a thread count after this: goto_set_num_threads starts them anew. */
extern void blas_thread_shutdown_(void) __attribute__((weak));
/* OpenBLAS's OpenMP build sets OpenMP's thread count with its own. */
extern int omp_get_max_threads(void) __attribute__((weak));
extern void omp_set_num_threads(int n) __attribute__((weak));

void tk_blas_single(void)
{
	int omp = omp_get_max_threads ? omp_get_max_threads() : 0;
	if (openblas_set_num_threads)
		openblas_set_num_threads(1);
	if (omp && omp_set_num_threads)
		omp_set_num_threads(omp);
	if (blas_thread_shutdown_)
		blas_thread_shutdown_();
}

const char *tk_blas_config(void)
{
	return openblas_get_config ? openblas_get_config() : NULL;
}
