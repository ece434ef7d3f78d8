import Foundation

/// The shape of a BERT-family encoder, decoded from a Hugging Face `config.json`.
///
/// ```swift
/// let config = try BertConfig(contentsOf: directory.appending(path: "config.json"))
/// config.hiddenSize   // 384 for all-MiniLM-L6-v2
/// config.headSize     // 32
/// ```
///
/// Only the fields inference needs are read; unknown fields are ignored. The
/// activation must be `"gelu"` (exact, erf-based), the one this encoder implements.
public struct BertConfig: Codable, Equatable, Sendable {
  /// Width of every token vector (`hidden_size`).
  public var hiddenSize: Int
  /// Number of transformer layers (`num_hidden_layers`).
  public var layerCount: Int
  /// Attention heads per layer (`num_attention_heads`); must divide `hiddenSize`.
  public var headCount: Int
  /// Width of the feed-forward layer (`intermediate_size`).
  public var intermediateSize: Int
  /// Rows of the word-embedding table (`vocab_size`).
  public var vocabularySize: Int
  /// Rows of the position-embedding table (`max_position_embeddings`).
  public var maxPositions: Int
  /// Rows of the token-type table (`type_vocab_size`).
  public var typeVocabularySize: Int
  /// The ε of every LayerNorm (`layer_norm_eps`).
  public var layerNormEpsilon: Float
  /// The feed-forward activation (`hidden_act`); only `"gelu"` is supported.
  public var hiddenActivation: String
  /// `position_embedding_type`; only `"absolute"` is supported.
  public var positionEmbeddingType: String

  enum CodingKeys: String, CodingKey {
    case hiddenSize = "hidden_size"
    case layerCount = "num_hidden_layers"
    case headCount = "num_attention_heads"
    case intermediateSize = "intermediate_size"
    case vocabularySize = "vocab_size"
    case maxPositions = "max_position_embeddings"
    case typeVocabularySize = "type_vocab_size"
    case layerNormEpsilon = "layer_norm_eps"
    case hiddenActivation = "hidden_act"
    case positionEmbeddingType = "position_embedding_type"
  }

  /// A configuration from its values; call ``validate(source:)`` before use.
  public init(
    hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int,
    vocabularySize: Int, maxPositions: Int = 512, typeVocabularySize: Int = 2,
    layerNormEpsilon: Float = 1e-12, hiddenActivation: String = "gelu",
    positionEmbeddingType: String = "absolute"
  ) {
    self.hiddenSize = hiddenSize
    self.layerCount = layerCount
    self.headCount = headCount
    self.intermediateSize = intermediateSize
    self.vocabularySize = vocabularySize
    self.maxPositions = maxPositions
    self.typeVocabularySize = typeVocabularySize
    self.layerNormEpsilon = layerNormEpsilon
    self.hiddenActivation = hiddenActivation
    self.positionEmbeddingType = positionEmbeddingType
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
    layerCount = try c.decode(Int.self, forKey: .layerCount)
    headCount = try c.decode(Int.self, forKey: .headCount)
    intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
    vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
    maxPositions = try c.decode(Int.self, forKey: .maxPositions)
    typeVocabularySize = try c.decodeIfPresent(Int.self, forKey: .typeVocabularySize) ?? 2
    layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-12
    hiddenActivation = try c.decodeIfPresent(String.self, forKey: .hiddenActivation) ?? "gelu"
    positionEmbeddingType =
      try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? "absolute"
  }

  /// Reads, decodes and validates a `config.json`.
  public init(contentsOf url: URL) throws {
    self = try decodeJSON(BertConfig.self, from: readFile(url), source: url.path)
    try validate(source: url.path)
  }

  /// The width of one attention head.
  public var headSize: Int { hiddenSize / headCount }

  /// Checks that the sizes describe a model this encoder can run.
  ///
  /// Throws ``EmbeddingError/unsupported(source:feature:)`` for an activation other than
  /// exact GELU or non-absolute positions, and
  /// ``EmbeddingError/invalidConfiguration(source:reason:)`` for impossible sizes.
  public func validate(source: String) throws {
    guard hiddenActivation == "gelu" else {
      throw EmbeddingError.unsupported(
        source: source,
        feature:
          "hidden_act '\(hiddenActivation)' (only \"gelu\", the exact erf form, is implemented)")
    }
    guard positionEmbeddingType == "absolute" else {
      throw EmbeddingError.unsupported(
        source: source, feature: "position_embedding_type '\(positionEmbeddingType)'")
    }
    let sizes: [(String, Int)] = [
      ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
      ("num_attention_heads", headCount), ("intermediate_size", intermediateSize),
      ("vocab_size", vocabularySize), ("max_position_embeddings", maxPositions),
      ("type_vocab_size", typeVocabularySize),
    ]
    for (name, value) in sizes where value < 1 {
      throw EmbeddingError.invalidConfiguration(source: source, reason: "\(name) is \(value)")
    }
    guard hiddenSize % headCount == 0 else {
      throw EmbeddingError.invalidConfiguration(
        source: source,
        reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(headCount)")
    }
    guard layerNormEpsilon > 0, layerNormEpsilon.isFinite else {
      throw EmbeddingError.invalidConfiguration(
        source: source, reason: "layer_norm_eps \(layerNormEpsilon) is not a positive number")
    }
  }
}

/// The contents of `url`, with a clear error when it is missing or unreadable.
func readFile(_ url: URL) throws -> Data {
  guard FileManager.default.fileExists(atPath: url.path) else {
    throw EmbeddingError.missingFile(path: url.path)
  }
  do {
    return try Data(contentsOf: url)
  } catch {
    throw EmbeddingError.unreadableFile(path: url.path, reason: error.localizedDescription)
  }
}

/// `data` decoded as `type`, or ``EmbeddingError/invalidConfiguration(source:reason:)``
/// naming the field and what is wrong with it.
func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data, source: String) throws -> T {
  do {
    return try JSONDecoder().decode(type, from: data)
  } catch let error as DecodingError {
    throw EmbeddingError.invalidConfiguration(
      source: source, reason: describe(error, decoding: type, from: data))
  }
}

/// A one-line account of a JSON decoding error: which field, what went wrong.
func describe<T: Decodable>(_ error: DecodingError, decoding type: T.Type, from data: Data)
  -> String
{
  func field(_ path: [CodingKey]) -> String {
    path.map(\.stringValue).joined(separator: ".")
  }
  switch error {
  case .keyNotFound(let key, let context):
    let parent = field(context.codingPath)
    return "missing field '\(parent.isEmpty ? "" : parent + ".")\(key.stringValue)'"
  case .typeMismatch(let type, let context):
    return "field '\(field(context.codingPath))' is not a \(type)"
  case .valueNotFound(let type, let context):
    return "field '\(field(context.codingPath))' is null, expected a \(type)"
  case .dataCorrupted(let context) where !context.codingPath.isEmpty:
    return "field '\(field(context.codingPath))': \(context.debugDescription)"
  case .dataCorrupted:
    return describeUnplacedError(decoding: type, from: data)
  @unknown default:
    return "malformed JSON"
  }
}

/// Foundation's decoder reports a number that does not fit its field (`1e30` or `3.5`
/// for an integer, `1e300` for a Float) as "not valid JSON", with no field. Valid JSON is
/// told apart from invalid here, and the field found by putting 0 in each number in turn
/// until the document decodes (or fails elsewhere).
private func describeUnplacedError<T: Decodable>(decoding type: T.Type, from data: Data)
  -> String
{
  let document: Any
  do {
    document = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
  } catch {
    let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
    return "not valid JSON" + (detail.map { " (\($0))" } ?? "")
  }
  func numbers(in value: Any, at path: [String]) -> [(path: [String], value: NSNumber)] {
    if let object = value as? [String: Any] {
      return object.keys.sorted().flatMap { numbers(in: object[$0]!, at: path + [$0]) }
    }
    if let array = value as? [Any] {
      return array.indices.flatMap { numbers(in: array[$0], at: path + ["\($0)"]) }
    }
    if let number = value as? NSNumber {
      return [(path, number)]
    }
    return []
  }
  func replacing(_ path: ArraySlice<String>, in value: Any) -> Any {
    guard let key = path.first else { return 0 }
    if var object = value as? [String: Any], let child = object[key] {
      object[key] = replacing(path.dropFirst(), in: child)
      return object
    }
    if var array = value as? [Any], let index = Int(key) {
      array[index] = replacing(path.dropFirst(), in: array[index])
      return array
    }
    return value
  }
  for (path, number) in numbers(in: document, at: []) {
    let repaired = replacing(path[...], in: document)
    guard
      let bytes = try? JSONSerialization.data(
        withJSONObject: repaired, options: [.fragmentsAllowed])
    else { continue }
    do {
      _ = try JSONDecoder().decode(type, from: bytes)
    } catch let error as DecodingError {
      // Still unplaced, or 0 does not suit this field (a boolean): not the culprit.
      let context: DecodingError.Context? =
        switch error {
        case .dataCorrupted(let context), .typeMismatch(_, let context),
          .valueNotFound(_, let context):
          context
        case .keyNotFound(_, let context): context
        @unknown default: nil
        }
      let at = context?.codingPath.map(\.stringValue) ?? []
      if at.isEmpty || at == path { continue }
    } catch {}
    return "field '\(path.joined(separator: "."))': \(number) is out of range or not a whole number"
  }
  return "a value does not fit its field"
}
