import ArgumentParser
import Foundation
import VectorDB

struct Init: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Create a database and import the encoder model into it.",
    discussion: """
      The model (default: all-MiniLM-L6-v2 as fetched by tools/fetch-model.sh) is \
      stored in the database as model version 1, so the directory is \
      self-contained. Running init again on a database changes nothing (a new \
      --model is added as a version).

      Examples:
        vdb init --db ./notes.vdb
        vdb init --model ~/models/my-bert        a sentence-transformers BERT dir
        vdb init --no-model                      documents and given vectors only
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(help: "A sentence-transformers model directory (default: the fetched all-MiniLM-L6-v2).")
  var model: String?
  @Flag(help: "Create the database without a model.") var noModel = false
  @OptionGroup var output: OutputOptions

  func run() throws {
    let db = try Database(path: database.path)
    var imported: ModelInfo?
    if !noModel {
      let directory = model ?? DefaultModel.directory
      if model != nil || DefaultModel.isFetched {
        imported = try db.importModel(directory: directory)
      } else if try db.defaultModelVersion() == nil {
        Terminal.warn("no model at \(directory): collections will hold documents only")
        FileHandle.standardError.write(
          Data("hint: run tools/fetch-model.sh, then `vdb init` again\n".utf8))
      }
    }
    let status = try db.status()
    if output.isJSON {
      try Terminal.printJSON(status)
    } else {
      print(
        "database \(db.path) (format \(status.formatVersion)): \(status.collections.count) collections"
      )
      if let imported {
        print(
          "model v\(imported.version): \(imported.name) (\(imported.dimension) dimensions, \(Terminal.bytes(imported.weightsBytes)))"
        )
      }
    }
  }
}

struct Upsert: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Add a document, or replace the one with the same id.",
    discussion:
      #"Example: vdb upsert -c notes --id n1 --text "LMDB is a B+tree" --meta '{"topic":"storage"}'"#
  )

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "Document id.") var id: String
  @Option(help: "Document text.") var text: String
  @Option(help: "Metadata: a JSON object.") var meta: String?
  @Option(help: "The document's vector as a JSON array (default: embed the text).") var vector:
    String?
  @OptionGroup var output: OutputOptions

  func run() throws {
    var metadata: [String: JSONValue] = [:]
    if let meta {
      guard case .object(let object) = try JSONValue(parsing: meta, source: "--meta") else {
        throw CLIError(
          message: "--meta must be a JSON object",
          hint: #"for example --meta '{"topic": "storage"}'"#)
      }
      metadata = object
    }
    let given = try vector.map { try parseVector($0, source: "--vector") }
    let collection = try database.open().writing(into: try target.name()) { collection in
      try collection.upsert(
        [Document(id: id, text: text, metadata: metadata)], vectors: given.map { [$0] })
      return collection
    }
    if output.isJSON {
      try Terminal.printJSON(["upserted": id])
    } else {
      print("upserted \(id) into \(collection.name)")
    }
  }
}

struct Import: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Import documents from a JSON Lines file or a BEIR directory.",
    discussion: """
      Each line: {"_id" or "id": "…", "text": "…", "title": "…" (optional, \
      prepended), "metadata": {…} (optional)}. A bad line stops the import and \
      nothing from the file is written, unless --skip-bad is given.

      Examples:
        vdb import docs.jsonl -c notes
        vdb import --beir ../datasets/scifact -c scifact
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "A JSON Lines file of documents.") var file: String?
  @Option(help: "A BEIR directory: imports DIR/corpus.jsonl.") var beir: String?
  @Option(help: "A .fvecs or float32 .npy file: rows become documents \"0\", \"1\", … (no text).")
  var vectors: String?
  @Option(help: "With --vectors, for a new collection: cosine, dot or l2.") var metric: Metric =
    .cosine
  @Flag(help: "Report and skip bad lines instead of stopping.") var skipBad = false
  @Option(help: "Documents per transaction.") var batchSize = 256
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if [file, beir, vectors].compactMap({ $0 }).count != 1 {
      throw ValidationError("give one of FILE, --beir DIR, --vectors FILE")
    }
  }

  func run() throws {
    if let vectors { return try importVectors(vectors) }
    var options = ImportOptions()
    options.skipBadLines = skipBad
    options.batchSize = batchSize
    let path = file ?? beir! + "/corpus.jsonl"
    let bar = ProgressLine(label: "import", unit: "docs")
    let (collection, report) = try database.open().writing(into: try target.name()) {
      ($0, try $0.importJSONL(path: path, options: options) { try bar.update($0) })
    }
    bar.finish()
    if output.isJSON {
      try Terminal.printJSON(report)
    } else {
      for skipped in report.skipped {
        Terminal.warn("\(path):\(skipped.line): \(skipped.reason) (skipped)")
      }
      let rate = Double(report.imported) / max(report.seconds, 1e-9)
      print(
        "imported \(report.imported) documents into \(collection.name) in \(Terminal.seconds(report.seconds)) (\(Int(rate)) docs/s)"
          + (report.skipped.isEmpty ? "" : ", skipped \(report.skipped.count) bad lines"))
    }
  }
}

struct Get: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print documents by id, or list a collection in id order.",
    discussion: """
      Examples:
        vdb get -c notes n1 n2         two documents
        vdb get -c notes --limit 20    the first 20 documents
        vdb get -c notes --after n20   the next page
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "Document ids (none: list the collection).") var ids: [String] = []
  @Option(help: "With no ids: how many documents to list.") var limit = 20
  @Option(help: "With no ids: list documents after this id.") var after: String?
  @OptionGroup var output: OutputOptions

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    if ids.isEmpty {
      let documents = try collection.documents(after: after, limit: limit)
      try show(documents)
      return
    }
    let found = try collection.get(ids)
    try show(found.compactMap { $0 })
    if let missing = zip(ids, found).first(where: { $0.1 == nil })?.0 {
      throw VectorDBError.documentNotFound(id: missing, collection: collection.name)
    }
  }

  private func show(_ documents: [Document]) throws {
    if documents.isEmpty { return }
    if output.isJSON {
      for document in documents { try Terminal.printJSONLine(document) }
      return
    }
    Terminal.printTable(
      headers: ["id", "text", "metadata"],
      rows: documents.map {
        [$0.id, $0.text, $0.metadata.isEmpty ? "" : JSONValue.object($0.metadata).jsonString]
      },
      flexibleColumn: 1)
  }
}

struct Delete: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Delete documents by id (one transaction).",
    discussion: "Example: vdb delete -c notes n1 n2")

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "Document ids.") var ids: [String]
  @OptionGroup var output: OutputOptions

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    let deleted = try collection.delete(ids)
    if output.isJSON {
      try Terminal.printJSON(["deleted": deleted])
    } else {
      print("deleted \(deleted) of \(ids.count) documents")
    }
  }
}

struct Status: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show the database: format, size on disk, collections and counts.",
    discussion: "Example: vdb status --json")

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let status = try database.open().status()
    if output.isJSON {
      try Terminal.printJSON(status)
      return
    }
    print("database  \(status.path)")
    print("format    \(status.formatVersion)")
    print("size      \(Terminal.bytes(status.bytesOnDisk))")
    print("")
    printCollections(status.collections)
  }
}

extension Import {
  private func importVectors(_ path: String) throws {
    let (_, dimension) = try VectorFile.read(path)
    let bar = ProgressLine(label: "import", unit: "vectors")
    let (collection, report) = try database.open().writing(
      into: try target.name(), options: .vectors(dimension: dimension, metric: metric)
    ) { ($0, try $0.importVectors(path: path, batchSize: batchSize) { try bar.update($0) }) }
    bar.finish()
    if output.isJSON {
      try Terminal.printJSON(report)
    } else {
      print(
        "imported \(report.imported) vectors into \(collection.name) in \(Terminal.seconds(report.seconds))"
          + " (\(Int(Double(report.imported) / max(report.seconds, 1e-9))) vectors/s)")
    }
  }
}

extension Metric: ExpressibleByArgument {}

/// Parses a JSON array of numbers.
func parseVector(_ text: String, source: String) throws -> [Float] {
  guard case .array(let elements) = try JSONValue(parsing: text, source: source) else {
    throw CLIError(
      message: "\(source) must be a JSON array of numbers",
      hint: "for example --vector '[0.1, 0.2]'")
  }
  return try elements.map { element in
    guard case .number(let number) = element else {
      throw CLIError(message: "\(source) must be a JSON array of numbers")
    }
    return Float(number)
  }
}
