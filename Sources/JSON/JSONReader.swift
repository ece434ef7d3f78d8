import Foundation

/// Where and why a text is not JSON, or holds a value a `Double` cannot keep.
///
/// ```swift
/// do { _ = try JSONValue(utf8: Array("{\"a\": [1 2]}".utf8)) } catch {
///   print(error)  // line 1, column 10: unexpected '2' where ',' or ']' should be
/// }
/// ```
public struct JSONParseError: Error, Equatable, CustomStringConvertible {
  /// The byte the problem starts at, from 0.
  public var offset: Int
  /// The same place as a line (from 1) and a column in bytes from the line's start (from 1).
  public var line: Int
  public var column: Int
  /// What is wrong, in JSON's words.
  public var problem: String

  public var description: String { "line \(line), column \(column): \(problem)" }
}

extension JSONValue {
  /// Reads one JSON value (RFC 8259) from UTF-8 bytes: white space around it is allowed,
  /// anything else after it is not.
  ///
  /// Stricter than a plain decoder where a plain decoder would lose data silently or fail
  /// obscurely later: nesting deeper than `maxDepth`, a key repeated in one object (one
  /// would be dropped), bytes that are not UTF-8 in a string, an integer beyond ±2^53 (a
  /// `Double` would round it), a number beyond `Double`'s range and one so small it would
  /// read as 0 are refused.
  ///
  /// - Throws: `JSONParseError` at the first place the text breaks the grammar or holds
  ///   such a value.
  public init(utf8 bytes: some Collection<UInt8>, maxDepth: Int = JSONValue.maxDepth)
    throws(JSONParseError)
  {
    self = try JSONReader.read(utf8: bytes, maxDepth: maxDepth) { (reader) throws(JSONParseError) in
      try reader.value()
    }
  }
}

/// A recursive-descent JSON reader over UTF-8 bytes, one pass, no intermediate tree.
/// Each failure is thrown at the byte it is found at (a string's problems at its opening
/// quote), with the problem in words a JSON author knows.
///
/// Within the package it also reads a text piece by piece, for a caller that knows the
/// shape it expects and wants part of it in another form than `JSONValue` — the server
/// reads an upsert's vectors straight into `Float`s (4 bytes a number, not a 24-byte
/// `JSONValue`):
///
/// ```swift
/// var vectors: [[Float]] = []
/// try JSONReader.read(utf8: body) { (reader) throws(JSONParseError) in
///   _ = try reader.elements { (reader) throws(JSONParseError) in
///     if let vector = try reader.floats() { vectors.append(vector) } else { _ = try reader.value() }
///   }
/// }
/// ```
package struct JSONReader {
  let bytes: UnsafeBufferPointer<UInt8>
  let maxDepth: Int
  var index = 0
  var depth = 0

  private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
    self.bytes = bytes
    self.maxDepth = maxDepth
  }

  /// Reads one JSON value from UTF-8 bytes with `body`, which must read exactly one value
  /// (with `value`, `members`, `elements` or `floats`); white space may follow it, nothing
  /// else. The checks are those of `JSONValue(utf8:maxDepth:)`.
  ///
  /// - Throws: `JSONParseError` at the first place the text breaks the grammar or holds
  ///   a value a `Double` cannot keep.
  package static func read<Result>(
    utf8 bytes: some Collection<UInt8>, maxDepth: Int = JSONValue.maxDepth,
    _ body: (inout JSONReader) throws(JSONParseError) -> Result
  ) throws(JSONParseError) -> Result {
    func read(_ bytes: UnsafeBufferPointer<UInt8>) -> Swift.Result<Result, JSONParseError> {
      var reader = JSONReader(bytes: bytes, maxDepth: maxDepth)
      return Swift.Result { () throws(JSONParseError) in
        let result = try body(&reader)
        reader.skipWhiteSpace()
        if reader.index < bytes.count {
          throw reader.failure("unexpected \(reader.shown()) after the end of the value")
        }
        return result
      }
    }
    return try
      (bytes.withContiguousStorageIfAvailable(read)
      ?? Array(bytes).withUnsafeBufferPointer(read)).get()
  }

  /// When the next value is an object, calls `member` with each key in turn (each call
  /// must read the member's value) and returns true; otherwise reads nothing and returns
  /// false. A key repeated in the object is refused, as by `value()`.
  package mutating func members(
    _ member: (inout JSONReader, String) throws(JSONParseError) -> Void
  ) throws(JSONParseError) -> Bool {
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return false }
    if try enter(closedBy: UInt8(ascii: "}")) { return true }
    var keys: Set<String> = []
    repeat {
      let (key, keyStart) = try memberKey()
      // After the value, as `value()` finds it: a problem in the value comes first.
      try member(&self, key)
      guard keys.insert(key).inserted else { throw repeated(key, at: keyStart) }
    } while try separator(close: UInt8(ascii: "}"))
    return true
  }

  /// When the next value is an array, calls `element` for each element in turn (each
  /// call must read one value) and returns true; otherwise reads nothing and returns false.
  package mutating func elements(_ element: (inout JSONReader) throws(JSONParseError) -> Void)
    throws(JSONParseError) -> Bool
  {
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return false }
    if try enter(closedBy: UInt8(ascii: "]")) { return true }
    repeat {
      try element(&self)
    } while try separator(close: UInt8(ascii: "]"))
    return true
  }

  /// When the next value is an array of numbers only, reads it as `Float`s (each number
  /// read as a `Double` first, with its checks, then rounded); otherwise reads nothing and
  /// returns nil.
  package mutating func floats() throws(JSONParseError) -> [Float]? {
    let (start, startDepth) = (index, depth)
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
    var floats: [Float] = []
    if try enter(closedBy: UInt8(ascii: "]")) { return floats }
    repeat {
      skipWhiteSpace()
      guard index < bytes.count,
        bytes[index] == UInt8(ascii: "-")
          || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
      else {
        (index, depth) = (start, startDepth)
        return nil
      }
      floats.append(Float(try number()))
    } while try separator(close: UInt8(ascii: "]"))
    return floats
  }

  /// `problem` at byte `offset` (by default the current one), placed by line and column.
  private func failure(_ problem: String, at offset: Int? = nil) -> JSONParseError {
    let offset = offset ?? index
    let before = UnsafeBufferPointer(rebasing: bytes[..<min(offset, bytes.count)])
    let lineStart = (before.lastIndex(of: 0x0A) ?? -1) + 1
    return JSONParseError(
      offset: offset, line: before.count(where: { $0 == 0x0A }) + 1,
      column: offset - lineStart + 1, problem: problem)
  }

  /// The byte at `index` as a reader sees it: `'x'`, `byte 0x1f`, or the end of the text.
  private func shown() -> String {
    guard index < bytes.count else { return "end of text" }
    let byte = bytes[index]
    return (0x21...0x7E).contains(byte)
      ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
  }

  private mutating func skipWhiteSpace() {
    while index < bytes.count {
      switch bytes[index] {
      case 0x20, 0x09, 0x0A, 0x0D: index += 1
      default: return
      }
    }
  }

  /// The next value, whole.
  package mutating func value() throws(JSONParseError) -> JSONValue {
    skipWhiteSpace()
    guard index < bytes.count else { throw failure("unexpected end of text") }
    switch bytes[index] {
    case UInt8(ascii: "{"):
      return .object(try object())
    case UInt8(ascii: "["):
      return .array(try array())
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
    default: throw failure("unexpected \(shown()) where a value should be")
    }
  }

  /// Steps into the array or object whose opening bracket is at `index`, one level deeper
  /// (refusing more than `maxDepth` levels); true when `close` follows at once (`[]`,
  /// `{}`): then it is stepped out of too.
  private mutating func enter(closedBy close: UInt8) throws(JSONParseError) -> Bool {
    guard depth < maxDepth else {
      throw failure("containers nest deeper than \(maxDepth) levels")
    }
    index += 1
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == close else {
      depth += 1
      return false
    }
    index += 1
    return true
  }

  /// After an element or member: true at a comma, false at the container's `close` (then
  /// stepped out of).
  private mutating func separator(close: UInt8) throws(JSONParseError) -> Bool {
    skipWhiteSpace()
    guard index < bytes.count else { throw failure("unexpected end of text") }
    switch bytes[index] {
    case UInt8(ascii: ","):
      index += 1
      return true
    case close:
      index += 1
      depth -= 1
      return false
    default:
      throw failure(
        "unexpected \(shown()) where ',' or '\(Character(Unicode.Scalar(close)))' should be")
    }
  }

  private mutating func array() throws(JSONParseError) -> [JSONValue] {
    var elements: [JSONValue] = []
    if try enter(closedBy: UInt8(ascii: "]")) { return elements }
    repeat {
      elements.append(try value())
    } while try separator(close: UInt8(ascii: "]"))
    return elements
  }

  private mutating func object() throws(JSONParseError) -> [String: JSONValue] {
    var members: [String: JSONValue] = [:]
    if try enter(closedBy: UInt8(ascii: "}")) { return members }
    repeat {
      let (key, keyStart) = try memberKey()
      guard members.updateValue(try value(), forKey: key) == nil else {
        throw repeated(key, at: keyStart)
      }
    } while try separator(close: UInt8(ascii: "}"))
    return members
  }

  /// A member's key and the `:` after it; returns the key and where it starts.
  private mutating func memberKey() throws(JSONParseError) -> (key: String, start: Int) {
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
      throw failure("unexpected \(shown()) where a key (a string) should be")
    }
    let start = index
    let key = try string()
    skipWhiteSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
      throw failure("unexpected \(shown()) where ':' should be")
    }
    index += 1
    return (key, start)
  }

  private func repeated(_ key: String, at start: Int) -> JSONParseError {
    failure("the key \"\(key.excerpt())\" appears twice in one object", at: start)
  }

  private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(JSONParseError)
    -> JSONValue
  {
    let count = word.utf8CodeUnitCount
    guard index + count <= bytes.count,
      memcmp(bytes.baseAddress! + index, word.utf8Start, count) == 0
    else { throw failure("unexpected \(shown()) where a value should be") }
    index += count
    return value
  }

  /// A string, its escapes decoded; `index` is at the opening quote.
  private mutating func string() throws(JSONParseError) -> String {
    let quote = index
    index += 1
    // The common case: no escape, so the bytes between the quotes are the string.
    while index < bytes.count {
      switch bytes[index] {
      case UInt8(ascii: "\""):
        defer { index += 1 }
        return try utf8(UnsafeBufferPointer(rebasing: bytes[(quote + 1)..<index]), quote: quote)
      case UInt8(ascii: "\\"):
        return try escapedString(quote: quote)
      case 0..<0x20: throw failure("a control character in a string (escape it)")
      default: index += 1
      }
    }
    throw failure("a string is not closed", at: quote)
  }

  /// `content` as text, checked rather than repaired: a reader would otherwise store
  /// U+FFFD where the writer had other bytes. Decoding is the fast path and repairs; the
  /// bytes were UTF-8 exactly when the text reads back as the same bytes.
  private func utf8(_ content: UnsafeBufferPointer<UInt8>, quote: Int) throws(JSONParseError)
    -> String
  {
    var text = String(decoding: content, as: UTF8.self)
    let repaired = text.withUTF8 {
      $0.count != content.count
        || ($0.count > 0 && memcmp($0.baseAddress!, content.baseAddress!, $0.count) != 0)
    }
    if repaired { throw failure("a string that is not UTF-8 text", at: quote) }
    return text
  }

  private mutating func escapedString(quote: Int) throws(JSONParseError) -> String {
    var utf8: [UInt8] = Array(bytes[(quote + 1)..<index])
    while index < bytes.count {
      let byte = bytes[index]
      switch byte {
      case UInt8(ascii: "\""):
        index += 1
        return try utf8.withUnsafeBufferPointer { (utf8) throws(JSONParseError) in
          try self.utf8(utf8, quote: quote)
        }
      case 0..<0x20:
        throw failure("a control character in a string (escape it)")
      case UInt8(ascii: "\\"):
        guard index + 1 < bytes.count else { break }
        let escape = bytes[index + 1]
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
          utf8.append(contentsOf: String(try escapedScalar()).utf8)
          continue
        default:
          throw failure("an unknown escape \\\(Character(Unicode.Scalar(escape)))")
        }
        index += 2
        continue
      default: utf8.append(byte)
      }
      index += 1
    }
    throw failure("a string is not closed", at: quote)
  }

  /// The scalar of a `\u` escape at `index` (a surrogate pair takes two), past it.
  private mutating func escapedScalar() throws(JSONParseError) -> Unicode.Scalar {
    let start = index
    let high = try hex4()
    if (0xDC00..<0xE000).contains(high) {
      throw failure("a \\u escape of a lone surrogate", at: start)
    }
    guard (0xD800..<0xDC00).contains(high) else { return Unicode.Scalar(high)! }
    // A high surrogate must be followed by an escaped low one.
    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
      bytes[index + 1] == UInt8(ascii: "u"), case let low = try hex4(),
      (0xDC00..<0xE000).contains(low)
    else { throw failure("a \\u escape of a lone surrogate", at: start) }
    return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
  }

  /// The four hex digits after the `\u` at `index`, past them.
  private mutating func hex4() throws(JSONParseError) -> UInt32 {
    guard index + 6 <= bytes.count else { throw failure("\\u is not followed by 4 hex digits") }
    var value: UInt32 = 0
    for byte in bytes[(index + 2)..<(index + 6)] {
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: throw failure("\\u is not followed by 4 hex digits")
      }
      value = value << 4 | UInt32(digit)
    }
    index += 6
    return value
  }

  /// A number by RFC 8259's grammar. Integers beyond ±2^53 and values beyond `Double`'s
  /// range are refused rather than rounded.
  ///
  /// Most numbers take Clinger's fast path: when the digits before the exponent make an
  /// integer m ≤ 2^53 and the number is m · 10^k with |k| ≤ 22, both m and 10^|k| are
  /// exact doubles, so one multiplication or division rounds correctly — the value
  /// `Double(String)` gives, without making the string. The rest go through it.
  private mutating func number() throws(JSONParseError) -> Double {
    let start = index
    var integer = true
    /// Reads digits into `value` while it stays below 2^53 (past that, `exact` turns
    /// false and the rest are only skipped); returns how many there were.
    func digits(into value: inout UInt64, exact: inout Bool) -> Int {
      let first = index
      while index < bytes.count, case let digit = bytes[index] &- UInt8(ascii: "0"), digit < 10 {
        if exact && value < (1 << 53) / 10 {
          value = value * 10 + UInt64(digit)
        } else {
          exact = false
        }
        index += 1
      }
      return index - first
    }
    // The significand's digits (before the exponent) as an integer, while it is exact.
    var significand: UInt64 = 0
    var exact = true
    let negative = bytes[index] == UInt8(ascii: "-")
    if negative { index += 1 }
    let leading = index
    guard digits(into: &significand, exact: &exact) > 0 else {
      throw failure("a '-' without digits", at: start)
    }
    if bytes[leading] == UInt8(ascii: "0") && index - leading > 1 {
      throw failure("a number cannot start with 0", at: start)
    }
    var power = 0
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      integer = false
      index += 1
      let fraction = digits(into: &significand, exact: &exact)
      guard fraction > 0 else { throw failure("a number without digits after '.'", at: start) }
      power = -fraction
    }
    if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
      integer = false
      index += 1
      let sign = index < bytes.count ? bytes[index] : 0
      if sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
      var exponent: UInt64 = 0
      var exponentExact = true
      guard digits(into: &exponent, exact: &exponentExact) > 0 else {
        throw failure("a number without digits in its exponent", at: start)
      }
      // An exponent past 2^53 is far outside ±22: the exact path below decides.
      if exponentExact {
        power += sign == UInt8(ascii: "-") ? -Int(exponent) : Int(exponent)
      } else {
        exact = false
      }
    }
    if exact, (-22...22).contains(power) {
      let magnitude =
        power >= 0
        ? Double(significand) * powersOfTen[power] : Double(significand) / powersOfTen[-power]
      return negative ? -magnitude : magnitude
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    // Up to 15 digits an integer is below 2^53; longer ones are checked exactly.
    if integer && index - leading > 15 {
      guard let whole = Int64(text), whole.magnitude <= 1 << 53 else {
        throw failure(
          "the integer \(text.excerpt()) is beyond ±2^53 and cannot be kept exactly; write it"
            + " as a string", at: start)
      }
      return Double(whole)
    }
    guard let value = Double(text), value.isFinite else {
      throw failure("the number \(text.excerpt()) is beyond the range of a double", at: start)
    }
    // 1.5e-400 reads as 0: a value the writer did not mean.
    if value == 0,
      text.prefix(while: { $0 != "e" && $0 != "E" }).contains(where: { ("1"..."9").contains($0) })
    {
      throw failure(
        "the number \(text.excerpt()) is too small for a double (it would read as 0)", at: start)
    }
    return value
  }
}

/// 10^0 … 10^22, the powers of ten a `Double` holds exactly.
private let powersOfTen: [Double] = (0...22).map { (power: Int) -> Double in
  (0..<power).reduce(1) { (product, _) in product * 10 }
}

extension String {
  /// The text as an error message quotes it: at most `limit` characters, then "…" (a
  /// 5 MB number or line is not repeated whole).
  package func excerpt(_ limit: Int = 80) -> String {
    let head = prefix(limit + 1)
    return head.count > limit ? head.dropLast() + "…" : self
  }
}
