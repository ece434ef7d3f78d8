import Embedding
import Tensor

extension EncoderShape {
  /// The shape of the encoder a sentence-transformers `config.json` describes.
  public init(_ config: BertConfig) {
    self.init(
      layers: config.layerCount, hidden: config.hiddenSize, heads: config.headCount,
      intermediate: config.intermediateSize, vocabulary: config.vocabularySize,
      positions: config.maxPositions, tokenTypes: config.typeVocabularySize,
      layerNormEpsilon: Double(config.layerNormEpsilon))
  }
}

extension EncoderParameters where Scalar == Float {
  /// The weights of an inference encoder, ready to train.
  ///
  /// ```swift
  /// let encoder = try SentenceEncoder(directory: modelDirectory)
  /// let weights = try EncoderParameters(encoder)
  /// let trainer = try EncoderTrainer(parameters: weights, examples: examples)
  /// ```
  public init(_ encoder: SentenceEncoder) throws(TrainingError) {
    try self.init(
      shape: EncoderShape(encoder.config), tensors: encoder.weights.mapValues(\.values))
  }

  /// The weights as `Tensor`s with their safetensors shapes, for
  /// `SentenceEncoder(config:tokenizer:weights:)` and for saving.
  public func namedTensors() -> [String: Tensor] {
    Dictionary(
      uniqueKeysWithValues: layout.entries.map { entry in
        (entry.name, Tensor(shape: entry.dimensions, values: Array(values[entry.range])))
      })
  }
}
