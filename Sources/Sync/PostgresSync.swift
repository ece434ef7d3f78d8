import Crypto
import Foundation
import Logging
import PostgresNIO
import VectorDB

/// What a sync did, as `vdb sync --json` prints it.
public struct SyncReport: Codable, Sendable {
  /// The view readers query.
  public var table: String
  /// The table behind the view: `TABLE_gGENERATION`.
  public var physicalTable: String
  public var inserted: Int
  public var updated: Int
  public var deleted: Int
  public var unchanged: Int
  /// Documents in the table after the sync.
  public var documents: Int
  /// The vdb generation whose vectors the table holds, and its model and adapter.
  public var generation: Int
  public var modelVersion: Int?
  public var adapterVersion: Int?
  public var dimension: Int
  public var metric: String
  /// Whether a new table was built and swapped in (a first sync, or a new generation).
  public var swapped: Bool
  public var seconds: Double
}

/// Copies a collection's active generation — ids, text, metadata, vectors — into a
/// PostgreSQL table with pgvector's HNSW index, and keeps it up to date.
///
///     let sync = try PostgresSync(
///       database: db, collection: "notes", postgres: "postgres://u@host/db", table: nil)
///     let report = try await sync.run()
///
/// The table readers query is a view, `TABLE`, over `TABLE_gN` for generation N; the
/// `vdb_sync` table records, per view, the collection, generation, model and adapter
/// versions, dimension and metric it was written from. A sync is one transaction:
///
/// - same generation as last time: only documents whose text, metadata or vector
///   changed are written (their hash is kept in `sync_hash`), removed ones deleted;
/// - a first sync or a new generation (after a re-embed): a new table is filled and
///   indexed, and the view switched to it and the old table dropped at commit, so
///   readers see the old table or the new one, never a mix.
///
/// A failed sync rolls back: the previous table keeps serving.
public struct PostgresSync {
  /// pgvector's largest indexable `vector` dimension.
  public static let maxDimension = 2000
  /// Rows per INSERT: 6 parameters each, well under PostgreSQL's 65,535.
  static let batchSize = 500

  let database: Database
  let collection: DocumentCollection
  public let table: String
  let url: PostgresURL
  private let logger = Logger(label: "vdb.sync") { _ in SwiftLogNoOpLogHandler() }

  /// Checks the arguments; connects nothing yet.
  ///
  /// - Throws: `SyncError` (`.input`) for a malformed URL or a table name that is not
  ///   a plain lower-case SQL identifier; `VectorDBError.collectionNotFound`.
  public init(database: Database, collection name: String, postgres: String, table: String?)
    throws
  {
    self.database = database
    collection = try database.collection(name, create: false)
    self.table = try Self.validTable(table ?? name, given: table != nil)
    url = try PostgresURL(postgres)
  }

  /// A table name vdb can use: lower-case letters, digits and `_` (no quoting needed
  /// in the queries of whoever reads it), short enough for its suffixes.
  static func validTable(_ name: String, given: Bool) throws -> String {
    let valid =
      name.utf8.count <= 40 && name.first.map { $0 == "_" || ("a"..."z").contains($0) } == true
      && name.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
      && !name.hasPrefix("pg_") && name != "vdb_sync"
    guard valid else {
      throw SyncError(
        .input,
        given
          ? "--table \(name): not a table name vdb can use"
          : "the collection name \(name) is not a table name vdb can use",
        hint: (given ? "" : "pass --table NAME; ")
          + "a name is up to 40 lower-case letters, digits and _, starting with a letter or _ (not pg_…, not vdb_sync)"
      )
    }
    return name
  }

  /// What the collection holds now: its active generation's vector settings.
  struct Source: Equatable {
    var generation: Int
    var model: Int?
    var adapter: Int?
    var dimension: Int
    var metric: String
  }

  func source() throws -> Source {
    guard let info = try database.collections().first(where: { $0.name == collection.name }) else {
      throw VectorDBError.collectionNotFound(collection.name)
    }
    guard let dimension = info.dimension, let metric = info.metric, let generation = info.generation
    else {
      throw SyncError(
        .input, "collection \"\(collection.name)\" has no vectors: there is nothing to sync",
        hint: "sync a collection created with a model or with given vectors")
    }
    guard dimension <= Self.maxDimension else {
      throw SyncError(
        .input,
        "collection \"\(collection.name)\" has \(dimension)-dimensional vectors; pgvector indexes at most \(Self.maxDimension)"
      )
    }
    return Source(
      generation: generation, model: info.model, adapter: info.adapter, dimension: dimension,
      metric: metric)
  }

  /// Syncs, calling `progress` after each batch written (it may throw to stop; the
  /// transaction then rolls back).
  ///
  /// - Throws: `SyncError` (`.input`: no vectors, the table is not vdb's or holds
  ///   another collection, the generation switched during the sync; `.remote`: the
  ///   server is unreachable, refused the login, lacks pgvector, or failed a
  ///   statement); `VectorDBError` reading the collection; whatever `progress` throws.
  public func run(progress: ((OperationProgress) throws -> Void)? = nil) async throws -> SyncReport
  {
    let started = Date()
    let source = try source()
    let connection: PostgresConnection
    do {
      connection = try await PostgresConnection.connect(
        configuration: url.configuration, id: 1, logger: logger)
    } catch {
      throw SyncError.remote(error, server: url.server)
    }
    do {
      let report = try await transaction(on: connection) {
        try await write(source, on: connection, progress: progress)
      }
      try? await connection.close()
      var result = report
      result.seconds = Date().timeIntervalSince(started)
      return result
    } catch {
      try? await connection.close()
      throw SyncError.remote(error, server: url.server)
    }
  }

  private func transaction<R>(
    on connection: PostgresConnection, _ body: () async throws -> R
  ) async throws -> R {
    try await connection.query("BEGIN", logger: logger)
    do {
      let result = try await body()
      try await connection.query("COMMIT", logger: logger)
      return result
    } catch {
      _ = try? await connection.query("ROLLBACK", logger: logger)
      throw error
    }
  }

  /// What `vdb_sync` says of a view.
  private struct Record {
    var physical: String
    var collection: String
    var generation: Int
    var dimension: Int
  }

  /// A document to write.
  private struct Row {
    var document: ExportedDocument
    var metadata: String
    var hash: String
  }

  private func write(
    _ source: Source, on connection: PostgresConnection,
    progress: ((OperationProgress) throws -> Void)?
  ) async throws -> SyncReport {
    // One sync per table at a time; the lock ends with the transaction.
    try await connection.query(
      "SELECT pg_advisory_xact_lock(hashtext(\("vdb_sync." + table)))", logger: logger)
    try await ensureSchema(on: connection)
    let record = try await self.record(on: connection)
    if let record, record.collection != collection.name {
      throw SyncError(
        .input,
        "table \(table) holds collection \"\(record.collection)\" (\(record.dimension) dimensions), not \"\(collection.name)\" (\(source.dimension))",
        hint:
          "pass another --table, or remove that sync first: DROP VIEW \(table); DROP TABLE \(record.physical); DELETE FROM vdb_sync WHERE table_name = '\(table)'"
      )
    }
    if record == nil, try await relationExists(table, on: connection) {
      throw SyncError(
        .input, "table \(table) exists in PostgreSQL and was not made by vdb sync",
        hint: "pass another --table; vdb never writes into a table it did not create")
    }
    // Incremental only into the same generation's table, still behind its view;
    // anything else (a new generation, a dropped view or table) builds a new table.
    var rebuild = true
    if let record, record.generation == source.generation, record.dimension == source.dimension,
      try await relationExists(record.physical, on: connection),
      try await relationExists(table, on: connection)
    {
      rebuild = false
      let type = try await columnType(of: record.physical, on: connection)
      guard type == "vector(\(source.dimension))" else {
        throw SyncError(
          .input,
          "table \(record.physical) has embedding \(type ?? "missing"), not vector(\(source.dimension)): it was altered outside vdb",
          hint: "drop the view \(table) and sync again to rebuild it")
      }
    }
    let physical: String
    if !rebuild, let record {
      physical = record.physical
    } else {
      let base = "\(table)_g\(source.generation)"
      physical = record?.physical == base ? base + "_r" : base
      if try await relationExists(physical, on: connection) {
        throw SyncError(
          .input, "table \(physical) exists in PostgreSQL and was not made by this sync",
          hint: "drop or rename it; vdb builds generation \(source.generation) there")
      }
      try await connection.query(
        """
        CREATE TABLE \(unescaped: quoted(physical)) (
          id text PRIMARY KEY, text text NOT NULL, metadata jsonb NOT NULL,
          embedding \(unescaped: "vector(\(source.dimension))"),
          content_hash text NOT NULL, sync_hash text NOT NULL)
        """, logger: logger)
    }
    let existing = rebuild ? [:] : try await hashes(in: physical, on: connection)

    // The collection, from one snapshot: keep only what differs from the table.
    var changed: [Row] = []
    var seen = Set<String>()
    let total = try collection.export(includeVectors: true) { document in
      let metadata = String(decoding: try JSONOutput.data(document.metadata), as: UTF8.self)
      // PostgreSQL's text and jsonb cannot hold NUL: say which document, before writing.
      let nulInMetadata = Self.holdsNUL(.object(document.metadata))
      if document.text.utf8.contains(0) || nulInMetadata {
        throw SyncError(
          .input,
          "document \(document.id) of \"\(collection.name)\" holds a NUL character in its \(nulInMetadata ? "metadata" : "text"), which PostgreSQL cannot store",
          hint: "remove it in vdb (vdb upsert / vdb update), then sync again")
      }
      let hash = Self.syncHash(document, metadata: metadata)
      seen.insert(document.id)
      if existing[document.id] != hash {
        changed.append(Row(document: document, metadata: metadata, hash: hash))
      }
    }
    guard try self.source() == source else {
      throw SyncError(
        .input,
        "collection \"\(collection.name)\" switched generations while it was read (a re-embed or rollback)",
        hint: "run the sync again")
    }
    let removed = existing.keys.filter { !seen.contains($0) }
    let work = changed.count + removed.count
    var done = 0
    try progress?(OperationProgress(done: 0, total: work))
    for start in stride(from: 0, to: changed.count, by: Self.batchSize) {
      let batch = changed[start..<min(start + Self.batchSize, changed.count)]
      try await insert(batch, into: physical, on: connection)
      done += batch.count
      try progress?(OperationProgress(done: done, total: work))
    }
    for start in stride(from: 0, to: removed.count, by: 10_000) {
      let batch = Array(removed[start..<min(start + 10_000, removed.count)])
      try await connection.query(
        "DELETE FROM \(unescaped: quoted(physical)) WHERE id = ANY(\(batch))", logger: logger)
      done += batch.count
      try progress?(OperationProgress(done: done, total: work))
    }
    if rebuild {
      try await swap(
        to: physical, from: record?.physical, source: source, documents: total, on: connection)
    }
    try await saveRecord(physical: physical, source: source, documents: total, on: connection)
    let inserted = changed.filter { existing[$0.document.id] == nil }.count
    return SyncReport(
      table: table, physicalTable: physical, inserted: inserted,
      updated: changed.count - inserted, deleted: removed.count,
      unchanged: total - changed.count, documents: total, generation: source.generation,
      modelVersion: source.model, adapterVersion: source.adapter, dimension: source.dimension,
      metric: source.metric, swapped: rebuild, seconds: 0)
  }

  /// Creates pgvector and the `vdb_sync` table when missing.
  private func ensureSchema(on connection: PostgresConnection) async throws {
    do {
      try await connection.query("CREATE EXTENSION IF NOT EXISTS vector", logger: logger)
    } catch let error as PSQLError where error.code == .server {
      throw SyncError(
        .remote,
        "PostgreSQL at \(url.server) cannot enable pgvector: \(error.serverInfo?[.message] ?? "")",
        hint: "install pgvector on the server, or have its owner run CREATE EXTENSION vector")
    }
    try await connection.query(
      """
      CREATE TABLE IF NOT EXISTS vdb_sync (
        table_name text PRIMARY KEY, physical_table text NOT NULL, collection text NOT NULL,
        generation integer NOT NULL, model_version integer, adapter_version integer,
        dimension integer NOT NULL, metric text NOT NULL, documents integer NOT NULL,
        synced_at timestamptz NOT NULL)
      """, logger: logger)
  }

  private func record(on connection: PostgresConnection) async throws -> Record? {
    let rows = try await connection.query(
      """
      SELECT physical_table, collection, generation, dimension FROM vdb_sync
      WHERE table_name = \(table)
      """, logger: logger)
    for try await (physical, collection, generation, dimension) in rows.decode(
      (String, String, Int, Int).self)
    {
      return Record(
        physical: physical, collection: collection, generation: generation, dimension: dimension)
    }
    return nil
  }

  private func relationExists(_ name: String, on connection: PostgresConnection) async throws
    -> Bool
  {
    let rows = try await connection.query(
      "SELECT to_regclass(\(quoted(name))) IS NOT NULL", logger: logger)
    for try await exists in rows.decode(Bool.self) { return exists }
    return false
  }

  /// The embedding column's type as PostgreSQL prints it (`vector(384)`), or nil.
  private func columnType(of name: String, on connection: PostgresConnection) async throws
    -> String?
  {
    let rows = try await connection.query(
      """
      SELECT format_type(atttypid, atttypmod) FROM pg_attribute
      WHERE attrelid = to_regclass(\(quoted(name))) AND attname = 'embedding' AND NOT attisdropped
      """, logger: logger)
    for try await type in rows.decode(String.self) { return type }
    return nil
  }

  private func hashes(in physical: String, on connection: PostgresConnection) async throws
    -> [String: String]
  {
    var result: [String: String] = [:]
    let rows = try await connection.query(
      "SELECT id, sync_hash FROM \(unescaped: quoted(physical))", logger: logger)
    for try await (id, hash) in rows.decode((String, String).self) { result[id] = hash }
    return result
  }

  /// One multi-row upsert; every value a bound parameter (vectors as binary `real[]`).
  private func insert(
    _ rows: ArraySlice<Row>, into physical: String, on connection: PostgresConnection
  ) async throws {
    var bindings = PostgresBindings(capacity: rows.count * 6)
    var values: [String] = []
    for (offset, row) in rows.enumerated() {
      let n = offset * 6
      values.append(
        "($\(n + 1), $\(n + 2), $\(n + 3)::jsonb, $\(n + 4)::real[]::vector, $\(n + 5), $\(n + 6))")
      bindings.append(row.document.id)
      bindings.append(row.document.text)
      bindings.append(row.metadata)
      bindings.append(row.document.vector)
      bindings.append(ContentHash(text: row.document.text).description)
      bindings.append(row.hash)
    }
    let sql = """
      INSERT INTO \(quoted(physical)) (id, text, metadata, embedding, content_hash, sync_hash)
      VALUES \(values.joined(separator: ", "))
      ON CONFLICT (id) DO UPDATE SET text = EXCLUDED.text, metadata = EXCLUDED.metadata,
        embedding = EXCLUDED.embedding, content_hash = EXCLUDED.content_hash,
        sync_hash = EXCLUDED.sync_hash
      """
    try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
  }

  /// Indexes the new table and points the view at it; the old table goes. Inside the
  /// sync's transaction, so readers switch at commit.
  private func swap(
    to physical: String, from old: String?, source: Source, documents: Int,
    on connection: PostgresConnection
  ) async throws {
    // pgvector builds the graph several times faster when it fits in
    // maintenance_work_mem (64 MB by default: about 28,000 rows of 384 dimensions).
    // Raised for this transaction only, never lowered; about 4·D bytes of vector and
    // 1 KB of graph per row, with a margin.
    let kilobytes = min(documents * (4 * source.dimension + 1024) / 1024 * 5 / 4, 4 << 20)
    try await connection.query(
      """
      SELECT set_config('maintenance_work_mem', greatest(setting::bigint, \(kilobytes))::text || 'kB', true)
      FROM pg_settings WHERE name = 'maintenance_work_mem'
      """, logger: logger)
    try await connection.query(
      """
      CREATE INDEX \(unescaped: quoted(physical + "_hnsw")) ON \(unescaped: quoted(physical))
      USING hnsw (embedding \(unescaped: Self.operatorClass(source.metric)))
      """, logger: logger)
    try await connection.query("DROP VIEW IF EXISTS \(unescaped: quoted(table))", logger: logger)
    try await connection.query(
      """
      CREATE VIEW \(unescaped: quoted(table)) AS
      SELECT id, text, metadata, embedding, content_hash FROM \(unescaped: quoted(physical))
      """, logger: logger)
    if let old, old != physical {
      try await connection.query("DROP TABLE IF EXISTS \(unescaped: quoted(old))", logger: logger)
    }
  }

  private func saveRecord(
    physical: String, source: Source, documents: Int, on connection: PostgresConnection
  ) async throws {
    try await connection.query(
      """
      INSERT INTO vdb_sync (table_name, physical_table, collection, generation, model_version,
        adapter_version, dimension, metric, documents, synced_at)
      VALUES (\(table), \(physical), \(collection.name), \(source.generation), \(source.model),
        \(source.adapter), \(source.dimension), \(source.metric), \(documents), now())
      ON CONFLICT (table_name) DO UPDATE SET physical_table = EXCLUDED.physical_table,
        collection = EXCLUDED.collection, generation = EXCLUDED.generation,
        model_version = EXCLUDED.model_version, adapter_version = EXCLUDED.adapter_version,
        dimension = EXCLUDED.dimension, metric = EXCLUDED.metric,
        documents = EXCLUDED.documents, synced_at = EXCLUDED.synced_at
      """, logger: logger)
  }

  /// pgvector's operator class (and so its distance operator) for a vdb metric.
  public static func operatorClass(_ metric: String) -> String {
    switch metric {
    case "dot": return "vector_ip_ops"
    case "l2": return "vector_l2_ops"
    default: return "vector_cosine_ops"
    }
  }

  /// pgvector's distance operator for a vdb metric: smaller is nearer.
  public static func distanceOperator(_ metric: String) -> String {
    switch metric {
    case "dot": return "<#>"
    case "l2": return "<->"
    default: return "<=>"
    }
  }

  /// Whether a string (or key) in `value` holds U+0000.
  static func holdsNUL(_ value: JSONValue) -> Bool {
    switch value {
    case .string(let string): return string.utf8.contains(0)
    case .array(let values): return values.contains(where: holdsNUL)
    case .object(let members):
      return members.contains { $0.key.utf8.contains(0) || holdsNUL($0.value) }
    case .null, .bool, .number: return false
    }
  }

  /// What a row's copy depends on: text, metadata (as written) and vector bits.
  static func syncHash(_ document: ExportedDocument, metadata: String) -> String {
    var hasher = SHA256()
    hasher.update(data: Data(document.text.utf8))
    hasher.update(data: [0])
    hasher.update(data: Data(metadata.utf8))
    hasher.update(data: [0])
    if let vector = document.vector {
      vector.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
  }
}

/// `name` as a quoted SQL identifier (names are validated, but quote anyway).
func quoted(_ name: String) -> String {
  "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
