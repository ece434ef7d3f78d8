import Foundation
import LMDB

/// The generations of one collection and the moves between them: re-embedding into a
/// new one, switching, rolling back, and the query adapter of the active one.
///
/// A generation is one model's vectors and graph. The collection's record names the
/// active one (queries read it) and the building one (a `ReembedJob` fills it); the
/// others are retained for rollback, the newest `CollectionRecord.retain` of them.
/// `DocumentCollection`'s generation methods are this type's facade.
struct Generations {
  let collection: DocumentCollection

  init(of collection: DocumentCollection) {
    self.collection = collection
  }

  private var database: Database { collection.database }
  private var schema: Schema { collection.schema }
  private var name: String { collection.name }

  // MARK: Moves

  /// See `DocumentCollection.reembed(to:all:batchSize:progress:)`.
  func reembed(
    to version: Int?, all: Bool, batchSize: Int, progress: ((OperationProgress) throws -> Void)?
  ) throws -> ReembedReport {
    let start = Date()
    var (record, active) = try state()
    guard let settings = record.vectors, let active else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors to re-embed")
    }
    let target = version ?? record.building.flatMap { try? self.record($0)?.model } ?? active.model
    guard let model = target else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "holds given vectors: there is no model to re-embed with")
    }
    // Fails early for an unknown version, and for one whose vectors the collection's
    // index cannot hold (its dimension is fixed when the collection is made).
    let dimension = try database.encoder(version: model).dimension
    guard dimension == settings.dimension else {
      throw VectorDBError.modelUnsuitable(
        version: model,
        reason: "makes vectors of \(dimension) dimensions; collection \"\(name)\" holds"
          + " \(settings.dimension) (a collection's dimension is fixed: create another"
          + " collection with --model \(model))")
    }
    if record.building == nil && model == active.model && !all {
      // Only the stale vectors, in place.
      let job = try ReembedJob(
        collection, generation: active, settings: settings, batchSize: batchSize)
      let embedded = try job.run(progress: progress)
      return ReembedReport(
        active.id, model: model, embedded: embedded, resumed: false, switched: false, since: start)
    }
    let resumed = record.building != nil
    if let building = record.building, let existing = try self.record(building),
      existing.model != model
    {
      throw VectorDBError.collectionBusy(
        name: name,
        job: "a re-embed to model \(existing.model ?? 0) is in progress: \(Self.resumeOrCancel)")
    }
    if !resumed { record = try startBuilding(model: model) }
    guard let building = record.building, let generation = try self.record(building) else {
      throw VectorDBError.concurrentChange(
        collection: name, detail: "the generation being built is gone")
    }
    let job = try ReembedJob(
      collection, generation: generation, settings: settings, batchSize: batchSize)
    let embedded = try job.run(progress: progress)
    try switchTo(generation.id, settings: settings, batchSize: batchSize)
    return ReembedReport(
      generation.id, model: model, embedded: embedded, resumed: resumed, switched: true,
      since: start)
  }

  /// See `DocumentCollection.activate(model:progress:)`.
  func activate(model version: Int, progress: ((OperationProgress) throws -> Void)?) throws
    -> ReembedReport
  {
    let start = Date()
    let (record, active) = try state()
    guard let settings = record.vectors, let active else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    let model = try database.model(version: version)
    if model.kind == .adapter || active.model == version {
      try collection.write { txn, record in
        try setAdapter(model.kind == .adapter ? model : nil, in: txn, collection: record)
      }
      return ReembedReport(
        active.id, model: version, embedded: 0, resumed: false, switched: false, since: start)
    }
    guard let retained = try list().last(where: { $0.state == .retained && $0.model == version })
    else {
      return try reembed(to: version, all: false, batchSize: 256, progress: progress)
    }
    return try activate(
      generation: UInt32(retained.id), settings: settings, start: start, progress: progress)
  }

  /// See `DocumentCollection.rollback(progress:)`.
  func rollback(progress: ((OperationProgress) throws -> Void)?) throws -> ReembedReport {
    let start = Date()
    let (record, active) = try state()
    if let active, (active.adapters?.count ?? 0) > 1 {
      let restored = try collection.write { txn, _ -> GenerationRecord in
        guard var current = try self.record(active.id, in: txn) else { return active }
        current.adapters?.removeLast()
        try put(current, in: txn)
        return current
      }
      return ReembedReport(
        active.id, model: restored.adapter ?? restored.model, embedded: 0, resumed: false,
        switched: false, since: start)
    }
    guard let settings = record.vectors,
      let previous = try list().last(where: { $0.state == .retained })
    else {
      throw VectorDBError.notAvailable(
        collection: name, reason: "has no retained generation to roll back to")
    }
    return try activate(
      generation: UInt32(previous.id), settings: settings, start: start, progress: progress)
  }

  /// Makes `adapter` (nil: none) map the queries of the active generation, in the
  /// caller's transaction; a no-op when it already does.
  ///
  /// - Throws: `VectorDBError.notAvailable` for a collection without vectors;
  ///   `.modelUnsuitable` for an adapter over another model than the active generation's.
  func setAdapter(_ adapter: ModelInfo?, in txn: WriteTransaction, collection: CollectionRecord)
    throws
  {
    guard let id = collection.active, var active = try record(id, in: txn) else {
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
    try put(active, in: txn)
  }

  /// Starts a building generation of `model` (its job is then run by `reembed`), or
  /// joins the one another process started meanwhile. Returns the collection's record.
  ///
  /// - Throws: `VectorDBError.collectionBusy` when a job for another model started
  ///   meanwhile.
  func startBuilding(model: Int) throws -> CollectionRecord {
    try collection.write { txn, collection -> CollectionRecord in
      if let building = collection.building {
        // Another process started a job since we looked: join it, never orphan it.
        guard try record(building, in: txn)?.model == model else {
          throw VectorDBError.collectionBusy(
            name: name,
            job: "a re-embed to another model started meanwhile: \(Self.resumeOrCancel)")
        }
        return collection
      }
      // A rebuild with the same model keeps the query adapter: the vectors it maps
      // against are the same.
      let active = try collection.active.flatMap { try record($0, in: txn) }
      let generation = GenerationRecord(
        id: collection.nextGeneration, model: model, state: .building, created: Date(),
        completed: nil, count: 0,
        adapters: active.flatMap { $0.model == model ? $0.adapter : nil }.map { [$0] })
      collection.nextGeneration += 1
      collection.building = generation.id
      try put(generation, in: txn)
      return collection
    }
  }

  /// What to do about a re-embed in progress that blocks another (`collectionBusy`).
  static let resumeOrCancel = "resume it (`vdb reembed`) or drop it (`vdb reembed --cancel`)"

  /// See `DocumentCollection.cancelReembed()`.
  func cancelBuilding() throws -> GenerationRecord {
    let dropped = try collection.write { txn, owner -> GenerationRecord in
      guard let building = owner.building, let generation = try record(building, in: txn) else {
        throw VectorDBError.notAvailable(
          collection: name, reason: "has no re-embed in progress to cancel")
      }
      owner.building = nil
      _ = try txn.delete(
        schema.generations, key: GenerationKey(collection: collection.id, generation: building))
      try txn.deleteRange(schema.sources, SourceKey.generation(building, of: collection.id))
      return generation
    }
    // A job still running elsewhere finds its generation gone at its next commit.
    try dropIndex(dropped.id)
    return dropped
  }

  /// Catches a retained generation up with the documents, then switches to it.
  private func activate(
    generation id: UInt32, settings: VectorSettings, start: Date,
    progress: ((OperationProgress) throws -> Void)?
  ) throws -> ReembedReport {
    guard let generation = try record(id) else {
      throw VectorDBError.concurrentChange(collection: name, detail: "generation \(id) is gone")
    }
    let job = try ReembedJob(collection, generation: generation, settings: settings, batchSize: 256)
    let embedded = try job.run(progress: progress)
    try switchTo(generation.id, settings: settings, batchSize: 256)
    return ReembedReport(
      id, model: generation.model, embedded: embedded, resumed: false, switched: true,
      since: start)
  }

  // MARK: The switch

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
      guard var record = try self.record(generation) else { return }
      // Catch up from the start: writes may have landed behind the job's cursor.
      record.cursor = nil
      let job = try ReembedJob(
        collection, generation: record, settings: settings, batchSize: batchSize)
      _ = try job.run(progress: nil)
      let final = round >= Generations.switchRounds
      var dropped: [UInt32] = []
      let switched = try collection.write { txn, collection -> Bool in
        // Anything changed since the catch-up? Then catch up again (in this
        // transaction, on the last round).
        let stale = try job.staleDocuments(all: final, in: txn)
        if !stale.isEmpty {
          guard final, try job.embed(stale, in: txn) else { return false }
        }
        dropped = try makeActive(generation, in: txn, collection: &collection)
        return true
      }
      if switched {
        for old in dropped { try dropIndex(old) }
        return
      }
    }
  }

  /// Makes `generation` active in the caller's transaction: the active one is
  /// retained, and of the retained ones the newest `retain` are kept and the others
  /// dropped. Returns the dropped ones, whose index tables are freed after the commit.
  private func makeActive(
    _ generation: UInt32, in txn: WriteTransaction, collection owner: inout CollectionRecord
  ) throws -> [UInt32] {
    if var old = try owner.active.flatMap({ try record($0, in: txn) }), old.id != generation {
      old.state = .retained
      try put(old, in: txn)
    }
    guard var new = try record(generation, in: txn) else {
      throw VectorDBError.concurrentChange(
        collection: name, detail: "generation \(generation) was dropped during the switch")
    }
    new.state = .active
    new.completed = new.completed ?? Date()
    new.cursor = nil
    try put(new, in: txn)
    owner.active = generation
    if owner.building == generation { owner.building = nil }
    var retained: [GenerationRecord] = []
    try forEach(in: txn) { if $0.state == .retained { retained.append($0) } }
    let expired = retained.sorted { $0.completed ?? $0.created > $1.completed ?? $1.created }
      .dropFirst(owner.retain ?? 1)
    for old in expired {
      try txn.delete(
        schema.generations, key: GenerationKey(collection: collection.id, generation: old.id))
      try txn.deleteRange(schema.sources, SourceKey.generation(old.id, of: collection.id))
    }
    return expired.map(\.id)
  }

  /// Frees the pages of a dropped generation's index (its own transaction).
  private func dropIndex(_ generation: UInt32) throws {
    let name = GenerationRecord.indexName(collection: collection.id, generation: generation)
    guard
      let index = try? database.indexCache.open(
        name, environment: database.environment, create: nil)
    else {
      return
    }
    try storage { try database.environment.write { try index.drop(in: $0) } }
    database.indexCache.forget(name)
  }

  // MARK: Records

  /// The generations as users see them, oldest first.
  func list() throws -> [GenerationInfo] {
    let records = try collection.read { txn in
      var records: [GenerationRecord] = []
      try forEach(in: txn) { records.append($0) }
      return records
    }
    return try records.compactMap { record in
      guard let state = GenerationInfo.State(rawValue: record.state.rawValue) else { return nil }
      // The live count: upserts into the active generation do not rewrite its record.
      let name = GenerationRecord.indexName(collection: collection.id, generation: record.id)
      let index = try? database.indexCache.open(
        name, environment: database.environment, create: nil)
      let vectors =
        try index.map { index in try collection.read { try index.count(in: $0) } } ?? record.count
      return GenerationInfo(record, state: state, vectors: vectors)
    }
  }

  /// The collection's record and its active generation's, from one snapshot.
  func state() throws -> (CollectionRecord, GenerationRecord?) {
    let schema = self.schema
    let name = self.name
    return try collection.read { txn in
      guard let record = try Database.collectionRecord(name, in: txn, schema: schema) else {
        throw VectorDBError.collectionNotFound(name)
      }
      let active = try record.active.flatMap { try self.record($0, in: txn) }
      return (record, active)
    }
  }

  func record(_ generation: UInt32) throws -> GenerationRecord? {
    try collection.read { try record(generation, in: $0) }
  }

  func record(_ generation: UInt32, in txn: Transaction) throws -> GenerationRecord? {
    try Generations.record(generation, of: collection.id, in: txn, schema: schema)
  }

  /// The record of generation `generation` of the collection with id `collection`.
  static func record(
    _ generation: UInt32, of collection: UInt32, in txn: Transaction, schema: Schema
  ) throws -> GenerationRecord? {
    try txn.get(
      schema.generations, key: GenerationKey(collection: collection, generation: generation)
    ).map { try JSONDecoder().decode(GenerationRecord.self, from: Data($0)) }
  }

  func put(_ generation: GenerationRecord, in txn: WriteTransaction) throws {
    try txn.put(
      schema.generations, key: key(generation.id), value: try JSONEncoder().encode(generation))
  }

  /// Calls `body` with each generation's record, oldest first.
  private func forEach(in txn: Transaction, _ body: (GenerationRecord) throws -> Void) throws {
    try txn.forEach(in: schema.generations, under: .collection(collection.id)) { _, value in
      try body(try JSONDecoder().decode(GenerationRecord.self, from: Data(value)))
      return true
    }
  }

  private func key(_ generation: UInt32) -> GenerationKey {
    GenerationKey(collection: collection.id, generation: generation)
  }
}

extension ReembedReport {
  init(
    _ generation: UInt32, model: Int?, embedded: Int, resumed: Bool, switched: Bool,
    since start: Date
  ) {
    self.init(
      generation: Int(generation), model: model, embedded: embedded, resumed: resumed,
      switched: switched, seconds: Date().timeIntervalSince(start))
  }
}
