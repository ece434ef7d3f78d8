import ArgumentParser
import Foundation
import VectorDB

extension TrainingOptions.Tier: ExpressibleByArgument {}

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Fine-tune the encoder on the query log; promote it only if held-out quality improves.",
    discussion: """
      Training pairs are the logged queries with relevant feedback (clicks, \
      corrections, judgements); hard negatives are mined with the current model. \
      20% of the judged queries (--held-out) are held out: the candidate is promoted only when \
      held-out nDCG@10 improves beyond noise (paired bootstrap). A rejected \
      candidate is kept as a model version.

      Tiers: `full` trains the whole encoder (lr 2e-5); a promoted candidate \
      re-embeds the corpus into a new generation. `adapter` trains a map of the \
      query vectors against the stored document vectors (lr 1e-3): seconds to \
      train, no re-embedding, instant to activate and to roll back.

      Examples:
        vdb train -c scifact --dry-run                   what would be trained on
        vdb train -c scifact --epochs 1 --batch-size 32  train, gate, maybe switch
        vdb train -c scifact --tier adapter              the query-side adapter
        vdb train -c scifact --resume                    continue an interrupted run

      JSON: {"tier", "model_version", "promoted", "reason", "heldout_before": {…},
      "heldout_after": {…}, "train_pairs", "seconds", …}
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "Passes over the training pairs (default: 1 full, 10 adapter).") var epochs: Int?
  @Option(help: "Pairs per step (in-batch negatives).") var batchSize = 32
  @Option(help: "Peak learning rate (default: 2e-5 full, 1e-3 adapter).") var lr: Double?
  @Option(help: "full (the whole encoder; re-embeds the corpus) or adapter (query side only).")
  var tier = TrainingOptions.Tier.full
  @Option(help: "Tokens per training sequence.") var maxSeqLength = 128
  @Option(help: "Mined hard negatives per pair (0-3).") var hardNegatives = 1
  @Option(help: "Share of the judged queries held out for the gate.") var heldOut = 0.2
  @Option(help: "Random seed (batches, dropout, split).") var seed: UInt64 = 42
  @Option(help: "Save a checkpoint every N steps.") var checkpointEvery = 20
  @Flag(help: "Continue the last interrupted run.") var resume = false
  @Flag(help: "Show the mined data and exit.") var dryRun = false
  @Flag(help: "Promote even if the gate says no.") var force = false
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
    if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    guard heldOut > 0 && heldOut < 1 else {
      throw ValidationError("--held-out must be between 0 and 1 (exclusive)")
    }
    guard (0...3).contains(hardNegatives) else {
      throw ValidationError("--hard-negatives must be 0...3")
    }
  }

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    var options = TrainingOptions()
    options.tier = tier
    options.epochs = epochs
    options.batchSize = batchSize
    options.learningRate = lr
    options.maxSequenceLength = maxSeqLength
    options.hardNegatives = hardNegatives
    options.seed = seed
    options.heldOutFraction = heldOut
    options.checkpointEvery = checkpointEvery
    options.resume = resume
    options.force = force
    if dryRun {
      let data = try collection.trainingData(options: options)
      if output.isJSON { return try Terminal.printJSON(data) }
      print(
        "\(data.trainPairs) training pairs from \(data.trainQueries) queries, \(data.negatives) hard negatives"
      )
      print("\(data.heldOutQueries) queries held out for the gate")
      return
    }
    let mining = ProgressLine(label: "mine", unit: "queries")
    let evaluating = ProgressLine(label: "evaluate", unit: "queries")
    let embedding = ProgressLine(label: "embed", unit: "docs")
    let training = ProgressLine(label: "train", unit: "steps")
    let report = try collection.train(options: options) { stage in
      switch stage {
      case .mining(let progress): try mining.update(progress)
      case .evaluating(let progress): try evaluating.update(progress)
      case .embedding(let progress): try embedding.update(progress)
      case .training(let step):
        try training.update(
          OperationProgress(done: step.step, total: step.totalSteps),
          extra: String(format: ", loss %.4f, lr %.2e", step.loss, step.learningRate))
      }
    }
    for line in [mining, evaluating, embedding, training] { line.finish() }
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "trained \(report.tier == .adapter ? "query adapter" : "model") v\(report.modelVersion) on \(report.data.trainPairs) pairs (\(report.data.negatives) hard negatives)"
        + " in \(Terminal.seconds(report.trainingSeconds)); total \(Terminal.seconds(report.seconds))"
    )
    let keys = ["ndcg@10", "mrr@10", "recall@10", "map@100"]
    Terminal.printTable(
      headers: ["held-out (\(report.data.heldOutQueries) queries)"] + keys,
      rows: [
        ["before"] + keys.map { String(format: "%.4f", report.heldOutBefore[$0] ?? 0) },
        ["after"] + keys.map { String(format: "%.4f", report.heldOutAfter[$0] ?? 0) },
      ])
    print((report.promoted ? "promoted: " : "") + report.reason)
  }
}
