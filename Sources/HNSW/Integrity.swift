/// What ``HNSWGraph/checkIntegrity()`` found. A sound graph has no ``problems``;
/// ``unreachable`` may hold a few nodes in any HNSW graph (pruning can drop a node's
/// last incoming link), and each of them lowers recall only for queries near it.
public struct IntegrityReport: Sendable, Equatable {
  /// Stored nodes, deleted ones included.
  public var nodeCount = 0
  /// Nodes marked deleted and not yet removed.
  public var deletedCount = 0
  /// The largest level of any stored node.
  public var maxLevel = -1
  /// Broken invariants, one line each: links to ids that are not stored (dangling),
  /// to nodes below the layer, self-links, duplicate links, overfull lists, a wrong
  /// entry point.
  public var problems: [String] = []
  /// Live nodes that a walk along layer-0 links from the entry point never reaches.
  public var unreachable: [UInt32] = []
}

extension HNSWGraph {
  /// Checks the invariants of the stored graph by reading every node once. For tests,
  /// crash-recovery checks and the `vdb` shell's diagnostics; O(nodes × M).
  public func checkIntegrity() throws -> IntegrityReport {
    var report = IntegrityReport()
    var nodes: [UInt32] = []
    try storage.forEachNode { nodes.append($0) }
    report.nodeCount = nodes.count
    report.deletedCount = try storage.deletedCount
    var top: (id: UInt32, level: Int)?

    for node in nodes {
      guard let level = try storage.level(of: node) else {
        report.problems.append("node \(node) is listed but has no level")
        continue
      }
      if level > top?.level ?? -1 { top = (node, level) }
      for l in 0...level {
        let neighbors = Array(try storage.neighbors(of: node, level: l))
        if neighbors.count > parameters.maxNeighbors(level: l) {
          report.problems.append(
            "node \(node) layer \(l): \(neighbors.count) links, capacity "
              + "\(parameters.maxNeighbors(level: l))")
        }
        if Set(neighbors).count != neighbors.count {
          report.problems.append("node \(node) layer \(l): duplicate links")
        }
        for neighbor in neighbors {
          if neighbor == node {
            report.problems.append("node \(node) layer \(l): links to itself")
          } else if let theirs = try storage.level(of: neighbor) {
            if theirs < l {
              report.problems.append(
                "node \(node) layer \(l): links to \(neighbor), whose level is \(theirs)")
            }
          } else {
            report.problems.append("node \(node) layer \(l): dangling link to \(neighbor)")
          }
        }
      }
    }
    report.maxLevel = top?.level ?? -1

    let entry = try storage.entryPoint
    switch (entry, top) {
    case (nil, nil): break
    case (nil, .some):
      report.problems.append("no entry point, but \(nodes.count) nodes are stored")
    case (.some(let entry), nil):
      report.problems.append("entry point \(entry.node), but no node is stored")
    case (.some(let entry), .some(let top)):
      let level = try storage.level(of: entry.node)
      if level != entry.level || entry.level != top.level {
        report.problems.append(
          "entry point \(entry.node) at level \(entry.level): its level is "
            + "\(level.map(String.init) ?? "none"), the top level is \(top.level)")
      }
    }

    if let entry, try storage.level(of: entry.node) != nil {
      var reached = Set<UInt32>([entry.node])
      var frontier = [entry.node]
      while let node = frontier.popLast() {
        for neighbor in try storage.neighbors(of: node, level: 0)
        where try storage.level(of: neighbor) != nil && reached.insert(neighbor).inserted {
          frontier.append(neighbor)
        }
      }
      for node in nodes where try !reached.contains(node) && !storage.isDeleted(node) {
        report.unreachable.append(node)
      }
    }
    return report
  }
}
