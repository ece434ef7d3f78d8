import Foundation
import LMDB

/// One logged query and what it returned.
///
/// Every query is logged unless the caller passes `log: false`; the log id comes back
/// with the results so that feedback can name the query later. Admin judgements
/// (relevance given for a query that was never run) are logged too, with
/// `kind == .judgement` and no hits.
///
///     let result = try docs.query(text: "does sugar cause diabetes?", k: 5)
///     try docs.feedback(logID: result.logID!, documentID: "a")
///     for entry in try db.logEntries(collection: "docs", limit: 20) {
///       let relevant = entry.feedback.filter(\.isRelevant).map(\.documentID)
///       print(entry.id, entry.text ?? "(vector)", entry.hits.count, relevant)
///     }
///
/// The log is the database's (`Database.logEntries`, `logEntry`, `setLogRetention`);
/// `DocumentCollection.feedback` and `judge` write to it; `train`, `trainingData` and
/// `diagnose` read it.
public struct LogEntry: Codable, Equatable, Sendable {
  /// What produced the entry (JSON `kind`: `"query"` or `"judgement"`).
  public enum Kind: String, Codable, Sendable {
    /// A query run through `DocumentCollection.query`.
    case query
    /// Relevance judgements imported by an admin (`vdb feedback --query`, qrels).
    case judgement
  }
  /// A returned document and its score.
  public struct Hit: Codable, Equatable, Sendable {
    /// The document's id (JSON `id`).
    public var id: String
    /// Its score: the similarity for dense search (higher is closer), the BM25 or fused
    /// score otherwise (JSON `score`).
    public var score: Float
    /// A hit for document `id` with `score`.
    public init(id: String, score: Float) {
      self.id = id
      self.score = score
    }
  }

  /// Unique, never reused (even after pruning). Within one process it increases with
  /// every entry; processes take ids in blocks, so two processes' entries interleave.
  public var id: UInt64
  /// When the entry was logged (JSON `time`, ISO 8601).
  public var time: Date
  /// The collection the query ran on (JSON `collection`).
  public var collection: String
  /// A query or an admin judgement (JSON `kind`).
  public var kind: Kind
  /// The query text; `nil` for a query by vector.
  public var text: String?
  /// The model version that answered (JSON `model`; 0 when none, as for a query by
  /// vector or by keywords alone).
  public var model: Int
  /// The index generation that answered (JSON `generation`; 0 when none).
  public var generation: Int
  /// Results asked for (JSON `k`).
  public var k: Int
  /// The filter as JSON text, if any.
  public var filter: String?
  /// What the query returned, best first (JSON `hits`; empty for a judgement).
  public var hits: [Hit]
  /// The query adapter version that mapped the query, if one was active.
  public var adapter: Int?
  /// Feedback given on this entry, oldest first (filled in when read).
  public var feedback: [Feedback] = []
  /// How the query searched; nil for entries from before keyword search (dense).
  public var mode: SearchMode? = nil

  enum CodingKeys: String, CodingKey {
    case id = "log_id"  // the one name of a log id, in every output
    case time, collection, kind, text, model, generation, k, filter, hits, adapter, feedback, mode
  }
}

/// A judgement of one document for one logged query.
public struct Feedback: Codable, Equatable, Sendable {
  /// How the feedback was given (JSON `kind`).
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
  /// The judged document's id (JSON `doc`). It may since have been deleted.
  public var documentID: String
  /// Click, not relevant, correction or judgement (JSON `kind`).
  public var kind: Kind
  /// Graded relevance; 0 means not relevant.
  public var relevance: Int
  /// When the feedback was given (JSON `time`, ISO 8601).
  public var time: Date

  /// Whether the document counts as relevant: `relevance > 0`.
  public var isRelevant: Bool { relevance > 0 }

  enum CodingKeys: String, CodingKey {
    case documentID = "doc"
    case kind, relevance, time
  }
}

/// How long the query log keeps entries, the oldest first, and the routers' log its
/// routing decisions that never got an outcome (labelled examples and outcomes stay).
public struct LogRetention: Codable, Equatable, Sendable {
  /// The most entries kept (nil: no limit).
  public var maxEntries: Int?
  /// The oldest entry kept, in seconds of age (nil: no limit).
  public var maxAge: Double?
  /// Keeps at most `maxEntries` entries (nil: no limit) and none older than `maxAge`
  /// seconds (nil: no limit).
  public init(maxEntries: Int? = 1_000_000, maxAge: Double? = nil) {
    self.maxEntries = maxEntries
    self.maxAge = maxAge
  }

  /// The retention stored in `meta` (default: the last 1,000,000 entries).
  static func stored(in txn: Transaction, meta: Table) throws -> LogRetention {
    try txn.get(meta, key: MetaKey.logRetention).map {
      try JSONDecoder().decode(LogRetention.self, from: Data($0))
    } ?? LogRetention()
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

  /// Reads `LogEntry` records: those written before the log id was named `log_id` call
  /// it `id` (only the entry's own top-level key is renamed).
  static let entryDecoder: JSONDecoder = {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .millisecondsSince1970
    decoder.keyDecodingStrategy = .custom { path in
      path.count == 1 && path[0].stringValue == "id" ? LogEntry.CodingKeys.id : path.last!
    }
    return decoder
  }()

  /// Appends `entry` with a fresh id (returned), then prunes by `retention`.
  func append(_ entry: LogEntry, retention: LogRetention, in txn: WriteTransaction) throws -> UInt64
  {
    let id = try reserveIDs(1, in: txn).lowerBound
    try put(entry, id: id, in: txn)
    try prune(retention, now: entry.time, in: txn)
    return id
  }

  /// Takes `count` consecutive unused log ids.
  func reserveIDs(_ count: Int, in txn: WriteTransaction) throws -> Range<UInt64> {
    try txn.advanceCounter(MetaKey.nextLogID, in: meta, by: count)
  }

  /// Returns `ids` (reserved, never used) when they are the last reserved.
  func giveBack(_ ids: Range<UInt64>, in txn: WriteTransaction) throws {
    try txn.rewindCounter(MetaKey.nextLogID, in: meta, from: ids)
  }

  /// Stores `entry` under `id` (without its feedback, which has its own table).
  func put(_ entry: LogEntry, id: UInt64, in txn: WriteTransaction) throws {
    try put(try prepare(entry, id: id), id: id, in: txn)
  }

  /// The retention stored in `meta` (default: the last 1,000,000 entries).
  func retention(in txn: Transaction) throws -> LogRetention {
    try LogRetention.stored(in: txn, meta: meta)
  }

  func entry(_ id: UInt64, in txn: Transaction) throws -> LogEntry? {
    guard let bytes = try txn.get(entries, key: id) else { return nil }
    var entry = try QueryLogStore.entryDecoder.decode(LogEntry.self, from: Data(bytes))
    entry.feedback = try feedback(for: id, in: txn)
    return entry
  }

  func feedback(for id: UInt64, in txn: Transaction) throws -> [Feedback] {
    var result: [Feedback] = []
    try txn.forEach(in: feedback, under: FeedbackKey.entry(id)) { _, value in
      result.append(try QueryLogStore.decoder.decode(Feedback.self, from: Data(value)))
      return true
    }
    return result.sorted { $0.time < $1.time }
  }

  func record(_ item: Feedback, for id: UInt64, in txn: WriteTransaction) throws {
    try txn.put(
      feedback, key: FeedbackKey(log: id, document: item.documentID),
      value: try QueryLogStore.encoder.encode(item))
  }

  /// Deletes the entries of `collection` and their feedback (a full scan of the log).
  func deleteEntries(collection: String, in txn: WriteTransaction) throws {
    for id in try entryIDs(collection: collection, in: txn) {
      try txn.delete(entries, key: id)
      try txn.deleteRange(feedback, FeedbackKey.entry(id))
    }
  }

  /// Points the entries of `collection` at its new name (a full scan of the log).
  func renameEntries(collection: String, to newName: String, in txn: WriteTransaction) throws {
    for id in try entryIDs(collection: collection, in: txn) {
      guard
        var entry = try txn.get(entries, key: id).map({
          try QueryLogStore.entryDecoder.decode(LogEntry.self, from: Data($0))
        })
      else { continue }
      entry.collection = newName
      try txn.put(entries, key: id, value: try QueryLogStore.encoder.encode(entry))
    }
  }

  private func entryIDs(collection: String, in txn: Transaction) throws -> [UInt64] {
    struct Owner: Decodable { var collection: String }
    var ids: [UInt64] = []
    try txn.forEach(in: entries) { key, value in
      if try QueryLogStore.decoder.decode(Owner.self, from: Data(value)).collection == collection {
        ids.append(LogKey(keyBytes: key)!)
      }
      return true
    }
    return ids
  }

  /// Deletes the oldest entries (and their feedback) beyond the retention limits.
  func prune(_ retention: LogRetention, now: Date, in txn: WriteTransaction) throws {
    var excess = max(0, try txn.count(entries) - (retention.maxEntries ?? Int.max))
    let cutoff = retention.maxAge.map { now.addingTimeInterval(-$0) }
    guard excess > 0 || cutoff != nil else { return }
    var doomed: [UInt64] = []
    try txn.forEach(in: entries) { key, value in
      let id = LogKey(keyBytes: key)!
      if excess > 0 {
        excess -= 1
        doomed.append(id)
        return true
      }
      guard let cutoff else { return false }
      let entry = try QueryLogStore.entryDecoder.decode(LogEntry.self, from: Data(value))
      guard entry.time < cutoff else { return false }
      doomed.append(id)
      return true
    }
    for id in doomed {
      try txn.delete(entries, key: id)
      try txn.deleteRange(feedback, FeedbackKey.entry(id))
    }
  }
}

/// A log table that `LogWriter` commits to: ids from a counter kept in the database, each
/// entry stored under its id, and upkeep done in every group commit.
protocol GroupCommitLog {
  associatedtype Entry
  /// Takes `count` consecutive unused ids.
  func reserveIDs(_ count: Int, in txn: WriteTransaction) throws -> Range<UInt64>
  /// Returns `ids` (reserved, never used) when they are the last reserved.
  func giveBack(_ ids: Range<UInt64>, in txn: WriteTransaction) throws
  /// An entry made ready to store (by default the entry itself).
  associatedtype Prepared = Entry
  /// The work on `entry` that needs no transaction (encoding it), done before the group's
  /// write transaction begins: the writer lock is then held only to store bytes, and a
  /// writer waiting for another process's import has its group ready when it gets the lock.
  func prepare(_ entry: Entry, id: UInt64) throws -> Prepared
  func put(_ entry: Prepared, id: UInt64, in txn: WriteTransaction) throws
  /// Runs at the end of each group commit (the query log prunes by its retention).
  func upkeep(in txn: WriteTransaction) throws
}

extension GroupCommitLog where Prepared == Entry {
  func prepare(_ entry: Entry, id: UInt64) -> Entry { entry }
}

extension WriteTransaction {
  /// Moves the counter stored at `key` in `table` (a little-endian `UInt64`, 1 when absent)
  /// on by `count` and returns the values passed over: ids no one else will take.
  func advanceCounter(_ key: MetaKey, in table: Table, by count: Int) throws -> Range<UInt64> {
    let first = try get(table, key: key).map { $0.loadUnaligned(as: UInt64.self).littleEndian } ?? 1
    let end = first + UInt64(count)
    try put(table, key: key, value: withUnsafeBytes(of: end.littleEndian) { Array($0) })
    return first..<end
  }

  /// Moves the counter back to `ids.lowerBound` when it still stands at `ids.upperBound`
  /// (nobody took ids after them).
  func rewindCounter(_ key: MetaKey, in table: Table, from ids: Range<UInt64>) throws {
    let next = try get(table, key: key).map { $0.loadUnaligned(as: UInt64.self).littleEndian }
    guard next == ids.upperBound else { return }
    try put(table, key: key, value: withUnsafeBytes(of: ids.lowerBound.littleEndian) { Array($0) })
  }
}

extension QueryLogStore: GroupCommitLog {
  /// The entry's stored JSON.
  func prepare(_ entry: LogEntry, id: UInt64) throws -> [UInt8] {
    try entry.storedJSON(id: id)
  }

  func put(_ encoded: [UInt8], id: UInt64, in txn: WriteTransaction) throws {
    try txn.put(entries, key: id, value: encoded)
  }

  func upkeep(in txn: WriteTransaction) throws {
    try prune(try retention(in: txn), now: Date(), in: txn)
  }
}

/// A log's writer (the query log's, the routers'): callers hand it their entries and
/// return at once; a background thread commits whatever has queued up in one transaction
/// (a group commit), so a query never waits for the writer lock nor pays an fsync.
///
/// Log ids are handed out from blocks reserved in the database (`nextLogID` moves by a
/// block), so `append` knows an entry's id before it is committed and ids stay unique
/// across processes. The writer reserves the next block in its own commits before the
/// current one runs out, sized to outlast the longest wait for the lock seen so far
/// (four groups as large as the largest); a query reserves one itself (a short write
/// that waits for the writer lock) only for the process's first logged query or when a
/// burst used every id, and then the blocks double. Closing gives back the ids never
/// handed out when no other process reserved after them, so one process at a time sees
/// dense ids.
///
/// What a crash can lose: the entries queued and not yet committed — normally those of
/// the last few milliseconds (a group gathers for at most `gathering` seconds), while
/// another writer holds the lock (an import batch) those since it took it, and never
/// more than `maxPending`. Never documents: they are written by their own transactions.
final class LogWriter<Log: GroupCommitLog>: @unchecked Sendable {
  /// The smallest block of ids reserved at once.
  static var blockSize: Int { 1024 }
  /// The longest the writer waits for a group to fill before committing it, and the
  /// size at which it commits at once: the few milliseconds a crash can lose.
  static var gathering: TimeInterval { 0.005 }
  static var groupSize: Int { 256 }
  /// Entries queued before `append` waits for the writer (back-pressure, not a loss).
  static var maxPending: Int { 65_536 }

  private let environment: Environment
  private let store: Log
  private let condition = NSCondition()
  private var pending: [(id: UInt64, entry: Log.Entry)] = []
  /// Reserved ids not handed out yet, in order.
  private var free: [Range<UInt64>] = []
  private var freeCount: Int { free.reduce(0) { $0 + $1.count } }
  /// Ids the next reservation takes: grows with the groups (and when a burst ran dry),
  /// so that queries do not run out while the writer waits for another process's write.
  private var reserveSize = LogWriter.blockSize
  /// Callers waiting in `flush` (the writer commits at once for them).
  private var flushing = 0
  private var handedIn = 0
  private var written = 0
  private var failure: Error?
  private var running = false
  private var reserving = false
  private var closing = false

  init(environment: Environment, store: Log) {
    self.environment = environment
    self.store = store
  }

  /// Adds reserved ids, merged with the last block when they follow it (no one else
  /// reserved in between), so that closing can give them all back.
  private func addFree(_ block: Range<UInt64>) {
    if let last = free.last, last.upperBound == block.lowerBound {
      free[free.count - 1] = last.lowerBound..<block.upperBound
    } else {
      free.append(block)
    }
  }

  /// Queues `entries` and returns their log ids; they are committed shortly after. Nil
  /// when it had to reserve ids itself and that write failed (a full disk, read-only
  /// media): the entries are not logged, and the next `flush` throws the error, as for a
  /// failed group commit. A log that cannot be written never fails the query it logs.
  func append(_ entries: [Log.Entry]) -> [UInt64]? {
    condition.lock()
    defer { condition.unlock() }
    while pending.count >= Self.maxPending { condition.wait() }
    while freeCount < entries.count {
      // The first query, or a burst used every reserved id: reserve now (the lock is
      // released meanwhile, so the writer and other queries go on). One thread
      // reserves; the others wait for its block.
      if reserving {
        condition.wait()
        continue
      }
      reserving = true
      // Running dry after the first query: blocks too small for this rate of queries.
      if handedIn > 0 { reserveSize = min(Self.maxPending, 2 * reserveSize) }
      let size = reserveSize
      condition.unlock()
      let block = Result {
        try environment.write { txn in
          try store.reserveIDs(max(size, entries.count), in: txn)
        }
      }
      condition.lock()
      reserving = false
      condition.broadcast()
      switch block {
      case .success(let block): addFree(block)
      case .failure(let error):
        failure = failure ?? error
        return nil
      }
    }
    var ids: [UInt64] = []
    for entry in entries {
      let id = free[0].lowerBound
      free[0] = (id + 1)..<free[0].upperBound
      if free[0].isEmpty { free.removeFirst() }
      ids.append(id)
      pending.append((id, entry))
    }
    handedIn += entries.count
    if !running {
      running = true
      Thread.detachNewThread { [self] in writeLoop() }
    }
    // Wake the writer only when it waits for a first entry or its group is full: not a
    // thread switch per query.
    if pending.count == entries.count || pending.count >= Self.groupSize {
      condition.broadcast()
    }
    return ids
  }

  /// Waits until every entry queued so far is committed.
  ///
  /// - Throws: the error of a group commit that failed since the last `flush` (its
  ///   entries are lost; later ones are not).
  func flush() throws {
    condition.lock()
    defer { condition.unlock() }
    let target = handedIn
    flushing += 1
    defer { flushing -= 1 }
    condition.broadcast()  // the writer stops gathering
    while written < target { condition.wait() }
    if let failure {
      self.failure = nil
      throw failure
    }
  }

  /// Commits what is queued and stops the thread.
  func close() {
    condition.lock()
    closing = true
    condition.broadcast()
    while running { condition.wait() }
    condition.unlock()
  }

  private func writeLoop() {
    condition.lock()
    while true {
      while pending.isEmpty && !closing { condition.wait() }
      // Gather a group for up to `gathering` seconds: a commit costs the same for one
      // entry as for a hundred (an fsync, pages written), and a steady stream of queries
      // would otherwise pay one per entry.
      let deadline = Date().addingTimeInterval(Self.gathering)
      while pending.count < Self.groupSize, flushing == 0, !closing, Date() < deadline {
        _ = condition.wait(until: deadline)
      }
      if pending.isEmpty {
        // Give back the ids never handed out, when no one reserved after us: the
        // next process goes on from there, so ids stay dense for one process at a time.
        if let unused = free.last {
          free = []
          condition.unlock()
          try? environment.write { txn in try store.giveBack(unused, in: txn) }
          condition.lock()
        }
        running = false
        condition.broadcast()
        condition.unlock()
        return
      }
      let batch = pending
      pending = []
      reserveSize = min(Self.maxPending, max(reserveSize, 4 * batch.count))
      let refill = !closing && freeCount < reserveSize / 2
      let size = reserveSize
      condition.unlock()
      let result = Result {
        let prepared = try batch.map { (id: $0.id, entry: try store.prepare($0.entry, id: $0.id)) }
        return try environment.write { txn -> Range<UInt64>? in
          for (id, entry) in prepared { try store.put(entry, id: id, in: txn) }
          try store.upkeep(in: txn)
          return refill ? try store.reserveIDs(size, in: txn) : nil
        }
      }
      condition.lock()
      switch result {
      case .success(let block): if let block { addFree(block) }
      case .failure(let error): failure = error
      }
      written += batch.count
      condition.broadcast()
    }
  }
}

extension LogEntry {
  /// The JSON stored for this entry under `id`, feedback left out (it has its own
  /// table): what `QueryLogStore.encoder` writes, the same keys and values, written by
  /// hand because encoding is most of a logged query's cost (a fifth of the query with
  /// `JSONEncoder`, a few percent this way).
  ///
  /// - Throws: `EncodingError.invalidValue` for a score that is NaN or infinite (JSON has
  ///   no such numbers), as `JSONEncoder` does.
  func storedJSON(id: UInt64) throws -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(256 + 40 * hits.count + (text?.utf8.count ?? 0))
    func key(_ name: StaticString) {
      out.append(out.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
      out.append(UInt8(ascii: "\""))
      out.append(
        contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
      out.append(contentsOf: "\":".utf8)
    }
    func string(_ value: String) {
      out.append(UInt8(ascii: "\""))
      for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
          out.append(UInt8(ascii: "\\"))
          out.append(byte)
        case 0x0A: out.append(contentsOf: "\\n".utf8)
        case 0x0D: out.append(contentsOf: "\\r".utf8)
        case 0x09: out.append(contentsOf: "\\t".utf8)
        case ..<0x20:
          let hex = Array("0123456789abcdef".utf8)
          out.append(contentsOf: "\\u00".utf8)
          out.append(hex[Int(byte >> 4)])
          out.append(hex[Int(byte & 15)])
        default: out.append(byte)
        }
      }
      out.append(UInt8(ascii: "\""))
    }
    func number(_ value: some CustomStringConvertible) {
      out.append(contentsOf: value.description.utf8)
    }
    // Keys in sorted order, as the encoder's `.sortedKeys` writes them.
    if let adapter {
      key("adapter")
      number(adapter)
    }
    key("collection")
    string(collection)
    key("feedback")
    out.append(contentsOf: "[]".utf8)
    if let filter {
      key("filter")
      string(filter)
    }
    key("generation")
    number(generation)
    key("hits")
    out.append(UInt8(ascii: "["))
    for (index, hit) in hits.enumerated() {
      guard hit.score.isFinite else {
        throw EncodingError.invalidValue(
          hit.score,
          .init(codingPath: [], debugDescription: "hit \(hit.id) has score \(hit.score)"))
      }
      if index > 0 { out.append(UInt8(ascii: ",")) }
      out.append(contentsOf: "{\"id\":".utf8)
      string(hit.id)
      out.append(contentsOf: ",\"score\":".utf8)
      number(hit.score)
      out.append(UInt8(ascii: "}"))
    }
    out.append(UInt8(ascii: "]"))
    key("k")
    number(k)
    key("kind")
    string(kind.rawValue)
    key("log_id")
    number(id)
    if let mode {
      key("mode")
      string(mode.rawValue)
    }
    key("model")
    number(model)
    if let text {
      key("text")
      string(text)
    }
    key("time")
    number(time.timeIntervalSince1970 * 1000)
    out.append(UInt8(ascii: "}"))
    return out
  }
}
