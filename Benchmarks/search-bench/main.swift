// Keyword (BM25) search on a BEIR data set: index build time, quality, and
// single-thread queries/s — the vdb side of Benchmarks/peers/peer_bm25.py.
//
//   swift run -c release search-bench --beir ../shared/datasets/scifact [--split test]
//       [--dir PATH] [--seconds S] [--json]
//
// The corpus is imported twice into a database without a model (documents only):
// once without a text index and once with it, so the index's own build cost is the
// difference. Queries run one at a time on one thread, unlogged, k = 10 (the peer
// does the same), repeated for at least --seconds.
import ArgumentParser
import BenchmarkSupport
import Foundation
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "search-bench")
  @Option(help: "A BEIR directory (corpus.jsonl, queries.jsonl, qrels/).") var beir: String
  @Option(help: "The qrels split whose queries run.") var split = "test"
  @Option(help: "Database directory (removed afterwards).")
  var dir = NSTemporaryDirectory() + "vdb-search-bench-\(getpid())"
  @Option(help: "Repeat the queries for at least S seconds.") var seconds = 5.0
  @Flag(help: "Print the figures as JSON.") var json = false
}
let arguments = Arguments.parseOrExit()
let (beir, split, directory, minimumSeconds, json) =
  (arguments.beir, arguments.split, arguments.dir, arguments.seconds, arguments.json)
try? FileManager.default.removeItem(atPath: directory)
defer { try? FileManager.default.removeItem(atPath: directory) }

let database = try Database(path: directory)
log("importing \(beir)/corpus.jsonl without, then with the text index …")
let plain = try database.collection("plain", options: CollectionOptions(textIndex: false))
let withoutIndex = try plain.importBEIR(directory: beir)
let collection = try database.collection("bm25")
let withIndex = try collection.importBEIR(directory: beir)

let queries = try BEIR.queries(path: beir + "/queries.jsonl")
let qrels = try BEIR.qrels(path: beir + "/qrels/\(split).tsv")
log("evaluating \(qrels.count) \(split) queries …")
let report = try collection.evaluate(queries: queries, qrels: qrels, mode: .keyword)

let texts = qrels.keys.sorted().compactMap { queries[$0] }
let options = QueryOptions(k: 10, log: false, mode: .keyword)
var ran = 0
let start = Date()
repeat {
  for text in texts { _ = try collection.query(texts: [text], options: options) }
  ran += texts.count
} while Date().timeIntervalSince(start) < minimumSeconds
let seconds = Date().timeIntervalSince(start)

let cpu = cpuFlags()

let results: [String: Double] = [
  "documents": Double(withIndex.imported),
  "import_seconds_without_index": withoutIndex.seconds,
  "import_seconds_with_index": withIndex.seconds,
  "index_build_seconds": withIndex.seconds - withoutIndex.seconds,
  "ndcg@10": report.metrics["ndcg@10"] ?? .nan,
  "mrr@10": report.metrics["mrr@10"] ?? .nan,
  "recall@100": report.metrics["recall@100"] ?? .nan,
  "queries": Double(report.queries),
  "queries_per_second": Double(ran) / seconds,
]
if json {
  try printJSON(results)
} else {
  print("search-bench: BM25 on \(beir) (\(split)), CPU flags: \(cpu)")
  print(
    String(
      format:
        "  import      %.2f s with the text index, %.2f s without (index: %.2f s) for %d documents",
      withIndex.seconds, withoutIndex.seconds, withIndex.seconds - withoutIndex.seconds,
      withIndex.imported))
  print(
    String(
      format: "  quality     nDCG@10 %.4f  MRR@10 %.4f  Recall@100 %.4f  (%d queries)",
      results["ndcg@10"]!, results["mrr@10"]!, results["recall@100"]!, report.queries))
  print(
    String(
      format: "  speed       %.0f queries/s (one thread, k = 10, %d queries in %.1f s)",
      results["queries_per_second"]!, ran, seconds))
}
