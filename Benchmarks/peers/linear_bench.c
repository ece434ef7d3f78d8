// The encoder's four linear layer shapes (query|key|value 384 → 1152, attention output
// 384 → 384, FFN up 384 → 1536, FFN down 1536 → 384) over ROWS token rows, timed on one
// thread through each packed kernel: bfloat16 (vdb_bf16_linear), int8 (vdb_int8_linear,
// int16 activations) and w8a8 (vdb_w8a8_linear, rotated 8-bit activations), each at the
// widest level the CPU has (VDB_BF16_KERNEL / VDB_INT8_KERNEL choose a narrower one).
// Reports GMAC/s (best of 9 rounds of 3 calls, the kernels alternated round by round) and
// each format's relative error against the float32 product in double.
//
//   S=Sources/CKernels; clang -O2 -I$S/include -o /tmp/linear_bench
//     Benchmarks/peers/linear_bench.c $S/bf16.c $S/int8.c $S/w8a8.c $S/activation.c -lm
//   /tmp/linear_bench 235
//
// (one command over the first two lines, from the repository's root)
//
// Not built by the package; docs/encoder.md ("w8a8 against the others") quotes its figures.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ckernels.h"

enum { FORMATS = 3, ROUNDS = 9, CALLS = 3 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *packed_alloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

int main(int argc, char **argv) {
  const int rows = argc > 1 ? atoi(argv[1]) : 235;
  const int shapes[4][2] = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}};
  const char *names[FORMATS] = {"bfloat16", "int8", "w8a8"};
  printf("%d rows; levels: bfloat16 %d, int8 %d, w8a8 %d (0 plain, 1 AVX2, 2 AVX-VNNI, 3 AVX-512, "
         "4 AMX)\n",
         rows, vdb_bf16_level(), vdb_int8_level(), vdb_w8a8_level());
  srand(1);
  for (int s = 0; s < 4; s++) {
    const int k = shapes[s][0], columns = shapes[s][1];
    float *w = malloc(sizeof(float) * k * columns), *x = malloc(sizeof(float) * rows * k);
    float *y = malloc(sizeof(float) * rows * columns);
    double *exact = malloc(sizeof(double) * rows * columns);
    for (long i = 0; i < (long)k * columns; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
    // Activations with outliers, as real ones have: one value in 50 is 20× larger.
    for (long i = 0; i < (long)rows * k; i++)
      x[i] = (rand() / (float)RAND_MAX - 0.5f) * (i % 50 == 7 ? 20 : 1);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < columns; c++) {
        double sum = 0;
        for (int i = 0; i < k; i++) sum += (double)x[r * k + i] * w[c * k + i];
        exact[r * columns + c] = sum;
      }
    uint16_t *bf16 = packed_alloc(2 * vdb_bf16_packed_count(k, columns));
    void *int8 = packed_alloc(vdb_int8_packed_size(k, columns));
    void *w8a8 = packed_alloc(vdb_w8a8_packed_size(k, columns));
    vdb_bf16_pack(k, columns, w, bf16);
    vdb_int8_pack(k, columns, w, int8);
    vdb_w8a8_pack(k, columns, w, w8a8);
    double best[FORMATS] = {1e9, 1e9, 1e9}, error[FORMATS] = {0};
    for (int round = 0; round < ROUNDS; round++)
      for (int f = 0; f < FORMATS; f++) {
        const double start = now();
        for (int call = 0; call < CALLS; call++) {
          if (f == 0) vdb_bf16_linear(rows, k, bf16, 0, columns, x, NULL, y, columns);
          if (f == 1) vdb_int8_linear(rows, k, columns, int8, 0, columns, x, NULL, y, columns);
          if (f == 2) vdb_w8a8_linear(rows, k, columns, w8a8, 0, columns, x, NULL, y, columns);
        }
        const double seconds = (now() - start) / CALLS;
        if (seconds < best[f]) best[f] = seconds;
        if (round == 0) {
          double wrong = 0, total = 0;
          for (long i = 0; i < (long)rows * columns; i++) {
            wrong += (y[i] - exact[i]) * (y[i] - exact[i]);
            total += exact[i] * exact[i];
          }
          error[f] = sqrt(wrong / total);
        }
      }
    printf("%4d -> %4d:", k, columns);
    for (int f = 0; f < FORMATS; f++)
      printf("  %s %6.1f GMAC/s (error %.4f)", names[f], (double)rows * k * columns / best[f] / 1e9,
             error[f]);
    printf("\n");
    free(w), free(x), free(y), free(exact), free(bf16), free(int8), free(w8a8);
  }
  return 0;
}
