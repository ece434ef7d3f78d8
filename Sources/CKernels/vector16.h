#ifndef VDB_CKERNELS_VECTOR16_H
#define VDB_CKERNELS_VECTOR16_H

#include <stdint.h>
#include <string.h>

// 16-float vectors in the compiler's vector types, and the functions on them that the
// float kernels share (activation.c, attention.c). A kernel written once with them is
// compiled for each level (AVX-512, AVX2 with FMA, the baseline) by wrapping it in
// functions with those targets.

// The helpers below take and return 64-byte vectors; they are always inlined, so no call
// passes one across a function boundary and the baseline build's ABI warning is moot.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float f16v __attribute__((vector_size(64)));
typedef int32_t i16v __attribute__((vector_size(64)));
enum { LANES = 16 };

static inline __attribute__((always_inline)) f16v splat(float v) {
  return (f16v){v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v};
}

static inline __attribute__((always_inline)) f16v load(const float *p) {
  f16v v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline __attribute__((always_inline)) void put(f16v v, float *p) { memcpy(p, &v, sizeof v); }

static inline __attribute__((always_inline)) f16v blend(i16v mask, f16v yes, f16v no) {
  return (f16v)((mask & (i16v)yes) | (~mask & (i16v)no));
}

// eˣ, relative error below 2·10⁻⁷; 0 below −87.33, +∞ above 88.72. eˣ = 2ⁿ · eʳ with
// n = round(x / ln 2), r = x − n · ln 2 ∈ [−ln 2 / 2, ln 2 / 2]; eʳ by a degree-6
// polynomial (interpolating at the Chebyshev nodes), 2ⁿ written into the exponent bits.
// Only ever called with x ≤ 0 here (a softmax's x − max, −x², −u²/2).
static inline __attribute__((always_inline)) f16v exp16(f16v input) {
  const i16v underflows = input < splat(-87.33f);
  f16v x = blend(underflows, splat(-87.33f), input);
  x = blend(x > splat(88.72f), splat(88.72f), x);
  const f16v shifter = splat(12582912.0f);  // 1.5 · 2²³: adding it rounds to an integer
  const f16v shifted = x * 1.44269504f + shifter;
  const f16v n = shifted - shifter;
  const f16v r = x - n * 0.69314575f - n * 1.4286068e-6f;  // ln 2 in two parts
  f16v p = splat(0.00139411085f);
  p = p * r + 0.00837512594f;
  p = p * r + 0.0416663513f;
  p = p * r + 0.166664153f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i16v integer = (i16v)shifted - 0x4B400000;
  const f16v scale = (f16v)((integer + 127) << 23);
  return blend(underflows, splat(0), p * scale);
}

// The largest of `n` floats, 16 at a time: a scalar loop waits on each comparison
// (measured: an int8 pass over 256-token passages, one thread, took 3–6% longer with it).
static inline __attribute__((always_inline)) float maximum_of(const float *x, int n) {
  f16v most = splat(-__builtin_inff());
  int i = 0;
  for (; i + LANES <= n; i += LANES) {
    const f16v v = load(x + i);
    most = blend(v > most, v, most);
  }
  float result = -__builtin_inff();
  for (int j = 0; j < LANES; j++) result = most[j] > result ? most[j] : result;
  for (; i < n; i++) result = x[i] > result ? x[i] : result;
  return result;
}

// p[i] ← e^(p[i] − maximum) over the first `count` floats (a multiple of 16), returning
// their sum: a softmax's numerators and denominator.
static inline __attribute__((always_inline)) float exp_shifted_sum(float *p, int count,
                                                                   float maximum) {
  f16v sum = splat(0);
  for (int i = 0; i < count; i += LANES) {
    const f16v e = exp16(load(p + i) - maximum);
    put(e, p + i);
    sum += e;
  }
  float total = 0;
  for (int j = 0; j < LANES; j++) total += sum[j];
  return total;
}

#endif
