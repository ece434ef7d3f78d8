import Tensor

extension HNSWGraph {
  /// Deletes a node: marks it deleted at once (searches stop returning it, but still
  /// walk through it), and repairs the graph around all deleted nodes when they reach
  /// ``HNSWParameters/consolidationThreshold`` of the stored nodes.
  ///
  /// - Returns: false if `id` is not stored or already deleted.
  @inlinable
  @discardableResult
  public mutating func delete(_ id: UInt32, threads: Int = 1) throws -> Bool {
    try delete(ids: [id], threads: threads) == 1
  }

  /// Deletes a batch of nodes (see ``delete(_:threads:)``); returns how many were live.
  @inlinable
  @discardableResult
  public mutating func delete(ids: some Sequence<UInt32>, threads: Int = 1) throws -> Int {
    var deleted = 0
    for id in ids {
      guard try storage.level(of: id) != nil, try !storage.isDeleted(id) else { continue }
      try storage.setDeleted(id, true)
      deleted += 1
    }
    let tombstones = Double(try storage.deletedCount)
    let stored = Double(try storage.nodeCount)
    if deleted > 0 && tombstones >= parameters.consolidationThreshold * stored {
      try consolidate(threads: threads)
    }
    return deleted
  }

  /// Repairs the graph around every deleted node and removes them (FreshDiskANN's
  /// delete consolidation, Singh et al. 2021, Algorithm 4, applied on every layer).
  ///
  /// For each live node `p` and layer `l` whose list N(p) holds deleted nodes D:
  /// the candidates are `(N(p) ∖ D) ∪ ⋃_{d ∈ N(p) ∩ D} (N(d) ∖ D)`, that is, the
  /// deleted neighbours are replaced by their own neighbours, and
  /// SELECT-NEIGHBORS-HEURISTIC prunes them back to the layer's capacity. Then the
  /// deleted nodes are removed; a deleted entry point is replaced by the live node with
  /// the highest level. Cost: one pass over all lists, plus a heuristic selection for
  /// each list that pointed at a deleted node; the repairs run on `threads` threads.
  ///
  /// Batching deletes (the consolidation threshold) amortises the pass over the graph.
  @inlinable
  public mutating func consolidate(threads: Int = 1) throws {
    let deletedIDs = try storage.deletedNodes
    guard !deletedIDs.isEmpty else { return }
    let bound = storage.nodeIDBound
    var isDeleted = [Bool](repeating: false, count: bound)
    for id in deletedIDs {
      guard Int(id) < bound else {
        throw HNSWError.corrupt("node \(id) is past the id bound \(bound)")
      }
      isDeleted[Int(id)] = true
    }
    var live: [(id: UInt32, level: Int)] = []
    try storage.forEachNode { id in
      guard Int(id) < bound else {
        throw HNSWError.corrupt("node \(id) is past the id bound \(bound)")
      }
      if !isDeleted[Int(id)], let level = try storage.level(of: id) { live.append((id, level)) }
    }

    let readers = readerGraphs(threads)
    var repairs = [[(level: Int, neighbors: [UInt32])]](repeating: [], count: live.count)
    try repairs.withUnsafeMutableBufferPointer { repairs in
      try Parallel.forEachDynamically(live.count, threads: threads) { i, worker in
        let node = live[i]
        for level in 0...node.level {
          if let neighbors = try readers[worker].repairedNeighbors(
            of: node.id, level: level, isDeleted: isDeleted)
          {
            repairs[i].append((level, neighbors))
          }
        }
      }
    }
    for (node, lists) in zip(live, repairs) {
      for (level, neighbors) in lists {
        try storage.setNeighbors(of: node.id, level: level, to: neighbors)
      }
    }
    for id in deletedIDs { try storage.removeNode(id) }

    if let entry = try storage.entryPoint, isDeleted[Int(entry.node)] {
      let top = live.max { $0.level < $1.level || ($0.level == $1.level && $0.id > $1.id) }
      try storage.setEntryPoint(top.map { EntryPoint(node: $0.id, level: $0.level) })
    }
  }

  /// The list of `node` on `level` with its deleted neighbours replaced by theirs and
  /// re-pruned; `nil` if the list holds no deleted node.
  @inlinable
  func repairedNeighbors(of node: UInt32, level: Int, isDeleted: [Bool]) throws -> [UInt32]? {
    let current = try storage.neighbors(of: node, level: level)
    // A link past the id bound is damage, not a node (a stored graph is read as it is).
    if let stray = current.first(where: { Int($0) >= isDeleted.count }) {
      throw HNSWError.corrupt(
        "node \(node) links to \(stray), past the id bound \(isDeleted.count)")
    }
    guard current.contains(where: { isDeleted[Int($0)] }) else { return nil }
    var candidates = Set<UInt32>()
    for neighbor in current {
      if !isDeleted[Int(neighbor)] {
        candidates.insert(neighbor)
        continue
      }
      for next in try storage.neighbors(of: neighbor, level: level)
      where next != node && Int(next) < isDeleted.count && !isDeleted[Int(next)] {
        candidates.insert(next)
      }
    }
    var sorted = try sortedByDistance(candidates, to: try storage.vector(of: node), of: node)
    if sorted.count > parameters.efConstruction {
      sorted.removeLast(sorted.count - parameters.efConstruction)
    }
    return try selectNeighbors(sorted, count: parameters.maxNeighbors(level: level))
  }
}
