import Foundation
import Tensor

/// One example for the query-adapter tier: the frozen model's query and document vectors
/// (unit length), with ``TrainingExample/keys``-style keys for the no-duplicates sampler.
public struct AdapterExample: Sendable, Equatable, Codable {
  public var query: [Float]
  public var positive: [Float]
  public var negatives: [[Float]]
  /// Values that must not repeat inside a batch: query, positive, then each negative.
  public var keys: [String]

  public init(query: [Float], positive: [Float], negatives: [[Float]] = [], keys: [String]) {
    self.query = query
    self.positive = positive
    self.negatives = negatives
    self.keys = keys
  }
}

/// The training loop of the query-adapter tier: the same batches, loss, clipping and schedule
/// as ``EncoderTrainer``, over frozen vectors, updating only the adapter matrix. A step costs a
/// few small matrix products, so a run takes seconds.
///
/// ```swift
/// let trainer = try AdapterTrainer(dimension: 384, examples: examples)   // lr 1e-3 by default
/// trainer.run()
/// let adapted = trainer.adapter.apply(to: queryVectors)
/// ```
public final class AdapterTrainer: RankingTrainer {
  public let configuration: TrainingConfiguration
  public private(set) var adapter: QueryAdapter<Float>
  public private(set) var optimizer: AdamW<Float>
  public let loss: MultipleNegativesRankingLoss
  public private(set) var step = 0
  public private(set) var lossHistory: [Double] = []
  private let examples: [AdapterExample]
  public let plan: TrainingPlan

  public init(
    dimension: Int, examples: [AdapterExample],
    configuration: TrainingConfiguration = .adapter
  ) throws(TrainingError) {
    try configuration.validate()
    guard !examples.isEmpty else { throw .badInput("no training examples") }
    for (i, example) in examples.enumerated() {
      for vector in [example.query, example.positive] + example.negatives
      where vector.count != dimension {
        throw .badInput(
          "example \(i) has a vector of \(vector.count) values, expected \(dimension)")
      }
    }
    self.configuration = configuration
    self.examples = examples
    adapter = QueryAdapter(dimension: dimension)
    optimizer = AdamW(
      count: dimension * dimension, decays: configuration.weightDecay > 0,
      weightDecay: configuration.weightDecay)
    plan = TrainingPlan(keys: examples.map(\.keys), configuration: configuration)
    loss = MultipleNegativesRankingLoss(scale: configuration.scale)
  }

  /// One optimiser step on the next planned batch; returns its loss.
  @discardableResult
  public func takeStep() -> Double {
    precondition(!isFinished, "the run is finished")
    let batch = plan.batch(atStep: step).examples.map { examples[$0] }
    let queries = batch.flatMap(\.query)
    let documents = batch.flatMap(\.positive) + batch.flatMap { $0.negatives.flatMap { $0 } }
    let pass = adapter.forward(queries)
    let result = loss.evaluate(
      queries: pass.adapted, documents: documents, dimension: adapter.dimension)
    var gradient = adapter.backward(
      queries: queries, pass: pass, adaptedGradient: result.queryGradient)
    GradientClipping.clip(&gradient, maxNorm: configuration.maxGradientNorm)
    optimizer.step(
      parameters: &adapter.matrix, gradients: gradient,
      learningRate: learningRate(atStep: step))
    step += 1
    lossHistory.append(Double(result.loss))
    return Double(result.loss)
  }

  // MARK: - Checkpoints

  struct CheckpointHeader: Codable {
    var kind = "adapter"
    var dimension: Int
    var configuration: TrainingConfiguration
    var step: Int
    var optimizerStep: Int
    var lossHistory: [Double]
    var examples: Int
    var examplesFingerprint: UInt64
  }

  private static func fingerprint(of examples: [AdapterExample]) -> UInt64 {
    var f = Fingerprint()
    for example in examples {
      for vector in [example.query, example.positive] + example.negatives { f.mix(vector) }
      for key in example.keys { f.mix(key) }
    }
    return f.value
  }

  /// The complete state of the run as bytes.
  public func checkpoint() throws -> Data {
    let header = CheckpointHeader(
      dimension: adapter.dimension, configuration: configuration, step: step,
      optimizerStep: optimizer.step, lossHistory: lossHistory, examples: examples.count,
      examplesFingerprint: Self.fingerprint(of: examples))
    return try CheckpointFile(
      header: header,
      arrays: [
        ("matrix", adapter.matrix), ("firstMoment", optimizer.firstMoment),
        ("secondMoment", optimizer.secondMoment),
      ]
    ).encoded()
  }

  /// Continues the run saved in `checkpoint`; `examples` must be those it was started with.
  public convenience init(resuming checkpoint: Data, examples: [AdapterExample])
    throws(TrainingError)
  {
    let file = try CheckpointFile<CheckpointHeader>.decode(checkpoint, kind: "adapter")
    let header = file.header
    guard header.examples == examples.count,
      header.examplesFingerprint == Self.fingerprint(of: examples)
    else {
      throw .badCheckpoint("it was made with other training examples")
    }
    try self.init(
      dimension: header.dimension, examples: examples, configuration: header.configuration)
    guard (0...plan.totalSteps).contains(header.step) else {
      throw .badCheckpoint("step \(header.step) is outside the run's \(plan.totalSteps) steps")
    }
    let count = header.dimension * header.dimension
    adapter.matrix = try file.array("matrix", count: count)
    optimizer.firstMoment = try file.array("firstMoment", count: count)
    optimizer.secondMoment = try file.array("secondMoment", count: count)
    optimizer.step = header.optimizerStep
    step = header.step
    lossHistory = header.lossHistory
  }
}
