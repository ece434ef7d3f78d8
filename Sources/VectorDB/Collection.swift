import Foundation
import LMDB

/// A named set of documents in a `Database`.
///
///     let docs = try db.collection("docs")
///     try docs.upsert([
///       Document(id: "a", text: "first"),
///       Document(id: "b", text: "second", metadata: ["tag": "x"]),
///     ])                                   // one transaction: both or neither
///     let b = try docs.get("b")            // Document?
///     try docs.delete("a")
///     for doc in try docs.documents(after: nil, limit: 100) { print(doc.id) }
///
/// A `Collection` is a handle: cheap, thread-safe, and always reading the latest
/// committed state, including other processes' writes.
public final class Collection: @unchecked Sendable {
  public let name: String
  let id: UInt32
  let database: Database

  init(database: Database, record: CollectionRecord) {
    self.database = database
    self.name = record.name
    self.id = record.id
  }

  private var schema: Schema { database.schema }
  private var environment: Environment { database.environment }

  // MARK: Writing

  /// Inserts `document`, or replaces the document with the same id.
  public func upsert(_ document: Document) throws {
    try upsert([document])
  }

  /// Inserts or replaces `documents` in one transaction: all of them or, on any
  /// error, none. When an id appears twice, the last one wins.
  ///
  /// - Throws: `VectorDBError.invalidDocument` (empty or over-long id) before anything
  ///   is written; `.collectionNotFound` if the collection was dropped meanwhile.
  public func upsert(_ documents: [Document]) throws {
    for document in documents { try document.validate() }
    let records = try documents.map { try DocumentRecord(row: 0, document: $0) }
    try write { txn, collection in
      for (document, var record) in zip(documents, records) {
        let key = Schema.docKey(collection: id, id: document.id)
        if let existing = try txn.get(schema.docs, key: key) {
          record.row = DocumentRecord.row(of: existing)
        } else {
          record.row = collection.nextRow
          collection.nextRow += 1
          collection.count += 1
          try txn.put(
            schema.rows, key: Schema.rowKey(collection: id, row: record.row),
            value: Array(document.id.utf8))
        }
        try txn.reserve(schema.docs, key: key, count: record.byteCount) { record.write(into: $0) }
      }
    }
  }

  /// Deletes the document `id`; returns whether it existed.
  @discardableResult
  public func delete(_ id: String) throws -> Bool {
    try delete([id]) == 1
  }

  /// Deletes the documents in one transaction; returns how many existed.
  @discardableResult
  public func delete(_ ids: [String]) throws -> Int {
    try write { txn, collection in
      var deleted = 0
      for documentID in ids
      where !documentID.isEmpty && documentID.utf8.count <= Document.maxIDBytes {
        let key = Schema.docKey(collection: id, id: documentID)
        guard let existing = try txn.get(schema.docs, key: key) else { continue }
        let row = DocumentRecord.row(of: existing)
        try txn.delete(schema.rows, key: Schema.rowKey(collection: id, row: row))
        try txn.delete(schema.docs, key: key)
        collection.count -= 1
        deleted += 1
      }
      return deleted
    }
  }

  /// Runs `body` in a write transaction with the collection's record, saved after.
  private func write<R>(_ body: (WriteTransaction, inout CollectionRecord) throws -> R) throws -> R
  {
    let schema = self.schema
    let name = self.name
    return try storage {
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
  public func get(_ id: String) throws -> Document? {
    try get([id])[0]
  }

  /// The documents with these ids, in the same order (`nil` where missing), read
  /// from one snapshot.
  public func get(_ ids: [String]) throws -> [Document?] {
    try read { txn in
      try ids.map { documentID in
        guard !documentID.isEmpty, documentID.utf8.count <= Document.maxIDBytes,
          let bytes = try txn.get(schema.docs, key: Schema.docKey(collection: id, id: documentID))
        else { return nil }
        return try document(id: documentID, bytes: bytes)
      }
    }
  }

  /// The number of documents.
  public func count() throws -> Int {
    try read { txn in
      try Database.collectionRecord(name, in: txn, schema: schema)?.count ?? 0
    }
  }

  /// Up to `limit` documents in id order, starting after the id `after` (exclusive)
  /// or at the first. Page through a collection by passing the last id of a page as
  /// the next page's `after`.
  public func documents(after: String? = nil, limit: Int = 100) throws -> [Document] {
    try scan(
      from: after.map { Schema.docKey(collection: id, id: $0).bytes + [0] }, skip: 0, limit: limit)
  }

  /// Up to `limit` documents in id order after skipping `offset` of them.
  public func documents(offset: Int, limit: Int) throws -> [Document] {
    try scan(from: nil, skip: offset, limit: limit)
  }

  private func scan(from start: [UInt8]?, skip: Int, limit: Int) throws -> [Document] {
    let prefix = KeyBuilder().uint32(id)
    return try read { txn in
      var result: [Document] = []
      var skipped = 0
      guard limit > 0 else { return result }
      try txn.forEach(in: schema.docs, from: start ?? prefix.bytes) { key, value in
        guard key.starts(with: prefix.bytes) else { return false }
        if skipped < skip {
          skipped += 1
          return true
        }
        let documentID = String(decoding: key.dropFirst(4), as: UTF8.self)
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

  private func read<R>(_ body: (Transaction) throws -> R) throws -> R {
    try storage { try environment.read(body) }
  }
}
