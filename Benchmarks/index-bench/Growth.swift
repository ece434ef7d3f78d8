import ArgumentParser
import BenchmarkSupport
import Foundation
import HNSW
import LMDB
import Tensor
import VectorDB

/// `--growth 10000,100000`: how each cost grows with the number of vectors, on
/// clustered synthetic unit vectors (`--dimension`, default 384) with exact ground
/// truth for a query sample. Each size is a prefix of the same data, built in LMDB in
/// write transactions of `--batch` (with the first `--threads` value), reopened and
/// queried.
/// With `--peer`, hnswlib builds and queries the largest size from the same files.
struct GrowthPoint {
  var count: Int
  var buildSeconds: Double
  var tableBytes: Double
  var fileBytes: Double
  var openMilliseconds: Double
  /// Resident memory added by reopening and querying: heap, and pages of the map.
  var anonymousMiB: Double
  var mappedMiB: Double
  var qps: Double?
  var p99: Double
}

/// Clustered unit vectors: 1,024 centres, 16 sub-centres each, then per-vector noise
/// (relative norms 1, 0.5, 0.7), so that neighbourhoods have structure as real
/// embeddings do rather than the near-equidistance of uniform random vectors.
func clusteredVectors(count: Int, dimension: Int, seed: UInt64) -> [Float] {
  var centres = SplitMix64(seed: 7)
  func gaussian(_ rng: inout SplitMix64, scale: Float) -> Float {
    // Box–Muller, one of the pair.
    let u = max(Double(rng.next() >> 11) / Double(1 << 53), .leastNonzeroMagnitude)
    let v = Double(rng.next() >> 11) / Double(1 << 53)
    return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v)) * scale
  }
  let (clusters, subclusters) = (1024, 16)
  let unit = 1 / Float(dimension).squareRoot()
  let centre = (0..<clusters * dimension).map { _ in gaussian(&centres, scale: unit) }
  let sub = (0..<clusters * subclusters * dimension).map { _ in
    gaussian(&centres, scale: 0.5 * unit)
  }
  var rng = SplitMix64(seed: seed)
  var out = [Float](repeating: 0, count: count * dimension)
  for row in 0..<count {
    let c = Int(rng.next() % UInt64(clusters))
    let s = c * subclusters + Int(rng.next() % UInt64(subclusters))
    var v = (0..<dimension).map {
      centre[c * dimension + $0] + sub[s * dimension + $0] + gaussian(&rng, scale: 0.7 * unit)
    }
    Distance.normalize(&v)
    out.replaceSubrange(row * dimension..<(row + 1) * dimension, with: v)
  }
  return out
}

func runGrowth(_ options: Options) throws {
  let sizes = options.growth.sorted()
  guard let largest = sizes.last, !options.workDir.isEmpty else {
    throw ValidationError("--growth needs sizes and --work-dir")
  }
  let dimension = options.dimension
  let threads = options.threads.first ?? 1
  let queryCount = min(options.queryLimit, 200)
  let clock = ContinuousClock()
  print(
    "index-bench --growth: clustered synthetic unit vectors, \(dimension)-d, cosine, "
      + "\(queryCount) queries, M \(options.parameters.m), efConstruction "
      + "\(options.parameters.efConstruction), build threads \(threads), load average "
      + "\(loadAverage())")
  let all = clusteredVectors(count: largest, dimension: dimension, seed: 1)
  let queryElements = clusteredVectors(count: queryCount, dimension: dimension, seed: 2)
  let queries = (0..<queryCount).map {
    Array(queryElements[$0 * dimension..<($0 + 1) * dimension])
  }
  var points: [GrowthPoint] = []
  var largestBuildSeconds = 0.0
  for count in sizes {
    let truth = try exactTopK(
      base: Array(all[0..<count * dimension]), dimension: dimension, queries: queries,
      k: options.k, metric: .cosine)
    let directory = options.workDir + "/growth-\(count)-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let start = clock.now
    var commitSeconds = 0.0
    do {
      let environment = try Environment.open(path: directory)
      let index = try VectorIndex.create(
        "growth", in: environment, dimension: dimension, metric: .cosine,
        parameters: options.parameters)
      commitSeconds = try buildStored(
        index, in: environment, vectors: all, dimension: dimension, count: count,
        threads: threads, batch: options.batch)
    }
    let buildSeconds = seconds(clock.now - start)
    let (anonymous, mapped) = (statusMiB("RssAnon"), statusMiB("RssFile"))
    let openStart = clock.now
    let environment = try Environment.open(path: directory)
    let index = try VectorIndex.open("growth", in: environment)
    _ = try environment.read { txn in
      try index.search(queries[0], k: options.k, ef: 64, in: txn)
    }
    let openMilliseconds = seconds(clock.now - openStart) * 1000
    let rows = try measureQueries(
      StoredIndex(environment: environment, index: index), queries: queries, truth: truth,
      options: options)
    let reaching = rows.first { $0.recall >= 0.95 } ?? rows.last!
    let point = GrowthPoint(
      count: count, buildSeconds: buildSeconds,
      tableBytes: Double(try environment.read { try index.byteSize(in: $0) }),
      fileBytes: Double(environment.fileSize()), openMilliseconds: openMilliseconds,
      anonymousMiB: statusMiB("RssAnon") - anonymous, mappedMiB: statusMiB("RssFile") - mapped,
      qps: interpolatedQPS(rows, target: 0.95), p99: reaching.p99)
    print(
      String(
        format:
          "  %9d vectors: build %.2f s (commits %.2f s), table %.1f MiB (%.0f B/vector), data.mdb %.1f MiB, "
          + "open + first query %.2f ms, RSS +%.1f MiB heap +%.1f MiB map; q/s at 0.95 %@, "
          + "p99 %.3f ms (ef %d, recall %.4f)",
        count, buildSeconds, commitSeconds, point.tableBytes / 1_048_576,
        point.tableBytes / Double(count),
        point.fileBytes / 1_048_576, openMilliseconds, point.anonymousMiB, point.mappedMiB,
        point.qps.map { String(format: "%.0f", $0) } ?? "n/a", point.p99, reaching.ef,
        reaching.recall))
    points.append(point)
    if count == largest {
      largestBuildSeconds = buildSeconds
      if options.peerPython != nil {
        let baseRows = (0..<count).map { Array(all[$0 * dimension..<($0 + 1) * dimension]) }
        try VectorFile.fvecsBytes(baseRows).write(
          to: URL(fileURLWithPath: options.workDir + "/growth-base.fvecs"))
        try VectorFile.fvecsBytes(queries).write(
          to: URL(fileURLWithPath: options.workDir + "/growth-queries.fvecs"))
        try VectorFile.ivecsBytes(truth.map { $0.map { Int32($0) } }).write(
          to: URL(fileURLWithPath: options.workDir + "/growth-gt.ivecs"))
      }
    }
  }
  printExponents(points)
  if let python = options.peerPython, let last = points.last {
    var peerOptions = options
    peerOptions.threads = [threads]
    peerOptions.metric = .cosine
    let peer = try runPeer(
      python: python, script: options.peerScript, base: options.workDir + "/growth-base.fvecs",
      query: options.workDir + "/growth-queries.fvecs",
      groundTruth: options.workDir + "/growth-gt.ivecs", options: peerOptions)
    print("largest size, \(last.count) vectors:")
    printComparison(
      vdbBuild: [threads: largestBuildSeconds], vdbQPS: last.qps.map { [threads: $0] } ?? [:],
      peer: peer, k: options.k)
  }
}

/// The growth exponent b of each cost (cost ∝ nᵇ) between consecutive sizes.
func printExponents(_ points: [GrowthPoint]) {
  print("growth exponents (cost ∝ n^b, between consecutive sizes):")
  for (a, b) in zip(points, points.dropFirst()) {
    let span = log(Double(b.count) / Double(a.count))
    func exponent(_ x: Double?, _ y: Double?) -> String {
      guard let x, let y, x > 0, y > 0 else { return "n/a" }
      return String(format: "%.2f", log(y / x) / span)
    }
    print(
      "  \(a.count) → \(b.count): build \(exponent(a.buildSeconds, b.buildSeconds)), "
        + "bytes \(exponent(a.tableBytes, b.tableBytes)), "
        + "open \(exponent(a.openMilliseconds, b.openMilliseconds)), "
        + "RSS map \(exponent(a.mappedMiB, b.mappedMiB)), "
        + "q/s at 0.95 \(exponent(a.qps, b.qps)), p99 \(exponent(a.p99, b.p99))")
  }
}
