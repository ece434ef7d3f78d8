import Foundation

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
    var query = 0, queryBias = 0, key = 0, keyBias = 0, value = 0, valueBias = 0
    var attentionOutput = 0, attentionOutputBias = 0, attentionNormGain = 0, attentionNormBias = 0
    var intermediate = 0, intermediateBias = 0, output = 0, outputBias = 0
    var outputNormGain = 0, outputNormBias = 0
  }

  public let shape: EncoderShape
  /// All tensors in a fixed order.
  public let entries: [Entry]
  /// Total number of scalars.
  public let count: Int
  let wordEmbeddings: Int, positionEmbeddings: Int, tokenTypeEmbeddings: Int
  let embeddingNormGain: Int, embeddingNormBias: Int
  let layers: [Layer]
  private let indexByName: [String: Int]

  public init(shape: EncoderShape) {
    self.shape = shape
    var entries: [Entry] = []
    var offset = 0
    func add(_ name: String, _ dimensions: [Int], decays: Bool) -> Int {
      let entry = Entry(name: name, dimensions: dimensions, offset: offset, decays: decays)
      entries.append(entry)
      offset += entry.count
      return entry.offset
    }
    let h = shape.hidden
    let i = shape.intermediate
    wordEmbeddings = add("embeddings.word_embeddings.weight", [shape.vocabulary, h], decays: true)
    positionEmbeddings = add(
      "embeddings.position_embeddings.weight", [shape.positions, h], decays: true)
    tokenTypeEmbeddings = add(
      "embeddings.token_type_embeddings.weight", [shape.tokenTypes, h], decays: true)
    embeddingNormGain = add("embeddings.LayerNorm.weight", [h], decays: false)
    embeddingNormBias = add("embeddings.LayerNorm.bias", [h], decays: false)
    var layers: [Layer] = []
    for l in 0..<shape.layers {
      let p = "encoder.layer.\(l)."
      var layer = Layer()
      layer.query = add(p + "attention.self.query.weight", [h, h], decays: true)
      layer.queryBias = add(p + "attention.self.query.bias", [h], decays: false)
      layer.key = add(p + "attention.self.key.weight", [h, h], decays: true)
      layer.keyBias = add(p + "attention.self.key.bias", [h], decays: false)
      layer.value = add(p + "attention.self.value.weight", [h, h], decays: true)
      layer.valueBias = add(p + "attention.self.value.bias", [h], decays: false)
      layer.attentionOutput = add(p + "attention.output.dense.weight", [h, h], decays: true)
      layer.attentionOutputBias = add(p + "attention.output.dense.bias", [h], decays: false)
      layer.attentionNormGain = add(p + "attention.output.LayerNorm.weight", [h], decays: false)
      layer.attentionNormBias = add(p + "attention.output.LayerNorm.bias", [h], decays: false)
      layer.intermediate = add(p + "intermediate.dense.weight", [i, h], decays: true)
      layer.intermediateBias = add(p + "intermediate.dense.bias", [i], decays: false)
      layer.output = add(p + "output.dense.weight", [h, i], decays: true)
      layer.outputBias = add(p + "output.dense.bias", [h], decays: false)
      layer.outputNormGain = add(p + "output.LayerNorm.weight", [h], decays: false)
      layer.outputNormBias = add(p + "output.LayerNorm.bias", [h], decays: false)
      layers.append(layer)
    }
    self.layers = layers
    self.entries = entries
    self.count = offset
    self.indexByName = Dictionary(
      uniqueKeysWithValues: entries.enumerated().map { ($0.element.name, $0.offset) })
  }

  /// The entry called `name`, or nil.
  public func entry(named name: String) -> Entry? {
    indexByName[name].map { entries[$0] }
  }

  /// Range of the word-embedding table in the flat buffer.
  var wordEmbeddingRange: Range<Int> { entries[0].range }
}

/// The weights of a BERT encoder in one flat buffer laid out by ``ParameterLayout``.
///
/// ```swift
/// // From a safetensors file read as name → [Float] (extra tensors such as
/// // `embeddings.position_ids` or a pooler are ignored):
/// let weights = try EncoderParameters<Float>(shape: .miniLML6, tensors: tensorsByName)
/// let back: [String: [Float]] = weights.tensors()
/// ```
public struct EncoderParameters<Scalar: TrainingScalar>: Sendable, Equatable {
  public let layout: ParameterLayout
  /// Every parameter, tensor after tensor in ``ParameterLayout/entries`` order.
  public var values: [Scalar]
  public var shape: EncoderShape { layout.shape }

  /// Copies the named tensors into place. Every tensor of the layout must be present with
  /// exactly its number of values; names the layout does not know are ignored.
  public init(shape: EncoderShape, tensors: [String: [Float]]) throws(TrainingError) {
    try shape.validate()
    layout = ParameterLayout(shape: shape)
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
  public init(randomFor shape: EncoderShape, seed: UInt64, standardDeviation: Double = 0.2)
    throws(TrainingError)
  {
    try shape.validate()
    layout = ParameterLayout(shape: shape)
    var rng = TrainingRandom(seed: seed)
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
  public init<Other: TrainingScalar>(converting other: EncoderParameters<Other>) {
    layout = other.layout
    values = other.values.map { Scalar($0) }
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
