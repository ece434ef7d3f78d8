import Foundation
import LMDB

/// A named classifier that decides which path handles a request: a cheap specialist or an
/// expensive generalist, one collection or another, one tool or another (docs/routing.md).
///
///     let router = try db.createRouter(
///       "support", paths: [RoutePath(name: "faq", cost: 1), RoutePath(name: "agent", cost: 20)],
///       escalation: "agent")
///     try router.record(input: "reset my password", path: "faq", outcome: .good)
///     // … at least 5 inputs whose best path is known on each path, then:
///     let report = try router.train()                       // gated like the retriever
///     guard report.activated else { return }                // report.reason says why not
///     let decision = try router.route(["where is my invoice"])[0]
///     print(decision.path, decision.confidence, decision.escalated)
///
/// Data comes from its log: routing decisions (logged by `route` unless asked not to),
/// outcomes recorded for them or for any input, and labelled examples imported in bulk.
public final class Router: @unchecked Sendable {
  /// The database the router lives in.
  public let database: Database
  /// The router's name, unique in its database.
  public let name: String
  /// The paths, in the order of the classifier's classes.
  public let paths: [RoutePath]
  /// The path that takes the requests the router is unsure of (nil: none).
  public let escalation: String?
  let id: UInt32
  var store: RouterStore { database.schema.routing }
  /// Versions loaded for serving (a version never changes once stored, only its state).
  let versionCache = VersionCache<ServedVersion>()

  init(database: Database, record: RouterRecord) {
    self.database = database
    name = record.name
    paths = record.paths
    escalation = record.escalation
    id = record.id
  }

  /// Reads the router's record as stored now.
  ///
  /// - Throws: `VectorDBError.routerNotFound` when the router was dropped, even if another
  ///   of the same name was created since (this handle's versions and log are not its).
  func storedRecord(in txn: Transaction) throws -> RouterRecord {
    guard let record = try store.record(name, in: txn), record.id == id else {
      throw VectorDBError.routerNotFound(name)
    }
    return record
  }

  /// The index of path `name`.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source`, `line` and the known paths.
  func pathIndex(_ path: String, source: String, line: Int? = nil) throws -> Int {
    guard let index = paths.firstIndex(where: { $0.name == path }) else {
      throw VectorDBError.invalidInput(
        source: source, line: line,
        reason:
          "unknown path \"\(path)\" (router \"\(name)\" has \(paths.map { "\"\($0.name)\"" }.joined(separator: ", ")))"
      )
    }
    return index
  }

  // MARK: Data

  /// Logs that `path` served `input` well or badly; returns the entry's log id.
  ///
  /// - Throws: `VectorDBError.invalidInput` for empty input or an unknown path; nothing
  ///   is written then.
  @discardableResult
  public func record(input: String, path: String, outcome: RouteOutcome) throws -> UInt64 {
    try record([(input, path, outcome)], source: "argument")[0]
  }

  /// Logs an outcome for an earlier logged decision (by the `log_id` `route` returned).
  ///
  /// - Throws: `VectorDBError.routeLogEntryNotFound` for an unknown id (or a decision the
  ///   log retention pruned); `.invalidInput` for an unknown path, or an id that is not a
  ///   decision (a labelled example or an outcome: most likely a mistyped id).
  public func record(outcome: RouteOutcome, path: String, for logID: UInt64) throws {
    _ = try pathIndex(path, source: "argument")
    try database.flushLog()  // the decision may have been logged a moment ago
    let store = self.store
    let id = self.id
    try storage {
      try database.environment.write { txn in
        guard var entry = try store.entry(router: id, id: logID, in: txn) else {
          throw VectorDBError.routeLogEntryNotFound(router: name, id: logID)
        }
        guard entry.decision != nil else {
          throw VectorDBError.invalidInput(
            source: "argument", line: nil,
            reason: "log id \(logID) of router \"\(name)\" is "
              + (entry.label != nil ? "a labelled example" : "a recorded outcome")
              + ", not a routing decision; record an outcome for a text with its input")
        }
        entry.outcomes[path] = outcome
        try store.put(entry, router: id, in: txn)
      }
    }
  }

  /// Writes labelled entries in one transaction: a nil outcome makes `path` the input's
  /// best path, an outcome records how `path` did.
  private func record(_ items: [(String, String, RouteOutcome?)], source: String) throws
    -> [UInt64]
  {
    let entries = try items.map { input, path, outcome in
      try entry(input: input, path: path, outcome: outcome, source: source, line: nil)
    }
    let store = self.store
    let id = self.id
    return try storage {
      try database.environment.write { txn in
        _ = try self.storedRecord(in: txn)  // not into the log of a dropped router
        return try store.append(entries, router: id, in: txn)
      }
    }
  }

  /// A labelled log entry (not yet numbered), checked.
  private func entry(
    input: String, path: String, outcome: RouteOutcome?, source: String, line: Int?
  ) throws -> RouteLogEntry {
    guard !input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
      throw VectorDBError.invalidInput(source: source, line: line, reason: "the input is empty")
    }
    _ = try pathIndex(path, source: source, line: line)
    return RouteLogEntry(
      logID: 0, time: Date(), input: input, label: outcome == nil ? path : nil,
      outcomes: outcome.map { [path: $0] } ?? [:], decision: nil)
  }

  /// One labelled example as `importJSONL` reads it from a line and `vdb serve` from a
  /// request: `path` is the input's best path, or — with an outcome — a path that did
  /// well or badly for it.
  public struct LabelledExample: Codable, Equatable, Sendable {
    /// The request's text (JSON `input`).
    public var input: String
    /// Its best path or, with `outcome`, the path that served it (JSON `path`).
    public var path: String
    /// How `path` served the input (JSON `outcome`; null: `path` is the best path).
    public var outcome: RouteOutcome?
    /// An example of `input` for `path`, labelled best or with an `outcome`.
    public init(input: String, path: String, outcome: RouteOutcome? = nil) {
      self.input = input
      self.path = path
      self.outcome = outcome
    }
  }

  /// What an import did.
  public struct ImportReport: Codable, Sendable {
    /// Examples with only a path (the best path of the input).
    public var labelled: Int
    /// Examples with an outcome.
    public var outcomes: Int
  }

  /// Imports labelled examples from a JSON Lines file, all or nothing. Each non-blank line is
  /// `{"input": "…", "path": "P"}` (P is the input's best path) or
  /// `{"input": "…", "path": "P", "outcome": "good"|"bad"}` (how P did).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line (unreadable file,
  ///   invalid JSON, a missing, mistyped or unknown field, empty input, an unknown path, an outcome
  ///   other than good/bad) or an empty file; nothing is written then.
  @discardableResult
  public func importJSONL(path file: String) throws -> ImportReport {
    try append(try entries(fromJSONL: file))
  }

  /// Imports labelled examples, all or nothing; errors name the example as
  /// `source[index]`, counted from 0.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and the example (empty input,
  ///   an unknown path) or an empty list; nothing is written then.
  @discardableResult
  public func importExamples(_ examples: [LabelledExample], source: String) throws
    -> ImportReport
  {
    guard !examples.isEmpty else {
      throw VectorDBError.invalidInput(source: source, line: nil, reason: "no examples given")
    }
    return try append(
      examples.enumerated().map { index, example in
        try entry(
          input: example.input, path: example.path, outcome: example.outcome,
          source: "\(source)[\(index)]", line: nil)
      })
  }

  private func append(_ entries: [RouteLogEntry]) throws -> ImportReport {
    let store = self.store
    let id = self.id
    try storage {
      try database.environment.write { txn in
        _ = try self.storedRecord(in: txn)  // not into the log of a dropped router
        _ = try store.append(entries, router: id, in: txn)
      }
    }
    let labelled = entries.filter { $0.label != nil }.count
    return ImportReport(labelled: labelled, outcomes: entries.count - labelled)
  }

  /// The lines of a routing examples file as log entries (see `importJSONL`).
  func entries(fromJSONL file: String) throws -> [RouteLogEntry] {
    let data = try TextFile.contents(file)
    var entries: [RouteLogEntry] = []
    try JSONLines.forEach(in: data) { line, bytes in
      let object = try JSONLines.object(from: bytes, source: file, line: line)
      try JSONLines.checkFields(
        object, known: ["input", "path", "outcome"], source: file, line: line)
      func string(_ key: String) throws -> String {
        guard case .string(let value) = object[key] else {
          throw VectorDBError.invalidInput(
            source: file, line: line,
            reason: object[key] == nil ? "missing \"\(key)\"" : "\"\(key)\" must be a string")
        }
        return value
      }
      var outcome: RouteOutcome?
      if let value = object["outcome"], value != .null {
        guard case .string(let text) = value, let parsed = RouteOutcome(rawValue: text) else {
          throw VectorDBError.invalidInput(
            source: file, line: line, reason: "\"outcome\" must be \"good\" or \"bad\"")
        }
        outcome = parsed
      }
      entries.append(
        try entry(
          input: try string("input"), path: try string("path"), outcome: outcome, source: file,
          line: line))
    }
    guard !entries.isEmpty else {
      throw VectorDBError.invalidInput(source: file, line: nil, reason: "the file has no examples")
    }
    return entries
  }

  /// A router as `vdb route list` and `GET /routers` show it.
  public struct Summary: Codable, Sendable {
    /// The router's name (JSON `name`).
    public var name: String
    /// Its paths, in the classifier's class order (JSON `paths`).
    public var paths: [RoutePath]
    /// The path that takes uncertain requests (JSON `escalation`; null: none).
    public var escalation: String?
    /// The version that serves (nil: none trained yet).
    public var active: Int?

    init(_ record: RouterRecord) {
      name = record.name
      paths = record.paths
      escalation = record.escalation
      active = record.active
    }
  }

  /// The router's name, paths, escalation path and active version.
  ///
  /// - Throws: `VectorDBError.routerNotFound` when the router was deleted; `.storage`,
  ///   `.damaged`.
  public func summary() throws -> Summary {
    Summary(try storage { try database.environment.read { try self.storedRecord(in: $0) } })
  }

  /// One input and what its log entries say about it.
  public struct Example: Codable, Equatable, Sendable {
    /// The request's text, the key examples are merged by.
    public var input: String
    /// The best path: the label given last, else the cheapest path with a good outcome
    /// (nil: nothing says which path serves it).
    public var best: String?
    /// Outcomes by path, the latest for each.
    public var outcomes: [String: RouteOutcome]
  }

  /// The router's log, oldest first: routing decisions (with the outcomes attached to
  /// them), recorded outcomes and labelled examples, as stored (`examples()` merges them).
  ///
  /// ```swift
  /// // Decisions still waiting for an outcome, to attach one by `log_id`.
  /// let open = try router.logEntries(pending: true, limit: 20)
  /// ```
  ///
  /// - Parameters:
  ///   - since: only entries logged at or after this time.
  ///   - after: only entries with a larger log id (the last one read, to page on).
  ///   - pending: only routing decisions without an outcome.
  ///   - limit: at most this many entries.
  /// - Throws: `VectorDBError.routerNotFound`; `.storage`, `.damaged` (an unreadable entry).
  public func logEntries(
    since: Date? = nil, after: UInt64 = 0, pending: Bool = false, limit: Int = 50
  ) throws -> [RouteLogEntry] {
    try database.flushLog()  // decisions of a moment ago
    let table = store.log
    return try storage {
      try database.environment.read { txn in
        _ = try self.storedRecord(in: txn)
        var entries: [RouteLogEntry] = []
        guard limit > 0, after < UInt64.max else { return entries }
        let range = KeyRange.router(id)
        try txn.forEach(in: table, from: RouteLogKey(router: id, log: after + 1)) { key, value in
          guard range.contains(key) else { return false }
          let entry = try QueryLogStore.decoder.decode(RouteLogEntry.self, from: Data(value))
          if let since, entry.time < since { return true }
          if pending && (entry.decision == nil || !entry.outcomes.isEmpty) { return true }
          entries.append(entry)
          return entries.count < limit
        }
        return entries
      }
    }
  }

  /// The router's data: its log entries merged by input text (see `merge`).
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged` (an unreadable entry).
  public func examples() throws -> [Example] {
    try database.flushLog()
    let store = self.store
    let id = self.id
    var entries: [RouteLogEntry] = []
    try storage {
      try database.environment.read { txn in
        try store.forEachEntry(router: id, in: txn) { entries.append($0) }
      }
    }
    return merge(entries)
  }

  /// Merges entries by input text, in order of first appearance: later outcomes for a path
  /// override earlier ones, the last label wins. The best path is the label, else the
  /// cheapest path with a good outcome: the lowest cost, paths without a cost after those
  /// with one, ties in the router's order.
  func merge(_ entries: [RouteLogEntry]) -> [Example] {
    var merged: [String: Example] = [:]
    var order: [String] = []
    var labels: [String: String] = [:]
    for entry in entries {
      if merged[entry.input] == nil {
        merged[entry.input] = Example(input: entry.input, best: nil, outcomes: [:])
        order.append(entry.input)
      }
      merged[entry.input]!.outcomes.merge(entry.outcomes) { $1 }
      if let label = entry.label { labels[entry.input] = label }
    }
    let rank = Dictionary(
      uniqueKeysWithValues: paths.indices.sorted {
        (paths[$0].cost ?? .infinity, $0) < (paths[$1].cost ?? .infinity, $1)
      }.enumerated().map { (paths[$0.element].name, $0.offset) })
    return order.map { input in
      var example = merged[input]!
      example.best =
        labels[input]
        ?? example.outcomes.filter { $0.value == .good && rank[$0.key] != nil }
        .min { rank[$0.key]! < rank[$1.key]! }?.key
      return example
    }
  }
}

extension Database {
  /// Creates router `name` with its paths (at least two, unique names) and an optional
  /// escalation path (one of them) for the requests it is unsure of.
  ///
  /// - Throws: `VectorDBError.invalidInput` for a bad name, fewer than two paths, a
  ///   repeated or empty path name, a negative cost, an unknown escalation path, or a
  ///   router of that name that exists; nothing is written then.
  @discardableResult
  public func createRouter(_ name: String, paths: [RoutePath], escalation: String? = nil) throws
    -> Router
  {
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: "router \"\(name)\"", line: nil, reason: reason)
    }
    guard !name.isEmpty, name.utf8.count <= 200,
      !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
      throw fail("a router name is 1 to 200 bytes without control characters")
    }
    guard paths.count >= 2 else {
      throw fail("a router needs at least two paths to choose from, got \(paths.count)")
    }
    for path in paths {
      guard !path.name.isEmpty else { throw fail("a path name cannot be empty") }
      guard paths.filter({ $0.name == path.name }).count == 1 else {
        throw fail("path \"\(path.name)\" is given twice")
      }
      if let cost = path.cost, !(cost >= 0 && cost.isFinite) {
        throw fail("path \"\(path.name)\" has cost \(cost); costs are finite and ≥ 0")
      }
    }
    if let escalation, !paths.contains(where: { $0.name == escalation }) {
      throw fail("the escalation path \"\(escalation)\" is not one of its paths")
    }
    let store = schema.routing
    let meta = schema.meta
    let record = try storage {
      try environment.write { txn -> RouterRecord in
        if try store.record(name, in: txn) != nil {
          throw fail("a router with this name exists")
        }
        let id =
          try txn.get(meta, key: MetaKey.nextRouter).map {
            $0.loadUnaligned(as: UInt32.self).littleEndian
          } ?? 1
        try txn.put(
          meta, key: MetaKey.nextRouter,
          value: withUnsafeBytes(of: (id + 1).littleEndian) { Array($0) })
        let record = RouterRecord(
          id: id, name: name, paths: paths, escalation: escalation, created: Date())
        try store.put(record, in: txn)
        return record
      }
    }
    return Router(database: self, record: record)
  }

  /// The router named `name`.
  ///
  /// - Throws: `VectorDBError.routerNotFound` when there is none; `.storage`.
  public func router(_ name: String) throws -> Router {
    let store = schema.routing
    guard let record = try storage({ try environment.read { try store.record(name, in: $0) } })
    else {
      throw VectorDBError.routerNotFound(name)
    }
    return Router(database: self, record: record)
  }

  /// Deletes the router `name` and everything it owns, in one transaction: its versions and
  /// their weights, its log (decisions, outcomes, labelled examples) and its inputs' stored
  /// vectors. Handles to it fail with `routerNotFound` afterwards, and so does a training
  /// run of it when it would store its version. A router created later under the same name
  /// is a new one.
  ///
  /// ```swift
  /// try db.dropRouter("support")
  /// ```
  ///
  /// - Throws: `VectorDBError.routerNotFound`; `.storage` (nothing is deleted then).
  public func dropRouter(_ name: String) throws {
    try flushLog()  // no decision of ours may land after the drop
    let store = schema.routing
    try storage {
      try environment.write { txn in
        guard let record = try store.record(name, in: txn) else {
          throw VectorDBError.routerNotFound(name)
        }
        for table in [store.versions, store.weights, store.log] {
          try txn.deleteRange(table, .router(record.id))
        }
        try store.vectors.forget(router: record.id, in: txn)
        _ = try txn.delete(store.routers, key: name)
      }
    }
  }

  /// Every router's summary, sorted by name, read in one transaction.
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged` (an unreadable record).
  public func routerSummaries() throws -> [Router.Summary] {
    let routers = schema.routing.routers
    return try storage {
      try environment.read { txn in
        var summaries: [Router.Summary] = []
        try txn.forEach(in: routers) { _, value in
          summaries.append(
            Router.Summary(try QueryLogStore.decoder.decode(RouterRecord.self, from: Data(value))))
          return true
        }
        return summaries
      }
    }
  }

  /// The names of all routers, sorted.
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged`.
  public func routerNames() throws -> [String] {
    let routers = schema.routing.routers
    return try storage {
      try environment.read { txn in
        var names: [String] = []
        try txn.forEach(in: routers) { key, _ in
          names.append(String(decoding: key, as: UTF8.self))
          return true
        }
        return names
      }
    }
  }
}
