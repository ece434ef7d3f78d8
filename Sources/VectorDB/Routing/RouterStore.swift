import Embedding
import Foundation
import LMDB
import Tensor
import Training

/// One path a router can send a request to.
public struct RoutePath: Codable, Equatable, Sendable {
  /// The path's name, unique in its router (JSON `name`).
  public var name: String
  /// What a request on this path costs, in the admin's unit (nil: not given).
  public var cost: Double?
  /// A path called `name`, costing `cost` per request (nil: not given).
  public init(name: String, cost: Double? = nil) {
    self.name = name
    self.cost = cost
  }
}

/// Whether a path served a request well.
public enum RouteOutcome: String, Codable, Sendable, CaseIterable {
  case good, bad
}

/// A router's record in the `routers` table.
struct RouterRecord: Codable, Equatable {
  var id: UInt32
  var name: String
  var paths: [RoutePath]
  /// The expensive generalist that takes what the router is unsure of (nil: none).
  var escalation: String?
  var created: Date
  /// The versions activated, oldest first; the last one serves. `rollback` drops it.
  var history: [Int] = []
  var nextVersion = 1

  var active: Int? { history.last }
}

/// One version of a router's classifier: its head, calibration, threshold and lineage.
public struct RouterVersion: Codable, Equatable, Sendable {
  /// Whether a version may serve (JSON `state`).
  public enum State: String, Codable, Sendable {
    /// Serving, or served before (rollback can return to it).
    case ready
    /// Not better than the active version on the held-out split; kept with the reason.
    case rejected
  }
  /// The version number, from 1 (JSON `version`).
  public var version: Int
  /// Ready or rejected (JSON `state`).
  public var state: RouterVersion.State
  /// The version that was active when this one was trained.
  public var parent: Int?
  /// When it was trained (JSON `created`, ISO 8601).
  public var created: Date
  /// The encoder (model version) whose sentence embeddings the head reads.
  public var model: Int
  /// The head's class order: the router's paths when trained.
  public var paths: [String]
  /// Divides the logits before the softmax (temperature scaling on the held-out split).
  public var temperature: Double
  /// Below this confidence the request goes to the escalation path (0: never escalates).
  public var threshold: Double
  /// Why the gate activated it or not.
  public var reason: String
  /// Held-out metrics (macro-F1, baselines, ECE before/after, …).
  public var metrics: [String: Double]
  /// How it was made: data counts, hyperparameters, target, losses.
  public var lineage: [String: JSONValue]
  /// CRC-32C of the stored head, then of the LoRA adapters when there are any (JSON
  /// `checksum`; nil for a version stored without weights, or before versions had one).
  /// Checked at every load, so that a flipped byte is refused as damage instead of
  /// silently changing decisions.
  public var checksum: UInt32?

  enum CodingKeys: String, CodingKey {
    case version, state, parent, created, model, paths, temperature, threshold, reason, metrics,
      lineage, checksum
  }
}

/// One entry of a router's log: a routing decision, a recorded outcome or a labelled
/// example. Entries about the same input text are merged for training (see
/// `Router.examples()`).
public struct RouteLogEntry: Codable, Equatable, Sendable {
  /// What the router decided, when the entry is a logged decision.
  public struct Decision: Codable, Equatable, Sendable {
    /// The path the request went to: the chosen one, or the escalation path (JSON `path`).
    public var path: String
    /// The calibrated probability the threshold was compared with, 0–1 (JSON
    /// `confidence`; see `RouteDecision.confidence`).
    public var confidence: Double
    /// Whether the confidence was below the version's threshold, so the request went to the
    /// escalation path (JSON `escalated`).
    public var escalated: Bool
    /// The router version that decided (JSON `version`).
    public var version: Int
  }
  /// The entry's id in the router's log, as `route` returns it (JSON `log_id`).
  public var logID: UInt64
  /// When it was logged (JSON `time`, ISO 8601).
  public var time: Date
  /// The request's text (JSON `input`).
  public var input: String
  /// The best path, when an admin gave it (an import line without an outcome).
  public var label: String?
  /// Outcomes recorded for this input, by path.
  public var outcomes: [String: RouteOutcome]
  /// The decision, when the entry is a logged decision (JSON `decision`; null otherwise).
  public var decision: Decision?

  enum CodingKeys: String, CodingKey {
    case logID = "log_id"
    case time, input, label, outcomes, decision
  }
}

/// The router tables: `routers` (name → JSON `RouterRecord`), `routerversions` (router id
/// UInt32 BE ++ version UInt32 BE → JSON `RouterVersion`), `routerweights` (same key →
/// `RouterHead.parameters`, Float32 LE, whose layout the version's `classifier` says; the
/// same key ++ "lora" → a LoRA-tier version's adapters, safetensors) and `routelog` (router
/// id UInt32 BE ++ log id UInt64 BE → JSON `RouteLogEntry`). Log ids come from the meta key
/// `nextRouteLogID`. `routervectors` caches the inputs' vectors (`RouterVectorCache`).
struct RouterStore {
  let routers: Table
  let versions: Table
  let weights: Table
  let log: Table
  let vectors: RouterVectorCache
  let meta: Table

  static let tableNames: Set<String> = [
    "routers", "routerversions", "routerweights", "routelog", RouterVectorCache.tableName,
  ]

  init(environment: Environment, meta: Table) throws {
    routers = try environment.table("routers")
    versions = try environment.table("routerversions")
    weights = try environment.table("routerweights")
    log = try environment.table("routelog")
    vectors = RouterVectorCache(table: try environment.tableIfPresent(RouterVectorCache.tableName))
    self.meta = meta
  }

  static func versionKey(router: UInt32, version: Int) -> RouterVersionKey {
    RouterVersionKey(router: router, version: UInt32(version))
  }

  static func logKey(router: UInt32, id: UInt64) -> RouteLogKey {
    RouteLogKey(router: router, log: id)
  }

  func record(_ name: String, in txn: Transaction) throws -> RouterRecord? {
    try get(RouterRecord.self, routers, name, in: txn)
  }

  func put(_ record: RouterRecord, in txn: WriteTransaction) throws {
    try put(record, routers, record.name, in: txn)
  }

  /// The version numbered `version`; nil when there is none (any number outside
  /// 1…UInt32.max included: it comes from users).
  func version(router: UInt32, _ version: Int, in txn: Transaction) throws -> RouterVersion? {
    guard let number = UInt32(exactly: version), number > 0 else { return nil }
    return try get(
      RouterVersion.self, versions, Self.versionKey(router: router, version: version), in: txn)
  }

  func put(_ version: RouterVersion, router: UInt32, in txn: WriteTransaction) throws {
    try put(version, versions, Self.versionKey(router: router, version: version.version), in: txn)
  }

  func entry(router: UInt32, id: UInt64, in txn: Transaction) throws -> RouteLogEntry? {
    try get(RouteLogEntry.self, log, Self.logKey(router: router, id: id), in: txn)
  }

  func put(_ entry: RouteLogEntry, router: UInt32, in txn: WriteTransaction) throws {
    try put(entry, log, Self.logKey(router: router, id: entry.logID), in: txn)
  }

  private func get<Value: Decodable>(
    _ type: Value.Type, _ table: Table, _ key: some LMDBKey, in txn: Transaction
  ) throws -> Value? {
    try txn.get(table, key: key).map { try QueryLogStore.decoder.decode(type, from: Data($0)) }
  }

  private func put(
    _ value: some Encodable, _ table: Table, _ key: some LMDBKey, in txn: WriteTransaction
  ) throws {
    try txn.put(table, key: key, value: try QueryLogStore.encoder.encode(value))
  }

  func parameters(router: UInt32, version: Int, in txn: Transaction) throws -> [Float]? {
    try txn.get(weights, key: Self.versionKey(router: router, version: version)).map(Self.floats)
  }

  /// A head's stored bytes as Float32 LE values (a ragged tail byte is not read).
  static func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
    (0..<(bytes.count / 4)).map {
      Float(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian)
    }
  }

  /// Stores the head of a version, as `bytes(_:)` makes it.
  func putHead(_ bytes: [UInt8], router: UInt32, version: Int, in txn: WriteTransaction) throws {
    try txn.put(weights, key: Self.versionKey(router: router, version: version), value: bytes)
  }

  /// A head's parameters as stored: Float32 LE.
  static func bytes(_ parameters: [Float]) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(parameters.count * 4)
    for value in parameters {
      withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }
    return bytes
  }

  /// `RouterVersion.checksum` of a head's bytes and its adapters' (nil: none).
  static func checksum(head: UnsafeRawBufferPointer, adapters: UnsafeRawBufferPointer?) -> UInt32 {
    let crc = CRC32C.checksum(head)
    return adapters.map { CRC32C.checksum($0, continuing: crc) } ?? crc
  }

  static func checksum(head: [UInt8], adapters: [UInt8]?) -> UInt32 {
    head.withUnsafeBytes { head in
      guard let adapters else { return checksum(head: head, adapters: nil) }
      return adapters.withUnsafeBytes { checksum(head: head, adapters: $0) }
    }
  }

  /// The checksum of what is stored for `version` (its head, and adapters), or nil when it
  /// has no head.
  func storedChecksum(router: UInt32, version: Int, in txn: Transaction) throws -> UInt32? {
    guard let head = try txn.get(weights, key: Self.versionKey(router: router, version: version))
    else { return nil }
    let adapters = try txn.get(weights, key: Self.adapterKey(router: router, version: version))
    return Self.checksum(head: head, adapters: adapters)
  }

  /// The LoRA adapters a version of the LoRA tier serves with (nil: the head tier's frozen
  /// encoder), stored as the retriever's LoRA versions are (`ModelStore.loraBytes`).
  ///
  /// - Throws: `VectorDBError.damaged` when the stored adapters do not fit `config`.
  func adapters(
    router: UInt32, version: Int, config: BertConfig, path: String, in txn: Transaction
  ) throws -> LoRAAdapters<Float>? {
    guard let bytes = try txn.get(weights, key: Self.adapterKey(router: router, version: version))
    else { return nil }
    return try ModelStore.loraAdapters(
      bytes, config: config,
      source: "the LoRA adapters of router version \(version) in \(path)", path: path)
  }

  /// Stores the adapters of a LoRA-tier version (`ModelStore.loraBytes`).
  func putAdapters(_ bytes: [UInt8], router: UInt32, version: Int, in txn: WriteTransaction)
    throws
  {
    try txn.put(weights, key: Self.adapterKey(router: router, version: version), value: bytes)
  }

  static func adapterKey(router: UInt32, version: Int) -> RouterAdapterKey {
    RouterAdapterKey(router: router, version: UInt32(version))
  }

  /// Appends `entries` with fresh ids (returned).
  func append(_ entries: [RouteLogEntry], router: UInt32, in txn: WriteTransaction) throws
    -> [UInt64]
  {
    let ids = try reserveIDs(entries.count, in: txn)
    for (entry, id) in zip(entries, ids) { try put((router, entry), id: id, in: txn) }
    return Array(ids)
  }

  /// Calls `body` with each log entry of `router`, oldest first.
  func forEachEntry(router: UInt32, in txn: Transaction, _ body: (RouteLogEntry) throws -> Void)
    throws
  {
    try txn.forEach(in: log, under: KeyRange.router(router)) { _, value in
      try body(try QueryLogStore.decoder.decode(RouteLogEntry.self, from: Data(value)))
      return true
    }
  }
}

extension RouterStore: GroupCommitLog {
  /// A logged routing decision and the router it belongs to.
  typealias Entry = (router: UInt32, entry: RouteLogEntry)

  func reserveIDs(_ count: Int, in txn: WriteTransaction) throws -> Range<UInt64> {
    try txn.advanceCounter(MetaKey.nextRouteLogID, in: meta, by: count)
  }

  func giveBack(_ ids: Range<UInt64>, in txn: WriteTransaction) throws {
    try txn.rewindCounter(MetaKey.nextRouteLogID, in: meta, from: ids)
  }

  func put(_ item: Entry, id: UInt64, in txn: WriteTransaction) throws {
    var entry = item.entry
    entry.logID = id
    try put(entry, router: item.router, in: txn)
  }

  /// Prunes decisions that never got an outcome once the log has outgrown its retention
  /// (`prune`). A pass reads each router's log from its oldest entry, so one runs only
  /// when the log has grown a tenth past the larger of `maxEntries` and its size after
  /// the last pass (kept in `meta`): a log that is mostly training data is not read on
  /// every commit.
  func upkeep(in txn: WriteTransaction) throws {
    let retention = try LogRetention.stored(in: txn, meta: meta)
    let floor = max(
      retention.maxEntries ?? (retention.maxAge == nil ? Int.max / 2 : 0),
      try sizeAfterPrune(in: txn))
    guard try txn.count(log) > floor + floor / 10 + 64 else { return }
    try prune(retention, now: Date(), in: txn)
  }

  /// Deletes the routing decisions without an outcome beyond `retention`: the oldest
  /// first while the routers' log (all routers together) holds more than `maxEntries`
  /// entries, and every one older than `maxAge`. Labelled examples and entries with an
  /// outcome are training data and stay; an outcome can no longer be attached to a pruned
  /// decision by its id.
  func prune(_ retention: LogRetention, now: Date, in txn: WriteTransaction) throws {
    /// The fields that tell a bare decision from training data.
    struct Kind: Decodable {
      var time: Date
      var label: String?
      var outcomes: [String: RouteOutcome]
    }
    let count = try txn.count(log)
    let excess = max(0, count - (retention.maxEntries ?? Int.max))
    let cutoff = retention.maxAge.map { now.addingTimeInterval(-$0) }
    // The `excess` oldest bare decisions of all routers are among each router's first
    // `excess`, so each router's log is read (oldest first) only until it has given that
    // many and the rest are younger than the cutoff.
    var bare: [(id: UInt64, key: [UInt8], old: Bool)] = []
    var routerIDs: [UInt32] = []
    try txn.forEach(in: routers) { _, value in
      routerIDs.append(try QueryLogStore.decoder.decode(RouterRecord.self, from: Data(value)).id)
      return true
    }
    for router in routerIDs {
      var found = 0
      try txn.forEach(in: log, under: KeyRange.router(router)) { key, value in
        // An entry that does not decode is left alone: a prune must not fail the group
        // commit of the decisions it runs in.
        guard let kind = try? QueryLogStore.decoder.decode(Kind.self, from: Data(value)),
          kind.label == nil && kind.outcomes.isEmpty
        else { return true }
        let old = cutoff.map { kind.time < $0 } ?? false
        guard found < excess || old else { return false }
        found += 1
        let id = key.loadUnaligned(fromByteOffset: 4, as: UInt64.self).bigEndian
        bare.append((id, Array(key), old))
        return true
      }
    }
    bare.sort { $0.id < $1.id }  // log ids are shared by all routers: oldest first
    var deleted = 0
    for (index, entry) in bare.enumerated() where index < excess || entry.old {
      _ = try txn.delete(log, key: entry.key)
      deleted += 1
    }
    let size = UInt64(count - deleted)
    try txn.put(
      meta, key: MetaKey.routeLogSizeAfterPrune,
      value: withUnsafeBytes(of: size.littleEndian) { Array($0) })
  }

  private func sizeAfterPrune(in txn: Transaction) throws -> Int {
    try txn.get(meta, key: MetaKey.routeLogSizeAfterPrune).map {
      Int($0.loadUnaligned(as: UInt64.self).littleEndian)
    } ?? 0
  }
}
