import Foundation
import LMDB
import Tensor

/// What `Database.verifyReport()` found: every table it walked, and each problem.
public struct VerifyReport: Codable, Sendable {
  /// One table walked: its name and size.
  public struct TableReport: Codable, Sendable {
    /// The table's name, as docs/storage-format.md lists it (JSON `name`).
    public var name: String
    /// Entries read (JSON `entries`).
    public var entries: Int
    /// Bytes of keys and values.
    public var bytes: Int
  }
  /// The database directory (JSON `path`).
  public var path: String
  /// Every table walked, by name (JSON `tables`).
  public var tables: [TableReport]
  /// What was checked beyond reading every entry, one line each.
  public var checks: [String]
  /// One line per finding, naming the table, collection, document, row or model.
  public var problems: [String]
  /// Whether no problem was found.
  public var isSound: Bool { problems.isEmpty }
}

extension Database {
  /// Checks the whole database and throws at the first finding; see `verifyReport`.
  ///
  /// - Throws: `VectorDBError.damaged` naming the first problem (and how many more).
  public func verify() throws {
    let report = try verifyReport()
    if let first = report.problems.first {
      let more = report.problems.count - 1
      throw VectorDBError.damaged(
        path: path, detail: more > 0 ? "\(first) (and \(more) more problems)" : first)
    }
  }

  /// Reads every entry of every table (so every page LMDB can reach) and checks that
  /// the records agree: the format record; every collection record, every document
  /// record and its content hash, rows ↔ documents, the counts; every generation's
  /// record, index graph (links, levels, entry point), vector count and finite
  /// vectors; every model's parts and weights checksum; the query log, its feedback and
  /// the routers with their versions, weights and logs (`checkLogs`).
  ///
  /// `stage` is called with what is about to be read (a table or collection name), so
  /// that a caller able to survive a fault can say where it happened: a damaged page
  /// can make LMDB itself fault, which no library can catch (the `vdb` shell reports
  /// it as a damaged database, exit code 3).
  ///
  /// - Throws: `VectorDBError.storage` when the database cannot be read at all;
  ///   findings are returned, not thrown.
  public func verifyReport(stage: ((String) -> Void)? = nil) throws -> VerifyReport {
    var report = VerifyReport(path: path, tables: [], checks: [], problems: [])
    func problem(_ line: String) {
      if report.problems.count < 1000 { report.problems.append(line) }
    }
    func checking<R>(_ what: String, _ body: () throws -> R) -> R? {
      stage?(what)
      do {
        return try body()
      } catch let error as VectorDBError {
        if case .damaged(_, let detail) = error {
          problem("\(what): \(detail)")
        } else {
          problem("\(what): \(error)")
        }
      } catch is DecodingError {
        problem("\(what): a stored record cannot be decoded")
      } catch {
        problem("\(what): \(error)")
      }
      return nil
    }
    let names = try storage { try environment.tableNames() }
    for name in names {
      guard Schema.isOurs(name) else {
        problem("table \"\(name)\" is not one of vdb's")
        continue
      }
      _ = checking("table \(name)") {
        let table = try environment.table(name)
        var entry = VerifyReport.TableReport(name: name, entries: 0, bytes: 0)
        try environment.read { txn in
          try txn.forEach(in: table) { key, value in
            entry.entries += 1
            entry.bytes += key.count + value.count
            return true
          }
        }
        report.tables.append(entry)
      }
    }
    report.checks.append("read \(report.tables.count) tables")
    let collections = checking("collections") { try collectionRecords() } ?? []
    for record in collections {
      _ = checking("collection \"\(record.name)\"") {
        try checkDocuments(of: record, problem: problem)
      }
      _ = checking("collection \"\(record.name)\" search indexes") {
        try checkSearchIndexes(of: record, problem: problem)
      }
      _ = checking("collection \"\(record.name)\" generations") {
        try checkGenerations(of: record, problem: problem)
      }
    }
    report.checks.append(
      "checked \(collections.count) collections: documents, rows, metadata and text indexes,"
        + " generations")
    let store = models
    // One pass reads each model record and checks it is stored under its own version.
    let versions: [ModelInfo] =
      checking("models") {
        try environment.read { txn -> [ModelInfo] in
          var versions: [ModelInfo] = []
          try txn.forEach(in: store.models) { key, value in
            let info = try QueryLogStore.decoder.decode(ModelInfo.self, from: Data(value))
            if UInt32(keyBytes: key).map(Int.init) != info.version {
              problem("models: the record of version \(info.version) is stored under another key")
            }
            versions.append(info)
            return true
          }
          return versions
        }
      } ?? []
    for info in versions where info.hasWeights {
      _ = checking("model version \(info.version)") {
        try environment.read { txn in
          // A LoRA version stores its adapters and settings; the rest is its parent's.
          let lora = try store.blob(info.version, .lora, in: txn) != nil
          let parts: [ModelBlobKey.Part] =
            info.kind != .encoder
            ? [.adapter] : lora ? [.lora, .settings] : [.weights, .settings, .vocab]
          for part in parts where try store.blob(info.version, part, in: txn) == nil {
            throw VectorDBError.damaged(
              path: path, detail: "its \"\(part.rawValue)\" part is missing")
          }
          let weights = try store.blob(info.version, parts[0], in: txn)!
          try store.checkWeights(info, weights, path: path)
          try store.checkParts(info, path: path, in: txn)
          _ = try store.trainedQueries(lineageOf: [info.version], path: path, in: txn)
        }
      }
    }
    report.checks.append(
      "checked the weights of \(versions.count) models (CRC-32C\(CRC32C.isAccelerated ? ", SSE4.2" : ""))"
    )
    let logs = checking("logs") {
      try checkLogs(
        collections: Set(collections.map(\.name)),
        dimensions: Dictionary(versions.map { ($0.version, $0.dimension) }) { a, _ in a },
        problem: problem)
    }
    if let logs { report.checks.append(logs) }
    return report
  }

  /// The query log and the routers (`checkQueryLog`, `checkRouters`), in one snapshot;
  /// `dimensions`: each model version's embedding length. Returns what was checked, for the
  /// report.
  private func checkLogs(
    collections: Set<String>, dimensions: [Int: Int], problem: (String) -> Void
  ) throws -> String {
    try flushLog()  // this process's queries logged a moment ago
    return try storage {
      try environment.read { txn in
        let (entries, feedback) = try checkQueryLog(
          collections: collections, in: txn, problem: problem)
        let (routers, routeEntries) = try checkRouters(
          dimensions: dimensions, in: txn, problem: problem)
        return
          "checked the logs: \(entries) query log entries, \(feedback) feedback records, "
          + "\(routers) routers, \(routeEntries) routing log entries"
      }
    }
  }

  /// A log's id counter in `meta` (1 when absent: nothing logged yet); nil, reported,
  /// when its value is not 8 bytes.
  private func counter(_ key: MetaKey, in txn: Transaction, problem: (String) -> Void) throws
    -> UInt64?
  {
    guard let bytes = try txn.get(schema.meta, key: key) else { return 1 }
    guard bytes.count == 8 else {
      problem("meta \"\(key.rawValue)\" is \(bytes.count) bytes, not 8")
      return nil
    }
    return bytes.loadUnaligned(as: UInt64.self).littleEndian
  }

  /// Every query log entry reads, is stored under its own id, below the counter (the next
  /// id handed out would overwrite it), and belongs to a collection there is; every
  /// feedback record reads and belongs to an entry there is. Returns the counts read.
  private func checkQueryLog(
    collections: Set<String>, in txn: Transaction, problem: (String) -> Void
  ) throws -> (entries: Int, feedback: Int) {
    let log = schema.log
    let nextLogID = try counter(.nextLogID, in: txn, problem: problem)
    var entries = Set<UInt64>()
    try txn.forEach(in: log.entries) { key, value in
      guard let id = LogKey(keyBytes: key) else {
        problem("query log: a key is \(key.count) bytes, not 8")
        return true
      }
      entries.insert(id)
      guard
        let entry = try? QueryLogStore.entryDecoder.decode(LogEntry.self, from: Data(value))
      else {
        problem("query log: entry \(id) is unreadable")
        return true
      }
      if entry.id != id { problem("query log: entry \(id) says it is entry \(entry.id)") }
      if let nextLogID, id >= nextLogID {
        problem("query log: entry \(id) is past the counter of log ids (\(nextLogID))")
      }
      if !collections.contains(entry.collection) {
        problem(
          "query log: entry \(id) belongs to a missing collection \"\(entry.collection)\"")
      }
      return true
    }
    var feedback = 0
    try txn.forEach(in: log.feedback) { key, value in
      feedback += 1
      guard let key = FeedbackKey.decode(key) else {
        problem("feedback: a key is \(key.count) bytes, shorter than a log id")
        return true
      }
      let item = try? QueryLogStore.decoder.decode(Feedback.self, from: Data(value))
      if item?.documentID != key.document {
        problem(
          "feedback: the record for \"\(key.document)\" on entry \(key.log) is unreadable")
      }
      if !entries.contains(key.log) {
        problem("feedback: for \"\(key.document)\" on entry \(key.log), which the log lacks")
      }
      return true
    }
    return (entries.count, feedback)
  }

  /// Every router's record, versions, weights, stored input vectors and log entries read and
  /// belong to a router (and version, model) there is; a ready version's encoder exists; a
  /// log entry is stored under its own id, below the counter, and names only its router's
  /// paths. Returns the counts read.
  private func checkRouters(
    dimensions: [Int: Int], in txn: Transaction, problem: (String) -> Void
  ) throws -> (routers: Int, entries: Int) {
    let routing = schema.routing
    var routers: [UInt32: RouterRecord] = [:]
    var paths: [UInt32: Set<String>] = [:]
    try txn.forEach(in: routing.routers) { key, value in
      let name = String(decoding: key, as: UTF8.self)
      guard
        let record = try? QueryLogStore.decoder.decode(RouterRecord.self, from: Data(value)),
        record.name == name
      else {
        problem("router \"\(name)\": its record is unreadable")
        return true
      }
      routers[record.id] = record
      paths[record.id] = Set(record.paths.map(\.name))
      return true
    }
    // Each router's readable versions: what their weights hold, and the model whose
    // embeddings they read.
    var versions: [UInt32: [UInt32: (classifier: String?, model: Int)]] = [:]
    // Each version's checksum, by router and version.
    var checksums: [UInt32: [UInt32: UInt32]] = [:]
    // The parts each ready version (one that can serve) needs and has not shown yet, by
    // router id << 32 | version: its head and, for the LoRA tier, its adapters.
    var missingHeads: Set<UInt64> = []
    var missingAdapters: Set<UInt64> = []
    func both(_ key: RouterVersionKey) -> UInt64 { UInt64(key.router) << 32 | UInt64(key.version) }
    try txn.forEach(in: routing.versions) { key, value in
      guard let (key, isAdapters) = RouterVersionKey.decode(key), !isAdapters else {
        problem("router versions: a key is \(key.count) bytes, not 8")
        return true
      }
      guard let router = routers[key.router] else {
        problem("router versions: version \(key.version) of a missing router \(key.router)")
        return true
      }
      let place = "router \"\(router.name)\" version \(key.version)"
      guard
        let version = try? QueryLogStore.decoder.decode(RouterVersion.self, from: Data(value)),
        version.version == key.version
      else {
        problem("\(place): its record is unreadable")
        return true
      }
      versions[key.router, default: [:]][key.version] = (version.classifier, version.model)
      if let checksum = version.checksum {
        checksums[key.router, default: [:]][key.version] = checksum
      }
      if version.state == .ready {
        missingHeads.insert(both(key))
        // The LoRA tier stores adapters when it tuned for some epochs (0 keeps the head on
        // the frozen encoder).
        if (version.metrics["lora_epochs"] ?? 0) > 0 { missingAdapters.insert(both(key)) }
      }
      if version.state == .ready, dimensions[version.model] == nil {
        problem("\(place): its encoder, model \(version.model), is missing")
      }
      return true
    }
    for router in routers.values {
      for version in router.history
      where versions[router.id]?[UInt32(truncatingIfNeeded: version)] == nil {
        problem("router \"\(router.name)\": active version \(version) has no record")
      }
    }
    try txn.forEach(in: routing.weights) { key, value in
      guard let (key, isAdapters) = RouterVersionKey.decode(key) else {
        problem("router weights: a key of \(key.count) bytes is not a version's")
        return true
      }
      guard let router = routers[key.router], let version = versions[key.router]?[key.version]
      else {
        problem(
          "router weights: of version \(key.version) of router \(key.router), which is missing")
        return true
      }
      guard !isAdapters else {
        missingAdapters.remove(both(key))
        return true
      }
      missingHeads.remove(both(key))
      let (classifier, model) = version
      let place = "router \"\(router.name)\" version \(key.version)"
      let floats = RouterStore.floats(value)
      guard value.count % 4 == 0, floats.allSatisfy(\.isFinite),
        let head = try? RouterHead(
          classifier: classifier, classes: router.paths.count, parameters: floats)
      else {
        problem(
          "\(place): its head is not a \(classifier ?? "linear") head of"
            + " \(router.paths.count) paths in finite numbers")
        return true
      }
      if let dimension = dimensions[model], head.dimension != dimension {
        problem(
          "\(place): its head reads \(head.dimension)-dimensional embeddings; model v\(model)"
            + " makes \(dimension)")
      }
      return true
    }
    // What is stored for a version is what was: its head and adapters pass its checksum.
    for (router, byVersion) in checksums.sorted(by: { $0.key < $1.key }) {
      for (version, expected) in byVersion.sorted(by: { $0.key < $1.key }) {
        if let stored = try routing.storedChecksum(router: router, version: Int(version), in: txn),
          stored != expected
        {
          problem(
            "router \"\(routers[router]?.name ?? "?")\" version \(version): its head or adapters"
              + " fail its checksum")
        }
      }
    }
    // A ready version without its head cannot serve; a LoRA-tier one without its adapters
    // would serve the base encoder's embeddings to a head not trained on them.
    for (missing, part) in [(missingHeads, "head is"), (missingAdapters, "LoRA adapters are")] {
      for key in missing.sorted() {
        let name = routers[UInt32(key >> 32)]?.name ?? "?"
        problem("router \"\(name)\" version \(key & 0xFFFF_FFFF): its \(part) missing")
      }
    }
    // A stored input vector belongs to a router and a model there are, and reads whole.
    if let table = routing.vectors.table {
      try checkRouterVectors(
        table, routers: routers, dimensions: dimensions, in: txn, problem: problem)
    }
    let nextRouteLogID = try counter(.nextRouteLogID, in: txn, problem: problem)
    var routeEntries = 0
    try txn.forEach(in: routing.log) { key, value in
      routeEntries += 1
      guard let key = RouteLogKey.decode(key) else {
        problem("route log: a key is \(key.count) bytes, not 12")
        return true
      }
      guard let router = routers[key.router] else {
        problem("route log: entry \(key.log) of a missing router \(key.router)")
        return true
      }
      let place = "route log of \"\(router.name)\": entry \(key.log)"
      guard
        let entry = try? QueryLogStore.decoder.decode(RouteLogEntry.self, from: Data(value))
      else {
        problem("\(place) is unreadable")
        return true
      }
      if entry.logID != key.log { problem("\(place) says it is entry \(entry.logID)") }
      if let nextRouteLogID, key.log >= nextRouteLogID {
        problem("\(place) is past the counter of route log ids (\(nextRouteLogID))")
      }
      if let unknown = (Array(entry.outcomes.keys) + [entry.label].compactMap { $0 })
        .first(where: { paths[key.router]?.contains($0) != true })
      {
        problem("\(place) names a path the router lacks, \"\(unknown)\"")
      }
      return true
    }
    return (routers.count, routeEntries)
  }

  /// Each stored router input vector belongs to a router and a model version there are,
  /// and reads whole (see `RouterVectorCache`).
  private func checkRouterVectors(
    _ table: Table, routers: [UInt32: RouterRecord], dimensions: [Int: Int], in txn: Transaction,
    problem: (String) -> Void
  ) throws {
    try txn.forEach(in: table) { key, value in
      guard let key = RouterVectorKey.decode(key) else {
        problem("router vectors: a key is \(key.count) bytes, not \(RouterVectorKey.byteCount)")
        return true
      }
      guard let router = routers[key.router], let dimension = dimensions[Int(key.model)] else {
        problem(
          "router vectors: an input's vector of router \(key.router) by model v\(key.model),"
            + " one of which is missing")
        return true
      }
      if RouterVectorCache.vector(value, dimension: dimension) == nil {
        problem(
          "router \"\(router.name)\": the stored vector of input \(key.input) by model"
            + " v\(key.model) fails its checksum or is not \(dimension) finite numbers")
      }
      return true
    }
  }

  private func collectionRecords() throws -> [CollectionRecord] {
    let schema = self.schema
    return try storage {
      try environment.read { txn in
        var records: [CollectionRecord] = []
        try txn.forEach(in: schema.collections) { key, value in
          let name = String(decoding: key, as: UTF8.self)
          let record: CollectionRecord
          do {
            record = try JSONDecoder().decode(CollectionRecord.self, from: Data(value))
          } catch {
            throw VectorDBError.damaged(
              path: path, detail: "the record of collection \"\(name)\" is unreadable")
          }
          guard record.name == name else {
            throw VectorDBError.damaged(
              path: path,
              detail: "the record stored as collection \"\(name)\" names \"\(record.name)\"")
          }
          if let other = records.first(where: { $0.id == record.id }) {
            throw VectorDBError.damaged(
              path: path,
              detail: "collections \"\(other.name)\" and \"\(name)\" have the same id \(record.id)")
          }
          records.append(record)
          return true
        }
        return records
      }
    }
  }

  /// Every document maps to its row and back, passes its content hash, and the
  /// collection's count is right.
  private func checkDocuments(of record: CollectionRecord, problem: (String) -> Void) throws {
    let schema = self.schema
    let path = self.path
    try storage {
      try environment.read { txn in
        let keys = KeyRange.collection(record.id)
        var documents = 0
        try txn.forEach(in: schema.docs, under: keys) { key, value in
          documents += 1
          let id = DocumentKey.id(of: key)
          let document: DocumentRecord
          do {
            document = try DocumentRecord(bytes: value, path: path)
          } catch {
            problem("collection \"\(record.name)\": the record of document \"\(id)\" is unreadable")
            return true
          }
          let back = try txn.get(
            schema.rows, key: RowKey(collection: record.id, row: document.row))
          if back.map({ String(decoding: $0, as: UTF8.self) }) != id {
            problem("collection \"\(record.name)\": document \"\(id)\" has no row \(document.row)")
          }
          if ContentHash(text: document.text) != document.hash {
            problem("collection \"\(record.name)\": document \"\(id)\" fails its content hash")
          }
          if (try? document.metadata()) == nil {
            problem(
              "collection \"\(record.name)\": the metadata of document \"\(id)\" is unreadable")
          }
          return true
        }
        var rows = 0
        try txn.forEach(in: schema.rows, under: keys) { key, value in
          rows += 1
          if try txn.get(
            schema.docs,
            key: DocumentKey(collection: record.id, id: String(decoding: value, as: UTF8.self)))
            == nil
          {
            problem(
              "collection \"\(record.name)\": row \(RowKey.row(of: key).map(String.init) ?? "?") names a missing document"
            )
          }
          return true
        }
        if documents != record.count || rows != record.count {
          problem(
            "collection \"\(record.name)\" records \(record.count) documents, holds \(documents) with \(rows) rows"
          )
        }
      }
    }
  }

  /// Every generation's record reads, its index graph is sound, holds one finite
  /// vector of the right dimension per source row.
  private func checkGenerations(of record: CollectionRecord, problem: (String) -> Void) throws {
    guard let settings = record.vectors else { return }
    let schema = self.schema
    let generations = try storage {
      try environment.read { txn in
        var generations: [GenerationRecord] = []
        try txn.forEach(in: schema.generations, under: .collection(record.id)) { key, value in
          guard let generation = try? JSONDecoder().decode(GenerationRecord.self, from: Data(value))
          else {
            problem("collection \"\(record.name)\": a generation record is unreadable")
            return true
          }
          let expected = GenerationKey(collection: record.id, generation: generation.id)
          guard expected.withKeyBytes({ $0.elementsEqual(key) }) else {
            problem(
              "collection \"\(record.name)\": the record of generation \(generation.id) is stored"
                + " under another key")
            return true
          }
          generations.append(generation)
          return true
        }
        return generations
      }
    }
    for id in [record.active, record.building].compactMap({ $0 })
    where !generations.contains(where: { $0.id == id }) {
      problem("collection \"\(record.name)\": generation \(id) has no record")
    }
    let tables = Set(try storage { try environment.tableNames() })
    for generation in generations where generation.state != .dropped {
      let place = "collection \"\(record.name)\" generation \(generation.id)"
      let name = GenerationRecord.indexName(collection: record.id, generation: generation.id)
      // A job killed before its first batch leaves a building generation whose index
      // does not exist yet — no table, or an empty one (killed between creating the
      // table and writing the index's settings): nothing was embedded, and `reembed`
      // resumes it.
      if generation.state == .building && !tables.contains(name) { continue }
      // An index is created with its first vectors: a generation of a collection that has
      // none yet (created with `--vectors D`, nothing added) has no table.
      if !tables.contains(name) {
        let sources = try storage {
          try environment.read { txn in
            var any = false
            try txn.forEach(
              in: schema.sources, under: SourceKey.generation(generation.id, of: record.id)
            ) { _, _ in
              any = true
              return false
            }
            return any
          }
        }
        if !sources { continue }
      }
      let index: VectorIndex
      do {
        index = try indexCache.open(name, environment: environment, create: nil)
      } catch VectorIndexError.notFound where generation.state == .building {
        continue
      } catch {
        problem("\(place): its index cannot be opened (\(error))")
        continue
      }
      try storage {
        try environment.read { txn in
          for line in try index.recordFailures(in: txn).prefix(20) {
            problem("\(place): \(line)")
          }
          let integrity = try index.checkIntegrity(in: txn)
          for line in integrity.problems.prefix(20) { problem("\(place): \(line)") }
          var sources = 0
          let keys = SourceKey.generation(generation.id, of: record.id)
          try txn.forEach(in: schema.sources, under: keys) { key, value in
            sources += 1
            guard let row = SourceKey.row(of: key) else {
              problem("\(place): a source key is \(key.count) bytes, not 12")
              return true
            }
            if value.count != 32 {
              problem("\(place): the source of row \(row) is \(value.count) bytes, not a SHA-256")
            }
            guard let vector = try? index.vector(of: row, in: txn) else {
              problem("\(place): row \(row) has a source but no readable vector")
              return true
            }
            if vector.count != settings.dimension || !vector.allSatisfy(\.isFinite) {
              problem(
                "\(place): the vector of row \(row) is not \(settings.dimension) finite numbers")
            }
            return true
          }
          let live = integrity.nodeCount - integrity.deletedCount
          if live != sources {
            problem("\(place): the index holds \(live) vectors, the sources table \(sources)")
          }
        }
      }
    }
  }
}
