// How many of each AVX2 multiply-add instruction this core issues a cycle: the numbers
// behind docs/encoder.md's "8-bit activations after a rotation" (why `vpmaddubsw` does
// not make the int8 kernel faster than `vpmaddwd` on an AVX2-only CPU).
//
// Each case runs 8 (or 10) independent instructions a loop iteration, so only issue
// throughput limits it; the clock is measured first by a chain of dependent adds
// (one a cycle on every x86-64 core).
//
//     cc -O2 Benchmarks/peers/isa_throughput.c -o /tmp/isa_throughput && /tmp/isa_throughput
#include <stdio.h>
#include <time.h>

enum { ROUNDS = 100000000 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static double gigahertz(void) {
  long x = 0;
  const double start = now();
  for (long i = 0; i < ROUNDS * 10L; i++)
    __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  return 4.0 * ROUNDS * 10 / (now() - start) * 1e-9;
}

#define X8(op, a, b, c, d, e, f, g, h)                                                      \
  op " %%ymm14,%%ymm15,%%ymm" #a "\n\t" op " %%ymm14,%%ymm15,%%ymm" #b "\n\t" op           \
     " %%ymm14,%%ymm15,%%ymm" #c "\n\t" op " %%ymm14,%%ymm15,%%ymm" #d "\n\t"              \
  op " %%ymm14,%%ymm15,%%ymm" #e "\n\t" op " %%ymm14,%%ymm15,%%ymm" #f "\n\t" op           \
     " %%ymm14,%%ymm15,%%ymm" #g "\n\t" op " %%ymm14,%%ymm15,%%ymm" #h "\n\t"
#define CLOBBERS                                                                             \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
      "xmm11", "xmm12", "xmm13"
#define CASE(name, body, count)                                                              \
  do {                                                                                       \
    const double start = now();                                                              \
    for (long i = 0; i < ROUNDS; i++) __asm__ volatile(body ::: CLOBBERS);                   \
    const double rate = (double)ROUNDS * (count) / (now() - start) * 1e-9;                 \
    printf("%-36s %.2f a cycle\n", name, rate / ghz);                                         \
  } while (0)

__attribute__((target("avx2,fma"))) int main(void) {
  const double ghz = gigahertz();
  printf("clock %.2f GHz\n", ghz);
  CASE("vpmaddwd", X8("vpmaddwd", 0, 1, 2, 3, 4, 5, 6, 7), 8);
  CASE("vpmaddubsw", X8("vpmaddubsw", 0, 1, 2, 3, 4, 5, 6, 7), 8);
  CASE("vpmaddwd + vpmaddubsw (4 + 4)",
       X8("vpmaddwd", 0, 1, 2, 3, 0, 1, 2, 3) X8("vpmaddubsw", 4, 5, 6, 7, 4, 5, 6, 7), 16);
  CASE("vpaddd", X8("vpaddd", 0, 1, 2, 3, 4, 5, 6, 7), 8);
  CASE("vpmaddwd + vpaddd (4 + 4)",
       X8("vpmaddwd", 0, 1, 2, 3, 0, 1, 2, 3) X8("vpaddd", 4, 5, 6, 7, 4, 5, 6, 7), 16);
  // An FMA adds into its destination: 14 accumulators keep 2 a cycle of latency 4 busy.
  CASE("vfmadd231ps",
       X8("vfmadd231ps", 0, 1, 2, 3, 4, 5, 6, 7) X8("vfmadd231ps", 8, 9, 10, 11, 12, 13, 0, 1),
       16);
  return 0;
}
