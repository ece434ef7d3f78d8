#include "ckernels.h"
#include "levels.h"
#include "vector16.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// A linear layer y = x · Wᵀ + b with 8-bit weights and 8-bit activations ("w8a8"), both
// rotated first by one orthogonal matrix R, then quantized per block of 32 inputs:
//
//   y[r][c] = b[c] + Σ_g sw[c][g] · sx[r][g] · Σ_{i in block g} qx[r][i] · qw[c][i]
//
// qw = round(w' / sw), sw = max|w'| / 127 over the block (once, when packed);
// qx = round(x' / sx), sx = max|x'| / 127 over the block (on every call);
// x' = x · R, w' = w · R, so x' · w'ᵀ = x · R · Rᵀ · wᵀ = x · wᵀ.
//
// Why the rotation: a layer's inputs have outliers (a few channels 20–100× the rest), and
// with 8 bits per block one outlier leaves the block's other values a handful of levels:
// on all-MiniLM-L6-v2 8-bit activations per block reach cosine 0.998 of float32's, below
// the 0.999 allowed. R = D · H, random signs D, then Walsh–Hadamard transforms H over spans
// of 128 inputs (QuaRot's rotation), spreads each outlier over its span: 0.9995
// (Benchmarks/peers/precision_sim.py, docs/encoder.md). H is applied unnormalized to x
// (the quantization does not depend on x's scale) and divided by the span for w.
// Why 8 bits: AVX-512 VNNI's `vpdpbusd` multiplies 4 unsigned bytes by 4 signed ones and
// adds them to an int32 lane, 64 products per instruction, twice `vpdpwssd`'s on int16;
// activations go in as qx + 128 (1..255), and each block's sum starts from
// −128 · Σ qw, so the sums are exactly Σ qx · qw (|Σ| < 32 · 127 · 127 < 2¹⁹).
// Without VNNI the same integers come from `vpmaddwd` on int16, slower than int8's kernel
// (an 8-bit `vpmaddubsw` needs its sums widened by a second multiply: no gain on AVX2,
// docs/encoder.md); there int8 is the precision to use.
//
// W is packed into panels of 16 output columns: for each block g and each quad q of
// inputs (4q .. 4q + 3), 16 × 4 bytes — column c's quad in one 32-bit lane, the operand
// `vpdpbusd` multiplies with a broadcast quad of x; then −128 · Σ qw per column and block
// (int32), then the scales sw.
// The signs D depend only on the input's index (`flipped`): changing them, the span or
// the rounding changes every vector a w8a8 model has stored.

enum { PANEL = 16, BLOCK = 32, QUADS = BLOCK / 4, ROW_BLOCK = 64, SPAN = 128, X_MAX = 127 };

static int blocks_of(int k) { return (k + BLOCK - 1) / BLOCK; }
static int panels_of(int columns) { return (columns + PANEL - 1) / PANEL; }

// The Walsh–Hadamard span for k inputs: the largest power of two ≤ 128 dividing k.
static int span_of(int k) {
  int span = 1;
  while (span < SPAN && k % (span * 2) == 0) span *= 2;
  return span;
}

// Whether input i's sign is flipped (D): a bit of a fixed hash of i.
static inline int flipped(int i) { return (int)(((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull) >> 63); }

// Per panel and block: 512 weight bytes, then (elsewhere) 16 corrections and 16 scales;
// then one sign mask per input.
size_t vdb_w8a8_packed_size(int k, int columns) {
  return (size_t)panels_of(columns) * blocks_of(k) * (PANEL * BLOCK + PANEL * 8) +
         (size_t)k * sizeof(uint32_t);
}

typedef struct {
  const int8_t *w;         // [panel][block][quad][16 columns][4]
  const int32_t *offset;   // [panel][block][16]: −128 · Σ qw
  const float *scale;      // [panel][block][16]
  const uint32_t *sign;    // [k]: D as float sign bits, 0x80000000 where `flipped`
} packed_t;

static packed_t layout(int k, int columns, const void *packed) {
  const int8_t *w = packed;
  const size_t units = (size_t)panels_of(columns) * blocks_of(k);
  const int32_t *offset = (const int32_t *)(w + units * PANEL * BLOCK);
  const float *scale = (const float *)(offset + units * PANEL);
  return (packed_t){w, offset, scale, (const uint32_t *)(scale + units * PANEL)};
}

// ---------------------------------------------------------------- the rotation

// t ← x · D · H over k values (D as `sign`, flipping sign bits), H unnormalized per span.
// Every level runs this same code (compiled for its instruction set), and every butterfly
// is one float addition and one subtraction, so every level rotates to the same floats.
static inline __attribute__((always_inline)) void rotate_any(int k, const uint32_t *sign,
                                                             const float *x, float *t) {
  int i = 0;
  for (; i + LANES <= k; i += LANES) {
    i16v v, d;
    memcpy(&v, x + i, sizeof v);
    memcpy(&d, sign + i, sizeof d);
    v ^= d;
    memcpy(t + i, &v, sizeof v);
  }
  for (; i < k; i++) {
    uint32_t bits;
    memcpy(&bits, x + i, sizeof bits);
    bits ^= sign[i];
    memcpy(t + i, &bits, sizeof bits);
  }
  const int span = span_of(k);
  if (span < LANES) {  // k not a multiple of 16 (no common BERT width): plain butterflies
    for (int h = 1; h < span; h *= 2)
      for (int b = 0; b < k; b += 2 * h)
        for (int i = b; i < b + h; i++) {
          const float a = t[i], c = t[i + h];
          t[i] = a + c, t[i + h] = a - c;
        }
    return;
  }
  for (int base = 0; base < k; base += span) {
    float *s = t + base;
    // Within each vector of 16: spans 1, 2, 4 and 8, each lane with its partner at
    // distance h (`swap`), the lower one keeping the sum and the upper the difference.
    for (int v = 0; v < span; v += LANES) {
      f16v x = load(s + v);
#define STAGE(h, ...)                                                   \
  {                                                                     \
    const f16v swap = __builtin_shufflevector(x, x, __VA_ARGS__);       \
    x = blend(upper_##h, swap - x, x + swap);                           \
  }
      const i16v upper_1 = {0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1};
      const i16v upper_2 = {0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1};
      const i16v upper_4 = {0, 0, 0, 0, -1, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1};
      const i16v upper_8 = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1};
      STAGE(1, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)
      STAGE(2, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)
      STAGE(4, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11)
      STAGE(8, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)
#undef STAGE
      put(x, s + v);
    }
    for (int h = LANES; h < span; h *= 2)
      for (int b = 0; b < span; b += 2 * h)
        for (int i = b; i < b + h; i += LANES) {
          const f16v a = load(s + i), c = load(s + i + h);
          put(a + c, s + i);
          put(a - c, s + i + h);
        }
  }
}

// ---------------------------------------------------------------- packing

void vdb_w8a8_pack(int k, int columns, const float *w, void *packed) {
  const int kb = blocks_of(k), span = span_of(k);
  memset(packed, 0, vdb_w8a8_packed_size(k, columns));  // padding columns and inputs
  const packed_t p = layout(k, columns, packed);
  int8_t *qw = (int8_t *)p.w;
  int32_t *offset = (int32_t *)p.offset;
  float *scale = (float *)p.scale;
  uint32_t *sign = (uint32_t *)p.sign;
  for (int i = 0; i < k; i++) sign[i] = flipped(i) ? 0x80000000u : 0;
  float *t = malloc((size_t)k * sizeof(float));
  if (!t) abort();  // a row of one layer
  for (int c = 0; c < columns; c++) {
    rotate_any(k, sign, w + (size_t)c * k, t);
    for (int i = 0; i < k; i++) t[i] /= (float)span;  // a power of two: exact
    for (int g = 0; g < kb; g++) {
      const int begin = g * BLOCK, end = begin + BLOCK < k ? begin + BLOCK : k;
      float top = 0;
      for (int i = begin; i < end; i++) top = fmaxf(top, fabsf(t[i]));
      const size_t unit = (size_t)(c / PANEL) * kb + g;
      const float s = top / 127;
      int32_t sum = 0;
      for (int i = begin; i < end && top > 0; i++) {
        const int q = (int)fminf(fmaxf(nearbyintf(t[i] / s), -127), 127);
        qw[(unit * QUADS + (i - begin) / 4) * PANEL * 4 + (c % PANEL) * 4 + i % 4] = (int8_t)q;
        sum += q;
      }
      offset[unit * PANEL + c % PANEL] = -128 * sum;
      scale[unit * PANEL + c % PANEL] = s;
    }
  }
  free(t);
}

// ---------------------------------------------------------------- quantizing x

typedef int16_t i16x16 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

// Row x (k values) rotated into t (kb · 32 floats, the padding 0), then each block of 32
// quantized: its kb scales into xs, its values into out as int16 (`bytes` 2) or as
// unsigned bytes qx + 128 (`bytes` 1, VNNI's operand). The same code at every level, no
// multiply-add contracted, so every level gets the same integers.
static inline __attribute__((always_inline)) void quantize_row_any(int k, const uint32_t *sign,
                                                                   const float *x, float *t,
                                                                   int bytes, void *out,
                                                                   float *xs) {
#pragma clang fp contract(off)
  const int kb = blocks_of(k);
  memset(t + k, 0, (size_t)(kb * BLOCK - k) * sizeof(float));
  rotate_any(k, sign, x, t);
  const f16v shifter = splat(12582912.0f);  // 1.5 · 2²³: adding it rounds to an integer
  for (int g = 0; g < kb; g++) {
    const f16v a = load(t + g * BLOCK), b = load(t + g * BLOCK + LANES);
    const i16v magnitude = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                            0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                            0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                            0x7fffffff};
    const f16v ma = (f16v)((i16v)a & magnitude), mb = (f16v)((i16v)b & magnitude);
    // The block's largest magnitude, halving the vector four times (a scalar loop over
    // the 16 lanes cost as much as the rotation).
    f16v most = blend(ma > mb, ma, mb), other;
    other = __builtin_shufflevector(most, most, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    most = blend(other > most, other, most);
    other = __builtin_shufflevector(most, most, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    most = blend(other > most, other, most);
    other = __builtin_shufflevector(most, most, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    most = blend(other > most, other, most);
    other = __builtin_shufflevector(most, most, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    most = blend(other > most, other, most);
    const float top = most[0] > 0 ? most[0] : 0;
    const float inverse = top > 0 ? X_MAX / top : 0;
    xs[g] = top / X_MAX;
    for (int half = 0; half < 2; half++) {
      f16v q = (half ? b : a) * inverse;
      q = q + shifter;
      q = q - shifter;  // rounded to nearest even; |q| ≤ 127 up to rounding
      q = blend(q > splat(X_MAX), splat(X_MAX), q);
      q = blend(q < splat(-X_MAX), splat(-X_MAX), q);
      const i16v integer = __builtin_convertvector(q, i16v);
      const int at = g * BLOCK + half * LANES;
      if (bytes == 1) {
        const u8x16 u = __builtin_convertvector(integer + 128, u8x16);
        memcpy((uint8_t *)out + at, &u, sizeof u);
      } else {
        const i16x16 s = __builtin_convertvector(integer, i16x16);
        memcpy((int16_t *)out + at, &s, sizeof s);
      }
    }
  }
}

// Rows of x, `rows` of them, as `quantize_row_any`: row r's values at r · kb · 32 in
// `out`, its scales at r · kb in `xs`. Each level wraps this in its own target.
static inline __attribute__((always_inline)) void quantize_rows_any(int rows, int k,
                                                                    const uint32_t *sign,
                                                                    const float *x, float *t,
                                                                    int bytes, void *out,
                                                                    float *xs) {
  const int kb = blocks_of(k);
  for (int r = 0; r < rows; r++)
    quantize_row_any(k, sign, x + (size_t)r * k, t, bytes,
                     (char *)out + (size_t)r * kb * BLOCK * bytes, xs + (size_t)r * kb);
}

// ---------------------------------------------------------------- tiles

// Columns [lo, hi) of panel `panel` as a lane mask.
static inline unsigned lanes(int panel, int lo, int hi) {
  const int first = lo > panel * PANEL ? lo - panel * PANEL : 0;
  const int end = hi < (panel + 1) * PANEL ? hi - panel * PANEL : PANEL;
  return end <= first ? 0u : ((1u << end) - 1u) & ~((1u << first) - 1u);
}

// One tile: `nr` rows × one panel, `nr` ≤ the level's tile height; `rows` are the
// quantized rows (bytes or int16, as the level's quantizer wrote them).
typedef void tile_t(const int nr, int kb, const void *rows, const float *xs, packed_t p,
                    size_t unit0, const float *bias, float *y, int ldy, unsigned mask);

// What every level's block does around its tile: each panel of columns [lo, hi), `tall` ≤ 8
// rows at a time, rows of kb · 32 values of `bytes` each. Inlined into each level's block
// with `tile` and `tall` constants, so each case inlines the tile with its row count a
// constant (its sums stay in registers), and the cases past `tall` fold away.
static inline __attribute__((always_inline)) void over_panels(
    tile_t tile, const int tall, const int bytes, int rows, int kb, const void *xq,
    const float *xs, packed_t p, int lo, int hi, const float *bias, float *y, int ldy) {
  for (int panel = lo / PANEL; panel * PANEL < hi; panel++) {
    const unsigned mask = lanes(panel, lo, hi);
    const size_t unit = (size_t)panel * kb;
    const float *b = bias ? bias + panel * PANEL : NULL;
    for (int r = 0; r < rows; r += tall) {
      const void *xr = (const char *)xq + (size_t)r * kb * BLOCK * bytes;
      const float *sr = xs + (size_t)r * kb;
      float *yr = y + (size_t)r * ldy + panel * PANEL;
#define TILE(n)                                                              \
  case n:                                                                    \
    if (n <= tall) tile(n, kb, xr, sr, p, unit, b, yr, ldy, mask);          \
    break;
      switch (rows - r < tall ? rows - r : tall) {
        TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) default : TILE(8)
      }
#undef TILE
    }
  }
}

// ---------------------------------------------------------------- AVX-512 VNNI

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

VNNI static void quantize_rows_vnni(int rows, int k, const uint32_t *sign, const float *x,
                                    float *t, void *xq, float *xs) {
  quantize_rows_any(rows, k, sign, x, t, 1, xq, xs);
}

// `nr` rows (a constant after inlining) × one panel: per quad of inputs one `vpdpbusd` a
// row, the weights loaded once for all rows.
VNNI static inline __attribute__((always_inline)) void tile_vnni(
    const int nr, int kb, const void *rows, const float *xs, packed_t p, size_t unit0,
    const float *bias, float *y, int ldy, unsigned mask) {
  const uint8_t *xq = rows;
  const size_t ldx = (size_t)kb * BLOCK;
  __m512 sum[8];
  for (int i = 0; i < nr; i++) sum[i] = _mm512_setzero_ps();
  for (int g = 0; g < kb; g++) {
    const size_t unit = unit0 + g;
    const __m512i start = _mm512_loadu_si512(p.offset + unit * PANEL);
    __m512i acc[8];
    for (int i = 0; i < nr; i++) acc[i] = start;
    for (int q = 0; q < QUADS; q++) {
      const __m512i wq = _mm512_loadu_si512(p.w + (unit * QUADS + q) * PANEL * 4);
      for (int i = 0; i < nr; i++) {
        int32_t quad;
        memcpy(&quad, xq + i * ldx + g * BLOCK + q * 4, sizeof quad);
        acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_set1_epi32(quad), wq);
      }
    }
    const __m512 sw = _mm512_loadu_ps(p.scale + unit * PANEL);
    for (int i = 0; i < nr; i++)
      sum[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]),
                               _mm512_mul_ps(sw, _mm512_set1_ps(xs[i * kb + g])), sum[i]);
  }
  const __m512 b = bias ? _mm512_maskz_loadu_ps((__mmask16)mask, bias) : _mm512_setzero_ps();
  for (int i = 0; i < nr; i++)
    _mm512_mask_storeu_ps(y + (size_t)i * ldy, (__mmask16)mask, _mm512_add_ps(sum[i], b));
}

VNNI static void block_vnni(int rows, int kb, const void *xq, const float *xs, packed_t p,
                            int lo, int hi, const float *bias, float *y, int ldy) {
  over_panels(tile_vnni, 8, 1, rows, kb, xq, xs, p, lo, hi, bias, y, ldy);
}

// ---------------------------------------------------------------- AVX2

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static void quantize_rows_avx2(int rows, int k, const uint32_t *sign, const float *x,
                                    float *t, void *xq, float *xs) {
  quantize_rows_any(rows, k, sign, x, t, 2, xq, xs);
}

// `nr` ≤ 2 rows × one panel, in int16 (4 rows, 16 sums beside the 4 weight registers, spill
// AVX2's 16 and measured no faster): a quad's 16 × 4 weight bytes widened into four
// registers (columns 4j .. 4j + 3, each column's quad in two lanes), multiplied by the
// row's quad broadcast as four int16 (`vpmaddwd`); after each block the two lanes of a
// column are added (`vphaddd`) and put back in column order.
AVX2 static inline __attribute__((always_inline)) void tile_avx2(
    const int nr, int kb, const void *rows, const float *xs, packed_t p, size_t unit0,
    const float *bias, float *y, int ldy, unsigned mask) {
  const int16_t *xq = rows;
  const size_t ldx = (size_t)kb * BLOCK;
  __m256 sum[2][2];
  for (int i = 0; i < nr; i++) sum[i][0] = sum[i][1] = _mm256_setzero_ps();
  for (int g = 0; g < kb; g++) {
    const size_t unit = unit0 + g;
    __m256i acc[2][4];
    for (int i = 0; i < nr; i++)
      for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_si256();
    for (int q = 0; q < QUADS; q++) {
      const int8_t *wq = p.w + (unit * QUADS + q) * PANEL * 4;
      __m256i wv[4];
      for (int j = 0; j < 4; j++)
        wv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wq + 16 * j)));
      for (int i = 0; i < nr; i++) {
        int64_t quad;
        memcpy(&quad, xq + i * ldx + g * BLOCK + q * 4, sizeof quad);
        const __m256i xv = _mm256_set1_epi64x(quad);
        for (int j = 0; j < 4; j++)
          acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(xv, wv[j]));
      }
    }
    const __m256 s0 = _mm256_loadu_ps(p.scale + unit * PANEL);
    const __m256 s1 = _mm256_loadu_ps(p.scale + unit * PANEL + 8);
    for (int i = 0; i < nr; i++) {
      // hadd gives columns (0 1 4 5 | 2 3 6 7); the permute puts them in order.
      const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][0], acc[i][1]), 0xD8);
      const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][2], acc[i][3]), 0xD8);
      const __m256 sx = _mm256_set1_ps(xs[i * kb + g]);
      sum[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_mul_ps(s0, sx), sum[i][0]);
      sum[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_mul_ps(s1, sx), sum[i][1]);
    }
  }
  // A whole panel is stored as two vectors; a partial one (a layer's last) value by value.
  // Left to itself the compiler stores every panel with `vmaskmovps`, which is slow on AMD.
  const int whole = mask == (1u << PANEL) - 1;
  const __m256 b0 = whole && bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 b1 = whole && bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  for (int i = 0; i < nr; i++) {
    float *yi = y + (size_t)i * ldy;
    if (whole) {
      _mm256_storeu_ps(yi, _mm256_add_ps(sum[i][0], b0));
      _mm256_storeu_ps(yi + 8, _mm256_add_ps(sum[i][1], b1));
      continue;
    }
    float out[PANEL];
    _mm256_storeu_ps(out, sum[i][0]);
    _mm256_storeu_ps(out + 8, sum[i][1]);
    for (int j = 0; j < PANEL; j++)
      if (mask >> j & 1) yi[j] = out[j] + (bias ? bias[j] : 0.0f);
  }
}

AVX2 static void block_avx2(int rows, int kb, const void *xq, const float *xs, packed_t p,
                            int lo, int hi, const float *bias, float *y, int ldy) {
  over_panels(tile_avx2, 2, 2, rows, kb, xq, xs, p, lo, hi, bias, y, ldy);
}

// ---------------------------------------------------------------- plain C

static void quantize_rows_plain(int rows, int k, const uint32_t *sign, const float *x,
                                float *t, void *xq, float *xs) {
  quantize_rows_any(rows, k, sign, x, t, 2, xq, xs);
}

static void block_plain(int rows, int kb, const int16_t *xq, const float *xs, packed_t p,
                        int lo, int hi, const float *bias, float *y, int ldy) {
  for (int c = lo; c < hi; c++) {
    const size_t unit0 = (size_t)(c / PANEL) * kb;
    for (int r = 0; r < rows; r++) {
      const int16_t *xr = xq + (size_t)r * kb * BLOCK;
      float s = 0;
      for (int g = 0; g < kb; g++) {
        const size_t unit = unit0 + g;
        const int8_t *w = p.w + unit * QUADS * PANEL * 4 + (c % PANEL) * 4;
        int32_t acc = 0;
        for (int i = 0; i < BLOCK; i++) acc += xr[g * BLOCK + i] * w[(i / 4) * PANEL * 4 + i % 4];
        s = fmaf((float)acc, p.scale[unit * PANEL + c % PANEL] * xs[(size_t)r * kb + g], s);
      }
      y[(size_t)r * ldy + c] = s + (bias ? bias[c] : 0.0f);
    }
  }
}

// ---------------------------------------------------------------- dispatch

// The levels this CPU has, as levels.h's mask. AVX-VNNI's `vpdpbusd` on 256 bits is not
// built (no such CPU to measure it on): those CPUs run the AVX2 level.
static unsigned available_levels(void) {
  __builtin_cpu_init();
  unsigned levels = 1u << VDB_W8A8_PLAIN;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) levels |= 1u << VDB_W8A8_AVX2;
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    levels |= 1u << VDB_W8A8_AVX512VNNI;
  return levels;
}

static _Atomic int chosen_level = -1;  // levels.h's kernel_level_chosen

int vdb_w8a8_level(void) {
  return kernel_level_chosen(&chosen_level, "VDB_INT8_KERNEL", available_levels);
}

int vdb_w8a8_set_level(int level) {
  return kernel_level_choose(&chosen_level, level, available_levels());
}

void vdb_w8a8_linear(int rows, int k, int columns, const void *packed, int column_begin,
                     int column_end, const float *x, const float *bias, float *y, int ldy) {
  if (rows <= 0 || column_end <= column_begin) return;
  const int level = vdb_w8a8_level();
  const int kb = blocks_of(k);
  const packed_t p = layout(k, columns, packed);
  const int block = rows < ROW_BLOCK ? rows : ROW_BLOCK;
  // Scratch: a block of x quantized (int16 at most), its scales, one rotated row.
  const size_t values = (size_t)block * kb * BLOCK;
  const size_t bytes = values * sizeof(int16_t) + ((size_t)block * kb + kb * BLOCK) * sizeof(float);
  _Alignas(64) unsigned char stack[48 * 1024];  // a batch-1 query's rows fit
  unsigned char *scratch = bytes <= sizeof stack ? stack : aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!scratch) abort();  // a few hundred KiB
  void *xq = scratch;
  float *xs = (float *)(scratch + values * sizeof(int16_t));
  float *t = xs + (size_t)block * kb;
  for (int r = 0; r < rows; r += ROW_BLOCK) {
    const int n = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    const float *xr = x + (size_t)r * k;
    float *yr = y + (size_t)r * ldy;
    if (level == VDB_W8A8_AVX512VNNI) {
      quantize_rows_vnni(n, k, p.sign, xr, t, xq, xs);
      block_vnni(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    } else if (level == VDB_W8A8_AVX2) {
      quantize_rows_avx2(n, k, p.sign, xr, t, xq, xs);
      block_avx2(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    } else {
      quantize_rows_plain(n, k, p.sign, xr, t, xq, xs);
      block_plain(n, kb, xq, xs, p, column_begin, column_end, bias, yr, ldy);
    }
  }
  if (scratch != stack) free(scratch);
}
