import Tensor

/// The query-side adapter tier: a `d×d` matrix `W`, initialised to the identity, applied to
/// query embeddings only — `a = Wq / ‖Wq‖` — and trained with the ranking loss against frozen
/// document vectors. Documents need no re-embedding, so switching to an adapter is instant.
///
/// Backward, for `u = Wq` and `a = u/‖u‖` with upstream gradient `∂L/∂a`:
///
///     ∂L/∂u = (∂L/∂a − a·(a·∂L/∂a)) / ‖u‖
///     ∂L/∂W = Σ_queries ∂L/∂u · qᵀ
///
/// ```swift
/// var adapter = QueryAdapter<Float>(dimension: 384)
/// let adapted = adapter.apply(to: queryVectors)   // rows stay unit length
/// ```
public struct QueryAdapter<Scalar: TensorScalar>: Sendable, Equatable, Codable {
  public let dimension: Int
  /// The map, row-major `[out, in]`.
  public var matrix: [Scalar]

  /// The identity map.
  public init(dimension: Int) {
    precondition(dimension > 0, "dimension must be positive")
    self.dimension = dimension
    matrix = [Scalar](repeating: 0, count: dimension * dimension)
    for i in 0..<dimension { matrix[i * dimension + i] = 1 }
  }

  /// A map from stored values; `matrix` must hold `dimension²` values.
  public init(dimension: Int, matrix: [Scalar]) throws(TrainingError) {
    guard dimension > 0, matrix.count == dimension * dimension else {
      throw .badInput(
        "adapter matrix has \(matrix.count) values, expected \(dimension)² = \(dimension * dimension)"
      )
    }
    self.dimension = dimension
    self.matrix = matrix
  }

  /// The adapter's output with what its backward pass needs.
  public struct Pass {
    /// The unit-length adapted queries `a`.
    public var adapted: [Scalar]
    /// `‖Wq‖` per query.
    var norms: [Scalar]
  }

  /// `a = Wq/‖Wq‖` for each row of `queries`.
  public func forward(_ queries: [Scalar]) -> Pass {
    let d = dimension
    precondition(queries.count % d == 0, "query matrix is not a multiple of \(d) wide")
    let rows = queries.count / d
    var out = [Scalar](repeating: 0, count: queries.count)
    queries.withUnsafeBufferPointer { q in
      matrix.withUnsafeBufferPointer { w in
        out.withUnsafeMutableBufferPointer { u in
          BLAS.parallelGemm(
            transposeA: false, transposeB: true, m: rows, n: d, k: d, alpha: 1,
            a: q.baseAddress!, lda: d, b: w.baseAddress!, ldb: d, beta: 0, c: u.baseAddress!,
            ldc: d)
        }
      }
    }
    var norms = [Scalar](repeating: 0, count: rows)
    for r in 0..<rows {
      var squares: Scalar = 0
      for j in 0..<d { squares += out[r * d + j] * out[r * d + j] }
      norms[r] = max(squares.squareRoot(), 1e-12)
      for j in 0..<d { out[r * d + j] /= norms[r] }
    }
    return Pass(adapted: out, norms: norms)
  }

  /// The adapted, unit-length queries.
  public func apply(to queries: [Scalar]) -> [Scalar] { forward(queries).adapted }

  /// The adapted, unit-length vectors, one per row.
  public func apply(to rows: [[Scalar]]) -> [[Scalar]] {
    let adapted = apply(to: rows.flatMap { $0 })
    return rows.indices.map { Array(adapted[$0 * dimension..<($0 + 1) * dimension]) }
  }

  /// `∂L/∂W` given the queries, their pass and `∂L/∂a`.
  public func backward(queries: [Scalar], pass: Pass, adaptedGradient: [Scalar]) -> [Scalar] {
    let d = dimension
    let rows = queries.count / d
    var du = adaptedGradient
    for r in 0..<rows {
      var dot: Scalar = 0
      for j in 0..<d { dot += pass.adapted[r * d + j] * adaptedGradient[r * d + j] }
      for j in 0..<d {
        du[r * d + j] = (adaptedGradient[r * d + j] - pass.adapted[r * d + j] * dot) / pass.norms[r]
      }
    }
    var gradient = [Scalar](repeating: 0, count: d * d)
    du.withUnsafeBufferPointer { g in
      queries.withUnsafeBufferPointer { q in
        gradient.withUnsafeMutableBufferPointer { dw in
          BLAS.parallelGemm(
            transposeA: true, transposeB: false, m: d, n: d, k: rows, alpha: 1,
            a: g.baseAddress!, lda: d, b: q.baseAddress!, ldb: d, beta: 0, c: dw.baseAddress!,
            ldc: d)
        }
      }
    }
    return gradient
  }
}
