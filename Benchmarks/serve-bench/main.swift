// `vdb serve` under load: queries/s and p50/p99 latency with wrk at 1, 8 and 64
// connections, dense and hybrid text queries on a BEIR data set (SciFact), against the
// same queries run in-process (by as many threads, at most one per core), each pair
// back to back.
//
//   swift build -c release                    # vdb and serve-bench
//   .build/release/serve-bench --beir ../shared/datasets/scifact --vdb .build/release/vdb
//       [--dir PATH] [--seconds S] [--connections 1,8,64]
//
// The database (model + corpus) is built once in --dir and kept for later runs. Queries
// are the split's texts, cycled, k = 10, unlogged on both sides (logging costs the same
// in both). Then a mixed run: the dense queries at 8 connections alone and beside one
// connection upserting 10-document batches. wrk comes from Debian (`apt-get install wrk`).
import ArgumentParser
import BenchmarkSupport
import Foundation
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "serve-bench")
  @Option(help: "A BEIR directory (SciFact).") var beir: String
  @Option(help: "The vdb binary to serve with.") var vdb: String
  @Option(help: "The database directory (built once, kept).")
  var dir = NSTemporaryDirectory() + "vdb-serve-bench"
  @Option(help: "Seconds per cell.") var seconds = 10
  @Option(help: "wrk connection counts, comma-separated.")
  var connections = CommaSeparated([1, 8, 64])
}
let arguments = Arguments.parseOrExit()
let (beir, vdb, directory, seconds) =
  (arguments.beir, arguments.vdb, arguments.dir, arguments.seconds)
let connections = arguments.connections.values
guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") else {
  FileHandle.standardError.write(
    Data("serve-bench: needs wrk: apt-get install wrk (Debian's package)\n".utf8))
  exit(1)
}

// MARK: The database, built once.

let database = try Database(path: directory)
if try !database.collectionNames().contains("scifact") {
  log("building \(directory): model and \(beir)/corpus.jsonl (once) …")
  try database.importModel(directory: DefaultModel.directory)
  _ = try database.collection("scifact").importBEIR(directory: beir)
}
let queries = try BEIR.queries(path: beir + "/queries.jsonl")
let texts = try BEIR.qrels(path: beir + "/qrels/test.tsv").keys.sorted().compactMap { queries[$0] }

// MARK: In-process: N threads, each querying in turn, for `seconds`.

final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var latencies: [Double] = []
  func add(_ values: [Double]) { lock.withLock { latencies += values } }
  var all: [Double] { lock.withLock { latencies } }
}

struct Figure {
  var perSecond: Double
  var p50: Double  // milliseconds
  var p99: Double
}

func inProcess(mode: SearchMode, threads: Int) throws -> Figure {
  let collection = try database.collection("scifact", create: false)
  let options = QueryOptions(k: 10, log: false, mode: mode)
  for text in texts.prefix(20) { _ = try collection.query(texts: [text], options: options) }
  let counter = Counter()
  let start = Date()
  let end = start.addingTimeInterval(Double(seconds))
  // Threads of their own (concurrentPerform would run only as many at once as cores).
  let group = DispatchGroup()
  for thread in 0..<threads {
    group.enter()
    Thread {
      var latencies: [Double] = []
      var index = thread * 37
      while Date() < end {
        let began = Date()
        _ = try? collection.query(texts: [texts[index % texts.count]], options: options)
        latencies.append(Date().timeIntervalSince(began) * 1000)
        index += 1
      }
      counter.add(latencies)
      group.leave()
    }.start()
  }
  group.wait()
  let elapsed = Date().timeIntervalSince(start)
  let latencies = counter.all
  return Figure(
    perSecond: Double(latencies.count) / elapsed, p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99))
}

// MARK: Over HTTP: `vdb serve` (another process on the same database) and wrk.

let work = NSTemporaryDirectory() + "serve-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: work) }
let script = """
  local bodies = {}
  for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
  local index = 0
  setup = function(thread) thread:set("offset", math.random(#bodies)) end
  init = function() index = tonumber(offset) or 0 end
  request = function()
    index = index % #bodies + 1
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[index])
  end
  """
try script.write(toFile: work + "/query.lua", atomically: true, encoding: .utf8)

let server = Process()
server.executableURL = URL(fileURLWithPath: vdb)
server.arguments = ["serve", "--db", directory, "--port", "0"]
let serverOutput = Pipe()
server.standardOutput = serverOutput
try server.run()
var firstLine = Data()
while !firstLine.contains(UInt8(ascii: "\n")) {
  let byte = try serverOutput.fileHandleForReading.read(upToCount: 1) ?? Data()
  if byte.isEmpty { break }
  firstLine.append(byte)
}
guard
  let base = String(decoding: firstLine, as: UTF8.self).split(separator: " ")
    .first(where: { $0.hasPrefix("http://") })
else {
  log("serve-bench: vdb serve did not start")
  exit(1)
}

/// Writes `bodies` (one request body per line) to a file named `name`; returns its path.
func bodiesFile(_ name: String, _ bodies: [String]) throws -> String {
  let file = work + "/" + name
  try (bodies.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
  return file
}

/// Starts wrk posting the bodies of `file`, cycled, to `path`; `finish` waits for it and
/// returns requests/s, p50 and p99 (ms) and the non-2xx count.
func startWrk(_ file: String, path: String, connections: Int) throws -> () -> (Figure, errors: Int)
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
  process.arguments = [
    "-t", String(min(connections, 2)), "-c", String(connections), "-d", "\(seconds)s",
    "--latency", "--timeout", "30s", "-s", work + "/query.lua", base + path,
  ]
  process.environment = ["BODIES": file]
  let out = Pipe()
  process.standardOutput = out
  try process.run()
  return {
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    func number(after label: String) -> Double? {
      guard let line = text.split(separator: "\n").first(where: { $0.contains(label) }) else {
        return nil
      }
      let field = line.split(separator: " ").last.map(String.init) ?? ""
      let scale: Double =
        field.hasSuffix("us") ? 0.001 : field.hasSuffix("ms") ? 1 : field.hasSuffix("s") ? 1000 : 1
      let digits = field.trimmingCharacters(in: CharacterSet(charactersIn: "0123456789.").inverted)
      return Double(digits).map { $0 * scale }
    }
    guard let rate = number(after: "Requests/sec:") else {
      log("wrk printed:\n\(text)")
      exit(1)
    }
    return (
      Figure(perSecond: rate, p50: number(after: " 50% ") ?? 0, p99: number(after: " 99% ") ?? 0),
      Int(number(after: "Non-2xx") ?? 0)
    )
  }
}

/// The query bodies of `mode`, as a file for wrk.
func queryBodies(_ mode: SearchMode) throws -> String {
  try bodiesFile(
    "bodies-\(mode.rawValue).jsonl",
    texts.map { text in
      String(
        decoding: try! JSONEncoder().encode(
          ["text": JSONValue.string(text), "k": 10, "mode": .string(mode.rawValue), "log": false]),
        as: UTF8.self)
    })
}

func wrk(mode: SearchMode, connections: Int) throws -> (Figure, errors: Int) {
  try startWrk(
    try queryBodies(mode), path: "/collections/scifact/query", connections: connections)()
}

// Each cell in-process, then over HTTP right after: the machine's load drifts, and
// only back-to-back figures compare. (The server is idle while the in-process run goes.)
var rows: [String] = []
for mode in [SearchMode.dense, .hybrid] {
  for count in connections {
    // In-process, more threads than cores only oversubscribe (each query's encoder
    // already splits over the cores): the fair figure is its best, at most one thread
    // per core — as many as the server's pool runs at once.
    let threads = min(count, ProcessInfo.processInfo.activeProcessorCount)
    log("\(mode.rawValue), \(threads) threads in-process, then \(count) connections over HTTP …")
    let inside = try inProcess(mode: mode, threads: threads)
    let (http, errors) = try wrk(mode: mode, connections: count)
    rows.append(
      String(
        format: "| %@ | %d | %.0f | %.1f / %.1f | %d | %.0f | %.1f / %.1f | %.2f× |%@",
        mode.rawValue, count, http.perSecond, http.p50, http.p99, threads, inside.perSecond,
        inside.p50, inside.p99,
        http.perSecond / inside.perSecond, errors > 0 ? " \(errors) non-2xx!" : ""))
  }
}
// Mixed reads and writes: dense queries at 8 connections alone, then the same while one
// more connection upserts batches of 10 documents (one transaction each) into a
// collection of their own — texts the server embeds (the writer competes for the cores),
// then given vectors (only LMDB and the index: does a writer block readers?).
log("mixed: dense queries at 8 connections alone, then beside a writer …")
let passages = try String(contentsOfFile: beir + "/corpus.jsonl", encoding: .utf8)
  .split(separator: "\n").prefix(1000).compactMap { line in
    (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["text"]
      as? String
  }
var generator = SystemRandomNumberGenerator()
/// Upsert bodies of 10 documents each: texts, or random unit vectors.
func writeBodies(vectors: Bool) throws -> String {
  try bodiesFile(
    vectors ? "writes-vectors.jsonl" : "writes-texts.jsonl",
    stride(from: 0, to: passages.count, by: 10).map { first in
      let documents = (first..<min(first + 10, passages.count)).map { index in
        var fields: [String: JSONValue] = ["id": .string("w\(index)")]
        if vectors {
          let vector = (0..<384).map { _ in Double.random(in: -1...1, using: &generator) }
          let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
          fields["vector"] = .array(vector.map { .number($0 / norm) })
        } else {
          fields["text"] = .string(passages[index])
        }
        return JSONValue.object(fields)
      }
      return String(
        decoding: try! JSONEncoder().encode(["documents": JSONValue.array(documents)]),
        as: UTF8.self)
    })
}
for name in ["writes-texts", "writes-vectors"] where try database.collectionNames().contains(name) {
  try database.dropCollection(name)  // left by an interrupted run
}
_ = try database.collection("writes-texts")
_ = try database.createCollection(
  "writes-vectors", options: .vectors(dimension: 384, metric: .cosine))
let alone = try wrk(mode: .dense, connections: 8).0
var mixedRows: [String] = []
for vectors in [false, true] {
  let name = vectors ? "writes-vectors" : "writes-texts"
  let reading = try startWrk(
    try queryBodies(.dense), path: "/collections/scifact/query", connections: 8)
  let writing = try startWrk(
    try writeBodies(vectors: vectors), path: "/collections/\(name)/documents", connections: 1)
  let (reads, readErrors) = reading()
  let (writes, writeErrors) = writing()
  mixedRows.append(
    String(
      format:
        "| beside a writer of %@ | %.0f (%.2f×) | %.1f / %.1f | %.1f (%.0f) | %.0f / %.0f |%@",
      vectors ? "given vectors" : "texts (embedded)", reads.perSecond,
      reads.perSecond / alone.perSecond, reads.p50, reads.p99, writes.perSecond,
      writes.perSecond * 10, writes.p50, writes.p99,
      readErrors + writeErrors > 0 ? " \(readErrors + writeErrors) non-2xx!" : ""))
}
try database.dropCollection("writes-texts")
try database.dropCollection("writes-vectors")

server.terminate()
server.waitUntilExit()

print(
  "serve-bench: \(texts.count) SciFact test queries, k 10, unlogged, \(seconds) s per cell; "
    + "\(ProcessInfo.processInfo.activeProcessorCount) cores; CPU flags: \(cpuFlags())")
print(
  "| mode | connections | HTTP q/s | HTTP p50 / p99 ms | in-process threads | in-process q/s | in-process p50 / p99 ms | ratio |"
)
print("|---|---|---|---|---|---|---|---|")
for row in rows { print(row) }
print(
  """

  Mixed: dense queries at 8 connections, alone and beside one connection upserting
  10-document batches:

  | | queries/s | query p50 / p99 ms | upserts/s (documents/s) | upsert p50 / p99 ms |
  |---|---|---|---|---|
  """)
print(
  String(format: "| alone | %.0f | %.1f / %.1f | – | – |", alone.perSecond, alone.p50, alone.p99))
for row in mixedRows { print(row) }
