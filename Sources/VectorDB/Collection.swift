import Foundation
import HNSW
import LMDB
import Tensor

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
  ///   `.collectionNotFound` if the collection was dropped meanwhile.
  public func upsert(_ documents: [Document], vectors: [[Float]]? = nil) throws {
    for document in documents { try document.validate() }
    if let vectors, vectors.count != documents.count {
      throw VectorDBError.invalidVector(
        reason: "\(vectors.count) vectors for \(documents.count) documents")
    }
    // Last one wins: keep the last occurrence of each id, in order.
    var seen = Set<String>()
    var keep: [Int] = []
    for index in documents.indices.reversed() where seen.insert(documents[index].id).inserted {
      keep.append(index)
    }
    keep.reverse()
    let unique = keep.map { documents[$0] }
    let records = try unique.map { try DocumentRecord(row: 0, document: $0) }
    while true {
      let plan = try indexPlan()
      var matrix: [Float] = []
      if let settings = plan?.settings {
        if let vectors {
          for index in keep {
            if let problem = settings.problem(with: vectors[index]) {
              throw VectorDBError.invalidVector(
                reason: "document \"\(documents[index].id)\": \(problem) (collection \"\(name)\")")
            }
          }
          matrix = keep.flatMap { vectors[$0] }
        } else if let model = plan?.generation.model {
          matrix = try database.encoder(version: model).embedMatrix(unique.map(\.text)).values
        } else {
          throw VectorDBError.invalidVector(
            reason:
              "collection \"\(name)\" stores given vectors (\(settings.dimension) floats each): pass one per document"
          )
        }
      } else if vectors != nil {
        throw VectorDBError.notAvailable(
          collection: name, reason: "has no vectors (it was created without a model)")
      }
      let done = try write { txn, collection -> Bool in
        // A re-embed switched generations meanwhile: embed again with the new model.
        guard collection.active == plan?.generation.id else { return false }
        let metadataIndex = MetadataIndex(table: schema.metadataIndex, collection: id)
        var text = try preparedText(&collection, in: txn)
        var rows: [UInt32] = []
        for (document, var record) in zip(unique, records) {
          let key = DocumentKey(collection: id, id: document.id)
          var old: DocumentRecord?
          if let existing = try txn.get(schema.docs, key: key) {
            let replaced = try DocumentRecord(bytes: existing, path: database.path)
            old = replaced
            record.row = replaced.row
            try metadataIndex.update(
              row: replaced.row, metadata: try replaced.metadata(), remove: true, in: txn)
          } else {
            record.row = collection.nextRow
            collection.nextRow += 1
            collection.count += 1
            try txn.put(
              schema.rows, key: RowKey(collection: id, row: record.row),
              value: Array(document.id.utf8))
          }
          try metadataIndex.update(
            row: record.row, metadata: document.metadata, remove: false, in: txn)
          updateText(row: record.row, old: old, new: record, record: &text)
          try txn.reserve(schema.docs, key: key, count: record.byteCount) { record.write(into: $0) }
          rows.append(record.row)
        }
        try flushText(text, in: txn)
        collection.text = text
        if let plan, !rows.isEmpty {
          try plan.index.insert(ids: rows, vectors: matrix, threads: Parallel.coreCount, in: txn)
          for (row, record) in zip(rows, records) {
            try txn.put(
              schema.sources,
              key: SourceKey(collection: id, generation: plan.generation.id, row: row),
              value: record.hash.bytes)
          }
        }
        return true
      }
      if done { return }
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
        Set(ids).filter { !$0.isEmpty && $0.utf8.count <= Document.maxIDBytes }, plan: plan,
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
      try delete(Set(ids), plan: plan, in: txn, collection: &collection)
      return ids
    }
  }

  private func delete(
    _ ids: Set<String>, plan: IndexPlan?, in txn: WriteTransaction,
    collection: inout CollectionRecord
  ) throws -> Int {
    let metadataIndex = MetadataIndex(table: schema.metadataIndex, collection: id)
    var text = try preparedText(&collection, in: txn)
    var rows: [UInt32] = []
    for documentID in ids {
      let key = DocumentKey(collection: id, id: documentID)
      guard let existing = try txn.get(schema.docs, key: key) else { continue }
      let old = try DocumentRecord(bytes: existing, path: database.path)
      try metadataIndex.update(row: old.row, metadata: try old.metadata(), remove: true, in: txn)
      updateText(row: old.row, old: old, new: nil, record: &text)
      try txn.delete(schema.rows, key: RowKey(collection: id, row: old.row))
      try txn.delete(schema.docs, key: key)
      collection.count -= 1
      rows.append(old.row)
    }
    try flushText(text, in: txn)
    collection.text = text
    if let plan, collection.active == plan.generation.id, !rows.isEmpty {
      try plan.index.delete(ids: rows, in: txn)
      for row in rows {
        try txn.delete(
          schema.sources,
          key: SourceKey(collection: id, generation: plan.generation.id, row: row))
      }
    }
    return rows.count
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

  /// The active generation and its index, opened outside any write transaction (LMDB
  /// forbids opening tables inside one). Callers re-check the generation in their
  /// transaction.
  struct IndexPlan {
    var settings: VectorSettings
    var generation: GenerationRecord
    var index: VectorIndex
  }

  /// The plan of the active generation, or of `generation` when given.
  func indexPlan(generation chosen: UInt32? = nil) throws -> IndexPlan? {
    let schema = self.schema
    let name = self.name
    let found = try read { txn -> (VectorSettings, GenerationRecord)? in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema) else {
        throw VectorDBError.collectionNotFound(name)
      }
      guard let settings = record.vectors, let active = chosen ?? record.active else { return nil }
      let key = GenerationKey(collection: record.id, generation: active)
      guard let bytes = try txn.get(schema.generations, key: key) else {
        throw VectorDBError.damaged(
          path: database.path, detail: "generation \(active) of \"\(name)\" is missing")
      }
      return (settings, try JSONDecoder().decode(GenerationRecord.self, from: Data(bytes)))
    }
    guard let (settings, generation) = found else { return nil }
    let index = try storage {
      try database.indexCache.open(
        GenerationRecord.indexName(collection: id, generation: generation.id),
        environment: environment,
        create: settings)
    }
    return IndexPlan(settings: settings, generation: generation, index: index)
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
