import ArgumentParser
import Foundation
import VectorDB

struct Reembed: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Re-embed a collection into a new generation, then switch to it.",
    discussion: """
      Queries keep using the active generation while the job runs. Each batch is
      committed with the job's position, so a job that is stopped (Ctrl-C, kill -9,
      power loss) resumes where it stopped on the next `vdb reembed`. With the model
      unchanged, only stale vectors are re-embedded unless --all is given.

      Examples:
        vdb reembed -c scifact --model 2      embed with model version 2, then switch
        vdb reembed -c scifact                resume a job, or refresh stale vectors
        vdb reembed -c scifact --all          rebuild the whole generation
        vdb reembed -c scifact --cancel       drop the generation a job was building
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "The model version (default: the collection's current model).") var model: Int?
  @Flag(help: "Build a full new generation even when the model is unchanged.") var all = false
  @Option(help: "Documents per transaction.") var batchSize = 256
  @Flag(
    help: "Drop the generation a stopped (or running) job was building, with its vectors.")
  var cancel = false
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check("reembed", ["--model": model, "--batch-size": batchSize])
    if cancel && (model != nil || all) {
      throw ValidationError("--cancel takes no --model or --all")
    }
  }

  func run() throws {
    let db = try database.open()
    let collection = try db.collection(try target.name(), create: false)
    if cancel {
      let dropped = try collection.cancelReembed()
      if output.isJSON { return try Terminal.printJSON(dropped) }
      return print(
        "cancelled the re-embed with model v\(dropped.model ?? 0): dropped generation"
          + " \(dropped.id) and its \(Terminal.count(dropped.vectors, "vector"))")
    }
    if let model { warnIfTheMetricDiffers(db, collection: collection.name, model: model) }
    let bar = ProgressLine(label: "reembed", unit: "docs")
    let report = try collection.reembed(to: model, all: all, batchSize: batchSize) {
      try bar.update($0)
    }
    bar.finish()
    if output.isJSON { return try Terminal.printJSON(report) }
    let action =
      report.switched
      ? "switched to generation \(report.generation)"
      : "generation \(report.generation) is up to date"
    print(
      "\(report.resumed ? "resumed; " : "")embedded \(Terminal.count(report.embedded, "document")) with model v\(report.model ?? 0)"
        + " in \(Terminal.seconds(report.seconds)); \(action)")
  }
}

struct Models: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List model versions; activate one or roll back a collection.",
    discussion: """
      Examples:
        vdb models                          every version, its lineage and metrics
        vdb models activate 1 -c scifact    back to model 1 (instant if retained)
        vdb models activate 3 -c scifact    adapter v3 maps the queries (instant)
        vdb models rollback -c scifact      undo the last switch, at once
        vdb models fusion -c scifact        the fitted hybrid fusion versions
        vdb models rollback -c scifact --fusion   undo the last promoted fusion
        vdb models convert 1 --precision bfloat16   v1's weights, run in bfloat16
        vdb models delete 4                 remove a version nothing uses
        vdb models prune --dry-run          what prune would remove
        vdb models export 2 ./my-model      a sentence-transformers directory
      """,
    subcommands: [
      ModelList.self, ModelActivate.self, ModelRollback.self, ModelConvert.self, ModelDelete.self,
      ModelPrune.self, ModelExport.self, FusionList.self,
    ],
    defaultSubcommand: ModelList.self)
}

struct ModelList: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "List model versions.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let listing = try database.open(readOnly: true).modelListing()
    if output.isJSON {
      for row in listing { try Terminal.printJSONLine(row) }
      return
    }
    Terminal.printTable(
      headers: ["version", "kind", "state", "parent", "precision", "size", "used by", "name"],
      rows: listing.map { row in
        let model = row.model
        let used = row.collections.sorted { $0.key < $1.key }.map {
          name, generations in
          "\(name):" + generations.map { "g\($0.id)(\($0.state.rawValue))" }.joined(separator: ",")
        }
        return [
          "v\(model.version)", model.kind.rawValue, model.state.rawValue,
          model.parent.map { "v\($0)" } ?? "-",
          model.kind == .adapter ? "-" : (model.precision ?? .float32).rawValue,
          model.hasWeights ? Terminal.bytes(model.weightsBytes) : "lineage only",
          used.joined(separator: " "), model.name,
        ]
      }, flexibleColumn: 7)
  }
}

struct ModelActivate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "activate",
    abstract: "Make a collection use model VERSION (instant when retained or an adapter).")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "The model version.") var version: Int
  @OptionGroup var output: OutputOptions

  func run() throws {
    let db = try database.open()
    let collection = try db.collection(try target.name(), create: false)
    warnIfTheMetricDiffers(db, collection: collection.name, model: version)
    let bar = ProgressLine(label: "activate", unit: "docs")
    let report = try collection.activate(model: version) { try bar.update($0) }
    bar.finish()
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "\(collection.name) now uses model v\(version) (generation \(report.generation), \(Terminal.seconds(report.seconds)))"
    )
  }
}

struct ModelRollback: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rollback",
    abstract: "Undo a collection's last switch: its last query adapter, else its generation.")
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Flag(help: "Undo the last promoted fusion version instead (`vdb train --tier fusion`).")
  var fusion = false
  @OptionGroup var output: OutputOptions

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    if fusion { return try FusionList.rollback(collection, json: output.isJSON) }
    let report = try collection.rollback()
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "\(collection.name) rolled back to generation \(report.generation) (model v\(report.model ?? 0), \(Terminal.seconds(report.seconds)))"
    )
  }
}

extension Precision: ExpressibleByArgument {}

struct ModelConvert: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "convert",
    abstract: "Add model VERSION computing at another precision as a new version.",
    discussion: """
      The new version keeps VERSION's weights and records the precision in its \
      lineage. Collections move to it like to any new version (`vdb reembed -c NAME \
      --model NEW`, a new generation), so a generation never mixes precisions; compare \
      both with `vdb eval` before switching. Converting again returns the same version.

      JSON: the new version's record.
      """)
  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The model version to convert.") var version: Int
  @Option(help: "float32, bfloat16, int8 or w8a8.") var precision: Precision
  @OptionGroup var output: OutputOptions

  func run() throws {
    let info = try database.open().convertModel(version: version, precision: precision)
    if let warning = precision.cpuWarning { Terminal.warn(warning) }
    if output.isJSON { return try Terminal.printJSON(info) }
    print("model v\(info.version): v\(version) computing in \(precision.rawValue)")
  }
}

struct ModelDelete: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete",
    abstract:
      "Delete model VERSION; refused while a generation, a rollback or a kept version needs it.")
  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The model version.") var version: Int
  @OptionGroup var output: OutputOptions

  func run() throws {
    try database.open().deleteModel(version: version)
    if output.isJSON { return try Terminal.printJSON(["deleted": [version]]) }
    print("deleted model v\(version)")
  }
}

struct ModelPrune: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "prune",
    abstract: "Delete every model version nothing needs.",
    discussion: """
      Kept: the default model, every generation's model and query adapter (active, \
      retained for rollback, building), an unfinished training run's base model, and \
      the ancestors of all of these. Everything else (rejected candidates, versions \
      whose generations were dropped) is deleted in one transaction.

      JSON: {"deleted": [VERSION, …], "dry_run": BOOL}
      """)
  @OptionGroup var database: DatabaseOptions
  @Flag(help: "List what would be deleted; delete nothing.") var dryRun = false
  @OptionGroup var output: OutputOptions

  struct Report: Encodable {
    var deleted: [Int]
    var dryRun: Bool
    enum CodingKeys: String, CodingKey {
      case deleted
      case dryRun = "dry_run"
    }
  }

  func run() throws {
    let deleted = try database.open().pruneModels(dryRun: dryRun)
    if output.isJSON { return try Terminal.printJSON(Report(deleted: deleted, dryRun: dryRun)) }
    let list = deleted.map { "v\($0)" }.joined(separator: ", ")
    print(
      deleted.isEmpty
        ? "nothing to prune" : (dryRun ? "would delete " : "deleted ") + list)
  }
}

struct ModelExport: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write model VERSION as a sentence-transformers model directory.",
    discussion: """
      DIR (new, or an empty directory) receives config.json, model.safetensors,
      vocab.txt, the tokenizer files, modules.json and 1_Pooling/: `vdb init
      --model DIR`, `vdb embed --model DIR` and Python's SentenceTransformer(DIR)
      load it and embed as vdb does. A LoRA version is written with its
      adapters merged. The files are written beside DIR and renamed into place
      when complete.

      JSON: {"version": V, "directory": DIR, "files": [NAME, …]}
      """)
  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The model version.") var version: Int
  @Argument(help: "The directory to create.") var directory: String
  @OptionGroup var output: OutputOptions

  struct Report: Encodable {
    var version: Int
    var directory: String
    var files: [String]
  }

  func run() throws {
    let files = try database.open(readOnly: true).exportModel(version: version, to: directory)
    if output.isJSON {
      return try Terminal.printJSON(Report(version: version, directory: directory, files: files))
    }
    print("exported model v\(version) to \(directory) (\(files.count) files)")
  }
}

/// Warns when encoder `version` compares its vectors otherwise than the collection does:
/// a collection's metric is fixed when it is made, so a re-embed keeps it.
private func warnIfTheMetricDiffers(_ db: Database, collection name: String, model version: Int) {
  guard let similarity = try? db.modelSettings(version: version).similarity,
    let metric = try? db.collections().first(where: { $0.name == name })?.metric,
    Metric(similarity).rawValue != metric
  else { return }
  Terminal.warn(
    "model v\(version) compares its vectors by \(similarity.rawValue); collection \"\(name)\""
      + " keeps its metric, \(metric) (fixed when the collection was made)")
}
