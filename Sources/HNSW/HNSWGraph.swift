import Tensor

/// A Hierarchical Navigable Small World graph (Malkov & Yashunin, "Efficient and robust
/// approximate nearest neighbor search using Hierarchical Navigable Small World graphs",
/// 2018) over any ``HNSWStorage``.
///
/// Each node lives on layers `0...level`, with the level drawn so that a node reaches
/// layer `l` with probability M⁻ˡ. A search walks greedily down the sparse upper layers
/// to a good starting node, then runs a best-first search of width `ef` on layer 0.
/// The functions are named after the paper's algorithms: ``searchLayer(_:from:ef:level:scratch:accept:)``
/// (SEARCH-LAYER), ``selectNeighbors(_:count:)`` (SELECT-NEIGHBORS-HEURISTIC),
/// ``insert(ids:vectors:threads:)`` (INSERT) and ``search(_:k:ef:scratch:filter:)``
/// (K-NN-SEARCH).
///
/// ```swift
/// var graph = HNSWGraph(
///   storage: MemoryStorage(dimension: 3, parameters: HNSWParameters()), metric: .l2)
/// try graph.insert(ids: [0, 1, 2], vectors: [0, 0, 0, 1, 0, 0, 0, 5, 0])
/// let hits = try graph.search([0.9, 0, 0], k: 2, scratch: SearchScratch())
/// // [1@0.01, 0@0.81]
/// ```
///
/// The graph is a value holding its storage; copying it copies the storage value (a
/// reference for ``MemoryStorage``). Searches only read, so several threads may search
/// one graph at once, each with its own ``SearchScratch``.
public struct HNSWGraph<Storage: HNSWStorage> {
  /// Where the nodes are kept.
  public var storage: Storage
  /// How distances are measured.
  public let metric: Metric
  /// M, Mmax0, efConstruction and the level seed.
  public let parameters: HNSWParameters

  /// A graph over `storage`, which may already hold nodes inserted with the same metric
  /// and parameters.
  @inlinable
  public init(storage: Storage, metric: Metric, parameters: HNSWParameters = HNSWParameters()) {
    self.storage = storage
    self.metric = metric
    self.parameters = parameters
  }

  /// The number of components of every vector.
  @inlinable
  public var dimension: Int { storage.dimension }

  /// Checks a vector (length, finite components) and returns it as the index stores
  /// it: normalised to unit length for ``Metric/cosine``, unchanged otherwise.
  ///
  /// - Throws: ``HNSWError/dimensionMismatch(expected:got:)``,
  ///   ``HNSWError/nonFiniteComponent(index:)``, ``HNSWError/zeroVector`` (cosine), or
  ///   ``HNSWError/normTooLarge(_:)`` (dot and l2).
  public func prepare(_ vector: [Float]) throws -> [Float] {
    guard vector.count == dimension else {
      throw HNSWError.dimensionMismatch(expected: dimension, got: vector.count)
    }
    if let bad = vector.firstIndex(where: { !$0.isFinite }) {
      throw HNSWError.nonFiniteComponent(index: bad)
    }
    guard metric == .cosine else {
      let norm = Metric.length(of: vector)
      guard norm <= Metric.maxNorm else { throw HNSWError.normTooLarge(norm) }
      return vector
    }
    var unit = vector
    let length = Distance.normalize(&unit)
    // Float's squares overflow above ~1.8e19 and underflow below ~1e-19: there the
    // direction is found in Double.
    if length.isFinite && length > 1e-18 { return unit }
    let norm = Metric.length(of: vector)
    guard norm > 0 else { throw HNSWError.zeroVector }
    return vector.map { Float(Double($0) / norm) }
  }

  // MARK: K-NN-SEARCH

  /// The `k` nearest live nodes to `query` (K-NN-SEARCH), nearest first.
  ///
  /// - Parameters:
  ///   - ef: the width of the layer-0 search (at least `k` is used). Larger finds more
  ///     of the true neighbours and takes longer; see docs/index.md for a table.
  ///   - scratch: working memory, reused between searches; one per thread.
  ///   - filter: when given, only nodes for which it returns true are returned. Other
  ///     nodes are still walked through, so the graph stays connected. When few nodes
  ///     pass, ``exactSearch(_:k:candidates:)`` over them is faster and exact.
  /// - Throws: an ``HNSWError`` for a bad query vector, or the storage's error.
  @inlinable
  public func search(
    _ query: [Float], k: Int, ef: Int = 64, scratch: SearchScratch,
    filter: ((UInt32) -> Bool)? = nil
  ) throws -> [Neighbor] {
    let query = try prepare(query)
    return try query.withUnsafeBytes {
      try search(prepared: $0.baseAddress!, k: k, ef: ef, scratch: scratch, filter: filter)
    }
  }

  /// ``search(_:k:ef:scratch:filter:)`` for a query already passed through
  /// ``prepare(_:)``: `dimension` floats at `query`, at any alignment.
  @inlinable
  public func search(
    prepared query: UnsafeRawPointer, k: Int, ef: Int = 64, scratch: SearchScratch,
    filter: ((UInt32) -> Bool)? = nil
  ) throws -> [Neighbor] {
    guard k > 0, let entry = try storage.entryPoint else { return [] }
    // With bfloat16 copies, walk with them and a bfloat16 query, then rescore the ef
    // nodes found in float32: the walk brings in half the bytes, the order is exact.
    let walk = storage.hasWalkVectors
    let walkQuery = walk ? scratch.walkQuery(rounding: query, dimension: dimension) : query
    var nearest = Neighbor(
      id: entry.node, distance: try distance(walkQuery, entry.node, walk: walk))
    for level in stride(from: entry.level, to: 0, by: -1) {
      nearest = try greedyClosest(to: walkQuery, from: nearest, level: level, walk: walk)
    }
    let ef = max(ef, k)
    let storage = self.storage
    if let filter {
      try searchLayer(walkQuery, from: nearest, ef: ef, level: 0, scratch: scratch, walk: walk) {
        id in try filter(id) && !storage.isDeleted(id)
      }
    } else if try storage.deletedCount == 0 {
      try searchLayer(walkQuery, from: nearest, ef: ef, level: 0, scratch: scratch, walk: walk) {
        _ in true
      }
    } else {
      try searchLayer(walkQuery, from: nearest, ef: ef, level: 0, scratch: scratch, walk: walk) {
        id in try !storage.isDeleted(id)
      }
    }
    guard walk else { return scratch.takeResults(k: k) }
    return try scratch.takeResults(k: k, vectorBytes: storage.dimension &* 4) {
      try storage.vector(of: $0)
    } distance: {
      distance(query, $0)
    }
  }

  // MARK: Exact search

  /// The `k` nearest live nodes among `candidates`, by computing every distance.
  /// Ids that are not stored, or deleted, are skipped.
  ///
  /// Use it for selective filters (when the filter passes few nodes, scanning them is
  /// both faster than the graph walk and exact) and for ground truth.
  @inlinable
  public func exactSearch(
    _ query: [Float], k: Int, candidates: some Sequence<UInt32>
  ) throws -> [Neighbor] {
    let query = try prepare(query)
    guard k > 0 else { return [] }
    var best = NeighborHeap<FarthestOnTop>()
    defer { best.deallocate() }
    try query.withUnsafeBytes { query in
      let query = query.baseAddress!
      for id in candidates {
        guard try storage.level(of: id) != nil, try !storage.isDeleted(id) else { continue }
        let neighbor = Neighbor(id: id, distance: try distance(query, id))
        if best.count < k {
          best.push(neighbor)
        } else if Neighbor.nearerFirst(neighbor, best.top) {
          _ = best.pop()
          best.push(neighbor)
        }
      }
    }
    var sorted: [Neighbor] = []
    while best.count > 0 { sorted.append(best.pop()) }
    return sorted.reversed()
  }

  /// The `k` nearest of all live nodes that pass `filter`, by computing every distance.
  @inlinable
  public func exactSearch(
    _ query: [Float], k: Int, filter: ((UInt32) -> Bool)? = nil
  ) throws -> [Neighbor] {
    var ids: [UInt32] = []
    try storage.forEachNode { id in
      if filter?(id) ?? true { ids.append(id) }
    }
    return try exactSearch(query, k: k, candidates: ids)
  }

  // MARK: SEARCH-LAYER

  /// SEARCH-LAYER (Algorithm 2): a best-first search on one layer from `entry`, keeping
  /// the `ef` nearest nodes that `accept` lets through in `scratch.results`.
  ///
  /// C (`candidates`) holds the nodes still to expand, nearest first; W (`results`)
  /// the best accepted nodes so far, farthest first. The search stops when the nearest
  /// unexpanded candidate is farther than the farthest of `ef` results. Rejected nodes
  /// are expanded like any other, so a filter or tombstones never cut the graph.
  @inlinable
  func searchLayer(
    _ query: UnsafeRawPointer, from entry: Neighbor, ef: Int, level: Int,
    scratch: SearchScratch, walk: Bool = false, accept: (UInt32) throws -> Bool
  ) throws {
    // Work on local copies: stored properties of a class would pay a dynamic
    // exclusivity check on every access.
    var visited = scratch.visited
    var candidates = scratch.candidates
    var results = scratch.results
    defer {
      scratch.visited = visited
      scratch.candidates = candidates
      scratch.results = results
    }
    visited.reset(bound: storage.nodeIDBound)
    candidates.removeAll()
    results.removeAll()

    let vectorBytes = storage.dimension &* (walk ? 2 : 4)
    _ = visited.insert(entry.id)
    candidates.push(entry)
    if try accept(entry.id) { results.push(entry) }
    while candidates.count > 0 {
      let current = candidates.pop()
      if results.count >= ef && current.distance > results.top.distance { break }
      // Three passes over the neighbours: find the unvisited ones and start loading
      // their vectors (prefetch), compute their distances, then update the heaps.
      // The loads of a whole list overlap, instead of one cache miss per distance.
      let neighbors = try storage.neighbors(of: current.id, level: level)
      let fresh = scratch.fresh(capacity: neighbors.count)
      let vectors = scratch.freshVectors
      var count = 0
      for i in 0..<neighbors.count {
        let id = neighbors[i]
        if visited.insert(id) {
          // All of the vector's cache lines (12 or 13 for a 384-d bfloat16 copy), so that
          // the loads of the whole list overlap.
          let vector = try walk ? storage.walkVector(of: id) : storage.vector(of: id)
          Distance.prefetch(vector, bytes: vectorBytes)
          fresh[count] = Neighbor(id: id, distance: 0)
          vectors[count] = vector
          count &+= 1
        }
      }
      if walk {
        for j in 0..<count { fresh[j].distance = walkDistance(query, vectors[j]) }
      } else {
        for j in 0..<count { fresh[j].distance = distance(query, vectors[j]) }
      }
      for j in 0..<count {
        let neighbor = fresh[j]
        if results.count < ef || neighbor.distance < results.top.distance {
          candidates.push(neighbor)
          if try accept(neighbor.id) {
            results.push(neighbor)
            if results.count > ef { _ = results.pop() }
          }
        }
      }
    }
  }

  /// SEARCH-LAYER with ef = 1, as hnswlib does it on the upper layers: move to the
  /// nearest neighbour while it is nearer than the current node.
  @inlinable
  func greedyClosest(
    to query: UnsafeRawPointer, from start: Neighbor, level: Int, walk: Bool = false
  ) throws -> Neighbor {
    var best = start
    var moved = true
    while moved {
      moved = false
      let neighbors = try storage.neighbors(of: best.id, level: level)
      for i in 0..<neighbors.count {
        let id = neighbors[i]
        let d = try distance(query, id, walk: walk)
        if d < best.distance {
          best = Neighbor(id: id, distance: d)
          moved = true
        }
      }
    }
    return best
  }

  // MARK: SELECT-NEIGHBORS-HEURISTIC

  /// SELECT-NEIGHBORS-HEURISTIC (Algorithm 4, as in hnswlib: no candidate extension, no
  /// kept pruned connections). Walks `candidates` (distances to the base node, sorted
  /// nearest first) and keeps a candidate only if it is nearer to the base than to
  /// every candidate already kept, so that the links point in diverse directions.
  /// Stops at `count` kept. Fewer than `count` candidates are all kept. With `walk` the
  /// candidates' distances are between bfloat16 copies, and so are the comparisons.
  @inlinable
  func selectNeighbors(
    _ candidates: [Neighbor], count: Int, walk: Bool = false
  ) throws -> [UInt32] {
    if candidates.count < count { return candidates.map(\.id) }
    var selected: [UInt32] = []
    var selectedVectors: [UnsafeRawPointer] = []
    selected.reserveCapacity(count)
    selectedVectors.reserveCapacity(count)
    for candidate in candidates {
      if selected.count >= count { break }
      let vector = try self.vector(of: candidate.id, walk: walk)
      var keep = true
      for other in selectedVectors where distance(vector, other, walk: walk) < candidate.distance {
        keep = false
        break
      }
      if keep {
        selected.append(candidate.id)
        selectedVectors.append(vector)
      }
    }
    return selected
  }

  // MARK: Distances

  @inlinable @inline(__always)
  func distance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> Float {
    metric.distance(a, b, dimension: storage.dimension)
  }

  @inlinable @inline(__always)
  func distance(_ query: UnsafeRawPointer, _ node: UInt32) throws -> Float {
    metric.distance(query, try storage.vector(of: node), dimension: storage.dimension)
  }

  /// The distance from `query` to a node: float32, or with `walk` between the bfloat16
  /// query and the node's bfloat16 copy.
  @inlinable @inline(__always)
  func distance(_ query: UnsafeRawPointer, _ node: UInt32, walk: Bool) throws -> Float {
    distance(query, try vector(of: node, walk: walk), walk: walk)
  }

  @inlinable @inline(__always)
  func walkDistance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> Float {
    metric.walkDistance(a, b, dimension: storage.dimension)
  }

  /// The distance between two stored vectors: float32, or with `walk` bfloat16 copies.
  @inlinable @inline(__always)
  func distance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, walk: Bool) -> Float {
    walk ? walkDistance(a, b) : distance(a, b)
  }

  /// A node's float32 vector, or with `walk` its bfloat16 copy.
  @inlinable @inline(__always)
  func vector(of node: UInt32, walk: Bool) throws -> UnsafeRawPointer {
    try walk ? storage.walkVector(of: node) : storage.vector(of: node)
  }

  /// `ids` with their distances to `base`, the vector of node `baseID` (a bfloat16 copy
  /// with `walk`), ranked for the neighbour selection of that node
  /// (``Neighbor/nearerFirst(toward:)``).
  @inlinable
  func sortedByDistance(
    _ ids: some Sequence<UInt32>, to base: UnsafeRawPointer, of baseID: UInt32, walk: Bool = false
  ) throws -> [Neighbor] {
    var neighbors = try ids.map { Neighbor(id: $0, distance: try distance(base, $0, walk: walk)) }
    neighbors.sort(by: Neighbor.nearerFirst(toward: baseID))
    return neighbors
  }
}
