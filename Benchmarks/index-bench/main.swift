// index-bench: HNSW build and query figures on TEXMEX files, in the format of
// ../shared/bench/peer_ann.py so the two can be set side by side; with --peer PYTHON
// it runs that script (hnswlib) right after and prints the ratios. --growth N,N,…
// measures how the costs grow on clustered synthetic vectors. See docs/index.md.
//
//   swift run -c release index-bench --metric cosine \
//     --base ../shared/datasets/scifact-minilm/base.fvecs \
//     --query ../shared/datasets/scifact-minilm/queries.fvecs \
//     --gt ../shared/datasets/scifact-minilm/gt.ivecs --peer /work/peer-venv/bin/python

import ArgumentParser
import BenchmarkSupport
import Dispatch
import Foundation
import HNSW
import LMDB
import Tensor
import VectorDB

extension Metric: ExpressibleByArgument {
  public init?(argument: String) { self.init(rawValue: argument == "ip" ? "dot" : argument) }
}

struct Options: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "index-bench",
    discussion: """
      Either --base and --query (with --gt, or the ground truth is computed), or \
      --growth 10000,100000 --work-dir DIR [--dimension 384] [--threads T] [--n-queries 200] \
      [--efs …] [--peer PYTHON]: clustered synthetic vectors, every cost per size, growth \
      exponents, and hnswlib at the largest size.
      """)

  @Option(help: "Base vectors (.fvecs).") var base = ""
  @Option(help: "Query vectors (.fvecs).") var query = ""
  @Option(name: .customLong("gt"), help: "Ground truth (.ivecs); computed when absent.")
  var groundTruth = ""
  @Option(help: "cosine, dot or l2 (l2 for SIFT).") var metric = Metric.cosine
  @Option(name: .customLong("efs"), help: "Query-time ef values.")
  var efList = CommaSeparated([16, 32, 64, 128, 256])
  @Option(name: .customLong("threads"), help: "Build thread counts (one build each).")
  var threadList = CommaSeparated([1, 2])
  @Option(help: "Timed query passes per ef (after one warm-up).") var reps = 3
  @Option(name: .customLong("n-base"), help: "Use the first N base rows (ground truth recomputed).")
  var baseRows: Int?
  @Option(name: .customLong("n-queries"), help: "Use the first N queries.") var queryRows: Int?
  @Option(help: "Neighbours per query.") var k = 10
  @Option(name: .customLong("M"), help: "Links per node (layer 0: twice as many).") var m = 16
  @Option(help: "Candidates while building.") var efConstruction = 200
  @Flag(help: "Also delete 30%, re-insert half, and compare with a fresh build.")
  var churn = false
  @Option(help: "memory or lmdb (lmdb: under --work-dir).") var storage = "memory"
  @Option(help: "Directory for LMDB indexes and growth files.") var workDir = ""
  @Option(
    help: """
      Query the index an earlier lmdb run left in DIR (under --work-dir) instead of \
      building one: the same graph measured again, e.g. alternating with hnswlib's queries.
      """)
  var open = ""
  @Option(name: .customLong("peer"), help: "Then run hnswlib (--peer-script) with this Python.")
  var peerPython: String?
  @Option(help: "The peer's script.") var peerScript = "../shared/bench/peer_ann.py"
  @Option(name: .customLong("growth"), help: "Sizes for the growth run.")
  var growthList: CommaSeparated<Int>?
  @Option(help: "Dimension of the growth run's vectors.") var dimension = 384
  @Option(help: "Vectors per write transaction (lmdb).") var batch = 10_000

  var efs: [Int] {
    get { efList.values }
    set { efList.values = newValue }
  }
  var threads: [Int] {
    get { threadList.values }
    set { threadList.values = newValue }
  }
  var growth: [Int] { growthList?.values ?? [] }
  var baseLimit: Int { baseRows ?? .max }
  var queryLimit: Int { queryRows ?? .max }
  var parameters: HNSWParameters {
    var parameters = HNSWParameters()
    parameters.m = m
    parameters.mMax0 = 2 * m
    parameters.efConstruction = efConstruction
    return parameters
  }

  mutating func validate() throws {
    guard !growth.isEmpty || (!base.isEmpty && !query.isEmpty) else {
      throw ValidationError("--base and --query are required")
    }
    if !open.isEmpty {
      guard threads.count == 1, peerPython == nil else {
        throw ValidationError("--open queries one existing index: one --threads value, no --peer")
      }
      storage = "lmdb"
    }
    try parameters.validate()
  }
}

func seconds(_ duration: Duration) -> Double {
  Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

func formatRange(_ values: [Double], _ digits: Int = 0) -> String {
  let f = "%.\(digits)f"
  return "\(String(format: f, median(values))) [\(String(format: f, values.min() ?? .nan))-"
    + "\(String(format: f, values.max() ?? .nan))]"
}

/// Exact top-k rows of `base` (row-major, `dimension` floats a row) for every query
/// (ids), by brute force on 2 threads.
func exactTopK(
  base: [Float], dimension: Int, queries: [[Float]], k: Int, metric: Metric,
  live: [Bool]? = nil
) throws -> [[UInt32]] {
  let storage = MemoryStorage(dimension: dimension, parameters: HNSWParameters())
  let graph = HNSWGraph(storage: storage, metric: metric)
  let count = base.count / dimension
  // Only the vectors are needed: store them without linking.
  var prepared = base
  if metric == .cosine {
    for row in 0..<count {
      var v = Array(base[row * dimension..<(row + 1) * dimension])
      Distance.normalize(&v)
      prepared.replaceSubrange(row * dimension..<(row + 1) * dimension, with: v)
    }
  }
  try prepared.withUnsafeBytes { rows in
    for row in 0..<count where live?[row] ?? true {
      try graph.storage.addNode(
        UInt32(row), level: 0, vector: rows.baseAddress! + row * dimension * 4)
    }
  }
  var result = [[UInt32]](repeating: [], count: queries.count)
  let lock = NSLock()
  DispatchQueue.concurrentPerform(iterations: 2) { worker in
    for q in stride(from: worker, to: queries.count, by: 2) {
      let hits = (try? graph.exactSearch(queries[q], k: k)) ?? []
      lock.lock()
      result[q] = hits.map(\.id)
      lock.unlock()
    }
  }
  return result
}

func recall(_ found: [[UInt32]], _ truth: [[UInt32]], k: Int) -> Double {
  var hits = 0
  for (f, t) in zip(found, truth) {
    hits += Set(f.prefix(k)).intersection(t.prefix(k)).count
  }
  return Double(hits) / Double(k * found.count)
}

struct QueryRow {
  var ef: Int
  var recall: Double
  var qps: [Double]
  /// Queries per second of the querying thread's CPU time: what a busy machine's
  /// preemptions do not change (they do change the caches).
  var cpuQPS: [Double]
  var p50: Double
  var p99: Double
}

/// One built index, whichever storage it lives in.
protocol BenchIndex {
  /// Searches one query (as read from the file) on the calling thread.
  func search(_ query: [Float], k: Int, ef: Int) throws -> [Neighbor]
  /// Deletes nodes (repairing the graph as the index does by itself).
  func delete(ids: [UInt32]) throws
  /// Inserts rows of `vectors` under `ids`.
  func insert(ids: [UInt32], vectors: [Float]) throws
  /// The graph's integrity report.
  func integrity() throws -> IntegrityReport
}

/// The in-memory graph, searched with queries prepared once up front (as hnswlib's
/// batch call receives them).
final class MemoryIndex: BenchIndex {
  var graph: HNSWGraph<MemoryStorage>
  let scratch = SearchScratch()

  init(_ graph: HNSWGraph<MemoryStorage>) { self.graph = graph }

  func search(_ query: [Float], k: Int, ef: Int) throws -> [Neighbor] {
    try query.withUnsafeBytes {
      try graph.search(prepared: $0.baseAddress!, k: k, ef: ef, scratch: scratch)
    }
  }

  func delete(ids: [UInt32]) throws { try graph.delete(ids: ids) }
  func insert(ids: [UInt32], vectors: [Float]) throws {
    try graph.insert(ids: ids, vectors: vectors)
  }
  func integrity() throws -> IntegrityReport { try graph.checkIntegrity() }
}

/// The LMDB index: each query in its own read transaction, as vdb runs them.
final class StoredIndex: BenchIndex {
  let environment: Environment
  let index: VectorIndex

  init(environment: Environment, index: VectorIndex) {
    self.environment = environment
    self.index = index
  }

  func search(_ query: [Float], k: Int, ef: Int) throws -> [Neighbor] {
    try environment.read { txn in try index.search(query, k: k, ef: ef, in: txn) }
  }

  func delete(ids: [UInt32]) throws {
    try environment.write { txn in _ = try index.delete(ids: ids, in: txn) }
  }
  func insert(ids: [UInt32], vectors: [Float]) throws {
    try environment.write { txn in try index.insert(ids: ids, vectors: vectors, in: txn) }
  }
  func integrity() throws -> IntegrityReport {
    try environment.read { txn in try index.checkIntegrity(in: txn) }
  }
}

/// Inserts `count` rows of `vectors` under ids 0..<count, `batch` rows per write
/// transaction (as an import does), and returns the seconds spent in the commits (LMDB
/// writing the dirty pages and syncing them); the rest of the time is the inserts.
func buildStored(
  _ index: VectorIndex, in environment: Environment, vectors: [Float], dimension: Int,
  count: Int, threads: Int, batch: Int
) throws -> Double {
  let clock = ContinuousClock()
  var committing = 0.0
  for first in stride(from: 0, to: count, by: batch) {
    let rows = first..<min(first + batch, count)
    var inserted = clock.now
    try environment.write { txn in
      try index.insert(
        ids: rows.map { UInt32($0) },
        vectors: Array(vectors[rows.lowerBound * dimension..<rows.upperBound * dimension]),
        threads: threads, in: txn)
      inserted = clock.now
    }
    committing += seconds(clock.now - inserted)
  }
  return committing
}

/// Runs every query `reps + 1` times per ef (the first pass is a warm-up) on one thread.
func measureQueries(
  _ index: BenchIndex, queries: [[Float]], truth: [[UInt32]], options: Options
) throws -> [QueryRow] {
  let clock = ContinuousClock()
  let prepared = queries.map { query in
    var query = query
    if options.metric == .cosine { Distance.normalize(&query) }
    return query
  }
  var rows: [QueryRow] = []
  for ef in options.efs {
    var found = [[UInt32]](repeating: [], count: queries.count)
    var qps: [Double] = []
    var cpuQPS: [Double] = []
    var latencies: [Double] = []
    for pass in 0...options.reps {
      var passLatencies: [Double] = []
      passLatencies.reserveCapacity(queries.count)
      let passStart = clock.now
      let cpuStart = threadCPUSeconds()
      for q in prepared.indices {
        let start = clock.now
        let hits = try index.search(prepared[q], k: options.k, ef: ef)
        passLatencies.append(seconds(clock.now - start))
        if pass == 0 { found[q] = hits.map(\.id) }
      }
      if pass > 0 {
        qps.append(Double(queries.count) / seconds(clock.now - passStart))
        cpuQPS.append(Double(queries.count) / (threadCPUSeconds() - cpuStart))
        latencies += passLatencies
      }
    }
    latencies.sort()
    rows.append(
      QueryRow(
        ef: ef, recall: recall(found, truth, k: options.k), qps: qps, cpuQPS: cpuQPS,
        p50: percentile(latencies, 0.5) * 1000, p99: percentile(latencies, 0.99) * 1000))
  }
  return rows
}

/// q/s at a recall target, interpolated linearly between the neighbouring ef values
/// whose recalls bracket it (as peer_ann.py does); nil when no pair brackets it.
func interpolatedQPS(_ rows: [QueryRow], target: Double) -> Double? {
  for (a, b) in zip(rows, rows.dropFirst()) where a.recall < target && b.recall >= target {
    let q0 = median(a.qps)
    let q1 = median(b.qps)
    return q0 + (target - a.recall) * (q1 - q0) / (b.recall - a.recall)
  }
  return nil
}

func qpsAtRecall(_ rows: [QueryRow], target: Double) -> String {
  for (a, b) in zip(rows, rows.dropFirst()) where a.recall < target && b.recall >= target {
    return String(
      format: "%.0f (between ef %d and %d)", interpolatedQPS(rows, target: target)!, a.ef, b.ef)
  }
  if let first = rows.first, first.recall >= target {
    return "recall \(String(format: "%.4f", first.recall)) ≥ target already at ef \(first.ef)"
  }
  return "target not reached"
}

func printQueries(_ rows: [QueryRow], title: String) {
  print("queries (\(title), 1 thread; q/s median [min-max]; CPU q/s: per CPU second):")
  print("  ef    recall@10  q/s                      CPU q/s                  p50 ms  p99 ms")
  for row in rows {
    print(
      String(
        format: "  %-5d %.4f     %-24@ %-24@ %.3f   %.3f", row.ef, row.recall,
        formatRange(row.qps) as NSString, formatRange(row.cpuQPS) as NSString, row.p50, row.p99))
  }
  print("  q/s at recall@10 = 0.95: \(qpsAtRecall(rows, target: 0.95))")
  var cpuRows = rows
  for i in cpuRows.indices { cpuRows[i].qps = cpuRows[i].cpuQPS }
  print("  CPU q/s at recall@10 = 0.95: \(qpsAtRecall(cpuRows, target: 0.95))")
}

func run() throws {
  let options = Options.parseOrExit()
  if !options.workDir.isEmpty {
    try FileManager.default.createDirectory(
      atPath: options.workDir, withIntermediateDirectories: true)
  }
  if !options.growth.isEmpty { return try runGrowth(options) }
  let clock = ContinuousClock()
  let (base, dimension) = try VectorFile.read(options.base, limit: options.baseLimit)
  let queries = try VectorFile.read(options.query, limit: options.queryLimit).rows
  let elements = Array(base.joined())
  var truth: [[UInt32]]
  if options.groundTruth.isEmpty || options.baseLimit != .max {
    FileHandle.standardError.write("computing exact ground truth...\n".data(using: .utf8)!)
    truth = try exactTopK(
      base: elements, dimension: dimension, queries: queries, k: options.k,
      metric: options.metric)
  } else {
    truth = try VectorFile.readIntegers(options.groundTruth, limit: options.queryLimit).rows.map {
      $0.map { UInt32($0) }
    }
  }
  let ids = (0..<UInt32(base.count)).map { $0 }
  print(
    "index-bench: \(base.count) × \(dimension) base, \(queries.count) queries, "
      + "metric \(options.metric), k \(options.k), M \(options.parameters.m), "
      + "efConstruction \(options.parameters.efConstruction), storage \(options.storage)")
  print("load average at start: \(loadAverage())")

  var builds: [(threads: Int, index: BenchIndex)] = []
  var buildSeconds: [Int: Double] = [:]
  for threads in options.threads {
    let start = clock.now
    let index: BenchIndex
    let report: IntegrityReport
    var storageNote = ""
    var commitSeconds = 0.0
    if options.storage == "lmdb" {
      let directory =
        !options.open.isEmpty
        ? options.open
        : (options.workDir.isEmpty ? NSTemporaryDirectory() : options.workDir + "/")
          + "index-bench-\(threads)-\(UUID().uuidString)"
      defer {
        if options.workDir.isEmpty && options.open.isEmpty {
          try? FileManager.default.removeItem(atPath: directory)
        }
      }
      if options.open.isEmpty {
        let environment = try Environment.open(path: directory)
        let stored = try VectorIndex.create(
          "bench", in: environment, dimension: dimension, metric: options.metric,
          parameters: options.parameters)
        commitSeconds = try buildStored(
          stored, in: environment, vectors: elements, dimension: dimension,
          count: base.count, threads: threads, batch: options.batch)
      }
      let buildTime = seconds(clock.now - start)
      buildSeconds[threads] = buildTime
      // Reopen from disk (every reference above is gone, so the environment closed).
      let openStart = clock.now
      let environment = try Environment.open(path: directory)
      let stored = try VectorIndex.open("bench", in: environment)
      let first = try environment.read { txn in
        try stored.search(queries[0], k: options.k, ef: 64, in: txn)
      }
      let openTime = seconds(clock.now - openStart)
      _ = first
      report = try environment.read { try stored.checkIntegrity(in: $0) }
      let tableBytes = try environment.read { try stored.byteSize(in: $0) }
      let fileBytes = environment.fileSize()
      storageNote = String(
        format:
          "; commits %.2f s of it; LMDB table %.1f MiB = %.0f bytes/vector (raw vector %d), data.mdb %.1f MiB; "
          + "reopen + first query %.1f ms",
        commitSeconds, Double(tableBytes) / 1_048_576, Double(tableBytes) / Double(base.count),
        dimension * 4,
        Double(fileBytes) / 1_048_576, openTime * 1000)
      index = StoredIndex(environment: environment, index: stored)
      print(
        String(
          format: "build, %d thread(s): %.2f s (%.0f inserts/s)", threads, buildTime,
          Double(base.count) / buildTime), terminator: "")
    } else {
      var graph = HNSWGraph(
        storage: MemoryStorage(dimension: dimension, parameters: options.parameters),
        metric: options.metric, parameters: options.parameters)
      try graph.insert(ids: ids, vectors: elements, threads: threads)
      let elapsed = seconds(clock.now - start)
      buildSeconds[threads] = elapsed
      report = try graph.checkIntegrity()
      index = MemoryIndex(graph)
      print(
        String(
          format: "build, %d thread(s): %.2f s (%.0f inserts/s)", threads, elapsed,
          Double(base.count) / elapsed), terminator: "")
    }
    print(
      "; max level \(report.maxLevel), \(report.unreachable.count) unreachable, "
        + "\(report.problems.count) problems\(storageNote)")
    builds.append((threads, index))
  }

  var qpsAtTarget: [Int: Double] = [:]
  for (threads, index) in builds {
    let rows = try measureQueries(index, queries: queries, truth: truth, options: options)
    printQueries(rows, title: "\(threads)-thread build")
    qpsAtTarget[threads] = interpolatedQPS(rows, target: 0.95)
  }
  if let python = options.peerPython {
    let peer = try runPeer(
      python: python, script: options.peerScript, base: options.base, query: options.query,
      groundTruth: options.groundTruth, options: options)
    printComparison(vdbBuild: buildSeconds, vdbQPS: qpsAtTarget, peer: peer, k: options.k)
  }

  if options.churn, let index = builds.first?.index {
    var rng = SplitMix64(seed: 42)
    let deleted = ids.shuffled(using: &rng).prefix(base.count * 3 / 10)
    let reinserted = Array(deleted.prefix(deleted.count / 2))
    var start = clock.now
    try index.delete(ids: Array(deleted))
    let deleteTime = seconds(clock.now - start)
    start = clock.now
    let reinsertVectors = reinserted.flatMap { base[Int($0)] }
    try index.insert(ids: reinserted, vectors: reinsertVectors)
    let reinsertTime = seconds(clock.now - start)
    var live = [Bool](repeating: true, count: base.count)
    for id in deleted { live[Int(id)] = false }
    for id in reinserted { live[Int(id)] = true }
    let liveTruth = try exactTopK(
      base: elements, dimension: dimension, queries: queries, k: options.k,
      metric: options.metric, live: live)
    var fresh = HNSWGraph(
      storage: MemoryStorage(dimension: dimension, parameters: options.parameters),
      metric: options.metric, parameters: options.parameters)
    let liveIDs = ids.filter { live[Int($0)] }
    try fresh.insert(
      ids: liveIDs, vectors: liveIDs.flatMap { base[Int($0)] }, threads: 2)
    var churnOptions = options
    churnOptions.efs = [64]
    churnOptions.reps = 1
    let churned = try measureQueries(
      index, queries: queries, truth: liveTruth, options: churnOptions)[0]
    let baseline = try measureQueries(
      MemoryIndex(fresh), queries: queries, truth: liveTruth, options: churnOptions)[0]
    let report = try index.integrity()
    print(
      String(
        format:
          "churn (fresh build in memory): deleted %d (%.2f s incl. repair), re-inserted %d (%.2f s); recall@10 at ef 64: "
          + "churned %.4f, fresh %.4f, difference %+.4f; %d unreachable, %d problems",
        deleted.count, deleteTime, reinserted.count, reinsertTime, churned.recall,
        baseline.recall, churned.recall - baseline.recall, report.unreachable.count,
        report.problems.count))
  }
}

do {
  try run()
} catch {
  log("index-bench: \(error)")
  exit(1)
}
