import Foundation
import Training

/// Retrieval quality of a collection, as sentence-transformers'
/// `InformationRetrievalEvaluator` measures it (formulas in docs/evaluation.md).
public struct EvaluationReport: Codable, Sendable {
  /// Mean metrics keyed as sentence-transformers names them: `ndcg@10`, `mrr@10`,
  /// `recall@{1,3,5,10,100}`, `precision@k`, `accuracy@{1,3,5,10}`, `map@100`.
  public var metrics: [String: Double]
  /// Queries evaluated (those with at least one relevant document).
  public var queries: Int
  /// Per query id: its metrics (only when asked for).
  public var perQuery: [String: [String: Double]]?
  /// Wall-clock seconds the evaluation took (JSON `seconds`).
  public var seconds: Double
  /// How the queries searched.
  public var mode: SearchMode
}

/// The logged queries with relevant feedback, as evaluation input
/// (`DocumentCollection.loggedJudgements(unseen:model:)`).
public struct LoggedJudgements: Sendable {
  /// Query id "log:ID" → its text.
  public var queries: [String: String]
  /// Query id → judged document id → grade.
  public var qrels: [String: [String: Int]]
  /// How many of `queries` the model was fitted on (scored in-sample; 0 with `unseen`).
  public var inSample: Int
  /// How many `unseen` left out because the model was fitted on them (0 without it).
  public var leftOut: Int
}

/// Where the retriever fails, over logged queries with feedback (DESIGN.md §6): is the
/// relevant document missing from the results (train the retriever), present but
/// ranked low (ranking), or first?
public struct Diagnosis: Codable, Sendable {
  /// One judged query: its log id, text, and where its best relevant document ranked.
  public struct Case: Codable, Sendable {
    /// The query's log id (JSON `log_id`).
    public var logID: UInt64
    /// The query text (JSON `query`).
    public var query: String
    /// The relevant document ranked best, and its rank (nil: not returned at all).
    public var document: String
    /// Its rank, from 1 (JSON `rank`; nil: not returned).
    public var rank: Int?
  }
  /// Queries with at least one relevant document judged.
  public var queries: Int
  /// Share whose relevant documents were all outside the top k: retriever failures.
  public var notFound: Double
  /// Share with a relevant document in the top k but not first.
  public var rankedLow: Double
  /// Share with a relevant document first.
  public var first: Double
  /// The cut-off: "found" means in the top `k` (JSON `k`).
  public var k: Int
  /// The worst cases: not found first, then by rank.
  public var worst: [Case]
  /// Dense against keyword search on the same queries (nil: the collection lacks one of
  /// them).
  public var paths: PathComparison?
  /// How many of `queries` the serving encoder or its query adapter (or a version they
  /// descend from) was fitted on (JSON `in_sample`): what it finds of those says little.
  public var inSample: Int

  /// Which search path finds a relevant document in its top k, as shares of the judged
  /// queries. A high `keywordOnly` says the encoder misses what the words say: training
  /// the retriever (or hybrid search) should help; a high `denseOnly` is what the dense
  /// path adds over words.
  public struct PathComparison: Codable, Sendable {
    /// Share found by both paths (JSON `both`).
    public var both: Double
    /// Share found by the dense path only (JSON `dense_only`).
    public var denseOnly: Double
    /// Share found by the keyword path only (JSON `keyword_only`).
    public var keywordOnly: Double
    /// Share found by neither (JSON `neither`).
    public var neither: Double
    /// Queries the keyword path answers and the dense path misses (`rank` is the keyword
    /// path's), the first few by log id.
    public var keywordOnlyCases: [Case]
  }
}

extension DocumentCollection {
  /// Runs `queries` (id → text; none logged) and scores the hits against `qrels`
  /// (query id → document id → grade).
  ///
  /// - Parameters:
  ///   - exact: compare with every document instead of the index.
  ///   - perQuery: keep each query's metrics in the report.
  ///   - mode, fusion: how the queries search (nil: the collection's default mode).
  ///
  /// - Throws: `VectorDBError.notAvailable` for a mode the collection
  ///   cannot serve; the errors of `query`; what `progress` throws.
  public func evaluate(
    queries: [String: String], qrels: [String: [String: Int]], exact: Bool = false, ef: Int = 64,
    perQuery: Bool = false, mode: SearchMode? = nil, fusion: Fusion? = nil,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> EvaluationReport {
    try evaluate(
      queries: queries, qrels: qrels, exact: exact, ef: ef, perQuery: perQuery, generation: nil,
      adapter: .generation, mode: mode, fusion: fusion, progress: progress)
  }

  /// The training gate's evaluation leaves `mode` dense: it compares encoders.
  func evaluate(
    queries: [String: String], qrels: [String: [String: Int]], exact: Bool, ef: Int, perQuery: Bool,
    generation: UInt32?, adapter: AdapterChoice, mode requested: SearchMode? = .dense,
    fusion: Fusion? = nil, progress: ((OperationProgress) throws -> Void)?
  ) throws -> EvaluationReport {
    guard let record = try database.collectionRecord(name) else {
      throw VectorDBError.collectionNotFound(name)
    }
    let mode = try searchMode(requested, record: record, byVector: false)
    let start = Date()
    let cutoffs = MetricCutoffs()
    let ids = try Self.judgedQueryIDs(queries: queries, qrels: qrels)
    var results: [String: [ScoredHit]] = [:]
    let chunk = 64
    for first in stride(from: 0, to: ids.count, by: chunk) {
      let part = Array(ids[first..<min(first + chunk, ids.count)])
      let found = try search(
        texts: part.map { queries[$0]! }, vectors: nil,
        options: QueryOptions(
          k: cutoffs.deepest, ef: max(ef, cutoffs.deepest), exact: exact, log: false, mode: mode,
          fusion: fusion),
        generation: generation, adapter: adapter)
      for (id, result) in zip(part, found) {
        results[id] = result.hits.map { ScoredHit(id: $0.id, score: Double($0.score)) }
      }
      try progress?(OperationProgress(done: results.count, total: ids.count))
    }
    let evaluation = RetrievalMetrics.evaluate(
      results: results, qrels: qrels.filter { results[$0.key] != nil }, cutoffs: cutoffs)
    return EvaluationReport(
      metrics: evaluation.means, queries: evaluation.queries,
      perQuery: perQuery ? evaluation.perQuery : nil,
      seconds: Date().timeIntervalSince(start), mode: mode)
  }

  /// The ids of `queries` with a relevant document in `qrels`, sorted: the queries an
  /// evaluation scores.
  ///
  /// - Throws: `VectorDBError.invalidInput` when there are none (metrics over no queries
  ///   would read as a score of 0).
  static func judgedQueryIDs(queries: [String: String], qrels: [String: [String: Int]]) throws
    -> [String]
  {
    let ids = queries.keys.filter { qrels[$0]?.values.contains { $0 > 0 } ?? false }.sorted()
    guard ids.isEmpty else { return ids }
    throw VectorDBError.invalidInput(
      source: "evaluation", line: nil,
      reason: queries.isEmpty
        ? "there are no queries to evaluate"
        : "none of the \(queries.count) queries has a relevant document in the qrels "
          + "(\(qrels.count) query ids there): do the query ids match?")
  }

  /// The logged queries with relevant feedback, as evaluation input: query id
  /// "log:ID" → text, and the judged documents as qrels, read in one pass over the log.
  ///
  /// With `unseen`, without the queries that the model evaluated — model version `model`
  /// when given, else the serving encoder and its query adapter — or a version it descends
  /// from was fitted on: on those a fine-tune is scored in-sample
  /// (`LoggedJudgements.inSample` counts them, or `leftOut` with `unseen`).
  ///
  /// ```swift
  /// let logged = try docs.loggedJudgements(unseen: true)
  /// let report = try docs.evaluate(queries: logged.queries, qrels: logged.qrels)
  /// ```
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged` for an unreadable log entry or model
  ///   record.
  public func loggedJudgements(unseen: Bool = false, model: Int? = nil) throws
    -> LoggedJudgements
  {
    let trained = try queriesTrained(byModel: model)
    var logged = LoggedJudgements(queries: [:], qrels: [:], inSample: 0, leftOut: 0)
    try database.forEachLogEntry(collection: name) { entry in
      guard let text = entry.text, !text.isBlank, entry.feedback.contains(where: \.isRelevant)
      else { return }  // blank: logged before such queries were refused
      if trained.contains(Self.queryHash(text)) {
        if unseen {
          logged.leftOut += 1
          return
        }
        logged.inSample += 1
      }
      let id = "log:\(entry.id)"
      logged.queries[id] = text
      for item in entry.feedback {
        logged.qrels[id, default: [:]][item.documentID] = item.relevance
      }
    }
    return logged
  }

  /// Diagnoses retrieval over logged queries with relevant feedback: where the best
  /// relevant document was in what the user was shown (for admin judgements, which
  /// were never shown, in what the collection returns now for the top `k`); and, for a
  /// collection with vectors and a text index, which of dense and keyword search finds a
  /// relevant document in its top `k` now (`Diagnosis.paths`).
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged`; errors of `query`.
  public func diagnose(k: Int = 10, worst: Int = 10) throws -> Diagnosis {
    var cases: [Diagnosis.Case] = []
    var relevantByEntry: [UInt64: Set<String>] = [:]
    let trained = try queriesTrained(byModel: nil)
    var inSample = 0
    try database.forEachLogEntry(collection: name) { entry in
      let relevant = Set(entry.feedback.filter(\.isRelevant).map(\.documentID))
      guard let text = entry.text, !text.isBlank, !relevant.isEmpty else { return }
      relevantByEntry[entry.id] = relevant
      if trained.contains(Self.queryHash(text)) { inSample += 1 }
      let shown =
        entry.kind == .query
        ? entry.hits.map(\.id) : try query(text: text, k: k, log: false).hits.map(\.id)
      let rank = shown.prefix(k).firstIndex { relevant.contains($0) }.map { $0 + 1 }
      let document = rank.map { shown[$0 - 1] } ?? relevant.sorted()[0]
      cases.append(Diagnosis.Case(logID: entry.id, query: text, document: document, rank: rank))
    }
    let total = Double(max(cases.count, 1))
    let record = try database.collectionRecord(name)
    let paths =
      record?.vectors != nil && record?.hasText == true
      ? try comparePaths(cases, relevant: relevantByEntry, k: k, examples: worst) : nil
    let notFound = cases.filter { $0.rank == nil }
    let first = cases.filter { $0.rank == 1 }
    let worstCases = cases.sorted {
      ($0.rank ?? Int.max, $0.logID) > ($1.rank ?? Int.max, $1.logID)
    }
    return Diagnosis(
      queries: cases.count, notFound: Double(notFound.count) / total,
      rankedLow: Double(cases.count - notFound.count - first.count) / total,
      first: Double(first.count) / total, k: k,
      worst: Array(worstCases.filter { $0.rank != 1 }.prefix(worst)), paths: paths,
      inSample: inSample)
  }

  /// Runs each case's query dense and keyword (top `k`, not logged) and counts which path
  /// finds one of its relevant documents.
  private func comparePaths(
    _ cases: [Diagnosis.Case], relevant: [UInt64: Set<String>], k: Int, examples: Int
  ) throws -> Diagnosis.PathComparison {
    var counts = (both: 0, dense: 0, keyword: 0, neither: 0)
    var keywordOnly: [Diagnosis.Case] = []
    for first in stride(from: 0, to: cases.count, by: 64) {
      let part = Array(cases[first..<min(first + 64, cases.count)])
      let texts = part.map(\.query)
      let ranked = try [SearchMode.dense, .keyword].map { mode in
        try search(
          texts: texts, vectors: nil, options: QueryOptions(k: k, log: false, mode: mode))
      }
      for (offset, item) in part.enumerated() {
        let wanted = relevant[item.logID] ?? []
        let dense = ranked[0][offset].hits.contains { wanted.contains($0.id) }
        let keywordRank = ranked[1][offset].hits.firstIndex { wanted.contains($0.id) }
        switch (dense, keywordRank != nil) {
        case (true, true): counts.both += 1
        case (true, false): counts.dense += 1
        case (false, true):
          counts.keyword += 1
          var example = item
          example.rank = keywordRank! + 1
          example.document = ranked[1][offset].hits[keywordRank!].id
          keywordOnly.append(example)
        case (false, false): counts.neither += 1
        }
      }
    }
    let total = Double(max(cases.count, 1))
    return Diagnosis.PathComparison(
      both: Double(counts.both) / total, denseOnly: Double(counts.dense) / total,
      keywordOnly: Double(counts.keyword) / total, neither: Double(counts.neither) / total,
      keywordOnlyCases: Array(keywordOnly.sorted { $0.logID < $1.logID }.prefix(examples)))
  }
}
