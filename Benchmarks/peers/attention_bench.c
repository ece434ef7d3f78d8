// One head of the encoder's attention per call, timed two ways on one thread: OpenBLAS
// (Q·Kᵀ by cblas_sgemm, vdb_softmax_rows, P·V by cblas_sgemm: the encoder's path before
// 2026-12-05) and vdb_attention (Sources/CKernels/attention.c, fused per block of query
// rows). The layout is the encoder's: Q|K|V rows of 3 × 384 floats, 12 heads of 32.
// Reports µs a head (best of 7 rounds), the ratio, and the largest difference.
//
//   S=Sources/CKernels; clang -O2 -I$S/include -o /tmp/attention_bench
//     Benchmarks/peers/attention_bench.c $S/attention.c $S/activation.c -lopenblas -lm
//   /tmp/attention_bench 235 64 16 9
//
// (one command over the first two lines, from the repository's root)
//
// Not built by the package; docs/encoder.md ("Attention") quotes its figures.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ckernels.h"

extern void openblas_set_num_threads(int threads);

enum { HIDDEN = 384, HEAD = 32, HEADS = 12, ROW = 3 * HIDDEN, ROUNDS = 7 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void with_blas(int length, const float *qkv, float *scores, float *context) {
  const float scale = 1 / sqrtf(HEAD);
  for (int head = 0; head < HEADS; head++) {
    const float *q = qkv + head * 3 * HEAD;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, length, length, HEAD, scale, q, ROW,
                q + HEAD, ROW, 0, scores, length);
    vdb_softmax_rows(length, length, length, length, scores);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, length, HEAD, length, 1, scores,
                length, q + 2 * HEAD, ROW, 0, context + head * HEAD, HIDDEN);
  }
}

static void fused(int length, const float *qkv, float *scratch, float *context) {
  for (int head = 0; head < HEADS; head++) {
    const float *q = qkv + head * 3 * HEAD;
    vdb_attention(length, HEAD, q, q + HEAD, q + 2 * HEAD, ROW, context + head * HEAD, HIDDEN,
                  scratch);
  }
}

int main(int argc, char **argv) {
  openblas_set_num_threads(1);
  for (int a = 1; a < argc; a++) {
    const int length = atoi(argv[a]);
    if (length < 1) return fprintf(stderr, "usage: %s LENGTH...\n", argv[0]), 2;
    float *qkv = malloc(sizeof(float) * length * ROW);
    float *scores = malloc(sizeof(float) * length * length);
    float *scratch = malloc(sizeof(float) * vdb_attention_scratch(length, HEAD));
    float *expected = malloc(sizeof(float) * length * HIDDEN);
    float *got = malloc(sizeof(float) * length * HIDDEN);
    srand(1);
    for (int i = 0; i < length * ROW; i++) qkv[i] = 4 * (rand() / (float)RAND_MAX - 0.5f);
    const int reps = 1 + 2000000 / (length * length + 100);  // ~0.1 s a round at 235 tokens
    double blas = INFINITY, fast = INFINITY;
    for (int round = 0; round < ROUNDS; round++) {
      double t0 = now();
      for (int r = 0; r < reps; r++) with_blas(length, qkv, scores, expected);
      double t1 = now();
      for (int r = 0; r < reps; r++) fused(length, qkv, scratch, got);
      double t2 = now();
      blas = fmin(blas, t1 - t0);
      fast = fmin(fast, t2 - t1);
    }
    double worst = 0;
    for (int i = 0; i < length * HIDDEN; i++) worst = fmax(worst, fabs(expected[i] - got[i]));
    const double per_head = 1e6 / ((double)reps * HEADS);
    printf("%4d tokens: sgemm+softmax %8.2f µs a head, fused %8.2f (%.2f×), max difference %.1e\n",
           length, blas * per_head, fast * per_head, blas / fast, worst);
    free(qkv), free(scores), free(scratch), free(expected), free(got);
  }
  return 0;
}
