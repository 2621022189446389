#ifndef VARLAB_KERNELS_H
#define VARLAB_KERNELS_H
#include <stddef.h>

/// y[r, j] = dot(x[r, :], w[j, :]) + (beta != 0 ? beta * y[r, j] : 0) for r < rows, j in [j0, j1): the product of a
/// few rows with a weight matrix stored [n, k] (x W^T, as a Linear layer). Every element is summed in one fixed order
/// (8 interleaved partial sums over k, a fixed reduction tree, then the k % 8 tail), whatever rows, j0, j1 or the
/// blocking: an element depends only on its two vectors, never on the other rows of a batch.
void varlab_sgemm_nt_rows(int rows, int j0, int j1, int k, const float *x, int ldx, const float *w, int ldw,
                          float beta, float *y, int ldy);

/// 1 when the AVX2 + FMA path runs on this CPU, 0 for the portable path (both give fixed-order sums; they differ
/// from each other by rounding, so one machine always uses the same one).
int varlab_kernels_avx2(void);

#endif
