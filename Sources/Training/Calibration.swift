import Foundation
import Tensor

/// Temperature scaling (Guo et al., 2017): one scalar `T` divides the logits so that the
/// softmax probabilities match how often the top class is right. The class ranking does not
/// change, only the confidence.
public enum TemperatureScaling {
  /// The temperature minimising the negative log-likelihood of `labels` under
  /// `softmax(logits / T)`, for `n×classes` logits. The NLL is convex in `1/T`, so a golden
  /// section search over `1/T ∈ [0.01, 100]` finds the minimum; no examples gives 1.
  public static func fit(logits: [Double], labels: [Int], classes: Int) -> Double {
    guard !labels.isEmpty else { return 1 }
    func nll(_ inverse: Double) -> Double {
      var total = 0.0
      for (i, y) in labels.enumerated() {
        let row = logits[(i * classes)..<((i + 1) * classes)].map { $0 * inverse }
        let top = row.max()!
        let logSum = top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
        total += logSum - row[y]
      }
      return total / Double(labels.count)
    }
    // Golden section on log(1/T): the interval shrinks by 0.618 per step.
    var low = Foundation.log(0.01)
    var high = Foundation.log(100.0)
    let ratio = (5.0.squareRoot() - 1) / 2
    var a = high - ratio * (high - low)
    var b = low + ratio * (high - low)
    var fa = nll(Foundation.exp(a))
    var fb = nll(Foundation.exp(b))
    for _ in 0..<60 {
      if fa <= fb {
        high = b
        b = a
        fb = fa
        a = high - ratio * (high - low)
        fa = nll(Foundation.exp(a))
      } else {
        low = a
        a = b
        fa = fb
        b = low + ratio * (high - low)
        fb = nll(Foundation.exp(b))
      }
    }
    return 1 / Foundation.exp((low + high) / 2)
  }
}

/// Expected calibration error: predictions are put in `bins` equal-width bins by confidence;
/// ECE is `Σ_b (n_b / n) · |accuracy_b − mean confidence_b|`. 0 is perfectly calibrated.
public func expectedCalibrationError(confidences: [Double], correct: [Bool], bins: Int = 10)
  -> Double
{
  precondition(confidences.count == correct.count && bins > 0)
  guard !confidences.isEmpty else { return 0 }
  var count = [Int](repeating: 0, count: bins)
  var confidence = [Double](repeating: 0, count: bins)
  var hits = [Double](repeating: 0, count: bins)
  for (p, ok) in zip(confidences, correct) {
    // Clamped before the conversion, which traps on NaN and on numbers past Int's range.
    let bin = p.isNaN ? 0 : min(bins - 1, Int(min(1, max(0, p)) * Double(bins)))
    count[bin] += 1
    confidence[bin] += p
    hits[bin] += ok ? 1 : 0
  }
  var error = 0.0
  for b in 0..<bins where count[b] > 0 {
    error += abs(hits[b] - confidence[b]) / Double(confidences.count)
  }
  return error
}

/// Accuracy, per-class precision and recall, macro-F1 and the confusion matrix of a
/// classifier's predictions.
public struct ClassificationMetrics: Sendable, Equatable, Codable {
  /// `confusion[true class][predicted class]`: counts.
  public var confusion: [[Int]]
  public var accuracy: Double
  public var precision: [Double]
  public var recall: [Double]
  public var f1: [Double]
  /// The mean F1 over the classes that occur among the labels or the predictions.
  public var macroF1: Double

  public init(labels: [Int], predictions: [Int], classes: Int) {
    precondition(labels.count == predictions.count)
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    for (y, p) in zip(labels, predictions) { confusion[y][p] += 1 }
    self.confusion = confusion
    var precision = [Double](repeating: 0, count: classes)
    var recall = [Double](repeating: 0, count: classes)
    var f1 = [Double](repeating: 0, count: classes)
    var present = 0
    var f1Sum = 0.0
    var correct = 0
    for c in 0..<classes {
      let truePositives = confusion[c][c]
      correct += truePositives
      let predicted = (0..<classes).reduce(0) { $0 + confusion[$1][c] }
      let actual = confusion[c].reduce(0, +)
      precision[c] = predicted > 0 ? Double(truePositives) / Double(predicted) : 0
      recall[c] = actual > 0 ? Double(truePositives) / Double(actual) : 0
      let sum = precision[c] + recall[c]
      f1[c] = sum > 0 ? 2 * precision[c] * recall[c] / sum : 0
      if predicted > 0 || actual > 0 {
        present += 1
        f1Sum += f1[c]
      }
    }
    self.precision = precision
    self.recall = recall
    self.f1 = f1
    macroF1 = present > 0 ? f1Sum / Double(present) : 0
    accuracy = labels.isEmpty ? 0 : Double(correct) / Double(labels.count)
  }

  /// A paired bootstrap of the macro-F1 difference `candidate − current` over the same
  /// examples: the examples are resampled with replacement, both macro-F1s computed on each
  /// resample; the verdict holds the mean difference on the full set and the 95% interval of
  /// the resampled differences (macro-F1 is not a mean over examples, so the retriever
  /// gate's per-query deltas do not apply).
  public static func bootstrapMacroF1(
    labels: [Int], current: [Int], candidate: [Int], classes: Int, resamples: Int = 2000,
    seed: UInt64 = 42
  ) -> PairedBootstrap.Verdict {
    let n = labels.count
    guard n > 0 else { return .init(meanDelta: 0, lower: 0, upper: 0, queries: 0) }
    func macroF1(_ predictions: [Int], _ indices: [Int]) -> Double {
      ClassificationMetrics(
        labels: indices.map { labels[$0] }, predictions: indices.map { predictions[$0] },
        classes: classes
      ).macroF1
    }
    let all = Array(0..<n)
    var random = Xoshiro256(seed: seed)
    var deltas: [Double] = []
    deltas.reserveCapacity(resamples)
    for _ in 0..<resamples {
      let sample = (0..<n).map { _ in Int(random.next() % UInt64(n)) }
      deltas.append(macroF1(candidate, sample) - macroF1(current, sample))
    }
    deltas.sort()
    func percentile(_ q: Double) -> Double {
      let position = q * Double(resamples - 1)
      let low = Int(position.rounded(.down))
      let high = min(low + 1, resamples - 1)
      return deltas[low] + (deltas[high] - deltas[low]) * (position - Double(low))
    }
    return .init(
      meanDelta: macroF1(candidate, all) - macroF1(current, all), lower: percentile(0.025),
      upper: percentile(0.975), queries: n)
  }
}
