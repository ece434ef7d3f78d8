// Durable upsert throughput and get latency of the document store, and the cost of
// the weights checksum checked at every model load.
//
//   swift run -c release storage-bench [--documents N] [--batch B] [--dir PATH] [--no-text-index]
//   swift run -c release storage-bench --model-load [RUNS]   (see ModelLoad.swift)
//   storage-bench --model-load-child DIR                     (one child of --model-load)
//
// Documents are ~1 KB of text with a small metadata object; every batch is one
// durable (fsync'ed) write transaction, as users get by default. The full-text index
// is kept in the same transactions unless --no-text-index.
import ArgumentParser
import BenchmarkSupport
import CKernels
import Foundation
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "storage-bench",
    abstract: "Durable upserts, gets, open time and size; with --model-load, the model load.")
  @Option(help: "Documents written.") var documents = 100_000
  @Option(help: "Documents per durable write transaction.") var batch = 1000
  @Option(help: "Database directory (removed afterwards).")
  var dir = NSTemporaryDirectory() + "vdb-storage-bench-\(getpid())"
  @Flag(name: .customLong("no-text-index"), help: "Write without the full-text index.")
  var skipTextIndex = false
  @Flag(help: "Measure the model load in fresh child processes instead.") var modelLoad = false
  @Argument(help: "With --model-load: the child processes to run (default: 7).") var runs: Int?
  @Option(
    help: ArgumentHelp(
      "One model-load run in this process on the database in DIR (what --model-load's children run).",
      valueName: "DIR"))
  var modelLoadChild: String?

  func validate() throws {
    guard documents >= 1, batch >= 1, (runs ?? 1) >= 1 else {
      throw ValidationError("--documents, --batch and RUNS must be at least 1")
    }
    guard runs == nil || modelLoad else { throw ValidationError("RUNS goes with --model-load") }
  }
}
let arguments = Arguments.parseOrExit()
if let child = arguments.modelLoadChild {
  try modelLoadChild(directory: child)
  exit(0)
}
if arguments.modelLoad {
  try modelLoadBenchmark(runs: arguments.runs ?? 7)
  exit(0)
}
let (documents, batch, directory, textIndex) =
  (arguments.documents, arguments.batch, arguments.dir, !arguments.skipTextIndex)
try? FileManager.default.removeItem(atPath: directory)
defer { try? FileManager.default.removeItem(atPath: directory) }

let words = "vector index storage query model train embed graph layer neighbour".split(
  separator: " ")
func text(_ i: Int) -> String {
  var generator = i &* 2_654_435_761
  var parts: [Substring] = []
  var length = 0
  while length < 1000 {
    generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let word = words[Int(UInt64(bitPattern: Int64(generator)) >> 33) % words.count]
    parts.append(word)
    length += word.count + 1
  }
  return parts.joined(separator: " ")
}

let ids = (0..<documents).map { String(format: "doc-%08d", $0) }

/// Writes every document in batches; returns the seconds taken, wall clock and CPU
/// (on a shared machine the CPU time is the steadier figure; the wall clock also
/// waits for the disk). The database is closed when this returns (its handles are
/// released).
func fill() throws -> (wall: Double, cpu: Double) {
  let collection = try Database(path: directory).collection(
    "bench", options: CollectionOptions(textIndex: textIndex))
  let all = ids.enumerated().map { i, id in
    Document(
      id: id, text: text(i), metadata: ["n": .number(Double(i)), "group": .string("g\(i % 10)")])
  }
  let start = Date()
  let startCPU = cpuSeconds()
  for first in stride(from: 0, to: documents, by: batch) {
    try collection.upsert(Array(all[first..<min(first + batch, documents)]))
  }
  return (Date().timeIntervalSince(start), cpuSeconds() - startCPU)
}

let (writeSeconds, writeCPUSeconds) = try fill()

// Reopen the filled database: this is the open time users see.
let opened = DispatchTime.now().uptimeNanoseconds
let db = try Database(path: directory)
let collection = try db.collection("bench", create: false)
let openMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - opened) / 1e6

var latencies: [Double] = []
var generator = SystemRandomNumberGenerator()
for _ in 0..<20_000 {
  let id = ids[Int.random(in: 0..<documents, using: &generator)]
  let t0 = DispatchTime.now().uptimeNanoseconds
  _ = try collection.get(id)
  latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
}
latencies.sort()
let bytesOnDisk = try db.status().bytesOnDisk

print(
  "storage-bench: \(documents) documents of ~1 KB + metadata, batches of \(batch), durable commits")
print(
  String(
    format: "  upsert      %.0f documents/s (%.2f s total, %.1f ms per batch, %.1f ms of CPU)",
    Double(documents) / writeSeconds, writeSeconds,
    1000 * writeSeconds / Double(max(1, documents / batch)),
    1000 * writeCPUSeconds / Double(max(1, documents / batch))))
print(
  String(
    format: "  get         p50 %.1f µs, p99 %.1f µs (random ids, one read transaction each)",
    latencies[latencies.count / 2], latencies[latencies.count * 99 / 100]))
print(
  String(
    format: "  open        %.2f ms (existing database of %d documents)", openMilliseconds, documents
  ))
print("  size        \(bytesOnDisk / documents) bytes/document on disk")

// The CRC-32C of 90 MiB (all-MiniLM-L6-v2's weights), as checked at every model load:
// best of 5, in CPU time (on a shared machine wall time measures the neighbours).
let weights = (0..<(90 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
var best = Double.infinity
var sum: UInt32 = 0
for _ in 0..<5 {
  var start = timespec()
  var end = timespec()
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start)
  sum ^= weights.withUnsafeBytes { vdb_crc32c(0, $0.baseAddress, $0.count) }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &end)
  best = min(best, Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9)
}
let kind = vdb_crc32c_is_accelerated() != 0 ? "SSE4.2" : "table"
print(
  String(format: "  checksum    %.1f ms CPU per 90 MiB of weights", best * 1000)
    + " (CRC-32C, \(kind); \(String(sum, radix: 16)))")
