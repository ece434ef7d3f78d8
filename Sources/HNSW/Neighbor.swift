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
}
