import HNSW
import XCTest

final class FilterTests: XCTestCase {
  /// A filter passing 1% of the nodes: the exact scan over the candidates (what a
  /// selective filter should use) is exact, and the filtered walk with a wide ef still
  /// finds ≥ 0.99 of the exact filtered neighbours.
  func testSelectiveFilterRecall() throws {
    let queries = try TestData.floats("scifact-minilm/queries.fvecs", limit: 30)
    let graph = try SharedGraphs.sciFact.get()
    let allowed = (0..<UInt32(2_000)).filter { $0 % 100 == 17 }
    let allowedSet = Set(allowed)
    let scratch = SearchScratch()
    var walked: [[UInt32]] = []
    var scanned: [[UInt32]] = []
    var truth: [[UInt32]] = []
    for query in queries {
      truth.append(try graph.exactSearch(query, k: 10) { allowedSet.contains($0) }.map(\.id))
      scanned.append(try graph.exactSearch(query, k: 10, candidates: allowed).map(\.id))
      walked.append(
        try graph.search(query, k: 10, ef: 200, scratch: scratch) { allowedSet.contains($0) }
          .map(\.id))
    }
    XCTAssertEqual(scanned, truth)
    XCTAssertTrue(walked.allSatisfy { $0.allSatisfy(allowedSet.contains) })
    XCTAssertGreaterThanOrEqual(recall(walked, truth, k: 10), 0.99)
  }

  func testExactSearchSkipsUnknownAndDeletedCandidates() throws {
    var parameters = HNSWParameters()
    parameters.consolidationThreshold = 1
    var graph = HNSWGraph(
      storage: MemoryStorage(dimension: 1, parameters: parameters), metric: .l2,
      parameters: parameters)
    try graph.insert(ids: [0, 1, 2, 3], vectors: [0, 1, 2, 3])
    try graph.delete(1)
    let hits = try graph.exactSearch([0.9], k: 3, candidates: [1, 2, 99, 3])
    XCTAssertEqual(hits.map(\.id), [2, 3])
  }
}
