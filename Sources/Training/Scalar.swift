import CBLAS
import Foundation
import Tensor

/// The floating-point types the trainer computes in: `Float` for speed, `Double` for the
/// finite-difference gradient check.
///
/// Every matrix product goes through ``gemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``,
/// which calls `cblas_sgemm` or `cblas_dgemm`; the elementwise functions call the C library.
public protocol TrainingScalar: BinaryFloatingPoint, Sendable, Codable, VectorMath
where RawSignificand: FixedWidthInteger {
  /// Row-major `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op` transposes
  /// when asked. `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
  static func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
    a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
  static func exp(_ x: Self) -> Self
  static func log(_ x: Self) -> Self
  static func erf(_ x: Self) -> Self
}

extension Float: TrainingScalar {
  @inline(__always)
  public static func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
  @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.expf(x) }
  @inline(__always) public static func log(_ x: Float) -> Float { Foundation.logf(x) }
  @inline(__always) public static func erf(_ x: Float) -> Float { Foundation.erff(x) }
}

extension Double: TrainingScalar {
  @inline(__always)
  public static func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
    beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
  ) {
    cblas_dgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
  @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
  @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
  @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
}

/// `C = alpha·op(A)·op(B) + beta·C` as ``TrainingScalar/gemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``,
/// split over the cores: by rows of C when it has more rows than columns,
/// else by columns. Each thread makes one single-threaded BLAS call on its slice.
///
/// The project runs OpenBLAS with one thread per call and threads itself (the encoder calls
/// BLAS from several threads at once); OpenBLAS's own pool would also spin between calls and
/// take the core from the elementwise loops that run in between.
func parallelGemm<S: TrainingScalar>(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: S,
  a: UnsafePointer<S>, lda: Int, b: UnsafePointer<S>, ldb: Int,
  beta: S, c: UnsafeMutablePointer<S>, ldc: Int
) {
  // Below ~2M multiply-adds a thread hop costs more than it saves.
  let chunks = m * n * k < 1 << 21 ? 1 : min(Parallel.coreCount, max(m, n) / 16)
  if chunks <= 1 {
    S.gemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a,
      lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    return
  }
  let byRows = m >= n
  parallelChunks(byRows ? m : n, chunks: chunks) { _, range in
    if byRows {
      // Rows i of op(A) start at a + i·lda, or at column i when A is stored transposed.
      let aSlice = transposeA ? a + range.lowerBound : a + range.lowerBound * lda
      S.gemm(
        transposeA: transposeA, transposeB: transposeB, m: range.count, n: n, k: k, alpha: alpha,
        a: aSlice, lda: lda, b: b, ldb: ldb, beta: beta, c: c + range.lowerBound * ldc, ldc: ldc)
    } else {
      // Columns j of op(B) start at column j of B, or at row j when B is stored transposed.
      let bSlice = transposeB ? b + range.lowerBound * ldb : b + range.lowerBound
      S.gemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: range.count, k: k, alpha: alpha,
        a: a, lda: lda, b: bSlice, ldb: ldb, beta: beta, c: c + range.lowerBound, ldc: ldc)
    }
  }
}
