import HNSW
import XCTest

/// Recall of the graph against exact ground truth on real data. The 384-d set is cut
/// to 2,000 rows to keep the test within seconds in a debug build; index-bench measures
/// the full sets.
final class RecallTests: XCTestCase {
  func testSiftSmallRecallAtEf64() throws {
    let base = try TestData.floats("siftsmall/siftsmall_base.fvecs")
    let queries = try TestData.floats("siftsmall/siftsmall_query.fvecs")
    let truth = try TestData.neighbours("siftsmall/siftsmall_groundtruth.ivecs")
    let graph = try buildGraph(base, metric: .l2)
    let scratch = SearchScratch()
    let found = try queries.map {
      try graph.search($0, k: 10, ef: 64, scratch: scratch).map(\.id)
    }
    let r = recall(found, truth, k: 10)
    XCTAssertGreaterThanOrEqual(r, 0.95, "siftsmall recall@10 at ef 64")
    let report = try graph.checkIntegrity()
    XCTAssertEqual(report.problems, [])
    XCTAssertEqual(report.nodeCount, base.count)
  }

  /// MiniLM embeddings of SciFact (384-d, cosine), the distribution vdb holds.
  func testSciFactMiniLMRecallAtEf64() throws {
    let queries = try TestData.floats("scifact-minilm/queries.fvecs", limit: 100)
    let graph = try SharedGraphs.sciFact.get()
    let scratch = SearchScratch()
    var found: [[UInt32]] = []
    var truth: [[UInt32]] = []
    for query in queries {
      found.append(try graph.search(query, k: 10, ef: 64, scratch: scratch).map(\.id))
      truth.append(try graph.exactSearch(query, k: 10).map(\.id))
    }
    XCTAssertGreaterThanOrEqual(recall(found, truth, k: 10), 0.95)
  }

  /// A build on bfloat16 copies (its searches, link selection and re-pruning) finds as
  /// well as a float32 one: the 2,000 SciFact rows, 100 queries.
  func testBuildOnBFloat16CopiesKeepsRecall() throws {
    let base = try TestData.floats("scifact-minilm/base.fvecs", limit: 2_000)
    let queries = try TestData.floats("scifact-minilm/queries.fvecs", limit: 100)
    let float32 = try SharedGraphs.sciFact.get()
    let walked = try buildGraph(base, metric: .cosine, walkVectors: true)
    XCTAssertEqual(try walked.checkIntegrity().problems, [])
    let scratch = SearchScratch()
    var found: (float32: [[UInt32]], walked: [[UInt32]]) = ([], [])
    var truth: [[UInt32]] = []
    for query in queries {
      found.float32.append(try float32.search(query, k: 10, ef: 32, scratch: scratch).map(\.id))
      found.walked.append(try walked.search(query, k: 10, ef: 32, scratch: scratch).map(\.id))
      truth.append(try float32.exactSearch(query, k: 10).map(\.id))
    }
    let (before, after) = (recall(found.float32, truth, k: 10), recall(found.walked, truth, k: 10))
    XCTAssertGreaterThanOrEqual(after, before - 0.01, "recall@10 at ef 32, float32 \(before)")
  }

  func testParallelBuildIsTheSameGraphAsSequential() throws {
    let base = randomVectors(600, dimension: 24, seed: 3)
    let one = try buildGraph(base, metric: .l2, threads: 1)
    let two = try buildGraph(base, metric: .l2, threads: 2)
    XCTAssertEqual(one.storage.entryPoint, two.storage.entryPoint)
    for node in 0..<UInt32(base.count) {
      let level = try XCTUnwrap(one.storage.level(of: node))
      for l in 0...level {
        XCTAssertEqual(
          Array(one.storage.neighbors(of: node, level: l)),
          Array(two.storage.neighbors(of: node, level: l)), "node \(node) layer \(l)")
      }
    }
  }

  func testSearchOnEmptyGraphAndSmallK() throws {
    var graph = HNSWGraph(
      storage: MemoryStorage(dimension: 2, parameters: HNSWParameters()), metric: .l2)
    let scratch = SearchScratch()
    XCTAssertEqual(try graph.search([0, 0], k: 5, scratch: scratch), [])
    try graph.insert(ids: [7, 3, 9], vectors: [0, 0, 1, 0, 5, 0])
    let hits = try graph.search([0.9, 0], k: 2, scratch: scratch)
    XCTAssertEqual(hits.map(\.id), [3, 7])
    XCTAssertEqual(hits[0].distance, 0.01, accuracy: 1e-6)
    XCTAssertEqual(try graph.search([0.9, 0], k: 10, scratch: scratch).map(\.id), [3, 7, 9])
    XCTAssertEqual(try graph.search([0.9, 0], k: 0, scratch: scratch), [])
  }

  func testBadVectorsAreRejectedBeforeAnyChange() throws {
    var graph = HNSWGraph(
      storage: MemoryStorage(dimension: 3, parameters: HNSWParameters()), metric: .cosine)
    XCTAssertThrowsError(try graph.insert(ids: [0, 1], vectors: [1, 0, 0, 0, 1])) {
      XCTAssertEqual($0 as? HNSWError, .dimensionMismatch(expected: 6, got: 5))
    }
    XCTAssertThrowsError(try graph.insert(ids: [0, 1], vectors: [1, 0, 0, 0, .nan, 1])) {
      XCTAssertEqual($0 as? HNSWError, .nonFiniteComponent(index: 1))
    }
    XCTAssertThrowsError(try graph.insert(ids: [0, 1], vectors: [1, 0, 0, 0, 0, 0])) {
      XCTAssertEqual($0 as? HNSWError, .zeroVector)
    }
    XCTAssertThrowsError(try graph.insert(ids: [4, 4], vectors: [1, 0, 0, 0, 1, 0])) {
      XCTAssertEqual($0 as? HNSWError, .duplicateNode(4))
    }
    XCTAssertEqual(graph.storage.nodeCount, 0)
    XCTAssertThrowsError(try graph.search([1, 0], k: 1, scratch: SearchScratch())) {
      XCTAssertEqual("\($0)", "vector has 2 components; the index holds 3-dimensional vectors")
    }
  }

  /// Lengths beyond Float's squares: a cosine vector keeps its direction (not zeros, not
  /// "a zero vector"); a dot or l2 vector whose scores would overflow is refused.
  func testExtremeLengthsKeepTheirDirectionOrAreRefused() throws {
    let graph = HNSWGraph(
      storage: MemoryStorage(dimension: 2, parameters: HNSWParameters()), metric: .cosine)
    for scale: Float in [1e30, 1e20, 1e-20, 1e-40] {
      let unit = try graph.prepare([3 * scale, 4 * scale])
      XCTAssertEqual(unit[0], 0.6, accuracy: 1e-6, "\(scale)")
      XCTAssertEqual(unit[1], 0.8, accuracy: 1e-6, "\(scale)")
    }
    for metric in [Metric.dot, .l2] {
      let other = HNSWGraph(
        storage: MemoryStorage(dimension: 2, parameters: HNSWParameters()), metric: metric)
      XCTAssertEqual(try other.prepare([1e18, 1e18]), [1e18, 1e18])
      XCTAssertThrowsError(try other.prepare([3e38, 3e38])) {
        guard case .normTooLarge? = $0 as? HNSWError else { return XCTFail("\($0)") }
      }
    }
  }

  func testCosineVectorsAreNormalisedAndScoredAsCosine() throws {
    var graph = HNSWGraph(
      storage: MemoryStorage(dimension: 2, parameters: HNSWParameters()), metric: .cosine)
    try graph.insert(ids: [0, 1], vectors: [10, 0, 0, 3])
    let hits = try graph.search([1, 1], k: 2, scratch: SearchScratch())
    XCTAssertEqual(
      graph.metric.similarity(fromDistance: hits[0].distance), Float(0.5).squareRoot(),
      accuracy: 1e-6)
    let stored = graph.storage.vector(of: 1).assumingMemoryBound(to: Float.self)
    XCTAssertEqual(stored[1], 1, accuracy: 1e-6)
  }
}
