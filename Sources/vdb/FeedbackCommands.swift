import ArgumentParser
import Foundation
import VectorDB

struct Log: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List logged queries with their feedback, oldest first.",
    discussion: """
      Examples:
        vdb log --limit 20                 the 20 oldest entries kept
        vdb log -c scifact --since 1h      the last hour of one collection
        vdb log --after 120 --json         entries after log id 120, as JSON Lines
        vdb log retention --max-age 90d    how long the logs keep entries
      The listing's options: vdb log list --help.
      """,
    subcommands: [LogList.self, LogRetentionCommand.self],
    defaultSubcommand: LogList.self)
}

struct LogList: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list",
    abstract: "List logged queries with their feedback, oldest first (the default).",
    discussion: """
      JSON Lines: {"id", "time", "collection", "kind": "query"|"judgement", "text",
      "model", "generation", "k", "filter", "hits": [{"id", "score"}],
      "feedback": [{"doc", "kind": "click"|"not_relevant"|"correction"|"judgement",
      "relevance", "time"}]}
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(name: [.customShort("c"), .long], help: "Only this collection.") var collection: String?
  @OptionGroup var page: LogPage
  @OptionGroup var output: OutputOptions

  func run() throws {
    let entries = try database.open(readOnly: true).logEntries(
      collection: collection, since: try page.cutoff(), after: page.after, limit: page.limit)
    if output.isJSON {
      for entry in entries { try Terminal.printJSONLine(entry) }
      return
    }
    let formatter = ISO8601DateFormatter()
    Terminal.printTable(
      headers: ["id", "time", "collection", "kind", "hits", "feedback", "query"],
      rows: entries.map { entry in
        [
          String(entry.id), formatter.string(from: entry.time), entry.collection,
          entry.kind.rawValue,
          String(entry.hits.count),
          entry.feedback.map { "\($0.kind.rawValue):\($0.documentID)" }.joined(separator: " "),
          entry.text ?? "(vector)",
        ]
      }, flexibleColumn: 6)
  }
}

/// Which entries of a log to list: `vdb log` and `vdb route entries`.
struct LogPage: ParsableArguments {
  @Option(help: "Only entries younger than this: 90s, 30m, 12h, 7d.") var since: String?
  @Option(help: "Only entries after this log id.") var after: UInt64 = 0
  @Option(help: "At most this many entries.") var limit = 50

  func validate() throws {
    try Counts.check("log", ["--limit": limit])
  }

  /// The oldest time `--since` keeps (nil: any).
  func cutoff() throws -> Date? {
    try since.map { Date().addingTimeInterval(-(try parseDuration($0))) }
  }
}

/// "90s", "30m", "12h", "7d" → seconds (finite, ≥ 0).
func parseDuration(_ text: String) throws -> Double {
  let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
  guard let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()),
    value >= 0, (value * unit).isFinite
  else {
    throw CLIError(
      message: "cannot read the duration \"\(text)\"", hint: "use a number and s, m, h or d: 30m")
  }
  return value * unit
}

struct LogRetentionCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "retention",
    abstract: "Show or set how long the logs keep entries.",
    discussion: """
      The query log keeps its newest entries (default: 1,000,000, no age limit).
      The routers' log drops, by the same setting, the routing decisions that
      never got an outcome (labelled examples and outcomes stay). Setting it
      prunes at once.
        vdb log retention                             show it
        vdb log retention --max-entries 200000        keep the newest 200,000
        vdb log retention --max-age 90d --max-entries none
      JSON: {"max_entries", "max_age"} (max_age in seconds; null: no limit).
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(help: "Keep at most this many entries, or \"none\".") var maxEntries: String?
  @Option(help: "Keep no entry older than this (90s, 30m, 12h, 7d), or \"none\".")
  var maxAge: String?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    if let maxEntries, maxEntries != "none" {
      guard let count = Int(maxEntries) else {
        throw ValidationError("--max-entries must be a count or \"none\"; it is \(maxEntries)")
      }
      try Counts.check("log retention", ["--max-entries": count])
    }
    if let maxAge, maxAge != "none" {
      do {
        _ = try parseDuration(maxAge)
      } catch let error as CLIError {
        throw ValidationError("--max-age: \(error.message) (\(error.hint ?? ""))")
      }
    }
  }

  func run() throws {
    var retention: LogRetention
    if maxEntries == nil && maxAge == nil {
      retention = try database.open(readOnly: true).logRetention()
    } else {
      let db = try database.open()
      retention = try db.logRetention()
      if let maxEntries { retention.maxEntries = Int(maxEntries) }  // nil for "none"
      if let maxAge { retention.maxAge = maxAge == "none" ? nil : try parseDuration(maxAge) }
      do {
        try db.setLogRetention(retention)
      } catch VectorDBError.invalidInput(source: "log retention", _, let reason) {
        // The options' values out of the library's range: a usage error, as the parser's.
        throw CLIError(message: "log retention: \(reason)", usage: true)
      }
    }
    if output.isJSON {
      try Terminal.printJSONLine(retention)
      return
    }
    switch (retention.maxEntries, retention.maxAge.map { String(format: "%.0f", $0) }) {
    case (nil, nil): print("the logs keep every entry")
    case (let count?, nil): print("the logs keep the newest \(count) entries")
    case (nil, let age?): print("the logs keep the entries of the last \(age) s")
    case (let count?, let age?):
      print("the logs keep the newest \(count) entries, none older than \(age) s")
    }
  }
}

struct FeedbackCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "feedback",
    abstract: "Record which documents were relevant for a query.",
    discussion: """
      On a logged query (its log id is printed by `vdb query`):
        vdb feedback 12 doc-7                 doc-7 was relevant (a click, or a
                                              correction when it was not shown)
        vdb feedback 12 doc-3 --not-relevant  doc-3 was shown but wrong
      For a query that was never run (an admin judgement):
        vdb feedback -c scifact --query "…" --doc 4983
      In bulk, BEIR judgements (qrels TSV and queries.jsonl), or training triples:
        vdb feedback -c scifact --qrels qrels/train.tsv --queries queries.jsonl
        vdb feedback -c scifact --triples triples.jsonl
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(name: [.customShort("c"), .long], help: "The collection (default: the logged query's).")
  var collection: String?
  @Argument(help: "The log id of the query.") var logID: UInt64?
  @Argument(help: "The document id.") var documentID: String?
  @Flag(help: "The document was not relevant.") var notRelevant = false
  @Option(help: "A query text to judge (with --doc).") var query: String?
  @Option(help: "A relevant document for --query (repeatable).") var doc: [String] = []
  @Option(help: "A qrels TSV file (query-id, corpus-id, score).") var qrels: String?
  @Option(help: "The queries.jsonl that names the qrels' queries.") var queries: String?
  @Option(
    help: "Training triples, JSON Lines: {\"query\", \"positive\": ID, \"hard_negatives\": [ID]}.")
  var triples: String?
  @OptionGroup var output: OutputOptions

  func validate() throws {
    let modes = [logID != nil, query != nil, qrels != nil, triples != nil].filter { $0 }.count
    guard modes == 1 else {
      throw ValidationError(
        "give LOG_ID DOC_ID, or --query TEXT --doc ID, or --qrels FILE --queries FILE, or --triples FILE"
      )
    }
    if logID != nil && documentID == nil {
      throw ValidationError("give the document id after the log id")
    }
    if query != nil && doc.isEmpty { throw ValidationError("--query needs at least one --doc") }
    if qrels != nil && queries == nil { throw ValidationError("--qrels needs --queries") }
  }

  func run() throws {
    let db = try database.open()
    if let logID, let documentID {
      let name =
        try collection
        ?? (db.logEntry(logID)?.collection).orThrow(VectorDBError.logEntryNotFound(logID))
      let kind = try db.collection(name, create: false).feedback(
        logID: logID, documentID: documentID, relevant: !notRelevant)
      try report(
        ["recorded": kind.rawValue], "recorded \(kind.rawValue) of \(documentID) for query \(logID)"
      )
      return
    }
    let name = try CollectionOption.name(collection)
    let target = try db.collection(name, create: false)
    if let query {
      let id = try target.judge(
        query: query, relevant: Dictionary(doc.map { ($0, 1) }, uniquingKeysWith: max))
      try report(["log_id": Int(id)], "logged judgement \(id): \(doc.count) relevant documents")
      return
    }
    if let triples {
      let ids = try target.judge(try Judgement.triples(path: triples))
      try report(["judgements": ids.count], "logged \(ids.count) judged queries from \(triples)")
      return
    }
    let ids = try target.judge(try Judgement.qrels(path: qrels!, queries: queries!))
    try report(["judgements": ids.count], "logged \(ids.count) judged queries")
  }

  private func report(_ json: [String: some Encodable], _ text: String) throws {
    if output.isJSON { try Terminal.printJSON(json) } else { print(text) }
  }
}

extension Optional {
  func orThrow(_ error: @autoclosure () -> Error) throws -> Wrapped {
    guard let self else { throw error() }
    return self
  }
}

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure retrieval quality (nDCG@10, MRR@10, Recall@k, MAP@100, …).",
    discussion: """
      Metrics and tie rules are those of sentence-transformers'
      InformationRetrievalEvaluator (docs/evaluation.md).

      Examples:
        vdb eval -c scifact --beir ../datasets/scifact --split test
        vdb eval -c scifact --beir ../datasets/scifact --mode keyword
        vdb eval -c scifact --beir ../datasets/scifact --mode hybrid \\
          --fusion convex --alpha 0.6
        vdb eval -c scifact --queries queries.jsonl --qrels qrels/test.tsv --exact
        vdb eval -c scifact --from-log           logged queries with feedback
        vdb eval -c scifact --from-log --unseen  … but none the model was fitted on
        vdb eval -c scifact --diagnose           where the retriever fails
        vdb eval -c scifact --beir DIR --model 3 --pool 100
                                  a model with no generation, as the gate does

      JSON: {"ndcg@10": …, "mrr@10": …, "recall@10": …, "map@100": …,
      "queries": 300, …}
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "A BEIR directory (queries.jsonl, qrels/SPLIT.tsv).") var beir: String?
  @Option(help: "With --beir: the qrels split.") var split = "test"
  @Option(help: "A queries.jsonl file.") var queries: String?
  @Option(help: "A qrels TSV file.") var qrels: String?
  @Flag(help: "Evaluate on the logged queries with feedback.") var fromLog = false
  @Flag(
    help: "With --from-log: leave out the queries the model (or --model V) was fitted on.")
  var unseen = false
  @Flag(help: "Diagnose retrieval failures over the logged queries with feedback.") var diagnose =
    false
  @Flag(help: "Exact search instead of the index.") var exact = false
  @Option(help: "HNSW search width (at least 100, the deepest cut-off; default 64).") var ef: Int?
  @Option(help: "Write each query's metrics to this JSON file.") var perQuery: String?
  @Option(
    help: "Evaluate model version V, which needs no generation, by re-scoring a pool (--pool).")
  var model: Int?
  @Option(help: "With --model: the current top N documents per query to re-score (default 100).")
  var pool: Int?
  @OptionGroup var search: SearchModeOptions
  @OptionGroup var output: OutputOptions

  /// `--ef` and `--pool` with their defaults (optional, so that validate() knows whether
  /// they were given).
  private var searchWidth: Int { ef ?? QueryOptions().ef }
  private var poolDepth: Int { pool ?? 100 }

  func validate() throws {
    try Counts.check("eval", ["--ef": ef, "--model": model, "--pool": pool])
    let sources = [beir != nil, queries != nil || qrels != nil, fromLog, diagnose].filter { $0 }
      .count
    guard sources == 1 else {
      throw ValidationError("give one of --beir DIR, --queries + --qrels, --from-log, --diagnose")
    }
    if (queries == nil) != (qrels == nil) {
      throw ValidationError("--queries and --qrels go together")
    }
    if unseen && !fromLog { throw ValidationError("--unseen goes with --from-log") }
    // Each way of evaluating reads its own options; one it ignores would change nothing.
    let given = [
      ("--model", model != nil), ("--pool", pool != nil), ("--exact", exact), ("--ef", ef != nil),
      ("--per-query", perQuery != nil),
      // --model ranks by dense scores, so it takes --mode dense.
      ("--mode", search.mode != nil && (model == nil || search.mode != .dense)),
      ("--fusion", search.fusion != nil), ("--alpha", search.alpha != nil),
    ].filter(\.1).map(\.0)
    if diagnose, let option = given.first {
      throw ValidationError("\(option) does not apply to --diagnose")
    }
    let withModel: Set = ["--model", "--pool", "--per-query"]
    if model != nil, let option = given.first(where: { !withModel.contains($0) }) {
      throw ValidationError(
        "\(option) does not apply with --model, which ranks pools of the current top documents"
          + " by the model's dense scores")
    }
    if model == nil && pool != nil { throw ValidationError("--pool goes with --model") }
    try SearchModeOptions.checkWidth(exact: exact, ef: ef)
  }

  func run() throws {
    if let perQuery { try checkWritable(perQuery, database: database.path) }
    let collection = try database.open().collection(try target.name(), create: false)
    if diagnose {
      let diagnosis = try collection.diagnose()
      if diagnosis.queries == 0 { throw noJudgedQueries(collection.name) }
      return try showDiagnosis(diagnosis)
    }
    let input: (queries: [String: String], qrels: [String: [String: Int]])
    var inSample = 0  // logged queries the model was fitted on, scored in-sample
    if let beir {
      input = (
        try BEIR.queries(path: beir + "/queries.jsonl"),
        try BEIR.qrels(path: beir + "/qrels/\(split).tsv")
      )
    } else if let queries, let qrels {
      input = (try BEIR.queries(path: queries), try BEIR.qrels(path: qrels))
    } else {
      let logged = try collection.loggedJudgements(unseen: unseen, model: model)
      if logged.queries.isEmpty && logged.leftOut > 0 {
        throw CLIError(
          message:
            "the model was fitted on every one of the \(logged.leftOut) logged queries with feedback",
          hint: "judge queries asked since (`vdb feedback LOG_ID DOC_ID`), or leave out --unseen")
      }
      if logged.queries.isEmpty { throw noJudgedQueries(collection.name) }
      input = (logged.queries, logged.qrels)
      inSample = logged.inSample
    }
    let bar = ProgressLine(label: "eval", unit: model == nil ? "queries" : "docs")
    let report =
      try model.map {
        try collection.evaluate(
          queries: input.queries, qrels: input.qrels, model: $0, pool: poolDepth
        ) { try bar.update($0) }
      }
      ?? collection.evaluate(
        queries: input.queries, qrels: input.qrels, exact: exact, ef: searchWidth,
        perQuery: perQuery != nil,
        mode: search.mode, fusion: search.fusionMethod
      ) { try bar.update($0) }
    bar.finish()
    if let perQuery {
      let file = try OutputFile(perQuery)
      try file.write(Terminal.json(report.perQuery ?? [:]))
      try file.commit()
    }
    if output.isJSON {
      var object: [String: Double] = report.metrics
      object["queries"] = Double(report.queries)
      if fromLog { object["in_sample"] = Double(inSample) }
      try Terminal.printJSON(object)
      return
    }
    let order = [
      "ndcg@10", "mrr@10", "map@100", "recall@1", "recall@3", "recall@5", "recall@10", "recall@100",
      "accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10",
    ]
    Terminal.printTable(
      headers: ["metric", "value"],
      rows: order.compactMap { key in report.metrics[key].map { [key, String(format: "%.4f", $0)] }
      })
    let method =
      model.map { "model v\($0) over pools of the current top \(poolDepth)" }
      ?? "\(report.mode.rawValue), "
      + (exact ? "exact search" : "index (ef \(max(searchWidth, 100)))")
    print("\(report.queries) queries, \(method), \(Terminal.seconds(report.seconds))")
    if inSample > 0 {
      print(
        "note: the model was fitted on \(inSample) of these queries (scored in-sample);"
          + " --unseen leaves them out")
    }
  }

  /// Evaluating or diagnosing from a log without relevant feedback: metrics over no
  /// queries would read as a score of 0.
  private func noJudgedQueries(_ collection: String) -> CLIError {
    CLIError(
      message: "no logged query of collection \"\(collection)\" has feedback naming a relevant"
        + " document",
      hint: "say which document answered a logged query: `vdb feedback LOG_ID DOC_ID`"
        + " (`vdb log` lists them), or `vdb feedback -c C --query TEXT --doc ID`")
  }

  private func showDiagnosis(_ diagnosis: Diagnosis) throws {
    if output.isJSON { return try Terminal.printJSON(diagnosis) }
    print("\(diagnosis.queries) logged queries with relevant feedback, top \(diagnosis.k):")
    print(
      String(
        format: "  not found at all   %5.1f%%  (retriever failure: train the retriever)",
        100 * diagnosis.notFound))
    print(String(format: "  found, not first   %5.1f%%  (ranking)", 100 * diagnosis.rankedLow))
    print(String(format: "  found first        %5.1f%%", 100 * diagnosis.first))
    if let paths = diagnosis.paths {
      print("\ndense against keyword search, top \(diagnosis.k) now:")
      print(String(format: "  both find it       %5.1f%%", 100 * paths.both))
      print(String(format: "  dense only         %5.1f%%", 100 * paths.denseOnly))
      print(
        String(
          format: "  keyword only       %5.1f%%  (the words find it, the encoder does not: train)",
          100 * paths.keywordOnly))
      print(String(format: "  neither            %5.1f%%", 100 * paths.neither))
      printCases(
        paths.keywordOnlyCases, title: "found by keyword search only", rank: "keyword rank")
    }
    printCases(diagnosis.worst, title: "worst queries", rank: "rank")
    if diagnosis.inSample > 0 {
      print("\nnote: the model was fitted on \(diagnosis.inSample) of these queries (in-sample)")
    }
  }

  private func printCases(_ cases: [Diagnosis.Case], title: String, rank: String) {
    guard !cases.isEmpty else { return }
    print("\n\(title):")
    Terminal.printTable(
      headers: ["log id", rank, "relevant doc", "query"],
      rows: cases.map {
        [String($0.logID), $0.rank.map(String.init) ?? "-", $0.document, $0.query]
      },
      flexibleColumn: 3)
  }
}

/// Fails early, before a long run, when `path` cannot be written (the file is written
/// at the end), or when it is in the database directory `database` (one of its files,
/// or beside them, also through a symbolic link): a mistyped output path must never
/// replace `data.mdb`.
///
/// - Throws: `VectorDBError.invalidInput` naming the file.
func checkWritable(_ path: String, database: String) throws {
  func resolved(_ path: String) -> String? {
    guard let real = realpath(path, nil) else { return nil }
    defer { free(real) }
    return String(cString: real)
  }
  guard !path.isEmpty else {
    throw CLIError(message: "an output path is empty: give a file name", usage: true)
  }
  guard !path.hasSuffix("/") else {
    // Else the file would be written under the directory's name.
    throw VectorDBError.invalidInput(
      source: path, line: nil, reason: "it ends in / as a directory does: give a file name")
  }
  let url = URL(fileURLWithPath: path)
  if let directory = resolved(database),
    let target = resolved(path)
      ?? resolved(url.deletingLastPathComponent().path).map({ $0 + "/" + url.lastPathComponent }),
    target == directory || target.hasPrefix(directory + "/")
  {
    throw VectorDBError.invalidInput(
      source: path, line: nil,
      reason: "it is in the database directory \(database): write it elsewhere")
  }
  let exists = FileManager.default.fileExists(atPath: path)
  // Not `NSString.deletingLastPathComponent`: it traps on a one-character path (`-o x`).
  let writable =
    exists
    ? FileManager.default.isWritableFile(atPath: path)
    : FileManager.default.isWritableFile(atPath: url.deletingLastPathComponent().path)
  guard writable else {
    throw VectorDBError.invalidInput(
      source: path, line: nil,
      reason: exists
        ? "the file is not writable" : "its directory does not exist or is not writable")
  }
}
