import Foundation

/// A held-out (or evaluated) example with what the threshold search needs.
struct ScoredExample {
  var label: Int
  var outcomes: [Int: RouteOutcome]
  var probabilities: [Double]
}

/// How a version's probabilities become a path (serving, `evaluate`, and the threshold
/// stage of `train`): the decision at a threshold, its escalation, quality and cost, and
/// the threshold that meets a target.
extension Router {
  /// The index of the largest of `values` (the most probable path of a row).
  static func argmax(_ values: [Double]) -> Int {
    values.indices.max { values[$0] < values[$1] }!
  }

  /// Whether path `index` serves `example` well: it is the best path, an outcome says it is
  /// good, or it is the escalation path and no outcome says it is bad.
  func isGood(_ index: Int, for example: ScoredExample) -> Bool {
    if index == example.label { return true }
    if let outcome = example.outcomes[index] { return outcome == .good }
    return paths[index].name == escalation
  }

  /// The escalation path's position in `paths`; nil without one.
  var escalationIndex: Int? { escalation.flatMap { name in paths.firstIndex { $0.name == name } } }

  /// The path a request takes. Without an escalation path: the most probable one. With one:
  /// the most probable of the other paths when its probability (the confidence) reaches
  /// `threshold`, else the escalation path. Threshold 0 never escalates, above 1 always.
  func decide(_ probabilities: [Double], threshold: Double) -> (
    path: Int, confidence: Double, escalated: Bool
  ) {
    guard let escalation = escalationIndex else {
      let top = Self.argmax(probabilities)
      return (top, probabilities[top], false)
    }
    let best = probabilities.indices.filter { $0 != escalation }.max {
      probabilities[$0] < probabilities[$1]
    }!
    let confidence = probabilities[best]
    return confidence < threshold
      ? (escalation, confidence, true) : (best, confidence, false)
  }

  /// Escalation share, quality and mean cost of `threshold` on `examples`.
  func point(_ examples: [ScoredExample], threshold: Double) -> CostQualityPoint {
    var escalated = 0
    var good = 0
    var cost = 0.0
    for example in examples {
      let decision = decide(example.probabilities, threshold: threshold)
      if decision.escalated { escalated += 1 }
      if isGood(decision.path, for: example) { good += 1 }
      cost += paths[decision.path].cost ?? .nan
    }
    let n = Double(max(1, examples.count))
    return CostQualityPoint(
      threshold: threshold, escalation: Double(escalated) / n, quality: Double(good) / n,
      cost: cost.isNaN ? nil : cost / n)
  }

  /// From this probability of the escalation path the classifier is taken to be sure a
  /// request needs it (`overriddenEscalationWarning`).
  static let sureEscalation = 0.9

  /// A warning when `threshold`, chosen for the options' target, sends to another path
  /// held-out inputs the classifier gives to the escalation path with probability at least
  /// `sureEscalation`; nil when it sends none. That is the rule (a low `maxEscalation` can
  /// leave a threshold near 0), but the report's figures alone do not tell the admin. Without
  /// a target there is nothing to warn of: such an input's confidence is at most 0.1, below
  /// the threshold 0.5, so it escalates.
  func overriddenEscalationWarning(
    _ examples: [ScoredExample], threshold: Double, options: RouterTrainingOptions
  ) -> String? {
    guard let escalation = escalationIndex else { return nil }
    let target: String
    if let maxEscalation = options.maxEscalation {
      target = "--max-escalation \(maxEscalation)"
    } else if let minQuality = options.minQuality {
      target = "--min-quality \(minQuality)"
    } else {
      return nil
    }
    let sure = examples.filter { $0.probabilities[escalation] >= Self.sureEscalation }
    let overridden = sure.map { decide($0.probabilities, threshold: threshold) }
      .filter { !$0.escalated }
    guard let highest = overridden.map(\.confidence).max() else { return nil }
    // The lowest threshold that escalates them all: what the admin's target would have to allow.
    let all = point(examples, threshold: highest.nextUp)
    func f(_ x: Double) -> String { String(format: "%.3f", x) }
    return "at threshold \(f(threshold)) (chosen for \(target)) the router sends"
      + " \(overridden.count) of the \(sure.count) held-out inputs it gives to"
      + " \"\(paths[escalation].name)\" with probability ≥ \(Self.sureEscalation) to another path;"
      + " escalating them all takes a threshold above \(f(highest)), which escalates"
      + " \(f(all.escalation)) of the held-out inputs at quality \(f(all.quality))"
  }

  /// The threshold meeting the options' target on `examples`: for `maxEscalation`, the one
  /// with the best quality (then the highest) among those escalating at most that share; for
  /// `minQuality`, the
  /// one escalating least among those reaching that quality; without a target, 0.5 (with an
  /// escalation path: escalate when no other path is more likely right than not).
  func chooseThreshold(_ examples: [ScoredExample], options: RouterTrainingOptions) throws
    -> Double
  {
    guard options.maxEscalation != nil || options.minQuality != nil else {
      return escalation == nil ? 0 : 0.5
    }
    // One threshold per distinct set of decisions: 0 (never escalate), the midpoints between
    // consecutive confidences (robust to the noise of a small split), and just above 1.
    let confidences = Set(examples.map { decide($0.probabilities, threshold: 0).confidence })
      .sorted()
    let candidates =
      [0.0] + zip(confidences, confidences.dropFirst()).map { ($0 + $1) / 2 } + [Double(1).nextUp]
    let points = candidates.map { point(examples, threshold: $0) }
    func describe(_ p: CostQualityPoint) -> String {
      String(
        format: "escalation %.3f, quality %.3f at threshold %.3f", p.escalation, p.quality,
        p.threshold)
    }
    if let target = options.maxEscalation {
      let feasible = points.filter { $0.escalation <= target }
      // Equal quality: the higher threshold, which uses the escalation budget.
      guard
        let best = feasible.max(by: {
          ($0.quality, $0.threshold) < ($1.quality, $1.threshold)
        })
      else {
        let closest = points.min { $0.escalation < $1.escalation }!
        throw VectorDBError.invalidInput(
          source: "--max-escalation", line: nil,
          reason:
            "no threshold escalates at most \(target) of the held-out inputs; the closest is \(describe(closest))"
        )
      }
      return best.threshold
    }
    let target = options.minQuality!
    guard
      let best = points.filter({ $0.quality >= target }).min(by: {
        ($0.escalation, $0.threshold) < ($1.escalation, $1.threshold)
      })
    else {
      let closest = points.max { ($0.quality, -$0.escalation) < ($1.quality, -$1.escalation) }!
      throw VectorDBError.invalidInput(
        source: "--min-quality", line: nil,
        reason:
          "no threshold reaches quality \(target) on the held-out inputs; the closest is \(describe(closest))"
      )
    }
    return best.threshold
  }
}
