import Embedding
import Foundation
import LMDB
import Training

/// Where one request goes, as `Router.route` decides it.
public struct RouteDecision: Codable, Equatable, Sendable {
  /// The path chosen: without an escalation path, the most probable one; with one, the
  /// most probable of the other paths when its probability (`confidence`) reaches the
  /// threshold, else the escalation path (docs/routing.md, "Thresholds").
  public var path: String
  /// The calibrated probability of the most probable path other than the escalation path
  /// (the one the threshold is compared with); of the most probable path without one.
  public var confidence: Double
  /// Calibrated probabilities of every path.
  public var probabilities: [String: Double]
  /// Whether the request was sent to the escalation path for lack of confidence.
  public var escalated: Bool
  /// The log entry to attach an outcome to (nil when not logged).
  public var logID: UInt64?
  /// The router version that decided.
  public var version: Int

  enum CodingKeys: String, CodingKey {
    case path, confidence, probabilities, escalated
    case logID = "log_id"
    case version
  }
}

/// A stored version with its head and encoder, ready to classify.
struct ServedVersion {
  var info: RouterVersion
  var head: RouterHead
  /// The database's model version `info.model`, with a LoRA-tier version's adapters merged
  /// into its weights (so it runs exactly as fast as the encoder alone).
  var encoder: SentenceEncoder
  /// Whether `encoder` has a LoRA-tier version's adapters merged in; if not, it embeds as
  /// model `info.model` does.
  var tuned: Bool

  /// Calibrated class probabilities of each input.
  func probabilities(_ inputs: [String]) -> [[Double]] {
    probabilities(embedded: encoder.embedCoalesced(inputs))
  }

  /// Calibrated class probabilities of inputs already embedded by `encoder`.
  func probabilities(embedded vectors: [[Float]]) -> [[Double]] {
    let logits = head.logits(vectors.flatMap { $0 }).map(Double.init)
    let classes = head.classes
    return stride(from: 0, to: logits.count, by: classes).map {
      SoftmaxClassifier<Double>.softmax(
        Array(logits[$0..<($0 + classes)]), classes: classes, temperature: info.temperature)
    }
  }
}

extension Router {
  /// Stored version `version`, its head and its encoder (nil when there is no such version).
  func loadVersion(_ version: Int) throws -> ServedVersion? {
    let store = self.store
    let id = self.id
    let path = database.path
    let stored = try storage {
      try database.environment.read { txn -> (RouterVersion, RouterHead)? in
        guard let info = try store.version(router: id, version, in: txn) else { return nil }
        if let expected = info.checksum,
          let stored = try store.storedChecksum(router: id, version: version, in: txn),
          stored != expected
        {
          throw VectorDBError.damaged(
            path: path, detail: "router \"\(name)\" version \(version) fails its checksum")
        }
        guard let parameters = try store.parameters(router: id, version: version, in: txn),
          let head = try? RouterHead(
            classifier: info.classifier, classes: info.paths.count, parameters: parameters)
        else {
          throw VectorDBError.damaged(
            path: path, detail: "router \"\(name)\" version \(version) has no valid head")
        }
        return (info, head)
      }
    }
    guard let (info, head) = stored else { return nil }
    let base = try database.encoder(version: info.model)
    guard head.dimension == base.dimension else {
      throw VectorDBError.damaged(
        path: path,
        detail:
          "router \"\(name)\" version \(version) reads \(head.dimension)-dimensional embeddings;"
          + " its model v\(info.model) makes \(base.dimension)")
    }
    let adapters = try storage {
      try database.environment.read {
        try store.adapters(router: id, version: version, config: base.config, path: path, in: $0)
      }
    }
    guard let adapters else {
      return ServedVersion(info: info, head: head, encoder: base, tuned: false)
    }
    let merged = try SentenceEncoder(
      trained: adapters.merged(into: try EncoderParameters(base)), like: base)
    return ServedVersion(info: info, head: head, encoder: merged, tuned: true)
  }

  /// The version that serves now.
  ///
  /// - Throws: `VectorDBError.routerNotAvailable` when none has been trained and activated.
  func activeVersion() throws -> ServedVersion {
    let record = try storage { try database.environment.read { try self.storedRecord(in: $0) } }
    guard let active = record.active else {
      throw VectorDBError.routerNotAvailable(
        router: name,
        reason: "has no active version yet: train one with `vdb route train -r \(name)`")
    }
    if let cached = versionCache.value(active) { return cached }
    guard let version = try loadVersion(active) else {
      throw VectorDBError.damaged(
        path: database.path, detail: "router \"\(name)\" has no version \(active)")
    }
    versionCache.set(active, version)
    return version
  }

  /// Decides the path of each input, in one batch through the encoder. Each decision is
  /// logged unless `log` is false, so an outcome can be attached to it later by its
  /// `log_id`; the entries are committed in the background (see `LogWriter`), so routing
  /// never waits for the writer lock nor pays an fsync. A log that cannot be written (a
  /// full disk) leaves the ids nil and `Database.flushLog()` throws why.
  ///
  /// - Throws: `VectorDBError.routerNotAvailable` when the router has no active version;
  ///   `.invalidInput` for an empty input (nothing is logged then); `.routerNotFound` when
  ///   the router was deleted.
  public func route(_ inputs: [String], log: Bool = true) throws -> [RouteDecision] {
    for (index, input) in inputs.enumerated()
    where input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
      throw VectorDBError.invalidInput(
        source: "input \(index + 1)", line: nil, reason: "the input is empty")
    }
    guard !inputs.isEmpty else { return [] }
    let served = try activeVersion()
    let probabilities = served.probabilities(inputs)
    var decisions = probabilities.map { row -> RouteDecision in
      let (path, confidence, escalated) = decide(row, threshold: served.info.threshold)
      return RouteDecision(
        path: served.info.paths[path], confidence: confidence,
        probabilities: Dictionary(uniqueKeysWithValues: zip(served.info.paths, row)),
        escalated: escalated, logID: nil, version: served.info.version)
    }
    guard log else { return decisions }
    let now = Date()
    let entries = zip(inputs, decisions).map { input, decision in
      RouteLogEntry(
        logID: 0, time: now, input: input, label: nil, outcomes: [:],
        decision: .init(
          path: decision.path, confidence: decision.confidence, escalated: decision.escalated,
          version: decision.version))
    }
    let id = self.id
    if let ids = database.routeLogWriter.append(entries.map { (id, $0) }) {
      for index in decisions.indices { decisions[index].logID = ids[index] }
    }
    return decisions
  }

  // MARK: Versions

  /// Every version, oldest first, and which one serves.
  ///
  /// - Throws: `VectorDBError.routerNotFound` when the router was deleted; `.storage`,
  ///   `.damaged` (an unreadable version).
  public func versions() throws -> (versions: [RouterVersion], active: Int?) {
    let store = self.store
    let id = self.id
    return try storage {
      try database.environment.read { txn in
        let record = try self.storedRecord(in: txn)
        let versions = try (1..<max(1, record.nextVersion)).compactMap {
          try store.version(router: id, $0, in: txn)
        }
        return (versions, record.active)
      }
    }
  }

  /// Makes `version` serve (a rejected one too: the admin overrides the gate). The
  /// version already serving stays as it is (a rollback then goes to the one before).
  ///
  /// - Throws: `VectorDBError.invalidInput` for an unknown version;
  ///   `.routerVersionWithoutWeights` for a rejected LoRA-tier version, whose weights were
  ///   not kept; `.routerNotFound` when the router was deleted.
  public func activate(version: Int) throws {
    try changeHistory { record, store, txn in
      guard var info = try store.version(router: record.id, version, in: txn) else {
        throw VectorDBError.invalidInput(
          source: "router \"\(name)\"", line: nil, reason: "no version \(version)")
      }
      guard try store.parameters(router: record.id, version: version, in: txn) != nil else {
        throw VectorDBError.routerVersionWithoutWeights(router: name, version: version)
      }
      info.state = .ready
      try store.put(info, router: record.id, in: txn)
      if record.history.last != version { record.history.append(version) }
    }
  }

  /// Undoes the last activation: the version that served before serves again. Returns it.
  ///
  /// - Throws: `VectorDBError.routerNotAvailable` when fewer than two versions were
  ///   activated; `.routerNotFound` when the router was deleted.
  @discardableResult
  public func rollback() throws -> Int {
    try changeHistory { record, _, _ in
      guard record.history.count >= 2 else {
        throw VectorDBError.routerNotAvailable(
          router: name, reason: "has no earlier version to roll back to")
      }
      record.history.removeLast()
    }
    return try versions().active!
  }

  private func changeHistory(
    _ body: (inout RouterRecord, RouterStore, WriteTransaction) throws -> Void
  ) throws {
    let store = self.store
    try storage {
      try database.environment.write { txn in
        var record = try self.storedRecord(in: txn)
        try body(&record, store, txn)
        try store.put(record, in: txn)
      }
    }
  }
}
