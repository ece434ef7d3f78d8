import CKernels

/// An ``HNSWStorage`` in process memory, for tests, benchmarks and temporary indexes.
///
/// Each node has one fixed-size block, `[count, id₀ … id_{Mmax0−1}, vector]` (hnswlib's
/// level-0 layout): the layer-0 list sits next to the vector, so a node whose distance
/// was just computed usually has its list in cache when it is expanded. Upper layers
/// are allocated only for the nodes that have them. With `walkVectors` the block ends
/// with the vector's bfloat16 copy, which searches and inserts walk with (as in an
/// LMDB index of layout version 3, so the two build the same graph).
///
/// ```swift
/// let storage = MemoryStorage(dimension: 384, parameters: HNSWParameters())
/// var graph = HNSWGraph(storage: storage, metric: .cosine)
/// ```
///
/// A class: copies of a graph share it. Reads may run on several threads at once;
/// mutations need exclusive access.
public final class MemoryStorage: HNSWStorage, @unchecked Sendable {
  public let dimension: Int
  @usableFromInline let m: Int
  @usableFromInline let mMax0: Int
  @usableFromInline var capacity = 0
  /// `capacity` blocks of `blockWords` words: a count, Mmax0 ids, the vector, and with
  /// walk vectors its bfloat16 copy (`⌈dimension / 2⌉` words).
  @usableFromInline var blocks: UnsafeMutablePointer<UInt32>
  @usableFromInline let blockWords: Int
  /// Per node, `level × (1 + M)` words for layers 1...level (nil below level 1).
  @usableFromInline var upper: [UnsafeMutablePointer<UInt32>?] = []
  /// Per node, its level, or −1 when no node has that id.
  @usableFromInline var levels: [Int8] = []
  @usableFromInline var deleted: [Bool] = []
  @usableFromInline var deletedSet: Set<UInt32> = []
  @usableFromInline var storedCount = 0
  @usableFromInline var entry: EntryPoint?
  public private(set) var nodeIDBound = 0
  public let hasWalkVectors: Bool

  /// An empty storage for vectors of `dimension` floats and lists sized by `parameters`;
  /// with `walkVectors`, each vector also kept rounded to bfloat16 (see
  /// ``HNSWStorage/hasWalkVectors``).
  public init(dimension: Int, parameters: HNSWParameters, walkVectors: Bool = false) {
    self.dimension = dimension
    self.m = parameters.m
    self.mMax0 = parameters.mMax0
    hasWalkVectors = walkVectors
    blockWords = 1 + parameters.mMax0 + dimension + (walkVectors ? (dimension + 1) / 2 : 0)
    blocks = .allocate(capacity: 0)
  }

  deinit {
    blocks.deallocate()
    for block in upper { block?.deallocate() }
  }

  public var nodeCount: Int { storedCount }
  public var entryPoint: EntryPoint? { entry }
  public var deletedNodes: [UInt32] { deletedSet.sorted() }
  @inlinable public var deletedCount: Int { deletedSet.count }

  @inlinable
  public func level(of node: UInt32) -> Int? {
    let i = Int(node)
    guard i < levels.count, levels[i] >= 0 else { return nil }
    return Int(levels[i])
  }

  @inlinable @inline(__always)
  public func vector(of node: UInt32) -> UnsafeRawPointer {
    let offset: Int = Int(node) &* blockWords &+ 1 &+ mMax0
    return UnsafeRawPointer(blocks + offset)
  }

  @inlinable @inline(__always)
  public func walkVector(of node: UInt32) -> UnsafeRawPointer {
    vector(of: node) + dimension &* 4
  }

  @inlinable @inline(__always)
  public func neighbors(of node: UInt32, level: Int) -> NeighborList {
    let block = listBlock(node, level)
    return NeighborList(base: UnsafeRawPointer(block + 1), count: Int(block.pointee))
  }

  @inlinable @inline(__always)
  public func isDeleted(_ node: UInt32) -> Bool { deleted[Int(node)] }

  public func forEachNode(_ body: (UInt32) throws -> Void) rethrows {
    for i in levels.indices where levels[i] >= 0 { try body(UInt32(i)) }
  }

  public func setEntryPoint(_ entryPoint: EntryPoint?) { entry = entryPoint }

  public func addNode(_ node: UInt32, level: Int, vector: UnsafeRawPointer) throws {
    guard self.level(of: node) == nil else {
      throw HNSWError.corrupt("node \(node) is already stored")
    }
    let i = Int(node)
    reserve(i + 1)
    levels[i] = Int8(level)
    deleted[i] = false
    blocks[i * blockWords] = 0
    if level > 0 {
      let block = UnsafeMutablePointer<UInt32>.allocate(capacity: level * (1 + m))
      for l in 0..<level { block[l * (1 + m)] = 0 }
      upper[i] = block
    }
    setVector(of: node, to: vector)
    storedCount += 1
    nodeIDBound = max(nodeIDBound, i + 1)
  }

  public func setVector(of node: UInt32, to vector: UnsafeRawPointer) {
    let stored = UnsafeMutableRawPointer(blocks + Int(node) * blockWords + 1 + mMax0)
    stored.copyMemory(from: vector, byteCount: dimension * 4)
    guard hasWalkVectors else { return }
    vdb_bf16_round(
      stored.assumingMemoryBound(to: Float.self),
      (stored + dimension * 4).assumingMemoryBound(to: UInt16.self), Int32(dimension))
  }

  public func setNeighbors(of node: UInt32, level: Int, to neighbors: [UInt32]) throws {
    let capacity = level == 0 ? mMax0 : m
    guard neighbors.count <= capacity else {
      throw HNSWError.corrupt(
        "\(neighbors.count) neighbours for node \(node) on layer \(level) (capacity \(capacity))")
    }
    let block = listBlock(node, level)
    block.pointee = UInt32(neighbors.count)
    for (j, id) in neighbors.enumerated() { block[1 + j] = id.littleEndian }
  }

  public func setDeleted(_ node: UInt32, _ isDeleted: Bool) {
    deleted[Int(node)] = isDeleted
    if isDeleted { deletedSet.insert(node) } else { deletedSet.remove(node) }
  }

  public func removeNode(_ node: UInt32) {
    let i = Int(node)
    guard level(of: node) != nil else { return }
    upper[i]?.deallocate()
    upper[i] = nil
    levels[i] = -1
    deleted[i] = false
    deletedSet.remove(node)
    storedCount -= 1
  }

  /// The `[count, ids…]` block of a node's list on `level`.
  @inlinable @inline(__always)
  func listBlock(_ node: UInt32, _ level: Int) -> UnsafeMutablePointer<UInt32> {
    let i = Int(node)
    if level == 0 { return blocks + i &* blockWords }
    return upper[i].unsafelyUnwrapped + (level &- 1) &* (1 &+ m)
  }

  /// Grows the per-node arrays to hold ids below `count`, doubling to keep adds
  /// amortised O(1).
  private func reserve(_ count: Int) {
    guard count > capacity else { return }
    let newCapacity = max(count, capacity * 2, 1024)
    let newBlocks = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity * blockWords)
    newBlocks.update(from: blocks, count: capacity * blockWords)
    blocks.deallocate()
    blocks = newBlocks
    let added = newCapacity - capacity
    upper += repeatElement(nil, count: added)
    levels += repeatElement(-1, count: added)
    deleted += repeatElement(false, count: added)
    capacity = newCapacity
  }
}
