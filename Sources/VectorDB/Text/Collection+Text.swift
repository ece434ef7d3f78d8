import Foundation
import LMDB
import TextSearch

@_exported import struct TextSearch.BM25
@_exported import enum TextSearch.Fusion

extension Fusion {
  /// Convex combination with equal weights: on SciFact it beats reciprocal rank fusion
  /// (nDCG@10 0.730 against 0.718, docs/search.md), and 0.5 is the neutral weight,
  /// not one tuned to that set. `vdb train --tier fusion` is the way to fit it.
  public static let defaultHybrid = Fusion.convex(alpha: 0.5)
}

extension CollectionRecord {
  /// Whether the collection keeps a text index: every collection except one of given
  /// vectors only (its texts, if any, are labels; it is searched by vector) and one
  /// created without (`CollectionOptions.textIndex`).
  var hasText: Bool { textIndex != false && (vectors == nil || vectors?.model != nil) }

  /// Whether the text index must be (re)built before use: never built (a collection
  /// from before text search), or built by another analyzer.
  var textIndexIsStale: Bool {
    hasText && !(text?.isMade(by: TextIndex.analyzer) ?? false)
  }
}

extension DocumentCollection {
  var textIndex: TextIndex {
    TextIndex(
      table: schema.text, collection: id, path: database.path, cache: database.postingsCache)
  }

  /// The text index's record, built first if it is missing or stale: an existing
  /// collection gets its index on its first write or keyword query after an upgrade,
  /// inside that write's transaction (all documents at once, or none).
  func preparedText(_ collection: inout CollectionRecord, in txn: WriteTransaction) throws
    -> TextIndexRecord?
  {
    guard collection.hasText else { return nil }
    if collection.textIndexIsStale {
      let index = textIndex
      try index.clear(in: txn)
      var record = TextIndexRecord(
        analyzer: TextIndex.analyzer, bm25: collection.text?.bm25 ?? .defaults)
      record.alpha = collection.text?.alpha
      let prefix = KeyBuilder().uint32(id)
      var pending = 0
      try txn.forEach(in: schema.docs, from: prefix) { key, value in
        guard key.starts(with: prefix.bytes) else { return false }
        let document = try DocumentRecord(bytes: value, path: database.path)
        index.add(row: document.row, text: document.text, to: &record)
        // Bounds the postings held in memory; rows come in id order, not row order,
        // so a block may be written more than once.
        pending += 1
        if pending == 10_000 {
          try index.flush(record, in: txn)
          pending = 0
        }
        return true
      }
      try index.flush(record, in: txn)
      collection.text = record
    }
    // This transaction's own changes (a record read earlier may hold a failed one's).
    collection.text?.pending = TextChanges()
    return collection.text
  }

  /// Stores what `updateText` changed (postings and term statistics): call it once,
  /// after the transaction's last `updateText`.
  func flushText(_ record: TextIndexRecord?, in txn: WriteTransaction) throws {
    if let record { try textIndex.flush(record, in: txn) }
  }

  /// Builds the text index now if it is missing or stale (see `preparedText`).
  ///
  /// - Throws: `VectorDBError.collectionNotFound`, storage errors.
  public func buildTextIndex() throws {
    guard
      try read({ txn in
        try Database.collectionRecord(name, in: txn, schema: schema)?.textIndexIsStale ?? false
      })
    else { return }
    try write { txn, collection in _ = try preparedText(&collection, in: txn) }
  }

  /// Sets BM25's k1 and b for the collection (they take effect at once; the index
  /// holds raw counts, so nothing is rebuilt).
  ///
  /// - Throws: `VectorDBError.invalidInput` for k1 < 0 or b outside [0, 1];
  ///   `.notAvailable` for a collection of given vectors (it has no text index).
  public func setBM25(_ bm25: BM25) throws {
    guard bm25.isValid else {
      throw VectorDBError.invalidInput(
        source: "bm25", line: nil,
        reason: "k1 must be ≥ 0 and b within [0, 1] (got \(bm25.k1), \(bm25.b))")
    }
    try write { txn, collection in
      guard try preparedText(&collection, in: txn) != nil else { throw noTextIndex }
      collection.text?.bm25 = bm25
    }
  }

  /// The collection's BM25 parameters; nil for a collection of given vectors.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`.
  public func bm25() throws -> BM25? {
    guard let record = try database.collectionRecord(name) else {
      throw VectorDBError.collectionNotFound(name)
    }
    return record.hasText ? record.text?.bm25 ?? .defaults : nil
  }

  var noTextIndex: VectorDBError {
    .notAvailable(
      collection: name,
      reason:
        "has no text index (given vectors only, or created without one): search it with --mode dense"
    )
  }

  /// Keeps the text index in step with one document's change, in the write's
  /// transaction: `old` is the replaced text (nil for a new document), `new` the
  /// new text (nil for a delete). Unchanged text costs nothing. The change is kept in
  /// `record` and stored by `flushText`, which the transaction must call before it ends.
  func updateText(
    row: UInt32, old: DocumentRecord?, new: DocumentRecord?, record: inout TextIndexRecord?
  ) {
    guard var text = record, old?.hash != new?.hash else { return }
    if let old { textIndex.remove(row: row, text: old.text, from: &text) }
    if let new { textIndex.add(row: row, text: new.text, to: &text) }
    record = text
  }
}

extension Filter {
  /// Whether the filter has a `$text` condition anywhere.
  var hasText: Bool {
    switch self {
    case .all(let parts), .any(let parts): return parts.contains(where: \.hasText)
    case .not(let part): return part.hasText
    case .field: return false
    case .text: return true
    }
  }

  /// Words every matching document must hold (from `$text` conditions that must all
  /// hold), for the text index to narrow the candidates; nil when there are none.
  var requiredText: String? {
    switch self {
    case .text(let phrase): return phrase
    case .all(let parts):
      let words = parts.compactMap(\.requiredText)
      return words.isEmpty ? nil : words.joined(separator: " ")
    case .any, .not, .field: return nil
    }
  }
}
