// train-bench: times full-encoder training steps (forward, backward, AdamW) at the size of the
// SciFact fine-tune, and extrapolates seconds per epoch for comparison with the peer
// (../shared/bench/peer_finetune.py). See Benchmarks/README.md.
//
//   swift run -c release train-bench [--examples FILE] [--batch 32] [--negatives 0|1]
//       [--steps 4] [--mini-batch N] [--epoch-pairs 919]
//
// --examples: JSONL of {"query": [ids], "positive": [ids], "negatives": [[ids]], "keys": [..]}
// (token ids already truncated to the training length). Without it, random ids with SciFact's
// lengths (queries 22 tokens, documents 128). Weights are random: the time of a step does not
// depend on their values.
import Foundation
import Training

struct Options {
  var examplesFile: String?
  var batch = 32
  var negatives = 0
  var steps = 4
  var miniBatch: Int?
  var epochPairs = 919

  init(_ arguments: [String]) {
    var i = 1
    func value() -> String {
      i += 1
      guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value") }
      return arguments[i]
    }
    func number() -> Int {
      let text = value()
      guard let n = Int(text), n >= 0 else { fail("\(arguments[i - 1]): '\(text)' is not a count") }
      return n
    }
    while i < arguments.count {
      switch arguments[i] {
      case "--examples": examplesFile = value()
      case "--batch": batch = number()
      case "--negatives": negatives = number()
      case "--steps": steps = number()
      case "--mini-batch": miniBatch = number()
      case "--epoch-pairs": epochPairs = number()
      default: fail("unknown option \(arguments[i])")
      }
      i += 1
    }
  }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("train-bench: \(message)\n".utf8))
  exit(2)
}

struct ExampleLine: Decodable {
  var query: [Int32]
  var positive: [Int32]
  var negatives: [[Int32]]?
  var keys: [String]?
}

func loadExamples(_ options: Options) -> [TrainingExample] {
  guard let path = options.examplesFile else {
    var random = TrainingRandom(seed: 1)
    func sequence(_ length: Int) -> [Int32] {
      [101] + (0..<(length - 2)).map { _ in Int32(1000 + random.next() % 28000) } + [102]
    }
    return (0..<options.epochPairs).map { i in
      TrainingExample(
        query: sequence(22), positive: sequence(128),
        negatives: (0..<options.negatives).map { _ in sequence(128) },
        keys: ["q\(i)", "d\(i)"] + (0..<options.negatives).map { "n\(i).\($0)" })
    }
  }
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
    fail("cannot read \(path)")
  }
  var examples: [TrainingExample] = []
  for (n, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
    guard let row = try? JSONDecoder().decode(ExampleLine.self, from: Data(line.utf8)) else {
      fail("\(path):\(n + 1): not an example line")
    }
    examples.append(
      TrainingExample(
        query: row.query, positive: row.positive,
        negatives: Array((row.negatives ?? []).prefix(options.negatives)),
        keys: row.keys.map { Array($0.prefix(2 + options.negatives)) }))
  }
  return examples
}

let options = Options(CommandLine.arguments)
let examples = loadExamples(options)
var configuration = TrainingConfiguration()
configuration.batchSize = options.batch
configuration.miniBatchSize = options.miniBatch
let weights = try EncoderParameters<Float>(randomFor: .miniLML6, seed: 1, standardDeviation: 0.02)
let trainer = try EncoderTrainer(
  parameters: weights, examples: examples, configuration: configuration)
let load =
  (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
  .split(separator: " ").first ?? "?"
print(
  "train-bench: \(examples.count) examples, batch \(options.batch), \(options.negatives) "
    + "negative(s), mini-batch \(options.miniBatch.map(String.init) ?? "off"), "
    + "\(trainingThreadCount) threads, load \(load)")

func cpuSeconds() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
    + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

// Two untimed steps (first-touch page faults, the activation pool, BLAS buffers), then the
// timed ones.
trainer.takeStep()
trainer.takeStep()
var times: [Double] = []
for _ in 0..<min(options.steps, trainer.totalSteps - 2) {
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
let stepsPerEpoch = (options.epochPairs + options.batch - 1) / options.batch
print(
  String(
    format: "median %.3f s/step [%.3f-%.3f]; %d steps/epoch -> %.1f s/epoch; "
      + "peak activations %.0f MiB",
    median, sorted.first!, sorted.last!, stepsPerEpoch, median * Double(stepsPerEpoch),
    Double(trainer.peakActivationBytes) / 1_048_576))
