/// The dimensions of a BERT encoder, as a sentence-transformers `config.json` gives them.
///
/// ```swift
/// let shape = EncoderShape.miniLML6   // all-MiniLM-L6-v2
/// let tiny = EncoderShape(layers: 2, hidden: 32, heads: 4, intermediate: 64, vocabulary: 100)
/// ```
public struct EncoderShape: Sendable, Codable, Equatable, Hashable {
  /// Transformer layers (`num_hidden_layers`).
  public var layers: Int
  /// Width of every token vector (`hidden_size`).
  public var hidden: Int
  /// Attention heads per layer (`num_attention_heads`); `hidden` must be a multiple of it.
  public var heads: Int
  /// Width of the feed-forward layer (`intermediate_size`).
  public var intermediate: Int
  /// Word-piece vocabulary size (`vocab_size`).
  public var vocabulary: Int
  /// Longest sequence the position table covers (`max_position_embeddings`).
  public var positions: Int
  /// Token-type (segment) vocabulary size (`type_vocab_size`).
  public var tokenTypes: Int
  /// LayerNorm epsilon (`layer_norm_eps`).
  public var layerNormEpsilon: Double

  public init(
    layers: Int, hidden: Int, heads: Int, intermediate: Int, vocabulary: Int,
    positions: Int = 512, tokenTypes: Int = 2, layerNormEpsilon: Double = 1e-12
  ) {
    self.layers = layers
    self.hidden = hidden
    self.heads = heads
    self.intermediate = intermediate
    self.vocabulary = vocabulary
    self.positions = positions
    self.tokenTypes = tokenTypes
    self.layerNormEpsilon = layerNormEpsilon
  }

  /// sentence-transformers/all-MiniLM-L6-v2.
  public static let miniLML6 = EncoderShape(
    layers: 6, hidden: 384, heads: 12, intermediate: 1536, vocabulary: 30522)

  /// Width of one attention head.
  public var headSize: Int { hidden / heads }

  /// Checks that the dimensions describe a buildable encoder.
  public func validate() throws(TrainingError) {
    for (name, value) in [
      ("layers", layers), ("hidden", hidden), ("heads", heads), ("intermediate", intermediate),
      ("vocabulary", vocabulary), ("positions", positions), ("tokenTypes", tokenTypes),
    ] where value < 1 {
      throw .invalidShape("\(name) must be at least 1, got \(value)")
    }
    if hidden % heads != 0 {
      throw .invalidShape("hidden (\(hidden)) is not a multiple of heads (\(heads))")
    }
    if !(layerNormEpsilon > 0) {
      throw .invalidShape("layerNormEpsilon must be positive, got \(layerNormEpsilon)")
    }
  }
}
