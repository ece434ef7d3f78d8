import Embedding
import Foundation
import LMDB
import Tensor
import Training

/// How `Collection.train` fine-tunes (DESIGN.md §7; defaults are the recipe there).
public struct TrainingOptions: Sendable, Codable {
  public var epochs = 1
  public var batchSize = 32
  /// Peak learning rate.
  public var learningRate = 2e-5
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

  public init() {}
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
  /// The candidate's model version (stored whether promoted or not).
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

/// The examples of a run, saved so that a resumed run trains on exactly the same data.
private struct TrainingRun: Codable {
  var baseModel: Int
  var options: TrainingOptions
  var examples: [TrainingExample]
  var heldOut: [String: String]
  var heldOutQrels: [String: [String: Int]]
  var data: TrainingData
}

extension Collection {
  /// The training data the log yields now, without training (`vdb train --dry-run`).
  public func trainingData(options: TrainingOptions = TrainingOptions()) throws -> TrainingData {
    try prepareRun(options: options, progress: nil).data
  }

  /// Fine-tunes the collection's encoder on its query log and promotes the result only
  /// when a held-out evaluation says it is better.
  ///
  /// 1. (query, relevant document) pairs come from the log: clicks, corrections and
  ///    admin judgements. Queries are split by text (deterministically) into training
  ///    and held-out parts.
  /// 2. Hard negatives are mined with the current model: the best-ranked documents not
  ///    judged relevant for the query and scoring at most 0.95 × the positive's score;
  ///    documents marked not relevant come first.
  /// 3. The encoder trains with the multiple-negatives ranking loss (Training module).
  /// 4. The candidate becomes a new model version; the corpus is embedded with it into
  ///    a building generation, and both models are evaluated on the held-out queries.
  /// 5. If the paired bootstrap says nDCG@10 improved (or `force`), the new generation
  ///    becomes active; otherwise it is dropped and the candidate is kept as rejected.
  ///
  /// The run touches nothing the active model uses until the switch: killing it leaves
  /// the database as it was (and `resume` continues from the last checkpoint).
  public func train(
    options: TrainingOptions = TrainingOptions(), progress: ((TrainingStage) throws -> Void)? = nil
  ) throws -> TrainingReport {
    let start = Date()
    let run = try prepareRun(options: options, progress: progress)
    guard !run.examples.isEmpty else {
      throw VectorDBError.unsupported(
        "collection \"\(name)\" has no logged queries with relevant feedback to train on")
    }
    guard !run.heldOut.isEmpty else {
      throw VectorDBError.unsupported("too few judged queries to hold some out for the gate")
    }
    let base = try database.encoder(version: run.baseModel)
    let before = try evaluate(
      queries: run.heldOut, qrels: run.heldOutQrels, exact: true, ef: 100, perQuery: true,
      generation: nil
    ) { try progress?(.evaluating($0)) }

    // Train (resuming from a checkpoint when asked and one exists).
    var configuration = TrainingConfiguration()
    configuration.epochs = options.epochs
    configuration.batchSize = options.batchSize
    configuration.learningRate = options.learningRate
    configuration.seed = options.seed
    configuration.miniBatchSize = options.miniBatchSize
    let trainer: EncoderTrainer
    do {
      if options.resume, let checkpoint = try loadBlob("train.checkpoint") {
        trainer = try EncoderTrainer(resuming: checkpoint, examples: run.examples)
      } else {
        trainer = try EncoderTrainer(
          parameters: try EncoderParameters(base), examples: run.examples,
          configuration: configuration)
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
    let candidate = try SentenceEncoder(
      config: base.config, tokenizer: base.tokenizer,
      weights: trainer.encoder.parameters.namedTensors(),
      maxSequenceLength: base.maxSequenceLength, pooling: base.pooling,
      normalizesOutput: base.normalizesOutput)

    // Store the candidate, embed the corpus with it, and let the gate decide.
    let lineage: [String: JSONValue] = [
      "collection": .string(name), "train_pairs": .number(Double(run.data.trainPairs)),
      "negatives": .number(Double(run.data.negatives)),
      "heldout_queries": .number(Double(run.data.heldOutQueries)),
      "epochs": .number(Double(options.epochs)), "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.learningRate),
      "max_seq_length": .number(Double(options.maxSequenceLength)),
      "seed": .number(Double(options.seed)),
      "losses": .array(trainer.lossHistory.map { .number($0) }),
    ]
    var info = try storage {
      try database.environment.write { txn in
        try database.models.add(
          encoder: candidate, name: "fine-tune of v\(run.baseModel) on \(name)", kind: .encoder,
          state: .rejected,
          parent: run.baseModel, lineage: lineage, in: txn)
      }
    }
    let generation = try build(model: info.version, batchSize: 256) {
      try progress?(.embedding($0))
    }
    let after = try evaluate(
      queries: run.heldOut, qrels: run.heldOutQrels, exact: true, ef: 100, perQuery: true,
      generation: generation
    ) { try progress?(.evaluating($0)) }
    let ids = run.heldOut.keys.sorted()
    let verdict = PairedBootstrap(seed: options.seed).compare(
      current: ids.map { before.perQuery?[$0]?["ndcg@10"] ?? 0 },
      candidate: ids.map { after.perQuery?[$0]?["ndcg@10"] ?? 0 })
    let promoted = verdict.improves || options.force
    let reason =
      (verdict.improves
        ? "held-out nDCG@10 improved: "
        : options.force ? "promoted by --force; " : "not promoted: held-out nDCG@10 ")
      + verdict.reason
    if promoted {
      try promote(generation)
    } else {
      try abandon(generation)
    }
    info.state = promoted ? .ready : .rejected
    info.lineage["heldout_before"] = .object(before.metrics.mapValues { .number($0) })
    info.lineage["heldout_after"] = .object(after.metrics.mapValues { .number($0) })
    info.lineage["gate"] = .string(reason)
    try storage {
      try database.environment.write { txn in
        try database.models.update(info, in: txn)
        try txn.delete(database.schema.meta, key: blobKey("train.checkpoint"))
        try txn.delete(database.schema.meta, key: blobKey("train.run"))
      }
    }
    return TrainingReport(
      modelVersion: info.version, promoted: promoted, reason: reason, heldOutBefore: before.metrics,
      heldOutAfter: after.metrics, data: run.data, trainPairs: run.data.trainPairs,
      losses: trainer.lossHistory, trainingSeconds: trainingSeconds,
      seconds: Date().timeIntervalSince(start))
  }

  /// Mines the run's examples from the log (or reloads them when resuming).
  private func prepareRun(options: TrainingOptions, progress: ((TrainingStage) throws -> Void)?)
    throws -> TrainingRun
  {
    if options.resume, let saved = try loadBlob("train.run") {
      return try JSONDecoder().decode(TrainingRun.self, from: saved)
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
    // Pairs and mined negatives.
    let mining = HardNegativeMining(count: options.hardNegatives)
    var examples: [TrainingExample] = []
    var negativesMined = 0
    let documentTexts = try read { txn -> [String: String] in
      var texts: [String: String] = [:]
      for text in train {
        for documentID in (judged[text]?.keys ?? [:].keys) where texts[documentID] == nil {
          if let bytes = try txn.get(
            schema.docs, key: Schema.docKey(collection: id, id: documentID))
          {
            texts[documentID] = try DocumentRecord(bytes: bytes, path: database.path).text
          }
        }
      }
      return texts
    }
    var negativeTexts: [String: String] = [:]
    let chunk = 64
    for first in stride(from: 0, to: train.count, by: chunk) {
      let part = Array(train[first..<min(first + chunk, train.count)])
      let ranked: [QueryResult] =
        options.hardNegatives > 0
        ? try search(texts: part, vectors: nil, options: QueryOptions(k: 30, ef: 100, log: false))
        : part.map { _ in
          QueryResult(logID: nil, hits: [])
        }
      let queryVectors = options.hardNegatives > 0 ? encoder.embed(part) : []
      for (offset, text) in part.enumerated() {
        let positives = judged[text] ?? [:]
        for positive in positives.keys.sorted() where positives[positive]! > 0 {
          guard let positiveText = documentTexts[positive] else { continue }
          var negatives: [(id: String, text: String)] = []
          if options.hardNegatives > 0 {
            let positiveScore = try positiveSimilarity(
              queryVectors[offset], documentID: positive, plan: plan)
            let hits = ranked[offset].hits
            for hit in hits { negativeTexts[hit.id] = hit.text }
            let mined = mining.negatives(
              ranked: hits.map { (id: $0.id, score: Double($0.score)) },
              positiveScore: positiveScore,
              positives: Set(positives.keys), notRelevant: notRelevant[text] ?? [])
            negatives = mined.negatives.compactMap { id in
              (negativeTexts[id] ?? (try? self.get(id))??.text).map { (id: id, text: $0) }
            }
          }
          negativesMined += negatives.count
          examples.append(
            TrainingExample(
              query: text, positive: (id: positive, text: positiveText), negatives: negatives,
              tokenizer: encoder.tokenizer, maxLength: options.maxSequenceLength))
        }
      }
      try progress?(
        .mining(OperationProgress(done: min(first + chunk, train.count), total: train.count)))
    }
    let data = TrainingData(
      trainQueries: train.count, trainPairs: examples.count, negatives: negativesMined,
      heldOutQueries: heldOut.count)
    let run = TrainingRun(
      baseModel: baseModel, options: options, examples: examples, heldOut: heldOut,
      heldOutQrels: heldOutQrels,
      data: data)
    try saveBlob("train.run", try JSONEncoder().encode(run))
    return run
  }

  private func positiveSimilarity(_ query: [Float], documentID: String, plan: IndexPlan) throws
    -> Double
  {
    try read { txn in
      guard
        let bytes = try txn.get(schema.docs, key: Schema.docKey(collection: id, id: documentID)),
        let vector = try plan.index.vector(of: DocumentRecord.row(of: bytes), in: txn)
      else { return 0 }
      return Double(zip(query, vector).reduce(Float(0)) { $0 + $1.0 * $1.1 })
    }
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
