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
