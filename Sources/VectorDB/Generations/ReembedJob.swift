import Embedding
import Foundation
import LMDB

/// Brings one generation's vectors up to date with the documents: embeds every
/// document whose vector is missing or stale (made from another text) and removes the
/// vectors whose document is gone.
///
/// It works batch by batch in id order, each batch one write transaction that checks
/// the documents did not change since they were read and records the job's cursor in
/// the generation's record: a job killed at any moment resumes from there.
///
///     let job = try ReembedJob(collection, generation: building, settings: settings, batchSize: 256)
///     let embedded = try job.run(progress: nil)
struct ReembedJob {
  /// A document whose vector needs to be made, as read.
  typealias StaleDocument = (id: String, record: DocumentRecord)

  private let collection: DocumentCollection
  private let plan: IndexPlan
  /// Nil for a generation of given vectors: there is nothing to embed with.
  private let encoder: SentenceEncoder?
  private let batchSize: Int

  /// - Throws: `VectorDBError.invalidInput` for a batch size below 1;
  ///   `.modelNotFound`, `.modelWithoutWeights` for the generation's model; `.storage`.
  init(
    _ collection: DocumentCollection, generation: GenerationRecord, settings: VectorSettings,
    batchSize: Int
  ) throws {
    guard batchSize >= 1 else {
      throw VectorDBError.invalidInput(
        source: "batch size", line: nil, reason: "it must be at least 1; it is \(batchSize)")
    }
    self.collection = collection
    self.batchSize = batchSize
    encoder = try generation.model.map { try collection.database.encoder(version: $0) }
    plan = try collection.indexPlan(of: generation, settings: settings)
  }

  private var schema: Schema { collection.schema }
  private var generations: Generations { Generations(of: collection) }

  /// Runs the job from the generation's cursor to the end of the documents. Returns
  /// how many documents it embedded.
  ///
  /// - Throws: `VectorDBError.concurrentChange` when the generation is dropped meanwhile;
  ///   `.collectionNotFound`; `.storage`; what `progress` throws (the job stays resumable).
  func run(progress: ((OperationProgress) throws -> Void)?) throws -> Int {
    guard let encoder else { return 0 }
    let total = try collection.count()
    var embedded = 0
    var cursor = plan.generation.cursor
    while true {
      let (stale, orphans, last) = try nextBatch(after: cursor)
      let vectors = stale.isEmpty ? [] : embed(stale, with: encoder)
      embedded += try commit(stale, vectors: vectors, orphans: orphans, cursor: last)
      cursor = last
      try progress?(OperationProgress(done: min(embedded, total), total: total))
      if last == nil { return embedded }
    }
  }

  /// The documents in the caller's transaction whose vector is stale: all of them, or
  /// (`all` false) the first one found, which is enough to know whether there are any.
  func staleDocuments(all: Bool, in txn: Transaction) throws -> [StaleDocument] {
    try scan(after: nil, limit: all ? Int.max : 1, in: txn).stale
  }

  /// Embeds and stores `stale` in the caller's transaction; false when the generation
  /// has no model to embed with.
  func embed(_ stale: [StaleDocument], in txn: WriteTransaction) throws -> Bool {
    guard let encoder else { return false }
    _ = try store(stale, vectors: embed(stale, with: encoder), orphans: [], in: txn)
    return true
  }

  /// The vectors of `stale` documents, in one matrix's values, row after row.
  private func embed(_ stale: [StaleDocument], with encoder: SentenceEncoder) -> [Float] {
    encoder.embedMatrix(encoder.prompted(stale.map(\.record.text), as: .document)).values
  }

  // MARK: Steps

  /// The next batch after `cursor`, from one snapshot: up to `batchSize` stale
  /// documents, the last id looked at (nil at the end) and, at the end, the rows
  /// whose document is gone.
  private func nextBatch(after cursor: String?) throws -> (
    stale: [StaleDocument], orphans: [UInt32], last: String?
  ) {
    try collection.read { txn in
      let (stale, last) = try scan(after: cursor, limit: batchSize, in: txn)
      // At the end of the documents: the vectors whose document is gone.
      guard last == nil else { return (stale, [], last) }
      return (stale, try orphans(in: txn), last)
    }
  }

  /// Scans the documents after `cursor` (from the first when nil) and collects those
  /// whose vector is stale, until it holds `limit` of them. Returns them and the last
  /// id scanned (nil: there was none left).
  private func scan(after cursor: String?, limit: Int, in txn: Transaction) throws -> (
    stale: [StaleDocument], last: String?
  ) {
    var stale: [StaleDocument] = []
    var last: String?
    let documents = KeyRange.collection(collection.id)
    let start = cursor.map { DocumentKey(collection: collection.id, id: $0).successor }
    try txn.forEach(in: schema.docs, from: start ?? documents.prefix.bytes) { key, value in
      guard documents.contains(key), stale.count < limit else { return false }
      let documentID = DocumentKey.id(of: key)
      last = documentID
      let document = try DocumentRecord(bytes: value, path: collection.database.path)
      if try plan.isStale(document, in: txn) { stale.append((documentID, document)) }
      return true
    }
    return (stale, last)
  }

  /// The rows that have a vector in the generation but no document any more.
  private func orphans(in txn: Transaction) throws -> [UInt32] {
    var orphans: [UInt32] = []
    let sources = SourceKey.generation(plan.generation.id, of: collection.id)
    try txn.forEach(in: schema.sources, under: sources) { key, _ in
      if let row = SourceKey.row(of: key), try !hasDocument(row: row, in: txn) {
        orphans.append(row)
      }
      return true
    }
    return orphans
  }

  /// Stores one batch and moves the job's cursor to `cursor`, in one write transaction.
  /// Returns how many vectors it wrote.
  private func commit(
    _ stale: [StaleDocument], vectors: [Float], orphans: [UInt32], cursor: String?
  ) throws -> Int {
    let generation = plan.generation.id
    return try collection.write { txn, _ -> Int in
      guard var record = try generations.record(generation, in: txn) else {
        throw VectorDBError.concurrentChange(
          collection: collection.name,
          detail: "generation \(generation) was dropped during the job")
      }
      let stored = try store(stale, vectors: vectors, orphans: orphans, in: txn)
      record.cursor = cursor
      record.count = try plan.index.count(in: txn)
      try generations.put(record, in: txn)
      return stored
    }
  }

  /// Writes the vectors of the `stale` documents still unchanged since they were read
  /// (`vectors` holds one row for each of `stale`), and removes those of `orphans`
  /// whose document is still gone. Returns how many vectors it wrote.
  private func store(
    _ stale: [StaleDocument], vectors: [Float], orphans: [UInt32], in txn: WriteTransaction
  ) throws -> Int {
    let dimension = plan.settings.dimension
    var rows: [UInt32] = []
    var values: [Float] = []
    var hashes: [ContentHash] = []
    for (offset, (documentID, document)) in stale.enumerated() {
      let key = DocumentKey(collection: collection.id, id: documentID)
      guard let bytes = try txn.get(schema.docs, key: key),
        try DocumentRecord(bytes: bytes, path: collection.database.path).hash == document.hash
      else { continue }
      rows.append(document.row)
      hashes.append(document.hash)
      values += vectors[offset * dimension..<(offset + 1) * dimension]
    }
    try plan.store(rows: rows, vectors: values, hashes: hashes, in: txn)
    try plan.remove(rows: orphans.filter { try !hasDocument(row: $0, in: txn) }, in: txn)
    return rows.count
  }

  private func hasDocument(row: UInt32, in txn: Transaction) throws -> Bool {
    try txn.get(schema.rows, key: RowKey(collection: collection.id, row: row)) != nil
  }
}
