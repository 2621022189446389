#ifndef VARLAB_KERNELS_H
#define VARLAB_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// y[r, j] = dot(x[r, :], w[j, :]) + (beta != 0 ? beta * y[r, j] : 0) for r < rows, j in [j0, j1): the product of a
/// few rows with a weight matrix stored [n, k] (x W^T, as a Linear layer). Every element is summed in one fixed order
/// (8 interleaved partial sums over k, a fixed reduction tree, then the k % 8 tail), whatever rows, j0, j1 or the
/// blocking: an element depends only on its two vectors, never on the other rows of a batch.
void varlab_sgemm_nt_rows(int rows, int j0, int j1, int k, const float *x, int ldx, const float *w, int ldw,
                          float beta, float *y, int ldy);

/// 1 when the AVX2 + FMA path runs on this CPU, 0 for the portable path (both give fixed-order sums; they differ
/// from each other by rounding, so one machine always uses the same one).
int varlab_kernels_avx2(void);

/// Winograd F(4x4, 3x3) for a 3x3 stride-1 convolution (winograd.c). `_weights`: u[xi][k][c] (36 x cout x cin) for
/// the (k, c) pairs p = k * cin + c in [p0, p1) of g[k][c][3][3]. `_input`: v[xi][c][t] (leading dimension ldv,
/// xi stride cin * ldv) for channels [c0, c1) and the tile rows [tile_row0, tile_row0 + tile_rows) of x[c][h][w]
/// read with pads top / left (t = tile row within the chunk * tiles_w + tile column). `_output`: y[k][ho][wo] =
/// bias[k] + A^T m A for channels [k0, k1) and the same tile rows of m[xi][k][t] (leading dimension ldm).
void varlab_winograd_f43_weights(int cout, int cin, int p0, int p1, const float *g, float *u);
void varlab_winograd_f43_input(const float *x, int h, int w, int top, int left, int tiles_w, int tile_row0,
                               int tile_rows, int c0, int c1, int cin, float *v, int ldv);
void varlab_winograd_f43_output(const float *m, int ldm, int cout, int tiles_w, int tile_row0, int tile_rows,
                                int ho, int wo, int k0, int k1, const float *bias, float *y);

/// x[i] = x[i] / (1 + exp(-x[i])) in place (activations.c): the same bits on the AVX2 and the portable path.
void varlab_silu(float *x, size_t n);
/// y = silu(x) (may be x itself) and, when sigma is not NULL, sigma = 1 / (1 + exp(-x)) from the same exp.
void varlab_silu_sigmoid(const float *x, float *y, float *sigma, size_t n);
/// GELU with approximate='tanh' in place, as x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
void varlab_gelu_tanh(float *x, size_t n);
/// y = GELU-tanh(x) (may be x itself) and, when tanh_u is not NULL, tanh(u) = 2 / (1 + exp(-2u)) - 1 from the same exp.
void varlab_gelu_tanh_with_tanh(const float *x, float *y, float *tanh_u, size_t n);
/// Softmax of n contiguous floats in place (the attention rows): max-subtracted, a fixed summation order, the same
/// bits on every path; exp(x - max) below e^-87.3 counts as 0; a row that is all -inf or holds +inf / NaN is NaN.
void varlab_softmax(float *x, int n);

/// bfloat16 products (bf16_gemm.c), opt-in: y = x W^T with x and W rounded to bf16 (round to nearest even) and every
/// product summed in float32 by AVX512-BF16, k-pairs in order, so an element depends only on its row of x and of W.
/// 1 when this CPU has AVX512-BF16 (else `varlab_bf16_gemm_nt` must not be called).
int varlab_bf16_supported(void);
/// k rounded up to even: the length of a bf16 row (odd k gets a zero partner).
size_t varlab_bf16_row_length(int k);
/// uint16 elements of W [n, k] packed: ceil(n / 32) panels of 32 columns x row length.
size_t varlab_bf16_packed_count(int n, int k);
/// out[r, :] = bf16(x[r, :k]) for r < rows, rows of `varlab_bf16_row_length(k)` elements.
void varlab_bf16_round_rows(int rows, int k, const float *x, int ldx, uint16_t *out);
/// Panels [panel0, panel1) of W [n, k] (row stride ldw) rounded to bf16 and packed.
void varlab_bf16_pack_weights(int n, int k, const float *w, int ldw, int panel0, int panel1, uint16_t *packed);
/// y[r, j] = sum of a[r, :] * W[j, :] + (beta != 0 ? beta * y[r, j] : 0) for rows [r0, r1) and the columns of panels
/// [panel0, panel1) below n; a from `varlab_bf16_round_rows`, W from `varlab_bf16_pack_weights`.
void varlab_bf16_gemm_nt(int r0, int r1, int panel0, int panel1, int n, int k, const uint16_t *a,
                         const uint16_t *packed, float beta, float *y, int ldy);
#endif
