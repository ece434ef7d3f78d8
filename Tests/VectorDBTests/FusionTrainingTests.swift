import Foundation
import XCTest

@testable import VectorDB

/// `vdb train --tier fusion`: the fitted alpha follows the judgements, the gate rejects
/// noise, queries use the serving version, and rollback restores the one before.
final class FusionTrainingTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-fusion-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.removeItem(atPath: path + "-plain")
  }

  static let topics = [
    ["volcano", "lava", "eruption", "magma"], ["piano", "melody", "concert", "orchestra"],
    ["football", "goal", "stadium", "referee"], ["bread", "oven", "flour", "dough"],
    ["galaxy", "telescope", "planet", "orbit"], ["lawyer", "court", "judge", "verdict"],
    ["glacier", "ice", "snow", "winter"], ["engine", "piston", "fuel", "gearbox"],
    ["forest", "oak", "moss", "fern"], ["harbour", "ship", "sailor", "anchor"],
    ["vaccine", "virus", "immune", "antibody"], ["camera", "lens", "photo", "shutter"],
  ]

  /// 300 documents, 25 per topic, each naming its topic's words (1–3 times each, so
  /// their BM25 scores differ) and carrying a code of its own ("qk…z").
  static func corpus() -> [Document] {
    var state: UInt64 = 7
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    return (0..<300).map { i in
      let words = topics[i % topics.count]
      let text = (0..<(3 + next(6))).map { _ in words[next(words.count)] }.joined(separator: " ")
      return Document(id: "d\(i)", text: "Notes on \(text), reference \(code(i)).")
    }
  }

  static func code(_ i: Int) -> String { "qk\(String(i * 7919, radix: 36))z" }

  private func collection() throws -> DocumentCollection {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let collection = try db.collection("codes")
    try collection.upsert(Self.corpus())
    return collection
  }

  /// Logs `queries` (hybrid) and marks `judged(query number)` relevant for each.
  private func log(_ collection: DocumentCollection, _ queries: [String], judged: (Int) -> String)
    throws
  {
    for (number, text) in queries.enumerated() {
      let result = try collection.query(text: text, k: 10)
      try collection.feedback(logID: result.logID!, documentID: judged(number))
    }
  }

  /// Query n asks for document 3n's code with a word of another topic: only the keyword
  /// path can find the document.
  static let queries = (0..<60).map { n in
    "\(topics[(n + 5) % topics.count][n % 4]) \(code(3 * n))"
  }

  func testKeywordJudgementsMoveAlphaTowardsKeywordAndArePromoted() throws {
    let collection = try collection()
    try log(collection, Self.queries) { "d\(3 * $0)" }
    var options = TrainingOptions()
    options.tier = .fusion
    let report = try collection.train(options: options)
    let fitted = try XCTUnwrap(report.fusion)
    XCTAssertTrue(report.promoted, report.reason)
    XCTAssertLessThan(fitted.alpha, 0.5, report.reason)
    XCTAssertGreaterThan(report.gate.ciLow, 0)
    XCTAssertEqual(report.gate.method, "cross_fit")
    XCTAssertGreaterThan(report.heldOutAfter["ndcg@10"]!, report.heldOutBefore["ndcg@10"]!)
    XCTAssertEqual(fitted.state, .ready)
    XCTAssertNil(fitted.parent)
    XCTAssertEqual(fitted.lineage["judged_queries"], .number(60))
    let serving = try XCTUnwrap(try collection.fusionHistory().serving)
    XCTAssertEqual(serving.version, fitted.version)
    XCTAssertEqual(serving.alpha, fitted.alpha)

    // A hybrid query without a fusion of its own uses the fitted alpha.
    func ids(_ fusion: Fusion?) throws -> [String] {
      try collection.query(
        texts: [Self.queries[0]], options: QueryOptions(k: 10, log: false, fusion: fusion))[0]
        .hits.map(\.id)
    }
    XCTAssertEqual(try ids(nil), try ids(.convex(alpha: fitted.alpha)))
    XCTAssertEqual(try ids(nil).first, "d0")
    XCTAssertNotEqual(try ids(.defaultHybrid).first, "d0")

    // The same log again: the serving alpha is already the best, nothing to promote.
    let again = try collection.train(options: options)
    XCTAssertFalse(again.promoted, again.reason)
    XCTAssertEqual(again.fusion?.parent, fitted.version)
    XCTAssertEqual(try collection.fusionHistory().serving?.version, fitted.version)

    // Rollback: the default serves again, then there is nothing left to roll back.
    XCTAssertNil(try collection.rollbackFusion())
    XCTAssertNil(try collection.fusionHistory().serving)
    XCTAssertEqual(try ids(nil), try ids(.defaultHybrid))
    XCTAssertThrowsError(try collection.rollbackFusion())
    XCTAssertEqual(try collection.fusionHistory().versions.count, 2)
  }

  func testNoiseIsRejectedAndChangesNothing() throws {
    let collection = try collection()
    // Relevant documents drawn at random: no weight ranks them better than another.
    try log(collection, Self.queries) { "d\(($0 * 37 + 11) % 300)" }
    var options = TrainingOptions()
    options.tier = .fusion
    let report = try collection.train(options: options)
    XCTAssertFalse(report.promoted, report.reason)
    XCTAssertEqual(report.fusion?.state, .rejected)
    XCTAssertNil(try collection.fusionHistory().serving)
    XCTAssertEqual(try collection.fusionHistory().versions.count, 1)
  }

  func testFusionNeedsJudgementsAndBothPaths() throws {
    let collection = try collection()
    var options = TrainingOptions()
    options.tier = .fusion
    XCTAssertThrowsError(try collection.train(options: options)) { error in
      guard case VectorDBError.notEnoughJudgements = error else {
        return XCTFail("\(error)")
      }
    }
    let plain = try Database(path: path + "-plain").collection("plain")  // no model
    try plain.upsert([Document(id: "a", text: "no model here")])
    XCTAssertThrowsError(try plain.train(options: options))
  }
}
