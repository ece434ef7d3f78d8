#include "ckernels.h"
#include "levels.h"

#include <immintrin.h>
#include <stddef.h>

// Blocks of COLS output columns × ROWS input rows, dot products along k in SIMD lanes,
// summed across lanes at the end. Column blocks are the outer loop so that a block's
// W rows (COLS × k floats) stay in L1 while all input rows pass over them.

#define AVX512 __attribute__((target("avx512f,fma")))

// One block: `nr` rows (a constant after inlining) × 4 columns.
AVX512 static inline __attribute__((always_inline)) void block_avx512(
    const int nr, int k, const float *const wc[4], const float *x, const float *bias, float *y,
    int ldy, int nc) {
  enum { COLS = 4 };
  const int tail = k % 16;
  const __mmask16 mask = (__mmask16)((1u << tail) - 1);
  __m512 acc[6][COLS];
  for (int i = 0; i < nr; i++)
    for (int j = 0; j < COLS; j++) acc[i][j] = _mm512_setzero_ps();
  int p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 wv[COLS];
    for (int j = 0; j < COLS; j++) wv[j] = _mm512_loadu_ps(wc[j] + p);
    for (int i = 0; i < nr; i++) {
      const __m512 xv = _mm512_loadu_ps(x + (size_t)i * k + p);
      for (int j = 0; j < COLS; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (tail) {
    __m512 wv[COLS];
    for (int j = 0; j < COLS; j++) wv[j] = _mm512_maskz_loadu_ps(mask, wc[j] + p);
    for (int i = 0; i < nr; i++) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (size_t)i * k + p);
      for (int j = 0; j < COLS; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < nr; i++)
    for (int j = 0; j < nc; j++)
      y[(size_t)i * ldy + j] = (bias ? bias[j] : 0.0f) + _mm512_reduce_add_ps(acc[i][j]);
}

AVX512 static void linear_avx512(int rows, int k, int columns, const float *x, const float *w,
                                 const float *bias, float *y, int ldy) {
  for (int c0 = 0; c0 < columns; c0 += 4) {
    const int nc = columns - c0 < 4 ? columns - c0 : 4;
    const float *wc[4];
    for (int j = 0; j < 4; j++) wc[j] = w + (size_t)(c0 + (j < nc ? j : 0)) * k;
    const float *b = bias ? bias + c0 : NULL;
    for (int r0 = 0; r0 < rows; r0 += 6) {
      const float *xr = x + (size_t)r0 * k;
      float *yr = y + (size_t)r0 * ldy + c0;
      switch (rows - r0 < 6 ? rows - r0 : 6) {
        case 1: block_avx512(1, k, wc, xr, b, yr, ldy, nc); break;
        case 2: block_avx512(2, k, wc, xr, b, yr, ldy, nc); break;
        case 3: block_avx512(3, k, wc, xr, b, yr, ldy, nc); break;
        case 4: block_avx512(4, k, wc, xr, b, yr, ldy, nc); break;
        case 5: block_avx512(5, k, wc, xr, b, yr, ldy, nc); break;
        default: block_avx512(6, k, wc, xr, b, yr, ldy, nc); break;
      }
    }
  }
}

__attribute__((target("avx2,fma"))) static inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void linear_avx2(
    int rows, int k, int columns, const float *x, const float *w, const float *bias, float *y,
    int ldy) {
  enum { COLS = 3, ROWS = 3 };
  const int body = k - k % 8;
  for (int c0 = 0; c0 < columns; c0 += COLS) {
    const int nc = columns - c0 < COLS ? columns - c0 : COLS;
    const float *wc[COLS];
    for (int j = 0; j < COLS; j++) wc[j] = w + (size_t)(c0 + (j < nc ? j : 0)) * k;
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
      const int nr = rows - r0 < ROWS ? rows - r0 : ROWS;
      const float *xr[ROWS];
      for (int i = 0; i < ROWS; i++) xr[i] = x + (size_t)(r0 + (i < nr ? i : 0)) * k;
      __m256 acc[ROWS][COLS];
      for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) acc[i][j] = _mm256_setzero_ps();
      for (int p = 0; p < body; p += 8) {
        __m256 wv[COLS];
        for (int j = 0; j < COLS; j++) wv[j] = _mm256_loadu_ps(wc[j] + p);
        for (int i = 0; i < ROWS; i++) {
          const __m256 xv = _mm256_loadu_ps(xr[i] + p);
          for (int j = 0; j < COLS; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
        }
      }
      for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++) {
          float s = (bias ? bias[c0 + j] : 0.0f) + sum8(acc[i][j]);
          for (int p = body; p < k; p++) s += xr[i][p] * wc[j][p];
          y[(size_t)(r0 + i) * ldy + c0 + j] = s;
        }
    }
  }
}

static void linear_plain(int rows, int k, int columns, const float *x, const float *w,
                         const float *bias, float *y, int ldy) {
  for (int c = 0; c < columns; c++)
    for (int r = 0; r < rows; r++) {
      float s = 0;
      for (int p = 0; p < k; p++) s += x[(size_t)r * k + p] * w[(size_t)c * k + p];
      y[(size_t)r * ldy + c] = (bias ? bias[c] : 0.0f) + s;
    }
}

static int find_level(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 2;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
}

void vdb_linear_rows(int rows, int k, int columns, const float *x, const float *w,
                     const float *bias, float *y, int ldy) {
  static _Atomic int found = -1;
  const int level = found_once(&found, find_level);
  if (level == 2)
    linear_avx512(rows, k, columns, x, w, bias, y, ldy);
  else if (level == 1)
    linear_avx2(rows, k, columns, x, w, bias, y, ldy);
  else
    linear_plain(rows, k, columns, x, w, bias, y, ldy);
}
