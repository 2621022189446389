#include <cblas.h>
#include <lapacke.h>
// Exported by OpenBLAS (see openblas_config.h); declared here so Swift can report the kernel in use.
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
