#ifndef VDB_CKERNELS_H
#define VDB_CKERNELS_H

/// y[r * ldy + c] = (bias ? bias[c] : 0) + Σ_i x[r * k + i] · w[c * k + i]
/// for rows r < `rows` and output columns c < `columns`: a linear layer (x · Wᵀ + b,
/// W row-major [columns, k]) for a few rows, reading W straight from memory.
///
/// Why: for the handful of token rows of one short query, a BLAS gemm spends as long
/// packing W into its panel layout as multiplying; this kernel streams each block of
/// W rows once from memory and keeps it in L1 while every input row passes over it.
/// Uses AVX-512 or AVX2 with FMA when the CPU has them (checked once at run time),
/// else plain C. Never fails; the caller guarantees the pointers cover the ranges.
void vdb_linear_rows(int rows, int k, int columns, const float *x, const float *w,
                     const float *bias, float *y, int ldy);

/// Σ aᵢ·bᵢ over `n` floats. The pointers need no alignment (vectors in an LMDB map are
/// 2-byte aligned). AVX-512 or AVX2+FMA when the CPU has them, chosen once at load.
float vdb_dot(const float *a, const float *b, int n);

/// Σ (aᵢ − bᵢ)² over `n` floats; as `vdb_dot`.
float vdb_squared_euclidean(const float *a, const float *b, int n);

#include <stddef.h>
#include <stdint.h>

/// bfloat16 linear layers (see bf16.c): W packed once, x rounded per call, float32 sums.
/// The kernel families' instruction sets share one numbering, narrowest first: 0 plain C,
/// 1 AVX2, 2 AVX-VNNI, 3 AVX-512, 4 AMX; each family has some of them.
enum {
  VDB_BF16_PLAIN = 0,      ///< portable C
  VDB_BF16_AVX2 = 1,       ///< AVX2 + FMA: bf16 widened to float32 in registers
  VDB_BF16_AVX512BF16 = 3, ///< AVX-512 BF16: `vdpbf16ps`, two products per lane and step
  VDB_BF16_AMX = 4         ///< AMX BF16: `tdpbf16ps`, 16 × 16 × 32 products per step
};

/// How many bf16 values `vdb_bf16_pack` writes for a [columns, k] matrix (panels of 16
/// columns, inputs in pairs, zero padded).
size_t vdb_bf16_packed_count(int k, int columns);

/// Packs W (float32, row-major [columns, k], as PyTorch stores a linear layer) into
/// `packed` (`vdb_bf16_packed_count(k, columns)` values), rounding to nearest even.
void vdb_bf16_pack(int k, int columns, const float *w, uint16_t *packed);

/// y[r * ldy + c] = bias[c] + Σ_i bf16(x[r * k + i]) · bf16(W[c][i]), summed in float32,
/// for rows r < `rows` and columns `column_begin` ≤ c < `column_end` (others untouched):
/// y = x · Wᵀ + b with W from `vdb_bf16_pack`. `y` and `bias` (or NULL) address column 0.
/// Uses the level `vdb_bf16_level()` reports. Never fails; the caller guarantees the
/// pointers cover the ranges.
void vdb_bf16_linear(int rows, int k, const uint16_t *packed, int column_begin, int column_end,
                     const float *x, const float *bias, float *y, int ldy);

/// As `vdb_bf16_pack`, for W given as its transpose: W[c][i] = w[i * ld + c], a row-major
/// [k, columns] matrix with rows `ld` floats apart. Never fails.
void vdb_bf16_pack_transposed(int k, int columns, const float *w, int ld, uint16_t *packed);

/// As `vdb_bf16_linear`, with x's input i of row r at x[r * ldx + i * step]: `step` 1 reads
/// rows `ldx` apart, `ldx` 1 reads x from its transpose (a [k, rows] matrix, rows `step`
/// apart). Never fails; the caller guarantees the pointers cover the ranges.
void vdb_bf16_linear_strided(int rows, int k, const uint16_t *packed, int column_begin,
                             int column_end, const float *x, size_t ldx, size_t step,
                             const float *bias, float *y, int ldy);

/// The instruction set `vdb_bf16_linear` uses: the widest the CPU has, chosen on first
/// use, unless the environment variable VDB_BF16_KERNEL is "avx512", "avx2" or "plain".
int vdb_bf16_level(void);

/// Makes `vdb_bf16_linear` use `level`, or the widest below it the CPU has (negative: the
/// widest of all), and returns the level now in effect. For tests and benchmarks; not
/// thread-safe.
int vdb_bf16_set_level(int level);

/// Floats of scratch `vdb_bf16_attention` needs for `length` tokens and heads of `d`.
size_t vdb_bf16_attention_scratch(int length, int d);

/// One head of scaled dot-product attention over one sequence, with bfloat16 products
/// summed in float32: context = softmax(q · kᵀ / √d) · v, where q, k and v are
/// `length × d` with rows `ld` floats apart and context's rows are `ldc` apart. `scratch`
/// holds `vdb_bf16_attention_scratch(length, d)` floats. Uses the level
/// `vdb_bf16_level()` reports. Never fails; the caller guarantees the pointers.
void vdb_bf16_attention(int length, int d, const float *q, const float *k, const float *v,
                        int ld, float *context, int ldc, float *scratch);

/// Rounds `n` floats to bfloat16 (to nearest even; NaN stays NaN): the copies of the
/// vectors a search walks the graph with. `x` needs no alignment. Never fails.
void vdb_bf16_round(const float *x, uint16_t *out, int n);

/// Σ aᵢ·bᵢ over `n` bfloat16 values, each product and the sum in float32 (the order of
/// the additions differs between paths). 2-byte alignment is enough. Uses the level
/// `vdb_bf16_level()` reports: AVX-512 BF16 `vdpbf16ps`, AVX2 + FMA, or plain C.
float vdb_bf16_dot(const uint16_t *a, const uint16_t *b, int n);

/// Σ (aᵢ − bᵢ)² over `n` bfloat16 values, in float32; as `vdb_bf16_dot` (the widest
/// path is AVX-512F, which every AVX-512 BF16 CPU has).
float vdb_bf16_squared_euclidean(const uint16_t *a, const uint16_t *b, int n);

/// int8 linear layers (see int8.c): W in int8 with one float32 scale per block of 32
/// inputs, x in int16 with one per row, exact integer sums in int32.
enum {
  VDB_INT8_PLAIN = 0,      ///< portable C
  VDB_INT8_AVX2 = 1,       ///< AVX2: `vpmaddwd`, 16 products per instruction, then `vpaddd`
  VDB_INT8_AVXVNNI = 2,    ///< AVX-VNNI: `vpdpwssd` on 256 bits, 16 products and the sum
  VDB_INT8_AVX512VNNI = 3  ///< AVX-512 VNNI: `vpdpwssd` on 512 bits, 32 products and the sum
};

/// How many bytes `vdb_int8_pack` writes for a [columns, k] matrix.
size_t vdb_int8_packed_size(int k, int columns);

/// Quantizes W (row-major [columns, k], float32) to int8 per block of 32 inputs into
/// `packed` (`vdb_int8_packed_size(k, columns)` bytes, 4-byte aligned). Never fails.
void vdb_int8_pack(int k, int columns, const float *w, void *packed);

/// y[r * ldy + c] = bias[c] + sx·Σ_blocks sw·Σ qx·qw for rows r < `rows` and columns
/// `column_begin` ≤ c < `column_end`: y = x · Wᵀ + b with W from `vdb_int8_pack` (of a
/// [columns, k] matrix) and each row of x quantized to int16 (one scale per row) as it is
/// read. `y` and `bias` (or NULL) address column 0. Uses the level `vdb_int8_level()`
/// reports; every level computes the same integer sums. Never fails; the caller guarantees
/// the pointers cover the ranges.
void vdb_int8_linear(int rows, int k, int columns, const void *packed, int column_begin,
                     int column_end, const float *x, const float *bias, float *y, int ldy);

/// The instruction set `vdb_int8_linear` uses: the widest the CPU has, chosen on first
/// use, unless the environment variable VDB_INT8_KERNEL is "avx512", "avxvnni", "avx2" or
/// "plain" (then the widest the CPU has up to that one).
int vdb_int8_level(void);

/// Makes `vdb_int8_linear` use `level`, or the widest below it the CPU has (negative: the
/// widest of all), and returns the level now in use. For tests and benchmarks.
int vdb_int8_set_level(int level);

/// w8a8 linear layers (see w8a8.c): W and each row of x multiplied by one orthogonal
/// rotation (random signs, Walsh–Hadamard spans of up to 128 inputs), then both in int8
/// with one float32 scale per block of 32 inputs, exact integer sums in int32.
enum {
  VDB_W8A8_PLAIN = 0,      ///< portable C
  VDB_W8A8_AVX2 = 1,       ///< AVX2: activations widened to int16, `vpmaddwd`
  VDB_W8A8_AVX512VNNI = 3  ///< AVX-512 VNNI: `vpdpbusd`, 64 byte products per instruction
};

/// How many bytes `vdb_w8a8_pack` writes for a [columns, k] matrix.
size_t vdb_w8a8_packed_size(int k, int columns);

/// Rotates W (row-major [columns, k], float32) and quantizes it to int8 per block of 32
/// inputs into `packed` (`vdb_w8a8_packed_size(k, columns)` bytes, 4-byte aligned).
/// Never fails (aborts if a row's scratch cannot be allocated).
void vdb_w8a8_pack(int k, int columns, const float *w, void *packed);

/// y[r * ldy + c] = bias[c] + Σ_blocks sw·sx·Σ qx·qw for rows r < `rows` and columns
/// `column_begin` ≤ c < `column_end`: y = x · Wᵀ + b with W from `vdb_w8a8_pack` (of a
/// [columns, k] matrix), each row of x rotated and quantized to int8 per block of 32 as it
/// is read. `y` and `bias` (or NULL) address column 0. Uses the level `vdb_w8a8_level()`
/// reports; every level computes the same floats. Never fails; the caller guarantees the
/// pointers cover the ranges.
void vdb_w8a8_linear(int rows, int k, int columns, const void *packed, int column_begin,
                     int column_end, const float *x, const float *bias, float *y, int ldy);

/// The instruction set `vdb_w8a8_linear` uses: the widest the CPU has, chosen on first
/// use, unless the environment variable VDB_INT8_KERNEL (shared with int8's kernel) is
/// "avx2" or "plain" (then the widest the CPU has up to that one).
int vdb_w8a8_level(void);

/// Makes `vdb_w8a8_linear` use `level`, or the widest below it the CPU has (negative: the
/// widest of all), and returns the level now in use. For tests and benchmarks.
int vdb_w8a8_set_level(int level);

/// The CRC-32C (Castagnoli) of `count` bytes at `data`, continuing from `crc` (0 to
/// start): vdb_crc32c(vdb_crc32c(0, a, n), b, m) is the CRC of a then b. Uses the
/// SSE4.2 crc32 instruction when the CPU has it (chosen once at load), else a table.
/// No alignment needed. Never fails.
uint32_t vdb_crc32c(uint32_t crc, const void *data, size_t count);

/// 1 when `vdb_crc32c` runs on the CPU's crc32 instruction, else 0.
int vdb_crc32c_is_accelerated(void);

/// Elementwise functions of the encoder (see activation.c), on AVX-512, AVX2 + FMA or
/// plain C vectors, chosen once at run time.
enum {
  VDB_VECTOR_PLAIN = 0,  ///< the compiler's baseline (SSE2 on x86-64)
  VDB_VECTOR_AVX2 = 1,   ///< AVX2 + FMA, 8 lanes
  VDB_VECTOR_AVX512 = 3  ///< AVX-512F, 16 lanes (the levels' shared numbering)
};

/// y = GELU(x) = x · ½ · (1 + erf(x / √2)) over `count` floats (`y` may be `x`); erf with
/// absolute error below 10⁻⁶. Never fails; the caller guarantees the pointers.
void vdb_gelu(int count, const float *x, float *y);

/// d ← d · GELU′(u) over `count` floats, GELU′(u) = ½ · (1 + erf(u / √2)) + u · e^(−u²/2) /
/// √(2π): the backward of `vdb_gelu`. Never fails; the caller guarantees the pointers.
void vdb_gelu_backward(int count, const float *u, float *d);

/// In place, for `rows` rows `stride` floats apart: the softmax of each row's first
/// `valid` entries (eˣ with relative error below 2·10⁻⁷), and 0 in entries `valid` up to
/// `width`. Never fails; the caller guarantees 1 ≤ `valid` ≤ `width` ≤ `stride`.
void vdb_softmax_rows(int rows, int width, int valid, int stride, float *x);

/// One AdamW update of `count` parameters in place: θ ← θ·decay (1: no decay), m ← β₁m +
/// (1 − β₁)g, v ← β₂v + (1 − β₂)g², θ ← θ − step_size·m / (√v·inverse_correction2 + ε),
/// rounded as written (no fused multiply-adds) on every level. Never fails; the caller
/// guarantees the pointers.
void vdb_adamw_update(long count, float *theta, const float *g, float *m, float *v, float beta1,
                      float beta2, float step_size, float inverse_correction2, float epsilon,
                      float decay);

/// Floats of scratch `vdb_attention` needs for `length` tokens and heads of `d`.
size_t vdb_attention_scratch(int length, int d);

/// One head of scaled dot-product attention over one sequence, in float32: context =
/// softmax(q · kᵀ / √d) · v, where q, k and v are `length × d` with rows `ld` floats apart
/// and context's rows are `ldc` apart (eˣ as in `vdb_softmax_rows`). `scratch` holds
/// `vdb_attention_scratch(length, d)` floats. Never fails; the caller guarantees the
/// pointers.
void vdb_attention(int length, int d, const float *q, const float *k, const float *v, int ld,
                   float *context, int ldc, float *scratch);

/// The level `vdb_gelu`, `vdb_gelu_backward`, `vdb_softmax_rows`, `vdb_attention` and
/// `vdb_adamw_update` use:
/// the widest the CPU has, chosen on first use, unless the environment variable
/// VDB_VECTOR_KERNEL is "avx512", "avx2" or "plain".
int vdb_vector_level(void);

/// Makes them use `level`, or the widest below it the CPU has (negative: the widest of
/// all), and returns the level now in effect. For tests and benchmarks; not thread-safe.
int vdb_vector_set_level(int level);

/// Runs `body(context, i)` for every i in [0, `count`) on the calling thread and a pool of
/// worker threads that stay awake for a moment between calls (see workers.c), and returns
/// 1 when every call has finished. The pool starts `workers` threads on first use (later
/// calls keep that number). Returns 0, having called nothing, when the pool is running
/// another caller's job (also when `body` itself calls this) or no thread could be
/// started: the caller then runs the work some other way. `body` must not fail.
int vdb_workers_run(int count, int workers, void (*body)(void *context, int index),
                    void *context);

#endif
