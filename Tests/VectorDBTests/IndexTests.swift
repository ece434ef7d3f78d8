import Foundation
import HNSW
import LMDB
import XCTest

@testable import VectorDB

/// The LMDB-backed index: same graph as in memory, persistence, deletes, filters.
final class IndexTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-index-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Random vectors in [-1, 1), deterministic.
  static func vectors(_ count: Int, dimension: Int, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count * dimension).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
    }
  }

  func testLMDBGraphIsTheSameGraphAsInMemory() throws {
    let (count, dimension) = (1_500, 16)
    let vectors = Self.vectors(count, dimension: dimension, seed: 1)
    let ids = (0..<UInt32(count)).map { $0 }
    var parameters = HNSWParameters()
    parameters.efConstruction = 64
    // With bfloat16 copies, as the LMDB table keeps them (layout version 3).
    var memory = HNSWGraph(
      storage: MemoryStorage(dimension: dimension, parameters: parameters, walkVectors: true),
      metric: .l2, parameters: parameters)
    try memory.insert(ids: ids, vectors: vectors, threads: 2)

    let env = try Environment.open(path: path)
    let index = try VectorIndex.create(
      "g", in: env, dimension: dimension, metric: .l2, parameters: parameters)
    // In three transactions, and with two threads, to cross commits and parallel phases.
    for part in 0..<3 {
      let rows = (part * count / 3)..<((part + 1) * count / 3)
      try env.write { txn in
        try index.insert(
          ids: Array(ids[rows]),
          vectors: Array(vectors[rows.lowerBound * dimension..<rows.upperBound * dimension]),
          threads: 2, in: txn)
      }
    }
    // Chunk boundaries depend on how many nodes were linked before each call, so
    // compare search results rather than lists.
    try env.read { txn in
      XCTAssertEqual(try index.count(in: txn), count)
      let report = try index.checkIntegrity(in: txn)
      XCTAssertEqual(report.problems, [])
      XCTAssertEqual(report.unreachable, [])
      let scratch = SearchScratch()
      var agree = 0
      for q in 0..<50 {
        let query = Array(vectors[q * 7 * dimension..<(q * 7 + 1) * dimension])
        let stored = try index.search(query, k: 10, ef: 64, in: txn).map(\.id)
        let inMemory = try memory.search(query, k: 10, ef: 64, scratch: scratch).map(\.id)
        let exact = try index.exactSearch(query, k: 10, in: txn).map(\.id)
        XCTAssertEqual(exact, try memory.exactSearch(query, k: 10).map(\.id))
        agree += Set(stored).intersection(exact).count
        XCTAssertEqual(Set(inMemory).intersection(exact).count >= 8, true)
      }
      XCTAssertGreaterThanOrEqual(Double(agree) / 500, 0.95)
    }

    // One transaction, one call: the same chunks as the in-memory build (both link at
    // most 64 nodes a chunk), so the same lists; whether the changed records reach
    // LMDB once at the end or every few kilobytes (a batch larger than the overlay).
    let single = try VectorIndex.create(
      "single", in: env, dimension: dimension, metric: .l2, parameters: parameters)
    let flushing = try VectorIndex.create(
      "flushing", in: env, dimension: dimension, metric: .l2, parameters: parameters)
    flushing.pendingLimit = 8_192
    for built in [single, flushing] {
      try env.write { txn in try built.insert(ids: ids, vectors: vectors, threads: 2, in: txn) }
    }
    for built in [single, flushing] {
      try env.read { txn in
        let storage = try LMDBGraphStorage(
          transaction: txn, table: built.table, layout: built.layout, cache: ReaderCache())
        XCTAssertEqual(storage.entryPoint, memory.storage.entryPoint)
        for node in ids {
          let level = try XCTUnwrap(try storage.level(of: node))
          XCTAssertEqual(level, memory.storage.level(of: node))
          for l in 0...level {
            XCTAssertEqual(
              Array(try storage.neighbors(of: node, level: l)),
              Array(memory.storage.neighbors(of: node, level: l)), "node \(node) layer \(l)")
          }
        }
      }
    }
  }

  func testClosedAndReopenedIndexGivesTheSameResults() throws {
    let dimension = 24
    let vectors = Self.vectors(600, dimension: dimension, seed: 2)
    let queries = (0..<20).map { Array(Self.vectors(1, dimension: dimension, seed: 100 + $0)) }
    var before: [[Neighbor]] = []
    do {
      let env = try Environment.open(path: path)
      let index = try VectorIndex.create("c.g1", in: env, dimension: dimension, metric: .cosine)
      try env.write { txn in
        try index.insert(ids: (0..<600).map { $0 }, vectors: vectors, in: txn)
      }
      before = try env.read { txn in try queries.map { try index.search($0, k: 5, in: txn) } }
    }
    // Every reference is gone: the environment is closed. Open it again.
    let env = try Environment.open(path: path)
    let index = try VectorIndex.open("c.g1", in: env)
    XCTAssertEqual(index.settings.dimension, dimension)
    XCTAssertEqual(index.settings.metric, .cosine)
    let after = try env.read { txn in try queries.map { try index.search($0, k: 5, in: txn) } }
    XCTAssertEqual(after, before)
    XCTAssertEqual(try env.read { try index.count(in: $0) }, 600)
  }

  func testDeleteRepairsAndRemovesNodesInLMDB() throws {
    let dimension = 8
    let env = try Environment.open(path: path)
    var parameters = HNSWParameters()
    parameters.efConstruction = 64
    let index = try VectorIndex.create(
      "d", in: env, dimension: dimension, metric: .l2, parameters: parameters)
    let vectors = Self.vectors(500, dimension: dimension, seed: 3)
    try env.write { txn in try index.insert(ids: (0..<500).map { $0 }, vectors: vectors, in: txn) }
    // 10 deletes (2%): tombstones only; then 100 more: past 5%, repaired and removed.
    try env.write { txn in XCTAssertEqual(try index.delete(ids: (0..<10).map { $0 }, in: txn), 10) }
    try env.read { txn in
      XCTAssertEqual(try index.count(in: txn), 490)
      XCTAssertFalse(try index.contains(3, in: txn))
      XCTAssertEqual(try index.checkIntegrity(in: txn).deletedCount, 10)
      let hits = try index.search(Array(vectors[3 * dimension..<4 * dimension]), k: 10, in: txn)
      XCTAssertTrue(hits.allSatisfy { $0.id >= 10 })
    }
    try env.write { txn in
      XCTAssertEqual(try index.delete(ids: (10..<110).map { $0 }, in: txn), 100)
    }
    try env.read { txn in
      let report = try index.checkIntegrity(in: txn)
      XCTAssertEqual(report.problems, [])
      XCTAssertEqual(report.unreachable, [])
      XCTAssertEqual(report.deletedCount, 0)
      XCTAssertEqual(report.nodeCount, 390)
      XCTAssertNil(try index.vector(of: 50, in: txn))
    }
    // A removed id can be inserted again.
    try env.write { txn in
      try index.insert(50, vector: Array(vectors[50 * dimension..<51 * dimension]), in: txn)
    }
    try env.read { txn in
      let hits = try index.search(Array(vectors[50 * dimension..<51 * dimension]), k: 1, in: txn)
      XCTAssertEqual(hits.first?.id, 50)
    }
  }

  func testCandidateSearchIsExactForSelectiveFiltersAndOnlyReturnsCandidates() throws {
    let dimension = 16
    let env = try Environment.open(path: path)
    let index = try VectorIndex.create("f", in: env, dimension: dimension, metric: .dot)
    let count = 2_000
    let vectors = Self.vectors(count, dimension: dimension, seed: 4)
    try env.write { txn in
      try index.insert(ids: (0..<UInt32(count)).map { $0 }, vectors: vectors, threads: 2, in: txn)
    }
    try env.read { txn in
      let selective = (0..<UInt32(count)).filter { $0 % 100 == 42 }  // 1%
      let broad = (0..<UInt32(count)).filter { $0 % 2 == 0 }  // 50%
      XCTAssertTrue(try index.prefersExactScan(candidates: selective.count, ef: 64, in: txn))
      XCTAssertFalse(try index.prefersExactScan(candidates: 100_000, ef: 64, in: txn))
      for q in 0..<20 {
        let query = Self.vectors(1, dimension: dimension, seed: 500 + UInt64(q))
        let hits = try index.search(query, k: 10, candidates: selective, in: txn)
        let truth = try index.exactSearch(query, k: 10, candidates: selective, in: txn)
        XCTAssertEqual(hits, truth)
        let broadHits = try index.search(query, k: 10, candidates: broad, in: txn)
        XCTAssertTrue(broadHits.allSatisfy { $0.id % 2 == 0 })
        XCTAssertEqual(broadHits.count, 10)
      }
    }
  }

  /// Layout version 3 keeps a bfloat16 copy of each vector for the walk: the copy is
  /// the rounding of the vector, follows a replaced vector, and a copy that does not
  /// match is reported by `recordFailures` even when its checksum was resealed. A
  /// version-2 index (no copies) is still searched, with float32 throughout.
  func testWalkCopiesFollowTheVectorsAndAMismatchIsReported() throws {
    let (count, dimension) = (300, 24)
    let vectors = Self.vectors(count, dimension: dimension, seed: 5)
    let ids = (0..<UInt32(count)).map { $0 }
    let env = try Environment.open(path: path)
    let index = try VectorIndex.create("w", in: env, dimension: dimension, metric: .l2)
    XCTAssertEqual(index.settings.formatVersion, 3)
    XCTAssertTrue(index.layout.hasWalkVectors)
    try env.write { txn in
      try index.insert(ids: ids, vectors: vectors, in: txn)
      // Replacing a vector replaces its copy.
      try index.insert(7, vector: Array(vectors[0..<dimension]), in: txn)
    }
    let query = Array(vectors[0..<dimension])
    try env.read { txn in
      XCTAssertEqual(try index.recordFailures(in: txn), [])
      let hits = try index.search(query, k: 2, in: txn)
      XCTAssertEqual(Set(hits.map(\.id)), [0, 7])
      XCTAssertEqual(hits.map(\.distance), [0, 0])  // rescored in float32: exact
    }

    // Change one component of node 3's copy and reseal the record: only the copy
    // check can see it.
    try env.write { txn in
      let key = GraphLayout.nodeKey(3)
      var record = Array(try XCTUnwrap(try txn.get(index.table, key: key)))
      record.withUnsafeMutableBytes { raw in
        raw[0] ^= 0x01
        index.layout.seal(raw)
      }
      try txn.put(index.table, key: key, value: record)
    }
    try env.read { txn in
      XCTAssertEqual(
        try index.recordFailures(in: txn),
        ["node 3: its bfloat16 copy is not the rounding of its vector"])
    }

    // A version-2 index: settings say 2, records have no copies, searches use float32.
    let old = try VectorIndex.create("old", in: env, dimension: dimension, metric: .l2)
    var settings = old.settings
    settings.formatVersion = 2
    try env.write { txn in
      try txn.put(old.table, key: GraphLayout.paramsKey, value: try JSONEncoder().encode(settings))
    }
    let reopened = try VectorIndex.open("old", in: env)
    XCTAssertFalse(reopened.layout.hasWalkVectors)
    try env.write { txn in try reopened.insert(ids: ids, vectors: vectors, in: txn) }
    try env.read { txn in
      XCTAssertEqual(try reopened.recordFailures(in: txn), [])
      let record = try XCTUnwrap(try txn.get(reopened.table, key: GraphLayout.nodeKey(0)))
      XCTAssertEqual(record.count, dimension * 4 + 4 + 32 * 4 + 4)
      XCTAssertNil(try txn.get(reopened.table, key: GraphLayout.vectorKey(0)))
      XCTAssertEqual(try reopened.search(query, k: 1, in: txn).first?.id, 0)
      XCTAssertEqual(
        try reopened.vector(of: 5, in: txn), Array(vectors[5 * dimension..<6 * dimension]))
      // Version 3: the node record holds the bfloat16 copy, the vector its own record.
      let walk = try XCTUnwrap(try txn.get(index.table, key: GraphLayout.nodeKey(0)))
      XCTAssertEqual(walk.count, dimension * 2 + 4 + 32 * 4 + 4)
      let vector = try XCTUnwrap(try txn.get(index.table, key: GraphLayout.vectorKey(0)))
      XCTAssertEqual(vector.count, dimension * 4 + 4)
      XCTAssertEqual(
        try index.vector(of: 5, in: txn), Array(vectors[5 * dimension..<6 * dimension]))
    }
  }

  func testErrorsNameTheIndexAndNothingIsWrittenOnBadInput() throws {
    let env = try Environment.open(path: path)
    XCTAssertThrowsError(try VectorIndex.open("missing", in: env)) {
      XCTAssertEqual($0 as? VectorIndexError, .notFound(name: "missing"))
    }
    let index = try VectorIndex.create("e", in: env, dimension: 4, metric: .cosine)
    XCTAssertThrowsError(try VectorIndex.create("e", in: env, dimension: 4, metric: .cosine)) {
      XCTAssertEqual("\($0)", "a vector index named \"e\" already exists")
    }
    XCTAssertThrowsError(try VectorIndex.create("z", in: env, dimension: 0, metric: .l2)) {
      XCTAssertEqual(
        $0 as? VectorIndexError,
        .invalidSettings(name: "z", reason: "dimension 0 is not in 1...65536"))
    }
    XCTAssertThrowsError(
      try env.write { txn in try index.insert(ids: [1, 2], vectors: [1, 0, 0, 0, 1, 0], in: txn) }
    ) {
      XCTAssertEqual($0 as? HNSWError, .dimensionMismatch(expected: 8, got: 6))
    }
    XCTAssertEqual(try env.read { try index.count(in: $0) }, 0)
    XCTAssertThrowsError(try env.read { txn in try index.search([1, 2], k: 3, in: txn) }) {
      XCTAssertEqual($0 as? HNSWError, .dimensionMismatch(expected: 4, got: 2))
    }
  }

  /// Readers on two threads search while a writer inserts: every search sees a whole
  /// snapshot (its results are all stored nodes of that snapshot) and nothing fails.
  func testConcurrentReadersWhileWriting() throws {
    let dimension = 8
    let env = try Environment.open(path: path)
    let index = try VectorIndex.create("r", in: env, dimension: dimension, metric: .l2)
    let vectors = Self.vectors(1_200, dimension: dimension, seed: 6)
    try env.write { txn in
      try index.insert(
        ids: (0..<200).map { $0 }, vectors: Array(vectors[0..<200 * dimension]), in: txn)
    }
    let shared = SharedState()
    let group = DispatchGroup()
    for reader in 0..<2 {
      DispatchQueue.global().async(group: group) {
        var q = reader
        while !shared.isDone {
          do {
            try env.read { txn in
              let count = try index.count(in: txn)
              let hits = try index.search(
                Array(vectors[(q % 200) * dimension..<(q % 200 + 1) * dimension]), k: 5, in: txn)
              if hits.count != min(5, count) || hits.contains(where: { Int($0.id) >= count }) {
                shared.record("snapshot of \(count): \(hits)")
              }
            }
          } catch {
            shared.record("\(error)")
          }
          q += 2
        }
      }
    }
    for batch in 1..<6 {
      let rows = (batch * 200)..<((batch + 1) * 200)
      try env.write { txn in
        try index.insert(
          ids: rows.map { UInt32($0) },
          vectors: Array(vectors[rows.lowerBound * dimension..<rows.upperBound * dimension]),
          in: txn)
      }
    }
    shared.finish()
    group.wait()
    XCTAssertEqual(shared.errors, [])
  }
}

/// A stop flag and an error list shared by test threads.
private final class SharedState: @unchecked Sendable {
  private let lock = NSLock()
  private var done = false
  private var recorded: [String] = []

  var isDone: Bool { lock.withLock { done } }
  var errors: [String] { lock.withLock { recorded } }
  func finish() { lock.withLock { done = true } }
  func record(_ error: String) { lock.withLock { recorded.append(error) } }
}
