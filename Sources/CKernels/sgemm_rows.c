// The few-rows product of varlab_kernels.h. Why not OpenBLAS: its result for a row depends on how many rows share
// the call, and calling it once per sample re-packs the whole weight matrix for every sample (5x slower for one
// token per sample). Here the weights stream through once for all rows and each element's sum has one fixed order.
#include "varlab_kernels.h"

// Every sum below is written out in the order it must run: no contraction of a * b + c into one fused operation
// unless the code says fma.
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>

// ---- AVX2 + FMA: 8 lanes, lane l sums k = l, l + 8, ...; the lanes reduce as ((0+4)+(2+6)) + ((1+5)+(3+7)).
__attribute__((target("avx2,fma")))
static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                 // (0+4) (1+5) (2+6) (3+7)
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s)); // ((0+4)+(2+6)) ((1+5)+(3+7))
    __m128 u = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
    return _mm_cvtss_f32(u);
}

__attribute__((target("avx2,fma")))
static inline float tail_dot(const float *a, const float *b, int from, int k) {
    float s = 0;
    for (int i = from; i < k; i++) s = __builtin_fmaf(a[i], b[i], s);
    return s;
}

// One element: acc over k in 8-lane steps (fma), then hsum8 + the scalar tail. Every path below computes each
// element exactly this way; the blocked loops only share loads between elements.
__attribute__((target("avx2,fma")))
static inline void store(float *o, __m256 acc, const float *xr, const float *wr, int k8, int k, float beta) {
    float d = hsum8(acc) + tail_dot(xr, wr, k8, k);
    *o = beta != 0 ? beta * *o + d : d;
}

__attribute__((target("avx2,fma")))
static void rows_avx2(int rows, int j0, int j1, int k, const float *x, int ldx, const float *w, int ldw,
                      float beta, float *y, int ldy) {
    const int k8 = k & ~7;
    int j = j0;
    // Three weight rows x four x rows per pass: 12 sums in registers, 7 loads per 12 fused multiply-adds.
    for (; j + 3 <= j1; j += 3) {
        const float *w0 = w + (size_t)j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw;
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            const float *xr[4] = {x + (size_t)r * ldx, x + (size_t)(r + 1) * ldx, x + (size_t)(r + 2) * ldx,
                                  x + (size_t)(r + 3) * ldx};
            __m256 a[4][3];
            for (int q = 0; q < 4; q++) for (int c = 0; c < 3; c++) a[q][c] = _mm256_setzero_ps();
            for (int i = 0; i < k8; i += 8) {
                __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i), v2 = _mm256_loadu_ps(w2 + i);
                for (int q = 0; q < 4; q++) {
                    __m256 u = _mm256_loadu_ps(xr[q] + i);
                    a[q][0] = _mm256_fmadd_ps(u, v0, a[q][0]);
                    a[q][1] = _mm256_fmadd_ps(u, v1, a[q][1]);
                    a[q][2] = _mm256_fmadd_ps(u, v2, a[q][2]);
                }
            }
            for (int q = 0; q < 4; q++) {
                float *o = y + (size_t)(r + q) * ldy + j;
                store(o, a[q][0], xr[q], w0, k8, k, beta);
                store(o + 1, a[q][1], xr[q], w1, k8, k, beta);
                store(o + 2, a[q][2], xr[q], w2, k8, k, beta);
            }
        }
        for (; r < rows; r++) {
            const float *x0 = x + (size_t)r * ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0;
            for (int i = 0; i < k8; i += 8) {
                __m256 u = _mm256_loadu_ps(x0 + i);
                a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w0 + i), a0);
                a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w1 + i), a1);
                a2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w2 + i), a2);
            }
            float *o = y + (size_t)r * ldy + j;
            store(o, a0, x0, w0, k8, k, beta);
            store(o + 1, a1, x0, w1, k8, k, beta);
            store(o + 2, a2, x0, w2, k8, k, beta);
        }
    }
    for (; j < j1; j++) {
        const float *w0 = w + (size_t)j * ldw;
        for (int r = 0; r < rows; r++) {
            const float *x0 = x + (size_t)r * ldx;
            __m256 a0 = _mm256_setzero_ps();
            for (int i = 0; i < k8; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + i), _mm256_loadu_ps(w0 + i), a0);
            store(y + (size_t)r * ldy + j, a0, x0, w0, k8, k, beta);
        }
    }
}
#endif

// ---- Portable: the same lane structure with separate multiply and add (no FMA), one element at a time.
static void rows_portable(int rows, int j0, int j1, int k, const float *x, int ldx, const float *w, int ldw,
                          float beta, float *y, int ldy) {
    const int k8 = k & ~7;
    for (int r = 0; r < rows; r++) {
        const float *x0 = x + (size_t)r * ldx;
        for (int j = j0; j < j1; j++) {
            const float *w0 = w + (size_t)j * ldw;
            float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int i = 0; i < k8; i += 8)
                for (int q = 0; q < 8; q++) l[q] += x0[i + q] * w0[i + q];
            float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            float t = 0;
            for (int i = k8; i < k; i++) t += x0[i] * w0[i];
            d += t;
            float *o = y + (size_t)r * ldy + j;
            o[0] = beta != 0 ? beta * o[0] + d : d;
        }
    }
}

int varlab_kernels_avx2(void) {
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
#else
    return 0;
#endif
}

void varlab_sgemm_nt_rows(int rows, int j0, int j1, int k, const float *x, int ldx, const float *w, int ldw,
                          float beta, float *y, int ldy) {
#if defined(__x86_64__)
    if (varlab_kernels_avx2()) { rows_avx2(rows, j0, j1, k, x, ldx, w, ldw, beta, y, ldy); return; }
#endif
    rows_portable(rows, j0, j1, k, x, ldx, w, ldw, beta, y, ldy);
}
