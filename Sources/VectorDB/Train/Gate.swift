import Embedding
import Foundation
import Training

/// The gate's decision on a training run: every gate query's nDCG@10 under the current
/// retriever and under its fold's candidate (out of fold when cross-fitting), compared by
/// a paired bootstrap. The candidate is promoted when the 95% interval of the mean change
/// lies above zero, or by `force`.
struct GateDecision {
  /// The current retriever's metrics on the gate queries, per query and their means.
  var before: RetrievalMetrics.Evaluation
  /// The candidates' mean metrics on the gate queries.
  var after: [String: Double]
  var verdict: GateVerdict
  /// Why the candidate was (not) promoted, in words.
  var reason: String

  var promoted: Bool { verdict.promoted }

  /// The decision on `run`, whose folds are all scored, given the current retriever's
  /// ranking of every gate query.
  init(run: TrainingRun, current: [String: [ScoredHit]]) {
    let ids = run.gateQueries
    let before = RetrievalMetrics.evaluate(
      results: current, qrels: run.judged.filter { ids.contains($0.key) })
    self.before = before
    after = DocumentCollection.means(ids.compactMap { run.scored[$0]?.metrics })
    let test = PairedBootstrap(seed: run.options.seed).compare(
      current: ids.map { before.perQuery[$0]?["ndcg@10"] ?? 0 },
      candidate: ids.map { run.scored[$0]?.metrics["ndcg@10"] ?? 0 })
    let promoted = test.improves || run.options.force
    verdict = GateVerdict(
      delta: test.meanDelta, ciLow: test.lower, ciHigh: test.upper, queries: test.queries,
      promoted: promoted, method: run.crossFits ? "cross_fit" : "split", folds: run.folds.count,
      documentsEmbedded: run.documentsEmbedded)
    reason =
      (test.improves
        ? "nDCG@10 improved: "
        : run.options.force ? "promoted by --force; " : "not promoted: nDCG@10 ")
      + test.reason + (run.crossFits ? " (cross-fitted, \(run.folds.count) folds)" : "")
  }

  /// The gate queries whose nDCG@10 changed most: up to 5 gains, then up to 5 losses.
  func changes(run: TrainingRun, current: [String: [ScoredHit]]) -> [QueryChange] {
    let all = run.gateQueries.map { text in
      QueryChange(
        query: text, ndcgBefore: before.perQuery[text]?["ndcg@10"] ?? 0,
        ndcgAfter: run.scored[text]?.metrics["ndcg@10"] ?? 0,
        rankBefore: DocumentCollection.bestRank(current[text] ?? [], relevant: run.judged[text]!),
        rankAfter: run.scored[text]?.rank)
    }
    let byChange = all.sorted {
      ($0.ndcgAfter - $0.ndcgBefore, $1.query) > ($1.ndcgAfter - $1.ndcgBefore, $0.query)
    }
    return byChange.prefix(5).filter { $0.ndcgAfter > $0.ndcgBefore }
      + byChange.suffix(5).filter { $0.ndcgAfter < $0.ndcgBefore }
  }
}

extension DocumentCollection {
  /// Each query's exact top `depth` by dense search of the active generation, its text
  /// queries mapped by `adapter` (text → hits).
  func rank(
    _ queries: [String], depth: Int, adapter: AdapterChoice = .generation,
    progress: (OperationProgress) throws -> Void
  ) throws -> [String: [ScoredHit]] {
    var results: [String: [ScoredHit]] = [:]
    let chunk = 64
    for first in stride(from: 0, to: queries.count, by: chunk) {
      let part = Array(queries[first..<min(first + chunk, queries.count)])
      let found = try search(
        texts: part, vectors: nil,
        options: QueryOptions(k: depth, ef: depth, exact: true, log: false, mode: .dense),
        adapter: adapter)
      for (text, result) in zip(part, found) {
        results[text] = result.hits.map { ScoredHit(id: $0.id, score: Double($0.score)) }
      }
      try progress(OperationProgress(done: results.count, total: queries.count))
    }
    return results
  }

  /// Scores `queries` with `candidate`: an adapter by exact search over the active
  /// generation; an encoder by re-scoring each query's pool (the current top
  /// `gatePool` plus its judged documents), embedding only the pools' documents.
  /// Returns each query's metrics and best relevant rank, and the documents embedded.
  func score(
    _ candidate: Candidate, queries: [String], run: TrainingRun, current: [String: [ScoredHit]],
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> (scores: [String: TrainingRun.ScoredQuery], embedded: Int) {
    var results: [String: [ScoredHit]] = [:]
    var embedded = 0
    switch candidate.model {
    case .adapter(let adapter):
      results = try rank(queries, depth: 100, adapter: .candidate(adapter)) {
        try progress?(.evaluating($0))
      }
    case .encoder(let encoder, _):
      let shared = try sampleDocuments(run.options.gateSample, seed: run.options.seed)
      let pools = queries.map { text in
        (
          text,
          Self.pool(
            (current[text] ?? []).map(\.id), depth: run.options.gatePool,
            judged: run.judged[text]!.keys.sorted(), sample: shared)
        )
      }
      (results, embedded) = try rescore(pools, with: encoder) {
        try progress?(.embedding($0))
      }
    }
    let evaluation = RetrievalMetrics.evaluate(
      results: results, qrels: run.judged.filter { results[$0.key] != nil })
    var scores: [String: TrainingRun.ScoredQuery] = [:]
    for text in queries {
      scores[text] = TrainingRun.ScoredQuery(
        metrics: evaluation.perQuery[text] ?? [:],
        rank: Self.bestRank(results[text] ?? [], relevant: run.judged[text]!))
    }
    return (scores, embedded)
  }

  /// The 1-based rank of the best-ranked relevant document in `hits` (ranked by score,
  /// ties by id as the metrics rank them), or nil.
  static func bestRank(_ hits: [ScoredHit], relevant: [String: Int]) -> Int? {
    let ranked = hits.sorted { ($0.score, $1.id) > ($1.score, $0.id) }
    return ranked.prefix(100).firstIndex { (relevant[$0.id] ?? 0) > 0 }.map { $0 + 1 }
  }

  /// Each metric's mean over the queries (the metrics of the first query).
  static func means(_ perQuery: [[String: Double]]) -> [String: Double] {
    guard let keys = perQuery.first?.keys else { return [:] }
    return Dictionary(
      uniqueKeysWithValues: keys.map { key in
        (key, perQuery.reduce(0) { $0 + ($1[key] ?? 0) } / Double(perQuery.count))
      })
  }
}
