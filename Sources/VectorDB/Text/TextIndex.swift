import Foundation
import LMDB
import TextSearch

/// A collection's full-text index: what its record says about it. The counts change
/// in the same transaction as the postings, so they always describe them.
struct TextIndexRecord: Codable, Equatable {
  /// The analyzer that made the terms; another name or version means a rebuild.
  var analyzer: String
  var version: Int
  /// The layout of the index's keys (`TextIndex.format`); another (nil: 1) means a rebuild.
  var format: Int?
  var bm25: BM25
  /// Documents with at least one term (BM25's N), and their terms in all (for avgdl).
  var documents: Int
  var terms: Int
  /// The serving fusion version's alpha (nil: `Fusion.defaultHybrid`), kept here so that
  /// a hybrid query reads it with the rest (`DocumentCollection.trainFusion`).
  var alpha: Double?
  /// Drawn anew at every change of the postings (nil before the first since it
  /// existed): what `PostingsCache` keys on.
  var stamp: Int?
  /// The postings and term statistics this write transaction changed, not stored yet
  /// (`TextIndex.flush`); never stored itself.
  var pending = TextChanges()

  enum CodingKeys: String, CodingKey {
    case analyzer, version, format, bm25, documents, terms, alpha, stamp
  }

  static func == (a: TextIndexRecord, b: TextIndexRecord) -> Bool {
    (a.analyzer, a.version, a.format, a.bm25, a.documents, a.terms) == (
      b.analyzer, b.version, b.format, b.bm25, b.documents, b.terms
    ) && (a.alpha, a.stamp) == (b.alpha, b.stamp)
  }

  init(analyzer: Analyzer, bm25: BM25 = .defaults) {
    self.analyzer = analyzer.name
    version = analyzer.version
    format = TextIndex.format
    self.bm25 = bm25
    documents = 0
    terms = 0
  }

  /// Whether the index was made by `analyzer` in today's layout.
  func isMade(by analyzer: Analyzer) -> Bool {
    self.analyzer == analyzer.name && version == analyzer.version
      && (format ?? 1) == TextIndex.format
  }

  var averageLength: Double { documents == 0 ? 0 : Double(terms) / Double(documents) }
}

/// What one write transaction changed in the text index, per term: the documents
/// added and removed and the change of its statistics (a reference: every copy of the
/// record shares it). `TextIndex.flush` stores it, so each touched postings block and
/// term record is read and written once per transaction, however many of the
/// transaction's documents hold the term.
final class TextChanges {
  struct Term {
    /// The term's first and last change in `postings` (−1: none), linked by `next`.
    var first: Int32 = -1
    var last: Int32 = -1
    /// The change of the term's document frequency, and the largest tf added.
    var documents = 0
    var maxFrequency: UInt32 = 0
  }

  /// The transaction's documents share most of their words: each is analyzed once,
  /// and its term numbered, so the changes are kept per term id, not per string.
  private(set) lazy var vocabulary = Vocabulary(analyzer: TextIndex.analyzer)
  /// The changes per term id of `vocabulary`, and the ids changed, in order.
  private(set) var terms: [Term] = []
  private(set) var changed: [Int] = []
  /// Every term's postings added, and removals (tf 0: an indexed document never has
  /// tf 0), in the order made, in one array (not one per term: most terms of a write
  /// change in a few documents); per change, the index of its term's next one (−1: none).
  private var postings: [Posting] = []
  private var next: [Int32] = []
  /// Whether the record's stamp was drawn since the last flush: once per flush is
  /// enough (a stamp names a stored state of the postings), and drawing one costs a
  /// system call.
  var stamped = false

  func add(_ term: Int, _ posting: Posting) {
    if term >= terms.count {
      terms.append(contentsOf: repeatElement(Term(), count: term + 1 - terms.count))
    }
    let index = Int32(postings.count)
    postings.append(posting)
    next.append(-1)
    if terms[term].first < 0 {
      terms[term].first = index
      changed.append(term)
    } else {
      next[Int(terms[term].last)] = index
    }
    terms[term].last = index
    terms[term].documents += posting.frequency == 0 ? -1 : 1
    terms[term].maxFrequency = max(terms[term].maxFrequency, posting.frequency)
  }

  /// Calls `body` with each change of the term `term`, in the order made.
  func forEachPosting(of term: Int, _ body: (Posting) throws -> Void) rethrows {
    var index = terms[term].first
    while index >= 0 {
      try body(postings[Int(index)])
      index = next[Int(index)]
    }
  }

  /// Forgets the changes (stored by `flush`); the vocabulary too when it has grown
  /// large (a rebuild of a big collection meets many words).
  func removeAll() {
    for term in changed { terms[term] = Term() }
    changed.removeAll(keepingCapacity: true)
    postings.removeAll(keepingCapacity: true)
    next.removeAll(keepingCapacity: true)
    stamped = false
    if vocabulary.wordCount > 1 << 18 {
      vocabulary.removeAll()
      terms.removeAll()
    }
  }
}

/// The postings of one collection in the `text` table, keyed by `TextKey`
/// (docs/storage-format.md): per term, its statistics (df, max tf) and its postings
/// in blocks of 128 rows (`PostingsBlock`). Documents are added and removed in memory
/// (`TextChanges`) and stored by `flush` before the transaction commits. "max tf" only
/// grows (a delete leaves it): it stays an upper bound, which is all the search needs
/// of it.
struct TextIndex {
  static let analyzer = Analyzer.english
  /// The layout of the keys and values (`TextKey`, `PostingsBlock`). 2: postings in
  /// blocks of 128 rows (1: one key per posting).
  static let format = 2

  let table: Table
  let collection: UInt32
  /// The database's path, for errors.
  let path: String
  /// Decoded postings of earlier queries (nil: read every query's from LMDB).
  var cache: PostingsCache? = nil

  /// Indexes `text` as the document `row` (which must not be indexed yet).
  func add(row: UInt32, text: String, to record: inout TextIndexRecord) {
    let changes = record.pending
    let (counts, length) = changes.vocabulary.count(text)
    guard length > 0 else { return }
    for each in counts {
      changes.add(
        each.term, Posting(document: row, frequency: each.count, length: UInt32(length)))
    }
    record.documents += 1
    record.terms += length
    TextIndex.stamp(&record)
  }

  /// Removes the document `row`, indexed from `text` (checked by `flush`).
  func remove(row: UInt32, text: String, from record: inout TextIndexRecord) {
    let changes = record.pending
    let (counts, length) = changes.vocabulary.count(text)
    guard length > 0 else { return }
    for each in counts {
      changes.add(each.term, Posting(document: row, frequency: 0, length: 0))
    }
    record.documents -= 1
    record.terms -= length
    TextIndex.stamp(&record)
  }

  /// A new stamp for the postings `record.pending` changes, once per flush.
  private static func stamp(_ record: inout TextIndexRecord) {
    guard !record.pending.stamped else { return }
    record.stamp = Int.random(in: 0..<(1 << 53))
    record.pending.stamped = true
  }

  /// Stores what `record`'s writes changed: per term, one read and one write of its
  /// statistics and of each postings block holding a changed row. Must run before the
  /// transaction that changed them commits.
  ///
  /// - Throws: `VectorDBError.damaged` when a removed document's posting is missing or
  ///   a block cannot be read; storage errors.
  func flush(_ record: TextIndexRecord, in txn: WriteTransaction) throws {
    let changes = record.pending
    var run: [Posting] = []
    for id in changes.changed {
      let term = changes.vocabulary.terms[id]
      let change = changes.terms[id]
      let stats = TextKey.term(term, collection: collection)
      let (frequency, maxFrequency) = try txn.get(table, key: stats).map(TextIndex.pair) ?? (0, 0)
      let documents = Int(frequency) + change.documents
      if documents <= 0 {
        try txn.delete(table, key: stats)
      } else {
        try txn.put(
          table, key: stats,
          value: TextIndex.bytes(UInt32(documents), max(maxFrequency, change.maxFrequency)))
      }
      // Each run of changes in one block is applied at once (an import's rows come
      // in order: one run per block); a block met again later is read back as the
      // run before left it.
      run.removeAll(keepingCapacity: true)
      try changes.forEachPosting(of: id) { posting in
        if let first = run.first,
          PostingsBlock.number(of: first.document) != PostingsBlock.number(of: posting.document)
        {
          try flush(PostingsBlock.number(of: first.document), of: term, changes: run, in: txn)
          run.removeAll(keepingCapacity: true)
        }
        run.append(posting)
      }
      if let first = run.first {
        try flush(PostingsBlock.number(of: first.document), of: term, changes: run, in: txn)
      }
    }
    changes.removeAll()
  }

  /// Rewrites one postings block of `term` with `changes` (postings of the block, and
  /// removals: tf 0) applied in order.
  private func flush(
    _ block: UInt32, of term: String, changes: [Posting], in txn: WriteTransaction
  ) throws {
    let key = TextKey.block(block, of: term, collection: collection)
    var postings: [Posting] = []
    if let bytes = try txn.get(table, key: key) {
      try PostingsBlock.decode(bytes, block: block, path: path) { postings.append($0) }
    }
    var added = false
    for change in changes {
      if change.frequency > 0 {
        postings.append(change)
        added = true
      } else if let index = postings.lastIndex(where: { $0.document == change.document }) {
        postings.remove(at: index)
      } else {
        throw VectorDBError.damaged(
          path: path, detail: "the text index lacks term \"\(term)\" of row \(change.document)")
      }
    }
    if added { postings.sort { $0.document < $1.document } }
    if postings.isEmpty {
      _ = try txn.delete(table, key: key)
    } else {
      try txn.put(table, key: key, value: PostingsBlock.encode(postings, block: block))
    }
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
        let (frequency, maxFrequency) = try txn.get(
          table, key: TextKey.term(term, collection: collection)
        ).map(TextIndex.pair)
      else { continue }
      found.append((term, counts[term]!, frequency, maxFrequency))
    }
    guard !found.isEmpty else { return [] }
    let terms = try found.map { entry in
      // The stamp names this snapshot's postings (nil: an index not written since
      // stamps exist, read uncached).
      let list =
        try record.stamp.flatMap { stamp in
          try cache?.list(collection: collection, stamp: stamp, term: entry.term) {
            try postings(entry.term, in: txn)
          }
        } ?? postings(entry.term, in: txn)
      return ScoringTerm(
        cursor: ListCursor(list), count: entry.count, frequency: Int(entry.frequency),
        maxFrequency: entry.maxFrequency, documents: record.documents, bm25: record.bm25)
    }
    return try TopK.search(
      terms, k: k, bm25: record.bm25, averageLength: record.averageLength, accept: accept,
      exhaustive: exhaustive)
  }

  /// Every posting of `term`, decoded.
  private func postings(_ term: String, in txn: Transaction) throws -> PostingsList {
    var documents: [UInt32] = []
    var frequencies: [UInt32] = []
    var lengths: [UInt32] = []
    try forEachPosting(of: term, in: txn) { posting in
      documents.append(posting.document)
      frequencies.append(posting.frequency)
      lengths.append(posting.length)
    }
    return PostingsList(documents: documents, frequencies: frequencies, lengths: lengths)
  }

  /// Calls `body` with each posting of `term`, in row order.
  private func forEachPosting(
    of term: String, in txn: Transaction, _ body: (Posting) -> Void
  ) throws {
    let prefix = TextKey.blocksPrefix(of: term, collection: collection)
    try txn.forEach(in: table, from: prefix) { key, value in
      guard let block = TextKey.block(of: key, prefix: prefix) else { return false }
      try PostingsBlock.decode(value, block: block, path: path, body)
      return true
    }
  }

  /// The rows holding every term of `text` (empty when a term is in no document).
  func rows(containingAll text: String, in txn: Transaction) throws -> Set<UInt32> {
    var result: Set<UInt32>?
    for term in Set(TextIndex.analyzer.terms(text)).sorted() {
      var rows = Set<UInt32>()
      guard TextIndex.fits(term) else { return [] }
      try forEachPosting(of: term, in: txn) { rows.insert($0.document) }
      result = result.map { $0.intersection(rows) } ?? rows
      if result!.isEmpty { break }
    }
    return result ?? []
  }

  // MARK: Values

  /// Terms are at most 64 characters (the analyzer cuts words), so at most 256 bytes:
  /// always a valid key. A query term that is longer cannot be in the index.
  private static func fits(_ term: String) -> Bool { term.utf8.count <= 400 }

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
