// Re-embedding cost against the encoder alone, and query latency during a re-embed.
//
//   swift run -c release reembed-bench [--documents N] [--queries Q]
//
// Imports the first N SciFact abstracts (../shared/datasets/scifact) into a fresh
// database, then (1) embeds the same texts with the encoder only, (2) re-embeds the
// collection into a new generation (`reembed(all: true)`), and (3) measures query
// latency idle and while a re-embed runs on another thread.
import ArgumentParser
import BenchmarkSupport
import Dispatch
import Foundation
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "reembed-bench")
  @Option(help: "SciFact abstracts to import.") var documents = 1000
  @Option(help: "Query texts timed per pass.") var queries = 300
}
let arguments = Arguments.parseOrExit()
let (documents, queryCount) = (arguments.documents, arguments.queries)
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .appendingPathComponent("../../../shared/datasets/scifact").standardized.path
let directory = NSTemporaryDirectory() + "vdb-reembed-bench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }

// The corpus slice, as a JSONL file, and the query texts.
let corpusLines = try String(contentsOfFile: root + "/corpus.jsonl", encoding: .utf8)
  .split(separator: "\n").prefix(documents)
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
try corpusLines.joined(separator: "\n").write(
  toFile: directory + "/corpus.jsonl", atomically: false, encoding: .utf8)
let queries = Array(
  try BEIR.queries(path: root + "/queries.jsonl").values.sorted().prefix(queryCount))

let db = try Database(path: directory + "/db")
try db.importModel(directory: DefaultModel.directory)
let collection = try db.collection("scifact")
try collection.importJSONL(path: directory + "/corpus.jsonl")
let texts = try collection.documents(limit: documents).map(\.text)

func latencies() throws -> [Double] {
  try queries.map { text in
    try seconds { _ = try collection.query(text: text, k: 10, log: false) } * 1000
  }
}

let encoder = try db.encoder(version: 1)
let encoderSeconds = seconds { _ = encoder.embedMatrix(texts) }
let reembedSeconds = try seconds { try collection.reembed(all: true) }
let idle = try latencies()
// Query while a re-embed runs on another thread.
let group = DispatchGroup()
let done = Locked(false)
DispatchQueue.global().async(group: group) {
  _ = try? collection.reembed(all: true)
  done.value = true
}
var busy: [Double] = []
while !done.value { busy += try latencies() }
group.wait()

print("reembed-bench: \(documents) SciFact documents, \(queries.count) queries, k 10")
print("cpu flags: \(cpuFlags()); load average \(loadAverage())")
print(
  String(
    format: "  encoder only   %.1f docs/s\n  re-embed       %.1f docs/s (%.2f× the encoder alone)",
    Double(documents) / encoderSeconds, Double(documents) / reembedSeconds,
    encoderSeconds / reembedSeconds))
print(
  String(
    format:
      "  query idle     p50 %.2f ms, p99 %.2f ms\n  during job     p50 %.2f ms, p99 %.2f ms (%.2f×, %.2f×; %d queries)",
    percentile(idle, 0.5), percentile(idle, 0.99), percentile(busy, 0.5), percentile(busy, 0.99),
    percentile(busy, 0.5) / percentile(idle, 0.5), percentile(busy, 0.99) / percentile(idle, 0.99),
    busy.count))

/// A value shared between threads.
final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value
  init(_ value: Value) { stored = value }
  var value: Value {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}
