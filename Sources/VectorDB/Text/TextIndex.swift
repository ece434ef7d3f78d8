import Foundation
import LMDB
import TextSearch

/// A collection's full-text index: what its record says about it. The counts change
/// in the same transaction as the postings, so they always describe them.
struct TextIndexRecord: Codable, Equatable {
  /// The analyzer that made the terms; another name or version means a rebuild.
  var analyzer: String
  var version: Int
  var bm25: BM25
  /// Documents with at least one term (BM25's N), and their terms in all (for avgdl).
  var documents: Int
  var terms: Int
  /// The serving fusion version's alpha (nil: `Fusion.defaultHybrid`), kept here so that
  /// a hybrid query reads it with the rest (`Collection.trainFusion`).
  var alpha: Double?
  /// Drawn anew at every change of the postings (nil before the first since it
  /// existed): what `PostingsCache` keys on.
  var stamp: Int?
  /// The term statistics this write transaction changed, not stored yet
  /// (`TextIndex.flush`); never stored itself.
  var pending = TermStatsChanges()

  enum CodingKeys: String, CodingKey {
    case analyzer, version, bm25, documents, terms, alpha, stamp
  }

  static func == (a: TextIndexRecord, b: TextIndexRecord) -> Bool {
    (a.analyzer, a.version, a.bm25, a.documents, a.terms) == (
      b.analyzer, b.version, b.bm25, b.documents, b.terms
    ) && (a.alpha, a.stamp) == (b.alpha, b.stamp)
  }

  init(analyzer: Analyzer, bm25: BM25 = .defaults) {
    self.analyzer = analyzer.name
    version = analyzer.version
    self.bm25 = bm25
    documents = 0
    terms = 0
  }

  func isMade(by analyzer: Analyzer) -> Bool {
    self.analyzer == analyzer.name && version == analyzer.version
  }

  var averageLength: Double { documents == 0 ? 0 : Double(terms) / Double(documents) }
}

/// Per term, the change of its document frequency and the largest count added, over
/// one write transaction's documents (a reference: every copy of the record shares it).
final class TermStatsChanges {
  var changes: [String: (documents: Int, maxFrequency: UInt32)] = [:]

  func add(_ term: String, count: UInt32) {
    let change = changes[term] ?? (0, 0)
    changes[term] = (change.documents + 1, max(change.maxFrequency, count))
  }

  func remove(_ term: String) {
    let change = changes[term] ?? (0, 0)
    changes[term] = (change.documents - 1, change.maxFrequency)
  }
}

/// The postings of one collection in the `text` table (docs/storage-format.md):
///
///     collection id (UInt32 BE) ++ 0x01 ++ term (UInt16 BE length ++ UTF-8)
///         → df (UInt32 LE) ++ max tf (UInt32 LE)
///     collection id (UInt32 BE) ++ 0x02 ++ term (UInt16 BE length ++ UTF-8) ++ row id (UInt32 BE)
///         → tf (UInt32 LE) ++ document length in terms (UInt32 LE)
///
/// One key per posting, so a document's update touches only its own terms' keys,
/// and a term's postings are one key range in row order (what MaxScore walks).
/// "max tf" only grows (a delete leaves it): it stays an upper bound, which is all
/// the search needs of it.
struct TextIndex {
  static let analyzer = Analyzer.english
  static let termKind: UInt8 = 0x01
  static let postingKind: UInt8 = 0x02

  let table: Table
  let collection: UInt32
  /// The database's path, for errors.
  let path: String
  /// Decoded postings of earlier queries (nil: read every query's from LMDB).
  var cache: PostingsCache? = nil

  /// Indexes `text` as the document `row` (which must not be indexed yet).
  func add(row: UInt32, text: String, to record: inout TextIndexRecord, in txn: WriteTransaction)
    throws
  {
    let (counts, length) = TextIndex.counts(text)
    guard length > 0 else { return }
    for (term, count) in counts {
      record.pending.add(term, count: count)
      try txn.put(table, key: postingKey(term, row: row), value: TextIndex.bytes(count, length))
    }
    record.documents += 1
    record.terms += Int(length)
    record.stamp = Int.random(in: 0..<(1 << 53))
  }

  /// Removes the document `row`, indexed from `text`.
  func remove(
    row: UInt32, text: String, from record: inout TextIndexRecord, in txn: WriteTransaction
  ) throws {
    let (counts, length) = TextIndex.counts(text)
    guard length > 0 else { return }
    for term in counts.keys {
      guard try txn.delete(table, key: postingKey(term, row: row)) else {
        throw VectorDBError.damaged(
          path: path, detail: "the text index lacks term \"\(term)\" of row \(row)")
      }
      record.pending.remove(term)
    }
    record.documents -= 1
    record.terms -= Int(length)
    record.stamp = Int.random(in: 0..<(1 << 53))
  }

  /// Stores the term statistics `record`'s writes changed: one read and one write per
  /// term, however many documents of the transaction hold it. Must run before the
  /// transaction that changed them commits.
  func flush(_ record: TextIndexRecord, in txn: WriteTransaction) throws {
    for (term, change) in record.pending.changes {
      let stats = termKey(term)
      let (frequency, maxFrequency) = try txn.get(table, key: stats).map(TextIndex.pair) ?? (0, 0)
      let documents = Int(frequency) + change.documents
      if documents <= 0 {
        try txn.delete(table, key: stats)
      } else {
        try txn.put(
          table, key: stats,
          value: TextIndex.bytes(UInt32(documents), max(maxFrequency, change.maxFrequency)))
      }
    }
    record.pending.changes.removeAll()
  }

  /// Deletes every key of the collection's index.
  func clear(in txn: WriteTransaction) throws {
    try txn.deleteRange(
      table, from: KeyBuilder().uint32(collection), to: KeyBuilder().uint32(collection + 1))
  }

  // MARK: Reading

  /// The `k` best rows for `query` by BM25, best first, from one snapshot.
  ///
  /// - Parameters:
  ///   - accept: nil, or which rows may be returned.
  ///   - exhaustive: score every posting (the reference for MaxScore).
  func search(
    _ query: String, k: Int, record: TextIndexRecord, accept: ((UInt32) -> Bool)?,
    exhaustive: Bool, in txn: Transaction
  ) throws -> [ScoredDocument] {
    var counts: [String: Int] = [:]
    for term in TextIndex.analyzer.terms(query) { counts[term, default: 0] += 1 }
    var found: [(term: String, count: Int, frequency: UInt32, maxFrequency: UInt32)] = []
    for term in counts.keys.sorted() {
      guard TextIndex.fits(term),
        let (frequency, maxFrequency) = try txn.get(table, key: termKey(term)).map(TextIndex.pair)
      else { continue }
      found.append((term, counts[term]!, frequency, maxFrequency))
    }
    guard !found.isEmpty else { return [] }
    if let cache, let stamp = record.stamp {
      let terms = try found.map { entry in
        let list = try cache.list(collection: collection, stamp: stamp, term: entry.term) {
          try postings(entry.term, in: txn)
        }
        return ScoringTerm(
          cursor: ListCursor(list), count: entry.count, frequency: Int(entry.frequency),
          maxFrequency: entry.maxFrequency, documents: record.documents, bm25: record.bm25)
      }
      return try TopK.search(
        terms, k: k, bm25: record.bm25, averageLength: record.averageLength, accept: accept,
        exhaustive: exhaustive)
    }
    return try txn.withCursors(table, count: found.count) { cursors in
      let terms = try zip(found, cursors).map { entry, cursor in
        ScoringTerm(
          cursor: try PostingsReader(cursor: cursor, prefix: termPrefix(entry.term)),
          count: entry.count, frequency: Int(entry.frequency), maxFrequency: entry.maxFrequency,
          documents: record.documents, bm25: record.bm25)
      }
      return try TopK.search(
        terms, k: k, bm25: record.bm25, averageLength: record.averageLength, accept: accept,
        exhaustive: exhaustive)
    }
  }

  /// Every posting of `term`, decoded.
  private func postings(_ term: String, in txn: Transaction) throws -> PostingsList {
    var documents: [UInt32] = []
    var frequencies: [UInt32] = []
    var lengths: [UInt32] = []
    let prefix = termPrefix(term).bytes
    try txn.forEach(in: table, from: prefix) { key, value in
      guard key.count == prefix.count + 4,
        prefix.withUnsafeBytes({ memcmp($0.baseAddress!, key.baseAddress!, prefix.count) == 0 })
      else { return false }
      let (frequency, length) = TextIndex.pair(value)
      documents.append(
        UInt32(bigEndian: key.loadUnaligned(fromByteOffset: prefix.count, as: UInt32.self)))
      frequencies.append(frequency)
      lengths.append(length)
      return true
    }
    return PostingsList(documents: documents, frequencies: frequencies, lengths: lengths)
  }

  /// The rows holding every term of `text` (empty when a term is in no document).
  func rows(containingAll text: String, in txn: Transaction) throws -> Set<UInt32> {
    var result: Set<UInt32>?
    for term in Set(TextIndex.analyzer.terms(text)).sorted() {
      var rows = Set<UInt32>()
      guard TextIndex.fits(term) else { return [] }
      let prefix = termPrefix(term).bytes
      try txn.forEach(in: table, from: prefix) { key, _ in
        guard key.starts(with: prefix) else { return false }
        rows.insert(
          UInt32(bigEndian: key.loadUnaligned(fromByteOffset: key.count - 4, as: UInt32.self)))
        return true
      }
      result = result.map { $0.intersection(rows) } ?? rows
      if result!.isEmpty { break }
    }
    return result ?? []
  }

  // MARK: Keys and values

  private func termKey(_ term: String) -> KeyBuilder {
    KeyBuilder().uint32(collection).uint8(TextIndex.termKind).lengthPrefixed(term)
  }

  private func termPrefix(_ term: String) -> KeyBuilder {
    KeyBuilder().uint32(collection).uint8(TextIndex.postingKind).lengthPrefixed(term)
  }

  private func postingKey(_ term: String, row: UInt32) -> KeyBuilder {
    termPrefix(term).uint32(row)
  }

  /// Terms are at most 64 characters (the analyzer cuts words), so at most 256 bytes:
  /// always a valid key. A query term that is longer cannot be in the index.
  private static func fits(_ term: String) -> Bool { term.utf8.count <= 400 }

  /// Each term's count in `text`, and the number of terms.
  static func counts(_ text: String) -> (counts: [String: UInt32], length: UInt32) {
    let (counts, length) = analyzer.termCounts(text)
    return (counts, UInt32(length))
  }

  static func pair(_ bytes: UnsafeRawBufferPointer) -> (UInt32, UInt32) {
    (
      bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian,
      bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
    )
  }

  static func bytes(_ first: UInt32, _ second: UInt32) -> [UInt8] {
    withUnsafeBytes(of: first.littleEndian) { Array($0) }
      + withUnsafeBytes(of: second.littleEndian) { Array($0) }
  }
}

/// One term's postings read through an LMDB cursor.
final class PostingsReader: PostingsCursor {
  private let cursor: Cursor
  /// The term's posting key prefix, followed by room for a row id (what `advance` seeks).
  private var key: [UInt8]
  private let prefixCount: Int
  private(set) var current: Posting?

  init(cursor: Cursor, prefix: KeyBuilder) throws {
    self.cursor = cursor
    key = prefix.bytes + [0, 0, 0, 0]
    prefixCount = prefix.bytes.count
    current = try read(cursor.seek(atLeast: prefix))
  }

  func next() throws {
    current = try read(cursor.next())
  }

  func advance(to target: UInt32) throws {
    guard let posting = current, posting.document < target else { return }
    withUnsafeBytes(of: target.bigEndian) { row in
      key.withUnsafeMutableBytes {
        $0.baseAddress!.advanced(by: prefixCount).copyMemory(from: row.baseAddress!, byteCount: 4)
      }
    }
    current = try read(cursor.seek(atLeast: key))
  }

  private func read(_ entry: Cursor.Entry?) -> Posting? {
    guard let (found, value) = entry, found.count == prefixCount + 4,
      key.withUnsafeBytes({ memcmp($0.baseAddress!, found.baseAddress!, prefixCount) == 0 })
    else {
      return nil
    }
    let (frequency, length) = TextIndex.pair(value)
    return Posting(
      document: UInt32(
        bigEndian: found.loadUnaligned(fromByteOffset: prefixCount, as: UInt32.self)),
      frequency: frequency, length: length)
  }
}
