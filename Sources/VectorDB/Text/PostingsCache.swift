import Foundation
import LMDB
import TextSearch

/// Decoded postings lists of the terms queried, per collection, valid for one state of
/// its text index: `TextIndexRecord.stamp` changes with every write to the index, and
/// the record is read in the same snapshot as the postings, so a list cached under a
/// stamp is exactly what that snapshot holds. A keyword query then walks arrays instead
/// of one LMDB key per posting (docs/search.md, "Figures").
///
/// Bounded: past `capacity` postings in all, a collection's lists are dropped.
final class PostingsCache: @unchecked Sendable {
  /// About 12 bytes a posting: at most 48 MiB.
  static let capacity = 4_000_000

  private struct Entry {
    var stamp: Int
    var lists: [String: PostingsList] = [:]
    var postings = 0
  }

  private var entries: [UInt32: Entry] = [:]
  private let lock = NSLock()

  /// The cached list of `term` in `collection` at `stamp`, or the one `load` reads (then
  /// cached).
  func list(
    collection: UInt32, stamp: Int, term: String, load: () throws -> PostingsList
  ) rethrows -> PostingsList {
    if let list = lock.withLock({ () -> PostingsList? in
      guard let entry = entries[collection], entry.stamp == stamp else { return nil }
      return entry.lists[term]
    }) {
      return list
    }
    let list = try load()
    lock.withLock {
      var entry =
        entries[collection].flatMap { $0.stamp == stamp ? $0 : nil } ?? Entry(stamp: stamp)
      if entry.postings + list.count > Self.capacity { entry = Entry(stamp: stamp) }
      if entry.lists.updateValue(list, forKey: term) == nil { entry.postings += list.count }
      entries[collection] = entry
    }
    return list
  }
}

/// Collection records decoded from their stored bytes, by name: a record is decoded
/// again only when its bytes differ from the last ones seen (any write, any database).
final class DecodedRecords: @unchecked Sendable {
  private var records: [String: (bytes: [UInt8], record: CollectionRecord)] = [:]
  private let lock = NSLock()

  func record(
    _ name: String, bytes: UnsafeRawBufferPointer, decode: () throws -> CollectionRecord
  ) rethrows -> CollectionRecord {
    if let known = lock.withLock({ records[name] }), known.bytes.count == bytes.count,
      known.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 })
    {
      return known.record
    }
    let record = try decode()
    lock.withLock {
      if records.count >= 256 { records.removeAll() }
      records[name] = (Array(bytes), record)
    }
    return record
  }
}
