import Foundation
import HNSW
import LMDB
import TextSearch
import Training

/// One document returned by a query.
public struct SearchHit: Codable, Equatable, Sendable {
  /// The document's id (JSON `id`).
  public var id: String
  /// Larger is closer: the cosine similarity (`cosine`), the inner product (`dot`), or
  /// the negated Euclidean distance (`l2`).
  public var score: Float
  /// The document's text (JSON `text`).
  public var text: String
  /// The document's metadata (JSON `metadata`; `{}` when none).
  public var metadata: [String: JSONValue]
  /// Which searches found the document, with its rank and score in each.
  public var sources: HitSources? = nil
}

/// Where a hit came from: its place in the dense and in the keyword list (null where
/// that search did not return it, or did not run).
public struct HitSources: Codable, Equatable, Sendable {
  /// Its rank and score in the dense list (JSON `dense`; null: not in it).
  public var dense: HitSource?
  /// Its rank and score in the keyword list (JSON `keyword`; null: not in it).
  public var keyword: HitSource?

  /// Encodes both keys, writing `null` for a list that did not return the hit.
  ///
  /// - Throws: `EncodingError.invalidValue` from the encoder (a NaN score).
  public func encode(to encoder: Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(dense, forKey: .dense)
    try container.encode(keyword, forKey: .keyword)
  }
}

/// A hit's rank (from 1) and score in one search's list.
public struct HitSource: Codable, Equatable, Sendable {
  /// Its place in the list, from 1 (JSON `rank`).
  public var rank: Int
  /// The similarity (dense) or the BM25 score (keyword).
  public var score: Float
}

/// How a text query searches (docs/search.md).
public enum SearchMode: String, Codable, Sendable, CaseIterable {
  /// Nearest neighbours of the query's embedding.
  case dense
  /// BM25 over the full-text index.
  case keyword
  /// Both, fused into one list (`QueryOptions.fusion`).
  case hybrid
}

/// The hits of one query, best first, and the log id to send feedback to.
public struct QueryResult: Codable, Equatable, Sendable {
  /// The query's entry in the query log; nil when not logged (`log` false, or a log that
  /// cannot be written, as on a full disk: `Database.flushLog()` then throws why).
  public var logID: UInt64?
  /// The hits, best first, at most `k` (JSON `hits`).
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
  /// Dense, keyword or hybrid; nil: the collection's default (`DocumentCollection.searchMode`).
  public var mode: SearchMode?
  /// How hybrid merges its two lists; nil: convex with the alpha of the collection's
  /// serving fusion version (`vdb train --tier fusion`), else `Fusion.defaultHybrid`
  /// (docs/search.md says why).
  public var fusion: Fusion?
  /// How many hits hybrid takes from each list before fusing (at least k).
  public var hybridDepth = 100

  /// Options for a query; every argument defaults to the property's default.
  public init(
    k: Int = 10, ef: Int = 64, filter: Filter? = nil, exact: Bool = false, log: Bool = true,
    mode: SearchMode? = nil, fusion: Fusion? = nil
  ) {
    self.k = k
    self.ef = ef
    self.filter = filter
    self.exact = exact
    self.log = log
    self.mode = mode
    self.fusion = fusion
  }

  /// - Throws: `VectorDBError.invalidInput` for k or ef below 1, or a convex alpha
  ///   outside [0, 1].
  func validate() throws {
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: "query", line: nil, reason: reason)
    }
    guard k > 0 else { throw fail("k must be positive") }
    guard ef > 0 else { throw fail("ef must be positive") }
    if case .convex(let alpha) = fusion, !(0...1).contains(alpha) {
      throw fail("alpha must be within [0, 1] (got \(alpha))")
    }
  }
}

extension DocumentCollection {
  /// The `k` best documents for `text`, searched by `mode` (nil: the collection's
  /// default, see `SearchMode`); dense search embeds it with the active generation's model.
  ///
  ///     let result = try docs.query(text: "sugar consumption and diabetes risk", k: 5)
  ///     for hit in result.hits { print(hit.score, hit.id, hit.text.prefix(60)) }
  ///     try docs.feedback(logID: result.logID!, documentID: result.hits[0].id)
  ///
  /// - Throws: `VectorDBError.notAvailable` for a mode the collection cannot serve
  ///   (dense without a model, keyword without a text index);
  ///   `.invalidInput` for an empty (or only white space) text.
  public func query(
    text: String, k: Int = 10, filter: Filter? = nil, ef: Int = 64, exact: Bool = false,
    log: Bool = true, mode: SearchMode? = nil
  ) throws -> QueryResult {
    try query(
      texts: [text],
      options: QueryOptions(k: k, ef: ef, filter: filter, exact: exact, log: log, mode: mode))[0]
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
  ///
  /// - Throws: as `query(text:mode:k:ef:filter:exact:log:)`.
  public func query(texts: [String], options: QueryOptions = QueryOptions()) throws -> [QueryResult]
  {
    try search(texts: texts, vectors: nil, options: options)
  }

  /// Many vector queries, logged in one transaction.
  ///
  /// - Throws: `VectorDBError.invalidVector` for a vector the collection cannot hold;
  ///   `.notAvailable` for a collection without vectors; `.invalidInput` for bad options.
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
  /// training gate) when given, by the mode `options` asks for (or the collection's
  /// default). Text queries are embedded with the generation's model and mapped by
  /// `adapter`; given vectors are searched as they are.
  func search(
    texts: [String]?, vectors: [[Float]]?, options: QueryOptions, generation: UInt32? = nil,
    adapter choice: AdapterChoice = .generation
  ) throws -> [QueryResult] {
    try options.validate()
    guard let record = try database.collectionRecord(name), record.id == id else {
      throw VectorDBError.collectionNotFound(name)
    }
    let mode = try searchMode(options.mode, record: record, byVector: vectors != nil)
    // A blank query is a mistake (an unset shell variable, an empty form field), not a
    // search: it would answer with arbitrary documents and log them as if asked.
    if let texts, let blank = texts.firstIndex(where: \.isBlank) {
      throw VectorDBError.invalidInput(
        source: "query", line: texts.count > 1 ? blank + 1 : nil, reason: "the query text is empty")
    }
    if mode != .dense || options.filter?.hasText ?? false, record.textIndexIsStale {
      try buildTextIndex()
    }
    while true {
      let plan = mode == .keyword ? nil : try indexPlan(generation: generation)
      var queryVectors: [[Float]] = []
      if let plan {
        queryVectors = try self.queryVectors(
          texts: texts, vectors: vectors, plan: plan, adapter: choice)
      }
      guard
        let hits = try read({ txn in
          try searchSnapshot(
            texts: texts ?? [], vectors: queryVectors, mode: mode, plan: plan, options: options,
            pinned: generation != nil, in: txn)
        })
      else {
        continue  // the active generation changed under us: search the new one
      }
      var results = hits.map { QueryResult(logID: nil, hits: $0) }
      if options.log,
        let ids = appendLog(results, texts: texts, plan: plan, mode: mode, options: options)
      {
        for index in results.indices { results[index].logID = ids[index] }
      }
      return results
    }
  }

  /// The mode a query runs in: the one asked for, or the collection's default
  /// (hybrid for texts embedded by a model, keyword for documents without vectors,
  /// dense for given vectors and for queries by vector).
  ///
  /// - Throws: `VectorDBError.notAvailable` for a mode the collection cannot serve,
  ///   `.invalidInput` for keyword or hybrid with a query vector.
  func searchMode(_ requested: SearchMode?, record: CollectionRecord, byVector: Bool) throws
    -> SearchMode
  {
    guard record.vectors != nil || record.hasText else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "has neither vectors nor a text index: it cannot be searched")
    }
    let mode =
      requested
      ?? (byVector || !record.hasText ? .dense : record.vectors == nil ? .keyword : .hybrid)
    if mode != .dense {
      guard record.hasText else { throw noTextIndex }
      if byVector {
        throw VectorDBError.invalidInput(
          source: "query", line: nil,
          reason: "a query by vector can only be dense (\(mode.rawValue) search needs query text)")
      }
    }
    if mode != .keyword, record.vectors == nil {
      throw VectorDBError.notAvailable(
        collection: name,
        reason: "has no vectors to search (it was created without a model): use --mode keyword")
    }
    return mode
  }

  /// The vectors to search: the given ones (checked), or the texts embedded with the
  /// generation's model and mapped by the adapter.
  private func queryVectors(
    texts: [String]?, vectors: [[Float]]?, plan: IndexPlan, adapter choice: AdapterChoice
  ) throws -> [[Float]] {
    // The model that makes the vectors; nil when they are given.
    let model = vectors == nil ? plan.generation.model : nil
    let checked: [[Float]]
    if let vectors {
      checked = vectors
    } else if let model {
      let encoder = try database.encoder(version: model)
      checked = encoder.embedCoalesced(encoder.prompted(texts ?? [], as: .query))
    } else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "holds given vectors: query it with a vector")
    }
    for (number, vector) in checked.enumerated() {
      guard let problem = plan.settings.problem(with: vector) else { continue }
      let query = "query \(number + 1) of \(checked.count): \(problem)"
      guard let model else {
        throw VectorDBError.invalidVector(reason: query + " (collection \"\(name)\")")
      }
      throw VectorDBError.modelUnsuitable(
        version: model, reason: "made an unusable vector of " + query)
    }
    guard vectors == nil else { return checked }  // given vectors are not adapted
    let adapter: QueryAdapter<Float>?
    switch choice {
    case .generation: adapter = try plan.generation.adapter.map(database.queryAdapter)
    case .candidate(let candidate): adapter = candidate
    }
    return adapter.map { $0.apply(to: checked) } ?? checked
  }

  /// Searches in one snapshot; nil when the active generation is no longer `plan`'s.
  private func searchSnapshot(
    texts: [String], vectors: [[Float]], mode: SearchMode, plan: IndexPlan?,
    options: QueryOptions, pinned: Bool, in txn: Transaction
  ) throws -> [[SearchHit]]? {
    guard let record = try Database.collectionRecord(name, in: txn, schema: database.schema)
    else { throw VectorDBError.collectionNotFound(name) }
    if let plan, !pinned, record.active != plan.generation.id { return nil }
    let candidates = try options.filter.map { try rows(matching: $0, in: txn) }
    // Hybrid fuses deeper lists than it returns, so that a document one side ranks
    // low can still rise.
    let depth = mode == .hybrid ? max(options.k, options.hybridDepth) : options.k
    let accepted = candidates.map(Set.init)
    return try (0..<max(texts.count, vectors.count)).map { index in
      var dense: [ScoredDocument] = []
      var keyword: [ScoredDocument] = []
      if let plan {
        dense = try denseSearch(
          vectors[index], k: depth, plan: plan, options: options, candidates: candidates, in: txn)
      }
      if mode != .dense, let text = record.text {
        keyword = try textIndex.search(
          texts[index], k: depth, record: text,
          accept: accepted.map { set in { set.contains($0) } },
          exhaustive: options.exact, in: txn)
      }
      let ranked: [ScoredDocument]
      switch mode {
      case .dense: ranked = dense
      case .keyword: ranked = keyword
      case .hybrid:
        let fusion =
          options.fusion ?? record.text?.alpha.map { .convex(alpha: $0) } ?? .defaultHybrid
        ranked = Array(fusion.fuse(dense: dense, keyword: keyword).prefix(options.k))
      }
      return try hits(ranked, dense: dense, keyword: keyword, in: txn)
    }
  }

  /// The hits of `ranked`, each with its document and its place in the `dense` and
  /// `keyword` lists it was made from.
  private func hits(
    _ ranked: [ScoredDocument], dense: [ScoredDocument], keyword: [ScoredDocument],
    in txn: Transaction
  ) throws -> [SearchHit] {
    func source(in list: [ScoredDocument]) -> (UInt32) -> HitSource? {
      let ranks = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($1.document, $0) })
      return { row in
        ranks[row].map { HitSource(rank: $0 + 1, score: Float(list[$0].score)) }
      }
    }
    let (denseSource, keywordSource) = (source(in: dense), source(in: keyword))
    return try ranked.map { hit in
      guard let (documentID, document) = try document(row: hit.document, in: txn) else {
        throw VectorDBError.damaged(
          path: database.path, detail: "index entry \(hit.document) has no document")
      }
      return SearchHit(
        id: documentID, score: Float(hit.score), text: document.text,
        metadata: try document.metadata(),
        sources: HitSources(
          dense: denseSource(hit.document), keyword: keywordSource(hit.document)))
    }
  }

  /// The graph (or exact) search of one vector, scored by similarity.
  private func denseSearch(
    _ vector: [Float], k: Int, plan: IndexPlan, options: QueryOptions, candidates: [UInt32]?,
    in txn: Transaction
  ) throws -> [ScoredDocument] {
    let neighbors: [Neighbor]
    let ef = max(options.ef, k)
    switch (options.exact, candidates) {
    case (true, let candidates):
      neighbors = try plan.index.exactSearch(vector, k: k, candidates: candidates, in: txn)
    case (false, .some(let candidates)):
      neighbors = try plan.index.search(vector, k: k, ef: ef, candidates: candidates, in: txn)
    case (false, nil):
      neighbors = try plan.index.search(vector, k: k, ef: ef, in: txn)
    }
    return neighbors.map {
      ScoredDocument(
        document: $0.id, score: Double(plan.settings.metric.similarity(fromDistance: $0.distance)))
    }
  }

  /// The id and record of the document with row id `row`, or nil.
  func document(row: UInt32, in txn: Transaction) throws -> (String, DocumentRecord)? {
    guard
      let idBytes = try txn.get(database.schema.rows, key: RowKey(collection: id, row: row)),
      case let documentID = String(decoding: idBytes, as: UTF8.self),
      let bytes = try txn.get(
        database.schema.docs, key: DocumentKey(collection: id, id: documentID))
    else { return nil }
    return (documentID, try DocumentRecord(bytes: bytes, path: database.path))
  }

  /// The rows that match `filter`: from the metadata and text indexes where they can
  /// answer (checking the documents when they give a superset), else by reading
  /// every document of the collection.
  func rows(matching filter: Filter, in txn: Transaction) throws -> [UInt32] {
    let index = MetadataIndex(table: database.schema.metadataIndex, collection: id)
    var found = try index.rows(matching: filter, in: txn)
    if found != nil, filter.hasText { found!.exact = false }
    // Without a text index (or with one of another analyzer) `$text` reads the documents.
    if let words = filter.requiredText,
      let record = try Database.collectionRecord(name, in: txn, schema: database.schema),
      record.hasText, !record.textIndexIsStale
    {
      let rows = try textIndex.rows(containingAll: words, in: txn)
      found = found.map { ($0.rows.intersection(rows), false) } ?? (rows, false)
    }
    if let found {
      if found.exact { return found.rows.sorted() }
      return try found.rows.sorted().filter { row in
        guard let (_, document) = try document(row: row, in: txn) else { return false }
        return filter.matches(try document.metadata(), text: document.text)
      }
    }
    var rows: [UInt32] = []
    try txn.forEach(in: database.schema.docs, under: .collection(id)) { _, value in
      let document = try DocumentRecord(bytes: value, path: database.path)
      if filter.matches(try document.metadata(), text: document.text) { rows.append(document.row) }
      return true
    }
    return rows
  }

  /// Queues the log entries (committed in the background; see `LogWriter`); nil when
  /// the log cannot be written (`flushLog` then says why).
  private func appendLog(
    _ results: [QueryResult], texts: [String]?, plan: IndexPlan?, mode: SearchMode,
    options: QueryOptions
  ) -> [UInt64]? {
    let filterJSON = options.filter?.description
    let now = Date()
    let entries = results.enumerated().map { index, result in
      LogEntry(
        id: 0, time: now, collection: name, kind: .query, text: texts?[index],
        model: plan?.generation.model ?? 0, generation: Int(plan?.generation.id ?? 0),
        k: options.k, filter: filterJSON,
        hits: result.hits.map { LogEntry.Hit(id: $0.id, score: $0.score) },
        adapter: texts == nil ? nil : plan?.generation.adapter, mode: mode)
    }
    return database.logWriter.append(entries)
  }
}
