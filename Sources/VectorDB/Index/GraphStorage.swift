import CKernels
import HNSW
import LMDB

/// How one index lays out its graph in its LMDB table. Keys are a one-byte tag, then
/// (for nodes) the node id big-endian, so each kind of record is one contiguous key
/// range in node order. Values are little-endian and fixed-size, so rewriting a list
/// never changes a record's size.
///
///     0x00 ++ node   node record: the vector a search walks with — from layout
///                    version 3 rounded to bfloat16 (dimension × UInt16), before
///                    that the vector itself (dimension × Float32) — then the
///                    layer-0 list: count UInt16, level UInt8, flags UInt8 (bit 0:
///                    deleted), Mmax0 × UInt32 ids (the first `count` are used);
///                    from version 2, then the CRC-32C of all that (UInt32)
///     0x01 ++ node   upper layers, only for level ≥ 1: for each layer 1...level,
///                    count UInt32 then M × UInt32 ids; from version 2, then the
///                    CRC-32C of all that
///     0x02 ++ node   empty value: the node is deleted and awaits consolidation
///     0x03 "params"  JSON `IndexSettings` (written once)
///     0x03 "state"   `GraphState` (entry point, counts), rewritten by every change
///     0x04 ++ node   from version 3: the vector (dimension × Float32), then its
///                    CRC-32C
///     0x05           from version 3: empty, written once, so that the vector records
///                    are never the table's last keys (see `endKey`)
///
/// One lookup of a node record gives both the vector and its layer-0 neighbours (like
/// hnswlib's level-0 block), which is all a layer-0 search step needs. From version 3
/// that is the bfloat16 copy: a record of 904 bytes for 384-d and M = 16, four to a
/// page, where the float32 vector made 1,672 (two to a page). The float32 vectors,
/// which only inserts and the final rescoring of a search read, have their own range.
struct GraphLayout {
  static let nodeTag: UInt8 = 0
  static let upperTag: UInt8 = 1
  static let deletedTag: UInt8 = 2
  static let metaTag: UInt8 = 3
  static let vectorTag: UInt8 = 4

  let dimension: Int
  let m: Int
  let mMax0: Int
  /// Records end with their CRC-32C (layout version 2 on): written with every record,
  /// checked by `verify` (too costly for every read of a search).
  let isChecksummed: Bool
  /// Node records carry a bfloat16 copy of the vector (layout version 3 on).
  let hasWalkVectors: Bool

  init(dimension: Int, parameters: HNSWParameters, version: Int = IndexSettings.currentFormat) {
    self.dimension = dimension
    m = parameters.m
    mMax0 = parameters.mMax0
    isChecksummed = version >= 2
    hasWalkVectors = version >= 3
  }

  /// Bytes of the vector at the head of a node record.
  var walkVectorSize: Int { dimension * (hasWalkVectors ? 2 : 4) }
  var countOffset: Int { walkVectorSize }
  var levelOffset: Int { countOffset + 2 }
  var flagsOffset: Int { countOffset + 3 }
  var idsOffset: Int { countOffset + 4 }
  /// Where a node record's checksum starts (its bytes before it are checksummed).
  var checksumOffset: Int { idsOffset + mMax0 * 4 }
  var checksumSize: Int { isChecksummed ? 4 : 0 }
  var nodeRecordSize: Int { checksumOffset + checksumSize }
  /// Bytes of one upper layer in the upper record.
  var upperLayerSize: Int { 4 + m * 4 }
  func upperRecordSize(levels: Int) -> Int { levels * upperLayerSize + checksumSize }
  /// Bytes of a vector record (version 3 on).
  var vectorRecordSize: Int { dimension * 4 + checksumSize }

  /// Stores the checksum of `record` (a node or upper record) in its last 4 bytes.
  func seal(_ record: UnsafeMutableRawBufferPointer) {
    guard isChecksummed else { return }
    let body = record.count - 4
    record.storeBytes(
      of: vdb_crc32c(0, record.baseAddress, body).littleEndian, toByteOffset: body, as: UInt32.self)
  }

  /// Writes the head of a node record: the float32 `vector`, rounded to bfloat16 from
  /// version 3.
  func storeWalkVector(_ vector: UnsafeRawPointer, in record: UnsafeMutableRawPointer) {
    guard hasWalkVectors else {
      record.copyMemory(from: vector, byteCount: dimension * 4)
      return
    }
    vdb_bf16_round(
      vector.assumingMemoryBound(to: Float.self), record.assumingMemoryBound(to: UInt16.self),
      Int32(dimension))
  }

  /// Whether the head of a node record is the bfloat16 rounding of the float32 `vector`.
  func isRounding(of vector: UnsafeRawPointer, _ record: UnsafeRawPointer) -> Bool {
    var rounded = [UInt16](repeating: 0, count: dimension)
    rounded.withUnsafeMutableBufferPointer {
      vdb_bf16_round(vector.assumingMemoryBound(to: Float.self), $0.baseAddress!, Int32(dimension))
    }
    return rounded.indices.allSatisfy {
      rounded[$0] == record.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)
    }
  }

  /// Whether `record` matches its stored checksum (always, before version 2).
  func isSound(_ record: UnsafeRawBufferPointer) -> Bool {
    guard isChecksummed else { return true }
    guard record.count >= 4 else { return false }
    let body = record.count - 4
    return vdb_crc32c(0, record.baseAddress, body)
      == UInt32(littleEndian: record.loadUnaligned(fromByteOffset: body, as: UInt32.self))
  }

  static func nodeKey(_ node: UInt32) -> NodeKey { NodeKey(tag: nodeTag, node: node) }
  static func upperKey(_ node: UInt32) -> NodeKey { NodeKey(tag: upperTag, node: node) }
  static func deletedKey(_ node: UInt32) -> NodeKey { NodeKey(tag: deletedTag, node: node) }
  static func vectorKey(_ node: UInt32) -> NodeKey { NodeKey(tag: vectorTag, node: node) }
  /// Why: LMDB splits a full page that gains a key at its end by moving the page's last
  /// record to the new page, so records appended at the end of a table, two of which
  /// fill a page (a 384-d vector record), would sit one to a page: 4,189 bytes a vector
  /// instead of 2,048 (measured on 50,000). A key after them makes the splits normal.
  static let endKey: [UInt8] = [5]
  static let paramsKey: [UInt8] = [metaTag] + Array("params".utf8)
  static let stateKey: [UInt8] = [metaTag] + Array("state".utf8)
}

/// A 5-byte key: tag, then node id big-endian; built without allocating.
struct NodeKey: LMDBKey {
  var tag: UInt8
  var node: UInt32

  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    let bytes: (UInt8, UInt8, UInt8, UInt8, UInt8) = (
      tag, UInt8(node >> 24), UInt8(truncatingIfNeeded: node >> 16),
      UInt8(truncatingIfNeeded: node >> 8), UInt8(truncatingIfNeeded: node)
    )
    return try withUnsafeBytes(of: bytes, body)
  }

  /// The node id of a key with this tag, or `nil` for another tag or length.
  static func node(from key: UnsafeRawBufferPointer, tag: UInt8) -> UInt32? {
    guard key.count == 5, key[0] == tag else { return nil }
    return UInt32(bigEndian: key.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
  }
}

/// The mutable graph-wide facts: entry point and counts. 32 bytes little-endian:
/// entry node UInt32, entry level Int32 (−1: empty graph), stored nodes UInt64,
/// deleted nodes UInt64, node-id bound UInt64.
struct GraphState: Equatable {
  var entryPoint: EntryPoint?
  var nodeCount = 0
  var deletedCount = 0
  var nodeIDBound = 0

  static let size = 32

  init() {}

  init(bytes: UnsafeRawBufferPointer) throws {
    guard bytes.count == Self.size else {
      throw VectorIndexError.corrupt("graph state record is \(bytes.count) bytes, not \(Self.size)")
    }
    func word<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
      T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    let level = Int(word(4, Int32.self))
    entryPoint = level < 0 ? nil : EntryPoint(node: word(0, UInt32.self), level: level)
    nodeCount = Int(word(8, UInt64.self))
    deletedCount = Int(word(16, UInt64.self))
    nodeIDBound = Int(word(24, UInt64.self))
  }

  var bytes: [UInt8] {
    var out = [UInt8](repeating: 0, count: Self.size)
    out.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: (entryPoint?.node ?? 0).littleEndian, toByteOffset: 0, as: UInt32.self)
      raw.storeBytes(
        of: Int32(entryPoint?.level ?? -1).littleEndian, toByteOffset: 4, as: Int32.self)
      raw.storeBytes(of: UInt64(nodeCount).littleEndian, toByteOffset: 8, as: UInt64.self)
      raw.storeBytes(of: UInt64(deletedCount).littleEndian, toByteOffset: 16, as: UInt64.self)
      raw.storeBytes(of: UInt64(nodeIDBound).littleEndian, toByteOffset: 24, as: UInt64.self)
    }
    return out
  }
}

/// Node id → pointer to its record in the memory map, so that repeated visits skip the
/// B-tree. An entry is valid while the cache's epoch is unchanged: the owner bumps it
/// whenever the pointers may have moved (a write in the transaction, another snapshot,
/// a remapped map). Bumping is O(1); the tags are cleared only when the epoch wraps.
final class PointerCache {
  private var pointers = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: 0)
  private var tags = UnsafeMutablePointer<UInt32>.allocate(capacity: 0)
  private var capacity = 0
  private var epoch: UInt32 = 1

  deinit {
    pointers.deallocate()
    tags.deallocate()
  }

  func invalidate() {
    epoch &+= 1
    if epoch == 0 {
      tags.update(repeating: 0, count: capacity)
      epoch = 1
    }
  }

  @inline(__always)
  func pointer(_ node: UInt32) -> UnsafeRawPointer? {
    let i = Int(node)
    return i < capacity && tags[i] == epoch ? pointers[i] : nil
  }

  @inline(__always)
  func store(_ pointer: UnsafeRawPointer, for node: UInt32) {
    let i = Int(node)
    if i >= capacity { grow(to: i + 1) }
    pointers[i] = pointer
    tags[i] = epoch
  }

  private func grow(to bound: Int) {
    let newCapacity = max(bound, capacity * 2, 1024)
    let newPointers = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: newCapacity)
    newPointers.update(from: pointers, count: capacity)
    (newPointers + capacity).initialize(repeating: nil, count: newCapacity - capacity)
    let newTags = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
    newTags.update(from: tags, count: capacity)
    (newTags + capacity).initialize(repeating: 0, count: newCapacity - capacity)
    pointers.deallocate()
    tags.deallocate()
    pointers = newPointers
    tags = newTags
    capacity = newCapacity
  }
}

/// The caches of one reader: node, upper-layer and vector records.
final class ReaderCache {
  let nodes = PointerCache()
  let upper = PointerCache()
  let vectors = PointerCache()
  /// The snapshot the pointers belong to: transaction id and map size (a grown map
  /// may sit at another address, and it never shrinks back to an earlier size).
  var snapshot: (transaction: Int, mapSize: Int)?

  func invalidate() {
    nodes.invalidate()
    upper.invalidate()
    vectors.invalidate()
  }

  /// Keeps the pointers if they were taken in the same snapshot, else drops them.
  func adopt(transaction: Int, mapSize: Int) {
    if let snapshot, snapshot == (transaction, mapSize) { return }
    invalidate()
    snapshot = (transaction, mapSize)
  }
}

/// The records a write has changed but not yet stored: a batch's copy-on-write overlay
/// over the table. A changed node or upper record is copied here once and edited in
/// place; ``LMDBGraphStorage/flush()`` writes each once, in key order. Until then
/// nothing is written to LMDB, so the pointers the caches hold into the memory map
/// stay valid through the whole batch instead of dying at every link.
///
/// Slots are an array indexed by node id, as in ``PointerCache``; records are
/// allocated one by one, behind a header holding their size, and never move until they
/// are flushed or removed.
final class PendingRecords {
  private var slots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 0)
  private var capacity = 0
  /// The nodes with a record here (in the order they came; may repeat after a removal).
  private var touched: [UInt32] = []
  private static let header = 16
  /// Bytes of records held.
  private(set) var byteCount = 0

  deinit {
    removeAll()
    slots.deallocate()
  }

  var isEmpty: Bool { byteCount == 0 }

  @inline(__always)
  func record(_ node: UInt32) -> UnsafeMutableRawPointer? {
    let i = Int(node)
    return i < capacity ? slots[i] : nil
  }

  /// A new record of `size` bytes for `node` (which has none here), filled by `fill`.
  func add(
    _ node: UInt32, size: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void
  ) -> UnsafeMutableRawPointer {
    let i = Int(node)
    if i >= capacity { grow(to: i + 1) }
    let block = UnsafeMutableRawPointer.allocate(byteCount: Self.header + size, alignment: 16)
    block.storeBytes(of: size, as: Int.self)
    let record = block + Self.header
    fill(UnsafeMutableRawBufferPointer(start: record, count: size))
    slots[i] = record
    touched.append(node)
    byteCount += size
    return record
  }

  /// Drops the record of `node`, if any.
  func remove(_ node: UInt32) {
    guard let record = record(node) else { return }
    byteCount -= Self.size(of: record)
    (record - Self.header).deallocate()
    slots[Int(node)] = nil
  }

  private static func size(of record: UnsafeMutableRawPointer) -> Int {
    (record - header).load(as: Int.self)
  }

  /// Calls `body` with each record, in node order.
  func forEachRecord(_ body: (UInt32, UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
    var previous: UInt32?
    for node in touched.sorted() where node != previous {
      previous = node
      guard let record = record(node) else { continue }
      try body(node, UnsafeMutableRawBufferPointer(start: record, count: Self.size(of: record)))
    }
  }

  func removeAll() {
    for node in touched {
      guard let record = record(node) else { continue }
      (record - Self.header).deallocate()
      slots[Int(node)] = nil
    }
    touched.removeAll(keepingCapacity: true)
    byteCount = 0
  }

  private func grow(to bound: Int) {
    let newCapacity = max(bound, capacity * 2, 1024)
    let newSlots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: newCapacity)
    newSlots.moveInitialize(from: slots, count: capacity)
    (newSlots + capacity).initialize(repeating: nil, count: newCapacity - capacity)
    slots.deallocate()
    slots = newSlots
    capacity = newCapacity
  }
}

/// An ``HNSWStorage`` over one index's LMDB table, inside one transaction. Reads are
/// zero-copy pointers into the memory map (through a ``ReaderCache``); writes need a
/// `WriteTransaction`. Node and upper records are changed in a ``PendingRecords``
/// overlay and reach LMDB at ``flush()``, each once however many links it gained.
struct LMDBGraphStorage: HNSWStorage {
  let transaction: Transaction
  let writer: WriteTransaction?
  let table: Table
  let layout: GraphLayout
  let cache: ReaderCache
  /// Extra caches for concurrent readers during a write transaction's parallel phases.
  let workerCaches: [ReaderCache]
  /// Changed records not yet written (writers only; shared by the concurrent readers).
  let pending: PendingRecords?
  let pendingUpper: PendingRecords?
  let pendingVectors: PendingRecords?
  var state: GraphState
  var stateChanged = false

  /// Pending records past this many bytes are flushed before the next change, so that a
  /// large batch holds a bounded copy of the graph (LMDB's dirty pages come on top).
  var pendingLimit = 128 << 20

  init(
    transaction: Transaction, table: Table, layout: GraphLayout, cache: ReaderCache,
    workerCaches: [ReaderCache] = []
  ) throws {
    self.transaction = transaction
    writer = transaction as? WriteTransaction
    self.table = table
    self.layout = layout
    self.cache = cache
    self.workerCaches = workerCaches
    pending = writer == nil ? nil : PendingRecords()
    pendingUpper = writer == nil ? nil : PendingRecords()
    pendingVectors = writer == nil ? nil : PendingRecords()
    if let bytes = try transaction.get(table, key: GraphLayout.stateKey) {
      state = try GraphState(bytes: bytes)
    } else {
      state = GraphState()
    }
  }

  var dimension: Int { layout.dimension }
  var nodeIDBound: Int { state.nodeIDBound }
  var nodeCount: Int { state.nodeCount }
  var deletedCount: Int { state.deletedCount }
  var entryPoint: EntryPoint? { state.entryPoint }

  var deletedNodes: [UInt32] {
    get throws {
      var nodes: [UInt32] = []
      try transaction.forEach(in: table, from: GraphLayout.deletedKey(0)) { key, _ in
        guard let node = NodeKey.node(from: key, tag: GraphLayout.deletedTag) else {
          return false
        }
        nodes.append(node)
        return true
      }
      return nodes
    }
  }

  func concurrentReaders(_ count: Int) -> [LMDBGraphStorage] {
    (0..<count).map { i in
      if i == 0 { return self }
      // Each extra thread gets a cache of its own (kept for reuse when there is one;
      // every write to LMDB empties it, see `invalidateCaches`).
      let cache = i - 1 < workerCaches.count ? workerCaches[i - 1] : ReaderCache()
      return LMDBGraphStorage(copying: self, cache: cache)
    }
  }

  private init(copying other: LMDBGraphStorage, cache: ReaderCache) {
    transaction = other.transaction
    writer = other.writer
    table = other.table
    layout = other.layout
    self.cache = cache
    workerCaches = []
    pending = other.pending
    pendingUpper = other.pendingUpper
    pendingVectors = other.pendingVectors
    pendingLimit = other.pendingLimit
    state = other.state
  }

  // MARK: Reads

  /// The node record, or `nil` if no such node is stored.
  @inline(__always)
  func record(_ node: UInt32) throws -> UnsafeRawPointer? {
    if let pointer = pending?.record(node) { return UnsafeRawPointer(pointer) }
    if let pointer = cache.nodes.pointer(node) { return pointer }
    guard let value = try transaction.get(table, key: GraphLayout.nodeKey(node)) else {
      return nil
    }
    guard value.count == layout.nodeRecordSize else {
      throw VectorIndexError.corrupt(
        "node \(node): record is \(value.count) bytes, expected \(layout.nodeRecordSize)")
    }
    cache.nodes.store(value.baseAddress!, for: node)
    return value.baseAddress!
  }

  @inline(__always)
  func storedRecord(_ node: UInt32) throws -> UnsafeRawPointer {
    guard let record = try record(node) else {
      throw VectorIndexError.corrupt("node \(node) is linked but not stored")
    }
    return record
  }

  func upperRecord(_ node: UInt32, level: Int) throws -> UnsafeRawPointer {
    if let pointer = pendingUpper?.record(node) { return UnsafeRawPointer(pointer) }
    if let pointer = cache.upper.pointer(node) { return pointer }
    guard let value = try transaction.get(table, key: GraphLayout.upperKey(node)),
      value.count >= level * layout.upperLayerSize
    else {
      throw VectorIndexError.corrupt("node \(node): no upper-layer record for layer \(level)")
    }
    cache.upper.store(value.baseAddress!, for: node)
    return value.baseAddress!
  }

  func level(of node: UInt32) throws -> Int? {
    try record(node).map { Int($0.load(fromByteOffset: layout.levelOffset, as: UInt8.self)) }
  }

  /// The float32 vector: its own record from version 3, else the node record's head.
  @inline(__always)
  func vector(of node: UInt32) throws -> UnsafeRawPointer {
    guard layout.hasWalkVectors else { return try storedRecord(node) }
    if let pointer = pendingVectors?.record(node) { return UnsafeRawPointer(pointer) }
    if let pointer = cache.vectors.pointer(node) { return pointer }
    guard let value = try transaction.get(table, key: GraphLayout.vectorKey(node)) else {
      throw VectorIndexError.corrupt("node \(node) has no vector record")
    }
    guard value.count == layout.vectorRecordSize else {
      throw VectorIndexError.corrupt(
        "node \(node): vector record is \(value.count) bytes, expected \(layout.vectorRecordSize)")
    }
    cache.vectors.store(value.baseAddress!, for: node)
    return value.baseAddress!
  }

  var hasWalkVectors: Bool { layout.hasWalkVectors }

  /// The node record's head: the bfloat16 copy (version 3 on).
  @inline(__always)
  func walkVector(of node: UInt32) throws -> UnsafeRawPointer {
    try storedRecord(node)
  }

  @inline(__always)
  func neighbors(of node: UInt32, level: Int) throws -> NeighborList {
    if level == 0 {
      let record = try storedRecord(node)
      let count = UInt16(
        littleEndian: record.loadUnaligned(fromByteOffset: layout.countOffset, as: UInt16.self))
      guard count <= layout.mMax0 else {
        throw VectorIndexError.corrupt("node \(node): \(count) layer-0 links")
      }
      return NeighborList(base: record + layout.idsOffset, count: Int(count))
    }
    let layer = try upperRecord(node, level: level) + (level - 1) * layout.upperLayerSize
    let count = UInt32(littleEndian: layer.loadUnaligned(as: UInt32.self))
    guard count <= layout.m else {
      throw VectorIndexError.corrupt("node \(node): \(count) links on layer \(level)")
    }
    return NeighborList(base: layer + 4, count: Int(count))
  }

  func isDeleted(_ node: UInt32) throws -> Bool {
    // The flag lives in the node's own record, a cache miss per candidate a walk checks
    // (16% of a 300,000-vector build); the count says when no flag can be set.
    guard state.deletedCount > 0 else { return false }
    return try storedRecord(node).load(fromByteOffset: layout.flagsOffset, as: UInt8.self) & 1 != 0
  }

  func forEachNode(_ body: (UInt32) throws -> Void) throws {
    // Stored nodes, then the nodes added since the last flush.
    var stored: [UInt64] = []
    let tracksStored = pending.map { !$0.isEmpty } ?? false
    if tracksStored { stored = [UInt64](repeating: 0, count: state.nodeIDBound / 64 + 1) }
    try transaction.forEach(in: table, from: GraphLayout.nodeKey(0)) { key, _ in
      guard let node = NodeKey.node(from: key, tag: GraphLayout.nodeTag) else { return false }
      if tracksStored { stored[Int(node) / 64] |= 1 << UInt64(node % 64) }
      try body(node)
      return true
    }
    guard tracksStored, let pending else { return }
    try pending.forEachRecord { node, _ in
      if stored[Int(node) / 64] & (1 << UInt64(node % 64)) == 0 { try body(node) }
    }
  }

  // MARK: Writes

  private func requireWriter() throws -> WriteTransaction {
    guard let writer else { throw VectorIndexError.readOnly }
    return writer
  }

  /// The pending copy of a node record, made on its first change in this batch.
  private func changeableRecord(_ node: UInt32) throws -> UnsafeMutableRawPointer {
    let pending = try requirePending()
    if let record = pending.record(node) { return record }
    try flushIfLarge()
    let stored = try storedRecord(node)
    return pending.add(node, size: layout.nodeRecordSize) {
      $0.baseAddress!.copyMemory(from: stored, byteCount: $0.count)
    }
  }

  /// The pending copy of an upper record (layers 1...level of `node`).
  private func changeableUpperRecord(_ node: UInt32, level: Int) throws -> UnsafeMutableRawPointer {
    guard let pendingUpper else { throw VectorIndexError.readOnly }
    if let record = pendingUpper.record(node) { return record }
    try flushIfLarge()
    let levels = try self.level(of: node) ?? 0
    let stored = try upperRecord(node, level: level)
    return pendingUpper.add(node, size: layout.upperRecordSize(levels: levels)) {
      $0.baseAddress!.copyMemory(from: stored, byteCount: $0.count)
    }
  }

  private func requirePending() throws -> PendingRecords {
    guard let pending else { throw VectorIndexError.readOnly }
    return pending
  }

  private func flushIfLarge() throws {
    let held = [pending, pendingUpper, pendingVectors].reduce(0) { $0 + ($1?.byteCount ?? 0) }
    if held >= pendingLimit { try flush() }
  }

  /// Writes every pending record to LMDB (sealed with its checksum), each once and in
  /// key order, and empties the overlay. Call it before the transaction commits.
  func flush() throws {
    guard let pending, let pendingUpper, let pendingVectors,
      !(pending.isEmpty && pendingUpper.isEmpty && pendingVectors.isEmpty)
    else {
      return
    }
    let writer = try requireWriter()
    invalidateCaches()
    for (records, key) in [
      (pending, GraphLayout.nodeKey), (pendingUpper, GraphLayout.upperKey),
      (pendingVectors, GraphLayout.vectorKey),
    ] {
      try records.forEachRecord { node, record in
        layout.seal(record)
        try writer.put(table, key: key(node), value: UnsafeRawBufferPointer(record))
      }
      records.removeAll()
    }
  }

  /// Empties every pointer cache: a write to LMDB may move any page of the map.
  private func invalidateCaches() {
    cache.invalidate()
    for worker in workerCaches { worker.invalidate() }
  }

  mutating func setEntryPoint(_ entryPoint: EntryPoint?) throws {
    state.entryPoint = entryPoint
    stateChanged = true
  }

  mutating func addNode(_ node: UInt32, level: Int, vector: UnsafeRawPointer) throws {
    let pending = try requirePending()
    try flushIfLarge()
    let layout = self.layout
    _ = pending.add(node, size: layout.nodeRecordSize) { raw in
      raw.initializeMemory(as: UInt8.self, repeating: 0)
      layout.storeWalkVector(vector, in: raw.baseAddress!)
      raw[layout.levelOffset] = UInt8(level)
    }
    if layout.hasWalkVectors {
      _ = pendingVectors?.add(node, size: layout.vectorRecordSize) {
        $0.baseAddress!.copyMemory(from: vector, byteCount: layout.dimension * 4)
      }
    }
    if level > 0 {
      _ = pendingUpper?.add(node, size: layout.upperRecordSize(levels: level)) {
        $0.initializeMemory(as: UInt8.self, repeating: 0)
      }
    }
    state.nodeCount += 1
    state.nodeIDBound = max(state.nodeIDBound, Int(node) + 1)
    stateChanged = true
  }

  mutating func setVector(of node: UInt32, to vector: UnsafeRawPointer) throws {
    layout.storeWalkVector(vector, in: try changeableRecord(node))
    guard layout.hasWalkVectors, let pendingVectors else { return }
    if let record = pendingVectors.record(node) {
      record.copyMemory(from: vector, byteCount: layout.dimension * 4)
    } else {
      try flushIfLarge()
      _ = pendingVectors.add(node, size: layout.vectorRecordSize) {
        $0.baseAddress!.copyMemory(from: vector, byteCount: layout.dimension * 4)
      }
    }
  }

  mutating func setNeighbors(of node: UInt32, level: Int, to neighbors: [UInt32]) throws {
    let capacity = level == 0 ? layout.mMax0 : layout.m
    guard neighbors.count <= capacity else {
      throw VectorIndexError.corrupt(
        "\(neighbors.count) links for node \(node) on layer \(level) (capacity \(capacity))")
    }
    let list: UnsafeMutableRawPointer
    if level == 0 {
      let record = try changeableRecord(node)
      record.storeBytes(
        of: UInt16(neighbors.count).littleEndian, toByteOffset: layout.countOffset,
        as: UInt16.self)
      list = record + layout.idsOffset
    } else {
      let layer =
        try changeableUpperRecord(node, level: level) + (level - 1) * layout.upperLayerSize
      layer.storeBytes(of: UInt32(neighbors.count).littleEndian, as: UInt32.self)
      list = layer + 4
    }
    for (i, id) in neighbors.enumerated() {
      list.storeBytes(of: id.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
    }
  }

  mutating func setDeleted(_ node: UInt32, _ deleted: Bool) throws {
    let writer = try requireWriter()
    guard try isDeleted(node) != deleted else { return }
    let record = try changeableRecord(node)
    let flags = record.load(fromByteOffset: layout.flagsOffset, as: UInt8.self)
    record.storeBytes(
      of: deleted ? flags | 1 : flags & ~1, toByteOffset: layout.flagsOffset, as: UInt8.self)
    invalidateCaches()
    if deleted {
      try writer.put(table, key: GraphLayout.deletedKey(node), value: [UInt8]())
      state.deletedCount += 1
    } else {
      try writer.delete(table, key: GraphLayout.deletedKey(node))
      state.deletedCount -= 1
    }
    stateChanged = true
  }

  mutating func removeNode(_ node: UInt32) throws {
    let writer = try requireWriter()
    guard try record(node) != nil else { return }
    let wasDeleted = try isDeleted(node)
    pending?.remove(node)
    pendingUpper?.remove(node)
    pendingVectors?.remove(node)
    invalidateCaches()
    try writer.delete(table, key: GraphLayout.nodeKey(node))
    try writer.delete(table, key: GraphLayout.upperKey(node))
    try writer.delete(table, key: GraphLayout.vectorKey(node))
    try writer.delete(table, key: GraphLayout.deletedKey(node))
    if wasDeleted { state.deletedCount -= 1 }
    state.nodeCount -= 1
    stateChanged = true
  }

  /// Writes the state record if anything changed it.
  mutating func saveState() throws {
    guard stateChanged else { return }
    try requireWriter().put(table, key: GraphLayout.stateKey, value: state.bytes)
    stateChanged = false
  }
}
