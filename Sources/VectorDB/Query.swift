import Foundation
import HNSW
import LMDB
import Training

/// One document returned by a query.
public struct SearchHit: Codable, Equatable, Sendable {
  public var id: String
  /// Larger is closer: the cosine similarity (`cosine`), the inner product (`dot`), or
  /// the negated Euclidean distance (`l2`).
  public var score: Float
  public var text: String
  public var metadata: [String: JSONValue]
}

/// The hits of one query, best first, and the log id to send feedback to.
public struct QueryResult: Codable, Equatable, Sendable {
  /// The query's entry in the query log; nil when not logged.
  public var logID: UInt64?
  public var hits: [SearchHit]

  enum CodingKeys: String, CodingKey {
    case logID = "log_id"
    case hits
  }
}

/// How a query searches.
public struct QueryOptions: Sendable {
  /// How many hits.
  public var k = 10
  /// Search width of the HNSW walk: larger is more exact and slower (docs/index.md).
  public var ef = 64
  /// Only documents whose metadata matches.
  public var filter: Filter?
  /// Compare with every document instead of walking the graph (ground truth).
  public var exact = false
  /// Record the query in the query log (its id comes back in the result).
  public var log = true

  public init(
    k: Int = 10, ef: Int = 64, filter: Filter? = nil, exact: Bool = false, log: Bool = true
  ) {
    self.k = k
    self.ef = ef
    self.filter = filter
    self.exact = exact
    self.log = log
  }
}

extension Collection {
  /// The `k` documents nearest to `text`, embedded with the active generation's model.
  ///
  ///     let result = try docs.query(text: "sugar consumption and diabetes risk", k: 5)
  ///     for hit in result.hits { print(hit.score, hit.id, hit.text.prefix(60)) }
  ///     try docs.feedback(logID: result.logID!, documentID: result.hits[0].id)
  ///
  /// - Throws: `VectorDBError.unsupported` for a collection without a model.
  public func query(
    text: String, k: Int = 10, filter: Filter? = nil, ef: Int = 64, exact: Bool = false,
    log: Bool = true
  ) throws -> QueryResult {
    try query(
      texts: [text], options: QueryOptions(k: k, ef: ef, filter: filter, exact: exact, log: log))[0]
  }

  /// The `k` documents nearest to `vector` (see `query(text:…)`).
  ///
  /// - Throws: `VectorDBError.invalidVector` for a wrong dimension.
  public func query(
    vector: [Float], k: Int = 10, filter: Filter? = nil, ef: Int = 64, exact: Bool = false,
    log: Bool = true
  ) throws -> QueryResult {
    try query(
      vectors: [vector], options: QueryOptions(k: k, ef: ef, filter: filter, exact: exact, log: log)
    )[0]
  }

  /// Many text queries: embedded in one batch, logged in one transaction.
  public func query(texts: [String], options: QueryOptions = QueryOptions()) throws -> [QueryResult]
  {
    try search(texts: texts, vectors: nil, options: options)
  }

  /// Many vector queries, logged in one transaction.
  public func query(vectors: [[Float]], options: QueryOptions = QueryOptions()) throws
    -> [QueryResult]
  {
    try search(texts: nil, vectors: vectors, options: options)
  }

  /// Which query adapter maps text queries before the search.
  enum AdapterChoice {
    /// The generation's own (if it has one).
    case generation
    /// A candidate under evaluation.
    case candidate(QueryAdapter<Float>)
  }

  /// Searches the active generation, or `generation` (a building one, for the
  /// training gate) when given. Text queries are embedded with the generation's model
  /// and mapped by `adapter`; given vectors are searched as they are.
  func search(
    texts: [String]?, vectors: [[Float]]?, options: QueryOptions, generation: UInt32? = nil,
    adapter choice: AdapterChoice = .generation
  ) throws -> [QueryResult] {
    guard options.k > 0 else {
      throw VectorDBError.invalidInput(source: "query", line: nil, reason: "k must be positive")
    }
    guard options.ef > 0 else {
      throw VectorDBError.invalidInput(source: "query", line: nil, reason: "ef must be positive")
    }
    while true {
      guard let plan = try indexPlan(generation: generation) else {
        throw VectorDBError.unsupported(
          "collection \"\(name)\" has no vectors to search (it was created without a model)")
      }
      let queryVectors: [[Float]]
      if let vectors {
        for (number, vector) in vectors.enumerated() {
          if let problem = plan.settings.problem(with: vector) {
            throw VectorDBError.invalidVector(
              reason: "query \(number + 1) of \(vectors.count): \(problem) (collection \"\(name)\")"
            )
          }
        }
        queryVectors = vectors
      } else {
        guard let model = plan.generation.model else {
          throw VectorDBError.unsupported(
            "collection \"\(name)\" holds given vectors: query it with a vector")
        }
        let embedded = try database.encoder(version: model).embed(texts ?? [])
        let adapter: QueryAdapter<Float>?
        switch choice {
        case .generation: adapter = try plan.generation.adapter.map(database.queryAdapter)
        case .candidate(let candidate): adapter = candidate
        }
        queryVectors = adapter.map { $0.apply(to: embedded) } ?? embedded
      }
      guard
        let hits = try read({ txn in
          try searchSnapshot(
            queryVectors, plan: plan, options: options, pinned: generation != nil, in: txn)
        })
      else {
        continue  // the active generation changed under us: search the new one
      }
      var results = hits.map { QueryResult(logID: nil, hits: $0) }
      if options.log {
        let ids = try appendLog(results, texts: texts, plan: plan, options: options)
        for index in results.indices { results[index].logID = ids[index] }
      }
      return results
    }
  }

  /// Searches in one snapshot; nil when the active generation is no longer `plan`'s.
  private func searchSnapshot(
    _ queries: [[Float]], plan: IndexPlan, options: QueryOptions, pinned: Bool, in txn: Transaction
  ) throws -> [[SearchHit]]? {
    guard let record = try Database.collectionRecord(name, in: txn, schema: database.schema),
      pinned || record.active == plan.generation.id
    else { return nil }
    let candidates = try options.filter.map { try rows(matching: $0, in: txn) }
    return try queries.map { vector in
      let neighbors: [Neighbor]
      switch (options.exact, candidates) {
      case (true, let candidates):
        neighbors = try plan.index.exactSearch(
          vector, k: options.k, candidates: candidates, in: txn)
      case (false, .some(let candidates)):
        neighbors = try plan.index.search(
          vector, k: options.k, ef: options.ef, candidates: candidates, in: txn)
      case (false, nil):
        neighbors = try plan.index.search(vector, k: options.k, ef: options.ef, in: txn)
      }
      return try neighbors.map { neighbor in
        guard let (documentID, document) = try document(row: neighbor.id, in: txn) else {
          throw VectorDBError.damaged(
            path: database.path, detail: "index node \(neighbor.id) has no document")
        }
        return SearchHit(
          id: documentID,
          score: plan.settings.metric.similarity(fromDistance: neighbor.distance),
          text: document.text, metadata: try document.metadata())
      }
    }
  }

  /// The id and record of the document with row id `row`, or nil.
  func document(row: UInt32, in txn: Transaction) throws -> (String, DocumentRecord)? {
    guard
      let idBytes = try txn.get(database.schema.rows, key: Schema.rowKey(collection: id, row: row)),
      let bytes = try txn.get(
        database.schema.docs, key: KeyBuilder().uint32(id).bytes + Array(idBytes))
    else { return nil }
    return (
      String(decoding: idBytes, as: UTF8.self),
      try DocumentRecord(bytes: bytes, path: database.path)
    )
  }

  /// The rows whose metadata matches `filter`: from the metadata index where it can
  /// answer (checking the documents when it gives a superset), else by reading every
  /// document of the collection.
  func rows(matching filter: Filter, in txn: Transaction) throws -> [UInt32] {
    let index = MetadataIndex(table: database.schema.metadataIndex, collection: id)
    if let found = try index.rows(matching: filter, in: txn) {
      if found.exact { return found.rows.sorted() }
      return try found.rows.sorted().filter { row in
        guard let (_, document) = try document(row: row, in: txn) else { return false }
        return filter.matches(try document.metadata())
      }
    }
    var rows: [UInt32] = []
    let prefix = KeyBuilder().uint32(id)
    try txn.forEach(in: database.schema.docs, from: prefix) { key, value in
      guard key.starts(with: prefix.bytes) else { return false }
      let document = try DocumentRecord(bytes: value, path: database.path)
      if filter.matches(try document.metadata()) { rows.append(document.row) }
      return true
    }
    return rows
  }

  /// Queues the log entries (committed in the background; see `LogWriter`).
  private func appendLog(
    _ results: [QueryResult], texts: [String]?, plan: IndexPlan, options: QueryOptions
  ) throws -> [UInt64] {
    let filterJSON = options.filter?.description
    let now = Date()
    let entries = results.enumerated().map { index, result in
      LogEntry(
        id: 0, time: now, collection: name, kind: .query, text: texts?[index],
        model: plan.generation.model ?? 0, generation: Int(plan.generation.id), k: options.k,
        filter: filterJSON, hits: result.hits.map { LogEntry.Hit(id: $0.id, score: $0.score) },
        adapter: texts == nil ? nil : plan.generation.adapter)
    }
    return try storage { try database.logWriter.append(entries) }
  }
}
