// encoder-bench: throughput and latency of vdb's native sentence encoder.
//
// Measures, on the same texts as the peer script (../shared/bench/peer_embed.py):
//   - the machine's sgemm peak (large products, all cores, the way the encoder calls BLAS),
//   - tokenizer tokens/s (one thread),
//   - sentences/s for each text file at --batch (1 warm-up + --reps timed passes),
//     the GFLOP/s that implies and its fraction of the sgemm peak,
//   - batch-1 latency p50/p95 on the first --batch1 texts of the last file.
//
// Usage (release build, from the project root):
//   swift run -c release encoder-bench [--model DIR] [--batch 32] [--reps 5] [--batch1 200]
//       [--kernels SkylakeX|Haswell] [--json] peer-results/passages.txt peer-results/short.txt
// --kernels picks OpenBLAS's kernel set (default: OPENBLAS_CORETYPE if set, else the best).
// Texts: one per line, as written by `peer_embed.py ... --dump-texts FILE`.

import Embedding
import Foundation
import Tensor

struct Options {
  var model =
    ProcessInfo.processInfo.environment["VDB_MODEL_DIR"]
    ?? FileManager.default.homeDirectoryForCurrentUser
    .appendingPathComponent(".cache/vdb/models/all-MiniLM-L6-v2").path
  var batch = 32
  var reps = 5
  var batch1 = 200
  var batch1Threads = Parallel.coreCount
  var json = false
  var kernels: BLAS.KernelSet? = nil
  var files: [String] = []

  init(arguments: [String]) {
    var rest = arguments.dropFirst()
    func value(_ flag: String) -> String {
      guard let next = rest.popFirst() else { fail("\(flag) needs a value") }
      return next
    }
    func number(_ flag: String) -> Int {
      let text = value(flag)
      guard let n = Int(text), n >= 0 else { fail("\(flag): '\(text)' is not a count") }
      return n
    }
    while let argument = rest.popFirst() {
      switch argument {
      case "--model": model = value(argument)
      case "--batch": batch = max(1, number(argument))
      case "--reps": reps = max(1, number(argument))
      case "--batch1": batch1 = number(argument)
      case "--batch1-threads": batch1Threads = max(1, number(argument))
      case "--json": json = true
      case "--kernels":
        let name = value(argument)
        guard
          let set = BLAS.KernelSet.allCases.first(where: {
            $0.rawValue.lowercased() == name.lowercased()
          })
        else { fail("--kernels: '\(name)' is not one of SkylakeX, Haswell") }
        kernels = set
      case "-h", "--help":
        print(
          "usage: encoder-bench [--model DIR] [--batch N] [--reps N] [--batch1 N] [--json] FILE...")
        exit(0)
      default:
        if argument.hasPrefix("-") { fail("unknown option \(argument)") }
        files.append(argument)
      }
    }
    if files.isEmpty { fail("give at least one text file (one text per line)") }
  }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("encoder-bench: \(message)\n".utf8))
  exit(1)
}

func now() -> Double {
  var time = timespec()
  clock_gettime(CLOCK_MONOTONIC, &time)
  return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted.count % 2 == 1
    ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func percentile(_ values: [Double], _ p: Double) -> Double {
  let sorted = values.sorted()
  return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func summary(_ values: [Double], _ format: String = "%.1f") -> String {
  String(format: "\(format) [\(format)-\(format)]", median(values), values.min()!, values.max()!)
}

/// GFLOP/s of y = x·Wᵀ with x [m, k], W [n, k], split over all cores as the encoder does.
func sgemmRate(m: Int, n: Int, k: Int) -> Double {
  let x = [Float](repeating: 0.01, count: m * k)
  let w = [Float](repeating: 0.02, count: n * k)
  var y = [Float](repeating: 0, count: m * n)
  var rates: [Double] = []
  x.withUnsafeBufferPointer { x in
    w.withUnsafeBufferPointer { w in
      y.withUnsafeMutableBufferPointer { y in
        for _ in 0..<5 {
          let start = now()
          var calls = 0
          repeat {
            // Rows split over the cores (each a full-width product), as the encoder's
            // batches are.
            let parts = Parallel.split(m, into: Parallel.coreCount)
            Parallel.forEach(parts.count) { i in
              BLAS.gemm(
                .none, .transposed, m: parts[i].count, n: n, k: k,
                a: x.baseAddress! + parts[i].lowerBound * k, lda: k, b: w.baseAddress!, ldb: k,
                c: y.baseAddress! + parts[i].lowerBound * n, ldc: n)
            }
            calls += 1
          } while now() - start < 0.3
          rates.append(2.0 * Double(m * n * k) * Double(calls) / (now() - start) / 1e9)
        }
      }
    }
  }
  return rates.max()!
}

/// Forward-pass floating-point operations for one sequence of `t` tokens.
func flops(tokens t: Int, config: BertConfig) -> Double {
  let h = Double(config.hiddenSize)
  let i = Double(config.intermediateSize)
  let t = Double(t)
  let linear = 2 * t * (4 * h * h + 2 * h * i)
  let attention = 2 * 2 * t * t * h
  return Double(config.layerCount) * (linear + attention)
}

let options = Options(arguments: CommandLine.arguments)
if let kernels = options.kernels, !BLAS.use(kernels) {
  fail("OpenBLAS cannot use the \(kernels.rawValue) kernels on this machine")
}
let loadStart = now()
let encoder: SentenceEncoder
do {
  encoder = try SentenceEncoder(directory: URL(fileURLWithPath: options.model))
} catch {
  fail("\(error)")
}
let loadSeconds = now() - loadStart
var report: [String: Any] = [
  "model": options.model, "batch": options.batch, "reps": options.reps,
  "cores": Parallel.coreCount, "blas_core": BLAS.coreName, "load_seconds": loadSeconds,
]
var lines: [String] = [
  "vdb encoder: \(Parallel.coreCount) cores, OpenBLAS kernels \(BLAS.coreName);"
    + " model loaded in \(String(format: "%.2f", loadSeconds)) s",
  "batch \(options.batch), 1 warm-up + \(options.reps) timed passes, median [min-max]",
]

let peak = [
  sgemmRate(m: 4096, n: 1536, k: 384), sgemmRate(m: 4096, n: 384, k: 1536),
  sgemmRate(m: 2048, n: 2048, k: 2048),
].max()!
report["sgemm_peak_gflops"] = peak
lines.append(String(format: "sgemm peak (x·Wᵀ, all cores)  %.0f GFLOP/s", peak))

var lastTexts: [String] = []
for file in options.files {
  guard let content = try? String(contentsOfFile: file, encoding: .utf8) else {
    fail("cannot read \(file)")
  }
  let texts = content.split(separator: "\n").map(String.init).filter {
    !$0.trimmingCharacters(in: .whitespaces).isEmpty
  }
  guard !texts.isEmpty else { fail("\(file) holds no texts") }
  lastTexts = texts
  let tokenCounts = texts.map { encoder.tokenize($0).count }
  let tokens = tokenCounts.reduce(0, +)
  let work = tokenCounts.map { flops(tokens: $0, config: encoder.config) }.reduce(0, +)

  // Tokenizer alone, one thread.
  var tokenizerRates: [Double] = []
  for _ in 0..<options.reps {
    let start = now()
    var produced = 0
    repeat {
      for text in texts { produced += encoder.tokenize(text).count }
    } while now() - start < 0.2
    tokenizerRates.append(Double(produced) / (now() - start))
  }

  _ = encoder.embedMatrix(texts, batchSize: options.batch)
  var seconds: [Double] = []
  for _ in 0..<options.reps {
    let start = now()
    _ = encoder.embedMatrix(texts, batchSize: options.batch)
    seconds.append(now() - start)
  }
  let sentences = seconds.map { Double(texts.count) / $0 }
  let gflops = seconds.map { work / $0 / 1e9 }
  let meanTokens = Double(tokens) / Double(texts.count)
  report[file] = [
    "texts": texts.count, "mean_tokens": meanTokens,
    "sentences_per_s": median(sentences), "sentences_per_s_min": sentences.min()!,
    "sentences_per_s_max": sentences.max()!, "tokens_per_s": median(sentences) * meanTokens,
    "gflops": median(gflops), "fraction_of_peak": median(gflops) / peak,
    "tokenizer_tokens_per_s": median(tokenizerRates),
  ]
  lines += [
    "\(file): \(texts.count) texts, tokens/text mean "
      + String(format: "%.1f [%d-%d]", meanTokens, tokenCounts.min()!, tokenCounts.max()!),
    "  sentences/s   " + summary(sentences),
    "  tokens/s      " + String(format: "%.0f", median(sentences) * meanTokens),
    "  GFLOP/s       " + summary(gflops, "%.0f")
      + String(format: "  (%.0f%% of sgemm peak)", 100 * median(gflops) / peak),
    "  tokenizer     "
      + String(format: "%.2f M tokens/s (one thread)", median(tokenizerRates) / 1e6),
  ]
}

if options.batch1 > 0 {
  let texts = Array(lastTexts.prefix(options.batch1))
  for text in texts.prefix(10) { _ = encoder.embed(text) }
  var p50s: [Double] = []
  var p95s: [Double] = []
  for _ in 0..<2 {
    var latencies: [Double] = []
    for text in texts {
      let start = now()
      _ = encoder.embedMatrix([text], threads: options.batch1Threads)
      latencies.append((now() - start) * 1000)
    }
    p50s.append(percentile(latencies, 0.5))
    p95s.append(percentile(latencies, 0.95))
  }
  report["batch1"] = ["texts": texts.count, "p50_ms": median(p50s), "p95_ms": median(p95s)]
  lines.append(
    "batch 1 (\(texts.count) texts of \(options.files.last!), one call each,"
      + " \(options.batch1Threads) threads): "
      + String(format: "p50 %.2f ms, p95 %.2f ms", median(p50s), median(p95s)))
}

if options.json {
  let data = try JSONSerialization.data(
    withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
  print(String(decoding: data, as: UTF8.self))
} else {
  print(lines.joined(separator: "\n"))
}
