import Foundation
import Tensor

/// The promotion gate's noise test: a paired bootstrap over per-query metric differences.
///
/// Given, for the same held-out queries, the current model's and the candidate's nDCG@10,
/// the deltas `δ_i = candidate_i − current_i` are resampled with replacement `resamples` times;
/// the 2.5th and 97.5th percentiles of the resampled means bound a 95% interval of the mean
/// improvement. The candidate is promoted only when the lower bound is above zero: the gain is
/// larger than what re-drawing the same number of queries would produce by chance.
///
/// ```swift
/// let test = PairedBootstrap(resamples: 10_000, seed: 42)
/// let verdict = test.compare(current: before, candidate: after)
/// verdict.improves        // lower bound of the 95% interval > 0
/// verdict.reason          // "mean ΔnDCG@10 +0.021, 95% interval [+0.008, +0.034] over 160 queries"
/// ```
public struct PairedBootstrap: Sendable, Equatable, Codable {
  public var resamples: Int
  public var seed: UInt64
  /// Two-sided confidence level of the interval.
  public var confidence: Double

  public init(resamples: Int = 10_000, seed: UInt64 = 42, confidence: Double = 0.95) {
    precondition(resamples > 0, "resamples must be positive")
    precondition(confidence > 0 && confidence < 1, "confidence must be in (0, 1)")
    self.resamples = resamples
    self.seed = seed
    self.confidence = confidence
  }

  /// The outcome of a comparison.
  public struct Verdict: Sendable, Equatable, Codable {
    public var meanDelta: Double
    public var lower: Double
    public var upper: Double
    public var queries: Int
    /// True when the whole interval lies above zero.
    public var improves: Bool { lower > 0 }
    /// One line for people: the mean change and its interval.
    public var reason: String {
      func signed(_ x: Double) -> String {
        (x >= 0 ? "+" : "") + String(format: "%.4f", x)
      }
      return "mean delta \(signed(meanDelta)), 95% interval [\(signed(lower)), \(signed(upper))]"
        + " over \(queries) queries"
    }
  }

  /// Compares paired per-query scores (`current[i]` and `candidate[i]` belong to one query).
  public func compare(current: [Double], candidate: [Double]) -> Verdict {
    precondition(current.count == candidate.count, "paired scores must have equal counts")
    let deltas = zip(candidate, current).map { $0 - $1 }
    let n = deltas.count
    guard n > 0 else { return Verdict(meanDelta: 0, lower: 0, upper: 0, queries: 0) }
    var random = Xoshiro256(seed: seed)
    var means = [Double](repeating: 0, count: resamples)
    for r in 0..<resamples {
      var sum = 0.0
      for _ in 0..<n { sum += deltas[Int(random.next() % UInt64(n))] }
      means[r] = sum / Double(n)
    }
    means.sort()
    let tail = (1 - confidence) / 2
    func percentile(_ q: Double) -> Double {
      // Linear interpolation between order statistics (NumPy's default).
      let position = q * Double(resamples - 1)
      let low = Int(position.rounded(.down))
      let high = min(low + 1, resamples - 1)
      return means[low] + (means[high] - means[low]) * (position - Double(low))
    }
    return Verdict(
      meanDelta: deltas.reduce(0, +) / Double(n), lower: percentile(tail),
      upper: percentile(1 - tail), queries: n)
  }
}
