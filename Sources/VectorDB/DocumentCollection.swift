import Foundation
import HNSW
import LMDB
import Tensor

/// A named set of documents in a `Database`, searchable by meaning and by words.
///
///     let db = try Database(path: "notes.vdb")
///     try db.importModel(directory: DefaultModel.directory)   // once: the default model
///     let docs = try db.collection("docs")          // text embedded by it (no model: words only)
///     try docs.upsert([
///       Document(id: "a", text: "Sugar intake and the risk of diabetes"),
///       Document(id: "b", text: "Sleep and memory", metadata: ["year": 2024]),
///     ])                                             // one transaction: both or neither
///     let result = try docs.query(text: "does sugar cause diabetes?", k: 5)
///     for hit in result.hits { print(hit.score, hit.id) }
///     try docs.feedback(logID: result.logID!, documentID: "a")   // what training learns from
///     let b = try docs.get("b")                      // Document?
///     try docs.delete("a")
///
/// A `DocumentCollection` is a handle: cheap, thread-safe, and always reading the latest
/// committed state, including other processes' writes. Every method that writes is
/// one transaction. What it offers, and where each part lives:
///
/// - Documents: `upsert`, `delete`, `update(id:metadata:)`, `get`, `count`,
///   `documents` (this file; the write path in `DocumentWriter.swift`).
/// - Search: `query(text:…)`, `query(vector:…)` (`Query.swift`), full-text settings
///   (`Text/`), `evaluate`, `diagnose` (`Evaluation.swift`).
/// - Feedback and judgements: `feedback`, `judge` (`Feedback.swift`).
/// - Generations: `generations()`, `reembed`, `activate(model:)`, `rollback`
///   (`Generations/`: the `Generations` type and its `ReembedJob`).
/// - Training: `train` and its stages (`Train/`); routers (`Routing/`).
/// - Import and export: `importJSONL`, `importCSV`, `importVectors`, `export`.
public final class DocumentCollection: @unchecked Sendable {
  /// The collection's name, as the database knows it (`Database.collection(_:)`).
  public let name: String
  let id: UInt32
  let database: Database

  init(database: Database, record: CollectionRecord) {
    self.database = database
    self.name = record.name
    self.id = record.id
  }

  var schema: Schema { database.schema }

  private var environment: Environment { database.environment }

  // MARK: Writing

  /// Inserts `document`, or replaces the document with the same id.
  ///
  /// - Throws: as `upsert(_:vectors:)`.
  public func upsert(_ document: Document) throws {
    try upsert([document])
  }

  /// Inserts or replaces `documents` in one transaction: all of them or, on any
  /// error, none. When an id appears twice, the last one wins.
  ///
  /// In a collection with a model, the texts are embedded with the model of the
  /// active generation and indexed in the same transaction. In a collection of given
  /// vectors, pass one vector per document in `vectors`; a text collection also
  /// accepts given vectors (they must come from its model to be meaningful).
  ///
  /// - Throws: `VectorDBError.invalidDocument` (empty or over-long id) and
  ///   `.invalidVector` (wrong count, dimension, NaN) before anything is written;
  ///   `.notAvailable` for vectors given to a collection without any;
  ///   `.collectionNotFound` if the collection was dropped meanwhile; `.storage`.
  public func upsert(_ documents: [Document], vectors: [[Float]]? = nil) throws {
    let batch = try UpsertBatch(documents, vectors: vectors)
    // A re-embed may switch generations between embedding and writing: then the
    // vectors are of the old model, and the batch is embedded again with the new one.
    while true {
      let plan = try indexPlan()
      let matrix = try embeddings(for: batch, plan: plan)
      if try write({ try put(batch, vectors: matrix, plan: plan, in: $0, collection: &$1) }) {
        return
      }
    }
  }

  /// Deletes the document `id`; returns whether it existed.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  @discardableResult
  public func delete(_ id: String) throws -> Bool {
    try delete([id]) == 1
  }

  /// Deletes the documents (and their vectors) in one transaction; returns how many
  /// existed.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  @discardableResult
  public func delete(_ ids: [String]) throws -> Int {
    let plan = try indexPlan()
    return try write { txn, collection in
      try delete(
        ids.filter { !$0.isEmpty && $0.utf8.count <= Document.maxIDBytes }, plan: plan,
        in: txn, collection: &collection)
    }
  }

  /// Deletes the documents whose metadata matches `filter`, in one transaction (the
  /// match and the delete see the same snapshot); returns their ids, sorted. With
  /// `dryRun`, returns them and deletes nothing.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`.
  @discardableResult
  public func delete(matching filter: Filter, dryRun: Bool = false) throws -> [String] {
    if dryRun { return try read { try ids(matching: filter, in: $0) } }
    let plan = try indexPlan()
    return try write { txn, collection in
      let ids = try ids(matching: filter, in: txn)
      _ = try delete(ids, plan: plan, in: txn, collection: &collection)
      return ids
    }
  }

  /// Replaces the metadata of document `id`, keeping its text and vector (nothing is
  /// re-embedded).
  ///
  /// - Throws: `VectorDBError.documentNotFound`, `.collectionNotFound`.
  public func update(id documentID: String, metadata: [String: JSONValue]) throws {
    try write { txn, _ in
      let key = DocumentKey(collection: id, id: documentID)
      guard !documentID.isEmpty, documentID.utf8.count <= Document.maxIDBytes,
        let bytes = try txn.get(schema.docs, key: key)
      else { throw VectorDBError.documentNotFound(id: documentID, collection: name) }
      var record = try DocumentRecord(bytes: bytes, path: database.path)
      let index = MetadataIndex(table: schema.metadataIndex, collection: id)
      try index.update(row: record.row, metadata: try record.metadata(), remove: true, in: txn)
      try index.update(row: record.row, metadata: metadata, remove: false, in: txn)
      record.metadataJSON = metadata.isEmpty ? Data() : try JSONEncoder.sorted.encode(metadata)
      try txn.reserve(schema.docs, key: key, count: record.byteCount) { record.write(into: $0) }
    }
  }

  /// Runs `body` in a write transaction with the collection's record, saved after.
  func write<R>(_ body: (WriteTransaction, inout CollectionRecord) throws -> R) throws -> R {
    let schema = self.schema
    let name = self.name
    return try mappingErrors(path: database.path) {
      try environment.write { txn in
        guard var record = try Database.collectionRecord(name, in: txn, schema: schema),
          record.id == id
        else {
          throw VectorDBError.collectionNotFound(name)
        }
        let before = record
        let result = try body(txn, &record)
        if record != before {
          try txn.put(schema.collections, key: name, value: try JSONEncoder().encode(record))
        }
        return result
      }
    }
  }

  // MARK: Reading

  /// The document `id`, or `nil`.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged` (an unreadable record).
  public func get(_ id: String) throws -> Document? {
    try get([id])[0]
  }

  /// The documents with these ids, in the same order (`nil` where missing), read
  /// from one snapshot.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged` (an unreadable record).
  public func get(_ ids: [String]) throws -> [Document?] {
    try read { txn in
      try ids.map { documentID in
        guard !documentID.isEmpty, documentID.utf8.count <= Document.maxIDBytes,
          let bytes = try txn.get(schema.docs, key: DocumentKey(collection: id, id: documentID))
        else { return nil }
        return try document(id: documentID, bytes: bytes)
      }
    }
  }

  /// The number of documents.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped or
  ///   renamed.
  public func count() throws -> Int {
    try read { txn in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema),
        record.id == id
      else { throw VectorDBError.collectionNotFound(name) }
      return record.count
    }
  }

  /// The number of documents whose metadata matches `filter`.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func count(matching filter: Filter) throws -> Int {
    try read { try rows(matching: filter, in: $0).count }
  }

  /// Up to `limit` documents whose metadata matches `filter`, in id order, after the
  /// id `after` (exclusive) when given: page with the last id of a page.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func documents(matching filter: Filter, after: String? = nil, limit: Int = 100) throws
    -> [Document]
  {
    try read { txn in
      var ids = try ids(matching: filter, in: txn)
      if let after { ids = ids.filter { after.utf8.lexicographicallyPrecedes($0.utf8) } }
      return try ids.prefix(max(0, limit)).compactMap { documentID in
        try txn.get(schema.docs, key: DocumentKey(collection: id, id: documentID)).map {
          try document(id: documentID, bytes: $0)
        }
      }
    }
  }

  /// The stored vectors of these documents in the active generation, in the same
  /// order (`nil` where a document is missing or has no vector yet); one snapshot.
  ///
  /// - Throws: `VectorDBError.notAvailable` for a collection without vectors.
  public func vectors(_ ids: [String]) throws -> [[Float]?] {
    guard let plan = try indexPlan() else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    return try read { txn in
      try ids.map { documentID in
        guard !documentID.isEmpty, documentID.utf8.count <= Document.maxIDBytes,
          let bytes = try txn.get(schema.docs, key: DocumentKey(collection: id, id: documentID))
        else { return nil }
        return try plan.index.vector(of: DocumentRecord.row(of: bytes), in: txn)
      }
    }
  }

  /// The ids of the documents matching `filter`, sorted (byte order, as stored).
  private func ids(matching filter: Filter, in txn: Transaction) throws -> [String] {
    try rows(matching: filter, in: txn).compactMap { row in
      try txn.get(schema.rows, key: RowKey(collection: id, row: row)).map {
        String(decoding: $0, as: UTF8.self)
      }
    }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
  }

  /// Up to `limit` documents in id order, starting after the id `after` (exclusive)
  /// or at the first. Page through a collection by passing the last id of a page as
  /// the next page's `after`.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func documents(after: String? = nil, limit: Int = 100) throws -> [Document] {
    try scan(
      from: after.map { DocumentKey(collection: id, id: $0).successor }, skip: 0, limit: limit)
  }

  /// Up to `limit` documents in id order after skipping `offset` of them.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func documents(offset: Int, limit: Int) throws -> [Document] {
    try scan(from: nil, skip: offset, limit: limit)
  }

  private func scan(from start: [UInt8]?, skip: Int, limit: Int) throws -> [Document] {
    let documents = KeyRange.collection(id)
    return try read { txn in
      var result: [Document] = []
      var skipped = 0
      guard limit > 0 else { return result }
      try txn.forEach(in: schema.docs, from: start ?? documents.prefix.bytes) { key, value in
        guard documents.contains(key) else { return false }
        if skipped < skip {
          skipped += 1
          return true
        }
        let documentID = DocumentKey.id(of: key)
        result.append(try document(id: documentID, bytes: value))
        return result.count < limit
      }
      return result
    }
  }

  private func document(id documentID: String, bytes: UnsafeRawBufferPointer) throws -> Document {
    let record = try DocumentRecord(bytes: bytes, path: database.path)
    return Document(id: documentID, text: record.text, metadata: try record.metadata())
  }

  func read<R>(_ body: (Transaction) throws -> R) throws -> R {
    try mappingErrors(path: database.path) { try environment.read(body) }
  }
}
