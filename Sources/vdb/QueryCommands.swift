import ArgumentParser
import Foundation
import VectorDB

struct Query: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Find the documents nearest to a text or a vector.",
    discussion: """
      Every query is logged (its log id is printed) so feedback can name it later;
      --no-log skips that.

      Examples:
        vdb query -c scifact "sugar consumption and diabetes risk" -k 5
        vdb query -c notes "graphs" --filter '{"topic": {"$in": ["index", "lmdb"]}}'
        vdb query -c notes --file questions.txt --json    a line a text → JSON Lines
        vdb query -c sift --vectors queries.fvecs --json --no-log
        vdb query -c points --vector '[0.5, 1, -2]' -k 3
        vdb query -c scifact --mode keyword "BRCA1 mutation"
        vdb query -c scifact --mode hybrid --fusion convex --alpha 0.6 "statins"
        vdb query -c notes "graphs" --filter '{"$text": {"$contains": "lmdb"}}'

      Modes (docs/search.md): dense (embeddings), keyword (BM25), hybrid (both,
      fused); the default is hybrid for text collections with a model, keyword for
      documents without vectors, dense for given vectors.

      JSON: {"log_id": 12, "hits": [{"id": "…", "score": 0.71, "text": "…",
      "metadata": {…}, "sources": {"dense": {"rank": 1, "score": 0.71},
      "keyword": null}}]} (for --file and --vectors: one such line per query, in
      input order, and a summary on stderr).
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Argument(help: "The query text.") var text: String?
  @Option(name: .shortAndLong, help: "How many hits.") var k = 10
  @Option(help: "Only documents whose metadata matches this JSON filter (see docs/shell.md).")
  var filter: String?
  @Option(help: "HNSW search width: larger is more exact and slower (default 64).") var ef: Int?
  @Flag(help: "Compare with every document (exact, slow): ground truth.") var exact = false
  @Flag(help: "Do not record the query in the query log.") var noLog = false
  @Option(help: "A file of query texts, one per line (`-`: standard input).") var file: String?
  @Option(help: "A .fvecs or float32 .npy file of query vectors.") var vectors: String?
  @Option(help: "One query vector as a JSON array.") var vector: String?
  @OptionGroup var search: SearchModeOptions
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check("query", ["-k": k, "--ef": ef])
    if [text, file, vectors, vector].compactMap({ $0 }).count != 1 {
      throw ValidationError("give one of TEXT, --file FILE, --vectors FILE, --vector JSON")
    }
    try SearchModeOptions.checkWidth(exact: exact, ef: ef)
  }

  func run() throws {
    let db = try database.open()
    let collection = try db.collection(try target.name(), create: false)
    let options = QueryOptions(
      k: k, ef: ef ?? QueryOptions().ef, filter: try filter.map { try Filter(json: $0) },
      exact: exact, log: !noLog,
      mode: search.mode, fusion: search.fusionMethod)
    /// The results, with log ids only when their entries were committed.
    func logged(_ results: [QueryResult]) -> [QueryResult] {
      guard !noLog, !logCommitted(db, what: results.count == 1 ? "query" : "queries") else {
        return results
      }
      return results.map {
        var result = $0
        result.logID = nil
        return result
      }
    }
    if let text {
      return try show(logged(try collection.query(texts: [text], options: options))[0])
    }
    if let vector {
      let query = try parseVector(vector, source: "--vector")
      return try show(logged(try collection.query(vectors: [query], options: options))[0])
    }
    let start = Date()
    var results: [QueryResult]
    if let file {
      results = try collection.query(texts: try readLines(file), options: options)
    } else {
      results = try collection.query(vectors: try VectorFile.read(vectors!).rows, options: options)
    }
    let seconds = Date().timeIntervalSince(start)
    results = logged(results)
    for result in results {
      if output.isJSON {
        try Terminal.printJSONLine(result)
      } else {
        try show(result)
        print("")
      }
    }
    Terminal.standardError(
      String(
        format: "%d queries in %.3f s (%.0f queries/s)\n", results.count, seconds,
        Double(results.count) / max(seconds, 1e-9)))
  }

  private func show(_ result: QueryResult) throws {
    if output.isJSON {
      try Terminal.printJSON(result)
      return
    }
    let hybrid =
      result.hits.contains { $0.sources?.dense != nil && $0.sources?.keyword != nil }
      || search.mode == .hybrid
    func source(_ found: HitSource?) -> String {
      found.map { "#\($0.rank) " + String(format: "%.3f", $0.score) } ?? "-"
    }
    Terminal.printTable(
      headers: ["rank", "score", "id"] + (hybrid ? ["dense", "keyword"] : []) + ["text"],
      rows: result.hits.enumerated().map { rank, hit in
        [String(rank + 1), String(format: "%.4f", hit.score), hit.id]
          + (hybrid ? [source(hit.sources?.dense), source(hit.sources?.keyword)] : []) + [hit.text]
      }, flexibleColumn: hybrid ? 5 : 3)
    if let logID = result.logID { print("log id \(logID) (vdb feedback \(logID) DOC_ID)") }
  }
}

/// Commits the log entries of what the command just did, before their ids are shown: a
/// one-shot process would otherwise print the ids of entries that a failed commit (a
/// full disk) loses as it exits. One command's entries are one group commit (one
/// `append`), so they are kept or lost together. False, after a warning, when lost: the
/// answers stand, without log ids.
func logCommitted(_ db: Database, what: String) -> Bool {
  do {
    try db.flushLog()
    return true
  } catch {
    let failure = error as? VectorDBError
    Terminal.warn(
      "the \(what) could not be logged, so no log id is given: "
        + (failure?.description ?? "\(error)"))
    if let hint = failure?.hint { Terminal.standardError("hint: \(hint)\n") }
    return false
  }
}

/// `--mode`, `--fusion`, `--alpha`: how text queries search (query and eval).
struct SearchModeOptions: ParsableArguments {
  enum FusionName: String, ExpressibleByArgument, CaseIterable {
    case rrf, convex
  }

  @Option(help: "dense, keyword or hybrid (default: the collection's, see docs/search.md).")
  var mode: SearchMode?
  @Option(
    help:
      "How hybrid fuses its lists: convex (normalised scores; default) or rrf (reciprocal rank).")
  var fusion: FusionName?
  @Option(
    help:
      "Convex fusion's weight of the dense scores, within [0, 1] (default: the fitted one, see `vdb train --tier fusion`, else 0.5)."
  )
  var alpha: Double?

  /// `--ef` (the index's search width) and `--exact` (no index) do not go together (query
  /// and eval).
  static func checkWidth(exact: Bool, ef: Int?) throws {
    if exact && ef != nil {
      throw ValidationError("--ef applies to the index; --exact compares with every document")
    }
  }

  func validate() throws {
    if let alpha {
      guard (0...1).contains(alpha) else {
        throw ValidationError("--alpha must be within [0, 1] (got \(alpha))")
      }
      guard fusion != .rrf else {
        throw ValidationError("--alpha goes with --fusion convex, not rrf")
      }
    }
    if let mode, mode != .hybrid, fusion != nil || alpha != nil {
      throw ValidationError("--fusion and --alpha go with --mode hybrid, not \(mode.rawValue)")
    }
  }

  /// nil: the collection's serving fusion.
  var fusionMethod: Fusion? {
    fusion == .rrf ? .reciprocalRank : alpha.map { .convex(alpha: $0) }
  }
}

extension SearchMode: ExpressibleByArgument {}
extension TextRole: ExpressibleByArgument {}

struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the embedding of texts (needs no database).",
    discussion: """
      Examples:
        vdb embed "What is HNSW?" "LMDB is a B+tree" --json
        vdb embed --file sentences.txt --json > vectors.jsonl
        vdb embed --model ~/models/my-bert "hello"
        vdb embed --model-version 2 "hello"     a model stored in the database

      JSON Lines: {"text": "…", "vector": [0.01, …]} per input, in input order.
      """)

  @Argument(help: "Texts to embed.") var texts: [String] = []
  @Option(help: "A file of texts, one per line.") var file: String?
  @Option(help: "A model directory (default: the fetched all-MiniLM-L6-v2).") var model: String?
  @Option(help: "A model version stored in the database (--db).") var modelVersion: Int?
  @Option(
    name: .customLong("as"),
    help: "query or document: each text after the model's prompt for it (default: as given).")
  var role: TextRole?
  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func validate() throws {
    try Counts.check("embed", ["--model-version": modelVersion])
    if model != nil && modelVersion != nil {
      throw ValidationError("give --model DIR or --model-version V, not both")
    }
  }

  struct Line: Encodable {
    var text: String
    var vector: [Float]
  }

  func run() throws {
    var inputs = texts
    if let file {
      inputs += try readLines(file)
    }
    guard !inputs.isEmpty else { throw ValidationError("give texts or --file FILE") }
    let embed =
      try modelVersion.map { try database.open(readOnly: true).embedder(version: $0, as: role) }
      ?? DefaultModel.embedder(directory: model ?? DefaultModel.directory, as: role)
    let start = Date()
    let vectors = embed(inputs)
    let seconds = Date().timeIntervalSince(start)
    for (text, vector) in zip(inputs, vectors) {
      if output.isJSON {
        try Terminal.printJSONLine(Line(text: text, vector: vector))
      } else {
        let head = vector.prefix(4).map { String(format: "%.4f", $0) }.joined(separator: ", ")
        print("\(text.prefix(50))\t[\(head), … \(vector.count) floats]")
      }
    }
    Terminal.standardError(
      String(
        format: "%d texts in %.3f s (%.0f/s)\n", inputs.count, seconds,
        Double(inputs.count) / max(seconds, 1e-9)))
  }
}

/// The non-blank lines of a UTF-8 text file (`-`: standard input), trimmed; LF or CRLF
/// line ends, a leading byte order mark skipped.
func readLines(_ path: String) throws -> [String] {
  let contents = try TextFile.utf8(readInput(path), source: inputName(path))
  // A String's "\r\n" is one Character, so splitting at "\n" alone would not split it.
  return contents.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
    $0.trimmingCharacters(in: .whitespaces)
  }.filter { !$0.isEmpty }
}
