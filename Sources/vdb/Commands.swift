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
        vdb init --precision bfloat16            the model computing in bfloat16
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(help: "A sentence-transformers model directory (default: the fetched all-MiniLM-L6-v2).")
  var model: String?
  @Flag(help: "Create the database without a model.") var noModel = false
  @Option(help: "The number format the model computes in: float32, bfloat16, int8 or w8a8.")
  var precision: Precision?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if noModel, let given = model.map({ _ in "--model" }) ?? precision.map({ _ in "--precision" }) {
      throw ValidationError("\(given) applies to the model; --no-model creates none")
    }
  }

  func run() throws {
    Fault.arm(path: database.path)
    let files = FileManager.default
    // What this command makes, and removes if it fails (a dangling link counts as
    // there: it is not ours).
    func isPresent(_ path: String) -> Bool {
      var status = stat()
      return lstat(path, &status) == 0
    }
    let createsDatabase = !isPresent(database.path + "/data.mdb")
    let made =
      isPresent(database.path)
      ? ["data.mdb", "lock.mdb", "images"].map { database.path + "/" + $0 }.filter {
        !isPresent($0)
      }
      : [database.path]
    let db: Database
    var imported: ModelInfo?
    do {
      db = try Database(path: database.path)
      if !noModel {
        let directory = model ?? DefaultModel.directory
        if model != nil || DefaultModel.isFetched {
          imported = try db.importModel(directory: directory, precision: precision ?? .float32)
        } else if try db.defaultModelVersion() == nil {
          Terminal.warn("no model at \(directory): collections will hold documents only")
          Terminal.standardError("hint: run tools/fetch-model.sh, then `vdb init` again\n")
        }
      }
    } catch {
      // A database this command created stays only whole: without its model, its
      // collections would silently hold documents without vectors; a database the disk
      // had no room for is no database.
      if createsDatabase {
        for path in made { try? files.removeItem(atPath: path) }
      }
      throw error
    }
    if imported != nil, let warning = (precision ?? .float32).cpuWarning {
      Terminal.warn(warning)
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
          "model v\(imported.version): \(imported.name) (\(imported.dimension) dimensions, \(Terminal.bytes(imported.weightsBytes)), \((precision ?? .float32).rawValue))"
        )
        // What the model's own files say beyond its weights, when not the defaults.
        let settings = try db.modelSettings(version: imported.version)
        func quoted(_ text: String) throws -> String {
          String(decoding: try Terminal.json(text), as: UTF8.self)
        }
        if settings.similarity != .cosine {
          print(
            "  similarity \(settings.similarity.rawValue): its collections compare by it unless"
              + " created with --metric")
        }
        if !settings.prompts.isEmpty {
          print(
            "  prompts: query \(try quoted(settings.prompts.query)), document"
              + " \(try quoted(settings.prompts.document))")
        }
      }
    }
  }
}

extension NameSpecification {
  /// `--meta`, and `--metadata`, the JSON field's name, for the commands that set metadata.
  static let metadata: NameSpecification = [.customLong("meta"), .customLong("metadata")]
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
  @Option(help: "Document text (may be left out with --vector: the text is then empty).")
  var text: String?
  @Option(name: .metadata, help: "Metadata: a JSON object.") var meta: String?
  @Option(help: "The document's vector as a JSON array (default: embed the text).") var vector:
    String?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    // An upsert replaces the whole document: without a vector, a missing text would
    // replace the stored one with "" and embed that.
    if text == nil && vector == nil {
      throw ValidationError("give --text, or --vector for a document without text")
    }
  }

  func run() throws {
    let metadata = try meta.map(parseMetadata) ?? [:]
    let given = try vector.map { try parseVector($0, source: "--vector") }
    let db = try database.open()
    let name = try target.name()
    // A new collection for a given vector holds vectors of its length (as an import makes).
    var options: CollectionOptions?
    if let given, try !db.collectionNames().contains(name) {
      options = try CollectionOptions.forVectors(dimension: given.count, in: db)
    }
    let collection = try db.writing(into: name, options: options) { collection in
      try collection.upsert(
        [Document(id: id, text: text ?? "", metadata: metadata)], vectors: given.map { [$0] })
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
      prepended), "metadata": {…} (optional), "vector": […] (optional, on every \
      line or none; with it, "text" may be left out)}. A bad line stops the import \
      and nothing from the file is written, unless --skip-bad is given.

      Examples:
        vdb import docs.jsonl -c notes
        jq -c '…' dump.json | vdb import - -c notes     from standard input
        vdb import --beir ../datasets/scifact -c scifact
        vdb import --csv notes.csv --text-column body -c notes
                                                        other columns: metadata
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "A JSON Lines file of documents (`-`: standard input).") var file: String?
  @Option(help: "A BEIR directory: imports DIR/corpus.jsonl.") var beir: String?
  @Option(
    help:
      "A .fvecs or .npy (float32 or float64): rows become documents \"0\", \"1\", … (`-`: standard input, either format)."
  )
  var vectors: String?
  @Option(
    help: "With --vectors: the first row's id (default 0); documents with these ids are replaced.")
  var firstId: Int?
  @Option(help: "A CSV file with a header row (`-`: standard input); see --text-column.")
  var csv: String?
  @Option(help: "With --csv: the column holding the text (default: text).") var textColumn: String?
  @Option(help: "With --csv: the field separator, one character (`tab` for TSV; default: ,).")
  var delimiter: String?
  @Option(
    help: "With --csv: the column holding the ids (default: id or _id, else the record number).")
  var idColumn: String?
  @Option(
    help:
      "For a new collection of the vectors given (--vectors, or JSON Lines that bring them): cosine (default), dot or l2."
  )
  var metric: Metric?
  @Flag(help: "Report and skip bad lines instead of stopping.") var skipBad = false
  @Option(
    help:
      "Documents per transaction (default: 1,000 when their texts are embedded, 10,000 when they bring vectors)."
  )
  var batchSize: Int?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check("import", ["--batch-size": batchSize, "--first-id": firstId])
    if firstId != nil && vectors == nil { throw ValidationError("--first-id goes with --vectors") }
    if [file, beir, vectors, csv].compactMap({ $0 }).count != 1 {
      throw ValidationError("give one of FILE, --beir DIR, --vectors FILE, --csv FILE")
    }
    if csv == nil, textColumn != nil || delimiter != nil || idColumn != nil {
      throw ValidationError("--text-column, --id-column and --delimiter go with --csv")
    }
    if metric != nil && csv != nil {
      throw ValidationError("--metric goes with --vectors or JSON Lines that bring vectors")
    }
  }

  func run() throws {
    if let vectors { return try importVectors(vectors) }
    if let csv { return try importCSV(csv) }
    var options = ImportOptions()
    options.skipBadLines = skipBad
    options.batchSize = batchSize
    let path = file ?? beir! + "/corpus.jsonl"
    // Standard input is taken before the database opens (which would fill a closed one).
    let standardInput = path == "-" ? try InputFile.standardInput() : nil
    let bar = ProgressLine(label: "import", unit: "docs")
    let (collection, report): (DocumentCollection, ImportReport)
    do {
      let db = try database.open()
      let input = try standardInput ?? InputFile(path)
      let name = try target.name()
      // A new collection is made for what the lines bring: their vectors, or texts to embed.
      // An existing one keeps its metric unless --metric asks for another (an error).
      let collectionOptions =
        try metric == nil && db.collectionNames().contains(name)
        ? nil : CollectionOptions.forJSONLines(input, in: db, metric: metric)
      (collection, report) = try db.writing(into: name, options: collectionOptions) {
        (
          $0,
          try $0.importJSONL(input, options: options) {
            try bar.update($0)
          }
        )
      }
    } catch VectorDBError.invalidInput(_, 1, let reason)
      where [".csv", ".tsv"].contains(where: { path.lowercased().hasSuffix($0) })
    {
      let tsv = path.lowercased().hasSuffix(".tsv")
      throw CLIError(
        message: "\(inputName(path)):1: \(reason)",
        hint: "\(inputName(path)) is read as JSON Lines; for \(tsv ? "TSV" : "CSV"),"
          + " use --csv \(path)"
          + (tsv ? " --delimiter tab" : ""))
    }
    bar.finish()
    try show(report, into: collection.name, records: "lines") { "\(inputName(path)):\($0)" }
  }

  /// Prints an import's report; `place` names a skipped line or record.
  private func show(
    _ report: ImportReport, into name: String, records: String, place: (Int) -> String
  ) throws {
    if output.isJSON { return try Terminal.printJSON(report) }
    for skipped in report.skipped {
      Terminal.warn("\(place(skipped.line)): \(skipped.reason) (skipped)")
    }
    let rate = Double(report.imported) / max(report.seconds, 1e-9)
    print(
      (report.imported == 0
        ? "imported no documents"  // into no collection, when it would have created one
        : "imported \(Terminal.count(report.imported, "document")) into \(name) in \(Terminal.seconds(report.seconds)) (\(Int(rate)) docs/s)")
        + (report.skipped.isEmpty ? "" : ", skipped \(report.skipped.count) bad \(records)")
        + (report.superseded == 0
          ? ""
          : "; \(Terminal.count(report.superseded, String(records.dropLast()))) replaced by a later one with the same id")
    )
  }

  /// `--delimiter` as one Unicode scalar (`tab` and `\t` name the tab).
  private func separator() throws -> Unicode.Scalar {
    let delimiter = self.delimiter ?? ","
    let scalars = ["tab": "\t", "\\t": "\t"][delimiter, default: delimiter].unicodeScalars
    guard let scalar = scalars.first, scalars.count == 1, scalar.isASCII,
      !"\"\r\n".unicodeScalars.contains(scalar)
    else {
      throw CLIError(
        message:
          "--delimiter must be one ASCII character, not a quote or a line break (got \"\(delimiter)\")",
        usage: true)
    }
    return scalar
  }

  private func importCSV(_ path: String) throws {
    var options = ImportOptions()
    options.skipBadLines = skipBad
    options.batchSize = batchSize
    // Standard input is taken before the database opens (which would fill a closed one).
    let input = try path == "-" ? InputFile.standardInput() : InputFile(path)
    let bar = ProgressLine(label: "import", unit: "docs")
    let (collection, report) = try database.open().writing(into: try target.name()) {
      (
        $0,
        try $0.importCSV(
          input, textColumn: textColumn ?? "text", idColumn: idColumn,
          delimiter: try separator(), options: options
        ) { try bar.update($0) }
      )
    }
    bar.finish()
    try show(report, into: collection.name, records: "records") {
      "\(inputName(path)):\($0)"
    }
  }
}

struct Get: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print documents by id or by filter, or list a collection in id order.",
    discussion: """
      Examples:
        vdb get -c notes n1 n2                      two documents
        vdb get -c notes --limit 20                 the first 20 documents
        vdb get -c notes --after n20                the next page
        vdb get -c notes --filter '{"topic": "storage"}' --limit 100
        vdb get -c notes n1 --include vector --json with the stored vector
        vdb get -c notes --ids-from ids.txt --json  ids one per line (`-`: stdin)
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "Document ids (none: list the collection).") var ids: [String] = []
  @Option(help: "Read the ids from this file, one per line (`-`: standard input).")
  var idsFrom: String?
  @Option(help: "With no ids: only documents whose metadata matches this JSON filter.")
  var filter: String?
  @Option(help: "With no ids: how many documents to list (default 20).") var limit: Int?
  @Option(help: "With no ids: list documents after this id.") var after: String?
  @Option(help: "Also return `vector` (the stored vector of the active generation).")
  var include: [Include] = []
  @OptionGroup var output: OutputOptions

  enum Include: String, ExpressibleByArgument { case vector }

  func validate() throws {
    try Counts.check("get", ["--limit": limit])
    try checkIDSources(ids, idsFrom)
    if (!ids.isEmpty || idsFrom != nil) && (filter != nil || after != nil || limit != nil) {
      throw ValidationError("give ids, or --filter/--after/--limit, not both")
    }
  }

  func run() throws {
    let collection = try database.open(readOnly: true).collection(try target.name(), create: false)
    let ids = try documentIDs(ids, from: idsFrom)
    if ids.isEmpty {
      let limit = self.limit ?? 20
      let documents =
        try filter.map {
          try collection.documents(matching: Filter(json: $0), after: after, limit: limit)
        } ?? collection.documents(after: after, limit: limit)
      try show(documents, from: collection)
      return
    }
    let found = try collection.get(ids)
    try show(found.compactMap { $0 }, from: collection)
    if let missing = zip(ids, found).first(where: { $0.1 == nil })?.0 {
      throw VectorDBError.documentNotFound(id: missing, collection: collection.name)
    }
  }

  private func show(_ documents: [Document], from collection: DocumentCollection) throws {
    if documents.isEmpty { return }
    let vectors: [[Float]?]? =
      include.contains(.vector) ? try collection.vectors(documents.map(\.id)) : nil
    if output.isJSON {
      for (index, document) in documents.enumerated() {
        try Terminal.printJSONLine(
          DocumentRow(document: document, vector: vectors.map { $0[index] }))
      }
      return
    }
    Terminal.printTable(
      headers: ["id", "text", "metadata"] + (vectors == nil ? [] : ["vector"]),
      rows: documents.enumerated().map { index, document in
        [
          document.id, document.text,
          document.metadata.isEmpty ? "" : JSONValue.object(document.metadata).jsonString,
        ]
          + (vectors.map { [$0[index].map { "[\($0.count) floats]" } ?? "-"] } ?? [])
      },
      flexibleColumn: 1)
  }
}

struct Delete: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Delete documents by id or by filter (one transaction).",
    discussion: """
      Examples:
        vdb delete -c notes n1 n2
        vdb delete -c notes --ids-from ids.txt                     ids one per line
        vdb delete -c notes --filter '{"draft": true}' --dry-run   what would go
        vdb delete -c notes --filter '{"draft": true}'
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "Document ids.") var ids: [String] = []
  @Option(help: "Read the ids from this file, one per line (`-`: standard input).")
  var idsFrom: String?
  @Option(help: "Delete the documents whose metadata matches this JSON filter.")
  var filter: String?
  @Flag(help: "With --filter: list what would be deleted, delete nothing.") var dryRun = false
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try checkIDSources(ids, idsFrom)
    let named = !ids.isEmpty || idsFrom != nil
    if named == (filter != nil) {
      throw ValidationError("give ids or --filter JSON" + (named ? ", not both" : ""))
    }
    if dryRun && filter == nil { throw ValidationError("--dry-run goes with --filter") }
  }

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    if let filter {
      let deleted = try collection.delete(matching: Filter(json: filter), dryRun: dryRun)
      if output.isJSON {
        return try Terminal.printJSON(
          DeleteReport(deleted: dryRun ? 0 : deleted.count, matched: deleted.count, ids: deleted))
      }
      if dryRun { for id in deleted { print(id) } }
      print(
        dryRun
          ? "would delete \(Terminal.count(deleted.count, "document")) (dry run: nothing deleted)"
          : "deleted \(Terminal.count(deleted.count, "document"))")
      return
    }
    let ids = try documentIDs(ids, from: idsFrom)
    let deleted = try collection.delete(ids)
    if output.isJSON {
      try Terminal.printJSON(DeleteReport(deleted: deleted, matched: deleted, ids: nil))
    } else {
      print("deleted \(deleted) of \(ids.count) documents")
    }
  }

}

struct Count: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Count the documents of a collection, or those matching a filter.",
    discussion: #"Example: vdb count -c notes --filter '{"topic": "storage"}'"#)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "Count only documents whose metadata matches this JSON filter.")
  var filter: String?
  @OptionGroup var output: OutputOptions

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    let count =
      try filter.map { try collection.count(matching: Filter(json: $0)) }
      ?? collection.count()
    if output.isJSON { return try Terminal.printJSON(["count": count]) }
    print(count)
  }
}

struct Update: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Replace a document's metadata (its text and vector stay; nothing is re-embedded).",
    discussion: #"Example: vdb update -c notes n1 --meta '{"topic": "storage", "done": true}'"#)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "The document id.") var id: String
  @Option(name: .metadata, help: "The new metadata: a JSON object (replaces the old one).")
  var meta: String
  @OptionGroup var output: OutputOptions

  func run() throws {
    let metadata = try parseMetadata(meta)
    let collection = try database.open().collection(try target.name(), create: false)
    try collection.update(id: id, metadata: metadata)
    if output.isJSON { return try Terminal.printJSON(["updated": id]) }
    print("updated \(id) in \(collection.name)")
  }
}

/// Parses `--meta`: a JSON object.
func parseMetadata(_ text: String) throws -> [String: JSONValue] {
  guard case .object(let object) = try JSONValue(parsing: text, source: "--meta") else {
    throw CLIError(
      message: "--meta must be a JSON object", hint: #"for example --meta '{"topic": "storage"}'"#)
  }
  return object
}

struct Status: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show the database: format, size on disk, models, collections, routers.",
    discussion: "Example: vdb status --json")

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let status = try database.open(readOnly: true).status()
    if output.isJSON {
      try Terminal.printJSON(status)
      return
    }
    print("database  \(status.path)")
    print("format    \(status.formatVersion)")
    print("size      \(Terminal.bytes(status.bytesOnDisk))")
    print(
      "models    " + (status.defaultModel.map { "v\($0) by default" } ?? "none by default")
        + ", \(Terminal.count(status.modelVersions, "version")) stored (vdb models)")
    print("")
    printCollections(status.collections)
    if !status.routers.isEmpty {
      print("")
      printRouters(status.routers)
    }
  }
}

extension Import {
  private func importVectors(_ path: String) throws {
    // Standard input is taken before the database opens (which would fill a closed one); a
    // file after it, so that a missing database is named at once.
    let standardInput = path == "-" ? try InputFile.standardInput() : nil
    let db = try database.open()
    let file = try VectorFile.open(standardInput ?? InputFile(path))
    let dimension = file.dimension
    let name = try target.name()
    // An existing collection keeps its metric unless --metric asks for another (an error).
    let options: CollectionOptions? =
      try metric == nil && db.collectionNames().contains(name)
      ? nil : .vectors(dimension: dimension, metric: metric ?? .cosine)
    let bar = ProgressLine(label: "import", unit: "vectors")
    let (collection, report) = try db.writing(into: name, options: options) {
      (
        $0,
        try $0.importVectors(file, batchSize: batchSize, firstID: firstId ?? 0) {
          try bar.update($0)
        }
      )
    }
    bar.finish()
    if output.isJSON {
      try Terminal.printJSON(report)
    } else {
      print(
        "imported \(Terminal.count(report.imported, "vector")) into \(collection.name) in \(Terminal.seconds(report.seconds))"
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

/// The bytes of the file at `path`, or of standard input for `-` (read to its end).
///
/// - Throws: `VectorDBError.invalidInput` naming the file when it cannot be read.
func readInput(_ path: String) throws -> Data {
  try path == "-" ? TextFile.standardInput() : TextFile.contents(path)
}

/// How errors name an input: the path, or `<stdin>` for `-`.
func inputName(_ path: String) -> String { path == "-" ? InputFile.standardInputName : path }

/// Ids come from the command line or from `--ids-from`, not both.
func checkIDSources(_ ids: [String], _ file: String?) throws {
  if !ids.isEmpty && file != nil { throw ValidationError("give ids or --ids-from FILE, not both") }
}

/// The ids named on the command line, or those of `file` (`--ids-from`): one per line,
/// trimmed, blank lines skipped. A file takes any number of ids, where the argument parser
/// slows quadratically past a few thousand arguments.
func documentIDs(_ arguments: [String], from file: String?) throws -> [String] {
  guard let file else { return arguments }
  let ids = try readLines(file)
  if ids.isEmpty {
    throw CLIError(message: "\(inputName(file)) holds no ids", hint: "one document id per line")
  }
  return ids
}
