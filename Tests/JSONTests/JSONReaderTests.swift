import XCTest

@testable import JSON

/// `JSONReader` read piece by piece (`members`, `elements`, `floats`, `value`): the same
/// grammar, checks and error places as `JSONValue(utf8:)`, whichever way a text is read.
final class JSONReaderTests: XCTestCase {
  /// Reads `text` as the server reads an upsert's documents: every array of numbers in
  /// an object's `v` as floats, the rest as values; returns the values and the floats.
  private func read(_ text: String) throws(JSONParseError) -> (JSONValue, [[Float]]) {
    try JSONReader.read(utf8: Array(text.utf8)) { (reader) throws(JSONParseError) in
      var floats: [[Float]] = []
      func anything(_ reader: inout JSONReader) throws(JSONParseError) -> JSONValue {
        var fields: [String: JSONValue] = [:]
        var elements: [JSONValue] = []
        if try reader.members({ (reader, key) throws(JSONParseError) in
          if key == "v", let vector = try reader.floats() {
            floats.append(vector)
          } else {
            fields[key] = try anything(&reader)
          }
        }) {
          return .object(fields)
        }
        if try reader.elements({ (reader) throws(JSONParseError) in
          elements.append(try anything(&reader))
        }) {
          return .array(elements)
        }
        return try reader.value()
      }
      return (try anything(&reader), floats)
    }
  }

  private func failure(_ text: String, pieces: Bool) -> JSONParseError? {
    do {
      _ = try pieces ? read(text).0 : JSONValue(utf8: Array(text.utf8))
      return nil
    } catch {
      return error
    }
  }

  func testNumberArraysAreReadAsFloatsAndTheRestAsValues() throws {
    let (value, floats) = try read(
      #" {"v": [1, -2.5e0, 0.1, 3e38], "w": [{"v": []}, {"v": [1, "x"]}], "v2": [7]} "#)
    XCTAssertEqual(floats, [[1, -2.5, Float(0.1), 3e38], []])
    XCTAssertEqual(
      value, ["w": [[:], ["v": [1, "x"]]], "v2": [7]] as JSONValue,
      "an array that is not all numbers is read whole, from its start")
  }

  func testProblemsAreTheSameAndInTheSamePlaceReadEitherWay() {
    let texts = [
      #"{"v": [1, 2 3]}"#, #"{"v": [1, 2,]}"#, #"{"v": [1, 01]}"#, #"{"v": [1, 1e400]}"#,
      #"{"v": [1, 9007199254740993]}"#, #"{"v": [1, "x]}"#, #"{"v": [1], "v": [2]}"#,
      #"{"v": [1, "a"], "v": [2 x]}"#,
      #"{"a": 1, "a": [2]}"#, #"{"v": [1]} x"#, #"{"v": [1"#, #"{"v" [1]}"#, "[", "",
      String(repeating: "[", count: 65) + String(repeating: "]", count: 65),
      #"{"v": "# + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}",
    ]
    for text in texts {
      let whole = failure(text, pieces: false)
      XCTAssertNotNil(whole, text)
      XCTAssertEqual(failure(text, pieces: true), whole, text)
    }
  }
}
