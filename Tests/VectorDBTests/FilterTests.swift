import XCTest

@testable import VectorDB

final class FilterTests: XCTestCase {
  let paper: [String: JSONValue] = [
    "year": 2021, "topic": "index", "tags": ["hnsw", "graph"], "author": ["name": "Ada"],
    "draft": false,
  ]

  private func matches(_ json: String) throws -> Bool {
    try Filter(json: json).matches(paper)
  }

  func testEqualityRangesAndSets() throws {
    XCTAssertTrue(try matches(#"{"topic": "index"}"#))
    XCTAssertFalse(try matches(#"{"topic": "storage"}"#))
    XCTAssertTrue(try matches(#"{"year": {"$gte": 2021, "$lt": 2022}}"#))
    XCTAssertFalse(try matches(#"{"year": {"$gt": 2021}}"#))
    XCTAssertTrue(try matches(#"{"topic": {"$in": ["storage", "index"]}}"#))
    XCTAssertFalse(try matches(#"{"topic": {"$nin": ["storage", "index"]}}"#))
    XCTAssertTrue(try matches(#"{"draft": false, "year": 2021}"#))
    XCTAssertTrue(try matches(#"{"topic": {"$ne": "storage"}}"#))
  }

  func testArraysNestingAndMissingFields() throws {
    XCTAssertTrue(try matches(#"{"tags": "graph"}"#))
    XCTAssertTrue(try matches(#"{"tags": ["hnsw", "graph"]}"#))
    XCTAssertFalse(try matches(#"{"tags": ["graph"]}"#))
    XCTAssertTrue(try matches(#"{"author.name": "Ada"}"#))
    XCTAssertFalse(try matches(#"{"missing": 1}"#))
    XCTAssertTrue(try matches(#"{"missing": {"$ne": 1}}"#))
    XCTAssertTrue(try matches(#"{"missing": {"$exists": false}}"#))
    XCTAssertFalse(try matches(#"{"year": {"$gt": "2000"}}"#), "numbers and strings do not compare")
  }

  func testBooleanCombinations() throws {
    XCTAssertTrue(try matches(#"{"$or": [{"topic": "storage"}, {"year": 2021}]}"#))
    XCTAssertFalse(try matches(#"{"$and": [{"topic": "index"}, {"year": 2020}]}"#))
    XCTAssertTrue(try matches(#"{"$not": {"topic": "storage"}}"#))
  }

  func testErrorsNameTheProblem() {
    let cases = [
      (#"["topic"]"#, "a filter is a JSON object"),
      (#"{"$xor": []}"#, "unknown operator $xor"),
      (#"{"year": {"$between": [1, 2]}}"#, "unknown operator $between on \"year\""),
      (#"{"year": {"$in": 3}}"#, "$in on \"year\" takes an array"),
      (#"{"$or": []}"#, "$or takes a non-empty array"),
      (#"{"year": {"$gt": true}}"#, "$gt on \"year\" takes a number or a string"),
      (#"{"year": "#, "invalid JSON"),
      (
        #"lang = "en""#,
        #"unexpected 'l' where a value should be; a filter is a JSON object, like {"lang": "en"}"#
      ),
    ]
    for (json, expected) in cases {
      XCTAssertThrowsError(try Filter(json: json), json) { error in
        XCTAssertTrue("\(error)".hasPrefix("filter: "), "\(error)")
        XCTAssertTrue("\(error)".contains(expected), "\(error) should contain \(expected)")
      }
    }
  }
}
