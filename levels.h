#ifndef VDB_CKERNELS_LEVELS_H
#define VDB_CKERNELS_LEVELS_H

#include <stdlib.h>
#include <string.h>

// How each kernel family (bf16.c, int8.c, activation.c) settles its instruction set. Every
// family numbers its levels alike: 0 plain C, 1 AVX2 with FMA, 2 the family's AVX-512,
// and bf16.c has a 3, AMX (each family's `best_level` says which the CPU has).

// `best`, unless the environment variable `variable` asks for a fallback: "plain", or
// "avx2" or "avx512" where the CPU has it.
static inline int kernel_level_from_environment(const char *variable, int best) {
  const char *forced = getenv(variable);
  if (forced && strcmp(forced, "plain") == 0) return 0;
  if (forced && strcmp(forced, "avx2") == 0 && best >= 1) return 1;
  if (forced && strcmp(forced, "avx512") == 0 && best >= 2) return 2;
  return best;
}

// `level` capped at `best`; a negative `level` means `best`.
static inline int kernel_level_within(int level, int best) {
  return level < 0 || level > best ? best : level;
}

#endif
