import LMDB
import Tensor

/// One generation's vectors: its settings, its record and its index, opened outside any
/// write transaction (LMDB forbids opening tables inside one). Callers that write
/// re-check in their transaction that the generation is still the one they meant.
///
/// Every vector goes with the hash of the text it was made from (the `sources`
/// table): that is how a re-embed job finds stale and orphaned vectors.
struct IndexPlan {
  var settings: VectorSettings
  var generation: GenerationRecord
  var index: VectorIndex
  /// The collection's id, and the table of source hashes.
  let collection: UInt32
  let sources: Table

  /// Stores the vectors of `rows` (one row of `vectors` each) with the hashes of the
  /// texts they were made from, in the caller's transaction.
  ///
  /// - Throws: `HNSWError` for a vector the index cannot hold, `LMDBError`.
  func store(rows: [UInt32], vectors: [Float], hashes: [ContentHash], in txn: WriteTransaction)
    throws
  {
    guard !rows.isEmpty else { return }
    try index.insert(ids: rows, vectors: vectors, threads: Parallel.coreCount, in: txn)
    for (row, hash) in zip(rows, hashes) {
      try txn.put(sources, key: sourceKey(row), value: hash.bytes)
    }
  }

  /// Removes the vectors of `rows` and their source hashes, in the caller's transaction.
  ///
  /// - Throws: `LMDBError`, `HNSWError` for a damaged graph.
  func remove(rows: [UInt32], in txn: WriteTransaction) throws {
    guard !rows.isEmpty else { return }
    try index.delete(ids: rows, in: txn)
    for row in rows { try txn.delete(sources, key: sourceKey(row)) }
  }

  /// Whether the vector of `document` is missing or was made from another text.
  func isStale(_ document: DocumentRecord, in txn: Transaction) throws -> Bool {
    try txn.get(sources, key: sourceKey(document.row)).map(Array.init) != document.hash.bytes
  }

  func sourceKey(_ row: UInt32) -> SourceKey {
    SourceKey(collection: collection, generation: generation.id, row: row)
  }
}

extension DocumentCollection {
  /// The plan of the active generation, or of `generation` when given; nil for a
  /// collection without vectors.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`; `.damaged` when the generation's
  ///   record is missing.
  func indexPlan(generation chosen: UInt32? = nil) throws -> IndexPlan? {
    let schema = self.schema
    let name = self.name
    let found = try read { txn -> (VectorSettings, GenerationRecord)? in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema) else {
        throw VectorDBError.collectionNotFound(name)
      }
      guard let settings = record.vectors, let active = chosen ?? record.active else { return nil }
      guard let generation = try Generations(of: self).record(active, in: txn) else {
        throw VectorDBError.damaged(
          path: database.path, detail: "generation \(active) of \"\(name)\" is missing")
      }
      return (settings, generation)
    }
    guard let (settings, generation) = found else { return nil }
    return try indexPlan(of: generation, settings: settings)
  }

  /// The plan of `generation`, its index opened (created when missing).
  ///
  /// - Throws: `VectorDBError.storage`.
  func indexPlan(of generation: GenerationRecord, settings: VectorSettings) throws -> IndexPlan {
    let index = try storage {
      try database.indexCache.open(
        GenerationRecord.indexName(collection: id, generation: generation.id),
        environment: database.environment, create: settings)
    }
    return IndexPlan(
      settings: settings, generation: generation, index: index, collection: id,
      sources: schema.sources)
  }
}
