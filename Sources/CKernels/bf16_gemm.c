// The opt-in bf16 product of varlab_kernels.h: y = x W^T with x and W rounded to bfloat16 and every product summed
// in float32 by AVX512-BF16's VDPBF16PS. Why not OpenBLAS: Debian's 0.3.21 is built without its bf16 GEMM. Each
// element is one float32 lane that sums the k-pairs in order 0, 1, 2, ..., so it depends only on its row of x and of
// W: never on how many rows share the call, the blocking or the thread count.
#include "varlab_kernels.h"
#include <stdint.h>
#include <string.h>

// y = acc + beta * y exactly as written: no contraction into a fused multiply-add.
#pragma clang fp contract(off)

#define PANEL 32 // output columns per packed weight panel: two 16-lane registers
#define MR 12    // rows per micro-tile: 24 accumulators + 2 weight registers + 1 broadcast of the 32 registers

size_t varlab_bf16_row_length(int k) { return (size_t)(k + 1) & ~(size_t)1; }

size_t varlab_bf16_packed_count(int n, int k) {
    return (size_t)((n + PANEL - 1) / PANEL) * PANEL * varlab_bf16_row_length(k);
}

// float32 -> bfloat16, round to nearest even (NaN stays NaN), the conversion VCVTNE2PS2BF16 does.
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

void varlab_bf16_round_rows(int rows, int k, const float *x, int ldx, uint16_t *out) {
    const size_t kp = varlab_bf16_row_length(k);
    for (int r = 0; r < rows; r++) {
        const float *s = x + (size_t)r * ldx;
        uint16_t *d = out + (size_t)r * kp;
        for (int i = 0; i < k; i++) d[i] = to_bf16(s[i]);
        if ((size_t)k < kp) d[k] = 0;
    }
}

// Panel q holds columns [32q, 32q + 32) as (k-pair p, column c) -> the two bf16 of W[32q + c][2p, 2p + 1], so one
// 64-byte load gives 16 columns' pair p; columns past n and the odd k's partner are zero.
void varlab_bf16_pack_weights(int n, int k, const float *w, int ldw, int panel0, int panel1, uint16_t *packed) {
    const size_t kp = varlab_bf16_row_length(k), pairs = kp / 2;
    for (int q = panel0; q < panel1; q++) {
        uint16_t *dst = packed + (size_t)q * PANEL * kp;
        for (int c = 0; c < PANEL; c++) {
            const int j = q * PANEL + c;
            for (size_t p = 0; p < pairs; p++) {
                uint16_t lo = 0, hi = 0;
                if (j < n) {
                    const float *row = w + (size_t)j * ldw;
                    lo = to_bf16(row[2 * p]);
                    if (2 * p + 1 < (size_t)k) hi = to_bf16(row[2 * p + 1]);
                }
                dst[p * 2 * PANEL + 2 * c] = lo;
                dst[p * 2 * PANEL + 2 * c + 1] = hi;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

int varlab_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

// Two bf16 of a row read as one 32-bit broadcast (may_alias: the row is stored as uint16).
typedef int32_t __attribute__((may_alias)) pair_t;

// `rows` (1...MR) rows of a times one panel: acc[r] = sum over pairs in order; then y = acc + beta * y on the
// columns below n. Inlined with a constant `rows`, so every tile height has its own fully unrolled loop.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline))
static inline void tile(const int rows, size_t pairs, const uint16_t *a, size_t lda, const uint16_t *panel,
                        int cols, float beta, float *y, int ldy) {
    __m512 acc[MR][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const pair_t *ap[MR];
    for (int r = 0; r < rows; r++) ap[r] = (const pair_t *)(a + (size_t)r * lda);
    for (size_t p = 0; p < pairs; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * PANEL);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * PANEL + PANEL);
        for (int r = 0; r < rows; r++) {
            const __m512bh v = (__m512bh)_mm512_set1_epi32(ap[r][p]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], v, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], v, b1);
        }
    }
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512 vb = _mm512_set1_ps(beta);
    for (int r = 0; r < rows; r++) {
        float *o = y + (size_t)r * ldy;
        __m512 s0 = acc[r][0], s1 = acc[r][1];
        if (beta != 0) {
            s0 = _mm512_add_ps(s0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, o)));
            s1 = _mm512_add_ps(s1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, o + 16)));
        }
        _mm512_mask_storeu_ps(o, m0, s0);
        _mm512_mask_storeu_ps(o + 16, m1, s1);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void varlab_bf16_gemm_nt(int r0, int r1, int panel0, int panel1, int n, int k, const uint16_t *a,
                         const uint16_t *packed, float beta, float *y, int ldy) {
    const size_t kp = varlab_bf16_row_length(k), pairs = kp / 2;
    for (int q = panel0; q < panel1; q++) {
        const uint16_t *panel = packed + (size_t)q * PANEL * kp;
        const int j0 = q * PANEL, cols = n - j0 < PANEL ? n - j0 : PANEL;
        int r = r0;
        for (; r + MR <= r1; r += MR)
            tile(MR, pairs, a + (size_t)r * kp, kp, panel, cols, beta, y + (size_t)r * ldy + j0, ldy);
        const uint16_t *ar = a + (size_t)r * kp;
        float *yr = y + (size_t)r * ldy + j0;
        switch (r1 - r) {
        case 11: tile(11, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 10: tile(10, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 9: tile(9, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 8: tile(8, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 7: tile(7, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 6: tile(6, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 5: tile(5, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 4: tile(4, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 3: tile(3, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 2: tile(2, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        case 1: tile(1, pairs, ar, kp, panel, cols, beta, yr, ldy); break;
        default: break;
        }
    }
}

#else
#include <stdlib.h>
int varlab_bf16_supported(void) { return 0; }
// Never called: callers check varlab_bf16_supported() first.
void varlab_bf16_gemm_nt(int r0, int r1, int panel0, int panel1, int n, int k, const uint16_t *a,
                         const uint16_t *packed, float beta, float *y, int ldy) {
    (void)r0; (void)r1; (void)panel0; (void)panel1; (void)n; (void)k; (void)a; (void)packed; (void)beta; (void)y;
    (void)ldy;
    abort();
}
#endif
