import Foundation
import LMDB
import Tensor
import TextSearch

/// `verify`'s check of the indexes derived from a collection's documents: the metadata
/// index (`metaindex`) and the text index (`text`). Both are compared with what the
/// documents say they must hold, row by row, as fingerprints: per row, the number of
/// entries and the wrapping sum of their hashes. A sum does not depend on the order
/// entries are met in, so the documents (in id order) and the index (in key order) are
/// each read once, in memory proportional to the rows, not to the entries.
struct RowFingerprints {
  struct Fingerprint: Equatable {
    var entries = 0
    var sum: UInt64 = 0
  }
  private(set) var rows: [UInt32: Fingerprint] = [:]

  mutating func add(row: UInt32, _ hash: UInt64) {
    rows[row, default: Fingerprint()].entries += 1
    rows[row, default: Fingerprint()].sum &+= hash
  }

  /// The rows whose fingerprints differ, in order (a row absent from one side differs
  /// when the other has entries for it).
  func differences(from other: RowFingerprints) -> [UInt32] {
    Set(rows.keys).union(other.rows.keys).filter { rows[$0] != other.rows[$0] }.sorted()
  }

  static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var hash = FNV1a()
    hash.mix(bytes: bytes)
    return hash.value
  }
}

extension Database {
  /// Every document's metadata index keys and text index postings are there, and nothing
  /// else is; each term's document frequency counts its postings and its max tf bounds
  /// them; the text index record's totals are the documents'.
  func checkSearchIndexes(of record: CollectionRecord, problem: (String) -> Void) throws {
    let schema = self.schema
    let path = self.path
    // A stale text index (never built, or by another analyzer) is rebuilt at its next use.
    let text = record.textIndexIsStale || !record.hasText ? nil : record.text
    let vocabulary = Vocabulary(analyzer: TextIndex.analyzer)
    try storage {
      try environment.read { txn in
        let keys = KeyRange.collection(record.id)
        var rows = Set<UInt32>()
        var metadata = RowFingerprints()
        var postings = RowFingerprints()
        var (documents, terms) = (0, 0)
        try txn.forEach(in: schema.docs, under: keys) { _, value in
          // An unreadable record is reported by `checkDocuments`.
          guard let document = try? DocumentRecord(bytes: value, path: path),
            let fields = try? document.metadata()
          else { return true }
          rows.insert(document.row)
          for (field, value) in MetadataIndex.leaves(fields) {
            guard let encoded = MetadataIndex.encode(value, at: field) else { continue }
            MetadataIndexKey(
              collection: record.id, field: field, value: encoded.bytes, row: document.row
            )
            .withKeyBytes { metadata.add(row: document.row, RowFingerprints.hash($0)) }
          }
          guard text != nil else { return true }
          // Term ids are only used within one text: bound the memory as the indexer does.
          if vocabulary.wordCount > 1 << 18 { vocabulary.removeAll() }
          let (counts, length) = vocabulary.count(document.text)
          guard length > 0 else { return true }
          documents += 1
          terms += length
          for each in counts {
            postings.add(
              row: document.row,
              Self.postingHash(
                term: vocabulary.terms[each.term], frequency: each.count, length: UInt32(length)))
          }
          return true
        }
        let name = record.name

        var indexed = RowFingerprints()
        try txn.forEach(in: schema.metadataIndex, under: keys) { key, value in
          guard key.count >= 4 + 2 + 4 else {
            problem("collection \"\(name)\": a metadata index key is \(key.count) bytes")
            return true
          }
          if !value.isEmpty {
            problem("collection \"\(name)\": a metadata index entry holds \(value.count) bytes")
          }
          let row = UInt32(
            bigEndian: key.loadUnaligned(fromByteOffset: key.count - 4, as: UInt32.self))
          indexed.add(row: row, RowFingerprints.hash(key))
          return true
        }
        for row in indexed.differences(from: metadata).prefix(20) {
          problem(
            "collection \"\(name)\": the metadata index disagrees with the metadata of row \(row)"
              + (rows.contains(row) ? "" : " (no document has it)"))
        }

        guard let text else { return }
        if text.documents != documents || text.terms != terms {
          problem(
            "collection \"\(name)\": the text index counts \(text.documents) documents of"
              + " \(text.terms) terms; the documents make \(documents) of \(terms)")
        }
        var stored = RowFingerprints()
        // Per term: its statistics (df, max tf), and what its blocks hold (postings, max tf).
        var statistics: [String: (df: UInt32, maxFrequency: UInt32)] = [:]
        var blocks: [String: (postings: UInt32, maxFrequency: UInt32)] = [:]
        try txn.forEach(in: schema.text, under: keys) { key, value in
          guard let (kind, term, block) = Self.textKey(key) else {
            problem("collection \"\(name)\": a text index key of \(key.count) bytes is not one")
            return true
          }
          switch kind {
          case .term:
            guard value.count == 8 else {
              problem(
                "collection \"\(name)\": term \"\(term)\" has \(value.count) bytes of statistics")
              return true
            }
            statistics[term] = TextIndex.pair(value)
          case .block:
            var seen = (postings: UInt32(0), maxFrequency: UInt32(0))
            do {
              try PostingsBlock.decode(value, block: block, path: path) { posting in
                seen.postings += 1
                seen.maxFrequency = max(seen.maxFrequency, posting.frequency)
                stored.add(
                  row: posting.document,
                  Self.postingHash(term: term, frequency: posting.frequency, length: posting.length)
                )
              }
            } catch {
              problem("collection \"\(name)\": block \(block) of term \"\(term)\" is unreadable")
            }
            if seen.postings == 0 {
              problem("collection \"\(name)\": block \(block) of term \"\(term)\" is empty")
            }
            let before = blocks[term] ?? (0, 0)
            blocks[term] = (
              before.postings + seen.postings, max(before.maxFrequency, seen.maxFrequency)
            )
          }
          return true
        }
        let disagreeing = Set(statistics.keys).union(blocks.keys).filter {
          let (df, maxFrequency) = statistics[$0] ?? (0, 0)
          let held = blocks[$0] ?? (0, 0)
          return df != held.postings || maxFrequency < held.maxFrequency
        }
        for term in disagreeing.sorted().prefix(20) {
          let held = blocks[term] ?? (0, 0)
          guard let (df, maxFrequency) = statistics[term] else {
            problem(
              "collection \"\(name)\": term \"\(term)\" has postings (\(held.postings)) but no"
                + " statistics")
            continue
          }
          problem(
            "collection \"\(name)\": term \"\(term)\" counts \(df) documents (max tf"
              + " \(maxFrequency)); its postings hold \(held.postings) (max tf \(held.maxFrequency))"
          )
        }
        for row in stored.differences(from: postings).prefix(20) {
          problem(
            "collection \"\(name)\": the text index disagrees with the text of row \(row)"
              + (rows.contains(row) ? "" : " (no document has it)"))
        }
      }
    }
  }

  /// A posting's hash: its term, tf and document length.
  private static func postingHash(term: String, frequency: UInt32, length: UInt32) -> UInt64 {
    var hash = FNV1a()
    hash.mix(bytes: term.utf8)
    hash.mix(byte: 0)
    withUnsafeBytes(of: (frequency.littleEndian, length.littleEndian)) { hash.mix(bytes: $0) }
    return hash.value
  }

  /// The kind, term and block number (0 for a term's statistics) of a `text` key (see
  /// `TextKey`), or nil.
  private static func textKey(_ key: UnsafeRawBufferPointer) -> (TextKey.Kind, String, UInt32)? {
    guard key.count >= 7, let kind = TextKey.Kind(rawValue: key[4]) else { return nil }
    let length = Int(key[5]) << 8 | Int(key[6])
    let blockBytes = kind == .block ? 4 : 0
    guard key.count == 7 + length + blockBytes,
      let term = String(validating: key[7..<(7 + length)], as: UTF8.self)
    else { return nil }
    let block =
      kind == .block
      ? UInt32(bigEndian: key.loadUnaligned(fromByteOffset: 7 + length, as: UInt32.self)) : 0
    return (kind, term, block)
  }
}
