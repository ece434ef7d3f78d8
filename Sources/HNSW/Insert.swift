import Tensor

extension HNSWGraph {
  /// INSERT (Algorithm 1) of one node; see ``insert(ids:vectors:threads:)``.
  @inlinable
  public mutating func insert(_ id: UInt32, vector: [Float]) throws {
    try insert(ids: [id], vectors: vector, threads: 1)
  }

  /// Inserts a batch of nodes: `vectors` holds `ids.count` rows of ``dimension`` floats.
  ///
  /// A new id gets its level from ``HNSWParameters/level(of:)`` and is linked as in the
  /// paper's INSERT: a greedy descent to its level, then on each layer below a
  /// SEARCH-LAYER with efConstruction, SELECT-NEIGHBORS-HEURISTIC for its M links, and
  /// links back from each chosen neighbour (re-pruned with the heuristic when that
  /// neighbour's list is full).
  ///
  /// An id already stored is updated in place: it keeps its level and the links that
  /// point at it, gets the new vector, and is re-linked like a new node. A deleted id
  /// not yet removed comes back to life the same way (for free if the vector is
  /// unchanged).
  ///
  /// With `threads > 1` the nodes are linked in chunks: the searches of a chunk run in
  /// parallel against the graph as it was before the chunk, members of the chunk see
  /// each other by direct comparison, and then the links are written. Chunks are at
  /// most 1/16 of the linked nodes, so each new node sees nearly the whole graph, and at
  /// most ``HNSWStorage/linkChunkLimit``.
  /// The chunking is the same for every thread count, so the graph is too.
  ///
  /// - Throws: ``HNSWError/dimensionMismatch(expected:got:)`` if `vectors.count` is not
  ///   `ids.count × dimension`, ``HNSWError/duplicateNode(_:)``, the vector errors of
  ///   ``prepare(_:)``, or the storage's error. The checks come before any change.
  @inlinable
  public mutating func insert(ids: [UInt32], vectors: [Float], threads: Int = 1) throws {
    guard vectors.count == ids.count * dimension else {
      throw HNSWError.dimensionMismatch(
        expected: ids.count * dimension, got: vectors.count)
    }
    var seen = Set<UInt32>(minimumCapacity: ids.count)
    for id in ids where !seen.insert(id).inserted { throw HNSWError.duplicateNode(id) }
    var prepared: [Float] = []
    prepared.reserveCapacity(vectors.count)
    for row in 0..<ids.count {
      prepared += try prepare(Array(vectors[row * dimension..<(row + 1) * dimension]))
    }

    // Store every vector first, so that chunk members can compare to each other.
    var pending: [(id: UInt32, level: Int)] = []
    var alreadyLinked = try storage.nodeCount
    try prepared.withUnsafeBytes { rows in
      for (row, id) in ids.enumerated() {
        let vector = rows.baseAddress! + row * dimension * 4
        if let level = try storage.level(of: id) {
          let unchanged = try storage.vector(of: id).withMemoryRebound(
            to: UInt8.self, capacity: dimension * 4
          ) { old in
            vector.withMemoryRebound(to: UInt8.self, capacity: dimension * 4) { new in
              (0..<dimension * 4).allSatisfy { old[$0] == new[$0] }
            }
          }
          if try storage.isDeleted(id) { try storage.setDeleted(id, false) }
          if unchanged { continue }
          try storage.setVector(of: id, to: vector)
          pending.append((id, level))
          alreadyLinked -= 1
        } else {
          let level = parameters.level(of: id)
          try storage.addNode(id, level: level, vector: vector)
          pending.append((id, level))
        }
      }
    }

    let scratches = (0..<max(1, threads)).map { _ in SearchScratch() }
    var start = 0
    while start < pending.count {
      let size = min(pending.count - start, max(1, min(storage.linkChunkLimit, alreadyLinked / 16)))
      try link(Array(pending[start..<start + size]), threads: threads, scratches: scratches)
      alreadyLinked += size
      start += size
    }
  }

  /// Links a chunk of stored but unlinked (or updated) nodes: plans every node's links
  /// in parallel, then writes them and the links back.
  @inlinable
  mutating func link(
    _ chunk: [(id: UInt32, level: Int)], threads: Int, scratches: [SearchScratch]
  ) throws {
    let entry = try storage.entryPoint
    var readers = readerGraphs(threads)
    var plans = [[[UInt32]]](repeating: [], count: chunk.count)
    try plans.withUnsafeMutableBufferPointer { plans in
      try Parallel.forEachDynamically(chunk.count, threads: threads) { i, worker in
        plans[i] = try readers[worker].planLinks(
          for: chunk[i], chunk: chunk, entry: entry, scratch: scratches[worker])
      }
    }

    var incoming: [UInt64: [UInt32]] = [:]
    for (node, layers) in zip(chunk, plans) {
      for (level, neighbors) in layers.enumerated() {
        try storage.setNeighbors(of: node.id, level: level, to: neighbors)
        for neighbor in neighbors {
          incoming[UInt64(level) << 32 | UInt64(neighbor), default: []].append(node.id)
        }
      }
    }

    let targets = Array(incoming)
    var updated = [[UInt32]?](repeating: nil, count: targets.count)
    readers = readerGraphs(threads)
    try updated.withUnsafeMutableBufferPointer { updated in
      try Parallel.forEachDynamically(targets.count, threads: threads) { i, worker in
        let (key, sources) = targets[i]
        updated[i] = try readers[worker].addingLinks(
          to: UInt32(truncatingIfNeeded: key), level: Int(key >> 32), from: sources)
      }
    }
    for ((key, _), neighbors) in zip(targets, updated) {
      guard let neighbors else { continue }
      try storage.setNeighbors(
        of: UInt32(truncatingIfNeeded: key), level: Int(key >> 32), to: neighbors)
    }

    if let top = chunk.max(by: { $0.level < $1.level }), top.level > entry?.level ?? -1 {
      try storage.setEntryPoint(EntryPoint(node: top.id, level: top.level))
    }
  }

  /// One graph per thread for a parallel phase, over ``HNSWStorage/concurrentReaders(_:)``.
  @inlinable
  func readerGraphs(_ threads: Int) -> [HNSWGraph] {
    storage.concurrentReaders(max(1, threads)).map {
      HNSWGraph(storage: $0, metric: metric, parameters: parameters)
    }
  }

  /// The links of one node of a chunk, per layer `0...node.level`, without writing
  /// anything: INSERT's search and neighbour selection.
  @inlinable
  func planLinks(
    for node: (id: UInt32, level: Int), chunk: [(id: UInt32, level: Int)],
    entry: EntryPoint?, scratch: SearchScratch
  ) throws -> [[UInt32]] {
    // Where the storage keeps bfloat16 copies, the whole insert works on them: one
    // record a visited node and half the bytes a distance (the float32 vectors, on
    // pages of their own, are never read), and, measured, the same recall.
    let walk = storage.hasWalkVectors
    let query = try vector(of: node.id, walk: walk)
    // Other chunk members are not linked yet, so no search can find them: compare.
    var mates: [(neighbor: Neighbor, level: Int)] = []
    for other in chunk where other.id != node.id {
      mates.append(
        (Neighbor(id: other.id, distance: try distance(query, other.id, walk: walk)), other.level))
    }
    func candidates(on level: Int, plus found: [Neighbor]) -> [Neighbor] {
      var all = found
      for mate in mates where mate.level >= level { all.append(mate.neighbor) }
      all.sort(by: Neighbor.nearerFirst(toward: node.id))
      // An updated node can be both found and a mate; equal ids sort next to each other.
      var unique: [Neighbor] = []
      unique.reserveCapacity(all.count)
      for neighbor in all where unique.last?.id != neighbor.id { unique.append(neighbor) }
      return unique
    }

    var layers = [[UInt32]](repeating: [], count: node.level + 1)
    var graphTop = -1
    if let entry {
      graphTop = entry.level
      var nearest = Neighbor(id: entry.node, distance: try distance(query, entry.node, walk: walk))
      for level in stride(from: entry.level, to: node.level, by: -1) {
        nearest = try greedyClosest(to: query, from: nearest, level: level, walk: walk)
      }
      let storage = self.storage
      for level in stride(from: min(node.level, entry.level), through: 0, by: -1) {
        try searchLayer(
          query, from: nearest, ef: parameters.efConstruction, level: level,
          scratch: scratch, walk: walk
        ) { id in
          try id != node.id && !storage.isDeleted(id)
        }
        let found = scratch.takeResults(k: .max)
        if let closest = found.first { nearest = closest }
        layers[level] = try selectNeighbors(
          candidates(on: level, plus: found), count: parameters.m, walk: walk)
      }
    }
    if node.level > graphTop {
      for level in (graphTop + 1)...node.level {
        layers[level] = try selectNeighbors(
          candidates(on: level, plus: []), count: parameters.m, walk: walk)
      }
    }
    return layers
  }

  /// The neighbour list of `target` on `level` after adding links from `sources`,
  /// re-pruned with the heuristic if it overflows; `nil` if nothing changes.
  @inlinable
  func addingLinks(to target: UInt32, level: Int, from sources: [UInt32]) throws -> [UInt32]? {
    let current = try storage.neighbors(of: target, level: level)
    var merged = Array(current)
    for source in sources where source != target && !merged.contains(source) {
      merged.append(source)
    }
    if merged.count == current.count { return nil }
    let capacity = parameters.maxNeighbors(level: level)
    if merged.count <= capacity { return merged }
    let walk = storage.hasWalkVectors
    let base = try vector(of: target, walk: walk)
    return try selectNeighbors(
      sortedByDistance(merged, to: base, of: target, walk: walk), count: capacity, walk: walk)
  }
}
