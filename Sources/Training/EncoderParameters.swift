import Embedding
import Foundation
import Tensor

/// Where each named tensor of a BERT encoder lives inside one flat buffer.
///
/// Names and layouts are those of a sentence-transformers `model.safetensors` (no `bert.`
/// prefix, linear weights stored `[out, in]`), so loading from safetensors is a name lookup.
/// One flat buffer makes the optimiser, gradient clipping and checkpoints single loops.
public struct ParameterLayout: Sendable, Equatable {
  /// One named tensor.
  public struct Entry: Sendable, Equatable {
    public let name: String
    /// Dimensions, outermost first (`[out, in]` for a linear weight).
    public let dimensions: [Int]
    /// Position of the first value in the flat buffer.
    public let offset: Int
    /// Whether AdamW applies weight decay to it: not to biases and LayerNorm parameters,
    /// as Hugging Face's trainer does.
    public let decays: Bool
    public var count: Int { dimensions.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
  }

  /// Offsets of one transformer layer's tensors.
  struct Layer: Sendable, Equatable {
    var query, queryBias, key, keyBias, value, valueBias: Int
    var attentionOutput, attentionOutputBias, attentionNormGain, attentionNormBias: Int
    var intermediate, intermediateBias, output, outputBias: Int
    var outputNormGain, outputNormBias: Int
  }

  /// The encoder's configuration (Embedding's: one config for inference and training).
  public let config: BertConfig
  /// All tensors in ``BertConfig/parameterShapes()`` order.
  public let entries: [Entry]
  /// Total number of scalars.
  public let count: Int
  let wordEmbeddings: Int, positionEmbeddings: Int, tokenTypeEmbeddings: Int
  let embeddingNormGain: Int, embeddingNormBias: Int
  let layers: [Layer]
  private let indexByName: [String: Int]

  /// The layout of `config`'s parameters, named and ordered as the inference model
  /// names them (``BertConfig/parameterShapes()``).
  public init(config: BertConfig) {
    self.config = config
    var offset = 0
    let entries = config.parameterShapes().map { name, dimensions in
      // No weight decay on biases and LayerNorm parameters, as Hugging Face's trainer.
      let decays = !(name.hasSuffix(".bias") || name.contains("LayerNorm"))
      let entry = Entry(name: name, dimensions: dimensions, offset: offset, decays: decays)
      offset += entry.count
      return entry
    }
    self.entries = entries
    count = offset
    let indexByName = Dictionary(
      uniqueKeysWithValues: entries.enumerated().map { ($0.element.name, $0.offset) })
    self.indexByName = indexByName
    func at(_ name: String) -> Int { entries[indexByName[name]!].offset }
    wordEmbeddings = at("embeddings.word_embeddings.weight")
    positionEmbeddings = at("embeddings.position_embeddings.weight")
    tokenTypeEmbeddings = at("embeddings.token_type_embeddings.weight")
    embeddingNormGain = at("embeddings.LayerNorm.weight")
    embeddingNormBias = at("embeddings.LayerNorm.bias")
    layers = (0..<config.layerCount).map { l in
      let p = "encoder.layer.\(l)."
      return Layer(
        query: at(p + "attention.self.query.weight"),
        queryBias: at(p + "attention.self.query.bias"),
        key: at(p + "attention.self.key.weight"), keyBias: at(p + "attention.self.key.bias"),
        value: at(p + "attention.self.value.weight"),
        valueBias: at(p + "attention.self.value.bias"),
        attentionOutput: at(p + "attention.output.dense.weight"),
        attentionOutputBias: at(p + "attention.output.dense.bias"),
        attentionNormGain: at(p + "attention.output.LayerNorm.weight"),
        attentionNormBias: at(p + "attention.output.LayerNorm.bias"),
        intermediate: at(p + "intermediate.dense.weight"),
        intermediateBias: at(p + "intermediate.dense.bias"),
        output: at(p + "output.dense.weight"), outputBias: at(p + "output.dense.bias"),
        outputNormGain: at(p + "output.LayerNorm.weight"),
        outputNormBias: at(p + "output.LayerNorm.bias"))
    }
  }

  /// The entry called `name`, or nil.
  public func entry(named name: String) -> Entry? {
    indexByName[name].map { entries[$0] }
  }

  /// Range of the word-embedding table in the flat buffer.
  var wordEmbeddingRange: Range<Int> { entries[0].range }
}

/// The encoder being trained: its configuration, its pooling and its weights in one flat
/// buffer laid out by ``ParameterLayout``. Training computes the function
/// ``SentenceEncoder`` serves with the same configuration and pooling.
///
/// ```swift
/// // From a safetensors file read as name → [Float] (extra tensors such as
/// // `embeddings.position_ids` or a pooler are ignored):
/// let weights = try EncoderParameters<Float>(config: config, tensors: tensorsByName)
/// let back: [String: [Float]] = weights.tensors()
/// ```
public struct EncoderParameters<Scalar: TensorScalar>: Sendable, Equatable {
  public let layout: ParameterLayout
  /// How token vectors become the sentence vector (mean or `[CLS]`), as at inference.
  public var pooling: SentenceEncoder.Pooling
  /// Every parameter, tensor after tensor in ``ParameterLayout/entries`` order.
  public var values: [Scalar]
  public var config: BertConfig { layout.config }

  /// Copies the named tensors into place. Every tensor of the layout must be present with
  /// exactly its number of values; names the layout does not know are ignored.
  ///
  /// - Throws: ``TrainingError/invalidShape(_:)`` for an impossible `config`,
  ///   ``TrainingError/badParameter(name:reason:)`` for a missing or mis-sized tensor.
  public init(
    config: BertConfig, pooling: SentenceEncoder.Pooling = .mean, tensors: [String: [Float]]
  ) throws(TrainingError) {
    try Self.validate(config)
    layout = ParameterLayout(config: config)
    self.pooling = pooling
    values = [Scalar](repeating: 0, count: layout.count)
    for entry in layout.entries {
      guard let tensor = tensors[entry.name] else {
        throw .badParameter(name: entry.name, reason: "missing")
      }
      guard tensor.count == entry.count else {
        throw .badParameter(
          name: entry.name,
          reason: "has \(tensor.count) values, expected \(entry.count) (\(entry.dimensions))")
      }
      for (j, v) in tensor.enumerated() { values[entry.offset + j] = Scalar(v) }
    }
  }

  /// Random weights for tests: normal(0, `standardDeviation`) matrices and embeddings,
  /// LayerNorm gains near 1 and small biases (all random, so no gradient is trivially zero).
  ///
  /// - Throws: ``TrainingError/invalidShape(_:)`` for an impossible `config`.
  public init(
    randomFor config: BertConfig, pooling: SentenceEncoder.Pooling = .mean, seed: UInt64,
    standardDeviation: Double = 0.2
  ) throws(TrainingError) {
    try Self.validate(config)
    layout = ParameterLayout(config: config)
    self.pooling = pooling
    var rng = Xoshiro256(seed: seed)
    func normal() -> Double {
      // Box–Muller; 1 − u keeps the logarithm finite.
      let u = 1 - Double(rng.nextUnitFloat())
      let v = Double(rng.nextUnitFloat())
      return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }
    values = [Scalar](repeating: 0, count: layout.count)
    for entry in layout.entries {
      let isGain = entry.name.hasSuffix("LayerNorm.weight")
      for j in entry.range {
        values[j] = Scalar(isGain ? 1 + 0.1 * normal() : standardDeviation * normal())
      }
    }
  }

  /// The same weights in another scalar type (e.g. `Double` for a gradient check).
  public init<Other: TensorScalar>(converting other: EncoderParameters<Other>) {
    layout = other.layout
    pooling = other.pooling
    values = other.values.map { Scalar($0) }
  }

  /// Checks `config` with the inference model's rules, as a training error.
  private static func validate(_ config: BertConfig) throws(TrainingError) {
    do {
      try config.validate(source: "the encoder configuration")
    } catch {
      throw .invalidShape("\(error)")
    }
  }

  /// The weights as name → values, in safetensors naming.
  public func tensors() -> [String: [Float]] {
    Dictionary(
      uniqueKeysWithValues: layout.entries.map { entry in
        (entry.name, values[entry.range].map { Float($0) })
      })
  }

  /// The values of one tensor.
  public subscript(name: String) -> ArraySlice<Scalar>? {
    layout.entry(named: name).map { values[$0.range] }
  }
}
