// Routers: held-out macro-F1 against nearest centroid, calibration error before/after, and
// batch-1 routing latency against the encoder's batch-1 latency; each for the head tier and
// the LoRA tier (the head trained with LoRA adapters on the encoder).
//
//   swift run -c release route-bench [--seeds N] [--repeats R] [--no-scifact] [--no-lora]
//     [--many-paths P]
//
// Sets: (1) the project's docs set, tools/route-examples.jsonl (train, with a held-out
// split per seed) and tools/route-test.jsonl (never trained on); (2) SciFact claims: is
// dense sentence search enough, or must the request escalate (built below).
import ArgumentParser
import BenchmarkSupport
import Dispatch
import Foundation
import Training
import VectorDB

struct Arguments: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "route-bench")
  @Option(help: "Train/held-out splits (seeds) per set.") var seeds = 5
  @Option(help: "Batch-1 calls timed per latency figure.") var repeats = 300
  @Flag(name: .customLong("no-scifact"), help: "Only the docs set.") var skipSciFact = false
  @Flag(name: .customLong("no-lora"), help: "Only the head tier.") var skipLoRA = false
  @Option(help: "Also time one training of a router with this many paths (0: not).")
  var manyPaths = 0

  func validate() throws {
    guard seeds >= 1, repeats >= 1 else {
      throw ValidationError("--seeds and --repeats must be at least 1")
    }
    guard manyPaths == 0 || manyPaths >= 2 else {
      throw ValidationError("--many-paths must be 0 or at least 2")
    }
  }
}
let arguments = Arguments.parseOrExit()
let (seeds, repeats, scifactSet, loraTier) =
  (arguments.seeds, arguments.repeats, !arguments.skipSciFact, !arguments.skipLoRA)
let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let tools = here.appendingPathComponent("../../tools").standardized.path
let scifact = here.appendingPathComponent("../../../shared/datasets/scifact").standardized.path
let directory = NSTemporaryDirectory() + "vdb-route-bench-\(getpid())"
// Removed at the end, and before an early exit (which skips top-level `defer`s).
func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }
defer { removeDirectory() }
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

let db = try Database(path: directory + "/db")
try db.importModel(directory: DefaultModel.directory)
let encoder = try db.encoder(version: 1)

func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Trains `router` of `tier` once per seed; prints and returns the held-out figures.
@discardableResult
func heldOut(_ router: Router, label: String, tier: RouterTier = .head) throws
  -> RouterTrainingReport
{
  var reports: [RouterTrainingReport] = []
  for seed in 1...seeds {
    var options = RouterTrainingOptions()
    options.tier = tier
    options.seed = UInt64(seed)
    options.splitKey = UInt64(seed)  // a split per seed, as before splits were fixed
    options.force = true  // each seed's version is measured, whatever the gate says
    if router.escalation != nil { options.maxEscalation = 0.3 }
    reports.append(try router.train(options: options))
  }
  func figure(_ key: String) -> String {
    let values = reports.compactMap { $0.metrics[key] }
    let m = mean(values)
    let sd = (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(max(1, values.count - 1)))
      .squareRoot()
    return String(format: "%.3f ± %.3f", m, sd)
  }
  print(
    "\n\(label), \(tier) tier: \(reports[0].trainExamples) train / \(reports[0].heldOutExamples) held out, \(seeds) seeds (mean ± sd)"
  )
  for key in [
    "macro_f1", "nearest_centroid_macro_f1", "majority_macro_f1", "accuracy", "epochs", "shrinkage",
    "lora_epochs", "stored_bytes", "ece_before",
    "ece_after", "temperature", "escalation", "quality", "always_escalate_quality",
    "never_escalate_quality",
  ] where reports[0].metrics[key] != nil {
    print("  \(key.padding(toLength: 26, withPad: " ", startingAt: 0)) \(figure(key))")
  }
  let chosen = Dictionary(grouping: reports.map(\.classifier)) { $0 }.mapValues(\.count)
  print(
    "  classifier chosen          "
      + chosen.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
  print(
    String(
      format: "  training %.2f s the first run (embedding every input), %.2f s per run after"
        + " (the inputs' vectors stored)", reports[0].seconds,
      reports.count > 1 ? mean(reports.dropFirst().map(\.seconds)) : .nan))
  return reports.last!
}

// (1) The docs set.
func docsRouter(_ name: String) throws -> Router {
  let router = try db.createRouter(
    name,
    paths: ["storage", "search", "training", "shell"].map { RoutePath(name: $0, cost: 1) }
      + [RoutePath(name: "general", cost: 4)], escalation: "general")
  try router.importJSONL(path: tools + "/route-examples.jsonl")
  return router
}
let docs = try docsRouter("docs")
try heldOut(docs, label: "docs set, held-out split")
// The test file: the last trained version against nearest centroid on all training inputs.
let test = try docs.evaluate(path: tools + "/route-test.jsonl")
let trainingExamples = try docs.examples().filter { $0.best != nil }
let pathNames = docs.paths.map(\.name)
let centroid = NearestCentroid(
  inputs: encoder.embed(trainingExamples.map(\.input)),
  labels: trainingExamples.map { pathNames.firstIndex(of: $0.best!)! }, classes: pathNames.count)
let testLines = try String(contentsOfFile: tools + "/route-test.jsonl", encoding: .utf8)
  .split(separator: "\n").map {
    try JSONDecoder().decode([String: String].self, from: Data($0.utf8))
  }
let centroidTest = ClassificationMetrics(
  labels: testLines.map { pathNames.firstIndex(of: $0["path"]!)! },
  predictions: centroid.predict(encoder.embed(testLines.map { $0["input"]! })),
  classes: pathNames.count)
print(
  String(
    format:
      "docs set, route-test.jsonl (%d inputs): router macro-F1 %.3f, accuracy %.3f; nearest centroid macro-F1 %.3f, accuracy %.3f; escalation %.3f, quality %.3f",
    test.examples, test.macroF1, test.accuracy, centroidTest.macroF1, centroidTest.accuracy,
    test.escalation, test.quality))

// Latency, one request at a time. The three are timed in turn within each round, so that
// they see the same load (the machine is shared); the median of the paired differences is
// the routing overhead.
let request = "how do I delete a document by its id"
var candidates: [(String, () throws -> Void)] = [
  ("encoder alone", { _ = encoder.embed(request) }),
  ("route, not logged", { _ = try docs.route([request], log: false) }),
  ("route, logged", { _ = try docs.route([request]) }),
]
// The LoRA tier's last version serves with its adapters merged into the encoder.
if loraTier {
  let tuned = try docsRouter("docs-lora")
  try heldOut(tuned, label: "docs set, held-out split", tier: .lora)
  candidates.append(("route lora, not logged", { _ = try tuned.route([request], log: false) }))
}
/// Times `candidates` in turn within each round; prints p50, mean and the p50 of the
/// per-round difference from the first (the encoder alone).
func latency(_ candidates: [(String, () throws -> Void)]) throws {
  var times = [[Double]](repeating: [], count: candidates.count)
  for round in 0..<(repeats + 20) {
    for (index, candidate) in candidates.enumerated() {
      let start = nanoseconds()
      try candidate.1()
      if round >= 20 { times[index].append(Double(nanoseconds() - start) / 1e6) }
    }
  }
  print(
    "\nbatch-1 latency over \(repeats) rounds (ms): p50, mean, p50 of (this − encoder) per round")
  for (index, candidate) in candidates.enumerated() {
    let overhead = median(zip(times[index], times[0]).map { $0 - $1 })
    print(
      "  " + candidate.0.padding(toLength: 26, withPad: " ", startingAt: 0)
        + String(format: "%.3f  %.3f  %+.3f", median(times[index]), mean(times[index]), overhead))
  }
}
try latency(candidates)

// Nearest examples' cost per request grows with the inputs it keeps: one request scored
// against 1,000, 5,000, `Router.nearestExamplesLimit` and twice that many (random unit
// vectors; the cost does not depend on what they are).
let limit = Router.nearestExamplesLimit
for kept in [1_000, 5_000, limit, 2 * limit] {
  let examples = (0..<kept).map { _ in (0..<384).map { _ in Float.random(in: -1...1) } }
  let head = NearestExamples(inputs: examples, labels: (0..<kept).map { $0 % 2 }, classes: 2)
  let query = (0..<384).map { _ in Float.random(in: -1...1) }
  var times: [Double] = []
  for _ in 0..<(repeats + 20) {
    let start = nanoseconds()
    _ = head.logits(query)
    times.append(Double(nanoseconds() - start) / 1e6)
  }
  print(
    String(
      format: "nearest examples, one request against %d kept inputs: p50 %.3f ms", kept,
      median(Array(times.dropFirst(20)))))
}

// The cost of a router with many paths (an intent set's size): SciFact's titles and first
// sentences, 10,355 inputs, each given one of `--many-paths` paths by its position. There
// is nothing to learn in such labels: this times the training's stages, not its quality.
if arguments.manyPaths > 0 {
  struct Document: Decodable { var title, text: String }
  var inputs: [String] = []
  for line in try String(contentsOfFile: scifact + "/corpus.jsonl", encoding: .utf8).split(
    separator: "\n")
  {
    let document = try JSONDecoder().decode(Document.self, from: Data(line.utf8))
    inputs.append(document.title)
    inputs.append(String(document.text.prefix { $0 != "." }.prefix(300)))
  }
  let paths = (0..<arguments.manyPaths).map { RoutePath(name: "p\($0)") }
  let many = try db.createRouter("many", paths: paths)
  let lines = try inputs.enumerated().filter { !$0.element.isEmpty }.map { index, input in
    let object = ["input": input, "path": paths[index % paths.count].name]
    return String(decoding: try JSONEncoder().encode(object), as: UTF8.self)
  }
  try lines.joined(separator: "\n").write(
    toFile: directory + "/many.jsonl", atomically: false, encoding: .utf8)
  try many.importJSONL(path: directory + "/many.jsonl")
  // Each stage from its first report to its last; the rest (splitting, the final fit, the
  // gate, calibration) is what lies between.
  var stages: [(name: String, first: UInt64, last: UInt64)] = []
  let start = nanoseconds()
  let report = try many.train { stage in
    let name =
      switch stage {
      case .embedding: "embedding"
      case .choosingClassifier: "choosing the classifier"
      case .training: "training the chosen head"
      case .crossValidation, .tuning: "lora"
      }
    let now = nanoseconds()
    if stages.last?.name == name {
      stages[stages.count - 1].last = now
    } else {
      stages.append((name, now, now))
    }
  }
  let total = Double(nanoseconds() - start) / 1e9
  print(
    "\n\(arguments.manyPaths) paths, \(report.trainExamples) train / \(report.heldOutExamples)"
      + String(format: " held out: train %.1f s, chose %@", total, report.classifier))
  var staged = 0.0
  for stage in stages {
    let seconds = Double(stage.last - stage.first) / 1e9
    staged += seconds
    print(String(format: "  %@ %.1f s", stage.name, seconds))
  }
  print(String(format: "  the rest (split, final fit, gate, calibration) %.1f s", total - staged))
  // Again with one new input: what a retrain costs once the log's vectors are stored.
  _ = try many.record(input: "one more request", path: paths[0].name, outcome: .good)
  let again = nanoseconds()
  let retrained = try many.train()
  print(
    String(
      format: "  retrain after one new input: %.1f s (%d input embedded)",
      Double(nanoseconds() - again) / 1e9, retrained.embeddedInputs))
}

// (2) SciFact, RouteLLM-style: is the cheap path (dense search over abstract sentences and
// titles, ../shared/datasets/scifact-minilm) enough for a claim? Its outcome is good when
// the top row belongs to a relevant abstract (qrels train + test); otherwise the expensive
// path ("reranker", the escalation) is taken to be good.
guard scifactSet else {
  removeDirectory()
  exit(0)
}
let minilm = scifact + "-minilm"
let nearest = try VectorFile.readIntegers(minilm + "/gt.ivecs").rows
let gunzip = Process()
gunzip.executableURL = URL(fileURLWithPath: "/usr/bin/gzip")
gunzip.arguments = ["-dc", minilm + "/base_texts.jsonl.gz"]
let pipe = Pipe()
gunzip.standardOutput = pipe
try gunzip.run()
let baseTexts = pipe.fileHandleForReading.readDataToEndOfFile()
gunzip.waitUntilExit()
struct BaseRow: Decodable {
  var document: String
  enum CodingKeys: String, CodingKey { case document = "doc_id" }
}
let rowDocument = try baseTexts.split(separator: UInt8(ascii: "\n")).map {
  try JSONDecoder().decode(BaseRow.self, from: Data($0)).document
}
var relevant: [String: Set<String>] = [:]
for split in ["train", "test"] {
  for (query, documents) in try BEIR.qrels(path: scifact + "/qrels/\(split).tsv") {
    relevant[query, default: []].formUnion(documents.filter { $0.value > 0 }.keys)
  }
}
struct QueryRow: Decodable {
  var row: Int
  var query: String
  var text: String
  enum CodingKeys: String, CodingKey {
    case row, text
    case query = "query_id"
  }
}
var sciLines: [String] = []
var cheapGood = 0
for line in try String(contentsOfFile: minilm + "/queries.jsonl", encoding: .utf8).split(
  separator: "\n")
{
  let query = try JSONDecoder().decode(QueryRow.self, from: Data(line.utf8))
  guard let documents = relevant[query.query] else { continue }
  let good = documents.contains(rowDocument[Int(nearest[query.row][0])])
  cheapGood += good ? 1 : 0
  var outcomes = [("sentences", good ? "good" : "bad")]
  if !good { outcomes.append(("reranker", "good")) }
  for (path, outcome) in outcomes {
    let object = ["input": query.text, "path": path, "outcome": outcome]
    sciLines.append(String(decoding: try JSONEncoder().encode(object), as: UTF8.self))
  }
}
try sciLines.joined(separator: "\n").write(
  toFile: directory + "/scifact-routing.jsonl", atomically: false, encoding: .utf8)
let sci = try db.createRouter(
  "scifact", paths: [RoutePath(name: "sentences", cost: 1), RoutePath(name: "reranker", cost: 10)],
  escalation: "reranker")
try sci.importJSONL(path: directory + "/scifact-routing.jsonl")
print("\nSciFact claims: the cheap path is good for \(cheapGood) of \(relevant.count)")
let sciLabel = "SciFact set (sentence search enough, or escalate), held-out split"
let sciHead = try heldOut(sci, label: sciLabel)
// The last seed's head-tier version serves: the classifier chosen on this set.
let claim = "Vitamin D deficiency is associated with an increased risk of tuberculosis."
try latency([
  ("encoder alone", { _ = encoder.embed(claim) }),
  ("route \(sciHead.classifier)", { _ = try sci.route([claim], log: false) }),
])
if loraTier {
  // The last seed's LoRA-tier version serves (with its adapters merged, if it kept any).
  let last = try heldOut(sci, label: sciLabel, tier: .lora)
  try latency([
    ("encoder alone", { _ = encoder.embed(claim) }),
    (
      "route lora (\(Int(last.metrics["lora_epochs"] ?? 0)) epochs)",
      { _ = try sci.route([claim], log: false) }
    ),
  ])
}
