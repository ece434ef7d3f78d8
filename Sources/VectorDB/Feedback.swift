import Foundation
import LMDB

extension DocumentCollection {
  /// Records feedback on document `documentID` for the logged query `logID`.
  ///
  /// - `relevant: true` on a returned hit is a click; on a document that was not
  ///   returned it is a correction ("the right document was never found" — the signal
  ///   that training learns most from).
  /// - `relevant: false` marks a returned hit as wrong (a preferred hard negative).
  ///
  /// Giving feedback again for the same pair replaces it.
  ///
  ///     let result = try docs.query(text: "sugar and diabetes", k: 10)
  ///     try docs.feedback(logID: result.logID!, documentID: result.hits[2].id)
  ///
  /// - Returns: the kind recorded.
  /// - Throws: `VectorDBError.logEntryNotFound`, `.documentNotFound` (no such document
  ///   in this collection), `.invalidInput` (the entry belongs to another collection).
  @discardableResult
  public func feedback(logID: UInt64, documentID: String, relevant: Bool = true) throws
    -> Feedback.Kind
  {
    try database.flushLog()  // the query may have been logged a moment ago
    let log = database.schema.log
    let name = self.name
    return try writeLog { txn in
      guard let entry = try log.entry(logID, in: txn) else {
        throw VectorDBError.logEntryNotFound(logID)
      }
      guard entry.collection == name else {
        throw VectorDBError.invalidInput(
          source: "feedback", line: nil,
          reason: "log entry \(logID) is a query of collection \"\(entry.collection)\"")
      }
      try requireDocument(documentID, in: txn)
      let shown = entry.hits.contains { $0.id == documentID }
      let kind: Feedback.Kind = relevant ? (shown ? .click : .correction) : .notRelevant
      try log.record(
        Feedback(documentID: documentID, kind: kind, relevance: relevant ? 1 : 0, time: Date()),
        for: logID, in: txn)
      return kind
    }
  }

  /// Logs an admin judgement: for `query` (never run), these documents are relevant
  /// with the given grades (1 = relevant; higher = more relevant). Returns its log id.
  ///
  /// - Throws: `VectorDBError.invalidInput` for an empty query text,
  ///   `.documentNotFound` for an unknown document (nothing is written either way).
  @discardableResult
  public func judge(query: String, relevant: [String: Int]) throws -> UInt64 {
    try judge([Judgement(query: query, relevant: relevant)])[0]
  }

  /// Logs many judgements in one transaction (all or none); returns their log ids.
  ///
  /// - Throws: `VectorDBError.invalidInput` for an empty query text,
  ///   `.documentNotFound` for a judged document the collection does not hold (for a
  ///   judgement read from a file, `.invalidInput` naming the file and line); nothing is
  ///   logged either way; `.storage`.
  @discardableResult
  public func judge(_ judgements: [Judgement]) throws -> [UInt64] {
    if let blank = judgements.firstIndex(where: \.query.isBlank) {
      throw VectorDBError.invalidInput(
        source: "judgement", line: judgements.count > 1 ? blank + 1 : nil,
        reason: "the query text is empty")
    }
    let log = database.schema.log
    let retention = try database.logRetention()
    let name = self.name
    return try writeLog { txn in
      try judgements.map { judgement in
        // In input order, so that the first unknown document of a file is reported.
        let documents = judgement.relevant.keys.sorted {
          (judgement.lines[$0] ?? 0, $0) < (judgement.lines[$1] ?? 0, $1)
        }
        for documentID in documents {
          do {
            try requireDocument(documentID, in: txn)
          } catch let error as VectorDBError where judgement.source != nil {
            guard case .documentNotFound = error else { throw error }
            throw VectorDBError.invalidInput(
              source: judgement.source!, line: judgement.lines[documentID],
              reason: error.description)
          }
        }
        let now = Date()
        let entry = LogEntry(
          id: 0, time: now, collection: name, kind: .judgement, text: judgement.query, model: 0,
          generation: 0,
          k: 0, filter: nil, hits: [])
        let id = try log.append(entry, retention: retention, in: txn)
        for (documentID, grade) in judgement.relevant.sorted(by: { $0.key < $1.key }) {
          try log.record(
            Feedback(documentID: documentID, kind: .judgement, relevance: grade, time: now),
            for: id, in: txn)
        }
        return id
      }
    }
  }

  private func requireDocument(_ documentID: String, in txn: Transaction) throws {
    guard !documentID.isEmpty, documentID.utf8.count <= Document.maxIDBytes,
      try txn.get(database.schema.docs, key: DocumentKey(collection: id, id: documentID)) != nil
    else { throw VectorDBError.documentNotFound(id: documentID, collection: name) }
  }

  private func writeLog<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
    try storage { try database.environment.write(body) }
  }
}

/// Relevance judgements for one query, as an admin imports them (qrels, triples).
public struct Judgement: Sendable, Equatable {
  /// The query text, logged as a `.judgement` entry.
  public var query: String
  /// Document id → grade (1 = relevant; 0 = judged not relevant, e.g. a hard negative).
  public var relevant: [String: Int]
  /// The file the judgement was read from (nil: not from a file), named in errors.
  public var source: String?
  /// Document id → the line of `source` that judged it, named in errors.
  public var lines: [String: Int]
  /// Judgements of `relevant`'s documents (id → grade) for `query`; `source` and
  /// `lines` say where they were read, if from a file.
  public init(
    query: String, relevant: [String: Int], source: String? = nil, lines: [String: Int] = [:]
  ) {
    self.query = query
    self.relevant = relevant
    self.source = source
    self.lines = lines
  }

  /// Reads training triples in JSON Lines:
  /// `{"query": "…", "positive": "DOC-ID", "hard_negatives": ["DOC-ID", …]}` (also
  /// `"positives": [...]`). Positives get grade 1, hard negatives grade 0.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line (a missing, mistyped
  ///   or unknown field).
  public static func triples(path: String) throws -> [Judgement] {
    let data = try TextFile.contents(path)
    var judgements: [Judgement] = []
    try JSONLines.forEach(in: data) { line, bytes in
      let object = try JSONLines.object(from: bytes, source: path, line: line)
      try JSONLines.checkFields(
        object, known: ["query", "positive", "positives", "hard_negatives"], source: path,
        line: line)
      func fail(_ reason: String) -> VectorDBError {
        .invalidInput(source: path, line: line, reason: reason)
      }
      guard case .string(let query) = object["query"], !query.isBlank else {
        throw fail("missing field \"query\" (a non-empty string)")
      }
      func strings(_ key: String) throws -> [String] {
        switch object[key] {
        case nil, .null: return []
        case .string(let one): return [one]
        case .array(let many):
          return try many.map {
            guard case .string(let id) = $0 else {
              throw fail("field \"\(key)\" must hold document ids (strings)")
            }
            return id
          }
        default: throw fail("field \"\(key)\" must be a document id or an array of them")
        }
      }
      let positives = try strings("positive") + strings("positives")
      guard !positives.isEmpty else { throw fail("missing field \"positive\"") }
      var relevant: [String: Int] = [:]
      for id in try strings("hard_negatives") { relevant[id] = 0 }
      for id in positives { relevant[id] = 1 }
      judgements.append(
        Judgement(
          query: query, relevant: relevant, source: path,
          lines: relevant.mapValues { _ in line }))
    }
    return judgements
  }

  /// The judgements a qrels TSV (BEIR) makes of the queries of a `queries.jsonl`, as
  /// `vdb feedback --qrels --queries` logs them: per query (in id order) its relevant
  /// documents (grade > 0); a query with none is left out. Each keeps the line of each
  /// document, so that an unknown document is reported at its line.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line: a malformed row
  ///   or query, a qrels row whose query the queries file lacks; naming the file when no
  ///   row judges a document relevant (an empty file, or one whose only line was taken
  ///   for the header).
  public static func qrels(path: String, queries queriesPath: String) throws -> [Judgement] {
    let texts = try BEIR.queries(path: queriesPath)
    var judged: [String: [String: (grade: Int, line: Int)]] = [:]
    try BEIR.forEachRow(of: TextFile.contents(path), source: path) { line, query, document, grade in
      guard texts[query] != nil else {
        throw VectorDBError.invalidInput(
          source: path, line: line, reason: "query \"\(query)\" is not in \(queriesPath)")
      }
      judged[query, default: [:]][document] = (grade, line)
    }
    let judgements = judged.keys.sorted().compactMap { query -> Judgement? in
      let relevant = judged[query]!.filter { $0.value.grade > 0 }
      guard !relevant.isEmpty else { return nil }
      return Judgement(
        query: texts[query]!, relevant: relevant.mapValues(\.grade), source: path,
        lines: relevant.mapValues(\.line))
    }
    guard judgements.isEmpty else { return judgements }
    throw VectorDBError.invalidInput(
      source: path, line: nil,
      reason: judged.isEmpty
        ? "no judgement rows (query-id, corpus-id, score); a first line whose score is not an"
          + " integer is read as the header"
        : "no row has a score above 0: no document is judged relevant")
  }
}

extension Database {
  /// Log entries with their feedback, oldest first: those after log id `after`
  /// and not older than `since`, of `collection` if given, at most `limit`.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` for a `collection` that does not exist
  ///   and has no entries (a dropped collection's kept log still lists); `.storage`;
  ///   `.damaged` for an unreadable entry.
  public func logEntries(
    collection: String? = nil, since: Date? = nil, after: UInt64 = 0, limit: Int = 100
  ) throws -> [LogEntry] {
    try flushLog()
    let (log, schema) = (schema.log, schema)
    return try storage {
      try environment.read { txn in
        var result: [LogEntry] = []
        guard limit > 0 else { return result }
        try txn.forEach(in: log.entries, from: after + 1) { key, value in
          var entry = try QueryLogStore.entryDecoder.decode(LogEntry.self, from: Data(value))
          if let since, entry.time < since { return true }
          if let collection, entry.collection != collection { return true }
          entry.feedback = try log.feedback(for: entry.id, in: txn)
          result.append(entry)
          return result.count < limit
        }
        if result.isEmpty, let collection,
          try Database.collectionRecord(collection, in: txn, schema: schema) == nil
        {
          throw VectorDBError.collectionNotFound(collection)
        }
        return result
      }
    }
  }

  /// Calls `body` with every log entry of `collection` (with its feedback), oldest
  /// first, reading a page of entries per transaction.
  func forEachLogEntry(collection: String, _ body: (LogEntry) throws -> Void) throws {
    var after: UInt64 = 0
    while true {
      let entries = try logEntries(collection: collection, after: after, limit: 1000)
      guard let last = entries.last else { return }
      after = last.id
      for entry in entries { try body(entry) }
    }
  }

  /// The log entry `id` with its feedback, or `nil` (never logged, or pruned).
  ///
  /// - Throws: `VectorDBError.storage`; `.damaged` for an unreadable entry.
  public func logEntry(_ id: UInt64) throws -> LogEntry? {
    try flushLog()
    let log = schema.log
    return try storage { try environment.read { try log.entry(id, in: $0) } }
  }

  /// How long the query log keeps entries (default: the last 1,000,000).
  ///
  /// - Throws: `VectorDBError.storage`; `.damaged` for an unreadable setting.
  public func logRetention() throws -> LogRetention {
    let log = schema.log
    return try storage { try environment.read { try log.retention(in: $0) } }
  }

  /// Waits until the log entries of this process's queries and routing decisions are
  /// committed (they are written in the background, see `LogWriter`). Reading the logs,
  /// feedback, outcomes and collection changes do it themselves.
  ///
  /// - Throws: `VectorDBError.storage` when a background log commit failed (its
  ///   entries are lost).
  public func flushLog() throws {
    try storage {
      try logWriter.flush()
      try routeLogWriter.flush()
    }
  }

  /// Changes the retention and prunes what falls outside it, in the query log and in
  /// the routers' log, in one transaction.
  ///
  /// - Throws: `VectorDBError.invalidInput` for `maxEntries` below 1 or a `maxAge` not
  ///   above 0 or above 3.2e10 s (nothing changes); `.storage`.
  public func setLogRetention(_ retention: LogRetention) throws {
    if let count = retention.maxEntries, count < 1 {
      throw VectorDBError.invalidInput(
        source: "log retention", line: nil, reason: "max_entries must be at least 1 (got \(count))")
    }
    // Zero would empty both logs at once, as max_entries 0 would; past a thousand years
    // an age limit is no limit.
    if let age = retention.maxAge, !(age > 0 && age <= 3.2e10) {
      throw VectorDBError.invalidInput(
        source: "log retention", line: nil,
        reason: "max_age must be seconds above 0 and at most 3.2e10, a thousand years (got \(age))"
      )
    }
    try flushLog()
    let meta = schema.meta
    let log = schema.log
    let routes = schema.routing
    try storage {
      try environment.write { txn in
        try txn.put(meta, key: MetaKey.logRetention, value: try JSONEncoder().encode(retention))
        let now = Date()
        try log.prune(retention, now: now, in: txn)
        try routes.prune(retention, now: now, in: txn)
      }
    }
  }
}
