/// How a hybrid query merges the dense and the keyword lists into one.
public enum Fusion: Sendable, Equatable {
  /// Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009): a document scores
  /// Σ 1 / (60 + rank) over the lists that hold it (rank from 1). Needs no weight and
  /// ignores the score scales.
  case reciprocalRank
  /// Convex combination of min-max normalised scores (Bruch, Gai and Ingber, 2023):
  /// α · dense + (1 − α) · keyword, where each list's scores are mapped to [0, 1]
  /// by its own minimum and maximum and a list that misses the document gives 0.
  case convex(alpha: Double)

  /// RRF's rank constant, as in the paper and in most systems since.
  public static let rankConstant = 60.0

  /// Merges two ranked lists (best first; documents unique within a list) into one,
  /// best first; ties go to the lower document number.
  public func fuse(dense: [ScoredDocument], keyword: [ScoredDocument]) -> [ScoredDocument] {
    var fused: [UInt32: Double] = [:]
    switch self {
    case .reciprocalRank:
      for list in [dense, keyword] {
        for (rank, hit) in list.enumerated() {
          fused[hit.document, default: 0] += 1 / (Fusion.rankConstant + Double(rank + 1))
        }
      }
    case .convex(let alpha):
      for (list, weight) in [(dense, alpha), (keyword, 1 - alpha)] {
        for (hit, normalised) in zip(list, Fusion.normalise(list.map(\.score))) {
          fused[hit.document, default: 0] += weight * normalised
        }
      }
    }
    return fused.map { ScoredDocument(document: $0.key, score: $0.value) }
      .sorted { $0.ranks(before: $1) }
  }

  /// Min-max normalisation to [0, 1]; all-equal scores map to 1 (they are all the best).
  static func normalise(_ scores: [Double]) -> [Double] {
    guard let low = scores.min(), let high = scores.max() else { return [] }
    guard high > low else { return scores.map { _ in 1 } }
    return scores.map { ($0 - low) / (high - low) }
  }
}
