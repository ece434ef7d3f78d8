import HNSW
import Tensor
import XCTest

import enum VectorDB.VectorFile

/// The shared data sets, found from this file's path: the checkout sits beside
/// `shared/`.
enum TestData {
  static let datasets = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/datasets").path

  static func path(_ relative: String) throws -> String {
    let path = datasets + "/" + relative
    guard FileManager.default.fileExists(atPath: path) else {
      throw MissingData(path: path)
    }
    return path
  }

  /// The rows of a `.fvecs` file (the first `limit`).
  static func floats(_ relative: String, limit: Int = .max) throws -> [[Float]] {
    try VectorFile.read(try path(relative), limit: limit).rows
  }

  /// The rows of an `.ivecs` file (ground truth: row numbers of the nearest neighbours).
  static func neighbours(_ relative: String) throws -> [[UInt32]] {
    try VectorFile.readIntegers(try path(relative)).rows.map { $0.map { UInt32($0) } }
  }
}

/// Recall@k of `found` against `truth`, averaged over queries.
func recall(_ found: [[UInt32]], _ truth: [[UInt32]], k: Int) -> Double {
  var hits = 0
  for (f, t) in zip(found, truth) { hits += Set(f.prefix(k)).intersection(t.prefix(k)).count }
  return Double(hits) / Double(k * max(1, found.count))
}

/// The parameters of the test graphs: the defaults but efConstruction 100, which halves
/// build time in debug builds (where distances run unoptimised) and still gives
/// recall@10 ≥ 0.95 at ef 64 on these sets.
var testParameters: HNSWParameters {
  var parameters = HNSWParameters()
  parameters.efConstruction = 100
  return parameters
}

/// Builds an in-memory graph of the rows of `base` (ids 0, 1, …; at least one row), with
/// bfloat16 walk vectors if asked.
func buildGraph(
  _ base: [[Float]], metric: Metric, parameters: HNSWParameters = testParameters,
  threads: Int = 2, walkVectors: Bool = false
) throws -> HNSWGraph<MemoryStorage> {
  var graph = HNSWGraph(
    storage: MemoryStorage(
      dimension: base[0].count, parameters: parameters, walkVectors: walkVectors),
    metric: metric, parameters: parameters)
  try graph.insert(
    ids: (0..<UInt32(base.count)).map { $0 }, vectors: Array(base.joined()), threads: threads)
  return graph
}

/// `count` random vectors of `dimension` components in [-1, 1).
func randomVectors(_ count: Int, dimension: Int, seed: UInt64) -> [[Float]] {
  var rng = SplitMix64(seed: seed)
  return (0..<count).map { _ in
    (0..<dimension).map { _ in Float.random(in: -1..<1, using: &rng) }
  }
}

/// Graphs several tests read, built once per test run.
enum SharedGraphs {
  /// The first 2,000 rows of scifact-minilm, cosine, built with ``testParameters``.
  static let sciFact = Result {
    try buildGraph(TestData.floats("scifact-minilm/base.fvecs", limit: 2_000), metric: .cosine)
  }
}

/// A data set file of ../shared/datasets is missing: the test fails (it cannot pass
/// without its data).
struct MissingData: Error, CustomStringConvertible {
  var path: String
  var description: String {
    "data set file \(path) is missing (the checkout must sit beside shared/)"
  }
}
