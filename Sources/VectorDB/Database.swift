import Embedding
import Foundation
import LMDB
import Tensor
import Training

#if canImport(Glibc)
  import Glibc
#endif

/// A vdb database: one directory holding one LMDB environment.
///
///     let db = try Database(path: "notes.vdb")          // opens, or creates
///     let notes = try db.collection("notes")
///     try notes.upsert(Document(id: "1", text: "Buy milk", metadata: ["list": "home"]))
///     print(try notes.get("1")?.text ?? "-")
///
/// Open one `Database` per path and process and share it: it is thread-safe, and any
/// number of processes may open the same directory (one writer at a time, readers
/// never blocked). Every public write is one transaction: after a crash it is either
/// all there or not at all. Its calls block (disk, an encoder pass); from async code,
/// make them inside ``run(_:)``.
public final class Database: @unchecked Sendable {
  /// Called with the failed check's text when the storage engine finds its pages
  /// inconsistent, just before it aborts the process: a host that owns its process (the
  /// `vdb` shell) can report it and exit instead. Set it before opening databases.
  package static var storageAssertionHandler:
    (@convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void)?
  {
    get { Environment.assertionHandler }
    set { Environment.assertionHandler = newValue }
  }

  /// How to open a database.
  public struct Options: Sendable {
    /// Create the database when `path` does not exist or is an empty directory.
    public var create = true
    /// Skip the fsync at each commit (faster bulk loads; a crash may lose the latest
    /// commits, never corrupts).
    public var noSync = false
    /// Open for reading only: nothing is created or written (but LMDB's lock file),
    /// and writes fail. A database the process may not write (read-only media,
    /// another owner) is opened this way even when not asked.
    public var readOnly = false
    /// The defaults: create when missing, fsync every commit, read and write.
    public init() {}
  }

  /// The database directory.
  public let path: String
  /// Opened for reading only (asked for, or the files are not writable).
  public let isReadOnly: Bool
  let environment: Environment
  let schema: Schema
  let encoderCache = VersionCache<SentenceEncoder>()
  let adapterCache = VersionCache<QueryAdapter<Float>>()
  let indexCache = IndexCache()
  let postingsCache = PostingsCache()
  let logWriter: LogWriter<QueryLogStore>
  let routeLogWriter: LogWriter<RouterStore>
  var models: ModelStore { schema.models }
  var modelImages: ModelImages { ModelImages(database: path, writable: !isReadOnly) }

  /// Opens the database at `path`, creating it when allowed and missing.
  ///
  /// - Throws: `VectorDBError.databaseNotFound` (missing and `create` is false),
  ///   `.notADatabase` (a file, or a directory of another program), `.newerFormat`,
  ///   `.damaged` (not an LMDB file, truncated, or inconsistent), `.storage` (e.g.
  ///   permission denied).
  public init(path: String, options: Options = Options()) throws {
    self.path = path
    let isNew = try Database.inspect(path: path, create: options.create && !options.readOnly)
    let writable = isNew || Database.isWritable(path)
    var readOnly = options.readOnly || !writable
    // A database from an older vdb lacks the newer tables, which a read-only open cannot
    // create: a writable open creates them, once. (The probe is closed before that.)
    if readOnly && writable {
      let probe = try Database.openEnvironment(path, options: options, readOnly: true)
      readOnly = try Schema.tableNames.isSubset(of: storage { try probe.tableNames() })
    }
    let environment = try Database.openEnvironment(path, options: options, readOnly: readOnly)
    isReadOnly = readOnly
    let names = try storage { try environment.tableNames() }
    if !isNew && !names.isEmpty && !names.contains("meta")
      && !Set(names).isSubset(of: Schema.tableNames)
    {
      throw VectorDBError.notADatabase(
        path: path,
        reason:
          "data.mdb is an LMDB environment of another program (tables: \(names.prefix(5).joined(separator: ", ")))"
      )
    }
    if isNew { try Database.tighten(path) }
    self.environment = environment
    schema = try storage { try Schema(environment: environment) }
    logWriter = LogWriter(environment: environment, store: schema.log)
    routeLogWriter = LogWriter(environment: environment, store: schema.routing)
    try checkFormat()
  }

  deinit {
    logWriter.close()
    routeLogWriter.close()
  }

  private static func openEnvironment(_ path: String, options: Options, readOnly: Bool) throws
    -> Environment
  {
    var environmentOptions = Environment.Options()
    environmentOptions.noSync = options.noSync
    environmentOptions.readOnly = readOnly
    // Another owner's database: LMDB cannot record a reader in a lock file it may not
    // write (or create), so it reads without one.
    let lock = path + "/lock.mdb"
    environmentOptions.noLock =
      access(lock, F_OK) == 0 ? access(lock, W_OK) != 0 : access(path, W_OK) != 0
    do {
      let environment = try Environment.open(path: path, options: environmentOptions)
      // Before any read: a page past the end of a truncated file is a SIGBUS. The committed
      // meta page first, the file's size after: a writer writes its pages before it commits
      // the meta that counts them, so a whole file is never smaller than what was read
      // first — unless it is truncated.
      let used = environment.usedBytes()
      let size = environment.fileSize()
      if size < used {
        throw VectorDBError.damaged(
          path: path, detail: "data.mdb is \(size) bytes but its pages need \(used) (truncated)")
      }
      return environment
    } catch let error as LMDBError where error.isInvalidFile {
      throw VectorDBError.damaged(path: path, detail: "data.mdb is not a valid LMDB file")
    } catch let error as LMDBError {
      throw VectorDBError.storage(error)
    }
  }

  /// Classifies `path`; returns whether a new database will be created there.
  private static func inspect(path: String, create: Bool) throws -> Bool {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      if !create { throw VectorDBError.databaseNotFound(path: path) }
      return true
    }
    guard isDirectory.boolValue else {
      throw VectorDBError.notADatabase(path: path, reason: "it is a file, not a directory")
    }
    guard access(path, R_OK | X_OK) == 0 else {
      throw VectorDBError.storage(LMDBError(code: errno, operation: "open directory \(path)"))
    }
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    if entries.contains("data.mdb") {
      try checkFiles(path: path, hasLock: entries.contains("lock.mdb"))
      return false
    }
    if entries.contains("lock.mdb") {
      throw VectorDBError.damaged(path: path, detail: "data.mdb is missing beside lock.mdb")
    }
    if entries.isEmpty {
      if !create { throw VectorDBError.databaseNotFound(path: path) }
      return true
    }
    throw VectorDBError.notADatabase(
      path: path,
      reason:
        "the directory holds other files (\(entries.sorted().prefix(3).joined(separator: ", "))) and no data.mdb"
    )
  }

  /// Refuses the layouts LMDB would silently take for a new, empty database (an empty
  /// or missing data.mdb) or follow out of the directory (a symbolic link), before
  /// LMDB opens — and so writes — anything.
  private static func checkFiles(path: String, hasLock: Bool) throws {
    let directory = realPath(path) ?? path
    for name in hasLock ? ["data.mdb", "lock.mdb"] : ["data.mdb"] {
      let file = path + "/" + name
      var info = stat()
      guard lstat(file, &info) == 0 else {
        throw VectorDBError.storage(LMDBError(code: errno, operation: "stat \(file)"))
      }
      if info.st_mode & S_IFMT == S_IFLNK {
        guard let target = realPath(file) else {
          throw VectorDBError.damaged(
            path: path, detail: "\(name) is a symbolic link to a missing file")
        }
        guard URL(fileURLWithPath: target).deletingLastPathComponent().path == directory else {
          throw VectorDBError.damaged(
            path: path, detail: "\(name) is a symbolic link out of the directory (to \(target))")
        }
        guard stat(file, &info) == 0 else {
          throw VectorDBError.storage(LMDBError(code: errno, operation: "stat \(file)"))
        }
      }
      guard info.st_mode & S_IFMT == S_IFREG else {
        throw VectorDBError.damaged(path: path, detail: "\(name) is not a regular file")
      }
      if name == "data.mdb" && info.st_size == 0 {
        throw VectorDBError.damaged(path: path, detail: "data.mdb is empty (0 bytes)")
      }
    }
  }

  /// Whether this process may write the database's directory and files.
  private static func isWritable(_ path: String) -> Bool {
    access(path, W_OK) == 0 && access(path + "/data.mdb", W_OK) == 0
      && (access(path + "/lock.mdb", F_OK) != 0 || access(path + "/lock.mdb", W_OK) == 0)
  }

  /// A new database's directory is the owner's alone (0700), even when it existed with
  /// looser permissions: whoever can write the directory can replace data.mdb.
  private static func tighten(_ path: String) throws {
    var info = stat()
    guard stat(path, &info) == 0, info.st_mode & 0o077 != 0 else { return }
    guard chmod(path, 0o700) == 0 else {
      throw VectorDBError.storage(LMDBError(code: errno, operation: "chmod 0700 \(path)"))
    }
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  /// Writes the format record of a new database, or checks that of an existing one.
  private func checkFormat() throws {
    let schema = self.schema
    let path = self.path
    if isReadOnly {
      try storage {
        try environment.read { txn in
          guard let format = try txn.get(schema.meta, key: MetaKey.format) else {
            throw VectorDBError.damaged(path: path, detail: "the format record is missing")
          }
          try Database.check(
            format: format, magic: txn.get(schema.meta, key: MetaKey.magic), path: path)
        }
      }
      return
    }
    try storage {
      try environment.write { txn in
        guard let format = try txn.get(schema.meta, key: MetaKey.format) else {
          // New (or an init interrupted before this transaction): claim the directory.
          guard try txn.count(schema.collections) == 0, try txn.count(schema.docs) == 0 else {
            throw VectorDBError.damaged(path: path, detail: "the format record is missing")
          }
          try txn.put(schema.meta, key: MetaKey.magic, value: Array(Schema.magic.utf8))
          try txn.put(
            schema.meta, key: MetaKey.format,
            value: withUnsafeBytes(of: Schema.formatVersion.littleEndian) { Array($0) })
          let created = ISO8601DateFormatter().string(from: Date())
          try txn.put(schema.meta, key: MetaKey.created, value: Array(created.utf8))
          return
        }
        try Database.check(
          format: format, magic: txn.get(schema.meta, key: MetaKey.magic), path: path)
      }
    }
  }

  private static func check(
    format: UnsafeRawBufferPointer, magic: UnsafeRawBufferPointer?, path: String
  ) throws {
    guard format.count == 4 else {
      throw VectorDBError.damaged(path: path, detail: "the format record is \(format.count) bytes")
    }
    let version = format.loadUnaligned(as: UInt32.self).littleEndian
    if version > Schema.formatVersion {
      throw VectorDBError.newerFormat(path: path, found: version, supported: Schema.formatVersion)
    }
    guard magic.map({ String(decoding: $0, as: UTF8.self) }) == Schema.magic else {
      throw VectorDBError.notADatabase(path: path, reason: "its meta table is not vdb's")
    }
  }

  /// The format version of the files.
  public var formatVersion: UInt32 { Schema.formatVersion }

  /// The format version this library reads and writes.
  public static var currentFormatVersion: UInt32 { Schema.formatVersion }

  /// Runs `body` on a thread outside Swift's cooperative pool (one of
  /// `Parallel.BlockingPool.shared`'s) and returns what it returns: how async code calls
  /// the database. Every call blocks its thread (a disk read, a commit's fsync, an
  /// encoder pass of milliseconds), and a blocked thread of the cooperative pool, which
  /// has one per core, holds up every task waiting for it. Concurrent queries made this
  /// way share encoder passes as queries from any threads do (docs/architecture.md,
  /// "Concurrency").
  ///
  ///     let hits = try await db.run { db in
  ///       try db.collection("notes", create: false).query(text: "milk", k: 3).hits
  ///     }
  ///
  /// `body` runs to its end even when the calling task is cancelled.
  ///
  /// - Throws: what `body` throws.
  public func run<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws
    -> T
  {
    try await withCheckedThrowingContinuation { continuation in
      Parallel.BlockingPool.shared.run { continuation.resume(with: Result { try body(self) }) }
    }
  }

  // MARK: Collections

  /// The collection named `name`; created when missing and `create` is true, with
  /// `options` (by default: text embedded by the database's default model, if it has
  /// one, under cosine similarity; otherwise documents only).
  ///
  ///     let notes = try db.collection("notes")                      // text, default model
  ///     let sift = try db.collection("sift", options: .vectors(dimension: 128, metric: .l2))
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when missing and `create` is false;
  ///   `.invalidInput` for an empty name, one over 200 bytes, or with control
  ///   characters, or when the collection exists and `options` ask for given vectors
  ///   of another dimension or metric; `.modelNotFound` for an unknown model version.
  public func collection(
    _ name: String, create: Bool = true, options: CollectionOptions? = nil
  ) throws -> DocumentCollection {
    try Database.validateCollectionName(name)
    if let record = try collectionRecord(name) {
      try record.check(options)
      return DocumentCollection(database: self, record: record)
    }
    guard create else { throw VectorDBError.collectionNotFound(name) }
    return DocumentCollection(database: self, record: try createRecord(name, options: options))
  }

  /// Stores the record of a new collection `name` (with its first generation when it
  /// has vectors), or returns the record another process stored meanwhile — checked
  /// against `options`, or refused when `mustBeNew`: of two racing creators, one creates.
  private func createRecord(_ name: String, options: CollectionOptions?, mustBeNew: Bool = false)
    throws -> CollectionRecord
  {
    let vectors = try vectorSettings(for: options ?? CollectionOptions())
    let schema = self.schema
    return try storage {
      try environment.write { txn -> CollectionRecord in
        if let existing = try txn.get(schema.collections, key: name) {
          if mustBeNew { throw VectorDBError.collectionExists(name) }
          let record = try JSONDecoder().decode(CollectionRecord.self, from: Data(existing))
          try record.check(options)
          return record
        }
        let next =
          try txn.get(schema.meta, key: MetaKey.nextCollection).map {
            $0.loadUnaligned(as: UInt32.self).littleEndian
          } ?? 1
        try txn.put(
          schema.meta, key: MetaKey.nextCollection,
          value: withUnsafeBytes(of: (next + 1).littleEndian) { Array($0) })
        var record = CollectionRecord(
          id: next, name: name, created: Date(), nextRow: 0, count: 0, vectors: vectors)
        if !(options?.textIndex ?? true) { record.textIndex = false }
        if let vectors {
          let generation = GenerationRecord(
            id: 1, model: vectors.model, state: .active, created: Date(), completed: Date(),
            count: 0)
          try txn.put(
            schema.generations, key: GenerationKey(collection: next, generation: 1),
            value: try JSONEncoder().encode(generation))
          record.active = 1
          record.nextGeneration = 2
        }
        try txn.put(schema.collections, key: name, value: try JSONEncoder().encode(record))
        return record
      }
    }
  }

  private func vectorSettings(for options: CollectionOptions) throws -> VectorSettings? {
    switch options.vectors {
    case .none:
      return nil
    case .given(let dimension, let metric):
      guard (1...VectorFile.maxDimension).contains(dimension) else {
        throw VectorDBError.invalidVector(
          reason: "dimension \(dimension) is not in 1...\(VectorFile.maxDimension)")
      }
      return VectorSettings(dimension: dimension, metric: metric, model: nil, index: options.index)
    case .model(let version):
      guard let version = try version ?? defaultModelVersion() else { return nil }
      let encoder = try encoder(version: version)
      return VectorSettings(
        dimension: encoder.dimension, metric: options.metric ?? Metric(encoder.similarity),
        model: version, index: options.index)
    }
  }

  /// The names of all collections, sorted.
  ///
  /// - Throws: `VectorDBError.storage`; `.damaged` for an unreadable record.
  public func collectionNames() throws -> [String] {
    try storage {
      try environment.read { txn in
        var names: [String] = []
        try txn.forEach(in: schema.collections) { key, _ in
          names.append(String(decoding: key, as: UTF8.self))
          return true
        }
        return names
      }
    }
  }

  /// Creates the collection `name` with `options` (see `collection(_:create:options:)`).
  ///
  /// - Throws: `VectorDBError.collectionExists`; `.invalidInput` for a bad name;
  ///   `.modelNotFound` for an unknown model version.
  @discardableResult
  public func createCollection(_ name: String, options: CollectionOptions? = nil) throws
    -> DocumentCollection
  {
    try Database.validateCollectionName(name)
    if try collectionRecord(name) != nil { throw VectorDBError.collectionExists(name) }
    return DocumentCollection(
      database: self, record: try createRecord(name, options: options, mustBeNew: true))
  }

  /// Deletes a collection and everything it owns, in one transaction: documents, rows,
  /// metadata index, every generation (records, source hashes, index tables), its
  /// training state and, unless `keepLog`, its query log entries and their feedback.
  /// Model versions stay (they belong to the database).
  ///
  /// A collection with a re-embed job or a training run (running, or interrupted and
  /// resumable) is refused unless `force`: the job's next batch then fails with
  /// `collectionNotFound`. Handles to the collection fail the same way afterwards.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`, `.collectionBusy` naming the job.
  public func dropCollection(_ name: String, keepLog: Bool = false, force: Bool = false) throws {
    try Database.validateCollectionName(name)
    guard let record = try collectionRecord(name) else {
      throw VectorDBError.collectionNotFound(name)
    }
    if !force, let job = try job(of: record) {
      throw VectorDBError.collectionBusy(name: name, job: job)
    }
    try flushLog()  // no entry of ours may land after the drop
    // Tables are opened outside the write transaction (LMDB's rule); every index table
    // of the collection goes, including any a crashed job left without a record.
    let indexPrefix = "index.\(record.id)."
    let indexes = try storage {
      try environment.tableNames().filter { $0.hasPrefix(indexPrefix) }.map(environment.table)
    }
    let schema = self.schema
    try storage {
      try environment.write { txn in
        guard let current = try Database.collectionRecord(name, in: txn, schema: schema),
          current.id == record.id
        else { throw VectorDBError.collectionNotFound(name) }
        for table in [
          schema.docs, schema.rows, schema.generations, schema.metadataIndex, schema.sources,
          schema.text,
        ] {
          try txn.deleteRange(table, .collection(record.id))
        }
        try txn.deleteRange(schema.meta, CollectionMetaKey.collection(record.id))
        for table in indexes { try txn.deleteTable(table) }
        if !keepLog { try schema.log.deleteEntries(collection: name, in: txn) }
        try txn.delete(schema.collections, key: name)
      }
    }
    for table in indexes { indexCache.forget(table.name) }
  }

  /// Renames a collection in one transaction; its query log entries follow it. Handles
  /// to the old name fail with `collectionNotFound` afterwards.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`, `.collectionExists` (`newName` is
  ///   taken), `.invalidInput` (a bad new name), `.collectionBusy` (a re-embed job or
  ///   training run holds the collection by name).
  public func renameCollection(_ name: String, to newName: String) throws {
    try Database.validateCollectionName(name)
    try Database.validateCollectionName(newName)
    guard let checked = try collectionRecord(name) else {
      throw VectorDBError.collectionNotFound(name)
    }
    if let job = try job(of: checked) {
      throw VectorDBError.collectionBusy(name: name, job: job)
    }
    try flushLog()  // our queued entries carry the old name
    let schema = self.schema
    try storage {
      try environment.write { txn in
        // The record as of this transaction: writes committed since the check above
        // changed its counts, and writing the checked copy back would undo them.
        guard var record = try Database.collectionRecord(name, in: txn, schema: schema),
          record.id == checked.id
        else {
          throw VectorDBError.collectionNotFound(name)
        }
        if let building = record.building {
          throw VectorDBError.collectionBusy(
            name: name, job: "a re-embed job building generation \(building)")
        }
        guard try txn.get(schema.collections, key: newName) == nil else {
          throw VectorDBError.collectionExists(newName)
        }
        record.name = newName
        try txn.delete(schema.collections, key: name)
        try txn.put(schema.collections, key: newName, value: try JSONEncoder().encode(record))
        try schema.log.renameEntries(collection: name, to: newName, in: txn)
      }
    }
  }

  /// The job holding a collection, described for an error message; nil when none.
  private func job(of record: CollectionRecord) throws -> String? {
    let schema = self.schema
    return try storage {
      try environment.read { txn -> String? in
        if let building = record.building {
          let model = try Generations.record(building, of: record.id, in: txn, schema: schema)?
            .model
          return "a re-embed job building generation \(building)"
            + (model.map { " with model v\($0)" } ?? "")
            + " (running, or interrupted and resumable with `vdb reembed`)"
        }
        if try txn.get(
          schema.meta, key: CollectionMetaKey(collection: record.id, record: .trainRun)) != nil
        {
          return "a training run (running, or interrupted and resumable with `vdb train`)"
        }
        return nil
      }
    }
  }

  func collectionRecord(_ name: String) throws -> CollectionRecord? {
    let schema = self.schema
    return try storage {
      try environment.read { txn in try Database.collectionRecord(name, in: txn, schema: schema) }
    }
  }

  static func collectionRecord(_ name: String, in txn: Transaction, schema: Schema) throws
    -> CollectionRecord?
  {
    guard let bytes = try txn.get(schema.collections, key: name) else { return nil }
    return try decodedRecords.record(name, bytes: bytes) {
      try JSONDecoder().decode(CollectionRecord.self, from: Data(bytes))
    }
  }

  /// Every query reads its collection's record: the same bytes decode once.
  private static let decodedRecords = DecodedRecords()

  static func validateCollectionName(_ name: String) throws {
    let problem: String?
    if name.isEmpty {
      problem = "a collection name cannot be empty"
    } else if name.utf8.count > 200 {
      problem = "a collection name is at most 200 bytes"
    } else if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
      problem = "a collection name cannot contain control characters"
    } else {
      problem = nil
    }
    if let problem {
      throw VectorDBError.invalidInput(source: "collection name", line: nil, reason: problem)
    }
  }

  // MARK: Status

  /// What `vdb status` shows: format, size on disk, collections and their counts.
  ///
  /// - Throws: `VectorDBError.storage`; `.damaged` for an unreadable record.
  public func status() throws -> DatabaseStatus {
    DatabaseStatus(
      path: path, formatVersion: Schema.formatVersion, bytesOnDisk: environment.fileSize(),
      collections: try collections(), defaultModel: try defaultModelVersion(),
      modelVersions: try modelVersions().count, routers: try routerSummaries())
  }

  /// Every collection, sorted by name, with its count, vector settings, active model
  /// and generation, and any re-embed job.
  ///
  /// - Throws: `VectorDBError.storage`, `.damaged` (an unreadable record).
  public func collections() throws -> [CollectionInfo] {
    let schema = self.schema
    return try storage {
      try environment.read { txn in
        var result: [CollectionInfo] = []
        try txn.forEach(in: schema.collections) { _, value in
          let record = try JSONDecoder().decode(CollectionRecord.self, from: Data(value))
          func generation(_ id: UInt32?) throws -> GenerationRecord? {
            try id.flatMap { try Generations.record($0, of: record.id, in: txn, schema: schema) }
          }
          let active = try generation(record.active)
          let building = try generation(record.building)
          result.append(
            .init(
              name: record.name, documents: record.count, created: record.created,
              model: active?.model, adapter: active?.adapter,
              generation: active.map { Int($0.id) }, dimension: record.vectors?.dimension,
              metric: record.vectors?.metric.rawValue,
              job: building.map {
                .init(generation: Int($0.id), model: $0.model, vectors: $0.count, cursor: $0.cursor)
              }))
          return true
        }
        return result
      }
    }
  }
}

extension CollectionRecord {
  /// Checks that an existing collection can be opened with `options`: asking for given
  /// vectors of another dimension or metric, or of a collection that embeds text, is an
  /// error (anything else opens it as it is).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the collection and what it holds.
  func check(_ options: CollectionOptions?) throws {
    guard case .given(let dimension, let metric) = options?.vectors else { return }
    if let found = vectors, found.model == nil, found.dimension == dimension,
      found.metric == metric
    {
      return
    }
    let holds =
      vectors.map {
        $0.model.map { "text embedded by model \($0)" }
          ?? "given vectors of \($0.dimension) dimensions (\($0.metric.rawValue))"
      } ?? "no vectors"
    throw VectorDBError.invalidInput(
      source: "collection \"\(name)\"", line: nil,
      reason:
        "it exists and holds \(holds), not given vectors of \(dimension) dimensions (\(metric.rawValue))"
    )
  }
}

/// A summary of a database, as `vdb status` prints it.
public struct DatabaseStatus: Codable, Sendable {
  /// The database directory, as given (JSON `path`).
  public var path: String
  /// The storage format's version, as `Database.formatVersion` (JSON `format_version`).
  public var formatVersion: UInt32
  /// Size of the LMDB data file (`data.mdb`) in bytes (JSON `bytes_on_disk`).
  public var bytesOnDisk: Int
  /// Every collection, sorted by name (JSON `collections`).
  public var collections: [CollectionInfo]
  /// The model version new collections embed with (JSON `default_model`; nil: none, as
  /// after `vdb init --no-model`).
  public var defaultModel: Int?
  /// How many model versions are stored (JSON `model_versions`; `vdb models` lists them).
  public var modelVersions: Int
  /// Every router, sorted by name (JSON `routers`).
  public var routers: [Router.Summary]
}

/// A collection as `vdb collections` lists it.
public struct CollectionInfo: Codable, Sendable {
  /// The collection's name (JSON `name`).
  public var name: String
  /// Documents it holds (JSON `documents`).
  public var documents: Int
  /// When it was created (JSON `created`, ISO 8601).
  public var created: Date
  /// The active generation's model version (nil: given vectors or none).
  public var model: Int?
  /// The query adapter mapping its queries, if any.
  public var adapter: Int?
  /// The active generation's id (JSON `generation`; nil: the collection has no vectors).
  public var generation: Int?
  /// Vector dimension (JSON `dimension`; nil: no vectors, searched by its words alone).
  public var dimension: Int?
  /// The distance metric, `"cosine"`, `"dot"` or `"l2"` (JSON `metric`; nil: no vectors).
  public var metric: String?
  /// A re-embed job in progress (resumable), if any.
  public var job: Job?
  /// A re-embed job: the generation it is building (`vdb reembed` resumes it).
  public struct Job: Codable, Sendable {
    /// The generation being built (JSON `generation`).
    public var generation: Int
    /// The model version it embeds with (JSON `model`; nil: given vectors).
    public var model: Int?
    /// Vectors stored in it so far (JSON `vectors`).
    public var vectors: Int
    /// The last document id embedded, where the job resumes (JSON `cursor`; nil: not started).
    public var cursor: String?
  }
}
