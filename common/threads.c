/* threads.c - one thread count for OpenMP, none for OpenBLAS. */
#include "threads.h"

#include <omp.h>

void tk_threads_set(int n)
{
	if (n > 0)
		omp_set_num_threads(n);
	/* OpenBLAS runs one thread: tk_init saw to it (blas.h). */
}

int tk_threads(void)
{
	return omp_get_max_threads();
}
