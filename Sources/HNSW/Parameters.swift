import Tensor

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The construction parameters of an HNSW graph, named as in Malkov & Yashunin (2018)
/// and hnswlib.
///
/// ```swift
/// var parameters = HNSWParameters()      // M = 16, Mmax0 = 32, efConstruction = 200
/// parameters.efConstruction = 100        // faster builds, slightly lower recall
/// try parameters.validate()
/// ```
public struct HNSWParameters: Codable, Sendable, Equatable {
  /// M: the number of neighbours a new node links to on each layer, and the largest
  /// neighbour list on layers ≥ 1 (Mmax = M). 12–48 is the useful range: larger values
  /// raise recall on hard (high-dimensional) data at the cost of memory and build time.
  public var m: Int = 16
  /// Mmax0: the largest neighbour list on layer 0. The paper recommends 2·M.
  public var mMax0: Int = 32
  /// efConstruction: the size of the candidate list while inserting. Larger gives a
  /// better graph and slower builds; once recall at a high query-time `ef` stops
  /// improving, larger values only cost time.
  public var efConstruction: Int = 200
  /// Seeds the level draw. A node's level is a function of its id and this seed, so a
  /// graph built from the same inserts is the same graph.
  public var seed: UInt64 = 0x5EED
  /// When deleted nodes (tombstones) reach this fraction of the stored nodes, a delete
  /// repairs the graph around all of them at once (``HNSWGraph/consolidate(threads:)``).
  /// 0 repairs on every delete.
  public var consolidationThreshold: Double = 0.05

  /// The default parameters.
  public init() {}

  /// mL = 1 / ln(M), the normalisation of the level distribution: a node reaches layer
  /// `l` with probability M^−l.
  @inlinable
  public var mL: Double { 1 / log(Double(m)) }

  /// The neighbour-list capacity of a layer: Mmax0 on layer 0, M above.
  @inlinable @inline(__always)
  public func maxNeighbors(level: Int) -> Int { level == 0 ? mMax0 : m }

  /// Layers are numbered 0 ..< `levelLimit`; the level draw is capped below it (with
  /// M = 16, reaching level 15 has probability 16⁻¹⁵).
  public static let levelLimit = 16

  /// Throws ``HNSWError/invalidParameter(name:value:reason:)`` for the first parameter
  /// out of range.
  public func validate() throws {
    if m < 2 || m > 1024 {
      throw HNSWError.invalidParameter(name: "M", value: "\(m)", reason: "must be in 2...1024")
    }
    if mMax0 < m || mMax0 > 4096 {
      throw HNSWError.invalidParameter(
        name: "Mmax0", value: "\(mMax0)", reason: "must be in M...4096 (usually 2·M)")
    }
    if efConstruction < 1 {
      throw HNSWError.invalidParameter(
        name: "efConstruction", value: "\(efConstruction)", reason: "must be positive")
    }
    if !(0...1).contains(consolidationThreshold) {
      throw HNSWError.invalidParameter(
        name: "consolidationThreshold", value: "\(consolidationThreshold)",
        reason: "must be in 0...1")
    }
  }

  /// The level of node `id`: ⌊−ln(u)·mL⌋ for u uniform in (0, 1], where u is drawn from
  /// a SplitMix64 hash of the id and ``seed`` (so no generator state is stored).
  @inlinable
  public func level(of id: UInt32) -> Int {
    let z = SplitMix64.mix((UInt64(id) &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ seed)
    let u = Double((z >> 11) &+ 1) * 0x1p-53
    return min(Int(-log(u) * mL), Self.levelLimit - 1)
  }
}
