import ArgumentParser
import Foundation
import VectorDB

/// `vdb collections`: list, create, drop and rename collections.
struct Collections: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List, create, drop or rename collections.",
    discussion: """
      Examples:
        vdb collections                        list them with counts and models
        vdb collections create notes           text, embedded by the default model
        vdb collections create sift --vectors 128 --metric l2
        vdb collections rename notes journal
        vdb collections drop journal           everything it owns, in one commit
      """,
    subcommands: [List.self, Create.self, Drop.self, Rename.self],
    defaultSubcommand: List.self)

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "list", abstract: "List the collections with counts, models and jobs.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
      let collections = try database.open().collections()
      if output.isJSON { return try Terminal.printJSON(collections) }
      printCollections(collections)
    }
  }

  struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create an empty collection.",
      discussion: """
        By default the collection holds text embedded by the database's default model \
        (documents only when the database has no model).
        """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The new collection's name.") var name: String
    @Option(help: "Given vectors of this dimension (no model).") var vectors: Int?
    @Option(
      help: "The metric: cosine, dot or l2 (default: cosine, or what the model names).")
    var metric: Metric?
    @Option(help: "Embed text with this stored model version.") var model: Int?
    @Flag(help: "Documents only: no vectors, no index.") var noVectors = false
    @OptionGroup var output: OutputOptions

    func validate() throws {
      try Counts.check("collections create", ["--vectors": vectors, "--model": model])
      if [vectors != nil, model != nil, noVectors].filter({ $0 }).count > 1 {
        throw ValidationError("give at most one of --vectors, --model, --no-vectors")
      }
    }

    func run() throws {
      let options: CollectionOptions
      if let vectors {
        options = .vectors(dimension: vectors, metric: metric ?? .cosine)
      } else {
        options = CollectionOptions(
          vectors: noVectors ? .none : .model(version: model), metric: metric)
      }
      let db = try database.open()
      let collection = try db.createCollection(name, options: options)
      let info = try db.collections().first { $0.name == collection.name }
      if output.isJSON { return try Terminal.printJSON(info) }
      print("created \(collection.name)")
    }
  }

  struct Drop: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Delete a collection and everything it owns (one transaction).",
      discussion: """
        Removes its documents, metadata index, every generation's vectors and index, \
        its training state and (unless --keep-log) its query log and feedback. Model \
        versions stay. A collection with a re-embed job or training run is refused \
        unless --force.
        """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The collection to drop.") var name: String
    @Flag(help: "Keep its query log entries and feedback.") var keepLog = false
    @Flag(help: "Drop even with a re-embed job or training run (the job then fails).")
    var force = false
    @OptionGroup var output: OutputOptions

    func run() throws {
      try database.open().dropCollection(name, keepLog: keepLog, force: force)
      if output.isJSON { return try Terminal.printJSON(["dropped": name]) }
      print("dropped \(name)")
    }
  }

  struct Rename: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Rename a collection (its query log follows it).")

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The collection's name.") var name: String
    @Argument(help: "Its new name (not in use).") var newName: String
    @OptionGroup var output: OutputOptions

    func run() throws {
      try database.open().renameCollection(name, to: newName)
      if output.isJSON { return try Terminal.printJSON(["renamed": name, "name": newName]) }
      print("renamed \(name) to \(newName)")
    }
  }
}

/// The collections table of `vdb collections` and `vdb status`.
func printCollections(_ collections: [CollectionInfo]) {
  guard !collections.isEmpty else {
    return print("no collections yet: `vdb import FILE -c NAME` or `vdb collections create NAME`")
  }
  Terminal.printTable(
    headers: ["collection", "documents", "vectors", "model", "generation", "re-embed job"],
    rows: collections.map { collection in
      [
        collection.name, String(collection.documents),
        collection.dimension.map { "\($0)-d \(collection.metric ?? "")" } ?? "-",
        (collection.model.map { "v\($0)" } ?? "-")
          + (collection.adapter.map { " + adapter v\($0)" } ?? ""),
        collection.generation.map(String.init) ?? "-",
        collection.job.map {
          "g\($0.generation) model v\($0.model ?? 0): \($0.vectors) done, at \($0.cursor ?? "start")"
        }
          ?? "-",
      ]
    })
}

extension Database {
  /// Runs `body` on the collection `name`, creating it with `options` when missing
  /// (`import` and `upsert` create on first write). When the collection it created
  /// holds no document after `body` — which failed, or had nothing to write — it is
  /// dropped again: a failed or empty first import leaves nothing behind.
  func writing<R>(
    into name: String, options: CollectionOptions? = nil, _ body: (DocumentCollection) throws -> R
  ) throws -> R {
    let created = try !collectionNames().contains(name)
    let collection = try collection(name, options: options)
    defer {
      if created, (try? collection.count()) == 0 { try? dropCollection(name, force: true) }
    }
    return try body(collection)
  }
}
