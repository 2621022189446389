// Winograd F(4x4, 3x3) transforms (Lavin & Gray 2015, interpolation points 0, +-1, +-2, inf) for the 3x3 stride-1
// convolution of varlab_kernels.h. The products between the transforms are sgemm calls made by the caller.
//
// Layouts: weights g[k][c][3][3]; transformed weights u[xi][k][c]; input x[c][h][w]; transformed input
// v[xi][c][t] and products m[xi][k][t] with t the tile index inside a chunk of whole tile rows; output y[k][ho][wo].
// xi = 6 i + j runs over the 6 x 6 transformed tile. Every value below is computed by one fixed sequence of adds
// and multiplies, so the result does not depend on how the caller splits channels or tiles.
#include "varlab_kernels.h"
#include <stdlib.h>

#pragma clang fp contract(off)

// ---- Weights: U = G g G^T for every (k, c) pair, 64 pairs at a time with the pair index innermost (vectorises).
// G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], one row per output of g_apply.
static inline void g_apply(float a0, float a1, float a2, float *r0, float *r1, float *r2, float *r3, float *r4,
                           float *r5) {
    *r0 = a0 * 0.25f;
    *r1 = ((a0 + a1) + a2) * (-1.0f / 6.0f);
    *r2 = ((a0 - a1) + a2) * (-1.0f / 6.0f);
    *r3 = (a0 * (1.0f / 24.0f) + a1 * (1.0f / 12.0f)) + a2 * (1.0f / 6.0f);
    *r4 = (a0 * (1.0f / 24.0f) - a1 * (1.0f / 12.0f)) + a2 * (1.0f / 6.0f);
    *r5 = a2;
}

void varlab_winograd_f43_weights(int cout, int cin, int p0, int p1, const float *g, float *u) {
    enum { B = 64 };
    const size_t pairs = (size_t)cout * (size_t)cin;
    float k[9][B], col[6][3][B];
    for (int pb = p0; pb < p1; pb += B) {
        const int n = p1 - pb < B ? p1 - pb : B;
        for (int p = 0; p < n; p++)
            for (int q = 0; q < 9; q++) k[q][p] = g[(size_t)(pb + p) * 9 + q];
        for (int x = 0; x < 3; x++)  // G down each kernel column x: col[i][x] = sum_y G[i][y] g[y][x]
            for (int p = 0; p < n; p++)
                g_apply(k[x][p], k[3 + x][p], k[6 + x][p], &col[0][x][p], &col[1][x][p], &col[2][x][p],
                        &col[3][x][p], &col[4][x][p], &col[5][x][p]);
        for (int i = 0; i < 6; i++) {  // then across: U[i][j] = sum_x col[i][x] G[j][x]
            float *o = u + (size_t)(6 * i) * pairs + (size_t)pb;
            for (int p = 0; p < n; p++)
                g_apply(col[i][0][p], col[i][1][p], col[i][2][p], &o[p], &o[pairs + p], &o[2 * pairs + p],
                        &o[3 * pairs + p], &o[4 * pairs + p], &o[5 * pairs + p]);
        }
    }
}

// ---- Input: V = B^T d B, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
// 0 4 0 -5 0 1], applied first down the six input rows of a tile row (whole rows at once), then across each tile.
#define BT_ROWS(d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5) \
    do {                                                         \
        r0 = ((d0) * 4.0f - (d2) * 5.0f) + (d4);                 \
        r1 = ((d3) + (d4)) - ((d1) + (d2)) * 4.0f;               \
        r2 = ((d4) - (d3)) + ((d1) - (d2)) * 4.0f;               \
        r3 = ((d4) - (d2)) + ((d3) - (d1)) * 2.0f;               \
        r4 = ((d4) - (d2)) - ((d3) - (d1)) * 2.0f;               \
        r5 = ((d1) * 4.0f - (d3) * 5.0f) + (d5);                 \
    } while (0)

void varlab_winograd_f43_input(const float *x, int h, int w, int top, int left, int tiles_w, int tile_row0,
                               int tile_rows, int c0, int c1, int cin, float *v, int ldv) {
    const int wp = 4 * tiles_w + 2;  // padded width the tile row reads
    float *rows = malloc(sizeof(float) * (size_t)(6 * 2 * wp));
    float *in = rows + 6 * wp;  // the six zero-padded input rows
    const size_t xi_stride = (size_t)cin * (size_t)ldv;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int ty = 0; ty < tile_rows; ty++) {
            const int iy0 = 4 * (tile_row0 + ty) - top;
            for (int j = 0; j < 6; j++) {
                float *d = in + j * wp;
                const int iy = iy0 + j;
                if (iy < 0 || iy >= h) {
                    for (int q = 0; q < wp; q++) d[q] = 0;
                    continue;
                }
                // Columns q < left and q >= left + w read zero; the rest is the input row.
                const float *src = xc + (size_t)iy * w;
                const int lo = left < wp ? left : wp, hi = left + w < wp ? left + w : wp;
                for (int q = 0; q < lo; q++) d[q] = 0;
                for (int q = lo; q < hi; q++) d[q] = src[q - left];
                for (int q = hi; q < wp; q++) d[q] = 0;
            }
            float *r[6];
            for (int i = 0; i < 6; i++) r[i] = rows + i * wp;
            for (int q = 0; q < wp; q++)
                BT_ROWS(in[q], in[wp + q], in[2 * wp + q], in[3 * wp + q], in[4 * wp + q], in[5 * wp + q], r[0][q],
                        r[1][q], r[2][q], r[3][q], r[4][q], r[5][q]);
            float *vt = v + (size_t)c * ldv + (size_t)ty * tiles_w;
            for (int i = 0; i < 6; i++) {
                const float *e = r[i];
                float *o = vt + (size_t)(6 * i) * xi_stride;
                for (int tx = 0; tx < tiles_w; tx++) {
                    const float *d = e + 4 * tx;
                    float s0, s1, s2, s3, s4, s5;
                    BT_ROWS(d[0], d[1], d[2], d[3], d[4], d[5], s0, s1, s2, s3, s4, s5);
                    o[tx] = s0;
                    o[xi_stride + tx] = s1;
                    o[2 * xi_stride + tx] = s2;
                    o[3 * xi_stride + tx] = s3;
                    o[4 * xi_stride + tx] = s4;
                    o[5 * xi_stride + tx] = s5;
                }
            }
        }
    }
    free(rows);
}

// ---- Output: Y = A^T M A + bias, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1], applied across
// each tile first, then down the tile row (whole rows at once); rows and columns past the output are dropped.
#define AT_ROWS(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) \
    do {                                                 \
        const float a_ = (m1) + (m2), b_ = (m1) - (m2);  \
        const float c_ = (m3) + (m4), d_ = (m3) - (m4);  \
        o0 = ((m0) + a_) + c_;                           \
        o1 = b_ + d_ * 2.0f;                             \
        o2 = a_ + c_ * 4.0f;                             \
        o3 = (b_ + d_ * 8.0f) + (m5);                    \
    } while (0)

void varlab_winograd_f43_output(const float *m, int ldm, int cout, int tiles_w, int tile_row0, int tile_rows,
                                int ho, int wo, int k0, int k1, const float *bias, float *y) {
    const int wt = 4 * tiles_w;
    float *rows = malloc(sizeof(float) * (size_t)(6 * wt));
    const size_t xi_stride = (size_t)cout * (size_t)ldm;
    for (int k = k0; k < k1; k++) {
        const float b = bias ? bias[k] : 0.0f;
        for (int ty = 0; ty < tile_rows; ty++) {
            const float *mt = m + (size_t)k * ldm + (size_t)ty * tiles_w;
            for (int i = 0; i < 6; i++) {
                const float *e = mt + (size_t)(6 * i) * xi_stride;
                float *o = rows + i * wt;
                for (int tx = 0; tx < tiles_w; tx++) {
                    AT_ROWS(e[tx], e[xi_stride + tx], e[2 * xi_stride + tx], e[3 * xi_stride + tx],
                            e[4 * xi_stride + tx], e[5 * xi_stride + tx], o[4 * tx], o[4 * tx + 1], o[4 * tx + 2],
                            o[4 * tx + 3]);
                }
            }
            const int oy0 = 4 * (tile_row0 + ty);
            const float *r0 = rows, *r1 = rows + wt, *r2 = rows + 2 * wt, *r3 = rows + 3 * wt, *r4 = rows + 4 * wt,
                        *r5 = rows + 5 * wt;
            float *yk = y + (size_t)k * ho * wo;
            // The four rows of AT_ROWS one at a time (same operations in the same order), so each loop vectorises.
            if (oy0 < ho) {
                float *o = yk + (size_t)oy0 * wo;
                for (int q = 0; q < wo; q++) o[q] = (((r0[q] + (r1[q] + r2[q])) + (r3[q] + r4[q]))) + b;
            }
            if (oy0 + 1 < ho) {
                float *o = yk + (size_t)(oy0 + 1) * wo;
                for (int q = 0; q < wo; q++) o[q] = ((r1[q] - r2[q]) + (r3[q] - r4[q]) * 2.0f) + b;
            }
            if (oy0 + 2 < ho) {
                float *o = yk + (size_t)(oy0 + 2) * wo;
                for (int q = 0; q < wo; q++) o[q] = ((r1[q] + r2[q]) + (r3[q] + r4[q]) * 4.0f) + b;
            }
            if (oy0 + 3 < ho) {
                float *o = yk + (size_t)(oy0 + 3) * wo;
                for (int q = 0; q < wo; q++) o[q] = (((r1[q] - r2[q]) + (r3[q] - r4[q]) * 8.0f) + r5[q]) + b;
            }
        }
    }
    free(rows);
}
