// Query latency while another process imports: does a logged query wait for a writer?
//
//   swift run -c release log-bench [--seconds S] [--rounds R] [--documents N] [--dir PATH]
//
// One collection of N given 64-d vectors is queried by vector (k 10, ef 64) from this
// process while a child process (this executable, `--importer`) upserts 1,000-document
// batches into another collection, each one durable transaction holding the writer
// lock for its whole HNSW insert. Three modes take turns for S seconds each, R rounds:
//   off    queries with `log: false`
//   on     logged queries (entries queued, committed in groups in the background)
//   sync   logged queries, each followed by `flushLog()`: a durable log write per
//          query that waits for the writer lock, as every query did before the queue
import ArgumentParser
import BenchmarkSupport
import Foundation
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "log-bench")
  @Option(help: "Seconds per mode and round.") var seconds = 3.0
  @Option(help: "Rounds (each runs every mode).") var rounds = 3
  @Option(help: "Vectors in the queried collection.") var documents = 10_000
  @Option(help: "Database directory (default: a fresh temporary one).")
  var dir = NSTemporaryDirectory() + "vdb-log-bench-\(getpid())"
  @Flag(help: .private) var importer = false
}
let arguments = Arguments.parseOrExit()
let (seconds, rounds, documents, directory) =
  (arguments.seconds, arguments.rounds, arguments.documents, arguments.dir)
let dimension = 64

var generator = SystemRandomNumberGenerator()
func randomVectors(_ count: Int) -> [[Float]] {
  (0..<count).map { _ in
    (0..<dimension).map { _ in Float.random(in: -1...1, using: &generator) }
  }
}

/// The child: imports batches of 1,000 into "load" until killed.
func runImporter() throws -> Never {
  let load = try Database(path: directory).collection(
    "load", options: .vectors(dimension: dimension, metric: .cosine))
  var next = 0
  while true {
    let ids = (next..<next + 1000).map { "load-\($0)" }
    try load.upsert(ids.map { Document(id: $0, text: "") }, vectors: randomVectors(ids.count))
    next += 1000
  }
}

if arguments.importer { try runImporter() }

try? FileManager.default.removeItem(atPath: directory)
defer { try? FileManager.default.removeItem(atPath: directory) }
let db = try Database(path: directory)
let queried = try db.collection("queried", options: .vectors(dimension: dimension, metric: .cosine))
for first in stride(from: 0, to: documents, by: 1000) {
  let count = min(1000, documents - first)
  try queried.upsert(
    (first..<first + count).map { Document(id: "doc-\($0)", text: "") },
    vectors: randomVectors(count))
}

let child = Process()
child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
child.arguments = ["--importer", "--dir", directory]
child.standardOutput = FileHandle.nullDevice
try child.run()
defer { child.terminate() }
// Committed import batches, read from the database (each is 1,000 documents).
let load = try db.collection(
  "load", options: .vectors(dimension: dimension, metric: .cosine))
func batches() throws -> Int { try load.count() / 1000 }
while try batches() == 0 { usleep(10_000) }

enum Mode: String, CaseIterable { case off, on, sync }
var latencies: [Mode: [Double]] = [:]
var elapsed: [Mode: Double] = [:]
var batchesDuring: [Mode: Int] = [:]
/// This process's CPU time per mode: the queries and the log writer's thread (the
/// importer is another process). On a loaded machine throughput also measures the
/// neighbours; CPU per query is what logging costs.
var cpu: [Mode: Double] = [:]
let queries = randomVectors(1000)
for _ in 0..<rounds {
  for mode in Mode.allCases {
    let start = DispatchTime.now().uptimeNanoseconds
    let batchesBefore = try batches()
    let cpuBefore = cpuSeconds()
    var index = 0
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
      let t0 = DispatchTime.now().uptimeNanoseconds
      _ = try queried.query(vector: queries[index % queries.count], k: 10, log: mode != .off)
      if mode == .sync { try db.flushLog() }
      latencies[mode, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3)
      index += 1
    }
    // The clock stops before the queue drains: the drain waits for the import batch
    // that holds the writer lock, which no query of this mode waited for. (Entries
    // queued while the log writer itself waits for that lock are encoded during the
    // drain: one import batch's worth of queries, a small share of the mode's time.)
    elapsed[mode, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    try db.flushLog()  // the queue drains before the next mode's clock starts
    cpu[mode, default: 0] += cpuSeconds() - cpuBefore
    batchesDuring[mode, default: 0] += try batches() - batchesBefore
  }
}

print(
  "log-bench: \(documents) vectors of \(dimension)-d queried (k 10, ef 64) while another process"
    + " upserts 1,000-vector batches; \(rounds) rounds of \(seconds) s per mode")
print("cpu flags: \(cpuFlags()); load average \(loadAverage())")
print("mode  queries   q/s      p50 µs   p99 µs   max ms  CPU µs/query  import batches")
var figures: [Mode: (p50: Double, p99: Double, rate: Double, cpu: Double)] = [:]
for mode in Mode.allCases {
  let sorted = (latencies[mode] ?? []).sorted()
  let rate = Double(sorted.count) / (elapsed[mode] ?? 1)
  let cpuPerQuery = (cpu[mode] ?? 0) * 1e6 / Double(max(1, sorted.count))
  figures[mode] = (percentile(sorted, 0.5), percentile(sorted, 0.99), rate, cpuPerQuery)
  print(
    mode.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
      + String(
        format: "%7d  %7.0f  %7.1f  %7.1f  %7.1f  %12.1f  %d", sorted.count, rate,
        percentile(sorted, 0.5), percentile(sorted, 0.99), (sorted.last ?? 0) / 1e3,
        cpuPerQuery, batchesDuring[mode] ?? 0))
}
if let on = figures[.on], let off = figures[.off], let sync = figures[.sync] {
  print(
    String(
      format:
        "logging on / off: p99 %.2fx, throughput %.2fx, CPU per query %.2fx;"
        + "  sync (before) / off: p99 %.1fx",
      on.p99 / off.p99, on.rate / off.rate, on.cpu / off.cpu, sync.p99 / off.p99))
}
