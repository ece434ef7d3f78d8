import Foundation

/// Okapi BM25 as Lucene (8 and later) and bm25s compute it:
///
///     score(d, q) = Σ over terms t of q:  w(t) · idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl))
///     idf(t)      = ln(1 + (N − df + 0.5) / (df + 0.5))
///
/// with tf the term's count in d, |d| the document's length in terms, avgdl the mean
/// length, N the number of documents, df the number holding t, and w(t) the term's
/// count in the query. Lucene's (k1 + 1) factor in the numerator is left out (as
/// Lucene 8 does): it scales every score alike and changes no ranking.
public struct BM25: Sendable, Equatable, Codable {
  /// Term-frequency saturation: larger lets repeated terms count for more.
  public var k1: Double
  /// Length normalisation: 0 ignores document length, 1 divides by it fully.
  public var b: Double

  /// Anserini's defaults (k1 = 0.9, b = 0.4), the BM25 of BEIR's published
  /// "flat" baselines: set once for all collections, not tuned to any one.
  public static let defaults = BM25(k1: 0.9, b: 0.4)

  public init(k1: Double, b: Double) {
    self.k1 = k1
    self.b = b
  }

  /// Whether k1 ≥ 0 and 0 ≤ b ≤ 1 (both finite).
  public var isValid: Bool { k1.isFinite && k1 >= 0 && b.isFinite && (0...1).contains(b) }

  public func idf(documents: Int, frequency: Int) -> Double {
    log(1 + (Double(documents) - Double(frequency) + 0.5) / (Double(frequency) + 0.5))
  }

  /// One term's contribution without its idf and query weight.
  public func termScore(frequency: UInt32, length: UInt32, averageLength: Double) -> Double {
    let tf = Double(frequency)
    let norm = averageLength > 0 ? Double(length) / averageLength : 0
    return tf / (tf + k1 * (1 - b + b * norm))
  }

  /// The largest `termScore` of a term whose highest count in any document is
  /// `maxFrequency`: the score at that count and length 0 (scores grow with tf and
  /// shrink with length).
  public func termScoreBound(maxFrequency: UInt32) -> Double {
    termScore(frequency: maxFrequency, length: 0, averageLength: 1)
  }
}
