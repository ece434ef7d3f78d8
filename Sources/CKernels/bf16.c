#include "ckernels.h"
#include "levels.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

// A linear layer y = x · Wᵀ + b with W and x rounded to bfloat16 and every product summed
// in float32. W is packed once into panels of 16 output columns: for each pair of inputs
// p (k = 2p, 2p + 1) a panel holds 16 × (w[c][2p], w[c][2p + 1]) — 32 bf16, one 512-bit
// register, exactly the operand `vdpbf16ps` multiplies with a broadcast pair of x. Each
// 32-bit lane holds one column's pair, so without BF16 instructions the two halves become
// float32 by a shift and a mask, and the same layout serves AVX2 and plain C. Sixteen
// consecutive pairs of a panel are also exactly the "VNNI" layout of an AMX tile that
// `tdpbf16ps` multiplies, so the inputs are zero padded to a multiple of 16 pairs (32
// inputs; the model's 384 and 1536 need none).

enum { PANEL = 16, ROW_BLOCK = 64, TILE_PAIRS = 16 };

static int pairs_of(int k) { return (k + 2 * TILE_PAIRS - 1) / (2 * TILE_PAIRS) * TILE_PAIRS; }

size_t vdb_bf16_packed_count(int k, int columns) {
  return (size_t)((columns + PANEL - 1) / PANEL) * (size_t)pairs_of(k) * 2 * PANEL;
}

// Round to nearest even; NaN stays NaN (quiet). Written as a select so that loops over it
// vectorise.
static inline uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u) : (uint16_t)rounded;
}

// Packs scale · W, where W[c][i] is w[c · column_stride + i · input_stride].
static void pack(int k, int columns, const float *w, size_t column_stride, size_t input_stride,
                 float scale, uint16_t *packed) {
  const int kp = pairs_of(k);
  const size_t count = vdb_bf16_packed_count(k, columns);
  memset(packed, 0, count * sizeof *packed);  // padding columns and inputs
  for (int c = 0; c < columns; c++) {
    uint16_t *panel = packed + (size_t)(c / PANEL) * kp * 2 * PANEL + (c % PANEL) * 2;
    for (int i = 0; i < k; i++)
      panel[(size_t)(i / 2) * 2 * PANEL + i % 2] =
          to_bf16(scale * w[(size_t)c * column_stride + (size_t)i * input_stride]);
  }
}

void vdb_bf16_pack(int k, int columns, const float *w, uint16_t *packed) {
  pack(k, columns, w, (size_t)k, 1, 1.0f, packed);
}

// Rows of x (`ldx` floats apart) as bf16 pairs: xb[r * kp + p] holds (x[r][2p], x[r][2p + 1])
// in one 32-bit word.
static void convert_rows(int rows, int k, const float *x, size_t ldx, uint32_t *xb) {
  const int kp = pairs_of(k);
  for (int r = 0; r < rows; r++) {
    uint16_t *out = (uint16_t *)(xb + (size_t)r * kp);
    for (int i = 0; i < k; i++) out[i] = to_bf16(x[r * ldx + i]);
    memset(out + k, 0, (size_t)(2 * kp - k) * sizeof *out);
  }
}

// Rows of x rounded to bf16 but kept as float32 (2·kp per row): what the AVX2 kernel
// broadcasts straight from memory.
__attribute__((target("avx2"))) static void round_rows_avx2(
    int rows, int k, const float *x, size_t ldx, float *xf) {
  const int width = 2 * pairs_of(k);
  for (int r = 0; r < rows; r++) {
    uint32_t *out = (uint32_t *)(xf + (size_t)r * width);
    for (int i = 0; i < k; i++) out[i] = (uint32_t)to_bf16(x[r * ldx + i]) << 16;
    memset(out + k, 0, (size_t)(width - k) * sizeof *out);
  }
}

// Columns [lo, hi) of panel `panel` as a lane mask (lanes outside are neither read nor
// written in y or bias).
static inline unsigned lanes(int panel, int lo, int hi) {
  const int first = lo > panel * PANEL ? lo - panel * PANEL : 0;
  const int end = hi < (panel + 1) * PANEL ? hi - panel * PANEL : PANEL;
  return end <= first ? 0u : ((1u << end) - 1u) & ~((1u << first) - 1u);
}

// ---------------------------------------------------------------- AVX-512 BF16

#define AVX512BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

// The first `n` of 16 lanes (all for n ≥ 16, none for n ≤ 0).
static inline __mmask16 first_lanes(int n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

// `convert_rows` with `vcvtne2ps2bf16`, 32 inputs a step and the padding read as zeros.
// It rounds as `to_bf16` does (to nearest even) but takes denormal inputs as zero.
AVX512BF16 static void convert_rows_avx512bf16(int rows, int k, const float *x, size_t ldx,
                                                uint32_t *xb) {
  const int kp = pairs_of(k);
  for (int r = 0; r < rows; r++) {
    const float *in = x + r * ldx;
    for (int i = 0; i < 2 * kp; i += 2 * PANEL) {
      const __m512 low = _mm512_maskz_loadu_ps(first_lanes(k - i), in + i);
      const __m512 high = _mm512_maskz_loadu_ps(first_lanes(k - i - PANEL), in + i + PANEL);
      _mm512_storeu_si512(xb + (size_t)r * kp + i / 2, (__m512i)_mm512_cvtne2ps_pbh(high, low));
    }
  }
}

// `nr` rows (a constant after inlining) × `np` panels (1 or 2).
AVX512BF16 static inline __attribute__((always_inline)) void tile_avx512bf16(
    const int nr, const int np, int kp, const uint32_t *xb, const uint16_t *w0,
    const uint16_t *w1, const float *bias, float *y, int ldy, __mmask16 m0, __mmask16 m1) {
  __m512 acc[8][2];
  for (int i = 0; i < nr; i++)
    for (int j = 0; j < np; j++) acc[i][j] = _mm512_setzero_ps();
  for (int p = 0; p < kp; p++) {
    const __m512bh a = (__m512bh)_mm512_loadu_si512(w0 + (size_t)p * 2 * PANEL);
    const __m512bh b =
        np > 1 ? (__m512bh)_mm512_loadu_si512(w1 + (size_t)p * 2 * PANEL) : a;
    for (int i = 0; i < nr; i++) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xb[(size_t)i * kp + p]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xv, a);
      if (np > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xv, b);
    }
  }
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias && np > 1 ? _mm512_maskz_loadu_ps(m1, bias + PANEL) : _mm512_setzero_ps();
  for (int i = 0; i < nr; i++) {
    _mm512_mask_storeu_ps(y + (size_t)i * ldy, m0, _mm512_add_ps(acc[i][0], b0));
    if (np > 1) _mm512_mask_storeu_ps(y + (size_t)i * ldy + PANEL, m1, _mm512_add_ps(acc[i][1], b1));
  }
}

AVX512BF16 static void block_avx512bf16(int rows, int kp, const uint32_t *xb,
                                        const uint16_t *packed, int lo, int hi,
                                        const float *bias, float *y, int ldy) {
  const size_t panel_size = (size_t)kp * 2 * PANEL;
  for (int panel = lo / PANEL; panel * PANEL < hi; panel += 2) {
    const int np = (panel + 1) * PANEL < hi ? 2 : 1;
    const __mmask16 m0 = (__mmask16)lanes(panel, lo, hi), m1 = (__mmask16)lanes(panel + 1, lo, hi);
    const uint16_t *w0 = packed + panel * panel_size, *w1 = w0 + panel_size;
    const float *b = bias ? bias + panel * PANEL : NULL;
    for (int r = 0; r < rows; r += 8) {
      const uint32_t *xr = xb + (size_t)r * kp;
      float *yr = y + (size_t)r * ldy + panel * PANEL;
      const int nr = rows - r < 8 ? rows - r : 8;
#define TILE(n)                                                                  \
  case n:                                                                        \
    if (np == 2)                                                                 \
      tile_avx512bf16(n, 2, kp, xr, w0, w1, b, yr, ldy, m0, m1);                 \
    else                                                                         \
      tile_avx512bf16(n, 1, kp, xr, w0, w1, b, yr, ldy, m0, m1);                 \
    break;
      switch (nr) {
        TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) default : TILE(8)
      }
#undef TILE
    }
  }
}

// ---------------------------------------------------------------- AMX BF16

// Intel AMX multiplies whole tiles: `tdpbf16ps` adds a 16 × 32 bf16 block of x times a
// 32 × 16 block of W (16 pairs of one panel, as packed) into 16 × 16 float32 sums, 8,192
// products in one instruction. Tiles 0–3 hold the sums of two row tiles × two panels
// (tile 2·t + j), tiles 4–5 the rows of x, 6–7 the panels' pairs.

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))

// LDTILECFG's 64-byte operand (palette 1): bytes per row and rows of each tile. All
// eight are 16 rows of 64 bytes.
struct tile_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

AMX static void tiles_begin(void) {
  struct tile_config config = {.palette = 1};
  for (int t = 0; t < 8; t++) config.bytes_per_row[t] = 64, config.rows[t] = 16;
  _tile_loadconfig(&config);
}

AMX static void tiles_end(void) { _tile_release(); }

// `nt` row tiles (1 or 2; constant after inlining) × `np` panels of sums over all pairs,
// stored to `sums` (tile 2·t + j at sums[2·t + j]).
AMX static inline __attribute__((always_inline)) void tiles_amx(
    const int nt, const int np, int kp, const uint32_t *xb, const uint16_t *w0,
    const uint16_t *w1, float sums[4][PANEL * PANEL]) {
  const size_t stride = (size_t)kp * sizeof *xb;  // bytes from one row of x to the next
  _tile_zero(0);
  if (np > 1) _tile_zero(1);
  if (nt > 1) _tile_zero(2);
  if (nt > 1 && np > 1) _tile_zero(3);
  for (int p = 0; p < kp; p += TILE_PAIRS) {
    _tile_loadd(4, xb + p, stride);
    if (nt > 1) _tile_loadd(5, xb + (size_t)PANEL * kp + p, stride);
    _tile_loadd(6, w0 + (size_t)p * 2 * PANEL, 2 * PANEL * sizeof *w0);
    if (np > 1) _tile_loadd(7, w1 + (size_t)p * 2 * PANEL, 2 * PANEL * sizeof *w1);
    _tile_dpbf16ps(0, 4, 6);
    if (np > 1) _tile_dpbf16ps(1, 4, 7);
    if (nt > 1) _tile_dpbf16ps(2, 5, 6);
    if (nt > 1 && np > 1) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, sums[0], PANEL * sizeof **sums);
  if (np > 1) _tile_stored(1, sums[1], PANEL * sizeof **sums);
  if (nt > 1) _tile_stored(2, sums[2], PANEL * sizeof **sums);
  if (nt > 1 && np > 1) _tile_stored(3, sums[3], PANEL * sizeof **sums);
}

// `rows` rows of x (bf16 pairs, zero rows after them up to a multiple of 16) through the
// panels of columns [lo, hi). The tile configuration is loaded (`tiles_begin`).
AMX static void block_amx(int rows, int kp, const uint32_t *xb, const uint16_t *packed, int lo,
                          int hi, const float *bias, float *y, int ldy) {
  const size_t panel_size = (size_t)kp * 2 * PANEL;
  float sums[4][PANEL * PANEL];
  for (int panel = lo / PANEL; panel * PANEL < hi; panel += 2) {
    const int np = (panel + 1) * PANEL < hi ? 2 : 1;
    const uint16_t *w0 = packed + panel * panel_size, *w1 = w0 + panel_size;
    for (int r = 0; r < rows; r += 2 * PANEL) {
      const int nt = rows - r > PANEL ? 2 : 1;
      const uint32_t *xr = xb + (size_t)r * kp;
      if (nt == 2 && np == 2) tiles_amx(2, 2, kp, xr, w0, w1, sums);
      else if (nt == 2) tiles_amx(2, 1, kp, xr, w0, w1, sums);
      else if (np == 2) tiles_amx(1, 2, kp, xr, w0, w1, sums);
      else tiles_amx(1, 1, kp, xr, w0, w1, sums);
      for (int j = 0; j < np; j++) {
        const int first = (panel + j) * PANEL;
        const __mmask16 mask = (__mmask16)lanes(panel + j, lo, hi);
        const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + first) : _mm512_setzero_ps();
        for (int i = 0; i < 2 * PANEL && r + i < rows; i++) {
          const __m512 s = _mm512_loadu_ps(sums[2 * (i / PANEL) + j] + (i % PANEL) * PANEL);
          _mm512_mask_storeu_ps(y + (size_t)(r + i) * ldy + first, mask, _mm512_add_ps(s, b));
        }
      }
    }
  }
}

// ---------------------------------------------------------------- AVX2 + FMA

#define AVX2 __attribute__((target("avx2,fma")))

// A 32-bit lane of bf16 pairs as two float32 vectors: the low halves (even inputs) and
// the high halves (odd inputs).
AVX2 static inline __m256 low_half(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
AVX2 static inline __m256 high_half(__m256i v) {
  return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

// `nr` rows (≤ 5) × one panel (two halves of 8 columns). x comes rounded, as float32
// (`round_rows_avx2`), so each product needs only a broadcast load; the even and the odd
// inputs of a pair take turns so that 10 accumulators, 2 raw and 2 widened weight
// vectors and a broadcast fit the 16 registers.
AVX2 static inline __attribute__((always_inline)) void tile_avx2(
    const int nr, int kp, const float *xf, const uint16_t *w, const float *bias, float *y,
    int ldy, unsigned mask) {
  const size_t width = 2 * (size_t)kp;
  __m256 acc[5][2];
  for (int i = 0; i < nr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int p = 0; p < kp; p++) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(w + (size_t)p * 2 * PANEL));
    const __m256i b = _mm256_loadu_si256((const __m256i *)(w + (size_t)p * 2 * PANEL + PANEL));
    __m256 a0 = low_half(a), b0 = low_half(b);
    for (int i = 0; i < nr; i++) {
      const __m256 xv = _mm256_broadcast_ss(xf + i * width + 2 * p);
      acc[i][0] = _mm256_fmadd_ps(xv, a0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xv, b0, acc[i][1]);
    }
    a0 = high_half(a), b0 = high_half(b);
    for (int i = 0; i < nr; i++) {
      const __m256 xv = _mm256_broadcast_ss(xf + i * width + 2 * p + 1);
      acc[i][0] = _mm256_fmadd_ps(xv, a0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xv, b0, acc[i][1]);
    }
  }
  for (int i = 0; i < nr; i++) {
    float out[PANEL];
    _mm256_storeu_ps(out, acc[i][0]);
    _mm256_storeu_ps(out + 8, acc[i][1]);
    for (int j = 0; j < PANEL; j++)
      if (mask >> j & 1) y[(size_t)i * ldy + j] = out[j] + (bias ? bias[j] : 0.0f);
  }
}

AVX2 static void block_avx2(int rows, int kp, const float *xf, const uint16_t *packed, int lo,
                            int hi, const float *bias, float *y, int ldy) {
  const size_t panel_size = (size_t)kp * 2 * PANEL;
  for (int panel = lo / PANEL; panel * PANEL < hi; panel++) {
    const unsigned mask = lanes(panel, lo, hi);
    const uint16_t *w = packed + panel * panel_size;
    const float *b = bias ? bias + panel * PANEL : NULL;
    for (int r = 0; r < rows; r += 5) {
      const float *xr = xf + (size_t)r * 2 * kp;
      float *yr = y + (size_t)r * ldy + panel * PANEL;
      switch (rows - r < 5 ? rows - r : 5) {
        case 1: tile_avx2(1, kp, xr, w, b, yr, ldy, mask); break;
        case 2: tile_avx2(2, kp, xr, w, b, yr, ldy, mask); break;
        case 3: tile_avx2(3, kp, xr, w, b, yr, ldy, mask); break;
        case 4: tile_avx2(4, kp, xr, w, b, yr, ldy, mask); break;
        default: tile_avx2(5, kp, xr, w, b, yr, ldy, mask); break;
      }
    }
  }
}

// ---------------------------------------------------------------- plain C

static inline float low_float(uint32_t v) {
  const uint32_t u = v << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
static inline float high_float(uint32_t v) {
  const uint32_t u = v & 0xffff0000u;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static void block_plain(int rows, int kp, const uint32_t *xb, const uint16_t *packed, int lo,
                        int hi, const float *bias, float *y, int ldy) {
  const size_t panel_size = (size_t)kp * 2 * PANEL;
  for (int c = lo; c < hi; c++) {
    const uint16_t *w = packed + (size_t)(c / PANEL) * panel_size + (c % PANEL) * 2;
    for (int r = 0; r < rows; r++) {
      float s = 0;
      for (int p = 0; p < kp; p++) {
        uint32_t pair;
        memcpy(&pair, w + (size_t)p * 2 * PANEL, sizeof pair);
        const uint32_t xv = xb[(size_t)r * kp + p];
        s += low_float(xv) * low_float(pair) + high_float(xv) * high_float(pair);
      }
      y[(size_t)r * ldy + c] = s + (bias ? bias[c] : 0.0f);
    }
  }
}

// ---------------------------------------------------------------- dispatch

// Linux hands out AMX's 8 KiB of tile registers only to a process that asks
// (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA); a tile instruction without it faults.
static int amx_permitted(void) {
#if defined(__linux__)
  enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  return 0;
#endif
}

// The levels this CPU has, as levels.h's mask.
static int find_levels(void) {
  __builtin_cpu_init();
  unsigned levels = 1u << VDB_BF16_PLAIN;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    levels |= 1u << VDB_BF16_AVX2;
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    levels |= 1u << VDB_BF16_AVX512BF16;
    if (__builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
        amx_permitted())
      levels |= 1u << VDB_BF16_AMX;
  }
  return (int)levels;
}

static unsigned available_levels(void) {
  static _Atomic int found = -1;  // amx_permitted asks the kernel: once
  return (unsigned)found_once(&found, find_levels);
}

static _Atomic int chosen_level = -1;  // levels.h's kernel_level_chosen

int vdb_bf16_level(void) {
  return kernel_level_chosen(&chosen_level, "VDB_BF16_KERNEL", available_levels);
}

int vdb_bf16_set_level(int level) {
  return kernel_level_choose(&chosen_level, level, available_levels());
}

static void convert_strided(int level, int rows, int k, const float *x, size_t ldx, size_t step,
                            uint32_t *xb);

// `vdb_bf16_linear` at `level`, with the rows of x `ldx` floats apart and its inputs `step`
// apart.
static void linear(int level, int rows, int k, const uint16_t *packed, int column_begin,
                   int column_end, const float *x, size_t ldx, size_t step, const float *bias,
                   float *y, int ldy) {
  if (rows <= 0 || column_end <= column_begin) return;
  const int kp = pairs_of(k);
  // Scratch for a block of x: bf16 pairs (one word per pair) or, for AVX2, float32 (two);
  // AMX reads whole tiles of 16 rows, the rows past the block's zero.
  const int block = level == VDB_BF16_AMX ? (rows < ROW_BLOCK ? (rows + PANEL - 1) / PANEL * PANEL : ROW_BLOCK)
                                          : (rows < ROW_BLOCK ? rows : ROW_BLOCK);
  const size_t words = (size_t)block * kp * (level == VDB_BF16_AVX2 ? 2 : 1);
  uint32_t stack[8 * 1024];  // a batch-1 query's rows fit; larger blocks go to the heap
  uint32_t *xb = words <= sizeof stack / sizeof *stack ? stack : malloc(words * sizeof *xb);
  if (!xb) abort();  // a few hundred KiB
  if (level == VDB_BF16_AMX) tiles_begin();
  for (int r = 0; r < rows; r += ROW_BLOCK) {
    const int n = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
    const float *xr = x + r * ldx;
    float *yr = y + (size_t)r * ldy;
    if (step != 1)
      convert_strided(level, n, k, xr, ldx, step, xb);
    else if (level >= VDB_BF16_AVX512BF16)
      convert_rows_avx512bf16(n, k, xr, ldx, xb);
    else if (level == VDB_BF16_AVX2)
      round_rows_avx2(n, k, xr, ldx, (float *)xb);
    else
      convert_rows(n, k, xr, ldx, xb);
    if (level == VDB_BF16_AMX) {
      const int padded = (n + PANEL - 1) / PANEL * PANEL;
      memset(xb + (size_t)n * kp, 0, (size_t)(padded - n) * kp * sizeof *xb);
      block_amx(n, kp, xb, packed, column_begin, column_end, bias, yr, ldy);
    } else if (level == VDB_BF16_AVX512BF16) {
      block_avx512bf16(n, kp, xb, packed, column_begin, column_end, bias, yr, ldy);
    } else if (level == VDB_BF16_AVX2) {
      block_avx2(n, kp, (const float *)xb, packed, column_begin, column_end, bias, yr, ldy);
    } else {
      block_plain(n, kp, xb, packed, column_begin, column_end, bias, yr, ldy);
    }
  }
  if (level == VDB_BF16_AMX) tiles_end();
  if (xb != stack) free(xb);
}

void vdb_bf16_linear(int rows, int k, const uint16_t *packed, int column_begin, int column_end,
                     const float *x, const float *bias, float *y, int ldy) {
  linear(vdb_bf16_level(), rows, k, packed, column_begin, column_end, x, (size_t)k, 1, bias, y,
         ldy);
}

// ---------------------------------------------------------------- attention

// Attention's two products are linear layers over the sequence's own rows: S = Q · Kᵀ is
// "x = Q through W = K" (T columns of d inputs) and P · V is "x = P through W = Vᵀ" (d
// columns of T inputs). K and Vᵀ are packed per call: element by element (`pack`) that
// costs as much as the tile products, so with AVX-512 BF16 they are packed 32 values at a
// time.

static size_t in_floats(size_t halves) { return (halves + 1) / 2; }

// `pack(d, length, k, ld, 1, scale, packed)`: each token's row converted at once, its 16
// pairs a step scattered down its lane of the panel (one pair row every 16 words).
AVX512BF16 static void pack_keys_avx512bf16(int d, int length, const float *k, size_t ld,
                                            float scale, uint16_t *packed) {
  const int kp = pairs_of(d);
  memset(packed, 0, vdb_bf16_packed_count(d, length) * sizeof *packed);  // padding tokens
  const __m512i down_the_lane = _mm512_mullo_epi32(
      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(PANEL));
  const __m512 factor = _mm512_set1_ps(scale);
  for (int t = 0; t < length; t++) {
    uint32_t *lane = (uint32_t *)(packed + (size_t)(t / PANEL) * kp * 2 * PANEL) + t % PANEL;
    const float *row = k + t * ld;
    for (int i = 0; i < 2 * kp; i += 2 * PANEL) {
      const __m512 low = _mm512_mul_ps(factor, _mm512_maskz_loadu_ps(first_lanes(d - i), row + i));
      const __m512 high =
          _mm512_mul_ps(factor, _mm512_maskz_loadu_ps(first_lanes(d - i - PANEL), row + i + PANEL));
      _mm512_i32scatter_epi32(lane + (size_t)(i / 2) * PANEL, down_the_lane,
                              (__m512i)_mm512_cvtne2ps_pbh(high, low), 4);
    }
  }
}

// `pack(length, d, v, 1, ld, 1, packed)`: for each panel of 16 columns and each pair of
// tokens, the two rows converted at once and their halves interleaved.
AVX512BF16 static void pack_values_avx512bf16(int length, int d, const float *v, size_t ld,
                                              uint16_t *packed) {
  const int kp = pairs_of(length);
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int panel = 0; panel * PANEL < d; panel++) {
    const __mmask16 columns = first_lanes(d - panel * PANEL);
    uint16_t *out = packed + (size_t)panel * kp * 2 * PANEL;
    for (int p = 0; p < kp; p++) {
      const int t = 2 * p;
      const __m512 even = t < length ? _mm512_maskz_loadu_ps(columns, v + t * ld + panel * PANEL)
                                     : _mm512_setzero_ps();
      const __m512 odd = t + 1 < length
                             ? _mm512_maskz_loadu_ps(columns, v + (t + 1) * ld + panel * PANEL)
                             : _mm512_setzero_ps();
      const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(odd, even);
      _mm512_storeu_si512(out + (size_t)p * 2 * PANEL, _mm512_permutexvar_epi16(interleave, halves));
    }
  }
}

size_t vdb_bf16_attention_scratch(int length, int d) {
  return (size_t)length * length + in_floats(vdb_bf16_packed_count(d, length)) +
         in_floats(vdb_bf16_packed_count(length, d));
}

void vdb_bf16_attention(int length, int d, const float *q, const float *k, const float *v,
                        int ld, float *context, int ldc, float *scratch) {
  if (length <= 0) return;
  const int level = vdb_bf16_level();
  float *scores = scratch;
  uint16_t *keys = (uint16_t *)(scores + (size_t)length * length);
  uint16_t *values = keys + 2 * in_floats(vdb_bf16_packed_count(d, length));
  // 1/√d goes into the packed keys, so the scores come out scaled.
  const float scale = 1 / sqrtf((float)d);
  if (level >= VDB_BF16_AVX512BF16)
    pack_keys_avx512bf16(d, length, k, (size_t)ld, scale, keys);
  else
    pack(d, length, k, (size_t)ld, 1, scale, keys);
  vdb_bf16_pack_transposed(length, d, v, ld, values);  // Vᵀ: the tokens are its inputs
  linear(level, length, d, keys, 0, length, q, (size_t)ld, 1, NULL, scores, length);
  vdb_softmax_rows(length, length, length, length, scores);
  linear(level, length, length, values, 0, d, scores, (size_t)length, 1, NULL, context, ldc);
}

// ---------------------------------------------------------------- transposed operands

// Training's backward products, dx = dy · W and dW = dyᵀ · x, multiply matrices stored
// the other way round from a linear layer's: W's inputs are its rows, and dW sums over
// the tokens, which are the rows of both dy and x. So one operand is packed from its
// transpose and the other read down its columns.

void vdb_bf16_pack_transposed(int k, int columns, const float *w, int ld, uint16_t *packed) {
  if (vdb_bf16_level() >= VDB_BF16_AVX512BF16)
    pack_values_avx512bf16(k, columns, w, (size_t)ld, packed);
  else
    pack(k, columns, w, 1, (size_t)ld, 1.0f, packed);
}

// Rows of x whose inputs lie `step` floats apart, converted as `convert_rows` (or, at the
// AVX2 level, as `round_rows_avx2`) would convert them were they contiguous.
static void convert_strided_plain(int level, int rows, int k, const float *x, size_t ldx,
                                  size_t step, uint32_t *xb) {
  const int kp = pairs_of(k);
  const int floats = level == VDB_BF16_AVX2;
  const int width = floats ? 2 * kp : kp;
  for (int r = 0; r < rows; r++) {
    uint32_t *out = xb + (size_t)r * width;
    memset(out, 0, (size_t)width * sizeof *out);
    for (int i = 0; i < k; i++) {
      const uint16_t h = to_bf16(x[r * ldx + i * step]);
      if (floats) out[i] = (uint32_t)h << 16;
      else ((uint16_t *)out)[i] = h;
    }
  }
}

// 16 × 16 words transposed in registers: v[i] becomes the i-th word of every v. Pairs of
// rows interleave by words, then by pairs of words, then two rounds of 128-bit lanes.
AVX512BF16 static inline __attribute__((always_inline)) void transpose_words(__m512i v[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 4) {
    const __m512i a = _mm512_unpacklo_epi32(v[i], v[i + 1]), b = _mm512_unpackhi_epi32(v[i], v[i + 1]);
    const __m512i c = _mm512_unpacklo_epi32(v[i + 2], v[i + 3]), d = _mm512_unpackhi_epi32(v[i + 2], v[i + 3]);
    t[i] = _mm512_unpacklo_epi64(a, c);  // word 4L of rows i..i+3, in lane L
    t[i + 1] = _mm512_unpackhi_epi64(a, c);
    t[i + 2] = _mm512_unpacklo_epi64(b, d);
    t[i + 3] = _mm512_unpackhi_epi64(b, d);
  }
  __m512i u[16];
  for (int j = 0; j < 4; j++) {
    u[j] = _mm512_shuffle_i32x4(t[j], t[4 + j], 0x88);
    u[4 + j] = _mm512_shuffle_i32x4(t[j], t[4 + j], 0xdd);
    u[8 + j] = _mm512_shuffle_i32x4(t[8 + j], t[12 + j], 0x88);
    u[12 + j] = _mm512_shuffle_i32x4(t[8 + j], t[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; j++) {
    v[j] = _mm512_shuffle_i32x4(u[j], u[8 + j], 0x88);
    v[8 + j] = _mm512_shuffle_i32x4(u[j], u[8 + j], 0xdd);
    v[4 + j] = _mm512_shuffle_i32x4(u[4 + j], u[12 + j], 0x88);
    v[12 + j] = _mm512_shuffle_i32x4(u[4 + j], u[12 + j], 0xdd);
  }
}

// Rows of x stored as columns (ldx = 1: row r's input i at x[r + i · step]), 16 rows × 16
// pairs at a time: each pair of inputs of the 16 rows converted at once and its halves
// interleaved into pairs, then the 16 × 16 pairs transposed so that each row's 16 pairs
// are one store (a scatter of each pair to its row took three times as long).
AVX512BF16 static void convert_columns_avx512bf16(int rows, int k, const float *x, size_t step,
                                                  uint32_t *xb) {
  const int kp = pairs_of(k);  // a multiple of 16
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int r = 0; r < rows; r += PANEL) {
    const int n = rows - r < PANEL ? rows - r : PANEL;
    const __mmask16 live = first_lanes(n);
    for (int p0 = 0; p0 < kp; p0 += 16) {
      __m512i pairs[16];
      for (int q = 0; q < 16; q++) {
        const int i = 2 * (p0 + q);
        const __m512 even = i < k ? _mm512_maskz_loadu_ps(live, x + r + i * step) : _mm512_setzero_ps();
        const __m512 odd =
            i + 1 < k ? _mm512_maskz_loadu_ps(live, x + r + (i + 1) * step) : _mm512_setzero_ps();
        pairs[q] = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(odd, even));
      }
      transpose_words(pairs);
      for (int l = 0; l < n; l++) _mm512_storeu_si512(xb + (size_t)(r + l) * kp + p0, pairs[l]);
    }
  }
}

static void convert_strided(int level, int rows, int k, const float *x, size_t ldx, size_t step,
                            uint32_t *xb) {
  if (level >= VDB_BF16_AVX512BF16 && ldx == 1)
    convert_columns_avx512bf16(rows, k, x, step, xb);
  else
    convert_strided_plain(level, rows, k, x, ldx, step, xb);
}

void vdb_bf16_linear_strided(int rows, int k, const uint16_t *packed, int column_begin,
                             int column_end, const float *x, size_t ldx, size_t step,
                             const float *bias, float *y, int ldy) {
  linear(vdb_bf16_level(), rows, k, packed, column_begin, column_end, x, ldx, step, bias, y, ldy);
}
