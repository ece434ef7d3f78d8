import Foundation
import XCTest

@testable import VectorDB

/// Queries over collections of given vectors: recall against exact search, filters,
/// persistence, deletes and updates.
final class VectorQueryTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-query-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Deterministic clustered vectors: realistic enough for HNSW, cheap to make.
  static func vectors(_ count: Int, dimension: Int, seed: UInt64) -> [[Float]] {
    var state = seed
    func next() -> Float {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Float(Double(state >> 11) / Double(1 << 53)) * 2 - 1
    }
    let centers = (0..<20).map { _ in (0..<dimension).map { _ in next() } }
    return (0..<count).map { i in centers[i % 20].map { $0 + 0.4 * next() } }
  }

  private func makeCollection(count: Int = 3000) throws -> (DocumentCollection, [[Float]]) {
    let collection = try Database(path: path).collection(
      "v", options: .vectors(dimension: 32, metric: .cosine))
    let vectors = Self.vectors(count, dimension: 32, seed: 7)
    let documents = (0..<count).map { i in
      Document(
        id: "d\(i)", text: "doc \(i)",
        metadata: ["bucket": .number(Double(i % 100)), "even": .bool(i % 2 == 0)])
    }
    for start in stride(from: 0, to: count, by: 1000) {
      try collection.upsert(
        Array(documents[start..<min(start + 1000, count)]),
        vectors: Array(vectors[start..<min(start + 1000, count)]))
    }
    return (collection, vectors)
  }

  private func recall(_ approximate: [QueryResult], _ exact: [QueryResult]) -> Double {
    let hits = zip(approximate, exact).map { a, e in
      Set(a.hits.map(\.id)).intersection(e.hits.map(\.id)).count
    }
    return Double(hits.reduce(0, +)) / Double(exact.map(\.hits.count).reduce(0, +))
  }

  func testIndexRecallAgainstExactSearch() throws {
    let (collection, _) = try makeCollection()
    let queries = Self.vectors(100, dimension: 32, seed: 99)
    let approximate = try collection.query(
      vectors: queries, options: QueryOptions(k: 10, ef: 64, log: false))
    let exact = try collection.query(
      vectors: queries, options: QueryOptions(k: 10, exact: true, log: false))
    XCTAssertGreaterThanOrEqual(recall(approximate, exact), 0.95)
    XCTAssertEqual(exact[0].hits.count, 10)
    XCTAssertTrue(zip(exact[0].hits, exact[0].hits.dropFirst()).allSatisfy { $0.score >= $1.score })
  }

  func testSelectiveFilterHasFullRecall() throws {
    let (collection, _) = try makeCollection()
    let queries = Self.vectors(50, dimension: 32, seed: 5)
    let filter = try Filter(json: #"{"bucket": 42}"#)  // 1% of the documents
    let filtered = try collection.query(
      vectors: queries, options: QueryOptions(k: 10, filter: filter, log: false))
    let exact = try collection.query(
      vectors: queries, options: QueryOptions(k: 10, filter: filter, exact: true, log: false))
    XCTAssertGreaterThanOrEqual(recall(filtered, exact), 0.99)
    for result in filtered {
      XCTAssertTrue(result.hits.allSatisfy { $0.metadata["bucket"] == 42 })
    }
    // A broad filter walks the graph; hits still all match.
    let broad = try collection.query(
      vectors: queries,
      options: QueryOptions(k: 10, filter: try Filter(json: #"{"even": true}"#), log: false))
    XCTAssertTrue(
      broad.allSatisfy { $0.hits.count == 10 && $0.hits.allSatisfy { $0.metadata["even"] == true } }
    )
    // Ranges and negations (the latter without the metadata index) agree with exact search.
    for json in [#"{"bucket": {"$gte": 10, "$lt": 12}}"#, #"{"$not": {"bucket": {"$lt": 98}}}"#] {
      let filter = try Filter(json: json)
      let a = try collection.query(
        vectors: queries, options: QueryOptions(k: 10, filter: filter, log: false))
      let e = try collection.query(
        vectors: queries, options: QueryOptions(k: 10, filter: filter, exact: true, log: false))
      XCTAssertGreaterThanOrEqual(recall(a, e), 0.99, json)
    }
  }

  func testDeletesAndUpdatesAreSeenByQueries() throws {
    let (collection, vectors) = try makeCollection(count: 500)
    let nearest = try collection.query(vector: vectors[10], k: 1, log: false).hits[0]
    XCTAssertEqual(nearest.id, "d10")
    XCTAssertEqual(nearest.score, 1, accuracy: 1e-5)
    try collection.delete("d10")
    XCTAssertNotEqual(try collection.query(vector: vectors[10], k: 1, log: false).hits[0].id, "d10")
    // Moving d11 onto d20's vector makes it d20's twin.
    try collection.upsert([Document(id: "d11", text: "moved")], vectors: [vectors[20]])
    let twins = Set(try collection.query(vector: vectors[20], k: 2, log: false).hits.map(\.id))
    XCTAssertEqual(twins, ["d11", "d20"])
  }

  func testResultsSurviveReopen() throws {
    let queries = Self.vectors(20, dimension: 32, seed: 3)
    let before: [QueryResult]
    do {
      let (collection, _) = try makeCollection(count: 1000)
      before = try collection.query(vectors: queries, options: QueryOptions(log: false))
    }
    let after = try Database(path: path).collection("v", create: false).query(
      vectors: queries, options: QueryOptions(log: false))
    XCTAssertEqual(before, after)
  }

  func testBadVectorsAreRejectedWithNothingWritten() throws {
    let (collection, _) = try makeCollection(count: 100)
    XCTAssertThrowsError(
      try collection.upsert([Document(id: "x", text: "")], vectors: [[1, 2, 3]])
    ) { error in
      XCTAssertTrue(
        "\(error)".contains("document \"x\": a vector of 3 floats; the collection holds 32"),
        "\(error)")
    }
    XCTAssertThrowsError(try collection.upsert([Document(id: "y", text: "no vector")]))
    XCTAssertThrowsError(try collection.query(vector: [1, 2], k: 1))
    XCTAssertNil(try collection.get("x"))
    XCTAssertEqual(try collection.count(), 100)
    try Database(path: path).verify()
  }

  func testVectorFilesImport() throws {
    let sift = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../../shared/datasets/siftsmall/siftsmall_query.fvecs")
      .standardized.path
    let collection = try Database(path: path).collection(
      "sift", options: .vectors(dimension: 128, metric: .l2))
    let report = try collection.importVectors(path: sift, batchSize: 40)
    XCTAssertEqual(report.imported, 100)
    let rows = try VectorFile.read(sift).rows
    XCTAssertEqual(try collection.query(vector: rows[7], k: 1, log: false).hits.first?.id, "7")
    // The same rows as .npy.
    let npy = path + "-rows.npy"
    defer { try? FileManager.default.removeItem(atPath: npy) }
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 128), }"
    let padded = header + String(repeating: " ", count: 118 - header.count) + "\n"
    var bytes: [UInt8] =
      [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(padded.utf8.count), 0] + Array(padded.utf8)
    for row in rows {
      for value in row { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
    }
    try Data(bytes).write(to: URL(fileURLWithPath: npy))
    XCTAssertEqual(try VectorFile.read(npy).rows, rows)
  }
}
