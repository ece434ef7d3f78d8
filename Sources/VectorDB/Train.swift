import Embedding
import Foundation
import LMDB
import Tensor
import Training

/// How `Collection.train` fine-tunes (DESIGN.md §7; defaults are the recipe there).
public struct TrainingOptions: Sendable, Codable {
  /// What a run trains.
  public enum Tier: String, Sendable, Codable, CaseIterable {
    /// The whole encoder: the candidate re-embeds the corpus into a new generation.
    case full
    /// A query-side adapter (a `d×d` map on query vectors) over frozen document vectors:
    /// no re-embedding, activation is instant.
    case adapter
  }
  public var tier = Tier.full
  /// Passes over the pairs; nil: the tier's default (1 full, 10 adapter).
  public var epochs: Int?
  public var batchSize = 32
  /// Peak learning rate; nil: the tier's default (2e-5 full, 1e-3 adapter).
  public var learningRate: Double?
  /// Tokens per training sequence (the base model was trained at 128).
  public var maxSequenceLength = 128
  public var seed: UInt64 = 42
  /// Mined hard negatives per (query, positive) pair (0–3).
  public var hardNegatives = 1
  /// Share of judged queries held out for the gate.
  public var heldOutFraction = 0.2
  /// Promote the candidate even when the gate says no.
  public var force = false
  /// Save a checkpoint every this many steps (resumable with `resume`).
  public var checkpointEvery = 20
  /// Continue the interrupted run of this collection from its last checkpoint.
  public var resume = false
  /// GradCache mini-batch (nil: the whole batch at once).
  public var miniBatchSize: Int?
  /// Ranked candidates looked at per query when mining negatives.
  public var miningDepth = 100

  public init() {}

  /// The learning rate the run uses.
  public var peakLearningRate: Double {
    learningRate ?? (tier == .full ? 2e-5 : 1e-3)
  }

  /// The passes the run makes.
  public var epochCount: Int {
    epochs ?? (tier == .full ? 1 : 10)
  }
}

/// What the mined training data looks like (`vdb train --dry-run`).
public struct TrainingData: Codable, Sendable {
  /// Judged queries used for training, and their (query, positive) pairs.
  public var trainQueries: Int
  public var trainPairs: Int
  /// Hard negatives mined in all.
  public var negatives: Int
  /// Judged queries held out for the gate.
  public var heldOutQueries: Int

  enum CodingKeys: String, CodingKey {
    case trainQueries = "train_queries"
    case trainPairs = "train_pairs"
    case negatives
    case heldOutQueries = "heldout_queries"
  }
}

/// The outcome of `Collection.train`.
public struct TrainingReport: Codable, Sendable {
  public var tier: TrainingOptions.Tier
  /// The candidate's model version (stored whether promoted or not): an encoder, or a
  /// query adapter over the collection's encoder.
  public var modelVersion: Int
  public var promoted: Bool
  /// Why it was (not) promoted: the gate's verdict.
  public var reason: String
  /// Held-out metrics of the current and the candidate model.
  public var heldOutBefore: [String: Double]
  public var heldOutAfter: [String: Double]
  public var data: TrainingData
  /// (query, positive) pairs trained on (the same as `data.trainPairs`, for scripts).
  public var trainPairs: Int
  /// Loss of every step.
  public var losses: [Double]
  public var trainingSeconds: Double
  public var seconds: Double

  enum CodingKeys: String, CodingKey {
    case tier
    case modelVersion = "model_version"
    case promoted, reason
    case heldOutBefore = "heldout_before"
    case heldOutAfter = "heldout_after"
    case data
    case trainPairs = "train_pairs"
    case losses
    case trainingSeconds = "training_seconds"
    case seconds
  }

}

/// A stage of `Collection.train`, for progress reports.
public enum TrainingStage: Sendable {
  case mining(OperationProgress)
  case evaluating(OperationProgress)
  case training(TrainingProgress)
  case embedding(OperationProgress)
}

/// One mined (query, positive, negatives) triple: the query text and document ids.
private struct MinedPair: Codable {
  var query: String
  var positive: String
  var negatives: [String]

  /// What must not repeat inside a batch (as `TrainingExample`'s keys).
  var keys: [String] { ["query:" + query] + ([positive] + negatives).map { "doc:" + $0 } }
}

/// The mined data of a run, saved so that a resumed run trains on the same data.
private struct TrainingRun: Codable {
  var baseModel: Int
  /// The generation whose vectors the run mined with (and an adapter trains against).
  var generation: UInt32
  var options: TrainingOptions
  var pairs: [MinedPair]
  var heldOut: [String: String]
  var heldOutQrels: [String: [String: Int]]
  var data: TrainingData
}

extension Collection {
  /// The training data the log yields now, without training or writing anything
  /// (`vdb train --dry-run`).
  public func trainingData(options: TrainingOptions = TrainingOptions()) throws -> TrainingData {
    try prepareRun(options: options, progress: nil).data
  }

  /// Fine-tunes the collection's retriever on its query log and promotes the result only
  /// when a held-out evaluation says it is better.
  ///
  /// 1. (query, relevant document) pairs come from the log: clicks, corrections and
  ///    admin judgements. Queries are split by text (deterministically) into training
  ///    and held-out parts.
  /// 2. Hard negatives are mined with the current model: the best-ranked documents not
  ///    judged relevant for the query and scoring at most 0.95 × the positive's score;
  ///    documents marked not relevant come first.
  /// 3. The `full` tier trains the encoder with the multiple-negatives ranking loss; the
  ///    `adapter` tier trains a map of the query vectors against the stored document
  ///    vectors (Training module).
  /// 4. The candidate becomes a new model version. Full tier: the corpus is embedded
  ///    with it into a building generation. Both are evaluated on the held-out queries.
  /// 5. If the paired bootstrap says nDCG@10 improved (or `force`), the candidate starts
  ///    answering queries (the new generation becomes active, or the adapter maps the
  ///    queries); otherwise the generation is dropped and the candidate kept as rejected.
  ///
  /// The run touches nothing the active model uses until the switch: killing it leaves
  /// the database as it was (and `resume` continues from the last checkpoint).
  ///
  /// ```swift
  /// var options = TrainingOptions()
  /// options.tier = .adapter
  /// let report = try docs.train(options: options)
  /// print(report.promoted, report.reason)
  /// ```
  public func train(
    options: TrainingOptions = TrainingOptions(), progress: ((TrainingStage) throws -> Void)? = nil
  ) throws -> TrainingReport {
    let start = Date()
    let run = try prepareRun(options: options, progress: progress)
    guard !run.pairs.isEmpty else {
      throw VectorDBError.unsupported(
        "collection \"\(name)\" has no logged queries with relevant feedback to train on")
    }
    guard !run.heldOut.isEmpty else {
      throw VectorDBError.unsupported("too few judged queries to hold some out for the gate")
    }
    let options = run.options  // a resumed run keeps the options it started with
    try saveBlob("train.run", try JSONEncoder().encode(run))  // what `resume` continues
    let base = try database.encoder(version: run.baseModel)
    let before = try evaluateHeldOut(run, generation: nil, adapter: .generation, progress: progress)

    var configuration = options.tier == .full ? TrainingConfiguration() : .adapter
    configuration.epochs = options.epochCount
    configuration.batchSize = options.batchSize
    configuration.learningRate = options.peakLearningRate
    configuration.seed = options.seed
    configuration.miniBatchSize = options.miniBatchSize
    let checkpoint = options.resume ? try loadBlob("train.checkpoint") : nil
    let trainer: any RankingTrainer
    do {
      switch options.tier {
      case .full:
        let examples = try encoderExamples(run, tokenizer: base.tokenizer)
        trainer =
          try checkpoint.map { try EncoderTrainer(resuming: $0, examples: examples) }
          ?? EncoderTrainer(
            parameters: try EncoderParameters(base), examples: examples,
            configuration: configuration)
      case .adapter:
        let examples = try adapterExamples(run, encoder: base)
        trainer =
          try checkpoint.map { try AdapterTrainer(resuming: $0, examples: examples) }
          ?? AdapterTrainer(
            dimension: base.dimension, examples: examples, configuration: configuration)
      }
    } catch let error as TrainingError {
      throw VectorDBError.unsupported("cannot train: \(error)")
    }
    let trainingStart = Date()
    while !trainer.isFinished {
      var last: TrainingProgress?
      trainer.run(steps: 1) { last = $0 }
      if let last { try progress?(.training(last)) }
      if trainer.step % max(1, options.checkpointEvery) == 0 && !trainer.isFinished {
        try saveBlob("train.checkpoint", try trainer.checkpoint())
      }
    }
    let trainingSeconds = Date().timeIntervalSince(trainingStart)

    var lineage: [String: JSONValue] = [
      "collection": .string(name), "tier": .string(options.tier.rawValue),
      "generation": .number(Double(run.generation)),
      "train_pairs": .number(Double(run.data.trainPairs)),
      "negatives": .number(Double(run.data.negatives)),
      "heldout_queries": .number(Double(run.data.heldOutQueries)),
      "epochs": .number(Double(options.epochCount)),
      "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.peakLearningRate),
      "max_seq_length": .number(Double(options.maxSequenceLength)),
      "seed": .number(Double(options.seed)),
      "losses": .array(trainer.lossHistory.map { .number($0) }),
      "heldout_before": .object(before.metrics.mapValues { .number($0) }),
    ]
    func verdict(after: EvaluationReport) -> (promoted: Bool, reason: String) {
      let ids = run.heldOut.keys.sorted()
      let verdict = PairedBootstrap(seed: options.seed).compare(
        current: ids.map { before.perQuery?[$0]?["ndcg@10"] ?? 0 },
        candidate: ids.map { after.perQuery?[$0]?["ndcg@10"] ?? 0 })
      lineage["heldout_after"] = .object(after.metrics.mapValues { .number($0) })
      return (
        verdict.improves || options.force,
        (verdict.improves
          ? "held-out nDCG@10 improved: "
          : options.force ? "promoted by --force; " : "not promoted: held-out nDCG@10 ")
          + verdict.reason
      )
    }
    let models = database.models
    let schema = self.schema
    let runKeys = [blobKey("train.checkpoint"), blobKey("train.run")]
    let info: ModelInfo
    let after: EvaluationReport
    let gate: (promoted: Bool, reason: String)
    switch trainer {
    case let trainer as AdapterTrainer:
      // Evaluate on the active generation's vectors, then store the adapter and (if the
      // gate says so) activate it, in one transaction.
      after = try evaluateHeldOut(
        run, generation: nil, adapter: .candidate(trainer.adapter), progress: progress)
      gate = verdict(after: after)
      lineage["gate"] = .string(gate.reason)
      let parent = try database.model(version: run.baseModel)
      info = try write { txn, collection in
        let info = try models.add(
          adapter: trainer.adapter, name: "query adapter over v\(run.baseModel) on \(name)",
          state: gate.promoted ? .ready : .rejected, parent: parent, lineage: lineage, in: txn)
        if gate.promoted { try setAdapter(info, in: txn, collection: collection) }
        for key in runKeys { try txn.delete(schema.meta, key: key) }
        return info
      }
    case let trainer as EncoderTrainer:
      let candidate = try SentenceEncoder(
        config: base.config, tokenizer: base.tokenizer,
        weights: trainer.encoder.parameters.namedTensors(),
        maxSequenceLength: base.maxSequenceLength, pooling: base.pooling,
        normalizesOutput: base.normalizesOutput)
      // Store the candidate, embed the corpus with it, and let the gate decide.
      var stored = try storage {
        try database.environment.write { txn in
          try models.add(
            encoder: candidate, name: "fine-tune of v\(run.baseModel) on \(name)",
            state: .rejected, parent: run.baseModel, lineage: lineage, in: txn)
        }
      }
      let generation = try build(model: stored.version, batchSize: 256) {
        try progress?(.embedding($0))
      }
      after = try evaluateHeldOut(
        run, generation: generation, adapter: .generation, progress: progress)
      gate = verdict(after: after)
      if gate.promoted {
        try promote(generation)
      } else {
        try abandon(generation)
      }
      stored.state = gate.promoted ? .ready : .rejected
      lineage["gate"] = .string(gate.reason)
      stored.lineage = lineage
      info = stored
      try storage {
        try database.environment.write { txn in
          try models.update(stored, in: txn)
          for key in runKeys { try txn.delete(schema.meta, key: key) }
        }
      }
    default:
      preconditionFailure("unknown trainer \(type(of: trainer))")
    }
    return TrainingReport(
      tier: options.tier, modelVersion: info.version, promoted: gate.promoted,
      reason: gate.reason, heldOutBefore: before.metrics, heldOutAfter: after.metrics,
      data: run.data, trainPairs: run.data.trainPairs, losses: trainer.lossHistory,
      trainingSeconds: trainingSeconds, seconds: Date().timeIntervalSince(start))
  }

  private func evaluateHeldOut(
    _ run: TrainingRun, generation: UInt32?, adapter: AdapterChoice,
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> EvaluationReport {
    try evaluate(
      queries: run.heldOut, qrels: run.heldOutQrels, exact: true, ef: 100, perQuery: true,
      generation: generation, adapter: adapter
    ) { try progress?(.evaluating($0)) }
  }

  /// The run's pairs as token ids for the encoder tier.
  private func encoderExamples(_ run: TrainingRun, tokenizer: WordPieceTokenizer) throws
    -> [TrainingExample]
  {
    let texts = try documentTexts(Set(run.pairs.flatMap { [$0.positive] + $0.negatives }))
    return try run.pairs.map { pair in
      func document(_ id: String) throws -> (id: String, text: String) {
        guard let text = texts[id] else {
          throw VectorDBError.documentNotFound(id: id, collection: name)
        }
        return (id, text)
      }
      return TrainingExample(
        query: pair.query, positive: try document(pair.positive),
        negatives: try pair.negatives.map(document), tokenizer: tokenizer,
        maxLength: run.options.maxSequenceLength)
    }
  }

  /// The run's pairs as vectors for the adapter tier: queries embedded by the base
  /// encoder, documents as the run's generation stores them.
  private func adapterExamples(_ run: TrainingRun, encoder: SentenceEncoder) throws
    -> [AdapterExample]
  {
    let queries = Array(Set(run.pairs.map(\.query))).sorted()
    let queryVectors = Dictionary(uniqueKeysWithValues: zip(queries, encoder.embed(queries)))
    guard let plan = try indexPlan(generation: run.generation) else {
      throw VectorDBError.unsupported("collection \"\(name)\" has no vectors")
    }
    let documents = Set(run.pairs.flatMap { [$0.positive] + $0.negatives })
    let vectors = try storedVectors(documents, plan: plan)
    if let missing = documents.first(where: { vectors[$0] == nil }) {
      throw VectorDBError.documentNotFound(id: missing, collection: name)
    }
    return run.pairs.map { pair in
      AdapterExample(
        query: queryVectors[pair.query]!, positive: vectors[pair.positive]!,
        negatives: pair.negatives.map { vectors[$0]! }, keys: pair.keys)
    }
  }

  /// The vectors `plan`'s generation stores for documents `ids`, in one snapshot; ids
  /// without a document or a vector are left out.
  private func storedVectors(_ ids: Set<String>, plan: IndexPlan) throws -> [String: [Float]] {
    try read { txn in
      var vectors: [String: [Float]] = [:]
      for id in ids {
        if let bytes = try txn.get(schema.docs, key: Schema.docKey(collection: self.id, id: id)),
          let vector = try plan.index.vector(of: DocumentRecord.row(of: bytes), in: txn)
        {
          vectors[id] = vector
        }
      }
      return vectors
    }
  }

  private func documentTexts(_ ids: Set<String>) throws -> [String: String] {
    try read { txn in
      var texts: [String: String] = [:]
      for id in ids {
        if let bytes = try txn.get(schema.docs, key: Schema.docKey(collection: self.id, id: id)) {
          texts[id] = try DocumentRecord(bytes: bytes, path: database.path).text
        }
      }
      return texts
    }
  }

  /// Mines the run's pairs from the log (or reloads them when resuming).
  private func prepareRun(options: TrainingOptions, progress: ((TrainingStage) throws -> Void)?)
    throws -> TrainingRun
  {
    if options.resume, let saved = try loadBlob("train.run") {
      // The recipe is the saved one; what to do with the result may be said anew.
      var run = try JSONDecoder().decode(TrainingRun.self, from: saved)
      run.options.resume = true
      run.options.force = run.options.force || options.force
      run.options.checkpointEvery = options.checkpointEvery
      return run
    }
    guard let plan = try indexPlan(), let baseModel = plan.generation.model else {
      throw VectorDBError.unsupported("collection \"\(name)\" has no model to train")
    }
    let encoder = try database.encoder(version: baseModel)
    // Group the judgements by query text.
    var judged: [String: [String: Int]] = [:]
    var notRelevant: [String: [String]] = [:]
    try database.forEachLogEntry(collection: name) { entry in
      guard let text = entry.text else { return }
      for item in entry.feedback {
        if item.isRelevant {
          judged[text, default: [:]][item.documentID] = max(
            judged[text]?[item.documentID] ?? 0, item.relevance)
        } else {
          notRelevant[text, default: []].append(item.documentID)
        }
      }
    }
    // Deterministic split by query text.
    var train: [String] = []
    var heldOut: [String: String] = [:]
    var heldOutQrels: [String: [String: Int]] = [:]
    for text in judged.keys.sorted() {
      let bucket = Double(Collection.stableHash(text, seed: options.seed) % 10_000) / 10_000
      if bucket < options.heldOutFraction {
        let id = "q\(heldOut.count)"
        heldOut[id] = text
        heldOutQrels[id] = judged[text]
      } else {
        train.append(text)
      }
    }
    // Pairs (whose positive still exists) and mined negatives.
    let existing = try documentTexts(Set(train.flatMap { judged[$0]!.keys }))
    let mining = options.hardNegatives > 0 ? HardNegativeMining(count: options.hardNegatives) : nil
    var pairs: [MinedPair] = []
    let chunk = 64
    for first in stride(from: 0, to: train.count, by: chunk) {
      let part = Array(train[first..<min(first + chunk, train.count)])
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
        positiveVectors = try storedVectors(
          Set(part.flatMap { judged[$0]!.keys }), plan: plan)
      }
      for (offset, text) in part.enumerated() {
        let positives = judged[text]!
        for positive in positives.keys.sorted()
        where positives[positive]! > 0 && existing[positive] != nil {
          var negatives: [String] = []
          if let mining {
            negatives =
              mining.negatives(
                ranked: ranked[offset].hits.map { (id: $0.id, score: Double($0.score)) },
                positiveScore: Double(
                  positiveVectors[positive].map { Distance.dot(queryVectors[offset], $0) } ?? 0),
                positives: Set(positives.keys), notRelevant: notRelevant[text] ?? []
              ).negatives
          }
          pairs.append(MinedPair(query: text, positive: positive, negatives: negatives))
        }
      }
      try progress?(
        .mining(OperationProgress(done: min(first + chunk, train.count), total: train.count)))
    }
    // "Not relevant" marks may name deleted documents: keep the negatives that exist.
    let negativeIDs = try documentTexts(Set(pairs.flatMap(\.negatives)))
    for index in pairs.indices { pairs[index].negatives.removeAll { negativeIDs[$0] == nil } }
    let data = TrainingData(
      trainQueries: train.count, trainPairs: pairs.count,
      negatives: pairs.reduce(0) { $0 + $1.negatives.count }, heldOutQueries: heldOut.count)
    let run = TrainingRun(
      baseModel: baseModel, generation: plan.generation.id, options: options, pairs: pairs,
      heldOut: heldOut, heldOutQrels: heldOutQrels, data: data)
    return run
  }

  /// FNV-1a of the text's UTF-8 mixed with `seed`: the same split on every run.
  static func stableHash(_ text: String, seed: UInt64) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
    for byte in text.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return hash
  }

  private func blobKey(_ name: String) -> String { "collection.\(id).\(name)" }

  private func loadBlob(_ name: String) throws -> Data? {
    let key = blobKey(name)
    return try read { txn in try txn.get(schema.meta, key: key).map { Data($0) } }
  }

  private func saveBlob(_ name: String, _ data: Data) throws {
    let key = blobKey(name)
    try storage {
      try database.environment.write { txn in try txn.put(schema.meta, key: key, value: data) }
    }
  }
}
