import Embedding
import Foundation
import LMDB
import Tensor
import Training

extension DocumentCollection {
  /// The training data the log yields now, without training or writing anything
  /// (`vdb train --dry-run`): judged queries, pairs, negatives, the gate's folds and how
  /// many judged queries a gain of +0.02 needs to be told from noise.
  ///
  /// - Throws: as `train` before it trains (options, no model).
  public func trainingData(options: TrainingOptions = TrainingOptions()) throws -> TrainingData {
    try prepareRun(options: options, progress: nil).data
  }

  /// Fine-tunes the collection's retriever on its query log and promotes the result only
  /// when the judged queries say it is better.
  ///
  /// 1. **Judgements.** (query, relevant document) pairs from the log: clicks,
  ///    corrections and admin judgements, grouped by query text.
  /// 2. **Folds.** With few judged queries (below `TrainingOptions.crossFitBelow`) the gate
  ///    cross-fits: the queries are dealt into k folds, and each fold is judged by a
  ///    candidate trained on the other folds, so every judged query votes and none is
  ///    judged by a model that trained on it. With many, a plain held-out split.
  /// 3. **Mining.** Hard negatives from the current retriever's top `miningDepth`: never a
  ///    judged-relevant document, at most 0.95 × the positive's score; documents marked not
  ///    relevant first.
  /// 4. **Fit.** `full`: the encoder (multiple-negatives ranking loss); `adapter`: a map of
  ///    the query vectors against the stored document vectors.
  /// 5. **Gate.** Each gate query is scored by the current retriever (exact search) and by
  ///    its fold's candidate. A full-tier candidate re-scores a pool — the current top
  ///    `gatePool` plus the judged documents — so judging it embeds no corpus. The
  ///    candidate is promoted when the 95% paired-bootstrap interval of the nDCG@10 change
  ///    lies above zero (or `force`).
  /// 6. **Publish.** Promoted: the published candidate is fitted once more, on every
  ///    judged query (the verdict is on the recipe). A promoted encoder is stored and its
  ///    generation built by a resumable re-embed job (`waitForReembed`), while the active
  ///    generation keeps answering; an
  ///    adapter is stored and activated in one transaction. A rejected candidate is kept as
  ///    lineage and metrics only (`keepRejected` keeps its weights).
  ///
  /// The run touches nothing the active model uses until the switch: killing it leaves
  /// the database answering as before, and `resume` continues from the last checkpoint.
  ///
  /// ```swift
  /// let report = try docs.train()
  /// print(report.promoted, report.gate.delta, report.gate.ciLow, report.gate.ciHigh)
  /// ```
  ///
  /// - Throws: `VectorDBError.notEnoughJudgements` (with how many are needed),
  ///   `.collectionBusy` (another process trains this collection), `.nothingToResume`,
  ///   `.invalidInput` for an option out of range, `.notAvailable` for a collection without
  ///   a model, `.storage` when LMDB fails. Nothing the active model uses is changed then.
  public func train(
    options: TrainingOptions = TrainingOptions(), progress: ((TrainingStage) throws -> Void)? = nil
  ) throws -> TrainingReport {
    if options.tier == .fusion { return try trainFusion(options: options, progress: progress) }
    let start = Date()
    try claimTraining()
    defer { try? releaseTraining() }
    if !options.resume { try dropRunRecords() }  // a fresh run leaves no stale checkpoint
    var run = try prepareRun(options: options, progress: progress)
    guard run.data.judgedQueries >= 2, run.data.trainPairs > 0, run.data.heldOutQueries > 0 else {
      throw VectorDBError.notEnoughJudgements(
        collection: name, judged: run.data.judgedQueries, needed: run.data.queriesNeeded)
    }
    let options = run.options  // a resumed run keeps the recipe it started with
    try saveRun(run)
    let base = try database.encoder(version: run.baseModel)

    // The current retriever on every gate query: its metrics, and the full tier's pools.
    let current = try rank(run.gateQueries, depth: max(options.gatePool, 100)) {
      try progress?(.evaluating($0))
    }
    let fits = run.folds.count + 1
    var splitCandidate: Candidate?
    var trainingSeconds = 0.0
    for fold in run.folds.indices where run.folds[fold].contains(where: { run.scored[$0] == nil }) {
      let fitStart = Date()
      let candidate = try fit(run, excluding: fold, base: base, fitIndex: fold, fits: fits) {
        try progress?($0)
      }
      trainingSeconds += Date().timeIntervalSince(fitStart)
      let (scores, embedded) = try score(
        candidate, queries: run.folds[fold], run: run, current: current, progress: progress)
      run.scored.merge(scores) { $1 }
      run.documentsEmbedded += embedded
      try saveRun(run, droppingCheckpoint: true)  // a resumed run skips this fold
      if !run.crossFits { splitCandidate = candidate }
    }

    // The verdict over every gate query.
    let ids = run.gateQueries
    let evaluation = RetrievalMetrics.evaluate(
      results: current, qrels: run.judged.filter { ids.contains($0.key) })
    let test = PairedBootstrap(seed: options.seed).compare(
      current: ids.map { evaluation.perQuery[$0]?["ndcg@10"] ?? 0 },
      candidate: ids.map { run.scored[$0]?.metrics["ndcg@10"] ?? 0 })
    let promoted = test.improves || options.force
    let verdict = GateVerdict(
      delta: test.meanDelta, ciLow: test.lower, ciHigh: test.upper, queries: test.queries,
      promoted: promoted, method: run.crossFits ? "cross_fit" : "split", folds: run.folds.count,
      documentsEmbedded: run.documentsEmbedded)
    let reason =
      (test.improves
        ? "nDCG@10 improved: " : options.force ? "promoted by --force; " : "not promoted: nDCG@10 ")
      + test.reason + (run.crossFits ? " (cross-fitted, \(run.folds.count) folds)" : "")

    // The published candidate is fitted on every judged query once the verdict on the
    // recipe is in (a rejected recipe costs no further fit; a rejected adapter is kept).
    var published = promoted ? nil : splitCandidate
    if promoted || (published == nil && options.tier == .adapter) {
      let fitStart = Date()
      published = try fit(
        run, excluding: nil, base: base, fitIndex: run.folds.count, fits: fits
      ) { try progress?($0) }
      trainingSeconds += Date().timeIntervalSince(fitStart)
    }
    var lineage = run.lineage(verdict: verdict, reason: reason, losses: published?.losses ?? [])
    lineage["collection"] = .string(name)
    lineage["heldout_before"] = .object(evaluation.means.mapValues { .number($0) })
    let after = Self.means(ids.compactMap { run.scored[$0]?.metrics })
    lineage["heldout_after"] = .object(after.mapValues { .number($0) })
    let (info, generation, reembedded) = try publish(
      published, run: run, promoted: promoted, lineage: lineage, progress: progress)
    return TrainingReport(
      tier: options.tier, options: options, modelVersion: info.version, promoted: promoted,
      reason: reason,
      gate: verdict, heldOutBefore: evaluation.means, heldOutAfter: after, data: run.data,
      trainPairs: run.data.trainPairs, losses: published?.losses ?? [],
      changes: changes(ids, run: run, current: current, before: evaluation.perQuery),
      generation: generation, reembedded: reembedded, trainingSeconds: trainingSeconds,
      seconds: Date().timeIntervalSince(start))
  }

  // MARK: Fit

  /// A fitted candidate and the loss of each of its steps.
  struct Candidate {
    enum Model {
      /// An encoder; with `lora`, its parent with those adapters merged (stored as the delta).
      case encoder(SentenceEncoder, lora: LoRAAdapters<Float>?)
      case adapter(QueryAdapter<Float>)
    }
    var model: Model
    var losses: [Double]
  }

  /// Fits a candidate on the judged queries outside `fold` (nil: the published fit),
  /// resuming from the run's checkpoint when it belongs to this fit.
  private func fit(
    _ run: TrainingRun, excluding fold: Int?, base: SentenceEncoder, fitIndex: Int, fits: Int,
    progress: (TrainingStage) throws -> Void
  ) throws -> Candidate {
    let queries = run.trainingQueries(excluding: fold)
    let pairs = run.pairs.filter { queries.contains($0.query) }
    let options = run.options
    var configuration = options.tier == .adapter ? .adapter : TrainingConfiguration()
    configuration.epochs = options.epochCount
    configuration.batchSize = options.batchSize
    configuration.learningRate = options.peakLearningRate
    configuration.seed = options.seed
    configuration.miniBatchSize = options.miniBatchSize
    let checkpoint =
      try loadBlob(.trainFit) == Data("\(fitIndex)".utf8) ? loadBlob(.trainCheckpoint) : nil
    try saveBlob(.trainFit, Data("\(fitIndex)".utf8))

    func loop<T: RankingTrainer>(_ trainer: T) throws -> [Double] {
      while !trainer.isFinished {
        var last: TrainingProgress?
        trainer.run(steps: 1) { last = $0 }
        if let last { try progress(.training(FitProgress(last), fold: fitIndex + 1, folds: fits)) }
        if trainer.step % options.checkpointEvery == 0 && !trainer.isFinished {
          try saveBlob(.trainCheckpoint, try trainer.checkpoint())
        }
      }
      return trainer.lossHistory
    }
    do {
      switch options.tier {
      case .full, .lora:
        let examples = try encoderExamples(pairs, run: run, tokenizer: base.tokenizer)
        let trainer =
          try checkpoint.map { try EncoderTrainer(resuming: $0, examples: examples) }
          ?? EncoderTrainer(
            parameters: try EncoderParameters(base), examples: examples,
            configuration: configuration, lora: options.loraConfiguration)
        let losses = try loop(trainer)
        // Served as trained: the trainer's configuration and pooling, the base's tokenizer.
        let encoder = try SentenceEncoder(trained: trainer.encoder.parameters, like: base)
        return Candidate(model: .encoder(encoder, lora: trainer.lora), losses: losses)
      case .adapter:
        let examples = try adapterExamples(pairs, run: run, encoder: base)
        let trainer =
          try checkpoint.map { try AdapterTrainer(resuming: $0, examples: examples) }
          ?? AdapterTrainer(
            dimension: base.dimension, examples: examples, configuration: configuration)
        let losses = try loop(trainer)
        return Candidate(model: .adapter(trainer.adapter), losses: losses)
      case .fusion:
        throw VectorDBError.invalidInput(
          source: "tier", line: nil, reason: "the fusion tier fits a weight, not a model")
      }
    } catch let error as TrainingError {
      throw VectorDBError.invalidInput(
        source: "training", line: nil, reason: "cannot train: \(error)")
    }
  }

  /// The pairs as token ids for the encoder tier.
  private func encoderExamples(
    _ pairs: [MinedPair], run: TrainingRun, tokenizer: WordPieceTokenizer
  ) throws -> [TrainingExample] {
    let texts = try documentTexts(Set(pairs.flatMap { [$0.positive] + $0.negatives }))
    return try pairs.map { pair in
      func document(_ id: String) throws -> (id: String, text: String) {
        guard let text = texts[id] else {
          throw VectorDBError.documentNotFound(id: id, collection: name)
        }
        return (id, text)
      }
      return TrainingExample(
        query: pair.query, positive: try document(pair.positive),
        negatives: try pair.negatives.map(document), tokenizer: tokenizer,
        maxLength: run.options.maxSequenceLength)
    }
  }

  /// The pairs as vectors for the adapter tier: queries embedded by the base encoder,
  /// documents as the run's generation stores them.
  private func adapterExamples(_ pairs: [MinedPair], run: TrainingRun, encoder: SentenceEncoder)
    throws -> [AdapterExample]
  {
    let queries = Array(Set(pairs.map(\.query))).sorted()
    let queryVectors = Dictionary(uniqueKeysWithValues: zip(queries, encoder.embed(queries)))
    guard let plan = try indexPlan(generation: run.generation) else {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors")
    }
    let documents = Set(pairs.flatMap { [$0.positive] + $0.negatives })
    let vectors = try storedVectors(documents, plan: plan)
    if let missing = documents.first(where: { vectors[$0] == nil }) {
      throw VectorDBError.documentNotFound(id: missing, collection: name)
    }
    return pairs.map { pair in
      AdapterExample(
        query: queryVectors[pair.query]!, positive: vectors[pair.positive]!,
        negatives: pair.negatives.map { vectors[$0]! }, keys: pair.keys)
    }
  }

  // MARK: Gate

  /// Each query's exact top `depth` by dense search of the active generation, its text
  /// queries mapped by `adapter` (text → hits).
  private func rank(
    _ queries: [String], depth: Int, adapter: AdapterChoice = .generation,
    progress: (OperationProgress) throws -> Void
  ) throws -> [String: [ScoredHit]] {
    var results: [String: [ScoredHit]] = [:]
    let chunk = 64
    for first in stride(from: 0, to: queries.count, by: chunk) {
      let part = Array(queries[first..<min(first + chunk, queries.count)])
      let found = try search(
        texts: part, vectors: nil,
        options: QueryOptions(k: depth, ef: depth, exact: true, log: false, mode: .dense),
        adapter: adapter)
      for (text, result) in zip(part, found) {
        results[text] = result.hits.map { ScoredHit(id: $0.id, score: Double($0.score)) }
      }
      try progress(OperationProgress(done: results.count, total: queries.count))
    }
    return results
  }

  /// Scores `queries` with `candidate`: an adapter by exact search over the active
  /// generation; an encoder by re-scoring each query's pool (the current top
  /// `gatePool` plus its judged documents), embedding only the pools' documents.
  /// Returns each query's metrics and best relevant rank, and the documents embedded.
  private func score(
    _ candidate: Candidate, queries: [String], run: TrainingRun, current: [String: [ScoredHit]],
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> (scores: [String: TrainingRun.ScoredQuery], embedded: Int) {
    var results: [String: [ScoredHit]] = [:]
    var embedded = 0
    switch candidate.model {
    case .adapter(let adapter):
      results = try rank(queries, depth: 100, adapter: .candidate(adapter)) {
        try progress?(.evaluating($0))
      }
    case .encoder(let encoder, _):
      let shared = try sampleDocuments(run.options.gateSample, seed: run.options.seed)
      let pools = queries.map { text in
        (
          text,
          Self.pool(
            (current[text] ?? []).map(\.id), depth: run.options.gatePool,
            judged: run.judged[text]!.keys.sorted(), sample: shared)
        )
      }
      (results, embedded) = try rescore(pools, with: encoder) {
        try progress?(.embedding($0))
      }
    }
    let evaluation = RetrievalMetrics.evaluate(
      results: results, qrels: run.judged.filter { results[$0.key] != nil })
    var scores: [String: TrainingRun.ScoredQuery] = [:]
    for text in queries {
      scores[text] = TrainingRun.ScoredQuery(
        metrics: evaluation.perQuery[text] ?? [:],
        rank: Self.bestRank(results[text] ?? [], relevant: run.judged[text]!))
    }
    return (scores, embedded)
  }

  /// The 1-based rank of the best-ranked relevant document in `hits` (ranked by score,
  /// ties by id as the metrics rank them), or nil.
  static func bestRank(_ hits: [ScoredHit], relevant: [String: Int]) -> Int? {
    let ranked = hits.sorted { ($0.score, $1.id) > ($1.score, $0.id) }
    return ranked.prefix(100).firstIndex { (relevant[$0.id] ?? 0) > 0 }.map { $0 + 1 }
  }

  static func means(_ perQuery: [[String: Double]]) -> [String: Double] {
    guard let keys = perQuery.first?.keys else { return [:] }
    return Dictionary(
      uniqueKeysWithValues: keys.map { key in
        (key, perQuery.reduce(0) { $0 + ($1[key] ?? 0) } / Double(perQuery.count))
      })
  }

  /// The gate queries whose nDCG@10 changed most: up to 5 gains, then up to 5 losses.
  private func changes(
    _ ids: [String], run: TrainingRun, current: [String: [ScoredHit]],
    before: [String: [String: Double]]
  ) -> [QueryChange] {
    let all = ids.map { text in
      QueryChange(
        query: text, ndcgBefore: before[text]?["ndcg@10"] ?? 0,
        ndcgAfter: run.scored[text]?.metrics["ndcg@10"] ?? 0,
        rankBefore: Self.bestRank(current[text] ?? [], relevant: run.judged[text]!),
        rankAfter: run.scored[text]?.rank)
    }
    let byChange = all.sorted {
      ($0.ndcgAfter - $0.ndcgBefore, $1.query) > ($1.ndcgAfter - $1.ndcgBefore, $0.query)
    }
    return byChange.prefix(5).filter { $0.ndcgAfter > $0.ndcgBefore }
      + byChange.suffix(5).filter { $0.ndcgAfter < $0.ndcgBefore }
  }

  // MARK: Publish

  /// Stores the candidate's version and, when promoted, puts it to work: an adapter
  /// activated in the same transaction; an encoder by a re-embed into a new generation.
  private func publish(
    _ candidate: Candidate?, run: TrainingRun, promoted: Bool, lineage: [String: JSONValue],
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> (ModelInfo, generation: Int?, reembedded: Bool) {
    let models = database.models
    let options = run.options
    let name = "fine-tune of v\(run.baseModel) on \(self.name)"
    let runKeys = [CollectionMetaKey.Record.trainCheckpoint, .trainRun, .trainFit].map(blobKey)
    let schema = self.schema
    switch candidate?.model {
    case .adapter(let adapter):
      let parent = try database.model(version: run.baseModel)
      let info = try write { txn, collection in
        let info = try models.add(
          adapter: adapter, name: "query adapter over v\(run.baseModel) on \(self.name)",
          state: promoted ? .ready : .rejected, parent: parent, lineage: lineage, in: txn)
        if promoted { try setAdapter(info, in: txn, collection: collection) }
        for key in runKeys { try txn.delete(schema.meta, key: key) }
        return info
      }
      return (info, nil, false)
    case .encoder(let encoder, let lora) where promoted || options.keepRejected || lora != nil:
      // A LoRA candidate is stored as its adapters (a few MB), even when rejected.
      let info = try storage {
        try database.environment.write { txn in
          let info = try models.add(
            encoder: encoder, lora: lora,
            name: lora == nil ? name : "LoRA of v\(run.baseModel) on \(self.name)",
            state: promoted ? .ready : .rejected,
            parent: run.baseModel, lineage: lineage, in: txn)
          for key in runKeys { try txn.delete(schema.meta, key: key) }
          return info
        }
      }
      guard promoted else { return (info, nil, false) }
      // The new generation: a resumable re-embed job; the active one answers meanwhile.
      if options.waitForReembed {
        let report = try reembed(
          to: info.version, all: true, batchSize: options.reembedBatchSize
        ) { try progress?(.embedding($0)) }
        return (info, report.generation, true)
      }
      let record = try startGeneration(model: info.version)
      return (info, record.building.map(Int.init), false)
    default:
      // A rejected encoder: its lineage and metrics, not its weights.
      let base = try database.model(version: run.baseModel)
      let info = try storage {
        try database.environment.write { txn in
          let info = try models.addLineage(
            name: name, parent: base, lineage: lineage, in: txn)
          for key in runKeys { try txn.delete(schema.meta, key: key) }
          return info
        }
      }
      return (info, nil, false)
    }
  }

  // MARK: Run records

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
    try write { txn, _ in try txn.delete(schema.meta, key: key) }
  }

  /// Collections training in this process (a second `train` on one is refused).
  nonisolated(unsafe) private static var training = Set<String>()
  private static let lock = NSLock()

  private func dropRunRecords() throws {
    try writeRunRecord(nil, dropping: [.trainCheckpoint, .trainRun, .trainFit])
  }

  /// Saves the run record; with `droppingCheckpoint`, drops the finished fit's checkpoint
  /// in the same transaction.
  private func saveRun(_ run: TrainingRun, droppingCheckpoint: Bool = false) throws {
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

  private func blobKey(_ record: CollectionMetaKey.Record) -> CollectionMetaKey {
    CollectionMetaKey(collection: id, record: record)
  }

  func loadBlob(_ name: CollectionMetaKey.Record) throws -> Data? {
    let key = blobKey(name)
    return try read { txn in try txn.get(schema.meta, key: key).map { Data($0) } }
  }

  private func saveBlob(_ name: CollectionMetaKey.Record, _ data: Data) throws {
    let key = blobKey(name)
    try storage {
      try database.environment.write { txn in try txn.put(schema.meta, key: key, value: data) }
    }
  }
}

extension TrainingRun {
  /// What the candidate's model version records of how it was made.
  func lineage(verdict: GateVerdict, reason: String, losses: [Double]) -> [String: JSONValue] {
    [
      "tier": .string(options.tier.rawValue),
      "generation": .number(Double(generation)),
      "judged_queries": .number(Double(data.judgedQueries)),
      "train_pairs": .number(Double(data.trainPairs)),
      "negatives": .number(Double(data.negatives)),
      "heldout_queries": .number(Double(data.heldOutQueries)),
      "folds": .number(Double(folds.count)),
      "epochs": .number(Double(options.epochCount)),
      "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.peakLearningRate),
      "max_seq_length": .number(Double(options.maxSequenceLength)),
      "hard_negatives": .number(Double(options.hardNegatives)),
      "seed": .number(Double(options.seed)),
      "losses": .array(losses.map { .number($0) }),
      "gate": .object([
        "delta": .number(verdict.delta), "ci_low": .number(verdict.ciLow),
        "ci_high": .number(verdict.ciHigh), "queries": .number(Double(verdict.queries)),
        "promoted": .bool(verdict.promoted), "method": .string(verdict.method),
      ]),
      "reason": .string(reason),
    ]
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
