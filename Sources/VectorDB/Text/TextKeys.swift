import Foundation
import LMDB
import TextSearch

/// A key of the `text` table (docs/storage-format.md, "The text index"):
///
///     collection id (UInt32 BE) ++ kind (UInt8) ++ term (UInt16 BE length ++ UTF-8)
///         [++ block (UInt32 BE), for `.block` only]
///
/// WARNING: these bytes are the stored format. Changing a field's width, order or
/// meaning, a kind's byte, or `PostingsBlock.rows` breaks every existing index: bump
/// `TextIndex.format` with the change, so that old indexes are rebuilt, not misread.
struct TextKey: LMDBKey, Equatable {
  enum Kind: UInt8 {
    /// → df (UInt32 LE) ++ max tf (UInt32 LE): the term's statistics.
    case term = 0x01
    // 0x02 held one key per posting (format 1); never written since.
    /// → a `PostingsBlock`.
    case block = 0x03
  }

  /// The collection (first, so that a collection's index is one key range).
  var collection: UInt32
  var kind: Kind
  /// The analyzed term; its length prefix keeps a term's keys apart from a longer
  /// term's that starts with the same bytes.
  var term: String
  /// The block number (`.block` only): row id / `PostingsBlock.rows`, so a term's
  /// blocks are in row order.
  var block: UInt32?

  static func term(_ term: String, collection: UInt32) -> TextKey {
    TextKey(collection: collection, kind: .term, term: term, block: nil)
  }

  static func block(_ block: UInt32, of term: String, collection: UInt32) -> TextKey {
    TextKey(collection: collection, kind: .block, term: term, block: block)
  }

  /// The bytes every block key of `term` starts with.
  static func blocksPrefix(of term: String, collection: UInt32) -> [UInt8] {
    KeyBuilder().uint32(collection).uint8(Kind.block.rawValue).lengthPrefixed(term).bytes
  }

  var bytes: [UInt8] { withKeyBytes { Array($0) } }

  /// The key's bytes, written into a buffer on the stack: a write transaction makes
  /// two keys for each term it changed, and arrays built field by field cost more
  /// than the LMDB calls.
  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var term = term
    return try term.withUTF8 { utf8 in
      let count = 7 + utf8.count + (block == nil ? 0 : 4)
      return try withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { key in
        key.storeBytes(of: collection.bigEndian, toByteOffset: 0, as: UInt32.self)
        key[4] = kind.rawValue
        key[5] = UInt8(truncatingIfNeeded: utf8.count >> 8)
        key[6] = UInt8(truncatingIfNeeded: utf8.count)
        UnsafeMutableRawBufferPointer(rebasing: key[7..<(7 + utf8.count)])
          .copyMemory(from: UnsafeRawBufferPointer(utf8))
        if let block {
          key.storeBytes(of: block.bigEndian, toByteOffset: 7 + utf8.count, as: UInt32.self)
        }
        return try body(UnsafeRawBufferPointer(key))
      }
    }
  }

  /// The block number of a key that is `prefix` (from `blocksPrefix`) plus a block
  /// number; nil for any other key (another term, collection or kind).
  static func block(of key: UnsafeRawBufferPointer, prefix: [UInt8]) -> UInt32? {
    guard key.count == prefix.count + 4,
      prefix.withUnsafeBytes({ memcmp($0.baseAddress!, key.baseAddress!, prefix.count) == 0 })
    else { return nil }
    return UInt32(bigEndian: key.loadUnaligned(fromByteOffset: prefix.count, as: UInt32.self))
  }
}

/// The postings of one term for the rows `block · rows ..< (block + 1) · rows`: the
/// value of a `.block` key. Per document holding the term, in row order:
///
///     row − block · rows (UInt8) ++ tf (LEB128) ++ document length in terms (LEB128)
///
/// Blocks by row range, not by count, so that the layout depends only on the postings
/// (an index after any writes is byte for byte one built fresh), and a document's
/// write finds its block by key, without a search. A write transaction reads and
/// writes each touched block once (`TextIndex.flush`): an import of consecutive rows
/// writes about one block per term per 128 documents instead of one key per posting.
/// 128 rows keep a block under 1.2 KB (tf and length below 2^21), inside an LMDB page.
enum PostingsBlock {
  /// WARNING: part of the stored format (see `TextKey`).
  static let rows: UInt32 = 128

  static func number(of row: UInt32) -> UInt32 { row / rows }

  /// The block's bytes for `postings`, which must be sorted by row and all in `block`.
  static func encode(_ postings: [Posting], block: UInt32) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(postings.count * 4)
    for posting in postings {
      bytes.append(UInt8(posting.document - block * rows))
      append(posting.frequency, to: &bytes)
      append(posting.length, to: &bytes)
    }
    return bytes
  }

  /// Calls `body` with each posting of the block `block` stored as `bytes`, in row order.
  ///
  /// - Throws: `VectorDBError.damaged` when the bytes are not a block.
  static func decode(
    _ bytes: UnsafeRawBufferPointer, block: UInt32, path: String, _ body: (Posting) -> Void
  ) throws {
    let base = block &* rows
    var offset = 0
    func varint() throws -> UInt32 {
      var value: UInt32 = 0
      var shift: UInt32 = 0
      while offset < bytes.count, shift < 32 {
        let byte = bytes[offset]
        offset += 1
        value |= UInt32(byte & 0x7F) << shift
        if byte < 0x80 { return value }
        shift += 7
      }
      throw VectorDBError.damaged(path: path, detail: "a text index block ends inside a number")
    }
    while offset < bytes.count {
      let row = UInt32(bytes[offset])
      offset += 1
      guard row < rows else {
        throw VectorDBError.damaged(path: path, detail: "a text index block has row offset \(row)")
      }
      let frequency = try varint()
      body(Posting(document: base + row, frequency: frequency, length: try varint()))
    }
  }

  private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    bytes.append(UInt8(value))
  }
}
