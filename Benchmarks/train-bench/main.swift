// train-bench: fine-tunes all-MiniLM-L6-v2 on a BEIR dataset's training qrels with the
// recipe of ../shared/bench/peer_finetune.py, and reports seconds per step and per epoch
// (and, with --evaluate, test metrics before and after). See Benchmarks/README.md.
//
//   swift run -c release train-bench [--steps N] [--negatives 0|1|2|3] [--batch 32]
//       [--epochs 1] [--mini-batch N] [--evaluate] [--dataset DIR] [--model DIR]
//       [--tier full|lora|adapter] [--max-seq-length 128] [--lr 2e-5]
//       [--matmul-precision float32|bfloat16]
//
// --steps N   time N steps (after two untimed ones) and extrapolate an epoch; without it,
//             train every epoch and time each.
// --negatives mined hard negatives per pair, as the peer mines them: the top-ranked
//             documents of the whole corpus under the starting model that are not positives
//             of the query (train or test qrels) and score at most 0.95 × the positive.
// --evaluate  exact cosine search over the corpus for the test queries, before and after
//             (--no-eval-before: after only). --seed S: the run's seed (default 42).
// --tier adapter  train the query-side adapter over the starting model's corpus vectors
//             instead of the encoder (lr 1e-3, 10 epochs unless --epochs).
// --tier lora train low-rank adapters on the encoder (LoRAConfiguration's defaults; the
//             encoder's options as given, so set --lr 1e-4 for vdb's LoRA rate).
import ArgumentParser
import BenchmarkSupport
import Embedding
import Foundation
import Tensor
import Training

/// What train-bench trains: the encoder, low-rank adapters on it, or the query-side adapter.
enum Tier: String, ExpressibleByArgument, CaseIterable { case full, lora, adapter }
extension MatmulPrecision: ExpressibleByArgument {}

struct Options: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "train-bench")
  @Option(help: "A BEIR directory with qrels/train.tsv and qrels/test.tsv.")
  var dataset = "../shared/datasets/scifact"
  @Option(help: "The starting model (tools/fetch-model.sh).")
  var model = SentenceEncoder.defaultModelDirectory.path
  @Option(help: "Pairs per batch.") var batch = 32
  @Option(help: "Mined hard negatives per pair.") var negatives = 0
  @Option(help: "Time N steps (after two untimed ones) and extrapolate an epoch.") var steps: Int?
  @Option(help: "Epochs (default: 1; 10 for the adapter tier).") var epochs: Int?
  @Option(help: "full (the encoder), lora (low-rank adapters on it) or adapter (query side).")
  var tier = Tier.full
  @Option(help: "GradCache mini-batch size (default: off).") var miniBatch: Int?
  @Flag(help: "Exact-search test metrics before and after.") var evaluate = false
  @Flag(name: .customLong("no-eval-before"), help: "With --evaluate: after training only.")
  var skipEvaluationBefore = false
  @Option(help: "The run's seed.") var seed: UInt64 = 42
  @Option(name: .customLong("max-seq-length"), help: "Tokens per text.")
  var maxSequenceLength = 128
  @Option(name: .customLong("lr"), help: "Peak learning rate of the encoder.")
  var learningRate = 2e-5
  @Option(help: "How the encoder's layers multiply: float32 or bfloat16.")
  var matmulPrecision = MatmulPrecision.float32

  var adapter: Bool { tier == .adapter }
  var evaluateBefore: Bool { !skipEvaluationBefore }

  func validate() throws {
    for (name, value) in [
      ("--batch", batch), ("--negatives", negatives), ("--steps", steps ?? 0),
      ("--epochs", epochs ?? 0), ("--mini-batch", miniBatch ?? 0),
      ("--max-seq-length", maxSequenceLength),
    ] where value < 0 {
      throw ValidationError("\(name): \(value) is not a count")
    }
    guard learningRate > 0 else { throw ValidationError("--lr must be positive") }
  }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("train-bench: \(message)\n".utf8))
  exit(2)
}

// MARK: - BEIR data

struct Record: Decodable {
  var _id: String
  var title: String?
  var text: String
}

func lines(_ path: String) -> [Substring] {
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
    fail("cannot read \(path)")
  }
  return text.split(whereSeparator: \.isNewline)
}

func records(_ path: String) -> [Record] {
  lines(path).enumerated().map { n, line in
    guard let record = try? JSONDecoder().decode(Record.self, from: Data(line.utf8)) else {
      fail("\(path):\(n + 1): not a BEIR record")
    }
    return record
  }
}

/// query id → document id → grade, rows with grade > 0 only.
func qrels(_ path: String) -> [String: [String: Int]] {
  var result: [String: [String: Int]] = [:]
  for line in lines(path) {
    let fields = line.split(separator: "\t").map {
      $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    guard fields.count == 3, let grade = Int(fields[2]), grade > 0 else { continue }
    result[fields[0], default: [:]][fields[1]] = grade
  }
  return result
}

// MARK: - Setup

let options = Options.parseOrExit()
let model: SentenceEncoder
do {
  model = try SentenceEncoder(directory: URL(fileURLWithPath: options.model))
} catch {
  fail("cannot load the model at \(options.model) (tools/fetch-model.sh): \(error)")
}
let corpusRecords = records(options.dataset + "/corpus.jsonl")
let corpusIDs = corpusRecords.map(\._id)
let corpusText = Dictionary(
  uniqueKeysWithValues: corpusRecords.map { record in
    let title = (record.title ?? "").trimmingCharacters(in: .whitespaces)
    let text = record.text.trimmingCharacters(in: .whitespaces)
    return (record._id, title.isEmpty ? text : title + " " + text)
  })
let queryText = Dictionary(
  uniqueKeysWithValues: records(options.dataset + "/queries.jsonl").map { ($0._id, $0.text) })
let train = qrels(options.dataset + "/qrels/train.tsv")
let test = qrels(options.dataset + "/qrels/test.tsv")
let pairs = train.keys.sorted().flatMap { q in
  train[q]!.keys.sorted().filter { corpusText[$0] != nil }.map { (query: q, document: $0) }
}.filter { queryText[$0.query] != nil }
log("\(corpusIDs.count) documents, \(pairs.count) training pairs, \(test.count) test queries")

/// Unit vectors of the whole corpus at the evaluation length (256), row per document.
func embedCorpus(_ encoder: SentenceEncoder) -> [Float] {
  let start = Date()
  let matrix = encoder.embedMatrix(corpusIDs.map { corpusText[$0]! }, batchSize: 64).values
  log(String(format: "embedded the corpus in %.0f s", Date().timeIntervalSince(start)))
  return matrix
}

/// Scores of `queries` (rows) against the corpus: one row of corpus scores per query.
func scores(_ queries: [Float], _ corpus: [Float]) -> [Float] {
  let d = 384
  let rows = queries.count / d
  let columns = corpus.count / d
  var out = [Float](repeating: 0, count: rows * columns)
  queries.withUnsafeBufferPointer { q in
    corpus.withUnsafeBufferPointer { c in
      out.withUnsafeMutableBufferPointer { o in
        BLAS.gemm(
          .none, .transposed, m: rows, n: columns, k: d, a: q.baseAddress!, lda: d,
          b: c.baseAddress!, ldb: d, c: o.baseAddress!, ldc: columns)
      }
    }
  }
  return out
}

func evaluate(
  _ encoder: SentenceEncoder, corpus: [Float], adapter: QueryAdapter<Float>? = nil
) -> RetrievalMetrics.Evaluation {
  let ids = test.keys.sorted().filter { queryText[$0] != nil }
  let embedded = encoder.embedMatrix(ids.map { queryText[$0]! }).values
  let queryVectors = adapter?.apply(to: embedded) ?? embedded
  let all = scores(queryVectors, corpus)
  var results: [String: [ScoredHit]] = [:]
  for (row, id) in ids.enumerated() {
    let rowScores = all[(row * corpusIDs.count)..<((row + 1) * corpusIDs.count)]
    let top = zip(corpusIDs, rowScores).map { ScoredHit(id: $0.0, score: Double($0.1)) }
    results[id] = Array(
      top.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }.prefix(100))
  }
  return RetrievalMetrics.evaluate(results: results, qrels: test)
}

func report(_ name: String, _ evaluation: RetrievalMetrics.Evaluation) {
  let keys = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"]
  print(
    "  \(name.padding(toLength: 7, withPad: " ", startingAt: 0))"
      + keys.map { String(format: " %@ %.4f", $0, evaluation.means[$0]!) }.joined())
}

var baseCorpus: [Float] = []
var before: RetrievalMetrics.Evaluation?
if (options.evaluate && options.evaluateBefore) || (options.negatives > 0 && options.steps == nil)
  || options.adapter
{
  baseCorpus = embedCorpus(model)
}
if options.evaluate && options.evaluateBefore { before = evaluate(model, corpus: baseCorpus) }

// Hard negatives: mined with the starting model when training for real; for a timing run
// (--steps) any documents of the same length do, so they are picked without a model.
var negativesOf: [Int: [String]] = [:]
if options.negatives > 0 {
  if options.steps != nil {
    for i in pairs.indices {
      negativesOf[i] = (1...options.negatives).map { corpusIDs[(i * 7919 * $0) % corpusIDs.count] }
    }
  } else {
    let start = Date()
    let mining = HardNegativeMining(count: options.negatives)
    let queryIDs = Array(Set(pairs.map(\.query))).sorted()
    let queryRow = Dictionary(uniqueKeysWithValues: queryIDs.enumerated().map { ($1, $0) })
    let corpusRow = Dictionary(uniqueKeysWithValues: corpusIDs.enumerated().map { ($1, $0) })
    let all = scores(model.embedMatrix(queryIDs.map { queryText[$0]! }).values, baseCorpus)
    var dropped = 0
    for (i, pair) in pairs.enumerated() {
      let row = all[(queryRow[pair.query]! * corpusIDs.count)...].prefix(corpusIDs.count)
      let ranked = zip(corpusIDs, row).map { (id: $0.0, score: Double($0.1)) }
        .sorted { $0.score > $1.score }
      let positives = Set((train[pair.query] ?? [:]).keys).union((test[pair.query] ?? [:]).keys)
      let mined = mining.negatives(
        ranked: ranked, positiveScore: Double(row[row.startIndex + corpusRow[pair.document]!]),
        positives: positives)
      if mined.negatives.count == options.negatives {
        negativesOf[i] = mined.negatives
      } else {
        dropped += 1
      }
    }
    log(
      String(
        format: "mined %d negative(s) for %d pairs (%d dropped) in %.0f s", options.negatives,
        negativesOf.count, dropped, Date().timeIntervalSince(start)))
  }
}

/// The run's epoch timing: a line when a step ends an epoch.
final class EpochClock {
  var start = Date()
  var cpuStart = cpuSeconds()

  func observe(_ progress: TrainingProgress, of trainer: any RankingTrainer) {
    if progress.step % 5 == 0 || progress.step == progress.totalSteps {
      log(
        String(
          format: "step %d/%d loss %.4f lr %.2e %.2f steps/s", progress.step,
          progress.totalSteps, progress.loss, progress.learningRate, progress.stepsPerSecond))
    }
    guard trainer.isFinished || trainer.epoch(atStep: progress.step) != progress.epoch else {
      return
    }
    print(
      String(
        format: "  epoch %d: %.2f s (cpu %.2f s)", progress.epoch + 1,
        Date().timeIntervalSince(start), cpuSeconds() - cpuStart))
    start = Date()
    cpuStart = cpuSeconds()
  }
}

if options.adapter {
  // The adapter tier: frozen vectors of the starting model, only the query map trains.
  let d = model.dimension
  let queryIDs = Array(Set(pairs.map(\.query))).sorted()
  let queryVectors = model.embedMatrix(queryIDs.map { queryText[$0]! }).values
  let queryRow = Dictionary(uniqueKeysWithValues: queryIDs.enumerated().map { ($1, $0) })
  let corpusRow = Dictionary(uniqueKeysWithValues: corpusIDs.enumerated().map { ($1, $0) })
  func row(_ matrix: [Float], _ index: Int) -> [Float] {
    Array(matrix[(index * d)..<((index + 1) * d)])
  }
  let examples = pairs.indices.compactMap { i -> AdapterExample? in
    let pair = pairs[i]
    let negatives = negativesOf[i] ?? []
    if options.negatives > 0 && negatives.isEmpty { return nil }
    return AdapterExample(
      query: row(queryVectors, queryRow[pair.query]!),
      positive: row(baseCorpus, corpusRow[pair.document]!),
      negatives: negatives.map { row(baseCorpus, corpusRow[$0]!) },
      keys: [queryText[pair.query]!, pair.document] + negatives)
  }
  var configuration = TrainingConfiguration.adapter
  configuration.batchSize = options.batch
  configuration.epochs = options.epochs ?? 10
  configuration.seed = options.seed
  let trainer = try AdapterTrainer(dimension: d, examples: examples, configuration: configuration)
  print(
    "train-bench: adapter tier, \(examples.count) examples, batch \(options.batch), "
      + "\(options.negatives) negative(s), \(trainer.totalSteps) steps")
  let clock = EpochClock()
  let start = Date()
  trainer.run { clock.observe($0, of: trainer) }
  print(String(format: "trained in %.2f s", Date().timeIntervalSince(start)))
  if options.evaluate {
    let after = evaluate(model, corpus: baseCorpus, adapter: trainer.adapter)
    print("test metrics (\(after.queries) queries, exact search, max length 256):")
    if let before { report("before", before) }
    report("after", after)
  }
  exit(0)
}

func tokens(_ text: String) -> [Int32] {
  model.tokenizer.encode(text, maxLength: options.maxSequenceLength).map(Int32.init)
}

let examples = pairs.indices.compactMap { i -> TrainingExample? in
  let pair = pairs[i]
  let negatives = negativesOf[i] ?? []
  if options.negatives > 0 && negatives.isEmpty { return nil }
  return TrainingExample(
    query: tokens(queryText[pair.query]!), positive: tokens(corpusText[pair.document]!),
    negatives: negatives.map { tokens(corpusText[$0]!) },
    keys: [queryText[pair.query]!, pair.document] + negatives)
}

var configuration = TrainingConfiguration()
configuration.batchSize = options.batch
configuration.epochs = options.epochs ?? 1
configuration.miniBatchSize = options.miniBatch
configuration.learningRate = options.learningRate
configuration.seed = options.seed
let trainer = try EncoderTrainer(
  parameters: try EncoderParameters(model), examples: examples, configuration: configuration,
  lora: options.tier == .lora ? LoRAConfiguration() : nil)
trainer.encoder.matmulPrecision = options.matmulPrecision
let load =
  (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
  .split(separator: " ").first ?? "?"
print(
  "train-bench: \(options.tier) tier, \(examples.count) examples, batch \(options.batch), "
    + "\(options.negatives) negative(s), max length \(options.maxSequenceLength), mini-batch "
    + "\(options.miniBatch.map(String.init) ?? "off"), \(trainer.totalSteps) steps, "
    + "kernels \(BLAS.coreName), products \(options.matmulPrecision), load \(load)")

// MARK: - Training

if let steps = options.steps {
  // Two untimed steps (first-touch page faults, the activation pool), then the timed ones.
  trainer.run(steps: 2)
  var times: [Double] = []
  for _ in 0..<min(steps, trainer.totalSteps - trainer.step) {
    let start = Date()
    let cpuStart = cpuSeconds()
    let loss = trainer.takeStep()
    times.append(Date().timeIntervalSince(start))
    print(
      String(
        format: "  step %d: %.3f s (cpu %.2f s), loss %.4f", trainer.step, times.last!,
        cpuSeconds() - cpuStart, loss))
  }
  let sorted = times.sorted()
  let median = sorted[sorted.count / 2]
  let perEpoch = (examples.count + options.batch - 1) / options.batch
  print(
    String(
      format: "median %.3f s/step [%.3f-%.3f]; %d steps/epoch -> %.1f s/epoch; "
        + "peak activations %.0f MiB",
      median, sorted.first!, sorted.last!, perEpoch, median * Double(perEpoch),
      Double(trainer.peakActivationBytes) / 1_048_576))
} else {
  let clock = EpochClock()
  trainer.run { clock.observe($0, of: trainer) }
  print(
    String(
      format: "mean loss %.4f; peak activations %.0f MiB",
      trainer.lossHistory.reduce(0, +) / Double(trainer.lossHistory.count),
      Double(trainer.peakActivationBytes) / 1_048_576))
}

if options.evaluate {
  let tuned = try SentenceEncoder(
    config: model.config, tokenizer: model.tokenizer,
    weights: trainer.encoder.parameters.namedTensors())
  let after = evaluate(tuned, corpus: embedCorpus(tuned))
  print("test metrics (\(after.queries) queries, exact search, max length 256):")
  if let before { report("before", before) }
  report("after", after)
}
