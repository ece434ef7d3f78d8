import HNSW
import XCTest

/// Many copies of one vector (empty or boilerplate texts embed alike): every copy stays
/// reachable, so a search returns k of them, not the few a pruned graph still links to.
final class DuplicateTests: XCTestCase {
  func testEveryCopyOfAVectorIsFound() throws {
    for metric in [Metric.cosine, .l2] {
      let others = randomVectors(100, dimension: 8, seed: 4)
      let copy: [Float] = [0.3, -1, 2, 0.5, 0.25, 1, -0.5, 0.125]
      let vectors = (0..<300).map { $0 % 3 == 0 ? others[$0 / 3] : copy }
      let graph = try buildGraph(vectors, metric: metric)
      let scratch = SearchScratch()
      let copies = vectors.filter { $0 == copy }.count
      for k in [10, 80, copies] {
        let hits = try graph.search(copy, k: k, ef: max(k, 64), scratch: scratch)
        XCTAssertEqual(hits.count, k, "\(metric) k \(k)")
      }
      let all = try graph.search(others[0], k: 300, ef: 300, scratch: scratch)
      XCTAssertEqual(all.count, 300, "\(metric): every node reachable")
    }
  }
}
