import CKernels
import Tensor

/// The working memory of one search: a visited set and the two heaps of SEARCH-LAYER.
/// Reused from search to search, so a search allocates nothing per visited node.
///
/// One scratch serves one thread at a time: give each thread its own.
///
/// ```swift
/// let scratch = SearchScratch()
/// for query in queries { hits.append(try graph.search(query, k: 10, scratch: scratch)) }
/// ```
public final class SearchScratch {
  @usableFromInline var visited = VisitedSet()
  /// C in the paper: candidates to expand, nearest on top.
  @usableFromInline var candidates = NeighborHeap<NearestOnTop>()
  /// W in the paper: the best nodes found so far, farthest on top.
  @usableFromInline var results = NeighborHeap<FarthestOnTop>()

  /// Room for one neighbour list's unvisited nodes.
  @usableFromInline var freshNeighbors = UnsafeMutablePointer<Neighbor>.allocate(capacity: 0)
  /// Their vectors.
  @usableFromInline var freshVectors = UnsafeMutablePointer<UnsafeRawPointer>.allocate(
    capacity: 0)
  @usableFromInline var freshCapacity = 0
  /// The query rounded to bfloat16, for storages with walk vectors.
  @usableFromInline var walkQueryBuffer = UnsafeMutablePointer<UInt16>.allocate(capacity: 0)
  @usableFromInline var walkQueryCapacity = 0

  public init() {}

  deinit {
    visited.deallocate()
    candidates.deallocate()
    results.deallocate()
    freshNeighbors.deallocate()
    freshVectors.deallocate()
    walkQueryBuffer.deallocate()
  }

  /// `query` (`dimension` floats) rounded to bfloat16, valid until the next call.
  @inlinable
  func walkQuery(rounding query: UnsafeRawPointer, dimension: Int) -> UnsafeRawPointer {
    if walkQueryCapacity < dimension {
      walkQueryBuffer.deallocate()
      walkQueryBuffer = .allocate(capacity: dimension)
      walkQueryCapacity = dimension
    }
    vdb_bf16_round(query.assumingMemoryBound(to: Float.self), walkQueryBuffer, Int32(dimension))
    return UnsafeRawPointer(walkQueryBuffer)
  }

  /// A buffer for at least `capacity` neighbours, valid until the next call.
  @inlinable
  func fresh(capacity: Int) -> UnsafeMutablePointer<Neighbor> {
    if freshCapacity < capacity {
      freshNeighbors.deallocate()
      freshVectors.deallocate()
      freshNeighbors = .allocate(capacity: capacity)
      freshVectors = .allocate(capacity: capacity)
      freshCapacity = capacity
    }
    return freshNeighbors
  }

  /// Empties `results` into an array, nearest first, keeping at most `k`.
  @inlinable
  func takeResults(k: Int) -> [Neighbor] {
    var sorted = [Neighbor](repeating: Neighbor(id: 0, distance: 0), count: results.count)
    var i = results.count
    while results.count > 0 {
      i -= 1
      sorted[i] = results.pop()
    }
    if sorted.count > k { sorted.removeLast(sorted.count - k) }
    return sorted
  }
}

extension SearchScratch {
  /// Empties `results` into an array of the `k` nearest by exact distances: `distance`
  /// of each node's `vector` of `vectorBytes` (whose memory loads are started together
  /// first).
  @inlinable
  func takeResults(
    k: Int, vectorBytes: Int, vector: (UInt32) throws -> UnsafeRawPointer,
    distance: (UnsafeRawPointer) -> Float
  ) throws -> [Neighbor] {
    let count = results.count
    let found = fresh(capacity: count)
    let vectors = freshVectors
    for i in 0..<count {
      found[i] = results.pop()
      vectors[i] = try vector(found[i].id)
      Distance.prefetch(vectors[i], bytes: vectorBytes)
    }
    var sorted = [Neighbor](repeating: Neighbor(id: 0, distance: 0), count: count)
    for i in 0..<count { sorted[i] = Neighbor(id: found[i].id, distance: distance(vectors[i])) }
    sorted.sort(by: Neighbor.nearerFirst)
    if sorted.count > k { sorted.removeLast(sorted.count - k) }
    return sorted
  }
}

/// A set of node ids that empties in O(1): each id has a tag, and an id is in the set
/// when its tag equals the current epoch. Starting a new search bumps the epoch; the
/// tags are cleared only when the 16-bit epoch wraps (hnswlib's VisitedList).
@usableFromInline
struct VisitedSet {
  @usableFromInline var tags = UnsafeMutablePointer<UInt16>.allocate(capacity: 0)
  @usableFromInline var capacity = 0
  @usableFromInline var epoch: UInt16 = 0

  @usableFromInline init() {}

  /// Empties the set and makes room for ids below `bound`.
  @inlinable
  mutating func reset(bound: Int) {
    if bound > capacity { grow(to: bound) }
    epoch &+= 1
    if epoch == 0 {
      tags.update(repeating: 0, count: capacity)
      epoch = 1
    }
  }

  /// Inserts `id`; returns false if it was already there.
  @inlinable @inline(__always)
  mutating func insert(_ id: UInt32) -> Bool {
    let i = Int(id)
    if _slowPath(i >= capacity) { grow(to: i + 1) }
    if tags[i] == epoch { return false }
    tags[i] = epoch
    return true
  }

  @usableFromInline
  mutating func grow(to bound: Int) {
    let newCapacity = max(bound, capacity + capacity / 2, 1024)
    let newTags = UnsafeMutablePointer<UInt16>.allocate(capacity: newCapacity)
    newTags.update(from: tags, count: capacity)
    (newTags + capacity).initialize(repeating: 0, count: newCapacity - capacity)
    tags.deallocate()
    tags = newTags
    capacity = newCapacity
  }

  @usableFromInline
  func deallocate() { tags.deallocate() }
}

/// Which of two neighbours a heap keeps nearer its top.
@usableFromInline
protocol HeapOrder {
  static func isAbove(_ a: Neighbor, _ b: Neighbor) -> Bool
}

/// Nearest on top: the candidate queue C.
@usableFromInline
enum NearestOnTop: HeapOrder {
  @inlinable @inline(__always)
  static func isAbove(_ a: Neighbor, _ b: Neighbor) -> Bool { a.distance < b.distance }
}

/// Farthest on top: the result set W, whose top is the one to drop.
@usableFromInline
enum FarthestOnTop: HeapOrder {
  @inlinable @inline(__always)
  static func isAbove(_ a: Neighbor, _ b: Neighbor) -> Bool { a.distance > b.distance }
}

/// A binary heap of neighbours in manually managed memory (no copy-on-write checks or
/// exclusivity bookkeeping in the search loop). Owned by a ``SearchScratch``.
@usableFromInline
struct NeighborHeap<Order: HeapOrder> {
  @usableFromInline var items = UnsafeMutablePointer<Neighbor>.allocate(capacity: 64)
  @usableFromInline var capacity = 64
  @usableFromInline var count = 0

  @usableFromInline init() {}

  @inlinable @inline(__always)
  var top: Neighbor { items[0] }

  @inlinable @inline(__always)
  mutating func removeAll() { count = 0 }

  @inlinable
  mutating func push(_ element: Neighbor) {
    if _slowPath(count == capacity) { grow() }
    var i = count
    count &+= 1
    while i > 0 {
      let parent = (i &- 1) >> 1
      guard Order.isAbove(element, items[parent]) else { break }
      items[i] = items[parent]
      i = parent
    }
    items[i] = element
  }

  /// Removes and returns the top. The heap must not be empty.
  @inlinable
  mutating func pop() -> Neighbor {
    let top = items[0]
    count &-= 1
    if count > 0 {
      let last = items[count]
      var i = 0
      while true {
        var child = 2 &* i &+ 1
        if child >= count { break }
        if child &+ 1 < count && Order.isAbove(items[child &+ 1], items[child]) { child &+= 1 }
        guard Order.isAbove(items[child], last) else { break }
        items[i] = items[child]
        i = child
      }
      items[i] = last
    }
    return top
  }

  @usableFromInline
  mutating func grow() {
    let newItems = UnsafeMutablePointer<Neighbor>.allocate(capacity: capacity * 2)
    newItems.update(from: items, count: count)
    items.deallocate()
    items = newItems
    capacity *= 2
  }

  @usableFromInline
  func deallocate() { items.deallocate() }
}
