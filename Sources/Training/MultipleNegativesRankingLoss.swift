import Tensor

/// Multiple-negatives ranking loss (sentence-transformers `MultipleNegativesRankingLoss`, the
/// InfoNCE objective of DPR): each query must score its own positive above every other document
/// in the batch — the other queries' positives and all hard negatives.
///
/// With `B` queries `q_i`, documents `d_j` (`j < B` the positives, `d_i` paired with `q_i`,
/// then any number of hard negatives), all L2-normalised, and scale `s` (20):
///
///     S_ij = s · q_i·d_j                                   (cosine × scale)
///     L    = (1/B) Σ_i [ log Σ_j exp(S_ij) − S_ii ]         (cross-entropy, target j = i)
///
/// and, with `P = softmax` of each row of `S` and `Y_ij = [i = j]`,
///
///     ∂L/∂S_ij = (P_ij − Y_ij) / B
///     ∂L/∂q_i  = s · Σ_j ∂L/∂S_ij · d_j
///     ∂L/∂d_j  = s · Σ_i ∂L/∂S_ij · q_i
///
/// These are gradients with respect to the normalised vectors; sentence-transformers' `cos_sim`
/// normalises once more, whose Jacobian at a unit vector `e` is the projection `I − eeᵀ`, which
/// the encoder's own normalisation backward applies anyway — so the results agree.
///
/// ```swift
/// let loss = MultipleNegativesRankingLoss()
/// let result = loss.evaluate(queries: q, documents: d, dimension: 384)
/// result.loss; result.queryGradient; result.documentGradient
/// ```
public struct MultipleNegativesRankingLoss: Sendable, Equatable, Codable {
  /// Multiplies the cosine similarities before the softmax (an inverse temperature).
  public var scale: Double

  public init(scale: Double = 20) {
    self.scale = scale
  }

  /// The loss and its gradients for one batch.
  public struct Result<Scalar: TensorScalar> {
    /// Mean cross-entropy over the queries.
    public var loss: Scalar
    /// ∂L/∂q, one row per query.
    public var queryGradient: [Scalar]
    /// ∂L/∂d, one row per document (positives first, as given).
    public var documentGradient: [Scalar]
  }

  /// Computes the loss for `queries` (`B` rows of `dimension` values) against `documents`
  /// (at least `B` rows: row `i < B` is query `i`'s positive, any further rows are negatives).
  public func evaluate<Scalar: TensorScalar>(
    queries: [Scalar], documents: [Scalar], dimension: Int
  ) -> Result<Scalar> {
    precondition(dimension > 0 && queries.count % dimension == 0, "ragged query matrix")
    precondition(documents.count % dimension == 0, "ragged document matrix")
    let b = queries.count / dimension
    let m = documents.count / dimension
    precondition(b > 0 && m >= b, "need at least one query and a positive for each")
    let s = Scalar(scale)
    var scores = [Scalar](repeating: 0, count: b * m)
    queries.withUnsafeBufferPointer { q in
      documents.withUnsafeBufferPointer { d in
        scores.withUnsafeMutableBufferPointer { c in
          BLAS.parallelGemm(
            transposeA: false, transposeB: true, m: b, n: m, k: dimension, alpha: s,
            a: q.baseAddress!, lda: dimension, b: d.baseAddress!, ldb: dimension, beta: 0,
            c: c.baseAddress!, ldc: m)
        }
      }
    }
    // Row softmax, cross-entropy, and ∂L/∂S in place of the scores.
    var loss: Scalar = 0
    let inverseB = 1 / Scalar(b)
    for i in 0..<b {
      let row = i * m
      var maximum = scores[row]
      for j in 1..<m where scores[row + j] > maximum { maximum = scores[row + j] }
      var sum: Scalar = 0
      for j in 0..<m { sum += Scalar.exp(scores[row + j] - maximum) }
      let logSum = maximum + Scalar.log(sum)
      loss += logSum - scores[row + i]
      for j in 0..<m {
        let probability = Scalar.exp(scores[row + j] - logSum)
        scores[row + j] = (probability - (j == i ? 1 : 0)) * inverseB
      }
    }
    var queryGradient = [Scalar](repeating: 0, count: b * dimension)
    var documentGradient = [Scalar](repeating: 0, count: m * dimension)
    scores.withUnsafeBufferPointer { g in
      queries.withUnsafeBufferPointer { q in
        documents.withUnsafeBufferPointer { d in
          queryGradient.withUnsafeMutableBufferPointer { dq in
            BLAS.parallelGemm(
              transposeA: false, transposeB: false, m: b, n: dimension, k: m, alpha: s,
              a: g.baseAddress!, lda: m, b: d.baseAddress!, ldb: dimension, beta: 0,
              c: dq.baseAddress!, ldc: dimension)
          }
          documentGradient.withUnsafeMutableBufferPointer { dd in
            BLAS.parallelGemm(
              transposeA: true, transposeB: false, m: m, n: dimension, k: b, alpha: s,
              a: g.baseAddress!, lda: m, b: q.baseAddress!, ldb: dimension, beta: 0,
              c: dd.baseAddress!, ldc: dimension)
          }
        }
      }
    }
    return Result(
      loss: loss * inverseB, queryGradient: queryGradient, documentGradient: documentGradient)
  }
}
