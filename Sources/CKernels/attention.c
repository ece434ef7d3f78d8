#include "ckernels.h"
#include "levels.h"
#include "vector16.h"

#include <stddef.h>
#include <string.h>

// One head of the encoder's float32 attention over one sequence: context = softmax(Q·Kᵀ /
// √d) · V, fused per block of query rows, on the vectors of vector16.h (compiled for
// AVX-512, AVX2 with FMA and the baseline, like activation.c). It replaced two sgemm calls
// and a softmax pass: OpenBLAS packs the two operands of every call, zeroes the T × T
// scores before it writes them, and the softmax then reads them back from L2; and the
// values, rows of 32 floats 4.6 KB apart in the Q|K|V buffer, fall on a few L1 sets. Here
// the keys and values are packed once per head, and a block's scores stay in L1 from the
// product through the softmax to P·V.

// Query rows a block computes together, per level: 6 rows × 16 keys is 12 accumulators
// of AVX2's 16 registers, with 3 left for a key vector and a broadcast query value; on
// AVX-512 (32 registers, one per row) 12 rows keep both FMA units busy. MAX_BLOCK sizes
// the scratch.
enum { MAX_BLOCK = 12 };

static inline size_t round_up(int n) { return (size_t)(n + LANES - 1) / LANES * LANES; }

// The scratch, in floats, in the order the kernel lays it out.
size_t vdb_attention_scratch(int length, int d) {
  const size_t width = round_up(length), dp = round_up(d);
  return width * d      // keys: panels of 16 keys, dimension by dimension
         + length * dp  // values: one row of dp floats (zero padded) per token
         + MAX_BLOCK * width  // a block's scores, then its unnormalized probabilities
         + MAX_BLOCK * d      // a block's queries, scaled by 1/√d
         + MAX_BLOCK * dp;    // a block's context rows
}

static inline __attribute__((always_inline)) void attention_any(int length, int d,
                                                                const float *q, const float *k,
                                                                const float *v, int ld,
                                                                float *context, int ldc,
                                                                float *scratch,
                                                                const int block) {
  const int width = (int)round_up(length), dp = (int)round_up(d);
  float *keys = scratch, *values = keys + (size_t)width * d;
  float *scores = values + (size_t)length * dp, *queries = scores + block * width;
  float *out = queries + block * d;
  for (int j = 0; j < width; j++) {  // key j is lane j % 16 of its panel's d vectors
    float *lane = keys + (size_t)(j - j % LANES) * d + j % LANES;
    if (j < length)
      for (int i = 0; i < d; i++) lane[i * LANES] = k[(size_t)j * ld + i];
    else
      for (int i = 0; i < d; i++) lane[i * LANES] = 0;
  }
  for (int j = 0; j < length; j++) {
    memcpy(values + (size_t)j * dp, v + (size_t)j * ld, (size_t)d * sizeof(float));
    memset(values + (size_t)j * dp + d, 0, (size_t)(dp - d) * sizeof(float));
  }
  const float scale = 1 / __builtin_sqrtf((float)d);
  i16v last_panel;  // the lanes of the last panel that hold keys
  for (int c = 0; c < LANES; c++) last_panel[c] = width - LANES + c < length ? -1 : 0;

  for (int row = 0; row < length; row += block) {
    const int rows = length - row < block ? length - row : block;
    for (int r = 0; r < rows; r++)
      for (int i = 0; i < d; i++) queries[r * d + i] = q[(size_t)(row + r) * ld + i] * scale;
    memset(queries + rows * d, 0, (size_t)(block - rows) * d * sizeof(float));

    // S = Q·Kᵀ/√d, 16 keys at a time (padding keys at −∞, so their e is 0).
    for (int p = 0; p < width; p += LANES) {
      f16v s[MAX_BLOCK];
      for (int r = 0; r < block; r++) s[r] = splat(0);
      const float *panel = keys + (size_t)p * d;
      for (int i = 0; i < d; i++) {
        const f16v key = load(panel + i * LANES);
        for (int r = 0; r < block; r++) s[r] = s[r] + splat(queries[r * d + i]) * key;
      }
      if (p + LANES > length)
        for (int r = 0; r < block; r++) s[r] = blend(last_panel, s[r], splat(-__builtin_inff()));
      for (int r = 0; r < block; r++) put(s[r], scores + r * width + p);
    }

    // e = exp(S − max S) in place, and 1 / Σ e per row; the division waits for P·V's
    // d-wide results rather than running over the T-wide rows.
    float inverse[MAX_BLOCK];
    for (int r = 0; r < block; r++) {
      float *e = scores + r * width;
      inverse[r] = 1 / exp_shifted_sum(e, width, maximum_of(e, length));
    }

    // context = (e · V) / Σ e, 16 dimensions at a time.
    for (int c = 0; c < dp; c += LANES) {
      f16v sum[MAX_BLOCK];
      for (int r = 0; r < block; r++) sum[r] = splat(0);
      for (int j = 0; j < length; j++) {
        const f16v value = load(values + (size_t)j * dp + c);
        for (int r = 0; r < block; r++) sum[r] = sum[r] + splat(scores[r * width + j]) * value;
      }
      for (int r = 0; r < block; r++) put(sum[r] * inverse[r], out + r * dp + c);
    }
    for (int r = 0; r < rows; r++)
      memcpy(context + (size_t)(row + r) * ldc, out + r * dp, (size_t)d * sizeof(float));
  }
}

#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

AVX512 static void attention_avx512(int length, int d, const float *q, const float *k,
                                    const float *v, int ld, float *context, int ldc,
                                    float *scratch) {
  attention_any(length, d, q, k, v, ld, context, ldc, scratch, 12);
}
AVX2 static void attention_avx2(int length, int d, const float *q, const float *k,
                                const float *v, int ld, float *context, int ldc, float *scratch) {
  attention_any(length, d, q, k, v, ld, context, ldc, scratch, 6);
}
static void attention_plain(int length, int d, const float *q, const float *k, const float *v,
                            int ld, float *context, int ldc, float *scratch) {
  attention_any(length, d, q, k, v, ld, context, ldc, scratch, 6);
}

void vdb_attention(int length, int d, const float *q, const float *k, const float *v, int ld,
                   float *context, int ldc, float *scratch) {
  if (length <= 0 || d <= 0) return;
  switch (vdb_vector_level()) {
    case VDB_VECTOR_AVX512: attention_avx512(length, d, q, k, v, ld, context, ldc, scratch); break;
    case VDB_VECTOR_AVX2: attention_avx2(length, d, q, k, v, ld, context, ldc, scratch); break;
    default: attention_plain(length, d, q, k, v, ld, context, ldc, scratch);
  }
}
