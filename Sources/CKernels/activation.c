#include "ckernels.h"
#include "levels.h"
#include "vector16.h"

#include <stdlib.h>
#include <string.h>

// The encoder's elementwise functions — GELU, its derivative (for training), the
// attention's row softmax and AdamW's update (for training) — on the widest vectors the
// CPU has. Written once with the
// compiler's vector types (16 floats) and compiled three times: for AVX-512, for AVX2
// with FMA, and for the baseline x86-64 (SSE2) or any other CPU. Why in C: Swift's SIMD
// types compile to the baseline instruction set unless the whole application is built
// for a newer CPU, and at that width GELU and softmax took 15% of an int8 encoder's time
// on 256-token passages.

// erf(x), absolute error below 10⁻⁶ (Abramowitz & Stegun 7.1.26 and float rounding):
// erf(x) = 1 − (a₁t + … + a₅t⁵) · e^(−x²), t = 1 / (1 + p·x) for x ≥ 0; erf(−x) = −erf(x).
static inline __attribute__((always_inline)) f16v erf16(f16v x) {
  const i16v sign = (i16v)x & (int32_t)0x80000000;
  const f16v magnitude = (f16v)((i16v)x ^ sign);
  const f16v t = 1.0f / (1.0f + 0.3275911f * magnitude);
  f16v poly = splat(1.061405429f);
  poly = poly * t - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  poly = poly * t;
  const f16v value = 1.0f - poly * exp16(-(magnitude * magnitude));
  return (f16v)((i16v)value | sign);
}

// GELU(x) = x · ½ · (1 + erf(x / √2)); a ragged tail goes through a zero-padded vector.
static inline __attribute__((always_inline)) void gelu_any(int count, const float *x, float *y) {
  int i = 0;
  for (; i + LANES <= count; i += LANES) {
    const f16v v = load(x + i);
    put(v * 0.5f * (1.0f + erf16(v * 0.70710677f)), y + i);
  }
  if (i < count) {
    float tail[LANES] = {0};
    memcpy(tail, x + i, (size_t)(count - i) * sizeof(float));
    const f16v v = load(tail);
    put(v * 0.5f * (1.0f + erf16(v * 0.70710677f)), tail);
    memcpy(y + i, tail, (size_t)(count - i) * sizeof(float));
  }
}

// d ← d · GELU′(u), GELU′(u) = Φ(u) + u · φ(u) = ½ · (1 + erf(u / √2)) + u · e^(−u²/2) / √(2π):
// the backward of GELU, for training.
static inline __attribute__((always_inline)) f16v gelu_derivative16(f16v u) {
  return 0.5f * (1.0f + erf16(u * 0.70710677f)) + u * exp16(-0.5f * u * u) * 0.39894228f;
}

static inline __attribute__((always_inline)) void gelu_backward_any(int count, const float *u,
                                                                    float *d) {
  int i = 0;
  for (; i + LANES <= count; i += LANES) put(load(d + i) * gelu_derivative16(load(u + i)), d + i);
  if (i < count) {
    float tail_u[LANES] = {0}, tail_d[LANES] = {0};
    memcpy(tail_u, u + i, (size_t)(count - i) * sizeof(float));
    memcpy(tail_d, d + i, (size_t)(count - i) * sizeof(float));
    put(load(tail_d) * gelu_derivative16(load(tail_u)), tail_d);
    memcpy(d + i, tail_d, (size_t)(count - i) * sizeof(float));
  }
}

// Per row: p = exp(x − max x) / Σ exp(x − max x) over the first `valid` entries; the
// rest of the row becomes 0.
static inline __attribute__((always_inline)) void softmax_any(int rows, int width, int valid,
                                                              int stride, float *x) {
  for (int row = 0; row < rows; row++) {
    float *p = x + (size_t)row * stride;
    const int end = valid / LANES * LANES;
    const float maximum = maximum_of(p, valid);
    float total = exp_shifted_sum(p, end, maximum);
    if (end < valid) {
      float tail[LANES];
      for (int j = 0; j < LANES; j++) tail[j] = end + j < valid ? p[end + j] - maximum : -100.0f;
      const f16v e = exp16(load(tail));
      for (int j = 0; end + j < valid; j++) {
        p[end + j] = e[j];
        total += e[j];
      }
    }
    const float inverse = 1 / total;
    for (int i = 0; i < end; i += LANES) put(load(p + i) * inverse, p + i);
    for (int i = end; i < valid; i++) p[i] *= inverse;
    for (int i = valid; i < width; i++) p[i] = 0;
  }
}

// AdamW's update of `count` parameters (Sources/Training/AdamW.swift has the formula):
//   θ ← θ·decay;  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  θ ← θ − step·m / (√v·c₂ + ε)
// Contraction into FMAs is off, so every level rounds as Swift's Float loop did and a
// router trains to the same head on every CPU.
typedef struct {
  float beta1, beta2, step_size, inverse_correction2, epsilon, decay;
} adamw_t;

static inline __attribute__((always_inline)) void adamw_any(long count, float *theta,
                                                            const float *g, float *m, float *v,
                                                            adamw_t a) {
#pragma clang fp contract(off)
  const float keep1 = 1 - a.beta1, keep2 = 1 - a.beta2;
  long i = 0;
  for (; i + LANES <= count; i += LANES) {
    const f16v gi = load(g + i);
    const f16v mi = a.beta1 * load(m + i) + keep1 * gi;
    const f16v vi = a.beta2 * load(v + i) + keep2 * gi * gi;
    const f16v denominator = __builtin_elementwise_sqrt(vi) * a.inverse_correction2 + a.epsilon;
    put(load(theta + i) * a.decay - a.step_size * mi / denominator, theta + i);
    put(mi, m + i);
    put(vi, v + i);
  }
  for (; i < count; i++) {
    const float mi = a.beta1 * m[i] + keep1 * g[i];
    const float vi = a.beta2 * v[i] + keep2 * g[i] * g[i];
    theta[i] = theta[i] * a.decay - a.step_size * mi / (__builtin_sqrtf(vi) * a.inverse_correction2 + a.epsilon);
    m[i] = mi;
    v[i] = vi;
  }
}

#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

AVX512 static void gelu_avx512(int count, const float *x, float *y) { gelu_any(count, x, y); }
AVX2 static void gelu_avx2(int count, const float *x, float *y) { gelu_any(count, x, y); }
static void gelu_plain(int count, const float *x, float *y) { gelu_any(count, x, y); }

AVX512 static void gelu_backward_avx512(int count, const float *u, float *d) {
  gelu_backward_any(count, u, d);
}
AVX2 static void gelu_backward_avx2(int count, const float *u, float *d) {
  gelu_backward_any(count, u, d);
}
static void gelu_backward_plain(int count, const float *u, float *d) {
  gelu_backward_any(count, u, d);
}

AVX512 static void softmax_avx512(int rows, int width, int valid, int stride, float *x) {
  softmax_any(rows, width, valid, stride, x);
}
AVX2 static void softmax_avx2(int rows, int width, int valid, int stride, float *x) {
  softmax_any(rows, width, valid, stride, x);
}
static void softmax_plain(int rows, int width, int valid, int stride, float *x) {
  softmax_any(rows, width, valid, stride, x);
}

AVX512 static void adamw_avx512(long count, float *theta, const float *g, float *m, float *v,
                                adamw_t a) {
  adamw_any(count, theta, g, m, v, a);
}
AVX2 static void adamw_avx2(long count, float *theta, const float *g, float *m, float *v,
                            adamw_t a) {
  adamw_any(count, theta, g, m, v, a);
}
static void adamw_plain(long count, float *theta, const float *g, float *m, float *v, adamw_t a) {
  adamw_any(count, theta, g, m, v, a);
}

// The levels this CPU has, as levels.h's mask.
static unsigned available_levels(void) {
  __builtin_cpu_init();
  unsigned levels = 1u << VDB_VECTOR_PLAIN;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    levels |= 1u << VDB_VECTOR_AVX2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
    levels |= 1u << VDB_VECTOR_AVX512;
  return levels;
}

static _Atomic int chosen_level = -1;  // levels.h's kernel_level_chosen

int vdb_vector_level(void) {
  return kernel_level_chosen(&chosen_level, "VDB_VECTOR_KERNEL", available_levels);
}

int vdb_vector_set_level(int level) {
  return kernel_level_choose(&chosen_level, level, available_levels());
}

void vdb_gelu(int count, const float *x, float *y) {
  if (count <= 0) return;
  switch (vdb_vector_level()) {
    case VDB_VECTOR_AVX512: gelu_avx512(count, x, y); break;
    case VDB_VECTOR_AVX2: gelu_avx2(count, x, y); break;
    default: gelu_plain(count, x, y);
  }
}

void vdb_gelu_backward(int count, const float *u, float *d) {
  if (count <= 0) return;
  switch (vdb_vector_level()) {
    case VDB_VECTOR_AVX512: gelu_backward_avx512(count, u, d); break;
    case VDB_VECTOR_AVX2: gelu_backward_avx2(count, u, d); break;
    default: gelu_backward_plain(count, u, d);
  }
}

void vdb_softmax_rows(int rows, int width, int valid, int stride, float *x) {
  if (rows <= 0 || valid <= 0) return;
  switch (vdb_vector_level()) {
    case VDB_VECTOR_AVX512: softmax_avx512(rows, width, valid, stride, x); break;
    case VDB_VECTOR_AVX2: softmax_avx2(rows, width, valid, stride, x); break;
    default: softmax_plain(rows, width, valid, stride, x);
  }
}

void vdb_adamw_update(long count, float *theta, const float *g, float *m, float *v, float beta1,
                      float beta2, float step_size, float inverse_correction2, float epsilon,
                      float decay) {
  if (count <= 0) return;
  const adamw_t a = {beta1, beta2, step_size, inverse_correction2, epsilon, decay};
  switch (vdb_vector_level()) {
    case VDB_VECTOR_AVX512: adamw_avx512(count, theta, g, m, v, a); break;
    case VDB_VECTOR_AVX2: adamw_avx2(count, theta, g, m, v, a); break;
    default: adamw_plain(count, theta, g, m, v, a);
  }
}
