import Foundation
import HNSW
import LMDB

/// What an index holds and how it was built; fixed when the index is created.
package struct IndexSettings: Codable, Equatable, Sendable {
  /// The number of components of every vector.
  package var dimension: Int
  /// How distances are measured.
  package var metric: Metric
  /// M, Mmax0, efConstruction, level seed, consolidation threshold.
  package var parameters: HNSWParameters
  /// The layout version; see ``GraphLayout``.
  package var formatVersion: Int

  /// The layout version this code writes (and the newest it reads). Version 2 added
  /// a CRC-32C to every node and upper record; version 3 a bfloat16 copy of each vector
  /// in its node record, which searches walk the graph with. Older indexes are read
  /// and written as they are (version 1 without checksums, both without the copies,
  /// so their searches use float32 throughout).
  package static let currentFormat = 3

  package init(dimension: Int, metric: Metric, parameters: HNSWParameters = HNSWParameters()) {
    self.dimension = dimension
    self.metric = metric
    self.parameters = parameters
    formatVersion = Self.currentFormat
  }
}

/// What went wrong with an index, naming the index or node.
package enum VectorIndexError: Error, Equatable, CustomStringConvertible {
  /// No index is stored under this name.
  case notFound(name: String)
  /// An index already exists under this name.
  case alreadyExists(name: String)
  /// The settings are out of range.
  case invalidSettings(name: String, reason: String)
  /// The index was written by a newer layout version.
  case newerFormat(name: String, found: Int, supported: Int)
  /// The stored records are inconsistent; `detail` names the record.
  case corrupt(String)
  /// A write was attempted through a read transaction.
  case readOnly

  package var description: String {
    switch self {
    case .notFound(let name): return "no vector index named \"\(name)\""
    case .alreadyExists(let name): return "a vector index named \"\(name)\" already exists"
    case .invalidSettings(let name, let reason):
      return "vector index \"\(name)\": invalid settings: \(reason)"
    case .newerFormat(let name, let found, let supported):
      return
        "vector index \"\(name)\" has layout version \(found); this vdb reads up to \(supported)"
    case .corrupt(let detail): return "vector index is damaged: \(detail)"
    case .readOnly: return "the vector index was changed through a read transaction"
    }
  }
}

/// An HNSW index stored in one LMDB table of an environment: the vectors and the
/// graph, read zero-copy from the memory map. Opening costs one read; nothing is
/// rebuilt or loaded. Writes happen inside the caller's write transaction, so they
/// commit (or roll back) together with the caller's other writes.
///
/// ```swift
/// let env = try Environment.open(path: "/tmp/db")
/// let index = try VectorIndex.create("c1.g1.index", in: env, dimension: 384, metric: .cosine)
/// try env.write { txn in
///   try index.insert(ids: [0, 1], vectors: twoRows, in: txn)
/// }
/// let hits = try env.read { txn in try index.search(query, k: 10, in: txn) }
/// // hits: [Neighbor], nearest first; hit.distance is 1 − cosine
/// ```
///
/// Node ids are the caller's dense `UInt32`s (vdb's document row ids). Inserting an id
/// that is stored replaces its vector. A deleted id is kept as a tombstone (searches
/// walk through it but never return it) until enough are deleted to repair the graph
/// around them all at once; see ``HNSWParameters/consolidationThreshold``.
///
/// Thread safety: any number of threads may search at once, each in its own read
/// transaction; writes are serialised by LMDB's single writer.
package final class VectorIndex: @unchecked Sendable {
  /// The table name.
  package let name: String
  /// Dimension, metric and construction parameters.
  package let settings: IndexSettings
  let environment: Environment
  let table: Table
  let layout: GraphLayout

  private let lock = NSLock()
  /// Caches and scratch space of readers that are not searching right now.
  private var idleReaders: [(cache: ReaderCache, scratch: SearchScratch)] = []
  /// The writer's caches: LMDB runs one write transaction at a time.
  private let writerCache = ReaderCache()
  private let writerWorkerCaches = [ReaderCache()]
  /// Bytes of changed records a write keeps before writing them out (tests lower it).
  var pendingLimit = 128 << 20

  private init(name: String, settings: IndexSettings, environment: Environment, table: Table) {
    self.name = name
    self.settings = settings
    self.environment = environment
    self.table = table
    layout = GraphLayout(
      dimension: settings.dimension, parameters: settings.parameters,
      version: settings.formatVersion)
  }

  // MARK: Creating and opening

  /// Creates an empty index in table `name` of `environment`.
  ///
  /// Runs its own write transaction: call it outside any write transaction (LMDB has
  /// one writer; a nested one would wait for ever).
  ///
  /// - Throws: ``VectorIndexError/alreadyExists(name:)``,
  ///   ``VectorIndexError/invalidSettings(name:reason:)``,
  ///   ``VectorIndexError/corrupt(_:)`` when the table holds a graph without settings, or
  ///   an `LMDBError`.
  package static func create(
    _ name: String, in environment: Environment, dimension: Int, metric: Metric,
    parameters: HNSWParameters = HNSWParameters()
  ) throws -> VectorIndex {
    let settings = IndexSettings(dimension: dimension, metric: metric, parameters: parameters)
    guard (1...VectorFile.maxDimension).contains(dimension) else {
      throw VectorIndexError.invalidSettings(
        name: name, reason: "dimension \(dimension) is not in 1...\(VectorFile.maxDimension)")
    }
    do {
      try parameters.validate()
    } catch {
      throw VectorIndexError.invalidSettings(name: name, reason: "\(error)")
    }
    let table = try environment.table(name)
    let json = try JSONEncoder().encode(settings)
    try environment.write { txn in
      guard try txn.get(table, key: GraphLayout.paramsKey) == nil else {
        throw VectorIndexError.alreadyExists(name: name)
      }
      // Settings are written with the state, in one transaction: a state without them is
      // damage, and a fresh state over the graph would lose its nodes.
      guard try txn.get(table, key: GraphLayout.stateKey) == nil else {
        throw VectorIndexError.corrupt("index \"\(name)\": its settings record is missing")
      }
      try txn.put(table, key: GraphLayout.paramsKey, value: json)
      try txn.put(table, key: GraphLayout.stateKey, value: GraphState().bytes)
      try txn.put(table, key: GraphLayout.endKey, value: [UInt8]())
    }
    return VectorIndex(name: name, settings: settings, environment: environment, table: table)
  }

  /// Opens the index in table `name`: one read of its settings.
  ///
  /// Call it outside any write transaction the first time a process opens the table.
  ///
  /// - Throws: ``VectorIndexError/notFound(name:)``,
  ///   ``VectorIndexError/newerFormat(name:found:supported:)``,
  ///   ``VectorIndexError/corrupt(_:)`` for unreadable settings, or an `LMDBError`.
  package static func open(_ name: String, in environment: Environment) throws -> VectorIndex {
    let table = try environment.table(name)
    let settings = try environment.read { txn -> IndexSettings in
      guard let bytes = try txn.get(table, key: GraphLayout.paramsKey) else {
        throw VectorIndexError.notFound(name: name)
      }
      do {
        return try JSONDecoder().decode(IndexSettings.self, from: Data(bytes))
      } catch {
        throw VectorIndexError.corrupt("index \"\(name)\": settings record unreadable: \(error)")
      }
    }
    guard settings.formatVersion <= IndexSettings.currentFormat else {
      throw VectorIndexError.newerFormat(
        name: name, found: settings.formatVersion, supported: IndexSettings.currentFormat)
    }
    return VectorIndex(name: name, settings: settings, environment: environment, table: table)
  }

  // MARK: Writes (in the caller's write transaction)

  /// Inserts (or replaces) one vector; see ``insert(ids:vectors:threads:in:)``.
  package func insert(_ id: UInt32, vector: [Float], in txn: WriteTransaction) throws {
    try insert(ids: [id], vectors: vector, threads: 1, in: txn)
  }

  /// Inserts a batch: `vectors` holds `ids.count` rows of `dimension` floats. A stored
  /// id gets the new vector; a deleted one comes back. `threads` (1 or 2 on this kind
  /// of machine) share the searches of the batch.
  ///
  /// - Throws: `HNSWError` for a bad vector (wrong length, NaN, zero vector for cosine)
  ///   or a duplicate id, before anything is written; `LMDBError` from the writes.
  package func insert(
    ids: [UInt32], vectors: [Float], threads: Int = 1, in txn: WriteTransaction
  ) throws {
    try withWriter(txn) { graph in
      try graph.insert(ids: ids, vectors: vectors, threads: threads)
    }
  }

  /// Deletes one node; returns false if it was not stored (or already deleted).
  @discardableResult
  package func delete(_ id: UInt32, in txn: WriteTransaction) throws -> Bool {
    try delete(ids: [id], in: txn) == 1
  }

  /// Deletes nodes and returns how many were live. Deleted nodes stop appearing in
  /// results at once; when they reach the consolidation threshold, the graph is
  /// repaired around them and they are removed (in this transaction).
  @discardableResult
  package func delete(ids: [UInt32], threads: Int = 1, in txn: WriteTransaction) throws -> Int {
    try withWriter(txn) { graph in try graph.delete(ids: ids, threads: threads) }
  }

  /// Repairs the graph around every deleted node and removes them now.
  package func consolidate(threads: Int = 1, in txn: WriteTransaction) throws {
    try withWriter(txn) { graph in try graph.consolidate(threads: threads) }
  }

  /// Removes every node and the settings: the table is left empty.
  package func drop(in txn: WriteTransaction) throws {
    writerCache.invalidate()
    try txn.clear(table)
  }

  private func withWriter<R>(
    _ txn: WriteTransaction, _ body: (inout HNSWGraph<LMDBGraphStorage>) throws -> R
  ) throws -> R {
    // The caches may hold pointers of an earlier transaction.
    let caches = [writerCache] + writerWorkerCaches
    for cache in caches { cache.invalidate() }
    defer { for cache in caches { cache.invalidate() } }
    var storage = try LMDBGraphStorage(
      transaction: txn, table: table, layout: layout, cache: writerCache,
      workerCaches: writerWorkerCaches)
    storage.pendingLimit = pendingLimit
    var graph = HNSWGraph(
      storage: storage, metric: settings.metric, parameters: settings.parameters)
    // Write the records and the state even when `body` fails half-way: the caller may
    // still commit the changes made so far, and the state must describe them.
    do {
      let result = try body(&graph)
      try graph.storage.flush()
      try graph.storage.saveState()
      return result
    } catch {
      try? graph.storage.flush()
      try? graph.storage.saveState()
      throw error
    }
  }

  // MARK: Reads (in the caller's read or write transaction)

  /// The `k` nearest live nodes to `query`, nearest first (`Neighbor.distance` is
  /// 1 − cosine for cosine, 1 − dot for dot, the squared distance for l2; see
  /// `Metric.similarity(fromDistance:)`).
  ///
  /// - Parameters:
  ///   - ef: search width; larger is more exact and slower (docs/index.md).
  ///   - filter: only nodes it accepts are returned (others are walked through).
  ///     For a selective filter, pass the matching ids to
  ///     ``search(_:k:ef:candidates:in:)`` instead.
  package func search(
    _ query: [Float], k: Int, ef: Int = 64, filter: ((UInt32) -> Bool)? = nil,
    in txn: Transaction
  ) throws -> [Neighbor] {
    try withReader(txn) { graph, scratch in
      try graph.search(query, k: k, ef: ef, scratch: scratch, filter: filter)
    }
  }

  /// The `k` nearest live nodes among `candidates` (for metadata filters): an exact
  /// scan when there are few (``prefersExactScan(candidates:ef:in:)``), otherwise a
  /// graph search that returns only candidates. Recall is 1 in the first case and
  /// close to that of an unfiltered search in the second.
  package func search(
    _ query: [Float], k: Int, ef: Int = 64, candidates: [UInt32], in txn: Transaction
  ) throws -> [Neighbor] {
    if try prefersExactScan(candidates: candidates.count, ef: ef, in: txn) {
      return try exactSearch(query, k: k, candidates: candidates, in: txn)
    }
    var members = [UInt64](repeating: 0, count: Int(try nodeIDBound(in: txn)) / 64 + 1)
    for id in candidates where Int(id) / 64 < members.count {
      members[Int(id) / 64] |= 1 << UInt64(id % 64)
    }
    return try search(
      query, k: k, ef: ef,
      filter: { id in
        let word = Int(id) / 64
        return word < members.count && members[word] & (1 << UInt64(id % 64)) != 0
      }, in: txn)
  }

  /// Whether scanning `candidates` nodes exactly costs less than a filtered graph
  /// search. The walk expands about ef/s nodes for a filter passing a fraction s of
  /// the n nodes, computing about Mmax0/2 distances each; the scan computes s·n. They
  /// cost the same at s·n = √(ef · Mmax0 · n / 2): about 7,000 candidates for 50,000
  /// nodes at ef 64, 32,000 for a million.
  package func prefersExactScan(candidates: Int, ef: Int, in txn: Transaction) throws -> Bool {
    let n = Double(try count(in: txn))
    let breakEven = (Double(ef) * Double(settings.parameters.mMax0) * n / 2).squareRoot()
    return Double(candidates) <= max(breakEven, 1_000)
  }

  /// The `k` nearest live nodes by computing every distance: over `candidates`, or
  /// over all nodes when `candidates` is nil. Ground truth, and `exact: true` queries.
  package func exactSearch(
    _ query: [Float], k: Int, candidates: [UInt32]? = nil, in txn: Transaction
  ) throws -> [Neighbor] {
    try withReader(txn) { graph, _ in
      if let candidates { return try graph.exactSearch(query, k: k, candidates: candidates) }
      return try graph.exactSearch(query, k: k)
    }
  }

  /// The number of live (not deleted) nodes.
  package func count(in txn: Transaction) throws -> Int {
    let storage = try LMDBGraphStorage(
      transaction: txn, table: table, layout: layout, cache: ReaderCache())
    return storage.nodeCount - storage.deletedCount
  }

  /// Whether `id` is stored and not deleted.
  package func contains(_ id: UInt32, in txn: Transaction) throws -> Bool {
    try withReader(txn) { graph, _ in
      try graph.storage.level(of: id) != nil && !graph.storage.isDeleted(id)
    }
  }

  /// The stored vector of `id` (normalised, for cosine), or nil if it is not stored.
  ///
  /// - Throws: ``VectorIndexError/corrupt(_:)`` when its record fails its checksum
  ///   (checked here, where one record is read, not in searches).
  package func vector(of id: UInt32, in txn: Transaction) throws -> [Float]? {
    try withReader(txn) { graph, _ in
      guard try graph.storage.level(of: id) != nil else { return nil }
      let pointer = try graph.storage.vector(of: id)
      let size = layout.hasWalkVectors ? layout.vectorRecordSize : layout.nodeRecordSize
      guard layout.isSound(UnsafeRawBufferPointer(start: pointer, count: size)) else {
        throw VectorIndexError.corrupt("index \"\(name)\": node \(id) fails its checksum")
      }
      return (0..<settings.dimension).map {
        pointer.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)
      }
    }
  }

  /// Node, upper and vector records whose CRC-32C does not match, and (layout version
  /// 3 on) node records without a vector record, or whose bfloat16 copy is not the
  /// rounding of it, one line each (none for version 1, which has no checksums);
  /// reads every record.
  package func recordFailures(in txn: Transaction) throws -> [String] {
    guard layout.isChecksummed else { return [] }
    let kinds: [UInt8: String] = [
      GraphLayout.nodeTag: "node record (walk vector and layer-0 links)",
      GraphLayout.upperTag: "upper-layer links", GraphLayout.vectorTag: "vector record",
    ]
    var failures: [String] = []
    try txn.forEach(in: table, from: GraphLayout.nodeKey(0)) { key, value in
      guard key.count == 5, let kind = kinds[key[0]] else { return true }
      let node = UInt32(bigEndian: key.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
      if !layout.isSound(value) {
        failures.append("node \(node): its \(kind) fails its checksum")
        return true
      }
      guard layout.hasWalkVectors else { return true }
      if key[0] == GraphLayout.nodeTag {
        guard let vector = try txn.get(table, key: GraphLayout.vectorKey(node)) else {
          failures.append("node \(node): no vector record")
          return true
        }
        if vector.count == layout.vectorRecordSize,
          !layout.isRounding(of: vector.baseAddress!, value.baseAddress!)
        {
          failures.append("node \(node): its bfloat16 copy is not the rounding of its vector")
        }
      } else if key[0] == GraphLayout.vectorTag,
        try txn.get(table, key: GraphLayout.nodeKey(node)) == nil
      {
        failures.append("node \(node): a vector record without a node record")
      }
      return true
    }
    return failures
  }

  /// Checks the stored graph (dangling links, capacities, entry point, reachability);
  /// reads every node.
  package func checkIntegrity(in txn: Transaction) throws -> IntegrityReport {
    try withReader(txn) { graph, _ in try graph.checkIntegrity() }
  }

  /// Bytes of LMDB pages the index's table occupies.
  package func byteSize(in txn: Transaction) throws -> Int {
    try txn.byteSize(table)
  }

  func nodeIDBound(in txn: Transaction) throws -> Int {
    try LMDBGraphStorage(transaction: txn, table: table, layout: layout, cache: ReaderCache())
      .nodeIDBound
  }

  /// Runs `body` with a graph over `txn` and a reader's cache and scratch, taken from
  /// the pool (pointers cached by an earlier search of the same snapshot stay valid).
  private func withReader<R>(
    _ txn: Transaction, _ body: (HNSWGraph<LMDBGraphStorage>, SearchScratch) throws -> R
  ) throws -> R {
    if txn is WriteTransaction {
      // Pointers into a write transaction's dirty pages die with it: use the writer's
      // cache, emptied before and after.
      writerCache.invalidate()
      defer { writerCache.invalidate() }
      let storage = try LMDBGraphStorage(
        transaction: txn, table: table, layout: layout, cache: writerCache)
      return try body(
        HNSWGraph(storage: storage, metric: settings.metric, parameters: settings.parameters),
        SearchScratch())
    }
    lock.lock()
    let reader = idleReaders.popLast() ?? (ReaderCache(), SearchScratch())
    lock.unlock()
    defer {
      lock.lock()
      idleReaders.append(reader)
      lock.unlock()
    }
    reader.cache.adopt(transaction: txn.id, mapSize: environment.mapSize)
    let storage = try LMDBGraphStorage(
      transaction: txn, table: table, layout: layout, cache: reader.cache)
    return try body(
      HNSWGraph(storage: storage, metric: settings.metric, parameters: settings.parameters),
      reader.scratch)
  }
}
