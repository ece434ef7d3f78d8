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

  /// Parses JSON text (any value, not only objects; RFC 8259).
  ///
  /// Stricter than a plain decoder where a plain decoder would lose data silently or fail
  /// obscurely later: nesting deeper than `maxDepth`, a key repeated in one object (one
  /// would be dropped), an integer beyond ±2^53 (a `Double` would round it) and a number
  /// beyond `Double`'s range are refused.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and `line`, with the byte
  ///   offset of a syntax error.
  public init(parsing text: some StringProtocol, source: String = "JSON", line: Int? = nil) throws {
    var text = String(text)
    let parsed = text.withUTF8 { bytes in
      var parser = JSONParser(bytes: bytes)
      return Result { try parser.document() }
    }
    switch parsed {
    case .success(let value): self = value
    case .failure(let error):
      throw VectorDBError.invalidInput(
        source: source, line: line, reason: (error as? JSONParser.Failure)?.reason ?? "invalid JSON"
      )
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
  static var sorted: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }
}

/// A recursive-descent JSON reader over UTF-8 bytes (already valid UTF-8: they come
/// from a `String`), one pass, no intermediate tree.
private struct JSONParser {
  struct Failure: Error {
    var reason: String
  }

  let bytes: UnsafeBufferPointer<UInt8>
  var index = 0
  var depth = 0

  init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

  /// One value and nothing after it but white space.
  mutating func document() throws -> JSONValue {
    let value = try self.value()
    skipWhiteSpace()
    if index < bytes.count { throw syntax("unexpected text after the value") }
    return value
  }

  private func syntax(_ what: String) -> Failure {
    Failure(reason: "invalid JSON at byte \(index): \(what)")
  }

  private mutating func skipWhiteSpace() {
    while index < bytes.count {
      switch bytes[index] {
      case 0x20, 0x09, 0x0A, 0x0D: index += 1
      default: return
      }
    }
  }

  private mutating func value() throws -> JSONValue {
    skipWhiteSpace()
    guard index < bytes.count else { throw syntax("a value is missing") }
    switch bytes[index] {
    case UInt8(ascii: "{"): return .object(try container { try $0.members() })
    case UInt8(ascii: "["): return .array(try container { try $0.elements() })
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
    default: throw syntax("unexpected character")
    }
  }

  /// Reads an array or object one level deeper, refusing more than `maxDepth` levels.
  private mutating func container<T>(_ body: (inout JSONParser) throws -> T) throws -> T {
    depth += 1
    guard depth <= JSONValue.maxDepth else {
      throw Failure(reason: "values nest deeper than \(JSONValue.maxDepth) levels")
    }
    index += 1  // the opening bracket
    let value = try body(&self)
    depth -= 1
    return value
  }

  private mutating func elements() throws -> [JSONValue] {
    var elements: [JSONValue] = []
    skipWhiteSpace()
    if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
      index += 1
      return elements
    }
    while true {
      elements.append(try value())
      skipWhiteSpace()
      guard index < bytes.count else { throw syntax("an array is not closed") }
      index += 1
      switch bytes[index - 1] {
      case UInt8(ascii: ","): continue
      case UInt8(ascii: "]"): return elements
      default:
        index -= 1
        throw syntax("expected , or ] in an array")
      }
    }
  }

  private mutating func members() throws -> [String: JSONValue] {
    var members: [String: JSONValue] = [:]
    skipWhiteSpace()
    if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
      index += 1
      return members
    }
    while true {
      skipWhiteSpace()
      guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
        throw syntax("expected a key in quotes")
      }
      let key = try string()
      skipWhiteSpace()
      guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
        throw syntax("expected : after a key")
      }
      index += 1
      guard members.updateValue(try value(), forKey: key) == nil else {
        throw Failure(reason: "the key \"\(key.excerpt())\" appears twice in one object")
      }
      skipWhiteSpace()
      guard index < bytes.count else { throw syntax("an object is not closed") }
      index += 1
      switch bytes[index - 1] {
      case UInt8(ascii: ","): continue
      case UInt8(ascii: "}"): return members
      default:
        index -= 1
        throw syntax("expected , or } in an object")
      }
    }
  }

  private mutating func literal(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
    let count = word.utf8CodeUnitCount
    guard index + count <= bytes.count,
      memcmp(bytes.baseAddress! + index, word.utf8Start, count) == 0
    else { throw syntax("unexpected character") }
    index += count
    return value
  }

  /// A string, its escapes decoded; `index` is at the opening quote.
  private mutating func string() throws -> String {
    index += 1
    let start = index
    // The common case: no escape, so the bytes between the quotes are the string.
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "\""):
        defer { index += 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
      case UInt8(ascii: "\\"):
        return try escapedString(from: start)
      case 0..<0x20: throw syntax("a control character in a string (escape it)")
      default: index += 1
      }
    }
    throw syntax("a string is not closed")
  }

  private mutating func escapedString(from start: Int) throws -> String {
    var utf8 = Array(bytes[start..<index])
    while index < bytes.count {
      let byte = bytes[index]
      index += 1
      switch byte {
      case UInt8(ascii: "\""): return String(decoding: utf8, as: UTF8.self)
      case 0..<0x20:
        index -= 1
        throw syntax("a control character in a string (escape it)")
      case UInt8(ascii: "\\"):
        guard index < bytes.count else { break }
        let escape = bytes[index]
        index += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
          var scalar = UInt32(try hex4())
          if (0xD800..<0xDC00).contains(scalar) {
            // A high surrogate must be followed by an escaped low one.
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
              bytes[index + 1] == UInt8(ascii: "u")
            else { throw syntax("a \\u escape of a lone surrogate") }
            index += 2
            let low = UInt32(try hex4())
            guard (0xDC00..<0xE000).contains(low) else {
              throw syntax("a \\u escape of a lone surrogate")
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          } else if (0xDC00..<0xE000).contains(scalar) {
            throw syntax("a \\u escape of a lone surrogate")
          }
          utf8.append(contentsOf: String(Unicode.Scalar(scalar)!).utf8)
        default:
          index -= 1
          throw syntax("an unknown escape \\\(Character(Unicode.Scalar(escape)))")
        }
      default: utf8.append(byte)
      }
    }
    throw syntax("a string is not closed")
  }

  private mutating func hex4() throws -> UInt16 {
    guard index + 4 <= bytes.count else { throw syntax("a \\u escape needs four hex digits") }
    var value: UInt16 = 0
    for _ in 0..<4 {
      let byte = bytes[index]
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: throw syntax("a \\u escape needs four hex digits")
      }
      value = value << 4 | UInt16(digit)
      index += 1
    }
    return value
  }

  /// A number by RFC 8259's grammar. Integers beyond ±2^53 and values beyond `Double`'s
  /// range are refused rather than rounded.
  private mutating func number() throws -> Double {
    let start = index
    var integer = true
    func digits() -> Int {
      let first = index
      while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
        index += 1
      }
      return index - first
    }
    if bytes[index] == UInt8(ascii: "-") { index += 1 }
    let leading = index
    guard digits() > 0 else { throw syntax("a number needs digits") }
    if bytes[leading] == UInt8(ascii: "0") && index - leading > 1 {
      index = leading + 1
      throw syntax("a number cannot start with 0")
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      integer = false
      index += 1
      guard digits() > 0 else { throw syntax("a number needs digits after the point") }
    }
    if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
      integer = false
      index += 1
      if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")
      {
        index += 1
      }
      guard digits() > 0 else { throw syntax("a number needs digits in its exponent") }
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    // Up to 15 digits an integer is below 2^53; longer ones are checked exactly.
    if integer && index - leading > 15 {
      guard let exact = Int64(text), exact.magnitude <= 1 << 53 else {
        throw Failure(
          reason:
            "the integer \(text) is beyond ±2^53 and cannot be kept exactly; write it as a string")
      }
      return Double(exact)
    }
    guard let value = Double(text), value.isFinite else {
      throw Failure(reason: "the number \(text.excerpt()) is beyond the range of a double")
    }
    // 1.5e-400 reads as 0: a value the writer did not mean.
    if value == 0,
      text.prefix(while: { $0 != "e" && $0 != "E" }).contains(where: { ("1"..."9").contains($0) })
    {
      throw Failure(
        reason: "the number \(text.excerpt()) is too small for a double (it would read as 0)")
    }
    return value
  }
}
