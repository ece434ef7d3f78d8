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
  public var seconds: Double
  /// How the queries searched.
  public var mode: SearchMode
}

/// Where the retriever fails, over logged queries with feedback (DESIGN.md §6): is the
/// relevant document missing from the results (train the retriever), present but
/// ranked low (ranking), or first?
public struct Diagnosis: Codable, Sendable {
  public struct Case: Codable, Sendable {
    public var logID: UInt64
    public var query: String
    /// The relevant document ranked best, and its rank (nil: not returned at all).
    public var document: String
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
  public var k: Int
  /// The worst cases: not found first, then by rank.
  public var worst: [Case]
}

extension Collection {
  /// Runs `queries` (id → text; none logged) and scores the hits against `qrels`
  /// (query id → document id → grade).
  ///
  /// - Parameters:
  ///   - exact: compare with every document instead of the index.
  ///   - perQuery: keep each query's metrics in the report.
  ///   - mode, fusion: how the queries search (nil: the collection's default mode).
  public func evaluate(
    queries: [String: String], qrels: [String: [String: Int]], exact: Bool = false, ef: Int = 64,
    perQuery: Bool = false, mode: SearchMode? = nil, fusion: Fusion = .defaultHybrid,
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
    fusion: Fusion = .defaultHybrid, progress: ((OperationProgress) throws -> Void)?
  ) throws -> EvaluationReport {
    guard let record = try database.collectionRecord(name) else {
      throw VectorDBError.collectionNotFound(name)
    }
    let mode = try searchMode(requested, record: record, byVector: false)
    let start = Date()
    let cutoffs = MetricCutoffs()
    let ids = queries.keys.filter { qrels[$0]?.values.contains { $0 > 0 } ?? false }.sorted()
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

  /// The logged queries with relevant feedback, as evaluation input: query id
  /// "log:ID" → text, and the judged documents as qrels.
  public func loggedJudgements() throws -> (
    queries: [String: String], qrels: [String: [String: Int]]
  ) {
    var queries: [String: String] = [:]
    var qrels: [String: [String: Int]] = [:]
    try database.forEachLogEntry(collection: name) { entry in
      guard let text = entry.text, entry.feedback.contains(where: \.isRelevant) else { return }
      let id = "log:\(entry.id)"
      queries[id] = text
      for item in entry.feedback { qrels[id, default: [:]][item.documentID] = item.relevance }
    }
    return (queries, qrels)
  }

  /// Diagnoses retrieval over logged queries with relevant feedback: where the best
  /// relevant document was in what the user was shown (for admin judgements, which
  /// were never shown, in what the collection returns now for the top `k`).
  public func diagnose(k: Int = 10, worst: Int = 10) throws -> Diagnosis {
    var cases: [Diagnosis.Case] = []
    try database.forEachLogEntry(collection: name) { entry in
      let relevant = Set(entry.feedback.filter(\.isRelevant).map(\.documentID))
      guard let text = entry.text, !relevant.isEmpty else { return }
      let shown =
        entry.kind == .query
        ? entry.hits.map(\.id) : try query(text: text, k: k, log: false).hits.map(\.id)
      let rank = shown.prefix(k).firstIndex { relevant.contains($0) }.map { $0 + 1 }
      let document = rank.map { shown[$0 - 1] } ?? relevant.sorted()[0]
      cases.append(Diagnosis.Case(logID: entry.id, query: text, document: document, rank: rank))
    }
    let total = Double(max(cases.count, 1))
    let notFound = cases.filter { $0.rank == nil }
    let first = cases.filter { $0.rank == 1 }
    let worstCases = cases.sorted {
      ($0.rank ?? Int.max, $0.logID) > ($1.rank ?? Int.max, $1.logID)
    }
    return Diagnosis(
      queries: cases.count, notFound: Double(notFound.count) / total,
      rankedLow: Double(cases.count - notFound.count - first.count) / total,
      first: Double(first.count) / total, k: k,
      worst: Array(worstCases.filter { $0.rank != 1 }.prefix(worst)))
  }
}
