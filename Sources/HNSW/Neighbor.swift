/// A node of the graph and its distance to a query (or to another node).
@frozen
public struct Neighbor: Hashable, Sendable, CustomStringConvertible {
  /// The node id.
  public var id: UInt32
  /// The distance under the index's ``Metric``; smaller is closer.
  public var distance: Float

  @inlinable
  public init(id: UInt32, distance: Float) {
    self.id = id
    self.distance = distance
  }

  public var description: String { "\(id)@\(distance)" }

  /// Nearest first; equal distances in id order, so that results are deterministic.
  @inlinable @inline(__always)
  static func nearerFirst(_ a: Neighbor, _ b: Neighbor) -> Bool {
    a.distance < b.distance || (a.distance == b.distance && a.id < b.id)
  }

  /// Nearest first, equal distances in an order of their own for each `base`: how link
  /// candidates of node `base` are ranked for the neighbour selection. Copies of one
  /// vector (empty or boilerplate texts embed alike) lie at one distance from everything;
  /// ranked by id, every full list of a copy kept the same oldest copies, so later copies
  /// got no link at all and no search could reach them (100 copies: 34 found). Ranked by
  /// a mix of (id, base), each list keeps a different share and every copy stays linked.
  @inlinable @inline(__always)
  static func nearerFirst(toward base: UInt32) -> (Neighbor, Neighbor) -> Bool {
    { a, b in
      a.distance < b.distance
        || (a.distance == b.distance && tieRank(a.id, base) < tieRank(b.id, base))
    }
  }

  /// A bijective mix (SplitMix64's finaliser) of (id, base): for one base, distinct ids
  /// get distinct ranks, in an order that looks random and is the same on every run.
  @inlinable @inline(__always)
  static func tieRank(_ id: UInt32, _ base: UInt32) -> UInt64 {
    var z = UInt64(id) << 32 | UInt64(base)
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }
}
