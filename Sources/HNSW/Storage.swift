/// Where a search starts: the node on the top layer, and that layer.
public struct EntryPoint: Equatable, Sendable {
  /// The entry node.
  public var node: UInt32
  /// The top layer of the graph (the entry node's level).
  public var level: Int

  @inlinable
  public init(node: UInt32, level: Int) {
    self.node = node
    self.level = level
  }
}

/// A neighbour list as stored: `count` little-endian `UInt32` ids at any alignment
/// (LMDB values are only 2-byte aligned).
@frozen
public struct NeighborList: RandomAccessCollection {
  @usableFromInline let base: UnsafeRawPointer?
  /// The number of neighbours.
  public let count: Int

  /// A list of `count` ids stored at `base`.
  @inlinable
  public init(base: UnsafeRawPointer?, count: Int) {
    self.base = base
    self.count = count
  }

  /// The empty list.
  public static let empty = NeighborList(base: nil, count: 0)

  @inlinable public var startIndex: Int { 0 }
  @inlinable public var endIndex: Int { count }

  @inlinable
  public subscript(position: Int) -> UInt32 {
    @inline(__always) get {
      UInt32(
        littleEndian: base.unsafelyUnwrapped.loadUnaligned(
          fromByteOffset: position &* 4, as: UInt32.self))
    }
  }
}

/// What the HNSW algorithm needs from the place a graph is kept: vectors, per-layer
/// neighbour lists, and the entry point. ``HNSWGraph`` is generic over it, so each
/// storage gets its own specialised copy of the search loop.
///
/// Node ids are dense `UInt32`s chosen by the caller. A stored node has a level (its top
/// layer), a vector, one neighbour list per layer `0...level`, and a deleted flag:
/// deleted nodes (tombstones) stay in the graph as stepping stones until
/// ``HNSWGraph/consolidate(threads:)`` repairs around them and removes them.
///
/// Pointers returned by ``vector(of:)`` and ``neighbors(of:level:)`` stay valid until
/// the next mutating call. Between mutating calls the read methods may be called from
/// several threads at once (batch inserts do so).
public protocol HNSWStorage {
  /// The number of `Float` components per vector.
  var dimension: Int { get }
  /// An exclusive upper bound on the ids of stored nodes (sizes visited sets).
  var nodeIDBound: Int { get }
  /// The number of stored nodes, deleted ones included.
  var nodeCount: Int { get throws }
  /// The entry point, or `nil` when the graph has no linked node.
  var entryPoint: EntryPoint? { get throws }
  /// The nodes marked deleted and not yet removed.
  var deletedNodes: [UInt32] { get throws }
  /// The number of nodes marked deleted and not yet removed.
  var deletedCount: Int { get throws }

  /// The level of `node`, or `nil` if no such node is stored.
  func level(of node: UInt32) throws -> Int?
  /// The vector of a stored node: `dimension` floats at any alignment.
  func vector(of node: UInt32) throws -> UnsafeRawPointer
  /// Whether the storage keeps a bfloat16 copy of every vector (``walkVector(of:)``).
  /// Searches then walk the graph with the copies — half the bytes per distance — and
  /// rescore their final candidates with ``vector(of:)``; inserts use only the copies.
  var hasWalkVectors: Bool { get }
  /// The bfloat16 copy of a stored node's vector: `dimension` `UInt16`s at any 2-byte
  /// alignment, each the float32 component rounded to nearest even. Only called when
  /// ``hasWalkVectors`` is true.
  func walkVector(of node: UInt32) throws -> UnsafeRawPointer
  /// The neighbours of a stored node on one of its layers.
  func neighbors(of node: UInt32, level: Int) throws -> NeighborList
  /// Whether a stored node is marked deleted.
  func isDeleted(_ node: UInt32) throws -> Bool
  /// Calls `body` with every stored node, deleted ones included, in any order.
  func forEachNode(_ body: (UInt32) throws -> Void) throws

  /// Sets (or clears) the entry point.
  mutating func setEntryPoint(_ entryPoint: EntryPoint?) throws
  /// Stores a new node with empty neighbour lists on layers `0...level`.
  mutating func addNode(_ node: UInt32, level: Int, vector: UnsafeRawPointer) throws
  /// Replaces the vector of a stored node.
  mutating func setVector(of node: UInt32, to vector: UnsafeRawPointer) throws
  /// Replaces a neighbour list; `neighbors.count` never exceeds the layer's capacity
  /// (``HNSWParameters/maxNeighbors(level:)``).
  mutating func setNeighbors(of node: UInt32, level: Int, to neighbors: [UInt32]) throws
  /// Marks a stored node deleted, or live again.
  mutating func setDeleted(_ node: UInt32, _ deleted: Bool) throws
  /// Removes a stored node and its lists. Links to it must already be gone.
  mutating func removeNode(_ node: UInt32) throws

  /// `count` storage values for as many threads to read from at once while no write
  /// happens (the parallel phases of batch inserts and consolidation). A storage with
  /// per-reader state, such as a cache, gives each its own; the default repeats `self`.
  func concurrentReaders(_ count: Int) -> [Self]

  /// The most nodes a batch insert links between two rounds of writes (see
  /// ``HNSWGraph/insert(ids:vectors:threads:)``). Larger chunks compare more members
  /// with each other; smaller ones write more often. The default is 64; a storage
  /// whose reads slow down after each write (LMDB drops its pointer cache) prefers more.
  var linkChunkLimit: Int { get }
}

extension HNSWStorage {
  public var linkChunkLimit: Int { 64 }

  public var hasWalkVectors: Bool { false }

  public func walkVector(of node: UInt32) throws -> UnsafeRawPointer {
    try vector(of: node)
  }

  public func concurrentReaders(_ count: Int) -> [Self] {
    Array(repeating: self, count: count)
  }
}
