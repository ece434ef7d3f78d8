import CBLAS
import Foundation

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

/// Runs `body` with OpenBLAS limited to one thread, for code that calls BLAS from several
/// threads at once on small matrices, then restores the previous thread count.
///
/// The setting is process-wide: BLAS calls made meanwhile by other threads run single-threaded
/// too (correctly, just without OpenBLAS's own threads).
func withSingleThreadedBLAS(_ body: () -> Void) {
  let previous = openblas_get_num_threads()
  if previous > 1 { openblas_set_num_threads(1) }
  defer { if previous > 1 { openblas_set_num_threads(previous) } }
  body()
}
