#include "ckernels.h"
#include "levels.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// A linear layer y = x · Wᵀ + b in integers, weights scaled per block of 32 inputs and
// activations per row:
//
//   y[r][c] = b[c] + sx[r] · Σ_g sw[c][g] · Σ_{i in block g} qx[r][i] · qw[c][i]
//
// qw = round(w / sw) in [-127, 127], sw = max|w| / 127 over the block (once, when packed);
// qx = round(x / sx) in [-32767, 32767], sx = max|x| / 32767 over the row (on every call).
// Why these: on all-MiniLM-L6-v2, int8 weights with one scale per 32 values keep the
// sentence vectors at cosine 0.9996 of float32's, where one scale per output channel
// reaches only 0.9965; 8-bit (0.998) or 7-bit (0.996) activations lose more than the
// 0.999 allowed, 16-bit ones nothing measurable, per block or per row alike
// (Benchmarks/peers/precision_sim.py). One activation scale per row leaves each block's
// sum one conversion and one FMA by the weights' scales, sx applied once at the end: 7%
// faster than a scale per block on AVX2. `vpmaddwd` multiplies int16 pairs into int32 at
// twice the products per instruction of a float32 FMA, and the sums are exact: a pair
// adds at most 2 · 32767 · 127 < 2²³, a block's 16 pairs less than 2²⁷, and each block's
// sum becomes float32 on its own.
//
// W is packed once into panels of 16 output columns: for each block g and each pair p
// of inputs (2p, 2p + 1) in it, 16 × 2 bytes — column c's pair — widened to int16 on
// load into one 512-bit register or two 256-bit ones (a column's pair in one 32-bit
// lane, the operand `vpmaddwd` and `vpdpwssd` multiply with a broadcast pair of x);
// then the scales sw, 16 per block.

enum { PANEL = 16, BLOCK = 32, PAIRS = BLOCK / 2, ROW_BLOCK = 64, X_MAX = 32767 };

static int blocks_of(int k) { return (k + BLOCK - 1) / BLOCK; }
static int panels_of(int columns) { return (columns + PANEL - 1) / PANEL; }

// Per panel and block: 512 weight bytes, then (elsewhere) 16 scales.
size_t vdb_int8_packed_size(int k, int columns) {
  return (size_t)panels_of(columns) * blocks_of(k) * (PANEL * BLOCK + PANEL * sizeof(float));
}

typedef struct {
  const int8_t *w;     // [panel][block][pair][16 columns][2]
  const float *scale;  // [panel][block][16]
} packed_t;

static packed_t layout(int k, int columns, const void *packed) {
  const int8_t *w = packed;
  const size_t units = (size_t)panels_of(columns) * blocks_of(k);
  return (packed_t){w, (const float *)(w + units * PANEL * BLOCK)};
}

void vdb_int8_pack(int k, int columns, const float *w, void *packed) {
  const int kb = blocks_of(k);
  memset(packed, 0, vdb_int8_packed_size(k, columns));  // padding columns and inputs
  const packed_t p = layout(k, columns, packed);
  int8_t *qw = (int8_t *)p.w;
  float *scale = (float *)p.scale;
  for (int c = 0; c < columns; c++) {
    const float *row = w + (size_t)c * k;
    for (int g = 0; g < kb; g++) {
      const int begin = g * BLOCK, end = begin + BLOCK < k ? begin + BLOCK : k;
      float top = 0;
      for (int i = begin; i < end; i++) top = fmaxf(top, fabsf(row[i]));
      const size_t unit = (size_t)(c / PANEL) * kb + g;
      const float s = top / 127;
      for (int i = begin; i < end && top > 0; i++) {
        const float q = fminf(fmaxf(nearbyintf(row[i] / s), -127), 127);
        qw[(unit * PAIRS + (i - begin) / 2) * PANEL * 2 + (c % PANEL) * 2 + i % 2] = (int8_t)q;
      }
      scale[unit * PANEL + c % PANEL] = s;
    }
  }
}

// Rows of x as int16 (row stride kb · 32, padding inputs 0) and one scale per row. Every
// level gets the same integers: the vector code below does the same float operations (an
// exact maximum, one multiply, round to nearest even, clamp).
static inline float row_scale_inverse(float top) { return top > 0 ? X_MAX / top : 0; }

static inline int16_t quantized(float x, float inverse) {
  // |x · 32767 / top| ≤ 32767 up to rounding: the clamp only guards against that.
  return (int16_t)fminf(fmaxf(nearbyintf(x * inverse), -X_MAX), X_MAX);
}

static void quantize_rows_plain(int rows, int k, const float *x, int16_t *xq, float *xs) {
  const int padded = blocks_of(k) * BLOCK;
  for (int r = 0; r < rows; r++) {
    const float *in = x + (size_t)r * k;
    int16_t *out = xq + (size_t)r * padded;
    float top = 0;
    for (int i = 0; i < k; i++) top = fmaxf(top, fabsf(in[i]));
    const float inverse = row_scale_inverse(top);
    for (int i = 0; i < k; i++) out[i] = quantized(in[i], inverse);
    for (int i = k; i < padded; i++) out[i] = 0;
    xs[r] = top / X_MAX;
  }
}

#define AVX2 __attribute__((target("avx2,fma")))

// Why a vector version: the scalar loop above (`nearbyintf` per value) took 11% of a
// 384 → 1536 layer's time over 240 rows and 38% of a 1536 → 384 one's; 8 values at a
// time it takes 2% and 7%.
AVX2 static void quantize_rows_avx2(int rows, int k, const float *x, int16_t *xq, float *xs) {
  const int padded = blocks_of(k) * BLOCK, whole = k / 16 * 16;
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 low = _mm256_set1_ps(-X_MAX), high = _mm256_set1_ps(X_MAX);
  for (int r = 0; r < rows; r++) {
    const float *in = x + (size_t)r * k;
    int16_t *out = xq + (size_t)r * padded;
    __m256 top8 = _mm256_setzero_ps();
    for (int i = 0; i < whole; i += 8)  // a NaN is skipped, as by fmaxf
      top8 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(in + i), magnitude), top8);
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(top8), _mm256_extractf128_ps(top8, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    t = _mm_max_ss(t, _mm_movehdup_ps(t));
    float top = _mm_cvtss_f32(t);
    for (int i = whole; i < k; i++) top = fmaxf(top, fabsf(in[i]));
    const float inverse = row_scale_inverse(top);
    const __m256 inverse8 = _mm256_set1_ps(inverse);
    for (int i = 0; i < whole; i += 16) {
      __m256i q[2];
      for (int j = 0; j < 2; j++) {
        const __m256 rounded =
            _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(in + i + 8 * j), inverse8),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[j] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(rounded, low), high));
      }
      // packs works within 128-bit lanes: the permute puts the 16 values back in order.
      _mm256_storeu_si256((__m256i *)(out + i),
                          _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8));
    }
    for (int i = whole; i < k; i++) out[i] = quantized(in[i], inverse);
    for (int i = k; i < padded; i++) out[i] = 0;
    xs[r] = top / X_MAX;
  }
}

// Columns [lo, hi) of panel `panel` as a lane mask (as in bf16.c).
static inline unsigned lanes(int panel, int lo, int hi) {
  const int first = lo > panel * PANEL ? lo - panel * PANEL : 0;
  const int end = hi < (panel + 1) * PANEL ? hi - panel * PANEL : PANEL;
  return end <= first ? 0u : ((1u << end) - 1u) & ~((1u << first) - 1u);
}

static inline void store(const float *sums, const float *bias, unsigned mask, float *y) {
  for (int j = 0; j < PANEL; j++)
    if (mask >> j & 1) y[j] = sums[j] + (bias ? bias[j] : 0.0f);
}

static inline int32_t load_pair(const int16_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

// One tile: `nr` rows × one panel, `nr` ≤ the ISA's tile height.
typedef void tile_t(const int nr, int kb, const int16_t *xq, const float *xs, const int8_t *w,
                    const float *scale, const float *bias, float *y, int ldy, unsigned mask);

// What every ISA's block does around its tile: each panel of columns [lo, hi), `tall` ≤ 8
// rows at a time. Inlined into each ISA's block with `tile` and `tall` constants, so each
// case inlines the tile with its row count a constant (its sums stay in registers), and
// the cases past `tall` fold away.
static inline __attribute__((always_inline)) void over_panels(
    tile_t tile, const int tall, int rows, int kb, const int16_t *xq, const float *xs,
    packed_t p, int lo, int hi, const float *bias, float *y, int ldy) {
  for (int panel = lo / PANEL; panel * PANEL < hi; panel++) {
    const unsigned mask = lanes(panel, lo, hi);
    const size_t unit = (size_t)panel * kb;
    const int8_t *w = p.w + unit * PANEL * BLOCK;
    const float *b = bias ? bias + panel * PANEL : NULL;
    for (int r = 0; r < rows; r += tall) {
      const int16_t *xr = xq + (size_t)r * kb * BLOCK;
      const float *sr = xs + r;
      float *yr = y + (size_t)r * ldy + panel * PANEL;
#define TILE(n)                                                                             \
  case n:                                                                                   \
    if (n <= tall) tile(n, kb, xr, sr, w, p.scale + unit * PANEL, b, yr, ldy, mask);       \
    break;
      switch (rows - r < tall ? rows - r : tall) {
        TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) default : TILE(8)
      }
#undef TILE
    }
  }
}

// ---------------------------------------------------------------- AVX-512 VNNI

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// `nr` rows (a constant after inlining) × one panel: `vpdpwssd` adds 2 products per lane.
VNNI static inline __attribute__((always_inline)) void tile_vnni(
    const int nr, int kb, const int16_t *xq, const float *xs, const int8_t *w,
    const float *scale, const float *bias, float *y, int ldy, unsigned mask) {
  const size_t ldx = (size_t)kb * BLOCK;
  __m512 sum[8];
  for (int i = 0; i < nr; i++) sum[i] = _mm512_setzero_ps();
  for (int g = 0; g < kb; g++) {
    __m512i acc[8];
    for (int i = 0; i < nr; i++) acc[i] = _mm512_setzero_si512();
    for (int q = 0; q < PAIRS; q++) {
      const __m512i wq = _mm512_cvtepi8_epi16(
          _mm256_loadu_si256((const __m256i *)(w + ((size_t)g * PAIRS + q) * PANEL * 2)));
      for (int i = 0; i < nr; i++) {
        const __m512i xv = _mm512_set1_epi32(load_pair(xq + i * ldx + g * BLOCK + q * 2));
        acc[i] = _mm512_dpwssd_epi32(acc[i], xv, wq);
      }
    }
    const __m512 sw = _mm512_loadu_ps(scale + g * PANEL);
    for (int i = 0; i < nr; i++) sum[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), sw, sum[i]);
  }
  const __m512 b = bias ? _mm512_maskz_loadu_ps((__mmask16)mask, bias) : _mm512_setzero_ps();
  for (int i = 0; i < nr; i++)
    _mm512_mask_storeu_ps(y + (size_t)i * ldy, (__mmask16)mask,
                          _mm512_add_ps(_mm512_mul_ps(sum[i], _mm512_set1_ps(xs[i])), b));
}

VNNI static void block_vnni(int rows, int kb, const int16_t *xq, const float *xs, packed_t p,
                            int lo, int hi, const float *bias, float *y, int ldy) {
  over_panels(tile_vnni, 8, rows, kb, xq, xs, p, lo, hi, bias, y, ldy);
}

// ---------------------------------------------------------------- AVX2 and AVX-VNNI

// acc + the sums of adjacent int16 products of x and w in each int32 lane.
typedef __m256i madd_t(__m256i acc, __m256i x, __m256i w);

// AVX2: `vpmaddwd`, then `vpaddd`.
AVX2 static inline __attribute__((always_inline)) __m256i madd_avx2(__m256i acc, __m256i x,
                                                                    __m256i w) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w));
}

// AVX-VNNI (Intel Core since Alder Lake, which has no AVX-512): the same in one
// `vpdpwssd`, so the adds no longer take the ports the multiplies need.
#define AVXVNNI __attribute__((target("avx2,fma,avxvnni")))
AVXVNNI static inline __attribute__((always_inline)) __m256i madd_avxvnni(__m256i acc, __m256i x,
                                                                          __m256i w) {
  return _mm256_dpwssd_avx_epi32(acc, x, w);
}

// `nr` rows × one panel (two halves of 8 columns). Per pair of inputs: the weights widened
// to int16 once, then per row two `madd`s of the broadcast pair of x.
AVX2 static inline __attribute__((always_inline)) void tile_256(
    madd_t madd, const int nr, int kb, const int16_t *xq, const float *xs, const int8_t *w,
    const float *scale, const float *bias, float *y, int ldy, unsigned mask) {
  const size_t ldx = (size_t)kb * BLOCK;
  __m256 sum[4][2];
  for (int i = 0; i < nr; i++) sum[i][0] = sum[i][1] = _mm256_setzero_ps();
  for (int g = 0; g < kb; g++) {
    __m256i acc[4][2];
    for (int i = 0; i < nr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int q = 0; q < PAIRS; q++) {
      const int8_t *wq = w + ((size_t)g * PAIRS + q) * PANEL * 2;
      const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wq));
      const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wq + 16)));
      for (int i = 0; i < nr; i++) {
        const __m256i xv = _mm256_set1_epi32(load_pair(xq + i * ldx + g * BLOCK + q * 2));
        acc[i][0] = madd(acc[i][0], xv, a);
        acc[i][1] = madd(acc[i][1], xv, b);
      }
    }
    const __m256 s0 = _mm256_loadu_ps(scale + g * PANEL), s1 = _mm256_loadu_ps(scale + g * PANEL + 8);
    for (int i = 0; i < nr; i++) {
      sum[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][0]), s0, sum[i][0]);
      sum[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][1]), s1, sum[i][1]);
    }
  }
  // A whole panel (all but a last one narrower than 16 columns) is stored as two vectors,
  // a partial one value by value: storing every panel value by value cost 7–10% of a
  // layer's time (docs/encoder.md).
  const int whole = mask == (1u << PANEL) - 1;
  const __m256 b0 = whole && bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 b1 = whole && bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  for (int i = 0; i < nr; i++) {
    const __m256 sx = _mm256_set1_ps(xs[i]);
    float *yi = y + (size_t)i * ldy;
    if (whole) {
      _mm256_storeu_ps(yi, _mm256_add_ps(_mm256_mul_ps(sum[i][0], sx), b0));
      _mm256_storeu_ps(yi + 8, _mm256_add_ps(_mm256_mul_ps(sum[i][1], sx), b1));
      continue;
    }
    float out[PANEL];
    _mm256_storeu_ps(out, _mm256_mul_ps(sum[i][0], sx));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(sum[i][1], sx));
    store(out, bias, mask, yi);
  }
}

AVX2 static inline __attribute__((always_inline)) void tile_avx2(
    const int nr, int kb, const int16_t *xq, const float *xs, const int8_t *w,
    const float *scale, const float *bias, float *y, int ldy, unsigned mask) {
  tile_256(madd_avx2, nr, kb, xq, xs, w, scale, bias, y, ldy, mask);
}

AVXVNNI static inline __attribute__((always_inline)) void tile_avxvnni(
    const int nr, int kb, const int16_t *xq, const float *xs, const int8_t *w,
    const float *scale, const float *bias, float *y, int ldy, unsigned mask) {
  tile_256(madd_avxvnni, nr, kb, xq, xs, w, scale, bias, y, ldy, mask);
}

AVX2 static void block_avx2(int rows, int kb, const int16_t *xq, const float *xs, packed_t p,
                            int lo, int hi, const float *bias, float *y, int ldy) {
  over_panels(tile_avx2, 4, rows, kb, xq, xs, p, lo, hi, bias, y, ldy);
}

AVXVNNI static void block_avxvnni(int rows, int kb, const int16_t *xq, const float *xs,
                                  packed_t p, int lo, int hi, const float *bias, float *y,
                                  int ldy) {
  over_panels(tile_avxvnni, 4, rows, kb, xq, xs, p, lo, hi, bias, y, ldy);
}

// ---------------------------------------------------------------- plain C

static void block_plain(int rows, int kb, const int16_t *xq, const float *xs, packed_t p,
                        int lo, int hi, const float *bias, float *y, int ldy) {
  for (int c = lo; c < hi; c++) {
    const size_t unit = (size_t)(c / PANEL) * kb;
    const int8_t *w = p.w + unit * PANEL * BLOCK + (c % PANEL) * 2;
    for (int r = 0; r < rows; r++) {
      const int16_t *xr = xq + (size_t)r * kb * BLOCK;
      float s = 0;
      for (int g = 0; g < kb; g++) {
        int32_t acc = 0;
        for (int i = 0; i < BLOCK; i++)
          acc += xr[g * BLOCK + i] * w[((size_t)g * PAIRS + i / 2) * PANEL * 2 + i % 2];
        s += (float)acc * p.scale[(unit + g) * PANEL + c % PANEL];
      }
      y[(size_t)r * ldy + c] = s * xs[r] + (bias ? bias[c] : 0.0f);
    }
  }
}

// ---------------------------------------------------------------- dispatch

// The levels this CPU has, as levels.h's mask.
static unsigned available_levels(void) {
  __builtin_cpu_init();
  unsigned levels = 1u << VDB_INT8_PLAIN;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    levels |= 1u << VDB_INT8_AVX2;
    if (__builtin_cpu_supports("avxvnni")) levels |= 1u << VDB_INT8_AVXVNNI;
  }
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    levels |= 1u << VDB_INT8_AVX512VNNI;
  return levels;
}

static _Atomic int chosen_level = -1;  // levels.h's kernel_level_chosen

int vdb_int8_level(void) {
  return kernel_level_chosen(&chosen_level, "VDB_INT8_KERNEL", available_levels);
}

int vdb_int8_set_level(int level) {
  return kernel_level_choose(&chosen_level, level, available_levels());
}

void vdb_int8_linear(int rows, int k, int columns, const void *packed, int column_begin,
                     int column_end, const float *x, const float *bias, float *y, int ldy) {
  if (rows <= 0 || column_end <= column_begin) return;
  const int level = vdb_int8_level();
  const int kb = blocks_of(k);
  const packed_t p = layout(k, columns, packed);
  const int block = rows < ROW_BLOCK ? rows : ROW_BLOCK;
  // Scratch for a block of x: the int16 values, then one scale per row.
  const size_t bytes = (size_t)block * (kb * BLOCK * sizeof(int16_t) + sizeof(float));
  _Alignas(64) int16_t stack[24 * 1024];  // a batch-1 query's rows fit; larger go to the heap
  int16_t *xq = bytes <= sizeof stack ? stack : aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!xq) abort();  // a few hundred KiB
  float *xs = (float *)(xq + (size_t)block * kb * BLOCK);
  for (int r = 0; r < rows; r += ROW_BLOCK) {
    const int n = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    if (level == VDB_INT8_PLAIN)
      quantize_rows_plain(n, k, x + (size_t)r * k, xq, xs);
    else
      quantize_rows_avx2(n, k, x + (size_t)r * k, xq, xs);
    float *yr = y + (size_t)r * ldy;
    if (level == VDB_INT8_AVX512VNNI)
      block_vnni(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    else if (level == VDB_INT8_AVXVNNI)
      block_avxvnni(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    else if (level == VDB_INT8_AVX2)
      block_avx2(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    else
      block_plain(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
  }
  if (xq != stack) free(xq);
}
