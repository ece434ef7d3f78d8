import Foundation
import LMDB

/// One write transaction's changes to a collection's documents. What must move with a
/// document moves here together: its record, its row in the row map, the metadata and
/// text indexes, and the collection's count. Vectors are the generation's business
/// (`IndexPlan.store`, `IndexPlan.remove`).
///
///     var writer = try DocumentWriter(collection, record: record, in: txn)
///     let row = try writer.put(document, record: documentRecord)
///     record = try writer.finish()   // stores the text index's changes
struct DocumentWriter {
  private let collection: DocumentCollection
  private let txn: WriteTransaction
  private let metadataIndex: MetadataIndex
  private var record: CollectionRecord
  private var text: TextIndexRecord?

  /// Starts the changes to `collection`, whose stored record is `record`; builds the
  /// text index first if it is missing or stale (see `preparedText`).
  init(_ collection: DocumentCollection, record: CollectionRecord, in txn: WriteTransaction) throws
  {
    self.collection = collection
    self.txn = txn
    self.record = record
    metadataIndex = MetadataIndex(table: collection.schema.metadataIndex, collection: collection.id)
    text = try collection.preparedText(&self.record, in: txn)
  }

  /// Stores `document` as `stored` (whose row is assigned here): a new document gets
  /// the next row id, a replaced one keeps its own. Returns the row.
  mutating func put(_ document: Document, record stored: DocumentRecord) throws -> UInt32 {
    let schema = collection.schema
    let key = DocumentKey(collection: collection.id, id: document.id)
    var new = stored
    let old = try existing(key)
    if let old {
      new.row = old.row
      try metadataIndex.update(row: old.row, metadata: try old.metadata(), remove: true, in: txn)
    } else {
      new.row = record.nextRow
      record.nextRow += 1
      record.count += 1
      try txn.put(
        schema.rows, key: RowKey(collection: collection.id, row: new.row),
        value: Array(document.id.utf8))
    }
    try metadataIndex.update(row: new.row, metadata: document.metadata, remove: false, in: txn)
    collection.updateText(row: new.row, old: old, new: new, record: &text)
    try txn.reserve(schema.docs, key: key, count: new.byteCount) { new.write(into: $0) }
    return new.row
  }

  /// Removes the document `id`; returns its row, or nil when there was none.
  mutating func remove(id documentID: String) throws -> UInt32? {
    let schema = collection.schema
    let key = DocumentKey(collection: collection.id, id: documentID)
    guard let old = try existing(key) else { return nil }
    try metadataIndex.update(row: old.row, metadata: try old.metadata(), remove: true, in: txn)
    collection.updateText(row: old.row, old: old, new: nil, record: &text)
    try txn.delete(schema.rows, key: RowKey(collection: collection.id, row: old.row))
    try txn.delete(schema.docs, key: key)
    record.count -= 1
    return old.row
  }

  /// Stores the text index's changes; returns the collection's record to save.
  func finish() throws -> CollectionRecord {
    try collection.flushText(text, in: txn)
    var finished = record
    finished.text = text
    return finished
  }

  private func existing(_ key: DocumentKey) throws -> DocumentRecord? {
    try txn.get(collection.schema.docs, key: key).map {
      try DocumentRecord(bytes: $0, path: collection.database.path)
    }
  }
}

/// The documents of one `upsert`, checked and ready to write: the last occurrence of
/// each id, in order, with its given vector if any.
struct UpsertBatch {
  var documents: [Document] = []
  var records: [DocumentRecord] = []
  /// One per document, or nil: embed the texts.
  var vectors: [[Float]]?

  /// - Throws: `VectorDBError.invalidDocument` for an empty or over-long id;
  ///   `.invalidVector` when `vectors` and `documents` differ in count.
  init(_ documents: [Document], vectors: [[Float]]?) throws {
    for document in documents { try document.validate() }
    if let vectors, vectors.count != documents.count {
      throw VectorDBError.invalidVector(
        reason: "\(vectors.count) vectors for \(documents.count) documents")
    }
    // Last one wins: keep the last occurrence of each id, in order. Ids are compared as
    // bytes, as their keys are: Swift's `==` takes "é" and "e\u{301}" for one string.
    var seen = Set<[UInt8]>()
    let keep = documents.indices.reversed()
      .filter { seen.insert(Array(documents[$0].id.utf8)).inserted }
      .reversed()
    self.documents = keep.map { documents[$0] }
    self.vectors = vectors.map { vectors in keep.map { vectors[$0] } }
    records = try self.documents.map { try DocumentRecord(row: 0, document: $0) }
  }
}

extension DocumentCollection {
  /// The vectors to index with `batch` under `plan` (all rows in one matrix): the
  /// given ones, checked against the collection's settings, or the texts embedded by
  /// the generation's model. Empty for a collection without vectors.
  ///
  /// - Throws: `VectorDBError.invalidVector` for a given vector the collection cannot
  ///   hold, or none given to a collection of given vectors; `.notAvailable` for
  ///   vectors given to a collection without any; `.modelUnsuitable` naming the document
  ///   whose text the model turned into a vector the collection cannot hold (NaN).
  func embeddings(for batch: UpsertBatch, plan: IndexPlan?) throws -> [Float] {
    guard let settings = plan?.settings else {
      if batch.vectors != nil {
        throw VectorDBError.notAvailable(
          collection: name,
          reason:
            "has no vectors (it was created without a model) to hold the ones given;"
            + " given vectors go into a collection created for them"
            + " (`vdb collections create \(name) --vectors DIMENSION --metric cosine|dot|l2`)")
      }
      return []
    }
    // The model that makes the vectors; nil when they are given.
    let model = batch.vectors == nil ? plan?.generation.model : nil
    let vectors: [[Float]]
    if let given = batch.vectors {
      vectors = given
    } else if let model {
      let encoder = try database.encoder(version: model)
      vectors = encoder.embed(encoder.prompted(batch.documents.map(\.text), as: .document))
    } else {
      throw VectorDBError.invalidVector(
        reason:
          "collection \"\(name)\" stores given vectors (\(settings.dimension) floats each): pass one per document"
      )
    }
    for (document, vector) in zip(batch.documents, vectors) {
      guard let problem = settings.problem(with: vector) else { continue }
      let reason = "document \"\(document.id)\": \(problem) (collection \"\(name)\")"
      guard let model else { throw VectorDBError.invalidVector(reason: reason) }
      throw VectorDBError.modelUnsuitable(
        version: model, reason: "made an unusable vector of " + reason)
    }
    return vectors.flatMap { $0 }
  }

  /// Writes `batch` and its `vectors` (made for `plan`) in the caller's transaction.
  /// Returns false, writing nothing, when a re-embed switched generations since `plan`
  /// was taken: the vectors are then of the wrong model.
  func put(
    _ batch: UpsertBatch, vectors: [Float], plan: IndexPlan?, in txn: WriteTransaction,
    collection: inout CollectionRecord
  ) throws -> Bool {
    guard collection.active == plan?.generation.id else { return false }
    var writer = try DocumentWriter(self, record: collection, in: txn)
    let rows = try zip(batch.documents, batch.records).map { try writer.put($0, record: $1) }
    collection = try writer.finish()
    try plan?.store(rows: rows, vectors: vectors, hashes: batch.records.map(\.hash), in: txn)
    return true
  }

  /// Deletes the documents `ids` (and their vectors in `plan`'s generation, if it is
  /// still the active one) in the caller's transaction; returns how many existed (an id
  /// given twice is removed and counted once).
  func delete(
    _ ids: [String], plan: IndexPlan?, in txn: WriteTransaction,
    collection: inout CollectionRecord
  ) throws -> Int {
    var writer = try DocumentWriter(self, record: collection, in: txn)
    let rows = try ids.compactMap { try writer.remove(id: $0) }
    collection = try writer.finish()
    if let plan, collection.active == plan.generation.id {
      try plan.remove(rows: rows, in: txn)
    }
    return rows.count
  }
}
