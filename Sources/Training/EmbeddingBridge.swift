import Embedding
import Tensor

extension EncoderParameters where Scalar == Float {
  /// The weights of an inference encoder, ready to train.
  ///
  /// ```swift
  /// let encoder = try SentenceEncoder(directory: modelDirectory)
  /// let weights = try EncoderParameters(encoder)
  /// let trainer = try EncoderTrainer(parameters: weights, examples: examples)
  /// ```
  ///
  /// - Throws: ``TrainingError`` when the encoder's weights do not fit its configuration.
  public init(_ encoder: SentenceEncoder) throws(TrainingError) {
    try self.init(
      config: encoder.config, pooling: encoder.pooling,
      tensors: encoder.weights.mapValues(\.values))
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

extension SentenceEncoder {
  /// The encoder that serves `parameters` as training computed them (same configuration,
  /// pooling and weights), with `base`'s tokenizer, sequence length, output scaling,
  /// prompts, similarity and precision (a fine-tune of a bfloat16 version computes in bfloat16 too).
  ///
  /// ```swift
  /// let candidate = try SentenceEncoder(trained: trainer.encoder.parameters, like: base)
  /// ```
  ///
  /// - Throws: ``EmbeddingError`` when the weights do not fit the configuration.
  public convenience init(trained parameters: EncoderParameters<Float>, like base: SentenceEncoder)
    throws
  {
    try self.init(
      config: parameters.config, tokenizer: base.tokenizer, weights: parameters.namedTensors(),
      maxSequenceLength: base.maxSequenceLength, pooling: parameters.pooling,
      normalizesOutput: base.normalizesOutput, prompts: base.prompts, similarity: base.similarity,
      precision: base.precision)
  }
}

extension TrainingExample {
  /// An example from texts, tokenised as the encoder sees them (`[CLS] … [SEP]`, cut to
  /// `maxLength` tokens; 128 is the length all-MiniLM-L6-v2 was trained at). Documents are
  /// identified by id for the no-duplicates sampler, the query by its text.
  ///
  /// ```swift
  /// let example = TrainingExample(
  ///   query: "what causes scurvy", positive: (id: "d17", text: "Scurvy is …"),
  ///   negatives: [(id: "d42", text: "Rickets is …")], tokenizer: encoder.tokenizer)
  /// ```
  public init(
    query: String, positive: (id: String, text: String),
    negatives: [(id: String, text: String)] = [], tokenizer: WordPieceTokenizer,
    maxLength: Int = 128
  ) {
    func tokens(_ text: String) -> [Int32] {
      tokenizer.encode(text, maxLength: maxLength).map(Int32.init)
    }
    self.init(
      query: tokens(query), positive: tokens(positive.text),
      negatives: negatives.map { tokens($0.text) },
      keys: ["query:" + query, "doc:" + positive.id] + negatives.map { "doc:" + $0.id })
  }
}
