#ifndef VDB_CKERNELS_LEVELS_H
#define VDB_CKERNELS_LEVELS_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// How each kernel family (bf16.c, int8.c, w8a8.c, activation.c) settles its instruction
// set. The families share one numbering, narrowest first (ckernels.h's VDB_*_ constants):
// 0 plain C, 1 AVX2 with FMA, 2 AVX-VNNI, 3 AVX-512, 4 AMX. A family has some of them and
// says which the CPU lets it use as a mask, bit n for level n (bit 0, plain C, always set).

enum { KERNEL_LEVELS = 5 };

// The widest level in `available` that is not wider than `level`; a negative `level`
// means the widest of all.
static inline int kernel_level_within(int level, unsigned available) {
  if (level < 0 || level >= KERNEL_LEVELS) level = KERNEL_LEVELS - 1;
  while (level > 0 && !(available >> level & 1u)) level--;
  return level;
}

// The widest level in `available`, unless the environment variable `variable` asks for a
// narrower one by name: "plain", "avx2", "avxvnni", "avx512" or "amx".
static inline int kernel_level_from_environment(const char *variable, unsigned available) {
  static const char *const names[KERNEL_LEVELS] = {"plain", "avx2", "avxvnni", "avx512", "amx"};
  const char *forced = getenv(variable);
  for (int level = 0; forced && level < KERNEL_LEVELS; level++)
    if (strcmp(forced, names[level]) == 0) return kernel_level_within(level, available);
  return kernel_level_within(-1, available);
}

// A family's chosen level, `*chosen` (-1 until settled): on first use the widest of
// `available()` or the one `variable` names. Any thread may settle it and every kernel call
// reads it, hence an atomic (relaxed: nothing else hangs on it): a plain int written and
// read by several threads is a data race in C11, which ThreadSanitizer reports, however
// idempotent the value.
static inline int kernel_level_chosen(_Atomic int *chosen, const char *variable,
                                      unsigned (*available)(void)) {
  int level = atomic_load_explicit(chosen, memory_order_relaxed);
  if (level < 0) {
    level = kernel_level_from_environment(variable, available());
    atomic_store_explicit(chosen, level, memory_order_relaxed);
  }
  return level;
}

// `*cache` (-1 until known): `find()`'s value (≥ 0), found by whichever thread first asks
// (all find the same) and atomic for the reason kernel_level_chosen gives.
static inline int found_once(_Atomic int *cache, int (*find)(void)) {
  int value = atomic_load_explicit(cache, memory_order_relaxed);
  if (value < 0) {
    value = find();
    atomic_store_explicit(cache, value, memory_order_relaxed);
  }
  return value;
}

// Sets `*chosen` to the widest available level not wider than `level`; returns it.
static inline int kernel_level_choose(_Atomic int *chosen, int level, unsigned available) {
  level = kernel_level_within(level, available);
  atomic_store_explicit(chosen, level, memory_order_relaxed);
  return level;
}

#endif
