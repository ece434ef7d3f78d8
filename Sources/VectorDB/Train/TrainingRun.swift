import Foundation
import LMDB
import Tensor
import Training

/// One mined (query, positive, negatives) triple: the query text and document ids.
struct MinedPair: Codable {
  var query: String
  var positive: String
  var negatives: [String]

  /// What must not repeat inside a batch (as `TrainingExample`'s keys).
  var keys: [String] { ["query:" + query] + ([positive] + negatives).map { "doc:" + $0 } }
}

/// A training run's data and progress, saved in the collection's meta record so that a
/// killed run resumes on the same data (`resume`).
///
/// Stages (`DocumentCollection.train`): judgements → folds → mining make the run
/// (`prepareRun`, this file); then per fold a fit scored on the fold's queries
/// (`fitFolds`, Train.swift); the verdict (`GateDecision`, Gate.swift); the published fit
/// and its version (`publishedCandidate`, `publish`, Publish.swift).
struct TrainingRun: Codable {
  var baseModel: Int
  /// The generation whose vectors the run mined with (and an adapter trains against).
  var generation: UInt32
  var options: TrainingOptions
  /// Every judged query's pairs; a fit uses those of its training queries.
  var pairs: [MinedPair]
  /// Query text → document → grade, for every judged query.
  var judged: [String: [String: Int]]
  /// The gate's folds of query texts: one fold is a plain held-out split.
  var folds: [[String]]
  var data: TrainingData
  /// The process running it (a second run on the same collection is refused while alive).
  var pid: Int32
  /// Per gate query: the candidate's nDCG@10 and best relevant rank, for finished folds.
  var scored: [String: ScoredQuery] = [:]
  /// Documents embedded by the candidates to judge them.
  var documentsEmbedded = 0

  struct ScoredQuery: Codable {
    var metrics: [String: Double]
    var rank: Int?
  }

  var crossFits: Bool { folds.count > 1 }
  var gateQueries: [String] { folds.flatMap { $0 }.sorted() }

  /// The queries a fit trains on: all but those of `fold`; nil: every judged query (the
  /// published fit, made once the verdict on the recipe is in).
  func trainingQueries(excluding fold: Int?) -> Set<String> {
    Set(judged.keys).subtracting(fold.map { folds[$0] } ?? [])
  }
}

extension DocumentCollection {
  /// The judgements of the log, grouped by query text: relevant documents with their
  /// grade, and those marked not relevant.
  func judgements() throws -> (relevant: [String: [String: Int]], notRelevant: [String: [String]]) {
    var relevant: [String: [String: Int]] = [:]
    var notRelevant: [String: [String]] = [:]
    try database.forEachLogEntry(collection: name) { entry in
      guard let text = entry.text, !text.isBlank else { return }
      for item in entry.feedback {
        if item.isRelevant {
          relevant[text, default: [:]][item.documentID] = max(
            relevant[text]?[item.documentID] ?? 0, item.relevance)
        } else {
          notRelevant[text, default: []].append(item.documentID)
        }
      }
    }
    return (relevant, notRelevant)
  }

  /// `judgements()` of documents that still exist: a query left with no relevant one is
  /// dropped.
  func judgedQueries() throws -> (
    relevant: [String: [String: Int]], notRelevant: [String: [String]]
  ) {
    let (allJudged, notRelevant) = try judgements()
    let existing = try documentTexts(Set(allJudged.values.flatMap { $0.keys }))
    var judged: [String: [String: Int]] = [:]
    for (text, grades) in allJudged {
      let kept = grades.filter { existing[$0.key] != nil }
      if kept.values.contains(where: { $0 > 0 }) { judged[text] = kept }
    }
    return (judged, notRelevant)
  }

  /// Judgements → folds → mined pairs (or the saved run when resuming).
  ///
  /// - Throws: `VectorDBError.nothingToResume` when resuming without a saved run;
  ///   `.notAvailable` without a model; option errors from `TrainingOptions.validate`.
  func prepareRun(options: TrainingOptions, progress: ((TrainingStage) throws -> Void)?)
    throws -> TrainingRun
  {
    if options.resume {
      guard let saved = try loadBlob(.trainRun) else {
        throw VectorDBError.nothingToResume(collection: name)
      }
      // The recipe is the saved one; what to do with the result may be said anew.
      var run = try JSONDecoder().decode(TrainingRun.self, from: saved)
      run.options.resume = true
      run.options.force = run.options.force || options.force
      run.options.checkpointEvery = options.checkpointEvery
      run.options.waitForReembed = options.waitForReembed
      run.pid = getpid()
      return run
    }
    guard let plan = try indexPlan(), let baseModel = plan.generation.model else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no model to train")
    }
    let encoder = try database.encoder(version: baseModel)
    try options.validate(modelMaxSequenceLength: encoder.config.maxPositions)
    let (judged, notRelevant) = try judgedQueries()
    // Queries the current retriever was fitted on train candidates but do not vote: on them
    // the current model would be scored in-sample, and the gate would favour keeping it.
    let trained = try queriesTrained(by: plan.generation.serving)
    let voters = judged.keys.filter { !trained.contains(Self.queryHash($0)) }.sorted()
    let folds = Self.folds(
      of: voters, count: options.foldCount(judged: voters.count),
      heldOutFraction: options.heldOutFraction, seed: options.seed)

    // Pairs and mined negatives for every judged query (a query's negatives depend only
    // on the current retriever, not on the fold).
    let texts = judged.keys.sorted()
    let mining = options.hardNegatives > 0 ? HardNegativeMining(count: options.hardNegatives) : nil
    var pairs: [MinedPair] = []
    let chunk = 64
    for first in stride(from: 0, to: texts.count, by: chunk) {
      let part = Array(texts[first..<min(first + chunk, texts.count)])
      // The current retriever's query vectors (adapter included), embedded once: they
      // rank the candidates and score the positives with the same measure.
      var queryVectors: [[Float]] = []
      var ranked: [QueryResult] = []
      var positiveVectors: [String: [Float]] = [:]
      if mining != nil {
        let embedded = encoder.embed(encoder.prompted(part, as: .query))
        queryVectors =
          try plan.generation.adapter.map { try database.queryAdapter(version: $0) }?
          .apply(to: embedded) ?? embedded
        ranked = try search(
          texts: nil, vectors: queryVectors,
          options: QueryOptions(
            k: options.miningDepth, ef: max(100, options.miningDepth), log: false))
        positiveVectors = try storedVectors(Set(part.flatMap { judged[$0]!.keys }), plan: plan)
      }
      for (offset, text) in part.enumerated() {
        let grades = judged[text]!
        for positive in grades.keys.sorted() where grades[positive]! > 0 {
          var negatives: [String] = []
          if let mining {
            negatives =
              mining.negatives(
                ranked: ranked[offset].hits.map { (id: $0.id, score: Double($0.score)) },
                positiveScore: Double(
                  positiveVectors[positive].map { Distance.dot(queryVectors[offset], $0) } ?? 0),
                positives: Set(grades.keys), notRelevant: notRelevant[text] ?? []
              ).negatives
          }
          pairs.append(MinedPair(query: text, positive: positive, negatives: negatives))
        }
      }
      try progress?(
        .mining(OperationProgress(done: min(first + chunk, texts.count), total: texts.count)))
    }
    // "Not relevant" marks may name deleted documents: keep the negatives that exist.
    let negativeIDs = try documentTexts(Set(pairs.flatMap(\.negatives)))
    for index in pairs.indices { pairs[index].negatives.removeAll { negativeIDs[$0] == nil } }

    var recipe = options
    if recipe.tier == .full || recipe.tier == .lora {
      recipe.matmulPrecision = recipe.matmulPrecision ?? .automatic  // the run's record says which
    }
    var run = TrainingRun(
      baseModel: baseModel, generation: plan.generation.id, options: recipe, pairs: pairs,
      judged: judged, folds: folds,
      data: TrainingData(
        judgedQueries: judged.count, trainQueries: 0, trainPairs: 0, negatives: 0,
        heldOutQueries: 0, alreadyTrained: judged.count - voters.count, folds: folds.count,
        queriesNeeded: TrainingData.queriesNeeded()),
      pid: getpid())
    let published = run.trainingQueries(excluding: nil)
    let publishedPairs = pairs.filter { published.contains($0.query) }
    run.data.trainQueries = published.count
    run.data.trainPairs = publishedPairs.count
    run.data.negatives = publishedPairs.reduce(0) { $0 + $1.negatives.count }
    run.data.heldOutQueries = run.gateQueries.count
    return run
  }

  /// Splits the judged queries for the gate: `count` folds by a seeded hash of the text
  /// (cross-fitting), or with `count` 1 one held-out fold of `heldOutFraction`. The same
  /// texts and seed give the same folds on every run.
  static func folds(of texts: [String], count: Int, heldOutFraction: Double, seed: UInt64)
    -> [[String]]
  {
    let bucket = { (text: String) in Double(stableHash(text, seed: seed) % 10_000) / 10_000 }
    if count <= 1 { return [texts.filter { bucket($0) < heldOutFraction }] }
    // Order by hash, then deal round-robin: folds differ in size by at most one.
    let shuffled = texts.sorted {
      (stableHash($0, seed: seed), $0) < (stableHash($1, seed: seed), $1)
    }
    var folds = [[String]](repeating: [], count: count)
    for (index, text) in shuffled.enumerated() { folds[index % count].append(text) }
    return folds
  }

  /// FNV-1a of the text's UTF-8 mixed with `seed`: the same split on every run.
  static func stableHash(_ text: String, seed: UInt64) -> UInt64 {
    var hash = FNV1a(seed: seed)
    hash.mix(bytes: text.utf8)
    return hash.value
  }

  /// A query text as a model version's `trained_queries` part records it: FNV-1a of the
  /// text lowercased, its words joined by single spaces — texts that differ only there
  /// are one text to an uncased encoder, so one trained on either cannot judge the other.
  ///
  /// - Warning: stored; another hash would make every recorded set name other texts.
  static func queryHash(_ text: String) -> UInt64 {
    stableHash(
      text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " "), seed: 0)
  }

  /// The query texts (`queryHash`) that `versions`, or the versions they descend from, were
  /// fitted on.
  func queriesTrained(by versions: [Int]) throws -> Set<UInt64> {
    let (models, path) = (database.models, database.path)
    return try read { txn in try models.trainedQueries(lineageOf: versions, path: path, in: txn) }
  }

  /// Those that model version `model` was fitted on, else (nil) the serving encoder and
  /// its query adapter: what evaluating that model scores in-sample.
  func queriesTrained(byModel model: Int?) throws -> Set<UInt64> {
    try queriesTrained(by: model.map { [$0] } ?? indexPlan()?.generation.serving ?? [])
  }
}

// MARK: Run records

extension DocumentCollection {
  /// Refuses when another live process trains this collection; else records this one.
  func claimTraining() throws {
    let key = blobKey(.trainOwner)
    let me = RunningProcess.current
    try write { txn, _ in
      if let bytes = try txn.get(schema.meta, key: key),
        let owner = RunningProcess(String(decoding: bytes, as: UTF8.self)), owner != me,
        owner.isAlive
      {
        throw VectorDBError.collectionBusy(
          name: name, job: "a training run in process \(owner.pid)")
      }
      try txn.put(schema.meta, key: key, value: Array(me.description.utf8))
    }
    let inserted = Self.lock.withLock {
      Self.training.insert("\(database.path)\u{0}\(name)").inserted
    }
    if !inserted {
      throw VectorDBError.collectionBusy(name: name, job: "a training run in this process")
    }
  }

  func releaseTraining() throws {
    _ = Self.lock.withLock { Self.training.remove("\(database.path)\u{0}\(name)") }
    let key = blobKey(.trainOwner)
    _ = try write { txn, _ in try txn.delete(schema.meta, key: key) }
  }

  /// Collections training in this process (a second `train` on one is refused).
  nonisolated(unsafe) private static var training = Set<String>()
  private static let lock = NSLock()

  func dropRunRecords() throws {
    try writeRunRecord(nil, dropping: [.trainCheckpoint, .trainRun, .trainFit])
  }

  /// Saves the run record; with `droppingCheckpoint`, drops the finished fit's checkpoint
  /// in the same transaction.
  func saveRun(_ run: TrainingRun, droppingCheckpoint: Bool = false) throws {
    try writeRunRecord(
      try JSONEncoder().encode(run),
      dropping: droppingCheckpoint ? [.trainCheckpoint, .trainFit] : [])
  }

  /// One write transaction: `run` (if any) saved as the run record, the `dropping` records
  /// deleted.
  private func writeRunRecord(
    _ run: Data?, dropping names: [CollectionMetaKey.Record]
  ) throws {
    let (runKey, keys) = (blobKey(.trainRun), names.map(blobKey))
    let schema = self.schema
    try storage {
      try database.environment.write { txn in
        for key in keys { try txn.delete(schema.meta, key: key) }
        if let run { try txn.put(schema.meta, key: runKey, value: run) }
      }
    }
  }

  /// The vectors `plan`'s generation stores for documents `ids`, in one snapshot; ids
  /// without a document or a vector are left out.
  func storedVectors(_ ids: Set<String>, plan: IndexPlan) throws -> [String: [Float]] {
    try read { txn in
      var vectors: [String: [Float]] = [:]
      for id in ids {
        if let bytes = try txn.get(schema.docs, key: DocumentKey(collection: self.id, id: id)),
          let vector = try plan.index.vector(of: DocumentRecord.row(of: bytes), in: txn)
        {
          vectors[id] = vector
        }
      }
      return vectors
    }
  }

  /// The texts of the documents `ids` that exist.
  func documentTexts(_ ids: Set<String>) throws -> [String: String] {
    try read { txn in
      var texts: [String: String] = [:]
      for id in ids {
        if let bytes = try txn.get(schema.docs, key: DocumentKey(collection: self.id, id: id)) {
          texts[id] = try DocumentRecord(bytes: bytes, path: database.path).text
        }
      }
      return texts
    }
  }

  func blobKey(_ record: CollectionMetaKey.Record) -> CollectionMetaKey {
    CollectionMetaKey(collection: id, record: record)
  }

  func loadBlob(_ name: CollectionMetaKey.Record) throws -> Data? {
    let key = blobKey(name)
    return try read { txn in try txn.get(schema.meta, key: key).map { Data($0) } }
  }

  func saveBlob(_ name: CollectionMetaKey.Record, _ data: Data) throws {
    let key = blobKey(name)
    try storage {
      try database.environment.write { txn in try txn.put(schema.meta, key: key, value: data) }
    }
  }
}

/// A process by id and start time, so that a recycled id or a zombie left by a killed
/// run is not taken for the run itself.
struct RunningProcess: Equatable, CustomStringConvertible {
  var pid: Int32
  /// Clock ticks after boot at which it started (`/proc/PID/stat` field 22; 0 elsewhere).
  var started: UInt64

  static var current: RunningProcess {
    let pid = getpid()
    return RunningProcess(pid: pid, started: startTime(pid) ?? 0)
  }

  /// "PID:START", as stored.
  init?(_ text: String) {
    let parts = text.split(separator: ":")
    guard let pid = parts.first.flatMap({ Int32($0) }) else { return nil }
    self.pid = pid
    self.started = parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0
  }

  init(pid: Int32, started: UInt64) {
    self.pid = pid
    self.started = started
  }

  var description: String { "\(pid):\(started)" }

  /// Whether the process still runs (a zombie does not).
  var isAlive: Bool {
    #if os(Linux)
      guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let fields = Self.fields(stat), fields.count > 19
      else { return false }
      return fields[0] != "Z" && fields[0] != "X" && UInt64(fields[19]) == started
    #else
      return kill(pid, 0) == 0 || errno == EPERM
    #endif
  }

  private static func startTime(_ pid: Int32) -> UInt64? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let fields = fields(stat), fields.count > 19
    else { return nil }
    return UInt64(fields[19])
  }

  /// The fields after the command name (which may hold spaces and parentheses).
  private static func fields(_ stat: String) -> [Substring]? {
    guard let end = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: end)...].split(separator: " ")
  }
}
