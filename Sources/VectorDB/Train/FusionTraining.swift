import Foundation
import LMDB
import TextSearch
import Training

/// A version of a collection's hybrid fusion weight, fitted by `vdb train --tier fusion`:
/// convex fusion with `alpha` on the dense scores (docs/search.md).
public struct FusionVersion: Codable, Sendable, Equatable {
  /// 1, 2, … per collection.
  public var version: Int
  /// The weight of the dense scores in the convex fusion, 0 (keyword only) to 1 (dense only)
  /// (JSON `alpha`).
  public var alpha: Double
  /// `ready` when the gate promoted it (or `force`), `rejected` otherwise.
  public var state: ModelInfo.State
  /// The version that served when it was fitted (nil: the default, α 0.5).
  public var parent: Int?
  /// When it was fitted (JSON `created`, ISO 8601).
  public var created: Date
  /// How it was made: the data, the grid, the gate's verdict and the metrics.
  public var lineage: [String: JSONValue]
}

/// A collection's fusion versions and which of them served, oldest first; the last of
/// `active` serves (none: the default). Stored as JSON in the meta record
/// `collection.<id>.fusion`; the serving alpha is also in the text index's record, so
/// a query reads no more than before.
public struct FusionHistory: Codable, Sendable, Equatable {
  /// Every version fitted, oldest first (JSON `versions`).
  public var versions: [FusionVersion] = []
  /// The versions that served, in order of activation; the last serves, rollback drops it
  /// (JSON `active`; empty: the default alpha serves).
  public var active: [Int] = []

  /// The serving version, nil for the default.
  public var serving: FusionVersion? {
    active.last.flatMap { number in versions.first { $0.version == number } }
  }
}

extension DocumentCollection {
  /// The weights the fit tries: 0 (keyword only) to 1 (dense only) in steps of 0.05.
  static let alphaGrid = (0...20).map { Double($0) / 20 }

  /// Fits the convex fusion weight alpha on the judged queries of the log and promotes it
  /// only when the gate says it ranks them better than the serving fusion.
  ///
  /// Each judged query's dense and keyword lists (top `QueryOptions.hybridDepth`, as a
  /// hybrid query fuses them) are retrieved once. The gate's folds are those of the other
  /// tiers (`TrainingOptions.foldCount`): for each fold, alpha is the grid value with the
  /// best mean nDCG@10 on the judged queries outside it (ties: the one nearest the serving
  /// alpha), and the fold's queries are scored with it. The 95% paired-bootstrap interval
  /// of the nDCG@10 change against the serving fusion must lie above zero. The published
  /// alpha is then fitted on every judged query. Seconds; nothing is embedded but the queries.
  ///
  /// - Throws: `VectorDBError.notEnoughJudgements`; `.notAvailable` for a collection
  ///   without both a model and a text index; `.collectionBusy` while another run trains it;
  ///   `.storage` when LMDB fails. Nothing is changed then.
  func trainFusion(options: TrainingOptions, progress: ((TrainingStage) throws -> Void)?)
    throws -> TrainingReport
  {
    let start = Date()
    try options.validate()
    guard let record = try database.collectionRecord(name), record.hasText,
      record.vectors?.model != nil
    else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "needs both a model and a text index to fit a hybrid fusion")
    }
    try claimTraining()
    defer { try? releaseTraining() }
    let judged = try judgedQueries().relevant
    let folds = Self.folds(
      of: judged.keys.sorted(), count: options.foldCount(judged: judged.count),
      heldOutFraction: options.heldOutFraction, seed: options.seed)
    let gateQueries = folds.flatMap { $0 }.sorted()
    let data = TrainingData(
      judgedQueries: judged.count, trainQueries: judged.count, trainPairs: 0, negatives: 0,
      heldOutQueries: gateQueries.count, folds: folds.count,
      queriesNeeded: TrainingData.queriesNeeded())
    guard judged.count >= 2, !gateQueries.isEmpty,
      gateQueries.count < judged.count || folds.count > 1
    else {
      throw VectorDBError.notEnoughJudgements(
        collection: name, judged: judged.count, needed: data.queriesNeeded)
    }

    let lists = try fusionLists(judged.keys.sorted()) { try progress?(.evaluating($0)) }
    let history = try fusionHistory()
    let serving = history.serving?.alpha ?? Self.defaultAlpha
    func scores(_ alpha: Double, _ queries: [String]) -> [String: [String: Double]] {
      RetrievalMetrics.evaluate(
        results: lists.fused(queries, alpha: alpha),
        qrels: judged.filter { queries.contains($0.key) }
      ).perQuery
    }
    var ranks: [String: (before: Int?, after: Int?)] = [:]
    func rank(_ alpha: Double, _ text: String) -> Int? {
      Self.bestRank(lists.fused([text], alpha: alpha)[text] ?? [], relevant: judged[text]!)
    }
    func fit(_ queries: [String]) -> Double {
      let means = Self.alphaGrid.map { alpha in
        (alpha, scores(alpha, queries).values.reduce(0) { $0 + ($1["ndcg@10"] ?? 0) })
      }
      return means.max { a, b in
        a.1 != b.1 ? a.1 < b.1 : abs(a.0 - serving) > abs(b.0 - serving)
      }!.0
    }

    // Out of fold: each gate query is scored with the alpha fitted without it.
    var before: [String: [String: Double]] = [:]
    var after: [String: [String: Double]] = [:]
    var foldAlphas: [Double] = []
    for fold in folds {
      let training = judged.keys.filter { !fold.contains($0) }.sorted()
      let alpha = fit(training)
      foldAlphas.append(alpha)
      after.merge(scores(alpha, fold)) { $1 }
      before.merge(scores(serving, fold)) { $1 }
      for text in fold { ranks[text] = (rank(serving, text), rank(alpha, text)) }
    }
    let test = PairedBootstrap(seed: options.seed).compare(
      current: gateQueries.map { before[$0]?["ndcg@10"] ?? 0 },
      candidate: gateQueries.map { after[$0]?["ndcg@10"] ?? 0 })
    let published = fit(judged.keys.sorted())
    let promoted = test.improves || options.force
    let reason =
      String(format: "alpha %.2f → %.2f; ", serving, published)
      + (test.improves
        ? "nDCG@10 improved: " : options.force ? "promoted by --force; " : "not promoted: nDCG@10 ")
      + test.reason + (folds.count > 1 ? " (cross-fitted, \(folds.count) folds)" : "")
    let verdict = GateVerdict(
      delta: test.meanDelta, ciLow: test.lower, ciHigh: test.upper, queries: test.queries,
      promoted: promoted, method: folds.count > 1 ? "cross_fit" : "split", folds: folds.count,
      documentsEmbedded: 0)
    let (beforeMeans, afterMeans) = (
      Self.means(Array(before.values)), Self.means(Array(after.values))
    )
    let lineage: [String: JSONValue] = [
      "tier": .string("fusion"), "collection": .string(name),
      "alpha": .number(published), "parent_alpha": .number(serving),
      "fold_alphas": .array(foldAlphas.map { .number($0) }),
      "grid": .string("0…1 step 0.05"), "depth": .number(Double(QueryOptions().hybridDepth)),
      "judged_queries": .number(Double(judged.count)),
      "heldout_queries": .number(Double(gateQueries.count)),
      "folds": .number(Double(folds.count)), "seed": .number(Double(options.seed)),
      "gate": .object([
        "delta": .number(verdict.delta), "ci_low": .number(verdict.ciLow),
        "ci_high": .number(verdict.ciHigh), "queries": .number(Double(verdict.queries)),
        "promoted": .bool(promoted), "method": .string(verdict.method),
      ]),
      "reason": .string(reason),
      "heldout_before": .object(beforeMeans.mapValues { .number($0) }),
      "heldout_after": .object(afterMeans.mapValues { .number($0) }),
    ]
    let version = try addFusion(
      alpha: published, parent: history.serving?.version, promoted: promoted, lineage: lineage)
    let changes = gateQueries.map { text in
      QueryChange(
        query: text, ndcgBefore: before[text]?["ndcg@10"] ?? 0,
        ndcgAfter: after[text]?["ndcg@10"] ?? 0, rankBefore: ranks[text]?.before,
        rankAfter: ranks[text]?.after)
    }.sorted { ($0.ndcgAfter - $0.ndcgBefore, $1.query) > ($1.ndcgAfter - $1.ndcgBefore, $0.query) }
    var report = TrainingReport(
      tier: .fusion, options: options, modelVersion: version.version, promoted: promoted,
      reason: reason, gate: verdict, heldOutBefore: beforeMeans, heldOutAfter: afterMeans,
      data: data, trainPairs: 0, losses: [],
      changes: changes.prefix(5).filter { $0.ndcgAfter > $0.ndcgBefore }
        + changes.suffix(5).filter { $0.ndcgAfter < $0.ndcgBefore },
      generation: nil, reembedded: false, trainingSeconds: 0,
      seconds: Date().timeIntervalSince(start))
    report.fusion = version
    report.trainingSeconds = report.seconds
    return report
  }

  /// α of the default hybrid fusion (`Fusion.defaultHybrid`).
  static var defaultAlpha: Double {
    if case .convex(let alpha) = Fusion.defaultHybrid { return alpha }
    return 0.5
  }

  /// The dense and the keyword list of each query, as a hybrid query retrieves them.
  private func fusionLists(_ texts: [String], progress: (OperationProgress) throws -> Void)
    throws -> FusionLists
  {
    var lists = FusionLists()
    let depth = QueryOptions().hybridDepth
    let chunk = 64
    for first in stride(from: 0, to: texts.count, by: chunk) {
      let part = Array(texts[first..<min(first + chunk, texts.count)])
      for mode in [SearchMode.dense, .keyword] {
        let found = try search(
          texts: part, vectors: nil, options: QueryOptions(k: depth, log: false, mode: mode))
        for (text, result) in zip(part, found) {
          lists.add(text, mode: mode, hits: result.hits)
        }
      }
      try progress(OperationProgress(done: first + part.count, total: texts.count))
    }
    return lists
  }

  // MARK: Versions

  private var fusionKey: CollectionMetaKey { CollectionMetaKey(collection: id, record: .fusion) }

  /// The collection's fusion versions and which serves.
  ///
  /// - Throws: `.storage` when LMDB fails; `.damaged` for an unreadable record.
  public func fusionHistory() throws -> FusionHistory {
    let key = fusionKey
    return try read { txn in try fusionHistory(in: txn, key: key) }
  }

  private func fusionHistory(in txn: Transaction, key: CollectionMetaKey) throws -> FusionHistory {
    guard let bytes = try txn.get(schema.meta, key: key) else { return FusionHistory() }
    do {
      return try QueryLogStore.decoder.decode(FusionHistory.self, from: Data(bytes))
    } catch {
      throw VectorDBError.damaged(
        path: database.path, detail: "fusion record of \"\(name)\": \(error)")
    }
  }

  /// Stores a fitted alpha as the next version and, when promoted, serves it: one transaction.
  private func addFusion(
    alpha: Double, parent: Int?, promoted: Bool, lineage: [String: JSONValue]
  ) throws -> FusionVersion {
    let key = fusionKey
    return try write { txn, collection in
      var history = try fusionHistory(in: txn, key: key)
      let version = FusionVersion(
        version: (history.versions.last?.version ?? 0) + 1, alpha: alpha,
        state: promoted ? .ready : .rejected, parent: parent, created: Date(), lineage: lineage)
      history.versions.append(version)
      if promoted {
        history.active.append(version.version)
        collection.text?.alpha = alpha
      }
      try txn.put(schema.meta, key: key, value: try QueryLogStore.encoder.encode(history))
      return version
    }
  }

  /// Undoes the last promotion of a fusion version: the one before it serves again (or
  /// the default, α 0.5). Returns the version that serves now (nil: the default).
  ///
  /// ```swift
  /// try docs.rollbackFusion()      // `vdb models rollback -c docs --fusion`
  /// ```
  ///
  /// - Throws: `VectorDBError.notAvailable` when no fusion version serves; `.storage`.
  @discardableResult
  public func rollbackFusion() throws -> FusionVersion? {
    let key = fusionKey
    return try write { txn, collection in
      var history = try fusionHistory(in: txn, key: key)
      guard !history.active.isEmpty else {
        throw VectorDBError.notAvailable(
          collection: name,
          reason: "serves the default fusion: there is no fitted one to roll back")
      }
      history.active.removeLast()
      collection.text?.alpha = history.serving?.alpha
      try txn.put(schema.meta, key: key, value: try QueryLogStore.encoder.encode(history))
      return history.serving
    }
  }
}

/// Each judged query's dense and keyword hits, documents numbered locally so that
/// `Fusion` can merge them.
struct FusionLists {
  private var numbers: [String: UInt32] = [:]
  private var ids: [String] = []
  private var dense: [String: [ScoredDocument]] = [:]
  private var keyword: [String: [ScoredDocument]] = [:]

  mutating func add(_ text: String, mode: SearchMode, hits: [SearchHit]) {
    let list = hits.map { hit -> ScoredDocument in
      let number = numbers[hit.id] ?? UInt32(ids.count)
      if numbers[hit.id] == nil {
        numbers[hit.id] = number
        ids.append(hit.id)
      }
      return ScoredDocument(document: number, score: Double(hit.score))
    }
    if mode == .dense { dense[text] = list } else { keyword[text] = list }
  }

  /// The queries' hybrid lists under convex fusion with `alpha`.
  func fused(_ texts: [String], alpha: Double) -> [String: [ScoredHit]] {
    var results: [String: [ScoredHit]] = [:]
    for text in texts {
      results[text] = Fusion.convex(alpha: alpha)
        .fuse(dense: dense[text] ?? [], keyword: keyword[text] ?? [])
        .map { ScoredHit(id: ids[Int($0.document)], score: $0.score) }
    }
    return results
  }
}
