import Foundation
import LMDB
import TextSearch

/// One term's postings decoded from the text table, in row order.
final class PostingsList: Sendable {
  let documents: [UInt32]
  let frequencies: [UInt32]
  let lengths: [UInt32]

  init(documents: [UInt32], frequencies: [UInt32], lengths: [UInt32]) {
    self.documents = documents
    self.frequencies = frequencies
    self.lengths = lengths
  }

  var count: Int { documents.count }
}

/// Decoded postings lists of the terms queried, per collection, valid for one state of
/// its text index: `TextIndexRecord.stamp` changes with every write to the index, and
/// the record is read in the same snapshot as the postings, so a list cached under a
/// stamp is exactly what that snapshot holds. A keyword query then walks arrays instead
/// of one LMDB key per posting (docs/search.md, "Query speed").
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

/// A position in a decoded postings list.
final class ListCursor: PostingsCursor {
  private let list: PostingsList
  private var index = 0

  init(_ list: PostingsList) { self.list = list }

  var current: Posting? {
    guard index < list.count else { return nil }
    return Posting(
      document: list.documents[index], frequency: list.frequencies[index],
      length: list.lengths[index])
  }

  func next() { index += 1 }

  /// Gallops forward, then searches the bracket found: cheap for the short hops MaxScore
  /// makes most, logarithmic for long ones.
  func advance(to target: UInt32) {
    let documents = list.documents
    guard index < documents.count, documents[index] < target else { return }
    var low = index
    var step = 1
    var high = index + 1
    while high < documents.count, documents[high] < target {
      low = high
      step *= 2
      high = index + step
    }
    high = min(high, documents.count)
    // documents[low] < target; the answer is in (low, high].
    var first = low + 1
    var last = high
    while first < last {
      let middle = (first + last) / 2
      if documents[middle] < target { first = middle + 1 } else { last = middle }
    }
    index = first
  }
}
