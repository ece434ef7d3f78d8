import Embedding
import Foundation
import Tensor

/// The full-encoder training loop: no-duplicates batches, multiple-negatives ranking loss
/// (optionally through GradCache), gradient-norm clipping, AdamW with linear warm-up and decay.
/// Every step is deterministic given the seed; ``checkpoint()`` captures weights, optimiser
/// moments, step and random state so that ``init(resuming:examples:)`` continues bit for bit.
///
/// ```swift
/// let trainer = try EncoderTrainer(parameters: EncoderParameters(sentenceEncoder), examples: examples)
/// trainer.run { progress in
///   print("step \(progress.step)/\(progress.totalSteps) loss \(progress.loss)")
///   if progress.step % 100 == 0 { try? trainer.checkpoint().write(to: url) }
/// }
/// let tuned = trainer.encoder.parameters.namedTensors()   // safetensors names → Tensor
/// ```
public final class EncoderTrainer: RankingTrainer {
  public let configuration: TrainingConfiguration
  public let encoder: TrainableEncoder<Float>
  public private(set) var optimizer: AdamW<Float>
  public let loss: MultipleNegativesRankingLoss
  /// Steps taken so far.
  public private(set) var step = 0
  /// Loss of every step taken, in order.
  public private(set) var lossHistory: [Double] = []
  /// Peak bytes of activations one forward pass kept (largest so far).
  public private(set) var peakActivationBytes = 0
  private let examples: [TrainingExample]
  public let plan: TrainingPlan
  /// Source of the per-sequence dropout seeds.
  private var random: Xoshiro256
  /// The low-rank adapters a LoRA run trains (nil: the run trains every weight). The
  /// encoder then always holds the base weights merged with them.
  public private(set) var lora: LoRAAdapters<Float>?
  /// The frozen weights under ``lora`` (LoRA runs only).
  private let base: EncoderParameters<Float>?

  /// Prepares a run over `examples` from `parameters`: of every weight, or with `lora`, of
  /// low-rank adapters on the weights it names (the rest frozen).
  ///
  /// - Throws: ``TrainingError`` for an invalid configuration or LoRA configuration, no
  ///   examples, or an example that does not fit the model.
  public init(
    parameters: EncoderParameters<Float>, examples: [TrainingExample],
    configuration: TrainingConfiguration = TrainingConfiguration(),
    lora: LoRAConfiguration? = nil
  ) throws(TrainingError) {
    try configuration.validate()
    guard !examples.isEmpty else { throw .badInput("no training examples") }
    for (i, example) in examples.enumerated() {
      for sequence in [example.query, example.positive] + example.negatives {
        if sequence.isEmpty {
          throw .badSequence(index: i, reason: "example has an empty sequence")
        }
        if sequence.count > parameters.config.maxPositions {
          throw .badSequence(
            index: i,
            reason: "example has \(sequence.count) tokens, more than the model's "
              + "\(parameters.config.maxPositions) positions")
        }
        if let bad = sequence.first(where: { $0 < 0 || Int($0) >= parameters.config.vocabularySize }
        ) {
          throw .badSequence(index: i, reason: "example has token id \(bad) outside the vocabulary")
        }
      }
    }
    self.configuration = configuration
    self.examples = examples
    encoder = TrainableEncoder(parameters: parameters, dropout: configuration.dropout)
    base = lora == nil ? nil : parameters
    if let lora {
      let adapters = try LoRAAdapters<Float>(
        config: parameters.config, configuration: lora, seed: configuration.seed)
      self.lora = adapters
      encoder.weightGradientsComputed = Set(adapters.entries.map(\.weight))
      optimizer = AdamW(
        count: adapters.values.count, decays: configuration.weightDecay > 0,
        weightDecay: configuration.weightDecay)
    } else {
      optimizer = AdamW(layout: parameters.layout, weightDecay: configuration.weightDecay)
    }
    plan = TrainingPlan(keys: examples.map(\.keys), configuration: configuration)
    loss = MultipleNegativesRankingLoss(scale: configuration.scale)
    random = Xoshiro256(seed: configuration.seed ^ 0x5EED_D50F_0000_0001)
  }

  /// One optimiser step on the next planned batch; returns its loss.
  @discardableResult
  public func takeStep() -> Double {
    precondition(!isFinished, "the run is finished")
    let (_, indices) = plan.batch(atStep: step)
    let batch = indices.map { examples[$0] }
    encoder.zeroGradients()
    let batchLoss = accumulateGradients(batch)
    let rate = learningRate(atStep: step)
    if var adapters = lora, let base {
      // The adapters' gradient from the merged weights' (see LoRAAdapters), clipped, then
      // the update, and the encoder re-merged for the next step.
      var gradient = adapters.gradients(
        weightGradients: encoder.gradients, layout: encoder.parameters.layout)
      GradientClipping.clip(&gradient, maxNorm: configuration.maxGradientNorm)
      optimizer.step(parameters: &adapters.values, gradients: gradient, learningRate: rate)
      lora = adapters
      encoder.parameters = adapters.merged(into: base)
    } else {
      // Clip the global gradient norm, then update.
      let norm = encoder.gradientSquaredNorm().squareRoot()
      let factor = GradientClipping.factor(norm: norm, maxNorm: configuration.maxGradientNorm)
      if factor < 1 { encoder.scaleGradients(by: Float(factor)) }
      optimizer.step(
        parameters: &encoder.parameters.values, gradients: encoder.gradients,
        learningRate: rate)
    }
    step += 1
    lossHistory.append(batchLoss)
    return batchLoss
  }

  /// The ranking loss of `examples` under the current weights, without dropout or gradients:
  /// the mean over consecutive batches of ``TrainingConfiguration/batchSize`` examples
  /// (in the order given, so a fixed batch gives a comparable number before and after steps).
  public func evaluateLoss(_ examples: [TrainingExample]) -> Double {
    let size = configuration.batchSize
    var total = 0.0
    var batches = 0
    for start in stride(from: 0, to: examples.count, by: size) {
      let batch = Array(examples[start..<min(start + size, examples.count)])
      let sequences =
        batch.map(\.query) + batch.map(\.positive) + batch.flatMap(\.negatives)
      let tokens = try! TokenBatch(
        sequences, vocabulary: encoder.config.vocabularySize,
        maximumLength: encoder.config.maxPositions)
      let embeddings = encoder.embed(tokens)
      let split = batch.count * encoder.config.hiddenSize
      total += Double(
        loss.evaluate(
          queries: Array(embeddings[..<split]), documents: Array(embeddings[split...]),
          dimension: encoder.config.hiddenSize
        ).loss)
      batches += 1
    }
    return total / Double(max(1, batches))
  }

  /// Adds d(loss)/d(parameters) for `batch` to the encoder's gradients and returns the loss,
  /// with dropout seeds drawn from the trainer's generator. Uses GradCache when
  /// ``TrainingConfiguration/miniBatchSize`` is set.
  func accumulateGradients(_ batch: [TrainingExample]) -> Double {
    let sequences =
      batch.map(\.query) + batch.map(\.positive) + batch.flatMap(\.negatives)
    let tokens = try! TokenBatch(
      sequences, vocabulary: encoder.config.vocabularySize,
      maximumLength: encoder.config.maxPositions)
    let seeds = (0..<sequences.count).map { _ in random.next() }
    return Self.rankingLossGradients(
      encoder: encoder, sequences: tokens, queryCount: batch.count, loss: loss,
      dropoutSeeds: seeds, miniBatchSize: configuration.miniBatchSize,
      peakActivationBytes: &peakActivationBytes)
  }

  /// The ranking loss of `sequences` (the first `queryCount` are queries, the next
  /// `queryCount` their positives, the rest hard negatives) with its gradient added to
  /// `encoder.gradients`.
  ///
  /// Without `miniBatchSize`, one forward pass over all sequences keeps its activations and one
  /// backward pass follows. With it (GradCache, Gao et al. 2021): embed all sequences in groups
  /// without keeping activations; compute the loss and d(loss)/d(embeddings) over the whole
  /// batch; then per group run the forward pass again, keeping activations, and backpropagate
  /// that group's rows of d(loss)/d(embeddings). Each sequence's dropout masks come from its
  /// own seed, so the second pass reproduces the first and the gradient equals the plain one.
  static func rankingLossGradients<Scalar: TensorScalar>(
    encoder: TrainableEncoder<Scalar>, sequences: TokenBatch, queryCount: Int,
    loss: MultipleNegativesRankingLoss, dropoutSeeds: [UInt64]?, miniBatchSize: Int?,
    peakActivationBytes: inout Int
  ) -> Double {
    let h = encoder.config.hiddenSize
    let split = queryCount * h
    func groups() -> [Range<Int>] {
      let size = miniBatchSize ?? sequences.count
      return stride(from: 0, to: sequences.count, by: size).map {
        $0..<min($0 + size, sequences.count)
      }
    }
    func seeds(_ range: Range<Int>) -> [UInt64]? { dropoutSeeds.map { Array($0[range]) } }

    guard miniBatchSize != nil else {
      let pass = encoder.forward(sequences, dropoutSeeds: dropoutSeeds, keepActivations: true)
      peakActivationBytes = max(peakActivationBytes, pass.activationBytes)
      let result = loss.evaluate(
        queries: Array(pass.embeddings[..<split]), documents: Array(pass.embeddings[split...]),
        dimension: h)
      encoder.backward(pass, embeddingGradient: result.queryGradient + result.documentGradient)
      return Double(result.loss)
    }
    var embeddings: [Scalar] = []
    for group in groups() {
      embeddings +=
        encoder.forward(
          sequences.slice(group), dropoutSeeds: seeds(group), keepActivations: false
        ).embeddings
    }
    let result = loss.evaluate(
      queries: Array(embeddings[..<split]), documents: Array(embeddings[split...]), dimension: h)
    let gradient = result.queryGradient + result.documentGradient
    for group in groups() {
      let pass = encoder.forward(
        sequences.slice(group), dropoutSeeds: seeds(group), keepActivations: true)
      peakActivationBytes = max(peakActivationBytes, pass.activationBytes)
      encoder.backward(
        pass, embeddingGradient: Array(gradient[(group.lowerBound * h)..<(group.upperBound * h)]))
    }
    return Double(result.loss)
  }

  // MARK: - Checkpoints

  struct CheckpointHeader: Codable {
    var kind = "encoder"
    var config: BertConfig
    var pooling: SentenceEncoder.Pooling
    /// The adapters' configuration of a LoRA run (their values are the "lora" array).
    var lora: LoRAConfiguration?
    var configuration: TrainingConfiguration
    var step: Int
    var optimizerStep: Int
    var random: [UInt64]
    var lossHistory: [Double]
    var peakActivationBytes: Int
    var examples: Int
    var examplesFingerprint: UInt64
  }

  /// The complete state of the run as bytes (see ``init(resuming:examples:)``).
  public func checkpoint() throws -> Data {
    let header = CheckpointHeader(
      config: encoder.config, pooling: encoder.pooling, lora: lora?.configuration,
      configuration: configuration, step: step,
      optimizerStep: optimizer.step, random: random.state, lossHistory: lossHistory,
      peakActivationBytes: peakActivationBytes, examples: examples.count,
      examplesFingerprint: fingerprint(of: examples))
    var arrays: [(name: String, values: [Float])] = [
      ("parameters", (base ?? encoder.parameters).values), ("firstMoment", optimizer.firstMoment),
      ("secondMoment", optimizer.secondMoment),
    ]
    if let lora { arrays.append(("lora", lora.values)) }
    return try CheckpointFile(header: header, arrays: arrays).encoded()
  }

  /// Continues the run saved in `checkpoint`; `examples` must be those it was started with.
  public convenience init(resuming checkpoint: Data, examples: [TrainingExample])
    throws(TrainingError)
  {
    let file = try CheckpointFile<CheckpointHeader>.decode(checkpoint, kind: "encoder")
    let header = file.header
    guard header.random.count == 4 else { throw .badCheckpoint("random state is not 4 words") }
    guard header.examples == examples.count,
      header.examplesFingerprint == fingerprint(of: examples)
    else {
      throw .badCheckpoint(
        "it was made with other training examples (\(header.examples) examples; given "
          + "\(examples.count) that differ)")
    }
    let layout = ParameterLayout(config: header.config)
    var parameters = try EncoderParameters<Float>(
      randomFor: header.config, pooling: header.pooling, seed: 0)
    parameters.values = try file.array("parameters", count: layout.count)
    try self.init(
      parameters: parameters, examples: examples, configuration: header.configuration,
      lora: header.lora)
    guard (0...plan.totalSteps).contains(header.step) else {
      throw .badCheckpoint("step \(header.step) is outside the run's \(plan.totalSteps) steps")
    }
    if var adapters = lora {
      adapters.values = try file.array("lora", count: adapters.values.count)
      lora = adapters
      encoder.parameters = adapters.merged(into: parameters)
    }
    let trained = lora?.values.count ?? layout.count
    optimizer.firstMoment = try file.array("firstMoment", count: trained)
    optimizer.secondMoment = try file.array("secondMoment", count: trained)
    optimizer.step = header.optimizerStep
    step = header.step
    lossHistory = header.lossHistory
    peakActivationBytes = header.peakActivationBytes
    random = Xoshiro256(state: header.random)
  }
}
