/// One entry of a term's postings list: a document holding the term, how often, and
/// the document's length in terms.
public struct Posting: Equatable, Sendable {
  public var document: UInt32
  public var frequency: UInt32
  public var length: UInt32

  public init(document: UInt32, frequency: UInt32, length: UInt32) {
    self.document = document
    self.frequency = frequency
    self.length = length
  }
}

/// A position in one term's postings, in increasing document order. The storage
/// behind it is the caller's (an LMDB cursor, an array); the search knows only this.
public protocol PostingsCursor: AnyObject {
  /// The posting the cursor stands on; nil past the end.
  var current: Posting? { get }
  /// Moves to the next posting.
  func next() throws
  /// Moves forward to the first posting whose document is ≥ `target` (stays if it
  /// already is).
  func advance(to target: UInt32) throws
}

/// A query term ready to score: its postings, query weight times idf, and the
/// largest score any one document can get from it.
public struct ScoringTerm {
  public var cursor: any PostingsCursor
  public var weight: Double
  public var bound: Double

  /// - Parameters:
  ///   - count: how often the term occurs in the query.
  ///   - frequency: the number of documents holding the term (df).
  ///   - maxFrequency: at least the term's largest count in any one document.
  public init(
    cursor: any PostingsCursor, count: Int, frequency: Int, maxFrequency: UInt32, documents: Int,
    bm25: BM25
  ) {
    self.cursor = cursor
    weight = Double(count) * bm25.idf(documents: documents, frequency: frequency)
    bound = weight * bm25.termScoreBound(maxFrequency: maxFrequency)
  }
}

/// A document and its score.
public struct ScoredDocument: Equatable, Sendable {
  public var document: UInt32
  public var score: Double

  public init(document: UInt32, score: Double) {
    self.document = document
    self.score = score
  }

  /// Ranking order: higher score first, then lower document number (a total order,
  /// so the top k is one well-defined set).
  func ranks(before other: ScoredDocument) -> Bool {
    score != other.score ? score > other.score : document < other.document
  }
}

/// Document-at-a-time BM25 top-k with MaxScore (Turtle and Flood, 1995).
///
/// Terms are ordered by their score bound. The cheapest terms whose bounds together
/// cannot lift a document into the current top k are *non-essential*: their postings
/// are never walked, only probed (`advance(to:)`) for documents an essential term
/// found, and the probing stops as soon as the remaining bounds cannot reach the
/// k-th score. The result is exactly the exhaustive top k: every document's score is
/// summed in the same (query) order, and pruning is strict (a document that could tie
/// the k-th is scored in full).
public enum TopK {
  /// The `k` best documents for `terms`, best first.
  ///
  /// - Parameters:
  ///   - accept: nil, or which documents may be returned (a filter).
  ///   - exhaustive: score every posting (no pruning): the reference MaxScore must match.
  /// - Throws: what the cursors throw.
  public static func search(
    _ terms: [ScoringTerm], k: Int, bm25: BM25, averageLength: Double,
    accept: ((UInt32) throws -> Bool)? = nil, exhaustive: Bool = false
  ) throws -> [ScoredDocument] {
    guard k > 0, !terms.isEmpty else { return [] }
    // In-memory lists get a loop specialised to them (direct calls, no reference
    // counting per posting); other cursors go through the protocol.
    if let lists = terms.map(\.cursor) as? [ListCursor] {
      return try run(
        terms, cursors: lists, k: k, bm25: bm25, averageLength: averageLength, accept: accept,
        exhaustive: exhaustive)
    }
    return try run(
      terms, cursors: terms.map { AnyCursor($0.cursor) }, k: k, bm25: bm25,
      averageLength: averageLength, accept: accept, exhaustive: exhaustive)
  }

  private static func run<Cursor: PostingsCursor>(
    _ terms: [ScoringTerm], cursors: [Cursor], k: Int, bm25: BM25, averageLength: Double,
    accept: ((UInt32) throws -> Bool)?, exhaustive: Bool
  ) throws -> [ScoredDocument] {
    // Cheapest bound first; `order[i]` is the query position of the i-th cheapest.
    let order = terms.indices.sorted { (terms[$0].bound, $0) < (terms[$1].bound, $1) }
    var prefix: [Double] = []  // prefix[i]: sum of the bounds of order[0...i]
    for index in order { prefix.append((prefix.last ?? 0) + terms[index].bound) }
    var best = Heap(capacity: k)
    var threshold = -Double.infinity
    var essentialFrom = 0  // order[..<essentialFrom] are non-essential
    var contributions = [Double](repeating: 0, count: terms.count)

    // Each cursor's posting, copied out after every move: the loops below read these
    // plain arrays instead of calling through the protocol (which costs reference
    // counting on every read). `done` marks a cursor past its end.
    let weights = terms.map(\.weight)
    var documents = [UInt32](repeating: 0, count: terms.count)
    var done = [Bool](repeating: false, count: terms.count)
    var frequencies = [UInt32](repeating: 0, count: terms.count)
    var lengths = [UInt32](repeating: 0, count: terms.count)
    func load(_ position: Int) {
      if let posting = cursors[position].current {
        documents[position] = posting.document
        frequencies[position] = posting.frequency
        lengths[position] = posting.length
      } else {
        done[position] = true
      }
    }
    for position in terms.indices { load(position) }

    while true {
      var candidate = UInt32.max
      var found = false
      for position in order[essentialFrom...] where !done[position] {
        if documents[position] <= candidate {
          candidate = documents[position]
          found = true
        }
      }
      guard found else { break }

      for position in terms.indices { contributions[position] = 0 }
      var partial = 0.0
      /// Scores the term at `position` if its cursor stands on the candidate.
      func score(_ position: Int) -> Bool {
        guard !done[position], documents[position] == candidate else { return false }
        let score =
          weights[position]
          * bm25.termScore(
            frequency: frequencies[position], length: lengths[position],
            averageLength: averageLength)
        contributions[position] = score
        partial += score
        return true
      }
      for position in order[essentialFrom...] where score(position) {
        try cursors[position].next()
        load(position)
      }
      if let accept, try !accept(candidate) { continue }

      var pruned = false
      for rank in stride(from: essentialFrom - 1, through: 0, by: -1) {
        if partial + prefix[rank] + slack(threshold) < threshold {
          pruned = true
          break
        }
        let position = order[rank]
        if !done[position], documents[position] < candidate {
          try cursors[position].advance(to: candidate)
          load(position)
        }
        _ = score(position)
      }
      if pruned { continue }

      // The same summation order for every document, whichever terms were essential.
      let total = contributions.reduce(0, +)
      guard best.offer(ScoredDocument(document: candidate, score: total)), best.isFull else {
        continue
      }
      threshold = best.worst!.score
      if !exhaustive {
        while essentialFrom < order.count,
          prefix[essentialFrom] + slack(threshold) < threshold
        {
          essentialFrom += 1
        }
      }
    }
    return best.sorted()
  }

  /// Room for rounding: sums of the same numbers in different orders differ in the
  /// last bits, and pruning must never drop a document that ties the k-th.
  private static func slack(_ threshold: Double) -> Double {
    threshold.isFinite ? 1e-9 * max(1, abs(threshold)) : 0
  }
}

/// Any cursor, as one concrete type for `TopK.run`.
private final class AnyCursor: PostingsCursor {
  let base: any PostingsCursor
  init(_ base: any PostingsCursor) { self.base = base }
  var current: Posting? { base.current }
  func next() throws { try base.next() }
  func advance(to target: UInt32) throws { try base.advance(to: target) }
}

/// The k best documents seen so far: a binary heap with the worst on top.
struct Heap {
  private var items: [ScoredDocument] = []
  let capacity: Int

  init(capacity: Int) { self.capacity = capacity }

  var isFull: Bool { items.count == capacity }
  var worst: ScoredDocument? { items.first }

  /// Adds `item` if it belongs in the top `capacity`; returns whether it was added.
  mutating func offer(_ item: ScoredDocument) -> Bool {
    if items.count < capacity {
      items.append(item)
      siftUp(items.count - 1)
      return true
    }
    guard item.ranks(before: items[0]) else { return false }
    items[0] = item
    siftDown(0)
    return true
  }

  func sorted() -> [ScoredDocument] { items.sorted { $0.ranks(before: $1) } }

  private mutating func siftUp(_ start: Int) {
    var child = start
    while child > 0 {
      let parent = (child - 1) / 2
      guard items[parent].ranks(before: items[child]) else { return }
      items.swapAt(parent, child)
      child = parent
    }
  }

  private mutating func siftDown(_ start: Int) {
    var parent = start
    while true {
      var worst = parent
      for child in [2 * parent + 1, 2 * parent + 2]
      where child < items.count && items[worst].ranks(before: items[child]) {
        worst = child
      }
      if worst == parent { return }
      items.swapAt(parent, worst)
      parent = worst
    }
  }
}
