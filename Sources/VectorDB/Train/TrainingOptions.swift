import Foundation
import Training

/// How a training pass multiplies the encoder's linear layers: float32, or bfloat16 products
/// summed in float32 (Training's `MatmulPrecision`).
public typealias MatmulPrecision = Training.MatmulPrecision

/// How `DocumentCollection.train` fine-tunes. The defaults are the recipe docs/training.md
/// justifies by measurement; every field has a shell flag of the same name.
///
/// ```swift
/// var options = TrainingOptions()
/// options.tier = .adapter          // seconds, no re-embedding
/// options.hardNegatives = 1
/// let report = try docs.train(options: options)
/// ```
public struct TrainingOptions: Sendable, Codable {
  /// What a run trains.
  public enum Tier: String, Sendable, Codable, CaseIterable {
    /// The whole encoder: a promoted candidate re-embeds the corpus into a new generation.
    case full
    /// A query-side adapter (a `d×d` map on query vectors) over frozen document vectors:
    /// no re-embedding, activation is instant.
    case adapter
    /// Low-rank adapters (LoRA) on the encoder's attention projections, trained like the
    /// full tier; stored as the adapters over their parent, merged into the weights at load.
    case lora
    /// The hybrid fusion weight alpha (`DocumentCollection.trainFusion`): seconds, nothing embedded
    /// but the judged queries; stored as a fusion version of the collection.
    case fusion
  }
  /// What the run trains (JSON `tier`; default `.full`).
  public var tier = Tier.full
  /// Passes over the pairs; nil: the tier's default (`defaultEpochs`).
  public var epochs: Int?
  /// (Query, positive) pairs per step, each batch's other positives its in-batch negatives
  /// (JSON `batch_size`; at least 2).
  public var batchSize = 32
  /// Peak learning rate; nil: the tier's default (5e-5 full, 1e-4 lora, 1e-3 adapter).
  public var learningRate: Double?
  /// Tokens per training sequence, 2 up to the model's maximum.
  public var maxSequenceLength = 128
  /// Seeds the batch order, the gate's folds, its corpus sample and the bootstrap: the same
  /// seed and data give the same run (JSON `seed`).
  public var seed: UInt64 = 42
  /// Mined hard negatives per (query, positive) pair (0–10).
  public var hardNegatives = 1
  /// Share of judged queries held out for the gate when it uses a plain split.
  public var heldOutFraction = 0.2
  /// Gate folds: 1 is a plain split (`heldOutFraction`); k ≥ 2 cross-fits (every judged
  /// query is judged once, by a candidate trained on the other folds). nil: automatic —
  /// `crossFitFolds` folds below `crossFitBelow` judged queries, else a plain split.
  public var folds: Int?
  /// Candidates per held-out query that the gate re-scores with a full-tier candidate:
  /// the current retriever's top `gatePool` plus the judged documents.
  public var gatePool = 100
  /// Documents drawn at random from the corpus and added to every pool, so that a
  /// candidate that ranks unrelated documents high is caught.
  public var gateSample = 200
  /// Promote the candidate even when the gate says no.
  public var force = false
  /// Save a checkpoint every this many steps (resumable with `resume`).
  public var checkpointEvery = 20
  /// Continue the interrupted run of this collection from its last checkpoint.
  public var resume = false
  /// GradCache mini-batch (nil: the whole batch at once). Same result, less memory.
  public var miniBatchSize: Int?
  /// Ranked candidates looked at per query when mining negatives.
  public var miningDepth = 200
  /// Keep the weights of a rejected full-tier candidate (by default only its lineage and
  /// metrics are kept: 86 MiB saved per rejected run).
  public var keepRejected = false
  /// Full tier: build the promoted candidate's generation before returning (false: the
  /// building generation is left for `reembed()`, e.g. a background `vdb reembed`).
  public var waitForReembed = true
  /// Documents per write transaction of the promoted candidate's re-embed job.
  public var reembedBatchSize = 256
  /// Rank of the LoRA tier's adapters (1–256); nil: 16 (alpha is twice the rank).
  public var loraRank: Int?
  /// How the encoder tiers (full, LoRA) multiply the encoder's linear layers (JSON
  /// `matmul_precision`); nil: ``MatmulPrecision/automatic`` — bfloat16 where the CPU
  /// multiplies it natively (AMX or AVX-512 BF16), else float32.
  public var matmulPrecision: MatmulPrecision?

  /// The defaults (docs/training.md says why each).
  public init() {}

  enum CodingKeys: String, CodingKey {
    case tier, epochs, seed, resume, force, folds
    case batchSize = "batch_size"
    case learningRate = "learning_rate"
    case maxSequenceLength = "max_seq_length"
    case hardNegatives = "hard_negatives"
    case heldOutFraction = "held_out"
    case gatePool = "gate_pool"
    case gateSample = "gate_sample"
    case checkpointEvery = "checkpoint_every"
    case miniBatchSize = "mini_batch"
    case miningDepth = "mining_depth"
    case keepRejected = "keep_rejected"
    case waitForReembed = "wait_for_reembed"
    case reembedBatchSize = "reembed_batch_size"
    case loraRank = "lora_rank"
    case matmulPrecision = "matmul_precision"
  }

  /// Below this many judged queries the automatic gate cross-fits.
  public static let crossFitBelow = 400
  /// Three folds: each candidate trains on two thirds of the judged queries, so the
  /// gate's estimate errs low (conservative), at 3 + 1 fits instead of 5 + 1.
  public static let crossFitFolds = 3

  /// The learning rate the run uses.
  public var peakLearningRate: Double {
    if let learningRate { return learningRate }
    switch tier {
    case .full: return 5e-5
    case .lora: return 1e-4
    case .adapter, .fusion: return 1e-3
    }
  }

  /// The passes the run makes.
  public var epochCount: Int {
    epochs ?? (tier == .adapter ? 10 : 3)
  }

  /// The LoRA tier's adapters: rank ``loraRank`` (16), alpha twice the rank; nil otherwise.
  var loraConfiguration: LoRAConfiguration? {
    guard tier == .lora else { return nil }
    let rank = loraRank ?? 16
    return LoRAConfiguration(rank: rank, alpha: 2 * Double(rank))
  }

  /// The gate's folds for `judged` judged queries (1: a plain split).
  public func foldCount(judged: Int) -> Int {
    folds ?? (judged < Self.crossFitBelow ? Self.crossFitFolds : 1)
  }

  /// Checks the counts and ranges, naming the option.
  ///
  /// - Throws: `VectorDBError.invalidInput` (source "option") naming the option and range.
  public func validate(modelMaxSequenceLength: Int = 512) throws {
    func check(_ ok: Bool, _ reason: String) throws {
      if !ok { throw VectorDBError.invalidInput(source: "option", line: nil, reason: reason) }
    }
    try check((epochs ?? 1) >= 1, "epochs must be at least 1")
    try check(batchSize >= 2, "batch size must be at least 2 (in-batch negatives)")
    // 1 is 1,000 times the largest default; far above it the weights overflow.
    try check(
      (learningRate ?? 1) > 0 && (learningRate ?? 1) <= 1,
      "the learning rate must be positive and at most 1")
    try check(
      (2...modelMaxSequenceLength).contains(maxSequenceLength),
      "max sequence length must be 2…\(modelMaxSequenceLength) (the model's maximum)")
    try check((0...10).contains(hardNegatives), "hard negatives must be 0…10")
    try check(heldOutFraction > 0 && heldOutFraction < 1, "held-out share must be in (0, 1)")
    try check((folds ?? 1) >= 1 && (folds ?? 1) <= 20, "folds must be 1…20")
    try check(gatePool >= 10, "the gate pool must hold at least 10 documents per query")
    try check(gateSample >= 0, "the gate sample cannot be negative")
    try check(checkpointEvery >= 1, "checkpoint interval must be at least 1 step")
    try check((miniBatchSize ?? 1) >= 1, "mini-batch size must be at least 1")
    try check((1...256).contains(loraRank ?? 16), "LoRA rank must be 1…256")
    try check(miningDepth >= 1, "mining depth must be at least 1")
    try check(reembedBatchSize >= 1, "re-embed batch size must be at least 1")
  }
}

/// What the log yields for training (`vdb train --dry-run`), and what the gate can tell.
public struct TrainingData: Codable, Sendable {
  /// Logged queries with at least one relevant document that still exists.
  public var judgedQueries: Int
  /// Judged queries the final candidate trains on, and their (query, positive) pairs.
  public var trainQueries: Int
  /// (Query, positive) pairs of those queries (JSON `train_pairs`).
  public var trainPairs: Int
  /// Hard negatives mined in all.
  public var negatives: Int
  /// Judged queries the gate judges candidates on: when cross-fitting, all of them but
  /// those `alreadyTrained`.
  public var heldOutQueries: Int
  /// Judged queries the current retriever (or a model it descends from) was fitted on:
  /// they train candidates but do not vote, as the current model would be scored on them
  /// in-sample (JSON `already_trained`).
  public var alreadyTrained = 0
  /// Gate folds: 1 a plain split, k ≥ 2 cross-fitting.
  public var folds: Int
  /// Roughly how many judged queries the gate needs to tell a gain of +0.02 nDCG@10 from
  /// noise (see `TrainingData.queriesNeeded`).
  public var queriesNeeded: Int

  enum CodingKeys: String, CodingKey {
    case judgedQueries = "judged_queries"
    case trainQueries = "train_queries"
    case trainPairs = "train_pairs"
    case negatives
    case heldOutQueries = "heldout_queries"
    case alreadyTrained = "already_trained"
    case folds
    case queriesNeeded = "queries_needed"
  }

  /// Per-query nDCG@10 changes of a fine-tune vary with a standard deviation of about
  /// 0.16 (measured on SciFact's held-out queries). The 95% interval of a mean over n
  /// queries is ±1.96·σ/√n; it excludes zero for a gain δ when n ≥ (1.96·σ/δ)².
  public static func queriesNeeded(gain: Double = 0.02, spread: Double = 0.16) -> Int {
    Int(((1.96 * spread / gain) * (1.96 * spread / gain)).rounded(.up))
  }
}

extension TrainingData {
  /// Decodes a run saved by a version of vdb that had no `already_trained` (as 0).
  public init(from decoder: any Decoder) throws {
    let values = try decoder.container(keyedBy: CodingKeys.self)
    judgedQueries = try values.decode(Int.self, forKey: .judgedQueries)
    trainQueries = try values.decode(Int.self, forKey: .trainQueries)
    trainPairs = try values.decode(Int.self, forKey: .trainPairs)
    negatives = try values.decode(Int.self, forKey: .negatives)
    heldOutQueries = try values.decode(Int.self, forKey: .heldOutQueries)
    alreadyTrained = try values.decodeIfPresent(Int.self, forKey: .alreadyTrained) ?? 0
    folds = try values.decode(Int.self, forKey: .folds)
    queriesNeeded = try values.decode(Int.self, forKey: .queriesNeeded)
  }
}

/// The gate's verdict: the mean change of nDCG@10 over the judged queries and its 95%
/// paired-bootstrap interval.
public struct GateVerdict: Codable, Sendable, Equatable {
  /// Mean change of nDCG@10, candidate minus current, over the gate's queries (JSON `delta`).
  public var delta: Double
  /// Lower end of the 95% paired-bootstrap interval of `delta` (JSON `ci_low`).
  public var ciLow: Double
  /// Upper end of that interval (JSON `ci_high`).
  public var ciHigh: Double
  /// The gate's queries: held out, or every judged query when cross-fitting (JSON `queries`).
  public var queries: Int
  /// Whether the candidate was promoted: `ciLow` above zero, or `force` (JSON `promoted`).
  public var promoted: Bool
  /// "split" (a held-out share) or "cross_fit" (every judged query, out of fold).
  public var method: String
  /// Folds: 1 for a split, k ≥ 2 when cross-fitting (JSON `folds`).
  public var folds: Int
  /// Full tier: documents the candidate embedded to judge (the pools), not the corpus.
  public var documentsEmbedded: Int

  enum CodingKeys: String, CodingKey {
    case delta
    case ciLow = "ci_low"
    case ciHigh = "ci_high"
    case queries, promoted, method, folds
    case documentsEmbedded = "documents_embedded"
  }
}

/// The outcome of `DocumentCollection.train`: the candidate's version, the gate's verdict
/// and why, the data it had, and the changes on the gate's queries.
///
/// ```swift
/// let report = try docs.train()
/// print(report.reason)   // "not promoted: nDCG@10 …" or "nDCG@10 improved: …"
/// if report.promoted {
///   print("v\(report.modelVersion) serves, generation \(report.generation ?? 0)")
/// }
/// for change in report.changes { print(change.ndcgBefore, "→", change.ndcgAfter, change.query) }
/// ```
public struct TrainingReport: Codable, Sendable {
  /// The tier trained (JSON `tier`).
  public var tier: TrainingOptions.Tier
  /// The recipe the run used (a resumed run's is the one it started with).
  public var options: TrainingOptions
  /// The candidate's model version: an encoder, or a query adapter over the collection's
  /// encoder. A rejected full-tier candidate keeps only its lineage unless `keepRejected`.
  public var modelVersion: Int
  /// Whether the candidate now serves: the gate said yes, or `force` (JSON `promoted`).
  public var promoted: Bool
  /// Why it was (not) promoted, in words.
  public var reason: String
  /// The gate's verdict (JSON `gate`).
  public var gate: GateVerdict
  /// Gate-query metrics of the current and the candidate retriever (out of fold when
  /// cross-fitting).
  public var heldOutBefore: [String: Double]
  /// Gate-query metrics of the candidate (JSON `heldout_after`; same keys as `heldout_before`).
  public var heldOutAfter: [String: Double]
  /// What the log yielded: judged queries, pairs, negatives, folds (JSON `data`).
  public var data: TrainingData
  /// (query, positive) pairs the published candidate trained on.
  public var trainPairs: Int
  /// Loss of every step of the published candidate's fit.
  public var losses: [Double]
  /// The gate queries whose nDCG@10 changed most, best first (at most 5 each way).
  public var changes: [QueryChange]
  /// Full tier, promoted: the generation being built (`reembedded` says if it is active).
  public var generation: Int?
  /// Full tier: whether the new generation was built and became active before `train` returned
  /// (JSON `reembedded`; false with `waitForReembed` off, or when not promoted).
  public var reembedded: Bool
  /// Seconds spent fitting candidates (JSON `training_seconds`).
  public var trainingSeconds: Double
  /// Wall-clock seconds of the whole run: mining, fits, gate, publish (JSON `seconds`).
  public var seconds: Double
  /// Fusion tier: the fitted version (its alpha and lineage).
  public var fusion: FusionVersion?

  enum CodingKeys: String, CodingKey {
    case tier, options, fusion
    case modelVersion = "model_version"
    case promoted, reason, gate
    case heldOutBefore = "heldout_before"
    case heldOutAfter = "heldout_after"
    case data
    case trainPairs = "train_pairs"
    case losses, changes, generation, reembedded
    case trainingSeconds = "training_seconds"
    case seconds
  }
}

/// One gate query, before and after: its nDCG@10 and the rank of its best relevant
/// document (nil: not in the top 100).
public struct QueryChange: Codable, Sendable, Equatable {
  /// The query text (JSON `query`).
  public var query: String
  /// Its nDCG@10 with the current retriever (JSON `ndcg_before`).
  public var ndcgBefore: Double
  /// Its nDCG@10 with the candidate (JSON `ndcg_after`).
  public var ndcgAfter: Double
  /// Rank of its best relevant document before, from 1 (JSON `rank_before`; null: not in the
  /// top 100).
  public var rankBefore: Int?
  /// The same rank with the candidate (JSON `rank_after`; null: not in the top 100).
  public var rankAfter: Int?

  enum CodingKeys: String, CodingKey {
    case query
    case ndcgBefore = "ndcg_before"
    case ndcgAfter = "ndcg_after"
    case rankBefore = "rank_before"
    case rankAfter = "rank_after"
  }
}

/// A stage of `DocumentCollection.train`, for progress reports.
public enum TrainingStage: Sendable {
  /// Mining hard negatives: judged queries done of all.
  case mining(OperationProgress)
  /// Ranking the gate's queries with the current retriever (or an adapter candidate):
  /// queries done of all.
  case evaluating(OperationProgress)
  /// Fitting a candidate: `fold` of `folds` (the last is the published one when
  /// cross-fitting).
  case training(FitProgress, fold: Int, folds: Int)
  /// Embedding documents with a full-tier candidate: its gate pools, or the promoted
  /// candidate's re-embed into a new generation. Documents done of all.
  case embedding(OperationProgress)
}
