import Foundation
import Tensor
import Training

/// One mined (query, positive, negatives) triple: the query text and document ids.
struct MinedPair: Codable {
  var query: String
  var positive: String
  var negatives: [String]

  /// What must not repeat inside a batch (as `TrainingExample`'s keys).
  var keys: [String] { ["query:" + query] + ([positive] + negatives).map { "doc:" + $0 } }
}

/// A training run's data and progress, saved in the collection's meta record so that a
/// killed run resumes on the same data (`resume`).
///
/// Stages: judgements → folds → mining (`DocumentCollection.prepareRun`); then, per fold, fit →
/// score the fold's queries; then the verdict and, if promoted, the published fit
/// (`DocumentCollection.train`).
struct TrainingRun: Codable {
  var baseModel: Int
  /// The generation whose vectors the run mined with (and an adapter trains against).
  var generation: UInt32
  var options: TrainingOptions
  /// Every judged query's pairs; a fit uses those of its training queries.
  var pairs: [MinedPair]
  /// Query text → document → grade, for every judged query.
  var judged: [String: [String: Int]]
  /// The gate's folds of query texts: one fold is a plain held-out split.
  var folds: [[String]]
  var data: TrainingData
  /// The process running it (a second run on the same collection is refused while alive).
  var pid: Int32
  /// Per gate query: the candidate's nDCG@10 and best relevant rank, for finished folds.
  var scored: [String: ScoredQuery] = [:]
  /// Documents embedded by the candidates to judge them.
  var documentsEmbedded = 0

  struct ScoredQuery: Codable {
    var metrics: [String: Double]
    var rank: Int?
  }

  var crossFits: Bool { folds.count > 1 }
  var gateQueries: [String] { folds.flatMap { $0 }.sorted() }

  /// The queries a fit trains on: all but those of `fold`; nil: every judged query (the
  /// published fit, made once the verdict on the recipe is in).
  func trainingQueries(excluding fold: Int?) -> Set<String> {
    Set(judged.keys).subtracting(fold.map { folds[$0] } ?? [])
  }
}

extension DocumentCollection {
  /// The judgements of the log, grouped by query text: relevant documents with their
  /// grade, and those marked not relevant.
  func judgements() throws -> (relevant: [String: [String: Int]], notRelevant: [String: [String]]) {
    var relevant: [String: [String: Int]] = [:]
    var notRelevant: [String: [String]] = [:]
    try database.forEachLogEntry(collection: name) { entry in
      guard let text = entry.text else { return }
      for item in entry.feedback {
        if item.isRelevant {
          relevant[text, default: [:]][item.documentID] = max(
            relevant[text]?[item.documentID] ?? 0, item.relevance)
        } else {
          notRelevant[text, default: []].append(item.documentID)
        }
      }
    }
    return (relevant, notRelevant)
  }

  /// `judgements()` of documents that still exist: a query left with no relevant one is
  /// dropped.
  func judgedQueries() throws -> (
    relevant: [String: [String: Int]], notRelevant: [String: [String]]
  ) {
    let (allJudged, notRelevant) = try judgements()
    let existing = try documentTexts(Set(allJudged.values.flatMap { $0.keys }))
    var judged: [String: [String: Int]] = [:]
    for (text, grades) in allJudged {
      let kept = grades.filter { existing[$0.key] != nil }
      if kept.values.contains(where: { $0 > 0 }) { judged[text] = kept }
    }
    return (judged, notRelevant)
  }

  /// Judgements → folds → mined pairs (or the saved run when resuming).
  ///
  /// - Throws: `VectorDBError.nothingToResume` when resuming without a saved run;
  ///   `.notAvailable` without a model; option errors from `TrainingOptions.validate`.
  func prepareRun(options: TrainingOptions, progress: ((TrainingStage) throws -> Void)?)
    throws -> TrainingRun
  {
    if options.resume {
      guard let saved = try loadBlob(.trainRun) else {
        throw VectorDBError.nothingToResume(collection: name)
      }
      // The recipe is the saved one; what to do with the result may be said anew.
      var run = try JSONDecoder().decode(TrainingRun.self, from: saved)
      run.options.resume = true
      run.options.force = run.options.force || options.force
      run.options.checkpointEvery = options.checkpointEvery
      run.options.waitForReembed = options.waitForReembed
      run.pid = getpid()
      return run
    }
    guard let plan = try indexPlan(), let baseModel = plan.generation.model else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no model to train")
    }
    let encoder = try database.encoder(version: baseModel)
    try options.validate(modelMaxSequenceLength: encoder.config.maxPositions)
    let (judged, notRelevant) = try judgedQueries()
    let folds = Self.folds(
      of: judged.keys.sorted(), count: options.foldCount(judged: judged.count),
      heldOutFraction: options.heldOutFraction, seed: options.seed)

    // Pairs and mined negatives for every judged query (a query's negatives depend only
    // on the current retriever, not on the fold).
    let texts = judged.keys.sorted()
    let mining = options.hardNegatives > 0 ? HardNegativeMining(count: options.hardNegatives) : nil
    var pairs: [MinedPair] = []
    let chunk = 64
    for first in stride(from: 0, to: texts.count, by: chunk) {
      let part = Array(texts[first..<min(first + chunk, texts.count)])
      // The current retriever's query vectors (adapter included), embedded once: they
      // rank the candidates and score the positives with the same measure.
      var queryVectors: [[Float]] = []
      var ranked: [QueryResult] = []
      var positiveVectors: [String: [Float]] = [:]
      if mining != nil {
        let embedded = encoder.embed(part)
        queryVectors =
          try plan.generation.adapter.map { try database.queryAdapter(version: $0) }?
          .apply(to: embedded) ?? embedded
        ranked = try search(
          texts: nil, vectors: queryVectors,
          options: QueryOptions(
            k: options.miningDepth, ef: max(100, options.miningDepth), log: false))
        positiveVectors = try storedVectors(Set(part.flatMap { judged[$0]!.keys }), plan: plan)
      }
      for (offset, text) in part.enumerated() {
        let grades = judged[text]!
        for positive in grades.keys.sorted() where grades[positive]! > 0 {
          var negatives: [String] = []
          if let mining {
            negatives =
              mining.negatives(
                ranked: ranked[offset].hits.map { (id: $0.id, score: Double($0.score)) },
                positiveScore: Double(
                  positiveVectors[positive].map { Distance.dot(queryVectors[offset], $0) } ?? 0),
                positives: Set(grades.keys), notRelevant: notRelevant[text] ?? []
              ).negatives
          }
          pairs.append(MinedPair(query: text, positive: positive, negatives: negatives))
        }
      }
      try progress?(
        .mining(OperationProgress(done: min(first + chunk, texts.count), total: texts.count)))
    }
    // "Not relevant" marks may name deleted documents: keep the negatives that exist.
    let negativeIDs = try documentTexts(Set(pairs.flatMap(\.negatives)))
    for index in pairs.indices { pairs[index].negatives.removeAll { negativeIDs[$0] == nil } }

    var run = TrainingRun(
      baseModel: baseModel, generation: plan.generation.id, options: options, pairs: pairs,
      judged: judged, folds: folds,
      data: TrainingData(
        judgedQueries: judged.count, trainQueries: 0, trainPairs: 0, negatives: 0,
        heldOutQueries: 0, folds: folds.count, queriesNeeded: TrainingData.queriesNeeded()),
      pid: getpid())
    let published = run.trainingQueries(excluding: nil)
    let publishedPairs = pairs.filter { published.contains($0.query) }
    run.data.trainQueries = published.count
    run.data.trainPairs = publishedPairs.count
    run.data.negatives = publishedPairs.reduce(0) { $0 + $1.negatives.count }
    run.data.heldOutQueries = run.gateQueries.count
    return run
  }

  /// Splits the judged queries for the gate: `count` folds by a seeded hash of the text
  /// (cross-fitting), or with `count` 1 one held-out fold of `heldOutFraction`. The same
  /// texts and seed give the same folds on every run.
  static func folds(of texts: [String], count: Int, heldOutFraction: Double, seed: UInt64)
    -> [[String]]
  {
    let bucket = { (text: String) in Double(stableHash(text, seed: seed) % 10_000) / 10_000 }
    if count <= 1 { return [texts.filter { bucket($0) < heldOutFraction }] }
    // Order by hash, then deal round-robin: folds differ in size by at most one.
    let shuffled = texts.sorted {
      (stableHash($0, seed: seed), $0) < (stableHash($1, seed: seed), $1)
    }
    var folds = [[String]](repeating: [], count: count)
    for (index, text) in shuffled.enumerated() { folds[index % count].append(text) }
    return folds
  }

  /// FNV-1a of the text's UTF-8 mixed with `seed`: the same split on every run.
  static func stableHash(_ text: String, seed: UInt64) -> UInt64 {
    var hash = FNV1a(seed: seed)
    hash.mix(bytes: text.utf8)
    return hash.value
  }
}
