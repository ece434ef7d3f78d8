import Foundation
import LMDB
import Tensor

/// A generation as users see it: one model's vectors and graph for a collection.
public struct GenerationInfo: Codable, Sendable, Equatable {
  public enum State: String, Codable, Sendable {
    /// Being built by a re-embed job (resumable).
    case building
    /// The one queries read.
    case active
    /// A previous active generation, kept for rollback.
    case retained
  }
  public var id: Int
  public var model: Int?
  /// The query adapter (a model version over `model`) that maps queries, if any.
  public var adapter: Int?
  public var state: State
  public var created: Date
  public var completed: Date?
  /// Vectors stored.
  public var vectors: Int
  /// How far a building generation's job got (the last document id embedded).
  public var cursor: String?
}

/// What a re-embed did.
public struct ReembedReport: Codable, Sendable {
  public var generation: Int
  public var model: Int?
  /// Documents embedded by this call.
  public var embedded: Int
  /// Whether it continued a job that an earlier process started.
  public var resumed: Bool
  /// Whether the new generation became active.
  public var switched: Bool
  public var seconds: Double
}

extension Collection {
  /// The collection's generations, oldest first.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func generations() throws -> [GenerationInfo] {
    let schema = database.schema
    let records = try read { txn in
      var records: [GenerationRecord] = []
      try txn.forEach(in: schema.generations, under: .collection(id)) { _, value in
        records.append(try JSONDecoder().decode(GenerationRecord.self, from: Data(value)))
        return true
      }
      return records
    }
    return try records.compactMap { record in
      guard let state = GenerationInfo.State(rawValue: record.state.rawValue) else { return nil }
      // The live count: upserts into the active generation do not rewrite its record.
      let name = GenerationRecord.indexName(collection: id, generation: record.id)
      let index = try? database.indexCache.open(
        name, environment: database.environment, create: nil)
      let vectors = try index.map { index in try read { try index.count(in: $0) } } ?? record.count
      return GenerationInfo(
        id: Int(record.id), model: record.model, adapter: record.adapter, state: state,
        created: record.created,
        completed: record.completed, vectors: vectors, cursor: record.cursor)
    }
  }

  /// Re-embeds the collection with model `version` (default: the collection's current
  /// model) into a new generation, then makes it active in one transaction.
  ///
  /// The job works in batches of `batchSize` documents in id order; each batch is one
  /// write transaction that also records the job's cursor, so a job killed at any
  /// moment resumes where it stopped on the next call (a building generation is always
  /// resumed first). Queries keep reading the active generation throughout. Documents
  /// upserted or deleted meanwhile are caught up before the switch: every vector
  /// records the hash of the text it was made from, so changed and deleted documents
  /// are found by comparison. The previous generation is retained for rollback.
  ///
  /// When `version` is the active generation's model and `all` is false, only stale
  /// vectors (text changed since they were made) are re-embedded, in place.
  ///
  /// `progress` is called after each batch; throwing from it stops the job (resumable).
  ///
  /// - Throws: `VectorDBError.notAvailable` for a collection without vectors or model;
  ///   `.modelNotFound`, `.modelWithoutWeights`; `.collectionBusy` when a re-embed to another model
  ///   is in progress; `.concurrentChange` when its generation is dropped meanwhile; `.storage`;
  ///   what `progress` throws (the job stays resumable).
  @discardableResult
  public func reembed(
    to version: Int? = nil, all: Bool = false, batchSize: Int = 256,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ReembedReport {
    let start = Date()
    var (record, active) = try state()
    guard let settings = record.vectors, let active else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors to re-embed")
    }
    let target =
      version ?? record.building.flatMap { try? generationRecord($0)?.model } ?? active.model
    guard let model = target else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "holds given vectors: there is no model to re-embed with")
    }
    _ = try database.encoder(version: model)  // fails early for an unknown version
    if record.building == nil && model == active.model && !all {
      let embedded = try catchUp(
        generation: active, settings: settings, batchSize: batchSize, progress: progress)
      return ReembedReport(
        generation: Int(active.id), model: model, embedded: embedded, resumed: false,
        switched: false,
        seconds: Date().timeIntervalSince(start))
    }
    var resumed = true
    if let building = record.building, let existing = try generationRecord(building),
      existing.model != model
    {
      throw VectorDBError.collectionBusy(
        name: name,
        job:
          "a re-embed to model \(existing.model ?? 0) is in progress: resume it first (`vdb reembed`)"
      )
    }
    if record.building == nil {
      resumed = false
      record = try startGeneration(model: model)
    }
    let generation = try generationRecord(record.building!)!
    let embedded = try catchUp(
      generation: generation, settings: settings, batchSize: batchSize, progress: progress)
    try switchTo(generation.id, settings: settings, batchSize: batchSize)
    return ReembedReport(
      generation: Int(generation.id), model: model, embedded: embedded, resumed: resumed,
      switched: true,
      seconds: Date().timeIntervalSince(start))
  }

  /// Makes model `version` the one that answers queries.
  ///
  /// - A query adapter (instant): it maps the queries of the active generation, which
  ///   must hold its parent encoder's vectors.
  /// - An encoder: the retained generation of that model becomes active again (instant),
  ///   keeping the current one retained; documents changed since it was active are caught
  ///   up first. Without a retained generation of that model, re-embeds into a new one.
  ///   The active generation's own model: its query adapter, if any, is switched off.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelUnsuitable` for an adapter over another
  ///   model than the active generation's.
  @discardableResult
  public func activate(model version: Int, progress: ((OperationProgress) throws -> Void)? = nil)
    throws
    -> ReembedReport
  {
    let start = Date()
    let (record, active) = try state()
    guard let settings = record.vectors, let active else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    let model = try database.model(version: version)
    if model.kind == .adapter || active.model == version {
      try setAdapter(model.kind == .adapter ? model : nil)
      return ReembedReport(
        generation: Int(active.id), model: version, embedded: 0, resumed: false,
        switched: false, seconds: Date().timeIntervalSince(start))
    }
    guard
      let retained = try generations().last(where: { $0.state == .retained && $0.model == version })
    else {
      return try reembed(to: version, progress: progress)
    }
    return try activate(
      generation: UInt32(retained.id), settings: settings, start: start, progress: progress)
  }

  /// Undoes the last switch: the last query adapter activation on the active generation
  /// if there is one (instant), else back to the most recent retained generation
  /// (whatever its model).
  ///
  /// - Throws: `VectorDBError.notAvailable` when there is nothing to roll back to.
  @discardableResult
  public func rollback(progress: ((OperationProgress) throws -> Void)? = nil) throws
    -> ReembedReport
  {
    let (record, active) = try state()
    if let active, (active.adapters?.count ?? 0) > 1 {
      let start = Date()
      let restored = try write { txn, _ -> GenerationRecord in
        guard var current = try generationRecord(active.id, in: txn) else { return active }
        current.adapters?.removeLast()
        try putGeneration(current, in: txn)
        return current
      }
      return ReembedReport(
        generation: Int(active.id), model: restored.adapter ?? restored.model, embedded: 0,
        resumed: false, switched: false, seconds: Date().timeIntervalSince(start))
    }
    guard let settings = record.vectors,
      let previous = try generations().last(where: { $0.state == .retained })
    else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "has no retained generation to roll back to")
    }
    return try activate(
      generation: UInt32(previous.id), settings: settings, start: Date(), progress: progress)
  }

  /// Makes `adapter` (nil: none) map the queries of the active generation, in one
  /// transaction; a no-op when it already does.
  func setAdapter(_ adapter: ModelInfo?) throws {
    try write { txn, collection in try setAdapter(adapter, in: txn, collection: collection) }
  }

  /// `setAdapter` inside the caller's transaction.
  func setAdapter(_ adapter: ModelInfo?, in txn: WriteTransaction, collection: CollectionRecord)
    throws
  {
    guard let id = collection.active, var active = try generationRecord(id, in: txn) else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    if let adapter, adapter.parent != active.model {
      throw VectorDBError.modelUnsuitable(
        version: adapter.version,
        reason: "is an adapter that maps queries for model v\(adapter.parent ?? 0), but "
          + "\"\(name)\" holds vectors of model v\(active.model ?? 0): activate v\(adapter.parent ?? 0) first"
      )
    }
    guard active.adapter != adapter?.version else { return }
    active.adapters = (active.adapters ?? [0]) + [adapter?.version ?? 0]
    try putGeneration(active, in: txn)
  }

  /// Catches a retained generation up with the documents, then switches to it.
  private func activate(
    generation id: UInt32, settings: VectorSettings, start: Date,
    progress: ((OperationProgress) throws -> Void)?
  ) throws -> ReembedReport {
    guard let generation = try generationRecord(id) else {
      throw VectorDBError.concurrentChange(collection: name, detail: "generation \(id) is gone")
    }
    let embedded = try catchUp(
      generation: generation, settings: settings, batchSize: 256, progress: progress)
    try switchTo(generation.id, settings: settings, batchSize: 256)
    return ReembedReport(
      generation: Int(id), model: generation.model, embedded: embedded, resumed: false,
      switched: true,
      seconds: Date().timeIntervalSince(start))
  }

  // MARK: The job's steps

  /// Starts (or resumes) a building generation of model `version` and embeds every
  /// document into it, without switching. Returns the generation id.
  func build(model version: Int, batchSize: Int, progress: ((OperationProgress) throws -> Void)?)
    throws -> UInt32
  {
    var (record, _) = try state()
    guard let settings = record.vectors else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    if let building = record.building, try generationRecord(building)?.model != version {
      try abandon(building)
      record.building = nil
    }
    if record.building == nil { record = try startGeneration(model: version) }
    let generation = try generationRecord(record.building!)!
    _ = try catchUp(
      generation: generation, settings: settings, batchSize: batchSize, progress: progress)
    return generation.id
  }

  /// Switches to a generation made by `build` (catching up writes made since).
  func promote(_ generation: UInt32, batchSize: Int = 256) throws {
    let (record, _) = try state()
    guard let settings = record.vectors else { return }
    try switchTo(generation, settings: settings, batchSize: batchSize)
  }

  /// Drops a building generation that will not be switched to.
  func abandon(_ generation: UInt32) throws {
    let schema = database.schema
    try write { txn, collection in
      if collection.building == generation { collection.building = nil }
      try txn.delete(
        schema.generations, key: GenerationKey(collection: id, generation: generation))
      try txn.deleteRange(schema.sources, SourceKey.generation(generation, of: id))
    }
    try dropIndex(generation)
  }

  private func state() throws -> (CollectionRecord, GenerationRecord?) {
    let schema = database.schema
    let name = self.name
    return try read { txn in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema) else {
        throw VectorDBError.collectionNotFound(name)
      }
      let active = try record.active.flatMap { try generationRecord($0, in: txn) }
      return (record, active)
    }
  }

  func generationRecord(_ generation: UInt32) throws -> GenerationRecord? {
    try read { try generationRecord(generation, in: $0) }
  }

  private func generationRecord(_ generation: UInt32, in txn: Transaction) throws
    -> GenerationRecord?
  {
    try txn.get(
      database.schema.generations, key: GenerationKey(collection: id, generation: generation)
    ).map {
      try JSONDecoder().decode(GenerationRecord.self, from: Data($0))
    }
  }

  private func putGeneration(_ generation: GenerationRecord, in txn: WriteTransaction) throws {
    try txn.put(
      database.schema.generations,
      key: GenerationKey(collection: id, generation: generation.id),
      value: try JSONEncoder().encode(generation))
  }

  func startGeneration(model: Int) throws -> CollectionRecord {
    try write { txn, collection -> CollectionRecord in
      if let building = collection.building {
        // Another process started a job since we looked: join it, never orphan it.
        guard try generationRecord(building, in: txn)?.model == model else {
          throw VectorDBError.collectionBusy(
            name: name,
            job: "a re-embed to another model started meanwhile: resume it first (`vdb reembed`)")
        }
        return collection
      }
      // A rebuild with the same model keeps the query adapter: the vectors it maps
      // against are the same.
      let active = try collection.active.flatMap { try generationRecord($0, in: txn) }
      let generation = GenerationRecord(
        id: collection.nextGeneration, model: model, state: .building, created: Date(),
        completed: nil, count: 0,
        adapters: active.flatMap { $0.model == model ? $0.adapter : nil }.map { [$0] })
      collection.nextGeneration += 1
      collection.building = generation.id
      try putGeneration(generation, in: txn)
      return collection
    }
  }

  /// Embeds every document whose vector in `generation` is missing or stale, and
  /// removes vectors whose document is gone; batch by batch, each batch one write
  /// transaction that checks the documents did not change meanwhile. Returns how many
  /// documents it embedded.
  private func catchUp(
    generation: GenerationRecord, settings: VectorSettings, batchSize: Int,
    progress: ((OperationProgress) throws -> Void)?
  ) throws -> Int {
    guard batchSize >= 1 else {
      throw VectorDBError.invalidInput(
        source: "batch size", line: nil, reason: "it must be at least 1; it is \(batchSize)")
    }
    guard let model = generation.model else { return 0 }
    let encoder = try database.encoder(version: model)
    let index = try openIndex(generation.id, settings: settings)
    let schema = database.schema
    let total = try count()
    var embedded = 0
    var cursor = generation.cursor
    while true {
      // Read the next batch of documents needing work, from the cursor on.
      let (batch, orphans, next) = try read {
        txn -> ([(String, DocumentRecord)], [UInt32], String?) in
        var batch: [(String, DocumentRecord)] = []
        var last: String?
        let documents = KeyRange.collection(id)
        let start = cursor.map { DocumentKey(collection: id, id: $0).successor }
        try txn.forEach(in: schema.docs, from: start ?? documents.prefix.bytes) { key, value in
          guard documents.contains(key), batch.count < batchSize else { return false }
          let documentID = DocumentKey.id(of: key)
          last = documentID
          let document = try DocumentRecord(bytes: value, path: database.path)
          let source = try txn.get(
            schema.sources,
            key: SourceKey(collection: id, generation: generation.id, row: document.row))
          if source.map(Array.init) != document.hash.bytes { batch.append((documentID, document)) }
          return true
        }
        // At the end of the documents: vectors whose document is gone.
        var orphans: [UInt32] = []
        if last == nil {
          let sources = SourceKey.generation(generation.id, of: id)
          try txn.forEach(in: schema.sources, under: sources) { key, _ in
            guard let row = SourceKey.row(of: key) else { return true }
            if try txn.get(schema.rows, key: RowKey(collection: id, row: row)) == nil {
              orphans.append(row)
            }
            return true
          }
        }
        return (batch, orphans, last)
      }
      let vectors = batch.isEmpty ? [] : encoder.embedMatrix(batch.map(\.1.text)).values
      let advanced = try write { txn, collection -> Bool in
        guard try generationRecord(generation.id, in: txn) != nil else {
          throw VectorDBError.concurrentChange(
            collection: name, detail: "generation \(generation.id) was dropped during the job")
        }
        embedded += try store(
          batch, vectors: vectors, orphans: orphans, generation: generation.id,
          dimension: settings.dimension, index: index, in: txn)
        if var stored = try generationRecord(generation.id, in: txn) {
          stored.cursor = next
          stored.count = try index.count(in: txn)
          try putGeneration(stored, in: txn)
        }
        return next != nil
      }
      cursor = next
      try progress?(OperationProgress(done: min(embedded, total), total: total))
      if !advanced { return embedded }
    }
  }

  /// Writes the vectors of `batch` (documents unchanged since they were read) into
  /// generation `generation`, and removes the vectors of `orphans` whose document is
  /// still gone. Returns how many vectors it wrote.
  private func store(
    _ batch: [(String, DocumentRecord)], vectors: [Float], orphans: [UInt32],
    generation: UInt32, dimension: Int, index: VectorIndex, in txn: WriteTransaction
  ) throws -> Int {
    let schema = database.schema
    var rows: [UInt32] = []
    var values: [Float] = []
    for (offset, (documentID, document)) in batch.enumerated() {
      guard
        let bytes = try txn.get(schema.docs, key: DocumentKey(collection: id, id: documentID)),
        try DocumentRecord(bytes: bytes, path: database.path).hash == document.hash
      else { continue }
      rows.append(document.row)
      values += vectors[offset * dimension..<(offset + 1) * dimension]
      try txn.put(
        schema.sources,
        key: SourceKey(collection: id, generation: generation, row: document.row),
        value: document.hash.bytes)
    }
    if !rows.isEmpty {
      try index.insert(ids: rows, vectors: values, threads: Parallel.coreCount, in: txn)
    }
    for row in orphans
    where try txn.get(schema.rows, key: RowKey(collection: id, row: row)) == nil {
      try index.delete(row, in: txn)
      try txn.delete(
        schema.sources, key: SourceKey(collection: id, generation: generation, row: row))
    }
    return rows.count
  }

  private func openIndex(_ generation: UInt32, settings: VectorSettings) throws -> VectorIndex {
    try storage {
      try database.indexCache.open(
        GenerationRecord.indexName(collection: id, generation: generation),
        environment: database.environment, create: settings)
    }
  }

  /// Catch-up rounds before a switch that writes keep postponing takes the writer's
  /// lock for its last round (see `switchTo`).
  static let switchRounds = 3

  /// Makes `generation` active in one transaction once a last check finds nothing
  /// stale; the previous active generation is retained and older ones dropped.
  ///
  /// Each round catches up outside the switching transaction, so writers are held back
  /// only for the check. If writes keep landing for `switchRounds` rounds, the last
  /// catch-up runs inside the switching transaction: a steady stream of writes then
  /// waits for it (as long as embedding what changed since the previous round takes)
  /// instead of postponing the switch forever.
  private func switchTo(_ generation: UInt32, settings: VectorSettings, batchSize: Int) throws {
    for round in 1... {
      guard let record = try generationRecord(generation) else { return }
      // Catch up from the start: writes may have landed behind the job's cursor.
      var restart = record
      restart.cursor = nil
      _ = try catchUp(generation: restart, settings: settings, batchSize: batchSize, progress: nil)
      let schema = database.schema
      let final = round >= Collection.switchRounds
      let encoder = try record.model.map { try database.encoder(version: $0) }
      let index = try openIndex(generation, settings: settings)
      var dropped: [UInt32] = []
      let switched = try write { txn, collection -> Bool in
        // Anything changed since the catch-up? Then catch up again (in this
        // transaction, on the last round).
        var stale: [(String, DocumentRecord)] = []
        try txn.forEach(in: schema.docs, under: .collection(id)) { key, value in
          let document = try DocumentRecord(bytes: value, path: database.path)
          let source = try txn.get(
            schema.sources,
            key: SourceKey(collection: id, generation: generation, row: document.row))
          if source.map(Array.init) != document.hash.bytes {
            stale.append((DocumentKey.id(of: key), document))
          }
          return final || stale.isEmpty
        }
        if !stale.isEmpty {
          guard final, let encoder else { return false }
          let vectors = encoder.embedMatrix(stale.map(\.1.text)).values
          _ = try store(
            stale, vectors: vectors, orphans: [], generation: generation,
            dimension: settings.dimension, index: index, in: txn)
        }
        let previous = collection.active
        if var old = try previous.flatMap({ try generationRecord($0, in: txn) }),
          old.id != generation
        {
          old.state = .retained
          try putGeneration(old, in: txn)
        }
        var new = try generationRecord(generation, in: txn)!
        new.state = .active
        new.completed = new.completed ?? Date()
        new.cursor = nil
        try putGeneration(new, in: txn)
        collection.active = generation
        if collection.building == generation { collection.building = nil }
        // Retain the newest `retain` previous generations; drop the rest.
        var retained: [GenerationRecord] = []
        try txn.forEach(in: schema.generations, under: .collection(id)) { _, value in
          let other = try JSONDecoder().decode(GenerationRecord.self, from: Data(value))
          if other.state == .retained { retained.append(other) }
          return true
        }
        for old in retained.sorted(by: { $0.completed ?? $0.created > $1.completed ?? $1.created })
          .dropFirst(collection.retain ?? 1)
        {
          try txn.delete(
            schema.generations, key: GenerationKey(collection: id, generation: old.id))
          try txn.deleteRange(schema.sources, SourceKey.generation(old.id, of: id))
          dropped.append(old.id)
        }
        return true
      }
      if switched {
        for old in dropped { try dropIndex(old) }
        return
      }
    }
  }

  /// Frees the pages of a dropped generation's index (its own transaction).
  private func dropIndex(_ generation: UInt32) throws {
    let name = GenerationRecord.indexName(collection: id, generation: generation)
    guard
      let index = try? database.indexCache.open(
        name, environment: database.environment, create: nil)
    else {
      return
    }
    try storage { try database.environment.write { try index.drop(in: $0) } }
    database.indexCache.forget(name)
  }
}
