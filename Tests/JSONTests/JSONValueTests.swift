import Foundation
import Tensor
import XCTest

@testable import JSON

/// `JSONValue(utf8:)`, the package's one JSON reader, against Foundation's decoder and
/// RFC 8259.
final class JSONValueTests: XCTestCase {
  private func parse(_ text: String) throws -> JSONValue {
    try JSONValue(utf8: text.utf8)
  }

  private func failure(_ bytes: [UInt8]) -> JSONParseError? {
    do {
      _ = try JSONValue(utf8: bytes)
      return nil
    } catch {
      return error
    }
  }

  private func reason(_ text: String) -> String? { failure(Array(text.utf8))?.problem }

  func testRandomValuesReadBackAsFoundationWroteThem() throws {
    var random = SplitMix64(seed: 11)
    let alphabet: [String] = [
      "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "中", "😀", "\u{7F}",
      "\u{0}",
    ]
    func value(_ depth: Int) -> JSONValue {
      switch random.next() % (depth > 4 ? 4 : 6) {
      case 0: return .null
      case 1: return .bool(random.next() % 2 == 0)
      case 2:
        let choice = random.next() % 3
        if choice == 0 { return .number(Double(Int64(random.next() % (1 << 53)) - (1 << 52))) }
        if choice == 1 { return .number(Double(bitPattern: random.next() >> 2)) }
        return .number(Double(Int(random.next() % 2_000_001) - 1_000_000) / 1000)
      case 3:
        return .string(
          (0..<Int(random.next() % 12)).map { _ in alphabet[Int(random.next() % 15)] }.joined())
      case 4: return .array((0..<Int(random.next() % 5)).map { _ in value(depth + 1) })
      default:
        return .object(
          Dictionary(
            (0..<Int(random.next() % 5)).map { _ in ("k\(random.next() % 1000)", value(depth + 1))
            },
            uniquingKeysWith: { first, _ in first }))
      }
    }
    for _ in 0..<2000 {
      let original = value(0)
      let text = String(decoding: try JSONEncoder().encode(original), as: UTF8.self)
      let parsed = try parse(text)
      XCTAssertEqual(parsed, original, text)
      XCTAssertEqual(parsed, try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), text)
    }
  }

  func testEdgesOfTheGrammarAreRead() throws {
    XCTAssertEqual(try parse(" \n\t[ ] "), .array([]))
    XCTAssertEqual(try parse("{}"), .object([:]))
    XCTAssertEqual(try parse("-0"), .number(-0.0))
    XCTAssertEqual(try parse("1E+2"), .number(100))
    XCTAssertEqual(try parse("2.5e-3"), .number(0.0025))
    XCTAssertEqual(try parse("9007199254740992"), .number(9_007_199_254_740_992))
    XCTAssertEqual(try parse("123456789012345.5"), .number(123_456_789_012_345.5))
    XCTAssertEqual(
      try parse(#""\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\""#), .string("é😀/\u{8}\u{C}\n\r\t\"\\"))
    XCTAssertEqual(try parse(#"{"a": [true, false, null]}"#), ["a": [true, false, nil]])
    let deepest =
      String(repeating: "[", count: JSONValue.maxDepth)
      + String(repeating: "]", count: JSONValue.maxDepth)
    XCTAssertEqual(try parse(deepest).depth, JSONValue.maxDepth)
  }

  /// Numbers read on the fast path (digits below 2^53, a power of ten within ±22) and
  /// off it are the doubles Swift's own parser gives, to the bit (the sign of 0 too).
  func testNumbersReadAsSwiftsParserReadsThem() throws {
    var random = SplitMix64(seed: 5)
    func digits(_ count: UInt64) -> String {
      String((0..<count).map { _ in Character(String(random.next() % 10)) })
    }
    var texts = ["0", "-0", "-0.0", "0e-5", "1e22", "1e23", "1e-22", "1e-23", "9.007199254740993"]
    texts += ["900719925474099.3", "0.30000000000000004", "5e-324", "1.7976931348623157e308"]
    for _ in 0..<20_000 {
      var text = random.next() % 3 == 0 ? "-" : ""
      text += String(random.next() % 1000)
      if random.next() % 4 != 0 { text += "." + digits(1 + random.next() % 19) }
      if random.next() % 3 == 0 {
        text += ["e", "E", "e-", "e+"][Int(random.next() % 4)] + String(random.next() % 40)
      }
      texts.append(text)
    }
    for text in texts {
      guard case .number(let read) = try parse(text) else { return XCTFail(text) }
      XCTAssertEqual(read.bitPattern, Double(text)!.bitPattern, text)
    }
  }

  func testWhatIsNotJSONOrWouldLoseDataIsRefusedWithAReason() {
    let syntax = [
      "", "   ", "[", "[1,]", "[1 2]", "{\"a\":1,}", "{\"a\" 1}", "{a: 1}", "{\"a\":}", "01", "1.",
      ".5", "-", "--1", "+1", "1e", "1e+", "'a'", "\"abc", "\"\u{01}\"", "\"\\x\"", "\"\\u12\"",
      "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "nul", "truth", "1 2", "[1]]", "{}}",
      "NaN", "Infinity",
    ]
    for text in syntax {
      let reason = self.reason(text)
      XCTAssertNotNil(reason, "accepted: \(text)")
      // Foundation tolerates trailing commas; RFC 8259 does not, nor does vdb.
      if !text.hasSuffix(",]") && !text.hasSuffix(",}") {
        XCTAssertThrowsError(
          try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
          "Foundation agrees that \(text) is not JSON")
      }
    }
    XCTAssertTrue(reason(#"{"a": 1, "a": 2}"#)?.contains(#"the key "a" appears twice"#) ?? false)
    XCTAssertTrue(reason(#"{"a": {"b": 1, "\u0062": 2}}"#)?.contains("appears twice") ?? false)
    XCTAssertTrue(reason("9007199254740993")?.contains("beyond ±2^53") ?? false)
    XCTAssertTrue(reason("-99999999999999999999")?.contains("beyond ±2^53") ?? false)
    XCTAssertTrue(reason("1e400")?.contains("beyond the range") ?? false)
    XCTAssertTrue(reason("1.5e-400")?.contains("too small for a double") ?? false)
    for zero in ["0", "-0.0", "0e-400", "0.000e5"] {
      XCTAssertNil(reason(zero), zero)
    }
    let tooDeep = String(repeating: "[", count: JSONValue.maxDepth + 1)
    XCTAssertTrue(reason(tooDeep)?.contains("deeper than 64") ?? false)
  }

  /// A problem is placed at the byte it starts at, and by line and column (in bytes).
  func testProblemsArePlacedByByteLineAndColumn() {
    let cases: [(String, JSONParseError)] = [
      (
        "[1,]",
        .init(offset: 3, line: 1, column: 4, problem: "unexpected ']' where a value should be")
      ),
      (
        "{\n  \"a\": 1,\n  \"b\": tru\n}",
        .init(offset: 19, line: 3, column: 8, problem: "unexpected 't' where a value should be")
      ),
      ("{\"a\": 1", .init(offset: 7, line: 1, column: 8, problem: "unexpected end of text")),
      (
        "[\"ok\",\n \"open]",
        .init(offset: 8, line: 2, column: 2, problem: "a string is not closed")
      ),
      (
        "{\"a\": 1, \"a\": 2}",
        .init(offset: 9, line: 1, column: 10, problem: "the key \"a\" appears twice in one object")
      ),
      (
        String(repeating: "[", count: 70),
        .init(offset: 64, line: 1, column: 65, problem: "containers nest deeper than 64 levels")
      ),
    ]
    for (text, expected) in cases {
      XCTAssertEqual(failure(Array(text.utf8)), expected, text)
    }
    XCTAssertEqual(
      failure(Array("\n\n  x".utf8))?.description,
      "line 3, column 3: unexpected 'x' where a value should be")
  }

  /// Bytes (a request body) are read as they are: a string that is not UTF-8 is refused
  /// at its opening quote, with or without escapes in it, not stored with U+FFFD in it.
  func testStringsThatAreNotUTF8AreRefusedNotRepaired() throws {
    let notUTF8 = "a string that is not UTF-8 text"
    let cafe = Array(#"{"a": "caf"#.utf8) + [0xE9] + Array(#""}"#.utf8)
    XCTAssertEqual(failure(cafe), .init(offset: 6, line: 1, column: 7, problem: notUTF8))
    let escaped = Array(#"["x", "\n"#.utf8) + [0xF0, 0x9F, 0x98] + Array(#"!"]"#.utf8)
    XCTAssertEqual(failure(escaped), .init(offset: 6, line: 1, column: 7, problem: notUTF8))
    // U+FFFD written by the client is text like any other.
    XCTAssertEqual(try JSONValue(utf8: Array(#"["\#u{FFFD}\u00e9"]"#.utf8)), ["\u{FFFD}é"])
    XCTAssertEqual(try JSONValue(utf8: Array(#""東京""#.utf8)), "東京")
  }
}
