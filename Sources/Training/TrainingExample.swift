/// One training example for the ranking loss: a query, its relevant document and optional hard
/// negatives, all as token ids ([CLS] … [SEP], truncated to the training length).
///
/// ``keys`` identify the texts for the no-duplicates sampler: pass the query text and the
/// document ids (or texts) so that two examples sharing a document never meet in one batch.
///
/// ```swift
/// let example = TrainingExample(
///   query: [101, 2054, 102], positive: [101, 1996, 3899, 102], negatives: [[101, 4937, 102]],
///   keys: ["what is x", "doc:17", "doc:42"])
/// ```
public struct TrainingExample: Sendable, Equatable, Codable {
  public var query: [Int32]
  public var positive: [Int32]
  public var negatives: [[Int32]]
  /// Values that must not repeat inside a batch: query, positive, then each negative.
  public var keys: [String]

  /// Without `keys`, the token ids themselves stand for the texts.
  public init(query: [Int32], positive: [Int32], negatives: [[Int32]] = [], keys: [String]? = nil) {
    self.query = query
    self.positive = positive
    self.negatives = negatives
    self.keys =
      keys ?? ([query, positive] + negatives).map { $0.map(String.init).joined(separator: " ") }
  }
}

/// The steps of a run: which examples each step trains on, epoch after epoch, and at
/// which learning rate. Pure function of the examples' keys and the configuration, so a
/// resumed run recomputes exactly the batches of the original.
public struct TrainingPlan: Sendable {
  /// `batches[epoch][i]` lists example indices.
  public let batches: [[[Int]]]
  /// Steps in the whole run.
  public let totalSteps: Int
  /// The learning rate of each step.
  public let schedule: LinearWarmupSchedule

  init(keys: [[String]], configuration: TrainingConfiguration) {
    let sampler = NoDuplicatesBatchSampler(
      batchSize: configuration.batchSize, seed: configuration.seed)
    batches = (0..<configuration.epochs).map { sampler.batches(keys: keys, epoch: $0) }
    totalSteps = batches.reduce(0) { $0 + $1.count }
    schedule = LinearWarmupSchedule(
      peak: configuration.learningRate, totalSteps: totalSteps,
      warmupRatio: configuration.warmupRatio)
  }

  /// (epoch, examples) of the 0-based global `step`.
  public func batch(atStep step: Int) -> (epoch: Int, examples: [Int]) {
    var remaining = step
    for (epoch, epochBatches) in batches.enumerated() {
      if remaining < epochBatches.count { return (epoch, epochBatches[remaining]) }
      remaining -= epochBatches.count
    }
    preconditionFailure("step \(step) is past the plan's \(totalSteps) steps")
  }
}

/// The knobs of a training run, with the recipe of DESIGN.md §7 as defaults.
public struct TrainingConfiguration: Sendable, Equatable, Codable {
  public var epochs = 1
  public var batchSize = 32
  /// Peak learning rate (2e-5 for the full encoder, ~1e-3 for the adapter).
  public var learningRate = 2e-5
  public var warmupRatio = 0.1
  public var weightDecay = 0.01
  public var maxGradientNorm = 1.0
  public var dropout = 0.1
  /// Scale of the cosine similarities in the ranking loss.
  public var scale = 20.0
  public var seed: UInt64 = 42
  /// GradCache: when set, a batch is embedded and backpropagated in groups of at most this
  /// many sequences, so memory is bounded by the group, not the batch. nil: all at once.
  public var miniBatchSize: Int?

  public init() {}

  /// The defaults of the query-adapter tier (lr 1e-3, no weight decay: the map is followed by
  /// normalisation, so shrinking it towards zero means nothing).
  public static var adapter: TrainingConfiguration {
    var configuration = TrainingConfiguration()
    configuration.learningRate = 1e-3
    configuration.weightDecay = 0
    configuration.dropout = 0
    return configuration
  }

  func validate() throws(TrainingError) {
    if epochs < 1 { throw .badInput("epochs must be at least 1, got \(epochs)") }
    if batchSize < 1 { throw .badInput("batch size must be at least 1, got \(batchSize)") }
    if !(learningRate > 0) { throw .badInput("learning rate must be positive") }
    if !(0..<1).contains(warmupRatio) { throw .badInput("warm-up ratio must be in [0, 1)") }
    if !(0..<1).contains(dropout) { throw .badInput("dropout must be in [0, 1)") }
    if !(maxGradientNorm > 0) { throw .badInput("max gradient norm must be positive") }
    if !(scale > 0) { throw .badInput("loss scale must be positive") }
    if !(weightDecay >= 0) { throw .badInput("weight decay must not be negative") }
    if let miniBatchSize, miniBatchSize < 1 {
      throw .badInput("mini-batch size must be at least 1, got \(miniBatchSize)")
    }
  }
}

/// What the progress callback of a trainer receives after each step.
public struct TrainingProgress: Sendable, Equatable {
  /// Steps done (1-based: the first callback says 1).
  public var step: Int
  public var totalSteps: Int
  /// 0-based epoch of the step just taken.
  public var epoch: Int
  /// The step's loss.
  public var loss: Double
  /// The learning rate the step used.
  public var learningRate: Double
  /// Steps per second since ``EncoderTrainer/run(steps:progress:)`` began.
  public var stepsPerSecond: Double
  /// Seconds to finish at that rate.
  public var secondsRemaining: Double { Double(totalSteps - step) / max(stepsPerSecond, 1e-9) }
}
