import Foundation
import LMDB

/// One logged query and what it returned.
///
/// Every query is logged unless the caller passes `log: false`; the log id comes back
/// with the results so that feedback can name the query later. Admin judgements
/// (relevance given for a query that was never run) are logged too, with
/// `kind == .judgement` and no hits.
public struct LogEntry: Codable, Equatable, Sendable {
  public enum Kind: String, Codable, Sendable {
    /// A query run through `Collection.query`.
    case query
    /// Relevance judgements imported by an admin (`vdb feedback --query`, qrels).
    case judgement
  }
  /// A returned document and its score.
  public struct Hit: Codable, Equatable, Sendable {
    public var id: String
    public var score: Float
    public init(id: String, score: Float) {
      self.id = id
      self.score = score
    }
  }

  /// Increases with every entry; never reused, even after pruning.
  public var id: UInt64
  public var time: Date
  public var collection: String
  public var kind: Kind
  /// The query text; `nil` for a query by vector.
  public var text: String?
  /// The model version and index generation that answered (0 when none).
  public var model: Int
  public var generation: Int
  public var k: Int
  /// The filter as JSON text, if any.
  public var filter: String?
  public var hits: [Hit]
  /// The query adapter version that mapped the query, if one was active.
  public var adapter: Int?
  /// Feedback given on this entry, oldest first (filled in when read).
  public var feedback: [Feedback] = []
}

/// A judgement of one document for one logged query.
public struct Feedback: Codable, Equatable, Sendable {
  public enum Kind: String, Codable, Sendable {
    /// A returned hit the user found relevant.
    case click
    /// A returned hit marked wrong.
    case notRelevant = "not_relevant"
    /// A relevant document that was not returned: the retriever failed.
    case correction
    /// Relevance given by an admin judgement.
    case judgement
  }
  public var documentID: String
  public var kind: Kind
  /// Graded relevance; 0 means not relevant.
  public var relevance: Int
  public var time: Date

  public var isRelevant: Bool { relevance > 0 }

  enum CodingKeys: String, CodingKey {
    case documentID = "doc"
    case kind, relevance, time
  }
}

/// How long the query log keeps entries; the oldest go first.
public struct LogRetention: Codable, Equatable, Sendable {
  /// The most entries kept (nil: no limit).
  public var maxEntries: Int?
  /// The oldest entry kept, in seconds of age (nil: no limit).
  public var maxAge: Double?
  public init(maxEntries: Int? = 1_000_000, maxAge: Double? = nil) {
    self.maxEntries = maxEntries
    self.maxAge = maxAge
  }
}

/// The query log's tables: `querylog` (log id UInt64 BE → JSON `LogEntry` without
/// feedback) and `feedback` (log id UInt64 BE ++ document id → JSON `Feedback`).
struct QueryLogStore {
  let entries: Table
  let feedback: Table
  let meta: Table

  init(environment: Environment, meta: Table) throws {
    entries = try environment.table("querylog")
    feedback = try environment.table("feedback")
    self.meta = meta
  }

  static let encoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .millisecondsSince1970
    encoder.outputFormatting = .sortedKeys
    return encoder
  }()
  static let decoder: JSONDecoder = {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .millisecondsSince1970
    return decoder
  }()

  /// Appends `entry` with a fresh id (returned), then prunes by `retention`.
  func append(_ entry: LogEntry, retention: LogRetention, in txn: WriteTransaction) throws -> UInt64
  {
    let id =
      (try txn.get(meta, key: "nextLogID").map { $0.loadUnaligned(as: UInt64.self).littleEndian })
      ?? 1
    try txn.put(
      meta, key: "nextLogID", value: withUnsafeBytes(of: (id + 1).littleEndian) { Array($0) })
    var stored = entry
    stored.id = id
    stored.feedback = []
    try txn.put(entries, key: id, value: try QueryLogStore.encoder.encode(stored))
    try prune(retention, now: entry.time, in: txn)
    return id
  }

  func entry(_ id: UInt64, in txn: Transaction) throws -> LogEntry? {
    guard let bytes = try txn.get(entries, key: id) else { return nil }
    var entry = try QueryLogStore.decoder.decode(LogEntry.self, from: Data(bytes))
    entry.feedback = try feedback(for: id, in: txn)
    return entry
  }

  func feedback(for id: UInt64, in txn: Transaction) throws -> [Feedback] {
    var result: [Feedback] = []
    let prefix = KeyBuilder().uint64(id)
    try txn.forEach(in: feedback, from: prefix) { key, value in
      guard key.starts(with: prefix.bytes) else { return false }
      result.append(try QueryLogStore.decoder.decode(Feedback.self, from: Data(value)))
      return true
    }
    return result.sorted { $0.time < $1.time }
  }

  func record(_ item: Feedback, for id: UInt64, in txn: WriteTransaction) throws {
    try txn.put(
      feedback, key: KeyBuilder().uint64(id).string(item.documentID),
      value: try QueryLogStore.encoder.encode(item))
  }

  /// Deletes the oldest entries (and their feedback) beyond the retention limits.
  func prune(_ retention: LogRetention, now: Date, in txn: WriteTransaction) throws {
    var excess = max(0, try txn.count(entries) - (retention.maxEntries ?? Int.max))
    let cutoff = retention.maxAge.map { now.addingTimeInterval(-$0) }
    guard excess > 0 || cutoff != nil else { return }
    var doomed: [UInt64] = []
    try txn.forEach(in: entries) { key, value in
      let id = UInt64(keyBytes: key)!
      if excess > 0 {
        excess -= 1
        doomed.append(id)
        return true
      }
      guard let cutoff else { return false }
      let entry = try QueryLogStore.decoder.decode(LogEntry.self, from: Data(value))
      guard entry.time < cutoff else { return false }
      doomed.append(id)
      return true
    }
    for id in doomed {
      try txn.delete(entries, key: id)
      try txn.deleteRange(feedback, from: KeyBuilder().uint64(id), to: KeyBuilder().uint64(id + 1))
    }
  }
}
