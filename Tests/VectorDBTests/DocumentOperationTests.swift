import Foundation
import XCTest

@testable import VectorDB

/// Reading, counting, deleting by filter; metadata-only updates; stored vectors.
final class DocumentOperationTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-document-ops-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// 50 documents with 4-d vectors; metadata {"n": i, "even": i % 2 == 0}.
  private func collection() throws -> DocumentCollection {
    let docs = try Database(path: path).collection(
      "c", options: .vectors(dimension: 4, metric: .l2))
    try docs.upsert(
      (0..<50).map {
        Document(
          id: String(format: "d%02d", $0), text: "text \($0)",
          metadata: ["n": .number(Double($0)), "even": .bool($0 % 2 == 0)])
      }, vectors: (0..<50).map { [Float($0), 0, 0, 1] })
    return docs
  }

  func testCountGetAndDeleteByFilter() throws {
    let docs = try collection()
    let even = try Filter(json: #"{"even": true}"#)
    let small = try Filter(json: #"{"n": {"$lt": 10}}"#)
    XCTAssertEqual(try docs.count(matching: even), 25)
    XCTAssertEqual(try docs.count(matching: small), 10)
    XCTAssertEqual(
      try docs.documents(matching: small, limit: 3).map(\.id), ["d00", "d01", "d02"])
    XCTAssertEqual(
      try docs.documents(matching: small, after: "d07", limit: 10).map(\.id), ["d08", "d09"])

    let wouldGo = try docs.delete(matching: small, dryRun: true)
    XCTAssertEqual(wouldGo, (0..<10).map { String(format: "d%02d", $0) })
    XCTAssertEqual(try docs.count(), 50, "a dry run deletes nothing")
    XCTAssertEqual(try docs.delete(matching: small), wouldGo)
    XCTAssertEqual(try docs.count(), 40)
    XCTAssertEqual(try docs.count(matching: small), 0)
    XCTAssertEqual(try docs.count(matching: even), 20)
    XCTAssertFalse(
      try docs.query(vector: [3, 0, 0, 1], k: 5).hits.contains { wouldGo.contains($0.id) },
      "their vectors went too")
    try docs.database.verify()
  }

  /// LMDB keys hold at most 511 bytes: a string longer than an index key holds is
  /// matched on all of it, a path too long for any key is matched without the index,
  /// and both are stored, found and deleted like any other.
  func testLongStringsAndPathsAreStoredAndMatchedExactly() throws {
    let docs = try collection()
    let shared = String(repeating: "a", count: 600)
    let long = String(repeating: "k", count: 600)
    let inner = String(repeating: "c", count: 300)
    try docs.upsert(
      [
        Document(id: "x", text: "", metadata: ["s": .string(shared + "x"), long: 1]),
        Document(
          id: "y", text: "",
          metadata: ["s": .string(shared + "y"), "b": .object([inner: .object([inner: "v"])])]),
      ], vectors: [[1, 1, 0, 0], [1, 1, 0, 1]])
    func ids(_ json: String) throws -> [String] {
      let filter = try Filter(json: json)
      let found = try docs.documents(matching: filter).map(\.id)
      XCTAssertEqual(try docs.count(matching: filter), found.count, json)
      let hits = try docs.query(vector: [1, 1, 0, 0], k: 5, filter: filter).hits.map(\.id)
      XCTAssertEqual(hits.sorted(), found, json)
      return found
    }
    XCTAssertEqual(try ids(#"{"s": "\#(shared)x"}"#), ["x"])
    XCTAssertEqual(try ids(#"{"s": {"$in": ["\#(shared)y", "z"]}}"#), ["y"])
    XCTAssertEqual(try ids(#"{"s": "\#(shared)"}"#), [])
    XCTAssertEqual(try ids(#"{"\#(long)": 1}"#), ["x"])
    XCTAssertEqual(try ids(#"{"\#(long)": {"$gte": 0}}"#), ["x"])
    XCTAssertEqual(try ids(#"{"b.\#(inner).\#(inner)": "v"}"#), ["y"])
    try docs.update(id: "x", metadata: ["s": "short"])
    XCTAssertEqual(try ids(#"{"\#(long)": 1}"#), [])
    XCTAssertEqual(try ids(#"{"s": "short"}"#), ["x"])
    XCTAssertEqual(try docs.delete(["y"]), 1)
    XCTAssertEqual(try ids(#"{"b.\#(inner).\#(inner)": "v"}"#), [])
    try docs.database.verify()
  }

  /// Ids are bytes: "é" composed and "e" + a combining accent are two documents, in one
  /// batch as in two (Swift's `==` takes them for one string).
  func testIdsEqualOnlyAsUnicodeTextAreTwoDocuments() throws {
    let docs = try collection()
    let (composed, decomposed) = ("\u{E9}", "e\u{301}")
    try docs.upsert(
      [Document(id: composed, text: ""), Document(id: decomposed, text: "")],
      vectors: [[1, 0, 0, 0], [0, 1, 0, 0]])
    XCTAssertEqual(try docs.count(), 52)
    XCTAssertEqual(try docs.vectors([composed, decomposed]), [[1, 0, 0, 0], [0, 1, 0, 0]])
    XCTAssertEqual(try docs.delete([composed, decomposed, composed]), 2)
    XCTAssertEqual(try docs.count(), 50)
    try docs.database.verify()
  }

  /// A dot or l2 vector whose length would overflow scores is refused by name.
  func testAVectorTooLongForScoresIsRefused() throws {
    let docs = try collection()
    XCTAssertThrowsError(
      try docs.upsert([Document(id: "big", text: "")], vectors: [[3e38, 3e38, 3e38, 3e38]])
    ) { error in
      XCTAssertTrue("\(error)".contains("too large: scores would overflow"), "\(error)")
    }
    XCTAssertNil(try docs.get("big"))
  }

  func testMetadataUpdateKeepsTextAndVector() throws {
    let docs = try collection()
    let before = try docs.vectors(["d07"])[0]
    try docs.update(id: "d07", metadata: ["topic": "storage"])
    XCTAssertEqual(
      try docs.get("d07"), Document(id: "d07", text: "text 7", metadata: ["topic": "storage"]))
    XCTAssertEqual(try docs.vectors(["d07"])[0], before)
    XCTAssertEqual(try docs.count(matching: Filter(json: #"{"topic": "storage"}"#)), 1)
    XCTAssertEqual(try docs.count(matching: Filter(json: #"{"n": 7}"#)), 0, "old index entries go")
    XCTAssertThrowsError(try docs.update(id: "nope", metadata: [:])) {
      XCTAssertEqual($0 as? VectorDBError, .documentNotFound(id: "nope", collection: "c"))
    }
    try docs.database.verify()
  }

  func testStoredVectors() throws {
    let docs = try collection()
    let vectors = try docs.vectors(["d03", "missing", "d10"])
    XCTAssertEqual(vectors[0], [3, 0, 0, 1])
    XCTAssertNil(vectors[1])
    XCTAssertEqual(vectors[2], [10, 0, 0, 1])
    let plain = try docs.database.collection("plain", options: CollectionOptions(vectors: .none))
    XCTAssertThrowsError(try plain.vectors(["x"])) {
      XCTAssertEqual(
        $0 as? VectorDBError, .notAvailable(collection: "plain", reason: "has no vectors"))
    }
  }
}
