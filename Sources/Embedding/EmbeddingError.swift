/// Why a model, its files or an input could not be used.
///
/// Every case names the file (or in-memory source) and, where there is one, the tensor
/// or token involved, so the message alone tells a user what to fix:
///
/// ```
/// model.safetensors: tensor 'encoder.layer.0.attention.self.query.weight' has shape [384, 383], expected [384, 384]
/// ```
public enum EmbeddingError: Error, Equatable, Sendable, CustomStringConvertible {
  /// A file the model needs does not exist.
  case missingFile(path: String)
  /// A file exists but could not be read (permissions, I/O error, not UTF-8 text, ...).
  case unreadableFile(path: String, reason: String)
  /// A safetensors file or buffer is malformed: bad header, truncated data, overlapping
  /// or out-of-range offsets, a size that does not match its shape and dtype.
  case invalidSafeTensors(source: String, tensor: String?, reason: String)
  /// A configuration file is malformed or describes an impossible model.
  case invalidConfiguration(source: String, reason: String)
  /// The configuration asks for a feature this encoder does not implement.
  case unsupported(source: String, feature: String)
  /// A weight the architecture needs is absent.
  case missingTensor(source: String, tensor: String)
  /// A weight has the wrong shape for the configuration.
  case wrongShape(source: String, tensor: String, shape: [Int], expected: [Int])
  /// A weight holds NaN or an infinity (at flat position `index`): every vector it
  /// touched would be NaN.
  case nonFiniteWeight(source: String, tensor: String, index: Int)
  /// Every weight is finite, yet the model's vector of `text` is not: its products or
  /// LayerNorms overflow float32, so it would make NaN vectors of real texts too.
  case nonFiniteOutput(source: String, text: String)
  /// A weight is stored in a type this encoder cannot use (only F32 is supported).
  case unsupportedDType(source: String, tensor: String, dtype: String)
  /// A vocabulary is unusable (empty, duplicate tokens, a required special token missing).
  case invalidVocabulary(source: String, reason: String)
  /// Token ids passed to the encoder directly are out of range or too many.
  case invalidTokenIDs(sequence: Int, reason: String)
  /// A model image (the weights in the encoder's own layout, see ``ModelImage``) is
  /// unusable: truncated, damaged, of other weights, or laid out by another version.
  case invalidImage(path: String, reason: String)

  public var description: String {
    switch self {
    case .missingFile(let path):
      return "\(path): file not found"
    case .unreadableFile(let path, let reason):
      return "\(path): cannot read: \(reason)"
    case .invalidSafeTensors(let source, let tensor?, let reason):
      return "\(source): tensor '\(tensor)': \(reason)"
    case .invalidSafeTensors(let source, nil, let reason):
      return "\(source): invalid safetensors: \(reason)"
    case .invalidConfiguration(let source, let reason):
      return "\(source): \(reason)"
    case .unsupported(let source, let feature):
      return "\(source): unsupported: \(feature)"
    case .missingTensor(let source, let tensor):
      return "\(source): tensor '\(tensor)' is missing"
    case .wrongShape(let source, let tensor, let shape, let expected):
      return "\(source): tensor '\(tensor)' has shape \(shape), expected \(expected)"
    case .nonFiniteWeight(let source, let tensor, let index):
      return "\(source): tensor '\(tensor)' holds a NaN or infinite value (at index \(index))"
    case .nonFiniteOutput(let source, let text):
      return
        "\(source): the model's vector of the text \"\(text)\" holds NaN or infinite values (its arithmetic overflows float32)"
    case .unsupportedDType(let source, let tensor, let dtype):
      return
        "\(source): tensor '\(tensor)' has dtype \(dtype); weights are read from F32, F16 or BF16"
    case .invalidVocabulary(let source, let reason):
      return "\(source): invalid vocabulary: \(reason)"
    case .invalidTokenIDs(let sequence, let reason):
      return "token sequence \(sequence): \(reason)"
    case .invalidImage(let path, let reason):
      return "\(path): unusable model image: \(reason)"
    }
  }
}
