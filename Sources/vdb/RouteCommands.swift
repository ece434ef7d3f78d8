import ArgumentParser
import Foundation
import VectorDB

extension RouteOutcome: ExpressibleByArgument {}
extension RouterTier: ExpressibleByArgument {}
extension RouterClassifierKind: ExpressibleByArgument {}

/// `vdb route`: routers trained from the log (docs/routing.md).
struct Route: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Decide which path handles a request with a router trained from the log.",
    discussion: """
      A router chooses among paths (a cheap specialist, an expensive generalist, one
      collection or another). It learns from logged outcomes and labelled examples: a
      classifier on the sentence embeddings of the database's encoder, calibrated,
      and activated only when held-out macro-F1 beats the active version beyond
      noise (docs/routing.md).

      Examples:
        vdb route create support faq=1 agent=20 --escalation agent
        vdb route import -r support examples.jsonl   {"input", "path"[, "outcome"]}
        vdb route log -r support --input "reset password" --path faq --outcome good
        vdb route train -r support --max-escalation 0.3
        vdb route -r support "where is my invoice"   route (logged; prints log ids)
        vdb route log -r support --id 42 --path faq --outcome bad
        vdb route entries -r support --pending       decisions without an outcome yet
        vdb route eval -r support test.jsonl
        vdb route diagnose -r support
        vdb route versions -r support
        vdb route rollback -r support
        vdb route drop support                       delete it, its versions, its log
      """,
    subcommands: [
      RouteRequest.self, RouteCreate.self, RouteList.self, RouteLog.self, RouteImport.self,
      RouteTrain.self, RouteEval.self, RouteDiagnose.self, RouteVersions.self, RouteRollback.self,
      RouteDrop.self, RouteEntries.self,
    ],
    defaultSubcommand: RouteRequest.self)
}

struct RouterOption: ParsableArguments {
  @Option(name: [.customShort("r"), .long], help: "The router.") var router: String

  func open(_ database: DatabaseOptions) throws -> Router {
    try database.open().router(router)
  }
}

struct RouteRequest: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "decide",
    abstract: "Route each TEXT (the default: `vdb route -r NAME TEXT...`).",
    discussion: """
      JSON: one line per input: {"path", "confidence", "probabilities": {path: p},
      "escalated", "log_id", "version"}.
      """)
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Argument(help: "The requests to route.") var texts: [String]
  @Flag(help: "Do not log the decisions.") var noLog = false
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if texts.isEmpty { throw ValidationError("give at least one TEXT to route") }
  }

  func run() throws {
    let db = try database.open()
    var decisions = try db.router(target.router).route(texts, log: !noLog)
    if !noLog, !logCommitted(db, what: texts.count == 1 ? "decision" : "decisions") {
      for index in decisions.indices { decisions[index].logID = nil }
    }
    if output.isJSON {
      for decision in decisions { try Terminal.printJSONLine(decision) }
      return
    }
    Terminal.printTable(
      headers: ["log id", "path", "confidence", "escalated", "input"],
      rows: zip(texts, decisions).map { text, decision in
        [
          decision.logID.map(String.init) ?? "-", decision.path,
          String(format: "%.3f", decision.confidence), decision.escalated ? "yes" : "no", text,
        ]
      }, flexibleColumn: 4)
  }
}

struct RouteCreate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "create", abstract: "Create a router with its paths (PATH or PATH=COST).")
  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The router's name.") var name: String
  @Argument(help: "Its paths, at least two: NAME or NAME=COST.") var paths: [String]
  @Option(help: "The path that takes requests the router is unsure of.") var escalation: String?
  @OptionGroup var output: OutputOptions

  func run() throws {
    let parsed = try paths.map { text -> RoutePath in
      let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { return RoutePath(name: text) }
      // Decimal only: Double("0x10") would read hexadecimal.
      let decimal = parts[1].allSatisfy { "0123456789.eE+-".contains($0) }
      guard decimal, let cost = Double(parts[1]) else {
        throw CLIError(
          message: "path \"\(text)\": the cost \"\(parts[1])\" is not a number",
          hint: "write a path as NAME or NAME=COST, e.g. faq=1")
      }
      return RoutePath(name: parts[0], cost: cost)
    }
    let router = try database.open().createRouter(name, paths: parsed, escalation: escalation)
    if output.isJSON { return try Terminal.printJSON(try router.summary()) }
    print(
      "created router \"\(name)\" with paths \(parsed.map(\.name).joined(separator: ", "))"
        + (escalation.map { "; escalates to \($0)" } ?? ""))
  }
}

struct RouteList: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "List the routers.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let summaries = try database.open(readOnly: true).routerSummaries()
    if output.isJSON {
      for summary in summaries { try Terminal.printJSONLine(summary) }
      return
    }
    printRouters(summaries)
  }
}

/// The routers as `vdb route list` and `vdb status` show them.
func printRouters(_ summaries: [Router.Summary]) {
  Terminal.printTable(
    headers: ["router", "active", "escalation", "paths"],
    rows: summaries.map { summary in
      [
        summary.name, summary.active.map { "v\($0)" } ?? "-", summary.escalation ?? "-",
        summary.paths.map { path in
          path.cost.map { "\(path.name)=" + String(format: "%g", $0) } ?? path.name
        }.joined(separator: " "),
      ]
    })
}

struct RouteDrop: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drop",
    abstract: "Delete a router and everything it owns (one transaction).",
    discussion: """
      Removes its versions and their weights, its log (decisions, outcomes and labelled \
      examples) and its inputs' stored vectors. Model versions stay.
      """)
  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The router to drop.") var name: String
  @OptionGroup var output: OutputOptions

  func run() throws {
    try database.open().dropRouter(name)
    if output.isJSON { return try Terminal.printJSON(["dropped": name]) }
    print("dropped router \"\(name)\"")
  }
}

struct RouteLog: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "log",
    abstract: "Record how a path did: for an input (--input) or a logged decision (--id).")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Option(help: "The request text.") var input: String?
  @Option(help: "The log id of a routing decision.") var id: UInt64?
  @Option(help: "The path that served it.") var path: String
  @Option(help: "good or bad.") var outcome: RouteOutcome
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if (input == nil) == (id == nil) { throw ValidationError("give either --input or --id") }
  }

  func run() throws {
    let router = try target.open(database)
    if let id {
      try router.record(outcome: outcome, path: path, for: id)
      if output.isJSON { return try Terminal.printJSON(["log_id": id]) }
      print("recorded: \(path) was \(outcome.rawValue) for decision \(id)")
    } else if let input {
      let logID = try router.record(input: input, path: path, outcome: outcome)
      if output.isJSON { return try Terminal.printJSON(["log_id": logID]) }
      print("recorded as log id \(logID): \(path) was \(outcome.rawValue)")
    }
  }
}

struct RouteEntries: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "entries",
    abstract: "List a router's log: decisions, outcomes and labelled examples, oldest first.",
    discussion: """
      JSON Lines: {"log_id", "time", "input", "label",
      "outcomes": {path: "good"|"bad"},
      "decision": {"path", "confidence", "escalated", "version"}} (null when absent).
      """)
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @OptionGroup var page: LogPage
  @Flag(help: "Only routing decisions without an outcome yet.") var pending = false
  @OptionGroup var output: OutputOptions

  func run() throws {
    let entries = try database.open(readOnly: true).router(target.router).logEntries(
      since: try page.cutoff(), after: page.after, pending: pending, limit: page.limit)
    if output.isJSON {
      for entry in entries { try Terminal.printJSONLine(entry) }
      return
    }
    let formatter = ISO8601DateFormatter()
    Terminal.printTable(
      headers: ["log id", "time", "kind", "path", "outcomes", "input"],
      rows: entries.map { entry in
        let kind = entry.decision != nil ? "decision" : entry.label != nil ? "label" : "outcome"
        return [
          String(entry.logID), formatter.string(from: entry.time), kind,
          entry.decision.map { $0.path + ($0.escalated ? " (escalated)" : "") } ?? entry.label
            ?? "-",
          entry.outcomes.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.rawValue)" }
            .joined(separator: " "),
          entry.input,
        ]
      }, flexibleColumn: 5)
  }
}

struct RouteImport: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract: "Import labelled examples: JSON Lines {\"input\", \"path\"[, \"outcome\"]}.",
    discussion: """
      A line without "outcome" says PATH is the input's best path; with "outcome":
      "good" or "bad", how PATH did. The whole file is checked first: a bad line is
      reported with its number and nothing is imported.
      """)
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Argument(help: "The JSON Lines file.") var file: String
  @OptionGroup var output: OutputOptions

  func run() throws {
    let report = try target.open(database).importJSONL(path: file)
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "imported \(Terminal.count(report.labelled, "labelled example")) and "
        + Terminal.count(report.outcomes, "outcome"))
  }
}

struct RouteTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a new router version from the log; activate it only if it is better.",
    discussion: """
      On the frozen sentence embeddings, cross-validation on the training split
      keeps shrunk LDA unless nearest centroid, a softmax head trained from the
      centroids (balanced class weights, AdamW) for a share of --epochs, or nearest
      examples clearly does better (--classifier picks one instead). --tier lora
      then trains the head with LoRA adapters on the encoder (minutes; the version
      stores the adapters, a few MB, and serves with them merged).
      --held-out of each path's inputs are held out: the gate (paired bootstrap of
      macro-F1 against the active version), the temperature and the threshold come
      from them. With an escalation path, --max-escalation or --min-quality picks
      the threshold.

      JSON: {"version", "activated", "reason", "examples", "metrics": {"macro_f1",
      "nearest_centroid_macro_f1", "ece_before", "ece_after", "threshold", …},
      "curve", "warnings", …}; a warning (also printed on stderr without --json)
      when the threshold sends to another path held-out inputs the classifier gives
      to the escalation path with probability ≥ 0.9.
      """)
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Option(help: "Most passes over the training examples (fewer when cross-validation says so).")
  var epochs = 100
  @Option(help: "Examples per step.") var batchSize = 32
  @Option(help: "Learning rate (AdamW).") var lr = 0.01
  @Option(help: "Share of each path's inputs held out.") var heldOut = 0.25
  @Option(help: "Random seed (batches, bootstrap; the held-out split is fixed).")
  var seed: UInt64 = 42
  @Option(help: "Escalate at most this share of requests (0-1).") var maxEscalation: Double?
  @Option(help: "Send at least this share of requests to a good path (0-1).")
  var minQuality: Double?
  @Flag(help: "Activate even if the gate says no.") var force = false
  @Option(
    help:
      "head: a classifier on the frozen embeddings; lora: then the head with LoRA adapters on the encoder."
  )
  var tier = RouterTier.head
  @Option(
    help: ArgumentHelp(
      "The classifier to fit, instead of the one cross-validation chooses.",
      valueName: RouterClassifierKind.allCases.map(\.rawValue).joined(separator: "|")))
  var classifier: RouterClassifierKind?
  @Option(
    help:
      "Most epochs of the lora tier's joint training, 1-100 (default 3; fewer when cross-validation says so)."
  )
  var loraEpochs: Int?
  @Option(help: "Rank of the lora tier's adapters, 1-256 (alpha = 2 x rank; default 16).")
  var loraRank: Int?
  @Option(help: "Learning rate of the lora tier's adapters (AdamW; default 1e-4).")
  var loraLr: Double?
  @Option(
    help:
      "Products of the lora tier's encoder: float32, or bfloat16 summed in float32 (default: bfloat16 where the CPU has AMX or AVX-512 BF16)."
  )
  var matmulPrecision: MatmulPrecision?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check(
      "route train",
      [
        "--epochs": epochs, "--batch-size": batchSize, "--lora-epochs": loraEpochs,
        "--lora-rank": loraRank,
      ])
    if !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
    if let loraLr, !(loraLr > 0 && loraLr.isFinite) {
      throw ValidationError("--lora-lr must be a positive number")
    }
    if tier != .lora,
      loraEpochs != nil || loraRank != nil || loraLr != nil || matmulPrecision != nil
    {
      throw ValidationError(
        "each of --lora-epochs, --lora-rank, --lora-lr and --matmul-precision applies to --tier lora"
      )
    }
    guard heldOut > 0 && heldOut < 1 else {
      throw ValidationError("--held-out must be between 0 and 1 (exclusive)")
    }
    if maxEscalation != nil && minQuality != nil {
      throw ValidationError("give --max-escalation or --min-quality, not both")
    }
    for (name, value) in [("--max-escalation", maxEscalation), ("--min-quality", minQuality)] {
      if let value, !(0...1).contains(value) {
        throw ValidationError("\(name) must be between 0 and 1")
      }
    }
  }

  func run() throws {
    let router = try target.open(database)
    var options = RouterTrainingOptions()
    options.epochs = epochs
    options.batchSize = batchSize
    options.learningRate = lr
    options.heldOutFraction = heldOut
    options.seed = seed
    options.maxEscalation = maxEscalation
    options.minQuality = minQuality
    options.force = force
    options.tier = tier
    options.classifier = classifier
    options.loraEpochs = loraEpochs ?? options.loraEpochs
    options.loraRank = loraRank ?? options.loraRank
    options.loraLearningRate = loraLr ?? options.loraLearningRate
    options.matmulPrecision = matmulPrecision
    // One line per stage, made when the stage first reports, so that its clock starts then.
    var current: (label: String, line: ProgressLine)?
    func show(_ label: String, _ unit: String, _ progress: OperationProgress, extra: String = "")
      throws
    {
      if current?.label != label {
        current?.line.finish()
        current = (label, ProgressLine(label: label, unit: unit))
      }
      try current!.line.update(progress, extra: extra)
    }
    let report = try router.train(options: options) { stage in
      switch stage {
      case .embedding(let progress): try show("embed", "inputs", progress)
      case .choosingClassifier(let progress): try show("choose classifier", "folds", progress)
      case .training(let epoch, let epochs, let loss):
        try show(
          "train", "epochs", OperationProgress(done: epoch, total: epochs),
          extra: String(format: ", loss %.4f", loss))
      case .crossValidation(let progress): try show("cross-validate lora", "epochs", progress)
      case .tuning(let epoch, let epochs, let loss):
        try show(
          "tune lora", "epochs", OperationProgress(done: epoch, total: epochs),
          extra: String(format: ", loss %.4f", loss))
      }
    }
    current?.line.finish()
    if output.isJSON { return try Terminal.printJSON(report) }
    let m = report.metrics
    func f(_ key: String) -> String { m[key].map { String(format: "%.3f", $0) } ?? "-" }
    print(
      "trained router \"\(router.name)\" v\(report.version) on \(report.trainExamples) inputs"
        + " (\(report.heldOutExamples) held out) in \(Terminal.seconds(report.seconds));"
        + " \(describe(report))"
        + (m["lora_epochs"].map { ", then \(Int($0)) epochs with LoRA adapters" } ?? "")
        + (classifier == nil ? ", chosen on the training split" : ""))
    let inputs = report.trainExamples + report.heldOutExamples
    if report.embeddedInputs < inputs {
      print(
        "embedded \(report.embeddedInputs) of \(inputs) inputs; the other vectors were stored"
          + " by an earlier run with the same encoder")
    }
    Terminal.printTable(
      headers: ["held-out", "macro-F1", "accuracy"],
      rows: [
        ["router", f("macro_f1"), f("accuracy")],
        ["nearest centroid", f("nearest_centroid_macro_f1"), "-"],
        m["active_macro_f1"] != nil
          ? ["active version", f("active_macro_f1"), "-"]
          : ["most common path", f("majority_macro_f1"), "-"],
      ])
    print(
      "calibration: temperature \(f("temperature")), ECE \(f("ece_before")) -> \(f("ece_after"))")
    if !report.curve.isEmpty {
      print(
        "threshold \(f("threshold")): escalation \(f("escalation")), quality \(f("quality"))"
          + " (always escalate: quality \(f("always_escalate_quality")); never: \(f("never_escalate_quality")))"
      )
      Terminal.printTable(
        headers: ["threshold", "escalation", "quality", "mean cost"],
        rows: report.curve.map { point in
          [
            String(format: "%.1f", point.threshold), String(format: "%.3f", point.escalation),
            String(format: "%.3f", point.quality),
            point.cost.map { String(format: "%.2f", $0) } ?? "-",
          ]
        })
    }
    for warning in report.warnings { Terminal.warn(warning) }
    print(report.reason)
  }

  /// The classifier chosen, in words.
  private func describe(_ report: RouterTrainingReport) -> String {
    switch report.classifier {
    case "shrunk_lda":
      String(format: "shrunk LDA (shrinkage %.3f)", report.metrics["shrinkage"] ?? 0)
    case "softmax": "softmax head, \(Int(report.metrics["epochs"] ?? 0)) epochs from the centroids"
    case "nearest_examples": "nearest examples (each path's 3 most similar inputs)"
    default: "nearest centroid"
    }
  }
}

struct RouteEval: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval", abstract: "Evaluate the active version on a labelled file.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Argument(help: "JSON Lines in the import format.") var file: String
  @OptionGroup var output: OutputOptions

  func run() throws {
    let report = try target.open(database).evaluate(path: file)
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      String(
        format:
          "v%d on %d inputs: accuracy %.3f, macro-F1 %.3f; at threshold %.3f: escalation %.3f, quality %.3f",
        report.version, report.examples, report.accuracy, report.macroF1, report.threshold,
        report.escalation, report.quality))
    Terminal.printTable(
      headers: ["path", "precision", "recall", "support"] + report.paths.map { "→\($0)" },
      rows: report.perPath.enumerated().map { index, path in
        [
          path.path, String(format: "%.3f", path.precision), String(format: "%.3f", path.recall),
          String(path.support),
        ] + report.confusion[index].map(String.init)
      })
  }
}

struct RouteDiagnose: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "diagnose",
    abstract: "Over- and under-escalation among logged decisions with outcomes.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @OptionGroup var output: OutputOptions

  func run() throws {
    let report = try target.open(database).diagnose()
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "\(report.decisions) logged decisions, \(report.judged) with outcomes (\(report.escalated) escalated)"
    )
    Terminal.printTable(
      headers: ["share of judged decisions", "value"],
      rows: [
        [
          "over-escalation (a cheaper path was good)",
          String(format: "%.3f", report.overEscalation),
        ],
        ["under-escalation (chosen path was bad)", String(format: "%.3f", report.underEscalation)],
        ["not escalated, chosen path good", String(format: "%.3f", report.correct)],
      ])
  }
}

struct RouteVersions: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "versions", abstract: "List a router's versions; --activate N to switch.",
    discussion: "JSON: one line per version, its record and `active` (true for the one serving).")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @Option(help: "Make this version serve (a rejected one too).") var activate: Int?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check("route versions", ["--activate": activate])
  }

  func run() throws {
    let router = try target.open(database)
    if let activate { try router.activate(version: activate) }
    let (versions, active) = try router.versions()
    if output.isJSON { return try VersionLine.print(versions, active: active) }
    Terminal.printTable(
      headers: ["version", "state", "parent", "macro-F1", "threshold", "reason"],
      rows: versions.map { v in
        [
          "v\(v.version)" + (v.version == active ? " (active)" : ""), v.state.rawValue,
          v.parent.map { "v\($0)" } ?? "-", String(format: "%.3f", v.metrics["macro_f1"] ?? 0),
          String(format: "%.3f", v.threshold), v.reason,
        ]
      }, flexibleColumn: 5)
  }
}

struct RouteRollback: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rollback", abstract: "Undo the last activation of a router's version.",
    discussion: "JSON: the versions afterwards, one line each, as `route versions` prints them.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: RouterOption
  @OptionGroup var output: OutputOptions

  func run() throws {
    let router = try target.open(database)
    let version = try router.rollback()
    guard output.isJSON else {
      return print("router \"\(router.name)\" is served by v\(version) again")
    }
    let (versions, active) = try router.versions()
    try VersionLine.print(versions, active: active)
  }
}

/// A router version as `route versions --json` prints it: its record and `active`,
/// whether it is the one serving.
struct VersionLine: Encodable {
  var version: RouterVersion
  var active: Bool

  private enum Key: String, CodingKey { case active }

  func encode(to encoder: any Encoder) throws {
    try version.encode(to: encoder)
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(active, forKey: .active)
  }

  /// Prints `versions`, one line each.
  static func print(_ versions: [RouterVersion], active: Int?) throws {
    for version in versions {
      try Terminal.printJSONLine(VersionLine(version: version, active: version.version == active))
    }
  }
}
