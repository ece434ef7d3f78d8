#include <immintrin.h>

#include "ckernels.h"

// Three versions of each function (AVX-512, AVX2+FMA, plain C); the loader picks the
// one the CPU runs (an ifunc), so a default build searches at full width.

// Vectors in an LMDB map are only 2-byte aligned: scalar accesses go through this type
// so the compiler assumes nothing more.
typedef float unaligned_float __attribute__((aligned(1)));

__attribute__((target("avx512f,fma"))) static float dot_avx512(const float *a, const float *b,
                                                               int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {  // at most 31 left: a full or masked step, then a masked one
    const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f,fma"))) static float l2_avx512(const float *a, const float *b,
                                                              int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx2,fma"))) static float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float s = sum8(_mm256_add_ps(s0, s1));
  const unaligned_float *ua = a, *ub = b;
  for (; i < n; i++) s += ua[i] * ub[i];
  return s;
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  float s = sum8(_mm256_add_ps(s0, s1));
  const unaligned_float *ua = a, *ub = b;
  for (; i < n; i++) s += (ua[i] - ub[i]) * (ua[i] - ub[i]);
  return s;
}

static float dot_plain(const float *a, const float *b, int n) {
  const unaligned_float *ua = a, *ub = b;
  float s = 0;
  for (int i = 0; i < n; i++) s += ua[i] * ub[i];
  return s;
}

static float l2_plain(const float *a, const float *b, int n) {
  const unaligned_float *ua = a, *ub = b;
  float s = 0;
  for (int i = 0; i < n; i++) s += (ua[i] - ub[i]) * (ua[i] - ub[i]);
  return s;
}

typedef float (*distance_fn)(const float *, const float *, int);

static distance_fn pick(distance_fn avx512, distance_fn avx2, distance_fn plain) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2;
  return plain;
}

static float (*resolve_dot(void))(const float *, const float *, int) {
  return pick(dot_avx512, dot_avx2, dot_plain);
}
static float (*resolve_l2(void))(const float *, const float *, int) {
  return pick(l2_avx512, l2_avx2, l2_plain);
}

float vdb_dot(const float *a, const float *b, int n) __attribute__((ifunc("resolve_dot")));
float vdb_squared_euclidean(const float *a, const float *b, int n)
    __attribute__((ifunc("resolve_l2")));
