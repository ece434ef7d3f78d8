import HNSW
import Tensor
import XCTest

/// Deletes, repair and updates.
final class ChurnTests: XCTestCase {
  /// Insert all, delete a random 30%, re-insert half of those: recall@10 at ef 64
  /// stays within 0.01 of a graph built fresh from the surviving nodes.
  func testRecallAfterChurnMatchesFreshBuild() throws {
    let all = try TestData.floats("scifact-minilm/base.fvecs", limit: 1_500)
    let queries = try TestData.floats("scifact-minilm/queries.fvecs", limit: 100)
    var graph = try buildGraph(all, metric: .cosine)
    var rng = SplitMix64(seed: 11)
    let deleted = (0..<UInt32(all.count)).shuffled(using: &rng).prefix(all.count * 3 / 10)
    let back = Array(deleted.prefix(deleted.count / 2))
    XCTAssertEqual(try graph.delete(ids: deleted), deleted.count)
    XCTAssertEqual(graph.storage.deletedCount, 0, "30% is past the threshold: repaired")
    try graph.insert(ids: back, vectors: back.flatMap { all[Int($0)] }, threads: 2)

    let gone = Set(deleted).subtracting(back)
    let live = (0..<UInt32(all.count)).filter { !gone.contains($0) }
    var fresh = HNSWGraph(
      storage: MemoryStorage(dimension: all[0].count, parameters: testParameters),
      metric: .cosine, parameters: testParameters)
    try fresh.insert(ids: live, vectors: live.flatMap { all[Int($0)] }, threads: 2)

    let scratch = SearchScratch()
    var churned: [[UInt32]] = []
    var rebuilt: [[UInt32]] = []
    var truth: [[UInt32]] = []
    for query in queries {
      churned.append(try graph.search(query, k: 10, ef: 64, scratch: scratch).map(\.id))
      rebuilt.append(try fresh.search(query, k: 10, ef: 64, scratch: scratch).map(\.id))
      truth.append(try fresh.exactSearch(query, k: 10).map(\.id))
    }
    XCTAssertTrue(churned.allSatisfy { Set($0).isDisjoint(with: gone) })
    let churnedRecall = recall(churned, truth, k: 10)
    let freshRecall = recall(rebuilt, truth, k: 10)
    XCTAssertGreaterThanOrEqual(churnedRecall, freshRecall - 0.01)
    let report = try graph.checkIntegrity()
    XCTAssertEqual(report.problems, [])
    XCTAssertEqual(report.nodeCount, live.count)
  }

  /// After consolidation no list names a removed node, and every live node is still
  /// reachable; the entry point moves when it is deleted.
  func testDeleteRepairLeavesNoDanglingLinks() throws {
    let base = randomVectors(800, dimension: 16, seed: 5)
    var parameters = testParameters
    parameters.consolidationThreshold = 1  // repair only when asked
    var graph = try buildGraph(base, metric: .l2, parameters: parameters)
    let entry = try XCTUnwrap(graph.storage.entryPoint)
    var rng = SplitMix64(seed: 9)
    var victims = Set((0..<UInt32(base.count)).shuffled(using: &rng).prefix(250))
    victims.insert(entry.node)
    try graph.delete(ids: victims)
    XCTAssertEqual(graph.storage.deletedCount, victims.count)

    // Tombstones are walked through but never returned.
    let scratch = SearchScratch()
    for q in 0..<20 {
      let hits = try graph.search(base[q * 7], k: 10, scratch: scratch)
      XCTAssertTrue(hits.allSatisfy { !victims.contains($0.id) })
    }

    try graph.consolidate(threads: 2)
    XCTAssertEqual(graph.storage.deletedCount, 0)
    XCTAssertNotEqual(graph.storage.entryPoint?.node, entry.node)
    let report = try graph.checkIntegrity()
    XCTAssertEqual(report.problems, [])
    XCTAssertEqual(report.unreachable, [])
    XCTAssertEqual(report.nodeCount, base.count - victims.count)
    for node in 0..<UInt32(base.count) where !victims.contains(node) {
      for neighbor in graph.storage.neighbors(of: node, level: 0) {
        XCTAssertFalse(victims.contains(neighbor), "node \(node) still links to \(neighbor)")
      }
    }
  }

  /// A stored link past the id bound (a damaged record) is an error of the repair, not a
  /// trap of the process that runs it.
  func testALinkPastTheIdBoundIsReportedByTheRepair() throws {
    let base = randomVectors(50, dimension: 8, seed: 3)
    var parameters = testParameters
    parameters.consolidationThreshold = 1
    var graph = try buildGraph(base, metric: .l2, parameters: parameters)
    let neighbors = Array(graph.storage.neighbors(of: 1, level: 0))
    try graph.storage.setNeighbors(of: 1, level: 0, to: neighbors.dropLast() + [7_000])
    try graph.delete(ids: [neighbors[0]])
    XCTAssertThrowsError(try graph.consolidate()) { error in
      XCTAssertEqual(
        error as? HNSWError, .corrupt("node 1 links to 7000, past the id bound 50"))
    }
  }

  func testDeletingEveryNodeEmptiesTheGraph() throws {
    var graph = HNSWGraph(
      storage: MemoryStorage(dimension: 2, parameters: HNSWParameters()), metric: .l2)
    try graph.insert(ids: [0, 1, 2], vectors: [0, 0, 1, 1, 2, 2])
    XCTAssertTrue(try graph.delete(1))
    XCTAssertFalse(try graph.delete(1))
    XCTAssertFalse(try graph.delete(42))
    try graph.delete(ids: [0, 2])
    XCTAssertNil(graph.storage.entryPoint)
    XCTAssertEqual(graph.storage.nodeCount, 0)
    XCTAssertEqual(try graph.search([0, 0], k: 3, scratch: SearchScratch()), [])
    try graph.insert(5, vector: [3, 3])
    XCTAssertEqual(try graph.search([0, 0], k: 3, scratch: SearchScratch()).map(\.id), [5])
  }

  func testUpdateMovesANodeAndRevivesATombstone() throws {
    let base = randomVectors(500, dimension: 8, seed: 1)
    var parameters = testParameters
    parameters.consolidationThreshold = 1
    var graph = try buildGraph(base, metric: .l2, parameters: parameters)
    let far: [Float] = Array(repeating: 9, count: 8)
    try graph.insert(42, vector: far)
    let scratch = SearchScratch()
    XCTAssertEqual(try graph.search(far, k: 1, scratch: scratch).first?.id, 42)
    XCTAssertEqual(graph.storage.nodeCount, 500)

    try graph.delete(7)
    XCTAssertNotEqual(try graph.search(base[7], k: 1, scratch: scratch).first?.id, 7)
    try graph.insert(7, vector: base[7])
    XCTAssertEqual(try graph.search(base[7], k: 1, scratch: scratch).first?.id, 7)
    XCTAssertEqual(graph.storage.deletedCount, 0)
    XCTAssertEqual(try graph.checkIntegrity().problems, [])
  }
}
