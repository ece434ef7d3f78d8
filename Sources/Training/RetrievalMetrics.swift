import Foundation

/// A retrieved document and its score.
public struct ScoredHit: Sendable, Equatable, Codable {
  public var id: String
  public var score: Double

  public init(id: String, score: Double) {
    self.id = id
    self.score = score
  }
}

/// Which cut-offs to report, as the arguments of sentence-transformers'
/// `InformationRetrievalEvaluator` (the defaults are those of DESIGN.md §6 and `vdb eval`).
public struct MetricCutoffs: Sendable, Equatable, Codable {
  public var accuracy: [Int] = [1, 3, 5, 10]
  public var precisionRecall: [Int] = [1, 3, 5, 10, 100]
  public var mrr: [Int] = [10]
  public var ndcg: [Int] = [10]
  public var map: [Int] = [100]

  public init() {}

  /// The largest cut-off: how many hits a query needs to have retrieved.
  public var deepest: Int { (accuracy + precisionRecall + mrr + ndcg + map).max() ?? 0 }
}

/// How nDCG counts a relevant document's gain.
public enum RelevanceGain: String, Sendable, Equatable, Codable {
  /// Every judged-relevant document gains 1, whatever its grade: what sentence-transformers'
  /// `InformationRetrievalEvaluator` does (its `relevant_docs` are sets). The default.
  case binary
  /// A document gains its grade (the qrels score), and the ideal ranking sorts the grades
  /// descending: the linear-gain nDCG of `trec_eval`'s `ndcg_cut` (BEIR's numbers).
  case graded
}

/// One query's metrics at every cut-off, keyed as sentence-transformers names them
/// (`"ndcg@10"`, `"recall@100"`, `"accuracy@1"`, …).
public typealias MetricValues = [String: Double]

/// Retrieval metrics with exactly the definitions of sentence-transformers'
/// `InformationRetrievalEvaluator` (version 6): pure functions of ranked hits and judgements.
///
/// For one query with hits ranked `h_1, h_2, …`, relevant set `R` (`|R| ≥ 1`) and
/// `rel_i = 1` when `h_i ∈ R`:
///
///     accuracy@k  = 1 if some h_i ∈ R with i ≤ k, else 0
///     precision@k = |{i ≤ k : h_i ∈ R}| / k          (k, even when fewer than k hits)
///     recall@k    = |{i ≤ k : h_i ∈ R}| / |R|
///     MRR@k       = 1 / (first i ≤ k with h_i ∈ R), or 0
///     DCG@k       = Σ_{i ≤ min(k, hits)} rel_i / log₂(i + 1)
///     nDCG@k      = DCG@k / IDCG@k, IDCG@k = Σ_{i ≤ min(k, |R|)} 1 / log₂(i + 1)
///     AP@k        = Σ_{i ≤ k, h_i ∈ R} (|{j ≤ i : h_j ∈ R}| / i) / min(k, |R|)
///
/// Each reported value is the mean over the evaluated queries. Queries without any relevant
/// document are left out (the evaluator drops them: their recall would divide by zero); they
/// are counted in ``Evaluation/skippedQueries``. Hits are ordered by descending score, ties by
/// ascending id (code-point order, as Python compares strings) — the evaluator's total order,
/// which makes results independent of how the corpus was scanned. Judgements with a grade of
/// 0 or below are not relevant.
///
/// ```swift
/// let evaluation = RetrievalMetrics.evaluate(
///   results: ["q1": [ScoredHit(id: "d3", score: 0.9), ScoredHit(id: "d1", score: 0.8)]],
///   qrels: ["q1": ["d1": 1]])
/// evaluation.means["ndcg@10"]   // 1/log₂(3) ≈ 0.631
/// ```
public enum RetrievalMetrics {
  /// Ids of `hits` in the evaluator's order: score descending, then id ascending.
  public static func rank(_ hits: [ScoredHit]) -> [String] {
    hits.sorted { a, b in
      a.score != b.score
        ? a.score > b.score : a.id.unicodeScalars.lexicographicallyPrecedes(b.id.unicodeScalars)
    }.map(\.id)
  }

  /// The metrics of one query from its ranked ids and its judgements (id → grade). Returns nil
  /// when no judgement is positive (the query is not evaluated).
  public static func query(
    ranked: [String], judgements: [String: Int], cutoffs: MetricCutoffs = MetricCutoffs(),
    gain: RelevanceGain = .binary
  ) -> MetricValues? {
    let relevant = judgements.filter { $0.value > 0 }
    if relevant.isEmpty { return nil }
    let grades = ranked.map { relevant[$0] ?? 0 }
    func hitCount(_ k: Int) -> Int { grades.prefix(k).reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }
    var values: MetricValues = [:]
    for k in cutoffs.accuracy {
      values["accuracy@\(k)"] = hitCount(k) > 0 ? 1 : 0
    }
    for k in cutoffs.precisionRecall {
      values["precision@\(k)"] = Double(hitCount(k)) / Double(k)
      values["recall@\(k)"] = Double(hitCount(k)) / Double(relevant.count)
    }
    for k in cutoffs.mrr {
      let first = grades.prefix(k).firstIndex { $0 > 0 }
      values["mrr@\(k)"] = first.map { 1 / Double($0 + 1) } ?? 0
    }
    for k in cutoffs.ndcg {
      let gains = grades.map { gain == .binary ? ($0 > 0 ? 1 : 0) : Double($0) }
      let ideal =
        gain == .binary
        ? [Double](repeating: 1, count: relevant.count)
        : relevant.values.sorted(by: >).map(Double.init)
      values["ndcg@\(k)"] = discountedGain(gains, k) / discountedGain(ideal, k)
    }
    for k in cutoffs.map {
      var found = 0
      var sum = 0.0
      for (i, grade) in grades.prefix(k).enumerated() where grade > 0 {
        found += 1
        sum += Double(found) / Double(i + 1)
      }
      values["map@\(k)"] = sum / Double(min(k, relevant.count))
    }
    return values
  }

  /// `Σ_{i < min(k, n)} gains[i] / log₂(i + 2)` (0-based `i`).
  public static func discountedGain(_ gains: [Double], _ k: Int) -> Double {
    var total = 0.0
    for (i, g) in gains.prefix(k).enumerated() { total += g / Foundation.log2(Double(i + 2)) }
    return total
  }

  /// Per-query metrics and their means over a set of queries.
  public struct Evaluation: Sendable, Equatable {
    /// Mean of each metric over the evaluated queries.
    public var means: MetricValues
    /// Each evaluated query's metrics.
    public var perQuery: [String: MetricValues]
    /// Queries with results but no relevant document: not evaluated.
    public var skippedQueries: [String]
    /// Number of evaluated queries.
    public var queries: Int { perQuery.count }
  }

  /// Evaluates every query of `results` that has a relevant document in `qrels`.
  /// A judged query missing from `results` counts as retrieving nothing (all metrics 0).
  public static func evaluate(
    results: [String: [ScoredHit]], qrels: [String: [String: Int]],
    cutoffs: MetricCutoffs = MetricCutoffs(), gain: RelevanceGain = .binary
  ) -> Evaluation {
    var perQuery: [String: MetricValues] = [:]
    var skipped: [String] = []
    for queryID in Set(results.keys).union(qrels.keys).sorted() {
      let ranked = rank(results[queryID] ?? [])
      if let values = query(
        ranked: ranked, judgements: qrels[queryID] ?? [:], cutoffs: cutoffs, gain: gain)
      {
        perQuery[queryID] = values
      } else {
        skipped.append(queryID)
      }
    }
    var means: MetricValues = [:]
    if let keys = perQuery.values.first?.keys {
      for key in keys {
        means[key] = perQuery.values.reduce(0) { $0 + $1[key]! } / Double(perQuery.count)
      }
    }
    return Evaluation(means: means, perQuery: perQuery, skippedQueries: skipped)
  }
}
