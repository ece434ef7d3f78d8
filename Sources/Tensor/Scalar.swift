import CBLAS
import CKernels
import Foundation

/// The floating-point types the layer math runs in: `Float` for inference and training,
/// `Double` for the finite-difference gradient checks.
///
/// Float's elementwise functions are the SIMD kernels inference uses (``Kernels/exp(_:)``,
/// ``Kernels/erf(_:)``, ``Kernels/softmax(rows:width:validWidth:stride:_:)``), so the
/// trained and the served model compute the same function with the same approximations;
/// Double calls the C library, so the gradient check compares against exact functions.
///
/// ```swift
/// func activate<S: TensorScalar>(_ u: [S]) -> [S] {
///   var g = u
///   S.gelu(u, into: &g, count: u.count)
///   return g
/// }
/// ```
public protocol TensorScalar: BinaryFloatingPoint, Sendable, Codable
where RawSignificand: FixedWidthInteger {
  /// OpenBLAS's matrix product in this precision (`cblas_sgemm`, `cblas_dgemm`), which
  /// ``BLAS/gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` calls.
  static var cblasGemm: CBLASGemm<Self> { get }
  static func exp(_ x: Self) -> Self
  static func log(_ x: Self) -> Self
  /// `g[i] = u[i]·Φ(u[i])`, `Φ(u) = ½(1 + erf(u/√2))` (exact GELU); `g` may be `u`.
  static func gelu(_ u: UnsafePointer<Self>, into g: UnsafeMutablePointer<Self>, count: Int)
  /// `d[i] *= Φ(u[i]) + u[i]·exp(−u[i]²/2)/√(2π)` (GELU′).
  static func geluBackward(
    _ u: UnsafePointer<Self>, gradient d: UnsafeMutablePointer<Self>, count: Int)
  /// Row-wise softmax in place: `p_j = exp(s_j − max s) / Σ exp(s_k − max s)`.
  static func softmaxRows(_ s: UnsafeMutablePointer<Self>, rows: Int, width: Int)
  /// One AdamW update of `count` parameters θ in place, with gradients g and moments m, v:
  /// `θ ← θ·decay`, `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`,
  /// `θ ← θ − stepSize·m / (√v·inverseCorrection2 + ε)` (Sources/Training/AdamW.swift).
  static func adamWUpdate(
    count: Int, parameters: UnsafeMutablePointer<Self>, gradients: UnsafePointer<Self>,
    firstMoment: UnsafeMutablePointer<Self>, secondMoment: UnsafeMutablePointer<Self>,
    _ step: AdamWStep<Self>)
}

/// The coefficients of one AdamW step (``TensorScalar/adamWUpdate(count:parameters:gradients:firstMoment:secondMoment:_:)``).
public struct AdamWStep<Scalar: TensorScalar>: Sendable {
  public var beta1, beta2, stepSize, inverseCorrection2, epsilon: Scalar
  /// What θ is multiplied by first: 1 − η·λ where the parameters decay, else 1.
  public var decay: Scalar

  public init(
    beta1: Scalar, beta2: Scalar, stepSize: Scalar, inverseCorrection2: Scalar, epsilon: Scalar,
    decay: Scalar
  ) {
    (self.beta1, self.beta2, self.stepSize) = (beta1, beta2, stepSize)
    (self.inverseCorrection2, self.epsilon, self.decay) = (inverseCorrection2, epsilon, decay)
  }
}

/// The signature `cblas_sgemm` and `cblas_dgemm` share.
public typealias CBLASGemm<T> = (
  CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, Int32, Int32, Int32, T, UnsafePointer<T>?,
  Int32, UnsafePointer<T>?, Int32, T, UnsafeMutablePointer<T>?, Int32
) -> Void

extension TensorScalar {
  /// Row-major `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op` transposes
  /// when asked: ``BLAS/gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` with flags.
  @inline(__always)
  public static func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
    a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
    beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
  ) {
    BLAS.gemm(
      transposeA ? .transposed : .none, transposeB ? .transposed : .none, m: m, n: n, k: k,
      alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
}

extension Float: TensorScalar {
  @inlinable public static var cblasGemm: CBLASGemm<Float> { cblas_sgemm }
  @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.expf(x) }
  @inline(__always) public static func log(_ x: Float) -> Float { Foundation.logf(x) }

  public static func gelu(
    _ u: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>, count: Int
  ) {
    Kernels.gelu(count: count, u, into: g)
  }

  public static func geluBackward(
    _ u: UnsafePointer<Float>, gradient d: UnsafeMutablePointer<Float>, count: Int
  ) {
    Kernels.geluBackward(count: count, u, gradient: d)
  }

  public static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
    Kernels.softmax(rows: rows, width: width, s)
  }

  /// The vector kernel (`vdb_adamw_update`): Swift's loop compiles to scalar square roots
  /// and divisions, which made AdamW most of a router head's training time.
  public static func adamWUpdate(
    count: Int, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
    firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
    _ step: AdamWStep<Float>
  ) {
    vdb_adamw_update(
      count, parameters, gradients, firstMoment, secondMoment, step.beta1, step.beta2,
      step.stepSize, step.inverseCorrection2, step.epsilon, step.decay)
  }
}

extension Double: TensorScalar {
  @inlinable public static var cblasGemm: CBLASGemm<Double> { cblas_dgemm }
  @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
  @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }

  public static func gelu(
    _ u: UnsafePointer<Double>, into g: UnsafeMutablePointer<Double>, count: Int
  ) {
    let invSqrt2 = 1 / 2.0.squareRoot()
    for i in 0..<count { g[i] = u[i] * 0.5 * (1 + Foundation.erf(u[i] * invSqrt2)) }
  }

  public static func geluBackward(
    _ u: UnsafePointer<Double>, gradient d: UnsafeMutablePointer<Double>, count: Int
  ) {
    let invSqrt2 = 1 / 2.0.squareRoot()
    let invSqrt2Pi = 1 / (2 * Double.pi).squareRoot()
    for i in 0..<count {
      let x = u[i]
      d[i] *=
        0.5 * (1 + Foundation.erf(x * invSqrt2)) + x * Foundation.exp(-0.5 * x * x) * invSqrt2Pi
    }
  }

  public static func softmaxRows(_ s: UnsafeMutablePointer<Double>, rows: Int, width: Int) {
    for row in 0..<rows {
      let si = s + row * width
      var maximum = si[0]
      for j in 1..<width where si[j] > maximum { maximum = si[j] }
      var sum = 0.0
      for j in 0..<width {
        si[j] = Foundation.exp(si[j] - maximum)
        sum += si[j]
      }
      for j in 0..<width { si[j] /= sum }
    }
  }

  public static func adamWUpdate(
    count: Int, parameters theta: UnsafeMutablePointer<Double>, gradients g: UnsafePointer<Double>,
    firstMoment m: UnsafeMutablePointer<Double>, secondMoment v: UnsafeMutablePointer<Double>,
    _ step: AdamWStep<Double>
  ) {
    for i in 0..<count {
      m[i] = step.beta1 * m[i] + (1 - step.beta1) * g[i]
      v[i] = step.beta2 * v[i] + (1 - step.beta2) * g[i] * g[i]
      theta[i] =
        theta[i] * step.decay
        - step.stepSize * m[i] / (v[i].squareRoot() * step.inverseCorrection2 + step.epsilon)
    }
  }
}

extension BLAS {
  /// `C = alpha·op(A)·op(B) + beta·C` as ``TensorScalar/gemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``,
  /// split over the cores: by rows of C when it has more rows than columns,
  /// else by columns. Each thread makes one single-threaded BLAS call on its slice.
  ///
  /// The project runs OpenBLAS with one thread per call and threads itself (the encoder
  /// calls BLAS from several threads at once); OpenBLAS's own pool would also spin between
  /// calls and take the core from the elementwise loops that run in between.
  package static func parallelGemm<S: TensorScalar>(
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
    Parallel.forEachChunk(byRows ? m : n, chunks: chunks) { _, range in
      if byRows {
        // Rows i of op(A) start at a + i·lda, or at column i when A is stored transposed.
        let aSlice = transposeA ? a + range.lowerBound : a + range.lowerBound * lda
        S.gemm(
          transposeA: transposeA, transposeB: transposeB, m: range.count, n: n, k: k,
          alpha: alpha, a: aSlice, lda: lda, b: b, ldb: ldb, beta: beta,
          c: c + range.lowerBound * ldc, ldc: ldc)
      } else {
        // Columns j of op(B) start at column j of B, or at row j when B is stored transposed.
        let bSlice = transposeB ? b + range.lowerBound * ldb : b + range.lowerBound
        S.gemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: range.count, k: k,
          alpha: alpha, a: a, lda: lda, b: bSlice, ldb: ldb, beta: beta,
          c: c + range.lowerBound, ldc: ldc)
      }
    }
  }
}
