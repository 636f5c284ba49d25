/*
 * blas: the one file that includes cblas.h.  Each step runs in its own
 * process, so the thread count set here is that step's budget alone.
 */
#include <cblas.h>

#include "mcb/step.h"

void mcb_blas_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}
