import Foundation
import LMDB

/// A generation as users see it: one model's vectors and graph for a collection.
public struct GenerationInfo: Codable, Sendable, Equatable {
  /// Where a generation is in its life (JSON `state`).
  public enum State: String, Codable, Sendable {
    /// Being built by a re-embed job (resumable).
    case building
    /// The one queries read.
    case active
    /// A previous active generation, kept for rollback.
    case retained
  }
  /// The generation's id, unique in its collection and never reused (JSON `id`).
  public var id: Int
  /// The encoder version that made its vectors (JSON `model`; nil: given vectors).
  public var model: Int?
  /// The query adapter (a model version over `model`) that maps queries, if any.
  public var adapter: Int?
  /// Building, active or retained (JSON `state`).
  public var state: State
  /// When it was created (JSON `created`, ISO 8601).
  public var created: Date
  /// When its re-embed job finished (JSON `completed`; nil: still building).
  public var completed: Date?
  /// Vectors stored.
  public var vectors: Int
  /// How far a building generation's job got (the last document id embedded).
  public var cursor: String?
}

extension GenerationInfo {
  /// A generation's record as users see it, with `vectors` counted by the caller.
  init(_ record: GenerationRecord, state: State, vectors: Int) {
    self.init(
      id: Int(record.id), model: record.model, adapter: record.adapter, state: state,
      created: record.created, completed: record.completed, vectors: vectors,
      cursor: record.cursor)
  }
}

/// What a re-embed did.
public struct ReembedReport: Codable, Sendable {
  /// The generation embedded into (JSON `generation`).
  public var generation: Int
  /// The model version it embedded with (JSON `model`; nil: given vectors).
  public var model: Int?
  /// Documents embedded by this call.
  public var embedded: Int
  /// Whether it continued a job that an earlier process started.
  public var resumed: Bool
  /// Whether the new generation became active.
  public var switched: Bool
  /// Wall-clock seconds the call took (JSON `seconds`).
  public var seconds: Double
}

extension DocumentCollection {
  /// The collection's generations, oldest first.
  ///
  /// - Throws: `VectorDBError.collectionNotFound` when the collection was dropped; `.storage`,
  ///   `.damaged`.
  public func generations() throws -> [GenerationInfo] {
    try Generations(of: self).list()
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
  ///   `.modelNotFound`, `.modelWithoutWeights`; `.modelUnsuitable` for a model whose
  ///   vectors are of another dimension than the collection's; `.collectionBusy` when a re-embed to another model
  ///   is in progress; `.concurrentChange` when its generation is dropped meanwhile; `.storage`;
  ///   what `progress` throws (the job stays resumable).
  @discardableResult
  public func reembed(
    to version: Int? = nil, all: Bool = false, batchSize: Int = 256,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ReembedReport {
    try Generations(of: self).reembed(
      to: version, all: all, batchSize: batchSize, progress: progress)
  }

  /// Drops the generation a re-embed is building, with the vectors it has made, so that
  /// a job started with the wrong model need not be finished (a stopped job otherwise
  /// blocks a re-embed to any other model). The active generation is untouched; a job
  /// still running in another process stops at its next batch
  /// (`VectorDBError.concurrentChange`). Returns the dropped generation.
  ///
  ///     try docs.reembed(to: 5) { _ in throw CancellationError() }   // stopped at once
  ///     try docs.cancelReembed()                                     // generation gone
  ///
  /// - Throws: `VectorDBError.notAvailable` when no re-embed is in progress; `.storage`.
  @discardableResult
  public func cancelReembed() throws -> GenerationInfo {
    let dropped = try Generations(of: self).cancelBuilding()
    return GenerationInfo(dropped, state: .building, vectors: dropped.count)
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
    try Generations(of: self).activate(model: version, progress: progress)
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
    try Generations(of: self).rollback(progress: progress)
  }

  /// Starts a building generation of `model`; see `Generations.startBuilding(model:)`.
  func startGeneration(model: Int) throws -> CollectionRecord {
    try Generations(of: self).startBuilding(model: model)
  }

  /// See `Generations.setAdapter(_:in:collection:)`.
  func setAdapter(_ adapter: ModelInfo?, in txn: WriteTransaction, collection: CollectionRecord)
    throws
  {
    try Generations(of: self).setAdapter(adapter, in: txn, collection: collection)
  }
}
