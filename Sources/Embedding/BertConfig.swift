import Foundation
import JSON

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
  ///
  /// Throws as ``validate(source:)``, and ``EmbeddingError/unsupported(source:feature:)``
  /// for a `model_type` other than `"bert"`: RoBERTa's family, say, keeps BERT's tensor
  /// names but offsets its positions, and would run wrongly rather than fail.
  public init(contentsOf url: URL) throws {
    let data = try readFile(url)
    self = try decodeJSON(BertConfig.self, from: data, source: url.path)
    if let kind = try decodeJSON(ModelKind.self, from: data, source: url.path).modelType,
      kind != "bert"
    {
      throw EmbeddingError.unsupported(
        source: url.path, feature: "model_type '\(kind)' (vdb runs BERT encoders)")
    }
    try validate(source: url.path)
  }

  /// `model_type` of a `config.json` (absent in some early BERT ones).
  private struct ModelKind: Decodable {
    var modelType: String?
    enum CodingKeys: String, CodingKey { case modelType = "model_type" }
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

/// The contents of `url`, with a clear error when it is missing, a directory or
/// unreadable (the system's reason, not Foundation's "NSCocoaErrorDomain error 256").
func readFile(_ url: URL) throws -> Data {
  var isDirectory: ObjCBool = false
  guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
    throw EmbeddingError.missingFile(path: url.path)
  }
  guard !isDirectory.boolValue else {
    throw EmbeddingError.unreadableFile(path: url.path, reason: "it is a directory, not a file")
  }
  do {
    return try Data(contentsOf: url)
  } catch {
    let cause = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
    let reason =
      cause?.domain == NSPOSIXErrorDomain
      ? String(cString: strerror(Int32(cause!.code))) : "the file could not be read"
    throw EmbeddingError.unreadableFile(path: url.path, reason: reason)
  }
}

/// `data` decoded as `type`, or ``EmbeddingError/invalidConfiguration(source:reason:)``
/// naming the field and what is wrong with it in JSON's words (``JSONProblem``).
func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data, source: String) throws -> T {
  do {
    return try JSONDecoder().decode(type, from: data)
  } catch let error as DecodingError {
    throw EmbeddingError.invalidConfiguration(
      source: source, reason: JSONProblem(error, decoding: type, from: data).message)
  }
}

/// What is wrong with a JSON document that did not decode, in the words of JSON: which
/// field, and which JSON type it must be. Foundation's own texts name Swift types
/// ("Expected to decode Int but found a string instead", "Dictionary<String, Any>") or
/// give no place ("The given data was not valid JSON").
///
/// ```swift
/// JSONProblem(error, decoding: BertConfig.self, from: data).message
/// // field 'hidden_size' must be an integer
/// ```
struct JSONProblem: Equatable {
  /// The field: keys and array indices from the top; empty for the whole document.
  var path: [String]
  var kind: Kind

  enum Kind: Equatable {
    /// The field is absent.
    case missing
    /// The field holds another JSON type than `expected` ("an integer", "an object").
    case wrongType(expected: String)
    /// The field is null where a value of `expected` type is needed.
    case null(expected: String)
    /// The number `value` does not fit the field (`1e30` or `3.5` for an integer).
    case unfit(value: String)
    /// The text is not JSON: `detail` says where and why, when it can be placed.
    case invalid(detail: String?)
    /// A value does not fit its field, and which one could not be found.
    case unplaced
  }

  /// The problem of `error`, thrown when decoding `type` from `data`.
  init<T: Decodable>(_ error: DecodingError, decoding type: T.Type, from data: Data) {
    let keys = jsonPath
    switch error {
    case .keyNotFound(let key, let context):
      self.init(path: keys(context.codingPath) + [key.stringValue], kind: .missing)
    case .typeMismatch(let type, let context):
      self.init(path: keys(context.codingPath), kind: .wrongType(expected: jsonType(type)))
    case .valueNotFound(let type, let context):
      self.init(path: keys(context.codingPath), kind: .null(expected: jsonType(type)))
    case .dataCorrupted(let context) where !context.codingPath.isEmpty:
      // Thrown by a type's own decoder for a value it refuses; its text is ours.
      self.init(path: keys(context.codingPath), kind: .invalid(detail: context.debugDescription))
    case .dataCorrupted:
      self = Self.unplaced(decoding: type, from: data)
    @unknown default:
      self.init(path: [], kind: .invalid(detail: nil))
    }
  }

  init(path: [String], kind: Kind) {
    self.path = path
    self.kind = kind
  }

  /// One line for a configuration file: `field 'a.b' must be an integer`,
  /// `not valid JSON at line 3, column 7: …`.
  var message: String {
    let field = path.joined(separator: ".")
    switch kind {
    case .missing: return "missing field '\(field)'"
    case .wrongType(let expected) where path.isEmpty:
      return "the top-level value must be \(expected)"
    case .wrongType(let expected): return "field '\(field)' must be \(expected)"
    case .null(let expected): return "field '\(field)' is null; it must be \(expected)"
    case .unfit(let value):
      return "field '\(field)': \(value) is out of range or not a whole number"
    case .invalid(let detail) where path.isEmpty:
      return "not valid JSON" + (detail.map { " at \($0)" } ?? "")
    case .invalid(let detail): return "field '\(field)': \(detail ?? "invalid value")"
    case .unplaced: return "a value does not fit its field"
    }
  }

  /// Foundation's decoder reports a number that does not fit its field (`1e30` or `3.5`
  /// for an integer, `1e300` for a Float) as "not valid JSON", with no field. Valid JSON
  /// is told apart from invalid here, and the field found by putting 0 in each number in
  /// turn until the document decodes (or fails elsewhere).
  private static func unplaced<T: Decodable>(decoding type: T.Type, from data: Data) -> Self {
    let document: Any
    do {
      document = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    } catch {
      // Foundation's text gives no place, or "around character N": say where ourselves.
      // 512 levels: as deep as Foundation's own parser reads.
      var place: JSONParseError?
      do { _ = try JSONValue(utf8: data, maxDepth: 512) } catch { place = error }
      return Self(path: [], kind: .invalid(detail: place?.description))
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
        let at = context.map { jsonPath($0.codingPath) } ?? []
        if at.isEmpty || at == path { continue }
      } catch {}
      return Self(path: path, kind: .unfit(value: "\(number)"))
    }
    return Self(path: [], kind: .unplaced)
  }
}

/// A coding path as the keys and array indices of a JSON document: an index by its
/// number ("shape.0"), not as "Index 0".
private func jsonPath(_ codingPath: [CodingKey]) -> [String] {
  codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
}

/// Marks the Swift types a decoder asks for when it wants a JSON object or array.
private protocol JSONObjectType {}
private protocol JSONArrayType {}
extension Dictionary: JSONObjectType {}
extension Array: JSONArrayType {}

/// The JSON type a decoder wanted when it asked for Swift type `type`, as a JSON
/// document's author knows it: "an integer", not "Int"; "an object", not
/// "Dictionary<String, Any>".
func jsonType(_ type: Any.Type) -> String {
  switch type {
  case is any FixedWidthInteger.Type: return "an integer"
  case is any BinaryFloatingPoint.Type, is Decimal.Type: return "a number"
  case is String.Type, is Character.Type: return "a string"
  case is Bool.Type: return "true or false"
  case is JSONObjectType.Type: return "an object"
  case is JSONArrayType.Type: return "an array"
  default: return "another type"
  }
}
