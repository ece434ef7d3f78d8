/// One term's postings in memory, in document order (decoded once, walked by many
/// queries: `ListCursor`).
public final class PostingsList: Sendable {
  public let documents: [UInt32]
  public let frequencies: [UInt32]
  public let lengths: [UInt32]

  public init(documents: [UInt32], frequencies: [UInt32], lengths: [UInt32]) {
    self.documents = documents
    self.frequencies = frequencies
    self.lengths = lengths
  }

  public var count: Int { documents.count }
}

/// A position in a decoded postings list.
public final class ListCursor: PostingsCursor {
  private let list: PostingsList
  private var index = 0

  public init(_ list: PostingsList) { self.list = list }

  public var current: Posting? {
    guard index < list.count else { return nil }
    return Posting(
      document: list.documents[index], frequency: list.frequencies[index],
      length: list.lengths[index])
  }

  public func next() { index += 1 }

  /// Gallops forward, then searches the bracket found: cheap for the short hops MaxScore
  /// makes most, logarithmic for long ones.
  public func advance(to target: UInt32) {
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
