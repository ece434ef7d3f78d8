import Foundation
import Training

/// How the active version does on a labelled file (`vdb route eval`).
public struct RouterEvaluation: Codable, Sendable {
  /// One path's figures on the file.
  public struct PathMetrics: Codable, Sendable {
    /// The path's name (JSON `path`).
    public var path: String
    /// Of the inputs routed to the path, the share whose best path it is (JSON `precision`).
    public var precision: Double
    /// Of the inputs whose best path it is, the share routed to it (JSON `recall`).
    public var recall: Double
    /// Inputs whose best path this is.
    public var support: Int
  }
  /// The version evaluated: the active one (JSON `version`).
  public var version: Int
  /// Inputs with a best path (the classifier's figures are over these).
  public var examples: Int
  /// Of the classifier's most probable path against the best path.
  public var accuracy: Double
  /// The unweighted mean over paths of F1, the harmonic mean of precision and recall
  /// (JSON `macro_f1`).
  public var macroF1: Double
  /// Each path's figures, in class order (JSON `per_path`).
  public var perPath: [PathMetrics]
  /// The class order of `confusion`.
  public var paths: [String]
  /// `confusion[best][predicted]`.
  public var confusion: [[Int]]
  /// At the version's threshold, over all inputs of the file: the share escalated and
  /// the share whose chosen path is good.
  public var threshold: Double
  /// Share of the file's inputs sent to the escalation path (JSON `escalation`).
  public var escalation: Double
  /// Share of the file's inputs whose chosen path is good (JSON `quality`).
  public var quality: Double

  enum CodingKeys: String, CodingKey {
    case version, examples, accuracy
    case macroF1 = "macro_f1"
    case perPath = "per_path"
    case paths, confusion, threshold, escalation, quality
  }
}

/// What the log says about the router's escalations (`vdb route diagnose`).
public struct RouterDiagnosis: Codable, Sendable {
  /// Logged decisions, and those with at least one outcome attached.
  public var decisions: Int
  /// Logged decisions with at least one outcome attached (JSON `judged`).
  public var judged: Int
  /// Logged decisions sent to the escalation path (JSON `escalated`).
  public var escalated: Int
  /// Escalated decisions where a path other than the escalation path was good: the cheap
  /// path would have done (share of judged decisions).
  public var overEscalation: Double
  /// Decisions not escalated whose chosen path was bad: the router should have escalated
  /// (share of judged decisions).
  public var underEscalation: Double
  /// Decisions not escalated whose chosen path was good.
  public var correct: Double

  enum CodingKeys: String, CodingKey {
    case decisions, judged, escalated
    case overEscalation = "over_escalation"
    case underEscalation = "under_escalation"
    case correct
  }
}

extension Router {
  /// Evaluates the active version on a file in the import format (lines with the best path,
  /// or outcomes; merged by input as the log is). Nothing is logged.
  ///
  /// - Throws: what `importJSONL` throws for a bad file, and `.invalidInput` when no input
  ///   of the file has a best path; `.routerNotAvailable` without an active version;
  ///   `.routerNotFound` when the router was deleted.
  public func evaluate(path file: String) throws -> RouterEvaluation {
    let examples = merge(try entries(fromJSONL: file))
    guard examples.contains(where: { $0.best != nil }) else {
      throw VectorDBError.invalidInput(
        source: file, line: nil, reason: "no input has a best path (a label or a good outcome)")
    }
    let served = try activeVersion()
    let probabilities = served.probabilities(examples.map(\.input))
    let scored = try zip(examples, probabilities).map { example, row in
      ScoredExample(
        label: try example.best.map { try pathIndex($0, source: file) } ?? -1,
        outcomes: Dictionary(
          uniqueKeysWithValues: try example.outcomes.map {
            (try pathIndex($0.key, source: file), $0.value)
          }),
        probabilities: row)
    }
    let labelled = scored.filter { $0.label >= 0 }
    let metrics = ClassificationMetrics(
      labels: labelled.map(\.label), predictions: labelled.map { Self.argmax($0.probabilities) },
      classes: paths.count)
    let atThreshold = point(scored, threshold: served.info.threshold)
    return RouterEvaluation(
      version: served.info.version, examples: labelled.count, accuracy: metrics.accuracy,
      macroF1: metrics.macroF1,
      perPath: paths.indices.map {
        .init(
          path: paths[$0].name, precision: metrics.precision[$0], recall: metrics.recall[$0],
          support: metrics.confusion[$0].reduce(0, +))
      }, paths: paths.map(\.name), confusion: metrics.confusion,
      threshold: served.info.threshold, escalation: atThreshold.escalation,
      quality: atThreshold.quality)
  }

  /// Over-escalation and under-escalation in the log: the logged decisions that have
  /// outcomes attached, as shares of those.
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged` (an unreadable entry).
  public func diagnose() throws -> RouterDiagnosis {
    try database.flushLog()
    let store = self.store
    let id = self.id
    var diagnosis = RouterDiagnosis(
      decisions: 0, judged: 0, escalated: 0, overEscalation: 0, underEscalation: 0, correct: 0)
    try storage {
      try database.environment.read { txn in
        try store.forEachEntry(router: id, in: txn) { entry in
          guard let decision = entry.decision else { return }
          diagnosis.decisions += 1
          guard !entry.outcomes.isEmpty else { return }
          diagnosis.judged += 1
          if decision.escalated {
            diagnosis.escalated += 1
            if entry.outcomes.contains(where: { $0.key != escalation && $0.value == .good }) {
              diagnosis.overEscalation += 1
            }
          } else if entry.outcomes[decision.path] == .bad {
            diagnosis.underEscalation += 1
          } else if entry.outcomes[decision.path] == .good {
            diagnosis.correct += 1
          }
        }
      }
    }
    let judged = Double(max(1, diagnosis.judged))
    diagnosis.overEscalation /= judged
    diagnosis.underEscalation /= judged
    diagnosis.correct /= judged
    return diagnosis
  }
}
