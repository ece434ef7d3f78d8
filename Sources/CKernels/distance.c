#include <immintrin.h>
#include <string.h>

#include "ckernels.h"
#include "ifunc.h"

// Three versions of each function (AVX-512, AVX2+FMA, plain C); the loader picks the
// one the CPU runs (an ifunc), so a default build searches at full width.

// Vectors in an LMDB map are only 2-byte aligned: scalar accesses go through this type
// so the compiler assumes nothing more.
typedef float unaligned_float __attribute__((aligned(1)));
#define FLOAT_ONE(p, i) (((const unaligned_float *)(p))[i])

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

// The AVX2+FMA and plain-C kernels of float32 vectors.
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float s = sum8(_mm256_add_ps(s0, s1));
  for (; i < n; i++) s += FLOAT_ONE(a, i) * FLOAT_ONE(b, i);
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
  for (; i < n; i++) s += (FLOAT_ONE(a, i) - FLOAT_ONE(b, i)) * (FLOAT_ONE(a, i) - FLOAT_ONE(b, i));
  return s;
}

// The plain-C kernels of one element type: `ONE(p, i)` reads element i as a float (LMDB
// values are only 2-byte aligned).
#define PLAIN(prefix, type, ONE)                                                            \
  static float prefix##dot_plain(const type *a, const type *b, int n) {                     \
    float s = 0;                                                                            \
    for (int i = 0; i < n; i++) s += ONE(a, i) * ONE(b, i);                                 \
    return s;                                                                               \
  }                                                                                         \
  static float prefix##l2_plain(const type *a, const type *b, int n) {                      \
    float s = 0;                                                                            \
    for (int i = 0; i < n; i++) s += (ONE(a, i) - ONE(b, i)) * (ONE(a, i) - ONE(b, i));     \
    return s;                                                                               \
  }

PLAIN(, float, FLOAT_ONE)

typedef float (*distance_fn)(const float *, const float *, int);

VDB_IFUNC_RESOLVER static distance_fn pick(distance_fn avx512, distance_fn avx2,
                                          distance_fn plain) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2;
  return plain;
}

VDB_IFUNC_RESOLVER static float (*resolve_dot(void))(const float *, const float *, int) {
  return pick(dot_avx512, dot_avx2, dot_plain);
}
VDB_IFUNC_RESOLVER static float (*resolve_l2(void))(const float *, const float *, int) {
  return pick(l2_avx512, l2_avx2, l2_plain);
}

float vdb_dot(const float *a, const float *b, int n) __attribute__((ifunc("resolve_dot")));
float vdb_squared_euclidean(const float *a, const float *b, int n)
    __attribute__((ifunc("resolve_l2")));

// ------------------------------------------------- bfloat16 copies for the graph walk
//
// A search walks the graph with bf16 copies of the vectors (half the bytes to bring in
// from memory per distance) and rescores its final candidates in float32. A bf16 value
// is the top half of a float32, so widening is a shift; AVX-512 BF16's `vdpbf16ps`
// multiplies 32 pairs a step and sums them in float32. Which path runs follows
// `vdb_bf16_level()` (VDB_BF16_KERNEL forces a fallback), as for the bf16 linear layers.

typedef uint16_t unaligned_u16 __attribute__((aligned(1)));

void vdb_bf16_round(const float *x, uint16_t *out, int n) {
  const unaligned_float *ux = x;
  for (int i = 0; i < n; i++) {
    const float f = ux[i];
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    // Round to nearest even; NaN stays a (quiet) NaN.
    out[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u)
                                              : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

static inline float widen(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// 16 bf16 at p as two float32 vectors, without widening instructions: a 32-bit word
// holds two bf16, so the odd element is the word with its low half cleared and the even
// one the word shifted up by 16. A dot product or distance sums over both halves, so the
// order of the elements does not matter. Why: a `vpmovzxwd` and a shift per 8 elements
// kept the shuffle ports busy (one distance at 384 components, in cache, on Zen 3: 34 ns
// that way, 27 ns this way).
__attribute__((target("avx2,fma"))) static inline void split16(const uint16_t *p, __m256 *even,
                                                               __m256 *odd) {
  const __m256i w = _mm256_loadu_si256((const __m256i *)p);
  *even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  *odd = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32((int)0xFFFF0000u)));
}

#define BF16_ONE(p, i) widen(((const unaligned_u16 *)(p))[i])
PLAIN(bf16_, uint16_t, BF16_ONE)

// a · b over the 16 elements at a and b, added to two sums.
__attribute__((target("avx2,fma"))) static inline void add_products16(const uint16_t *a,
                                                                      const uint16_t *b,
                                                                      __m256 *even, __m256 *odd) {
  __m256 ae, ao, be, bo;
  split16(a, &ae, &ao), split16(b, &be, &bo);
  *even = _mm256_fmadd_ps(ae, be, *even), *odd = _mm256_fmadd_ps(ao, bo, *odd);
}

// (a − b)² over the 16 elements at a and b, added to two sums.
__attribute__((target("avx2,fma"))) static inline void add_squares16(const uint16_t *a,
                                                                     const uint16_t *b,
                                                                     __m256 *even, __m256 *odd) {
  __m256 ae, ao, be, bo;
  split16(a, &ae, &ao), split16(b, &be, &bo);
  const __m256 de = _mm256_sub_ps(ae, be), dd = _mm256_sub_ps(ao, bo);
  *even = _mm256_fmadd_ps(de, de, *even), *odd = _mm256_fmadd_ps(dd, dd, *odd);
}

// Sums `step` over the whole steps of 16 elements in `n`, setting `*done` to the elements
// covered: four sums, 32 elements a turn, so that consecutive FMAs do not wait on each
// other. Inlined with its `step`, like int8.c's tiles.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) float over16(
    void step(const uint16_t *, const uint16_t *, __m256 *, __m256 *), const uint16_t *a,
    const uint16_t *b, int n, int *done) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    step(a + i, b + i, &s0, &s1);
    step(a + i + 16, b + i + 16, &s2, &s3);
  }
  if (i + 16 <= n) step(a + i, b + i, &s0, &s1), i += 16;
  *done = i;
  return sum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

__attribute__((target("avx2,fma"))) static float bf16_dot_avx2(const uint16_t *a,
                                                               const uint16_t *b, int n) {
  int i;
  const float sum = over16(add_products16, a, b, n, &i);
  return sum + bf16_dot_plain(a + i, b + i, n - i);
}

__attribute__((target("avx2,fma"))) static float bf16_l2_avx2(const uint16_t *a,
                                                              const uint16_t *b, int n) {
  int i;
  const float sum = over16(add_squares16, a, b, n, &i);
  return sum + bf16_l2_plain(a + i, b + i, n - i);
}

#define AVX512BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,fma")))

// The first `left` (≤ 32) lanes of a 32 × 16-bit load.
AVX512BF16 static inline __mmask32 first32(int left) {
  return left >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
}

AVX512BF16 static float bf16_dot_avx512bf16(const uint16_t *a, const uint16_t *b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_loadu_si512(a + i),
                          (__m512bh)_mm512_loadu_si512(b + i));
    s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_loadu_si512(a + i + 32),
                          (__m512bh)_mm512_loadu_si512(b + i + 32));
  }
  for (; i < n; i += 32) {  // at most 63 left: a full or masked step, then a masked one
    const __mmask32 m = first32(n - i);
    s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_maskz_loadu_epi16(m, a + i),
                          (__m512bh)_mm512_maskz_loadu_epi16(m, b + i));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// 16 bf16 at p (the first `left` of them, the rest 0) as float32.
AVX512BF16 static inline __m512 widen16(const uint16_t *p, int left) {
  const __m256i h = _mm256_maskz_loadu_epi16((__mmask16)first32(left), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512BF16 static float bf16_l2_avx512(const uint16_t *a, const uint16_t *b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(widen16(a + i, 16), widen16(b + i, 16));
    const __m512 d1 = _mm512_sub_ps(widen16(a + i + 16, 16), widen16(b + i + 16, 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  for (; i < n; i += 16) {
    const __m512 d = _mm512_sub_ps(widen16(a + i, n - i), widen16(b + i, n - i));
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float vdb_bf16_dot(const uint16_t *a, const uint16_t *b, int n) {
  switch (vdb_bf16_level()) {
  case VDB_BF16_AMX:  // tiles do not pay for one vector pair
  case VDB_BF16_AVX512BF16: return bf16_dot_avx512bf16(a, b, n);
  case VDB_BF16_AVX2: return bf16_dot_avx2(a, b, n);
  default: return bf16_dot_plain(a, b, n);
  }
}

float vdb_bf16_squared_euclidean(const uint16_t *a, const uint16_t *b, int n) {
  switch (vdb_bf16_level()) {
  case VDB_BF16_AMX:
  case VDB_BF16_AVX512BF16: return bf16_l2_avx512(a, b, n);
  case VDB_BF16_AVX2: return bf16_l2_avx2(a, b, n);
  default: return bf16_l2_plain(a, b, n);
  }
}
