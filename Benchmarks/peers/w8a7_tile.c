// Would 7-bit activations make AVX2 faster? An experiment, not a kernel of vdb: an AVX2
// tile for 8-bit weights × 7-bit activations, timed against `vdb_int8_linear` (int16
// activations, `VDB_INT8_KERNEL=avx2` for its AVX2 level) on the encoder's four layer
// shapes. docs/encoder.md ("On an AVX2-only CPU") quotes it.
//
// Why 7 bits: `vpmaddubsw` multiplies unsigned bytes by signed ones and adds pairs into
// int16; with |x| ≤ 63 and |w| ≤ 127 two such pair sums still fit int16 (4 · 63 · 127 <
// 32768), so one widening `vpmaddwd` serves 64 products, not 32. The signs go on the
// weights (`vpsignb`), |x| is read precomputed. Per 64 products of a row: two `vpsignb`,
// two `vpmaddubsw`, one `vpaddw`, one `vpmaddwd` and one `vpaddd`, against int8's four
// `vpmaddwd` and four `vpaddd` (and its share of broadcasts and widenings).
// Random operands: the timing does not depend on their values.
//
//   S=Sources/CKernels; clang -O2 -I$S/include -o /tmp/w8a7_tile
//     Benchmarks/peers/w8a7_tile.c $S/int8.c -lm
//   VDB_INT8_KERNEL=avx2 /tmp/w8a7_tile 235
//
// (one command over the first two lines, from the repository's root)
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckernels.h"

enum { PANEL = 16, BLOCK = 32, QUADS = BLOCK / 4, TALL = 2, ROUNDS = 15, CALLS = 3 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define AVX2 __attribute__((target("avx2,fma")))

// `nr` rows × one panel of 16 columns. x and ax: the rows' signed 7-bit values and their
// magnitudes, kb · 32 bytes a row; xs: a scale per row and block. w: per block and quad,
// 16 columns × 4 bytes (w8a8.c's layout); sw: a scale per block and column.
AVX2 static inline __attribute__((always_inline)) void tile(const int nr, int kb, const int8_t *x,
                                                             const uint8_t *ax, const float *xs,
                                                             const int8_t *w, const float *sw,
                                                             float *y, int ldy) {
  const size_t ldx = (size_t)kb * BLOCK;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 sum[TALL][2];
  for (int i = 0; i < nr; i++) sum[i][0] = sum[i][1] = _mm256_setzero_ps();
  for (int g = 0; g < kb; g++) {
    __m256i acc[TALL][2];
    for (int i = 0; i < nr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    const int8_t *wg = w + (size_t)g * QUADS * PANEL * 4;
    for (int q = 0; q < QUADS; q += 2) {
      __m256i wv[2][2];  // [quad q or q + 1][columns 0–7 or 8–15]
      for (int h = 0; h < 2; h++)
        for (int j = 0; j < 2; j++)
          wv[h][j] = _mm256_loadu_si256((const __m256i *)(wg + (q + h) * 64 + j * 32));
      for (int i = 0; i < nr; i++) {
        __m256i sx[2], mx[2];
        for (int h = 0; h < 2; h++) {
          int32_t s, m;
          memcpy(&s, x + i * ldx + g * BLOCK + (q + h) * 4, 4);
          memcpy(&m, ax + i * ldx + g * BLOCK + (q + h) * 4, 4);
          sx[h] = _mm256_set1_epi32(s), mx[h] = _mm256_set1_epi32(m);
        }
        for (int j = 0; j < 2; j++) {
          const __m256i pairs =
              _mm256_add_epi16(_mm256_maddubs_epi16(mx[0], _mm256_sign_epi8(wv[0][j], sx[0])),
                               _mm256_maddubs_epi16(mx[1], _mm256_sign_epi8(wv[1][j], sx[1])));
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
    for (int i = 0; i < nr; i++) {
      const __m256 s = _mm256_set1_ps(xs[i * kb + g]);
      for (int j = 0; j < 2; j++)
        sum[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][j]),
                                    _mm256_mul_ps(_mm256_loadu_ps(sw + g * PANEL + 8 * j), s),
                                    sum[i][j]);
    }
  }
  for (int i = 0; i < nr; i++)
    for (int j = 0; j < 2; j++) _mm256_storeu_ps(y + (size_t)i * ldy + 8 * j, sum[i][j]);
}

AVX2 static void linear7(int rows, int k, int columns, const int8_t *w, const float *sw,
                         const int8_t *x, const uint8_t *ax, const float *xs, float *y) {
  const int kb = k / BLOCK;
  for (int panel = 0; panel < columns / PANEL; panel++) {
    const int8_t *wp = w + (size_t)panel * kb * QUADS * PANEL * 4;
    const float *sp = sw + (size_t)panel * kb * PANEL;
    float *yp = y + panel * PANEL;
    int r = 0;
    for (; r + TALL <= rows; r += TALL)
      tile(TALL, kb, x + (size_t)r * k, ax + (size_t)r * k, xs + (size_t)r * kb, wp, sp,
           yp + (size_t)r * columns, columns);
    for (; r < rows; r++)
      tile(1, kb, x + (size_t)r * k, ax + (size_t)r * k, xs + (size_t)r * kb, wp, sp,
           yp + (size_t)r * columns, columns);
  }
}

int main(int argc, char **argv) {
  const int rows = argc > 1 ? atoi(argv[1]) : 235;
  const int shapes[4][2] = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}};
  printf("%d rows; int8 level %d (1 AVX2)\n", rows, vdb_int8_level());
  srand(1);
  for (int s = 0; s < 4; s++) {
    const int k = shapes[s][0], columns = shapes[s][1], kb = k / BLOCK;
    float *wf = malloc(sizeof(float) * k * columns), *xf = malloc(sizeof(float) * rows * k);
    float *y = malloc(sizeof(float) * rows * columns), *sw = malloc(sizeof(float) * kb * columns);
    float *xs = malloc(sizeof(float) * rows * kb);
    int8_t *w7 = malloc((size_t)k * columns), *x7 = malloc((size_t)rows * k);
    uint8_t *ax = malloc((size_t)rows * k);
    void *int8 = aligned_alloc(64, (vdb_int8_packed_size(k, columns) + 63) / 64 * 64);
    for (long i = 0; i < (long)k * columns; i++) wf[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)rows * k; i++) xf[i] = rand() / (float)RAND_MAX - 0.5f;
    vdb_int8_pack(k, columns, wf, int8);
    for (long i = 0; i < (long)k * columns; i++) w7[i] = (int8_t)(rand() % 255 - 127);
    for (long i = 0; i < (long)rows * k; i++) x7[i] = (int8_t)(rand() % 127 - 63);
    for (long i = 0; i < (long)rows * k; i++) ax[i] = (uint8_t)abs(x7[i]);
    for (long i = 0; i < (long)kb * columns; i++) sw[i] = 1e-2f;
    for (long i = 0; i < (long)rows * kb; i++) xs[i] = 1e-2f;
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < ROUNDS; round++) {  // the two alternated, round by round
      double t = now();
      for (int c = 0; c < CALLS; c++)
        vdb_int8_linear(rows, k, columns, int8, 0, columns, xf, NULL, y, columns);
      if ((t = (now() - t) / CALLS) < best[0]) best[0] = t;
      t = now();
      for (int c = 0; c < CALLS; c++) linear7(rows, k, columns, w7, sw, x7, ax, xs, y);
      if ((t = (now() - t) / CALLS) < best[1]) best[1] = t;
    }
    const double macs = (double)rows * k * columns / 1e9;
    printf("%4d → %4d: int8 %.1f GMAC/s, 8-bit × 7-bit %.1f GMAC/s (%.2f×)\n", k, columns,
           macs / best[0], macs / best[1], best[0] / best[1]);
    free(wf), free(xf), free(y), free(sw), free(xs), free(w7), free(x7), free(ax), free(int8);
  }
}
