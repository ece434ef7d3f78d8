import Foundation

/// A JSON value: document metadata, filters and request bodies are read into it, and
/// ``init(utf8:maxDepth:)`` is the one JSON grammar of the package.
///
/// Literals build it directly: `["year": 2024, "tags": ["a", "b"], "draft": false]`.
/// Numbers are `Double`s (as in JavaScript), exact for integers up to 2^53.
public enum JSONValue: Equatable, Hashable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  /// The deepest nesting of arrays and objects read by default, and accepted in metadata
  /// and filters: deeper values are refused when parsed or stored (their encoding would
  /// otherwise fail, or exhaust the stack, later, on every query that returns them).
  public static let maxDepth = 64

  /// Arrays and objects nested in this value, counting itself (a scalar is 0).
  public var depth: Int {
    switch self {
    case .array(let array): return 1 + (array.map(\.depth).max() ?? 0)
    case .object(let object): return 1 + (object.values.map(\.depth).max() ?? 0)
    default: return 0
    }
  }

  /// Compact JSON with sorted keys (stable across runs, so it can be hashed or compared).
  public var jsonString: String {
    String(decoding: (try? JSONEncoder.sorted.encode(self)) ?? Data("null".utf8), as: UTF8.self)
  }
}

extension JSONValue: Codable {
  /// Decodes any JSON value (numbers as `Double`).
  ///
  /// - Throws: `DecodingError.dataCorrupted` when the input is not JSON.
  public init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let bool = try? container.decode(Bool.self) {
      self = .bool(bool)
    } else if let number = try? container.decode(Double.self) {
      self = .number(number)
    } else if let string = try? container.decode(String.self) {
      self = .string(string)
    } else if let array = try? container.decode([JSONValue].self) {
      self = .array(array)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  /// Encodes the value as the JSON it stands for.
  ///
  /// - Throws: `EncodingError.invalidValue` for a NaN or infinite number.
  public func encode(to encoder: Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let bool): try container.encode(bool)
    case .number(let number):
      if number.rounded() == number && abs(number) < 1e15 {
        try container.encode(Int64(number))
      } else {
        try container.encode(number)
      }
    case .string(let string): try container.encode(string)
    case .array(let array): try container.encode(array)
    case .object(let object): try container.encode(object)
    }
  }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
  ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
  /// `.string(value)`.
  public init(stringLiteral value: String) { self = .string(value) }
  /// `.number(Double(value))`.
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
  /// `.number(value)`.
  public init(floatLiteral value: Double) { self = .number(value) }
  /// `.bool(value)`.
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  /// `.array(elements)`.
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  /// `.object` of the pairs; a repeated key keeps its last value.
  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }
  /// `.null`.
  public init(nilLiteral: ()) { self = .null }
}

extension JSONEncoder {
  /// Compact output with sorted keys.
  package static var sorted: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }
}
