import Embedding
import Foundation
import HNSW
import Tensor
import Training

/// The gate's way of judging an encoder that has no generation: re-score a pool.
///
/// For each query, the pool is the current retriever's exact top `pool`, the judged
/// documents, and a random sample of the corpus shared by all queries (`sample`); only the
/// pools' documents are embedded with the candidate, and each query's hits are its pool
/// ranked by the candidate. A document outside the pool that the candidate would rank high
/// is missed, so the estimate can flatter the candidate by what the pool leaves out; the
/// shared sample is there to catch a candidate that ranks unrelated documents high. When
/// the pool is the whole corpus it equals the full evaluation. docs/training.md gives how
/// closely it tracks on SciFact.
extension DocumentCollection {
  /// Evaluates encoder model `version` on `queries` by re-scoring each query's pool of
  /// `pool` current top documents plus its judged ones (`vdb eval --model V --pool N`).
  ///
  /// ```swift
  /// let report = try docs.evaluate(queries: queries, qrels: qrels, model: 3, pool: 100)
  /// ```
  ///
  /// - Throws: `VectorDBError.modelNotFound`, `.modelWithoutWeights`; `.notAvailable` for a
  ///   collection without vectors or a query adapter version.
  public func evaluate(
    queries: [String: String], qrels: [String: [String: Int]], model version: Int, pool: Int,
    sample: Int = TrainingOptions().gateSample,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> EvaluationReport {
    let start = Date()
    let encoder = try database.encoder(version: version)
    let ids = try Self.judgedQueryIDs(queries: queries, qrels: qrels)
    let texts = ids.map { queries[$0]! }
    let current = try search(
      texts: texts, vectors: nil,
      options: QueryOptions(
        k: max(pool, 100), ef: max(pool, 100), exact: true, log: false, mode: .dense))
    let shared = try sampleDocuments(sample, seed: 42)
    let pools = zip(ids, current).map { id, result in
      (
        id,
        Self.pool(
          result.hits.map(\.id), depth: pool, judged: qrels[id]!.keys.sorted(), sample: shared)
      )
    }
    let (results, _) = try rescore(pools, with: encoder, queryTexts: queries, progress: progress)
    let evaluation = RetrievalMetrics.evaluate(
      results: results, qrels: qrels.filter { results[$0.key] != nil })
    return EvaluationReport(
      metrics: evaluation.means, queries: evaluation.queries, perQuery: evaluation.perQuery,
      seconds: Date().timeIntervalSince(start), mode: .dense)
  }

  /// A query's pool: the first `depth` of `ranked`, then the judged documents and the
  /// shared sample, each document once.
  static func pool(_ ranked: [String], depth: Int, judged: [String], sample: [String]) -> [String] {
    var seen = Set<String>()
    return (ranked.prefix(depth) + judged + sample).filter { seen.insert($0).inserted }
  }

  /// Up to `count` document ids drawn at random (seeded) from the collection, by row id:
  /// as many reads as draws, whatever the corpus size.
  func sampleDocuments(_ count: Int, seed: UInt64) throws -> [String] {
    guard count > 0 else { return [] }
    return try read { txn in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema),
        record.nextRow > 0
      else { return [] }
      var random = Xoshiro256(seed: seed)
      var found = Set<String>()
      // Rows of deleted documents are gaps: draw a few times the count at most.
      for _ in 0..<(count * 4) where found.count < min(count, record.count) {
        let row = UInt32(random.next() % UInt64(record.nextRow))
        if let id = try txn.get(schema.rows, key: RowKey(collection: self.id, row: row)) {
          found.insert(String(decoding: id, as: UTF8.self))
        }
      }
      return found.sorted()
    }
  }

  /// Ranks each pool with `encoder`: query key → its pool's documents scored as the index
  /// would score them. The key is the query text unless `queryTexts` maps it. Documents
  /// deleted meanwhile are left out. Returns the hits and how many documents it embedded.
  func rescore(
    _ pools: [(query: String, ids: [String])], with encoder: SentenceEncoder,
    queryTexts: [String: String]? = nil, progress: ((OperationProgress) throws -> Void)?
  ) throws -> (results: [String: [ScoredHit]], embedded: Int) {
    guard let metric = try indexPlan()?.settings.metric else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    let texts = try documentTexts(Set(pools.flatMap(\.ids)))
    let present = texts.keys.sorted()
    var vectors: [String: [Float]] = [:]
    for first in stride(from: 0, to: present.count, by: 256) {
      let part = Array(present[first..<min(first + 256, present.count)])
      let documents = encoder.prompted(part.map { texts[$0]! }, as: .document)
      for (id, vector) in zip(part, encoder.embed(documents)) {
        vectors[id] = Self.prepared(vector, metric: metric)
      }
      try progress?(OperationProgress(done: vectors.count, total: present.count))
    }
    let queryVectors = encoder.embed(
      encoder.prompted(pools.map { queryTexts?[$0.query] ?? $0.query }, as: .query)
    )
    .map { Self.prepared($0, metric: metric) }
    var results: [String: [ScoredHit]] = [:]
    for (pool, query) in zip(pools, queryVectors) {
      results[pool.query] = pool.ids.compactMap { id in
        vectors[id].map { ScoredHit(id: id, score: Self.similarity(query, $0, metric: metric)) }
      }
    }
    return (results, present.count)
  }

  /// A vector as the index compares it: unit length for cosine.
  static func prepared(_ vector: [Float], metric: Metric) -> [Float] {
    var vector = vector
    if metric == .cosine { _ = Distance.normalize(&vector) }
    return vector
  }

  /// The similarity the index reports for two prepared vectors.
  static func similarity(_ a: [Float], _ b: [Float], metric: Metric) -> Double {
    switch metric {
    case .cosine, .dot: return Double(Distance.dot(a, b))
    case .l2: return -Double(Distance.squaredEuclidean(a, b).squareRoot())
    }
  }
}
