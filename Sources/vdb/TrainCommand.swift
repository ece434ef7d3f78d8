import ArgumentParser
import Foundation
import VectorDB

extension TrainingOptions.Tier: ExpressibleByArgument {}
extension MatmulPrecision: ExpressibleByArgument {}

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Fine-tune the retriever on the query log; promote it only if judged queries improve.",
    discussion: """
      Training pairs are the logged queries with relevant feedback (clicks, \
      corrections, judgements); hard negatives are mined with the current model. \
      The gate judges the candidate on queries it never trained on: below 400 judged \
      queries it cross-fits (3 folds: each fold judged by a candidate trained on the \
      others, so every judged query votes; the published model then trains on all), \
      else it holds out 20% (--held-out). A candidate is promoted only when the 95% \
      interval of the nDCG@10 change lies above zero (paired bootstrap).

      Tiers: `full` trains the whole encoder (lr 5e-5, 3 epochs, 1 hard negative). \
      The gate re-scores a pool per query (the current top 100 plus the judged \
      documents), so a rejected candidate embeds no corpus; a promoted one is stored \
      and re-embeds the corpus into a new generation (a resumable job; queries keep \
      using the active generation). `adapter` trains a map of the query vectors \
      against the stored document vectors (lr 1e-3): seconds, no re-embedding, \
      instant to activate and to roll back. `lora` trains low-rank adapters on the \
      attention projections like `full` (lr 1e-4, --lora-rank); stored as a few MB \
      over the parent model, even when rejected; a promoted one re-embeds like `full`. \
      `fusion` fits hybrid search's weight alpha on the judged queries (seconds; \
      `vdb models fusion` lists the versions, `vdb models rollback --fusion` undoes one).

      Examples:
        vdb train -c scifact --dry-run                   what would be trained on
        vdb train -c scifact                             train, gate, maybe switch
        vdb train -c scifact --tier adapter              the query-side adapter
        vdb train -c scifact --tier fusion               hybrid search's weight alpha
        vdb train -c scifact --no-wait                   re-embed in the background
        vdb train -c scifact --resume                    continue an interrupted run
        vdb train -c scifact --report train.html         also write an HTML report

      JSON: {"tier", "model_version", "promoted", "reason", "gate": {"delta",
      "ci_low", "ci_high", "queries", "promoted", "method", "folds",
      "documents_embedded"}, "heldout_before": {…}, "heldout_after": {…},
      "changes": […], "data": {…}, "losses": […], "generation", "reembedded",
      "seconds", …}
      """)

  /// The library's recipe: the flags' defaults are its fields, so they live in one place.
  private static let defaults = TrainingOptions()

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "Passes over the training pairs (default: 3 full and lora, 10 adapter).")
  var epochs: Int?
  @Option(help: "Pairs per step (in-batch negatives).") var batchSize = defaults.batchSize
  @Option(
    help: "GradCache mini-batch: embed a step's batch in chunks of N (same result, less memory).")
  var miniBatch: Int?
  @Option(help: "Peak learning rate (default: 5e-5 full, 1e-4 lora, 1e-3 adapter).")
  var lr: Double?
  @Option(
    help:
      "full (the whole encoder), lora (low-rank adapters on it), adapter (query side only) or fusion (hybrid's alpha)."
  )
  var tier = TrainingOptions.Tier.full
  @Option(help: "Rank of the lora tier's adapters, 1-256 (alpha = 2 x rank; default 16).")
  var loraRank: Int?
  @Option(
    help:
      "Products of the encoder's layers: float32, or bfloat16 summed in float32 (default: bfloat16 where the CPU has AMX or AVX-512 BF16)."
  )
  var matmulPrecision: MatmulPrecision?
  @Option(help: "Tokens per training sequence (2 up to the model's maximum).")
  var maxSeqLength = defaults.maxSequenceLength
  @Option(help: "Mined hard negatives per pair (0-10).") var hardNegatives = defaults.hardNegatives
  @Option(help: "Ranked candidates looked at per query when mining negatives.")
  var miningDepth = defaults.miningDepth
  @Option(help: "Gate folds: 1 a held-out split, 2+ cross-fitting (default: automatic).")
  var folds: Int?
  @Option(help: "With a held-out split: the share of judged queries held out.")
  var heldOut = defaults.heldOutFraction
  @Option(help: "Documents per gate query a full-tier candidate re-scores (its pool).")
  var gatePool = defaults.gatePool
  @Option(help: "Random documents of the corpus added to every pool (catches wild rankings).")
  var gateSample = defaults.gateSample
  @Option(help: "Documents per transaction when a promoted candidate re-embeds the corpus.")
  var reembedBatchSize = defaults.reembedBatchSize
  @Option(help: "Random seed (batches, dropout, folds).") var seed = defaults.seed
  @Option(help: "Save a checkpoint every N steps.") var checkpointEvery = defaults.checkpointEvery
  @Flag(help: "Continue the last interrupted run.") var resume = false
  @Flag(help: "Show the mined data and what the gate can tell; train nothing.") var dryRun = false
  @Flag(help: "Promote even if the gate says no.") var force = false
  @Flag(help: "Keep a rejected full-tier candidate's weights (default: lineage only).")
  var keepRejected = false
  @Flag(help: "Return once the candidate is stored; re-embed in a background `vdb reembed`.")
  var noWait = false
  @Option(help: "Also write the report as a self-contained HTML page to this file.")
  var report: String?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if let lr, !(lr > 0 && lr <= 1) {
      throw ValidationError("--lr must be a positive number, at most 1")
    }
    try Counts.check(
      "train",
      [
        "--epochs": epochs, "--batch-size": batchSize, "--mini-batch": miniBatch,
        "--hard-negatives": hardNegatives, "--lora-rank": loraRank,
        "--mining-depth": miningDepth, "--folds": folds, "--gate-pool": gatePool,
        "--gate-sample": gateSample, "--reembed-batch-size": reembedBatchSize,
        "--checkpoint-every": checkpointEvery,
      ])
    guard heldOut > 0 && heldOut < 1 else {
      throw ValidationError("--held-out must be between 0 and 1 (exclusive)")
    }
    if loraRank != nil && tier != .lora {
      throw ValidationError("--lora-rank applies to --tier lora")
    }
    if matmulPrecision != nil && tier != .full && tier != .lora {
      throw ValidationError("--matmul-precision applies to --tier full and lora")
    }
  }

  var options: TrainingOptions {
    var options = TrainingOptions()
    options.tier = tier
    options.loraRank = loraRank ?? options.loraRank
    options.matmulPrecision = matmulPrecision
    options.epochs = epochs
    options.batchSize = batchSize
    options.miniBatchSize = miniBatch
    options.learningRate = lr
    options.maxSequenceLength = maxSeqLength
    options.hardNegatives = hardNegatives
    options.miningDepth = miningDepth
    options.folds = folds
    options.heldOutFraction = heldOut
    options.gatePool = gatePool
    options.gateSample = gateSample
    options.seed = seed
    options.checkpointEvery = checkpointEvery
    options.resume = resume
    options.force = force
    options.keepRejected = keepRejected
    options.waitForReembed = !noWait
    options.reembedBatchSize = reembedBatchSize
    return options
  }

  func run() throws {
    if let report { try checkWritable(report, database: database.path) }
    let collection = try database.open().collection(try target.name(), create: false)
    if dryRun {
      let data = try collection.trainingData(options: options)
      if output.isJSON { return try Terminal.printJSON(data) }
      print(
        "\(data.judgedQueries) judged queries; \(data.trainPairs) training pairs from"
          + " \(data.trainQueries) queries, \(data.negatives) hard negatives")
      let voters = data.alreadyTrained > 0 ? "" : "all "
      print(
        data.folds > 1
          ? "the gate cross-fits \(data.folds) folds: \(voters)\(data.heldOutQueries) judged queries vote"
          : "\(data.heldOutQueries) queries held out for the gate")
      if data.alreadyTrained > 0 {
        print(
          "\(data.alreadyTrained) judged queries trained the current retriever: they train,"
            + " but do not vote (the current model would be scored on them in-sample)")
      }
      if data.heldOutQueries < data.queriesNeeded {
        print(
          "note: about \(data.queriesNeeded) voting queries are needed for a gain of +0.02"
            + " nDCG@10 to be told from noise; smaller logs pass only larger gains")
      }
      return
    }
    let stages = StageLines()
    let report = try collection.train(options: options) { stage in
      switch stage {
      case .mining(let progress): try stages.line("mine", unit: "queries").update(progress)
      case .evaluating(let progress):
        try stages.line("evaluate", unit: "queries").update(progress)
      case .embedding(let progress): try stages.line("embed", unit: "docs").update(progress)
      case .training(let step, let fold, let folds):
        let label = folds > 1 ? "train \(fold)/\(folds)" : "train"
        try stages.line(label, unit: "steps").update(
          OperationProgress(done: step.step, total: step.totalSteps),
          extra: String(format: ", loss %.4f, lr %.2e", step.loss, step.learningRate))
      }
    }
    stages.finish()
    if let page = self.report {
      do {
        let file = try OutputFile(page)
        try file.write(Data(report.htmlPage(collection: collection.name).utf8))
        try file.commit()
      } catch {
        throw CLIError(
          message: "cannot write the report: \(error)",
          hint: "the training itself finished: `vdb models` shows model v\(report.modelVersion)")
      }
    }
    if noWait && report.promoted && [.full, .lora].contains(report.tier) {
      try startBackgroundReembed(collection: collection.name)
    }
    if output.isJSON { return try Terminal.printJSON(report) }
    print(summary(report))
  }

  /// What a person reads after a run: data, loss curve, before/after, verdict, next step.
  private func summary(_ report: TrainingReport) -> String {
    var lines: [String] = []
    if let fusion = report.fusion {
      lines.append(
        String(format: "fitted fusion v%d: alpha %.2f", fusion.version, fusion.alpha)
          + " on \(report.data.judgedQueries) judged queries in \(Terminal.seconds(report.seconds))"
      )
    }
    let what = report.tier == .adapter ? "query adapter" : "model"
    let gate = report.gate
    if report.fusion == nil {
      // A cross-fitted run fits on all pairs only once the gate says yes: a rejected one
      // trained its fold candidates alone, and its version records the run.
      let foldsOnly = report.losses.isEmpty && gate.method == "cross_fit"
      lines.append(
        "trained "
          + (foldsOnly ? "\(gate.folds) fold candidates" : "\(what) v\(report.modelVersion)")
          + " on \(report.data.trainPairs) pairs"
          + " (\(report.data.negatives) hard negatives"
          + (report.options.matmulPrecision.map { ", \($0.rawValue) products" } ?? "")
          + ") in \(Terminal.seconds(report.trainingSeconds));"
          + " total \(Terminal.seconds(report.seconds))")
      if foldsOnly {
        lines.append(
          "none was fitted on all pairs, as the gate said no; \(what) v\(report.modelVersion)"
            + " records the run")
      }
    }
    if !report.losses.isEmpty {
      lines.append(
        "loss \(Terminal.sparkline(report.losses, width: 40))"
          + String(format: " %.3f → %.3f", report.losses.first!, report.losses.last!))
    }
    let judged =
      gate.method == "cross_fit"
      ? "\(gate.queries) judged queries, out of fold (\(gate.folds) folds)"
      : "\(gate.queries) held-out queries"
    lines.append(
      "gate: \(judged)"
        + (report.data.alreadyTrained > 0
          ? "; \(report.data.alreadyTrained) more trained the current retriever and do not vote"
          : ""))
    print(lines.joined(separator: "\n"))
    lines = []
    let keys = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"]
    Terminal.printTable(
      headers: ["metric", "before", "after", "change"],
      rows: keys.map { key in
        let before = report.heldOutBefore[key] ?? 0
        let after = report.heldOutAfter[key] ?? 0
        return [
          key, String(format: "%.4f", before), String(format: "%.4f", after),
          String(format: "%+.4f", after - before),
        ]
      })
    if !report.changes.isEmpty {
      print(
        "\njudged queries that changed most"
          + " (\(gate.method == "cross_fit" ? "out of fold" : "held out"),"
          + " rank of the relevant document):")
      Terminal.printTable(
        headers: ["before", "after", "query"],
        rows: report.changes.map { change in
          [
            change.rankBefore.map { "#\($0)" } ?? ">100",
            change.rankAfter.map { "#\($0)" } ?? ">100",
            change.query,
          ]
        }, flexibleColumn: 2)
    }
    lines.append((report.promoted ? "promoted: " : "") + report.reason)
    if report.promoted, report.tier != .adapter, report.tier != .fusion {
      lines.append(
        report.reembedded
          ? "generation \(report.generation ?? 0) is active (model v\(report.modelVersion))"
          : "generation \(report.generation ?? 0) is being built; `vdb status` shows it,"
            + " `vdb reembed -c \((try? target.name()) ?? "C")` resumes it")
    }
    return lines.joined(separator: "\n")
  }

  /// Starts `vdb reembed` for the collection as a detached process that outlives this one.
  private func startBackgroundReembed(collection: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    if !FileManager.default.isExecutableFile(atPath: process.executableURL!.path) {
      process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }
    // One argument each: a name that starts with "-" is never read as an option.
    process.arguments = ["reembed", "--collection=\(collection)", "--db=\(database.path)"]
    let log = database.path + "/reembed.log"
    _ = FileManager.default.createFile(atPath: log, contents: nil)  // else the next line throws
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    Terminal.warn(
      "re-embedding in the background (process \(process.processIdentifier), log \(log))")
  }
}

/// One progress line per stage, each left on screen when the next starts.
final class StageLines {
  private var current: (label: String, line: ProgressLine)?

  func line(_ label: String, unit: String) -> ProgressLine {
    if let current, current.label == label { return current.line }
    current?.line.finish()
    let line = ProgressLine(label: label, unit: unit)
    current = (label, line)
    return line
  }

  func finish() { current?.line.finish() }
}

extension Terminal {
  /// `values` as a line of block characters (▁…█), averaged into at most `width` cells.
  static func sparkline(_ values: [Double], width: Int) -> String {
    guard let low = values.min(), let high = values.max(), !values.isEmpty else { return "" }
    let blocks = Array("▁▂▃▄▅▆▇█")
    let cells = min(width, values.count)
    return String(
      (0..<cells).map { cell in
        let part = values[(cell * values.count / cells)..<((cell + 1) * values.count / cells)]
        let mean = part.reduce(0, +) / Double(part.count)
        let level = high > low ? (mean - low) / (high - low) : 0
        return blocks[min(blocks.count - 1, Int(level * Double(blocks.count)))]
      })
  }
}
