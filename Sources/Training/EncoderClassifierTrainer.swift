import Embedding
import Tensor

/// A softmax head trained together with low-rank adapters on the encoder under it: the
/// router's LoRA tier. The loss is the head's class-weighted cross-entropy on the sentence
/// embeddings of the encoder `base + s·B·A` (see ``LoRAAdapters``); its gradient flows
/// through the head into the embeddings (``SoftmaxClassifier/backward(inputs:labels:classWeights:)``),
/// through the encoder into the merged weights, and from them into `A` and `B`. Head and
/// adapters each have their own AdamW (the head moves at the head tier's rate, the adapters
/// at the retriever's LoRA rate), and the adapters' gradient is clipped as ``EncoderTrainer``
/// clips it.
///
/// Every epoch visits the examples in an order drawn from the seed, with dropout masks drawn
/// from it too, so the same seed gives the same weights.
///
/// ```swift
/// let trainer = try EncoderClassifierTrainer(
///   base: EncoderParameters(encoder), head: head, sequences: tokens, labels: labels,
///   options: .init(seed: 7))
/// for _ in 0..<3 { trainer.trainEpoch() }
/// let served = try SentenceEncoder(trained: trainer.mergedParameters, like: encoder)
/// ```
public final class EncoderClassifierTrainer {
  public struct Options: Sendable, Codable, Equatable {
    public var batchSize = 32
    /// AdamW's rate for the head.
    public var headLearningRate = 0.01
    /// AdamW's rate for the adapters (the retriever's LoRA tier default).
    public var learningRate = 1e-4
    public var weightDecay = 0.01
    public var maxGradientNorm = 1.0
    /// BERT's dropout, during training only.
    public var dropout = 0.1
    public var lora = LoRAConfiguration()
    /// Orders the examples and draws the adapters' start and the dropout masks.
    public var seed: UInt64 = 42
    /// How the encoder's linear layers multiply.
    public var matmulPrecision = MatmulPrecision.float32

    public init(seed: UInt64 = 42) { self.seed = seed }
  }

  public let options: Options
  public private(set) var head: SoftmaxClassifier<Float>
  public private(set) var adapters: LoRAAdapters<Float>
  /// Mean loss of every epoch run so far.
  public private(set) var losses: [Double] = []
  private let base: EncoderParameters<Float>
  private let encoder: TrainableEncoder<Float>
  private let sequences: [[Int32]]
  private let labels: [Int]
  private let classWeights: [Float]?
  private var headOptimizer: AdamW<Float>
  private var adapterOptimizer: AdamW<Float>
  private var random: Xoshiro256

  /// Prepares training from `head` on `base` with fresh adapters (`B = 0`: epoch 0 is the
  /// head on the base encoder).
  ///
  /// - Throws: ``TrainingError`` for no examples, a sequence that does not fit the model, a
  ///   label outside the head's classes, a head not over the encoder's embeddings, or an
  ///   invalid LoRA configuration.
  public init(
    base: EncoderParameters<Float>, head: SoftmaxClassifier<Float>, sequences: [[Int32]],
    labels: [Int], classWeights: [Float]? = nil, options: Options = Options()
  ) throws(TrainingError) {
    guard !sequences.isEmpty, sequences.count == labels.count else {
      throw .badInput("\(sequences.count) sequences for \(labels.count) labels (need one each)")
    }
    guard head.dimension == base.config.hiddenSize else {
      throw .badInput(
        "the head reads \(head.dimension) values, the encoder gives \(base.config.hiddenSize)")
    }
    if let bad = labels.firstIndex(where: { !(0..<head.classes).contains($0) }) {
      throw .badInput(
        "label \(labels[bad]) of example \(bad) is not one of \(head.classes) classes")
    }
    // TokenBatch checks every sequence against the model once, here.
    _ = try TokenBatch(
      sequences, vocabulary: base.config.vocabularySize, maximumLength: base.config.maxPositions)
    self.options = options
    self.base = base
    self.head = head
    self.sequences = sequences
    self.labels = labels
    self.classWeights = classWeights
    adapters = try LoRAAdapters(
      config: base.config, configuration: options.lora, seed: options.seed)
    encoder = TrainableEncoder(parameters: base, dropout: options.dropout)
    encoder.weightGradientsComputed = Set(adapters.entries.map(\.weight))
    encoder.matmulPrecision = options.matmulPrecision
    headOptimizer = AdamW(
      count: head.parameters.count, decays: options.weightDecay > 0,
      weightDecay: options.weightDecay)
    adapterOptimizer = AdamW(
      count: adapters.values.count, decays: options.weightDecay > 0,
      weightDecay: options.weightDecay)
    random = Xoshiro256(seed: options.seed ^ 0x00C1_A551_F1E5)
  }

  /// The base weights with the adapters merged: the encoder that serves the head.
  public var mergedParameters: EncoderParameters<Float> { encoder.parameters }

  /// One pass over the examples in shuffled mini-batches; returns its mean loss.
  @discardableResult
  public func trainEpoch() -> Double {
    var order = Array(sequences.indices)
    order.shuffle(using: &random)
    var total = 0.0
    for start in stride(from: 0, to: order.count, by: max(1, options.batchSize)) {
      let batch = Array(order[start..<min(start + max(1, options.batchSize), order.count)])
      let tokens = try! TokenBatch(
        batch.map { sequences[$0] }, vocabulary: base.config.vocabularySize,
        maximumLength: base.config.maxPositions)
      let seeds = batch.map { _ in random.next() }
      let step = Self.gradients(
        encoder: encoder, adapters: adapters, head: head, batch: tokens,
        labels: batch.map { labels[$0] }, classWeights: classWeights, dropoutSeeds: seeds)
      var adapterGradient = step.adapters
      GradientClipping.clip(&adapterGradient, maxNorm: options.maxGradientNorm)
      adapterOptimizer.step(
        parameters: &adapters.values, gradients: adapterGradient,
        learningRate: options.learningRate)
      headOptimizer.step(
        parameters: &head.parameters, gradients: step.head,
        learningRate: options.headLearningRate)
      encoder.parameters = adapters.merged(into: base)
      total += Double(step.loss) * Double(batch.count)
    }
    losses.append(total / Double(sequences.count))
    return losses.last!
  }

  /// The logits (`n×classes`) of `sequences` under the current encoder and head, without
  /// dropout.
  ///
  /// - Throws: ``TrainingError`` for a sequence that does not fit the model.
  public func logits(_ sequences: [[Int32]]) throws(TrainingError) -> [Float] {
    var result: [Float] = []
    for start in stride(from: 0, to: sequences.count, by: 64) {
      let tokens = try TokenBatch(
        Array(sequences[start..<min(start + 64, sequences.count)]),
        vocabulary: base.config.vocabularySize, maximumLength: base.config.maxPositions)
      result += head.logits(encoder.embed(tokens))
    }
    return result
  }

  /// The loss of `batch` against `labels` and its gradients with respect to the adapters'
  /// ``LoRAAdapters/values`` and the head's ``SoftmaxClassifier/parameters``. `encoder` must
  /// hold the base weights merged with `adapters`; its gradients are overwritten.
  static func gradients<Scalar: TensorScalar>(
    encoder: TrainableEncoder<Scalar>, adapters: LoRAAdapters<Scalar>,
    head: SoftmaxClassifier<Scalar>, batch: TokenBatch, labels: [Int], classWeights: [Scalar]?,
    dropoutSeeds: [UInt64]?
  ) -> (loss: Scalar, adapters: [Scalar], head: [Scalar]) {
    encoder.zeroGradients()
    let pass = encoder.forward(batch, dropoutSeeds: dropoutSeeds, keepActivations: true)
    let result = head.backward(
      inputs: pass.embeddings, labels: labels, classWeights: classWeights)
    encoder.backward(pass, embeddingGradient: result.inputGradient)
    let adapterGradient = adapters.gradients(
      weightGradients: encoder.gradients, layout: encoder.parameters.layout)
    return (result.loss, adapterGradient, result.gradient)
  }
}
