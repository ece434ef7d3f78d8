#include <cblas.h>
// OpenBLAS extension: the size of its thread pool.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
