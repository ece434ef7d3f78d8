// encoder-bench: throughput and latency of vdb's native sentence encoder, optionally
// side by side with the peer (sentence-transformers on PyTorch CPU).
//
// Measures, on the same texts as the peer script (../shared/bench/peer_embed.py):
//   - the machine's sgemm peak (large products, all cores, the way the encoder calls BLAS),
//   - tokenizer tokens/s (one thread),
//   - sentences/s for each text file at --batch (1 warm-up + --reps timed passes),
//     the GFLOP/s that implies and its fraction of the sgemm peak,
//   - batch-1 latency p50/p95 on the first --batch1 texts of the last file.
// Each measurement runs for every --precision (float32, bfloat16, int8, w8a8 by default), with
// the lower precision's vectors compared to float32's (min and mean cosine).
// With --peer PYTHON, each measurement is preceded by the peers' on the same texts and
// settings (batch, reps, threads): sentence-transformers (PyTorch) and ONNX Runtime
// float32 (Benchmarks/peers/peer_onnx.py; --no-onnx skips it), and the report gives
// vdb/peer ratios; --rounds N repeats the alternation. --cpu-time also reports processor seconds per pass
// (all threads), for vdb and the peer (from two peer runs of different length, so that
// start-up cancels out): a figure that a busy machine disturbs far less than wall time.
//
// Usage (release build, from the project root; --help lists the options):
//   swift build -c release --product encoder-bench
//   .build/release/encoder-bench [--peer .peer-venv/bin/python] [OPTIONS]
//       peer-results/passages.txt peer-results/short.txt
// Texts: one per line, as written by `peer_embed.py ... --dump-texts FILE`.

import ArgumentParser
import BenchmarkSupport
import Embedding
import Foundation
import Tensor

/// A case of `Value` named by its Swift name in any letter case (`--int8-kernel avx2`,
/// `--kernels skylakex`).
struct CaseName<Value: CaseIterable>: ExpressibleByArgument {
  var value: Value
  init?(argument: String) {
    guard
      let value = Value.allCases.first(where: { "\($0)".lowercased() == argument.lowercased() })
    else { return nil }
    self.value = value
  }
  static var allValueStrings: [String] { Value.allCases.map { "\($0)" } }
}

extension SentenceEncoder.Precision: ExpressibleByArgument {}

struct Options: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "encoder-bench")
  @Option(help: "The model directory.") var model = SentenceEncoder.defaultModelDirectory.path
  @Option(help: "Texts per batch.") var batch = 32
  @Option(help: "Timed passes per file (after one warm-up).") var reps = 5
  @Option(help: "Batch-1 latency on the first N texts of the last file (0: skip).")
  var batch1 = 200
  @Option(help: "Threads for batch-1 calls.")
  var batch1Threads = Parallel.coreCount
  @Option(help: "Threads for batched calls.") var threads = Parallel.coreCount
  @Flag(name: .customLong("no-peak"), help: "Skip the sgemm peak.") var skipPeak = false
  @Option(help: "OpenBLAS kernel set (default: OPENBLAS_CORETYPE if set, else the best).")
  var kernels: CaseName<BLAS.KernelSet>?
  @Option(help: "Layers over at most N token rows skip BLAS (0: never).")
  var smallLinearRows = BLAS.smallLinearRows
  @Option(help: "Precisions, comma-separated.")
  var precision = CommaSeparated(SentenceEncoder.Precision.allCases)
  @Option(help: "bfloat16 kernel (default: the widest the CPU has).")
  var bf16Kernel: CaseName<PackedWeights.KernelLevel>?
  @Option(help: "int8 and w8a8 kernel (default: the widest the CPU has).")
  var int8Kernel: CaseName<PackedWeights.KernelLevel>?
  @Flag(help: "Also report processor seconds per pass (all threads), vdb and the peer.")
  var cpuTime = false
  @Flag(help: "Print the figures as JSON.") var json = false
  @Option(
    name: .customLong("peer"),
    help: ArgumentHelp("Run the peers with this Python, back to back.", valueName: "python"))
  var peerPython: String?
  @Option(help: "The sentence-transformers peer's script.")
  var peerScript = "../shared/bench/peer_embed.py"
  @Option(name: .customLong("onnx-script"), help: "The ONNX Runtime peer's script.")
  var onnxScriptPath = "Benchmarks/peers/peer_onnx.py"
  @Flag(name: .customLong("no-onnx"), help: "Skip the ONNX Runtime peer.") var skipONNX = false
  @Option(help: "Alternations of vdb and the peers.") var rounds = 1
  @Argument(help: "Text files, one text per line.") var files: [String]

  var measurePeak: Bool { !skipPeak }
  var onnxScript: String? { skipONNX ? nil : onnxScriptPath }
  var precisions: [SentenceEncoder.Precision] { precision.values }

  func validate() throws {
    for (name, value) in [
      ("--batch", batch), ("--reps", reps), ("--batch1-threads", batch1Threads),
      ("--threads", threads), ("--rounds", rounds),
    ] where value < 1 {
      throw ValidationError("\(name) must be at least 1; it is \(value)")
    }
    guard batch1 >= 0, smallLinearRows >= 0 else {
      throw ValidationError("--batch1 and --small-linear-rows are counts (≥ 0)")
    }
  }
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("encoder-bench: \(message)\n".utf8))
  exit(1)
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

/// The peer script's figures for `file`: median sentences/s, or batch-1 p50/p95 ms.
struct PeerResult {
  var sentencesPerSecond: Double
  var p50: Double?
  var p95: Double?
}

func runPeer(
  _ options: Options, file: String, batch1Limit: Int? = nil, passes: Int? = nil,
  script: String? = nil
) -> PeerResult {
  guard let python = options.peerPython else { fail("no --peer") }
  let script = script ?? options.peerScript
  let output = FileManager.default.temporaryDirectory
    .appendingPathComponent("encoder-bench-peer-\(getpid()).json")
  defer { try? FileManager.default.removeItem(at: output) }
  var arguments = [
    script, file, "--json", "--out", output.path, "--batch", String(options.batch),
    "--reps", String(passes ?? (batch1Limit == nil ? options.reps : 2)),
    "--threads", String(options.threads),
  ]
  if passes != nil { arguments += ["--warmup", "0"] }
  if let limit = batch1Limit { arguments += ["--batch1", "--limit", String(limit)] }
  let json: [String: Any]
  do {
    json = try peerReport(python: python, arguments: arguments, reportFile: output.path)
  } catch {
    fail("the peer failed on \(file): \(error)")
  }
  func median(_ key: String) -> Double? {
    (json[key] as? [String: Any])?["median"] as? Double
  }
  return PeerResult(
    sentencesPerSecond: median("sentences_per_sec") ?? 0, p50: median("latency_ms_p50"),
    p95: median("latency_ms_p95"))
}

/// The peer's processor seconds per pass over `file`: two runs without warm-up, of
/// 1 and 1 + `options.reps` passes; the difference cancels start-up and model loading.
func peerCPUSecondsPerPass(file: String) -> Double {
  let start = cpuSeconds(children: true)
  _ = runPeer(options, file: file, passes: 1)
  let short = cpuSeconds(children: true)
  _ = runPeer(options, file: file, passes: 1 + options.reps)
  let long = cpuSeconds(children: true)
  return ((long - short) - (short - start)) / Double(options.reps)
}

/// vdb's throughput on `texts`: sentences/s of each timed pass, and the processor
/// seconds each pass used.
func measureThroughput(
  _ encoder: SentenceEncoder, _ texts: [String]
) -> (sentences: [Double], cpuSeconds: [Double]) {
  _ = encoder.embedMatrix(texts, batchSize: options.batch, threads: options.threads)
  var sentences: [Double] = []
  var processor: [Double] = []
  for _ in 0..<options.reps {
    let start = now()
    let cpuStart = cpuSeconds()
    _ = encoder.embedMatrix(texts, batchSize: options.batch, threads: options.threads)
    sentences.append(Double(texts.count) / (now() - start))
    processor.append(cpuSeconds() - cpuStart)
  }
  return (sentences, processor)
}

/// vdb's batch-1 latency on `texts`, one call each: p50 and p95 in ms (medians of 2 passes).
func measureLatency(_ encoder: SentenceEncoder, _ texts: [String]) -> (p50: Double, p95: Double) {
  for text in texts.prefix(10) { _ = encoder.embedMatrix([text], threads: options.batch1Threads) }
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
  return (median(p50s), median(p95s))
}

func readTexts(_ file: String) -> [String] {
  guard let content = try? String(contentsOfFile: file, encoding: .utf8) else {
    fail("cannot read \(file)")
  }
  let texts = content.split(separator: "\n").map(String.init).filter {
    !$0.trimmingCharacters(in: .whitespaces).isEmpty
  }
  guard !texts.isEmpty else { fail("\(file) holds no texts") }
  return texts
}

/// Min and mean cosine between the rows of two `[n, d]` matrices.
func agreement(_ a: Tensor, _ b: Tensor) -> (min: Double, mean: Double) {
  let n = a.shape[0]
  let d = a.shape[1]
  var cosines: [Double] = []
  for row in 0..<n {
    var (dot, aa, bb) = (0.0, 0.0, 0.0)
    for j in 0..<d {
      let x = Double(a.values[row * d + j])
      let y = Double(b.values[row * d + j])
      dot += x * y
      aa += x * x
      bb += y * y
    }
    cosines.append(dot / (aa * bb).squareRoot())
  }
  return (cosines.min()!, cosines.reduce(0, +) / Double(n))
}

let options = Options.parseOrExit()
BLAS.smallLinearRows = options.smallLinearRows
if let level = options.bf16Kernel { PackedWeights.KernelLevel.use(level.value, for: .bfloat16) }
if let level = options.int8Kernel {
  PackedWeights.KernelLevel.use(level.value, for: .int8)
  PackedWeights.KernelLevel.use(level.value, for: .w8a8)
}
if let kernels = options.kernels?.value, !BLAS.use(kernels) {
  fail("OpenBLAS cannot use the \(kernels.rawValue) kernels on this machine")
}
let loadStart = now()
let float32Encoder: SentenceEncoder
let encoders: [(precision: SentenceEncoder.Precision, encoder: SentenceEncoder)]
do {
  float32Encoder = try SentenceEncoder(directory: URL(fileURLWithPath: options.model))
  encoders = try options.precisions.map { precision in
    (
      precision,
      precision == .float32
        ? float32Encoder
        : try SentenceEncoder(directory: URL(fileURLWithPath: options.model), precision: precision)
    )
  }
} catch {
  fail("\(error)")
}
let loadSeconds =
  (now() - loadStart) / Double(1 + encoders.filter { $0.precision != .float32 }.count)
let peers: [(name: String, script: String)] =
  options.peerPython == nil
  ? []
  : [("sentence-transformers", options.peerScript)]
    + (options.onnxScript.map { [("onnxruntime", $0)] } ?? [])
var report: [String: Any] = [
  "model": options.model, "batch": options.batch, "reps": options.reps,
  "cores": Parallel.coreCount, "blas_core": BLAS.coreName, "load_seconds": loadSeconds,
  "cpu_flags": cpuFlags(), "bf16_kernel": "\(PackedWeights.KernelLevel.current(.bfloat16))",
  "int8_kernel": "\(PackedWeights.KernelLevel.current(.int8))",
  "w8a8_kernel": "\(PackedWeights.KernelLevel.current(.w8a8))",
  "vector_kernel": Kernels.vectorLevel,
]
var lines: [String] = [
  "vdb encoder: \(Parallel.coreCount) cores, OpenBLAS kernels \(BLAS.coreName),"
    + " bfloat16 kernel \(PackedWeights.KernelLevel.current(.bfloat16).name(.bfloat16)),"
    + " int8 kernel \(PackedWeights.KernelLevel.current(.int8).name(.int8)),"
    + " w8a8 kernel \(PackedWeights.KernelLevel.current(.w8a8).name(.w8a8)),"
    + " GELU, softmax and attention \(Kernels.vectorLevel);"
    + " model loaded in \(String(format: "%.2f", loadSeconds)) s",
  "CPU flags: \(cpuFlags())",
  "batch \(options.batch), 1 warm-up + \(options.reps) timed passes, median [min-max]",
]

let peak =
  options.measurePeak
  ? [
    sgemmRate(m: 4096, n: 1536, k: 384), sgemmRate(m: 4096, n: 384, k: 1536),
    sgemmRate(m: 2048, n: 2048, k: 2048),
  ].max()! : .nan
report["sgemm_peak_gflops"] = peak
if options.measurePeak {
  lines.append(String(format: "sgemm peak (x·Wᵀ, all cores)  %.0f GFLOP/s", peak))
}

for file in options.files {
  let texts = readTexts(file)
  let tokenCounts = texts.map { float32Encoder.tokenize($0).count }
  let tokens = tokenCounts.reduce(0, +)
  let meanTokens = Double(tokens) / Double(texts.count)
  let work = tokenCounts.map { flops(tokens: $0, config: float32Encoder.config) }.reduce(0, +)

  // Tokenizer alone, one thread.
  var tokenizerRates: [Double] = []
  for _ in 0..<options.reps {
    let start = now()
    var produced = 0
    repeat {
      for text in texts { produced += float32Encoder.tokenize(text).count }
    } while now() - start < 0.2
    tokenizerRates.append(Double(produced) / (now() - start))
  }
  lines += [
    "\(file): \(texts.count) texts, tokens/text mean "
      + String(format: "%.1f [%d-%d]", meanTokens, tokenCounts.min()!, tokenCounts.max()!),
    "  tokenizer     "
      + String(format: "%.2f M tokens/s (one thread)", median(tokenizerRates) / 1e6),
  ]
  var entry: [String: Any] = [
    "texts": texts.count, "mean_tokens": meanTokens,
    "tokenizer_tokens_per_s": median(tokenizerRates),
  ]

  var sentences: [[Double]] = Array(repeating: [], count: encoders.count)
  var processor: [[Double]] = Array(repeating: [], count: encoders.count)
  var peerSentences: [[Double]] = Array(repeating: [], count: peers.count)
  var peerProcessor: [Double] = []
  for _ in 0..<options.rounds {
    for (index, peer) in peers.enumerated() {
      peerSentences[index].append(
        runPeer(options, file: file, script: peer.script).sentencesPerSecond)
    }
    if options.cpuTime && !peers.isEmpty {
      peerProcessor.append(peerCPUSecondsPerPass(file: file))
    }
    for (index, candidate) in encoders.enumerated() {
      let measured = measureThroughput(candidate.encoder, texts)
      sentences[index] += measured.sentences
      processor[index] += measured.cpuSeconds
    }
  }
  let reference = float32Encoder.embedMatrix(texts, batchSize: options.batch)
  for (index, candidate) in encoders.enumerated() {
    let sentences = sentences[index]
    let processor = processor[index]
    let gflops = sentences.map { work * $0 / Double(texts.count) / 1e9 }
    var figures: [String: Any] = [
      "sentences_per_s": median(sentences), "sentences_per_s_min": sentences.min()!,
      "sentences_per_s_max": sentences.max()!, "tokens_per_s": median(sentences) * meanTokens,
      "gflops": median(gflops), "fraction_of_peak": median(gflops) / peak,
      "cpu_seconds_per_pass": median(processor),
    ]
    lines += [
      "  \(candidate.precision)",
      "    sentences/s   " + summary(sentences),
      "    tokens/s      " + String(format: "%.0f", median(sentences) * meanTokens),
      "    GFLOP/s       " + summary(gflops, digits: 0)
        + (peak.isNaN
          ? "" : String(format: "  (%.0f%% of sgemm peak)", 100 * median(gflops) / peak)),
    ]
    if candidate.precision != .float32 {
      let vectors = candidate.encoder.embedMatrix(texts, batchSize: options.batch)
      let (least, mean) = agreement(vectors, reference)
      figures["cosine_to_float32_min"] = least
      figures["cosine_to_float32_mean"] = mean
      lines.append(
        String(format: "    cosine to float32: min %.6f, mean %.6f", least, mean))
    }
    if options.cpuTime {
      lines.append(
        "    CPU-s/pass    " + summary(processor, digits: 2)
          + String(
            format: "  (%.1f sentences per CPU-second)", Double(texts.count) / median(processor)))
    }
    if !peerProcessor.isEmpty {
      lines.append(
        String(
          format: "    vdb/sentence-transformers sentences per CPU-second %.2f×",
          median(peerProcessor) / median(processor)))
    }
    for (peerIndex, peer) in peers.enumerated() {
      let ratio = median(sentences) / median(peerSentences[peerIndex])
      figures["ratio_to_\(peer.name)"] = ratio
      lines.append(String(format: "    vdb/\(peer.name) %.2f×", ratio))
    }
    entry["\(candidate.precision)"] = figures
  }
  if !peerProcessor.isEmpty {
    entry["peer_cpu_seconds_per_pass"] = median(peerProcessor)
    lines.append("  sentence-transformers CPU-s/pass " + summary(peerProcessor, digits: 2))
  }
  for (index, peer) in peers.enumerated() {
    entry["\(peer.name)_sentences_per_s"] = median(peerSentences[index])
    lines.append(
      "  \(peer.name) " + summary(peerSentences[index])
        + " sentences/s (medians of its passes)")
  }
  report[file] = entry
}

if options.batch1 > 0 {
  let file = options.files.last!
  let texts = Array(readTexts(file).prefix(options.batch1))
  var p50s: [[Double]] = Array(repeating: [], count: encoders.count)
  var p95s: [[Double]] = Array(repeating: [], count: encoders.count)
  var peerP50s: [[Double]] = Array(repeating: [], count: peers.count)
  var peerP95s: [[Double]] = Array(repeating: [], count: peers.count)
  for _ in 0..<options.rounds {
    for (index, peer) in peers.enumerated() {
      let result = runPeer(options, file: file, batch1Limit: texts.count, script: peer.script)
      peerP50s[index].append(result.p50 ?? 0)
      peerP95s[index].append(result.p95 ?? 0)
    }
    for (index, candidate) in encoders.enumerated() {
      let (p50, p95) = measureLatency(candidate.encoder, texts)
      p50s[index].append(p50)
      p95s[index].append(p95)
    }
  }
  var entry: [String: Any] = ["texts": texts.count, "threads": options.batch1Threads]
  lines.append(
    "batch 1 (\(texts.count) texts of \(file), one call each, \(options.batch1Threads) threads):")
  for (index, candidate) in encoders.enumerated() {
    var figures: [String: Any] = ["p50_ms": median(p50s[index]), "p95_ms": median(p95s[index])]
    var line =
      "  \(candidate.precision) "
      + String(format: "p50 %.2f ms, p95 %.2f ms", median(p50s[index]), median(p95s[index]))
    for (peerIndex, peer) in peers.enumerated() {
      let ratio = median(peerP50s[peerIndex]) / median(p50s[index])
      figures["p50_ratio_\(peer.name)_to_vdb"] = ratio
      line += String(format: ";  \(peer.name)/vdb p50 %.2f×", ratio)
    }
    entry["\(candidate.precision)"] = figures
    lines.append(line)
  }
  for (index, peer) in peers.enumerated() {
    entry["\(peer.name)_p50_ms"] = median(peerP50s[index])
    entry["\(peer.name)_p95_ms"] = median(peerP95s[index])
    lines.append(
      String(
        format: "  \(peer.name) p50 %.2f ms, p95 %.2f ms", median(peerP50s[index]),
        median(peerP95s[index])))
  }
  report["batch1"] = entry
}

if options.json {
  try printJSON(report)
} else {
  print(lines.joined(separator: "\n"))
}
