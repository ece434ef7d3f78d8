import Foundation

/// A JSON value, as found in document metadata and filters.
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

  /// Parses JSON text (any value, not only objects).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and `line` when the text is
  ///   not valid JSON.
  public init(parsing text: some StringProtocol, source: String = "JSON", line: Int? = nil) throws {
    if let problem = JSONValue.scan(text) {
      throw VectorDBError.invalidInput(source: source, line: line, reason: problem)
    }
    do {
      self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    } catch {
      throw VectorDBError.invalidInput(source: source, line: line, reason: "invalid JSON")
    }
  }

  /// The deepest nesting of arrays and objects accepted in metadata and filters: deeper
  /// values are refused when parsed or stored (their encoding would otherwise fail, or
  /// exhaust the stack, later, on every query that returns them).
  public static let maxDepth = 64

  /// Arrays and objects nested in this value, counting itself (a scalar is 0).
  public var depth: Int {
    switch self {
    case .array(let array): return 1 + (array.map(\.depth).max() ?? 0)
    case .object(let object): return 1 + (object.values.map(\.depth).max() ?? 0)
    default: return 0
    }
  }

  /// What the decoder would accept wrongly or fail on obscurely, found by one pass over
  /// the bytes before decoding: nesting deeper than `maxDepth`, a key repeated in one
  /// object (the decoder would silently keep one), and integers beyond ±2^53 (a
  /// `Double` would silently round them). `nil` when there is none.
  static func scan(_ text: some StringProtocol) -> String? {
    var open: [OpenContainer] = []
    var string: [UInt8]?  // the string being read, if any
    var escaped = false
    var number: [UInt8]?  // the number being read, if any
    func numberProblem() -> String? {
      defer { number = nil }
      guard let number,
        !number.contains(where: { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") }),
        Int64(String(decoding: number, as: UTF8.self)).map({ $0.magnitude > 1 << 53 }) ?? true
      else { return nil }
      return
        "the integer \(String(decoding: number, as: UTF8.self)) is beyond ±2^53 and cannot be kept exactly; write it as a string"
    }
    for byte in text.utf8 {
      if string != nil {
        if escaped {
          escaped = false
        } else if byte == UInt8(ascii: "\\") {
          escaped = true
        } else if byte == UInt8(ascii: "\"") {
          if case .object(var keys, true) = open.last {
            guard keys.insert(string!).inserted else {
              return
                "the key \"\(String(decoding: string!, as: UTF8.self))\" appears twice in one object"
            }
            open[open.count - 1] = .object(keys: keys, expectingKey: false)
          }
          string = nil
          continue
        }
        string!.append(byte)
        continue
      }
      if number != nil {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"),
          UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
          number!.append(byte)
          continue
        default:
          if let problem = numberProblem() { return problem }
        }
      }
      switch byte {
      case UInt8(ascii: "\""): string = []
      case UInt8(ascii: "["), UInt8(ascii: "{"):
        open.append(byte == UInt8(ascii: "[") ? .array : .object(keys: [], expectingKey: true))
        if open.count > maxDepth { return "values nest deeper than \(maxDepth) levels" }
      case UInt8(ascii: "]"), UInt8(ascii: "}"): _ = open.popLast()
      case UInt8(ascii: ","):
        if case .object(let keys, _) = open.last {
          open[open.count - 1] = .object(keys: keys, expectingKey: true)
        }
      case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): number = [byte]
      default: break
      }
    }
    return numberProblem()
  }

  /// Compact JSON with sorted keys (stable across runs, so it can be hashed or compared).
  public var jsonString: String {
    String(decoding: (try? JSONEncoder.sorted.encode(self)) ?? Data("null".utf8), as: UTF8.self)
  }
}

extension JSONValue: Codable {
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
  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }
  public init(nilLiteral: ()) { self = .null }
}

extension JSONEncoder {
  /// Compact output with sorted keys.
  static var sorted: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }
}

/// An array or object open at a point of `JSONValue.scan`, with an object's keys so far.
private enum OpenContainer {
  case array
  case object(keys: Set<[UInt8]>, expectingKey: Bool)
}
