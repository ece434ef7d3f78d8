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
  ///    corrections and admin judgements, grouped by query text (`judgedQueries`).
  /// 2. **Folds.** With few judged queries (below `TrainingOptions.crossFitBelow`) the gate
  ///    cross-fits: the queries are dealt into k folds, and each fold is judged by a
  ///    candidate trained on the other folds, so every judged query votes and none is
  ///    judged by a model that trained on it. With many, a plain held-out split (`folds`).
  ///    Queries the current retriever was fitted on train but do not vote (it would be
  ///    scored on them in-sample): a second round is judged on queries judged since.
  /// 3. **Mining.** Hard negatives from the current retriever's top `miningDepth`: never a
  ///    judged-relevant document, at most 0.95 × the positive's score; documents marked not
  ///    relevant first. Stages 1–3 make the `TrainingRun` (`prepareRun`), saved so that a
  ///    killed run resumes on the same data.
  /// 4. **Fit.** `full`: the encoder (multiple-negatives ranking loss); `adapter`: a map of
  ///    the query vectors against the stored document vectors. One candidate per fold,
  ///    each scored on its fold's queries (`fitFolds`, through a `RankingTrainer`).
  /// 5. **Gate.** Each gate query is scored by the current retriever (exact search) and by
  ///    its fold's candidate. A full-tier candidate re-scores a pool — the current top
  ///    `gatePool` plus the judged documents — so judging it embeds no corpus. The
  ///    candidate is promoted when the 95% paired-bootstrap interval of the nDCG@10 change
  ///    lies above zero (or `force`): `GateDecision`.
  /// 6. **Publish.** Promoted: the published candidate is fitted once more, on every
  ///    judged query (the verdict is on the recipe). A promoted encoder is stored and its
  ///    generation built by a resumable re-embed job (`waitForReembed`), while the active
  ///    generation keeps answering; an adapter is stored and activated in one transaction.
  ///    A rejected candidate is kept as lineage and metrics only (`keepRejected` keeps its
  ///    weights). `publishedCandidate`, then `publish`.
  ///
  /// The run touches nothing the active model uses until the switch: killing it leaves
  /// the database answering as before, and `resume` continues from the last checkpoint.
  ///
  /// ```swift
  /// let report = try docs.train()
  /// print(report.promoted, report.gate.delta, report.gate.ciLow, report.gate.ciHigh)
  /// ```
  ///
  /// - Throws: `VectorDBError.notEnoughJudgements` (with how many are needed, and how many
  ///   the current retriever trained on),
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
    // A promoted encoder re-embeds into a new generation: with one being built already, it
    // could not, so refuse now rather than after the training (the version would be left
    // unused).
    if options.tier != .adapter,
      let building = try database.collectionRecord(name)?.building,
      let model = try Generations(of: self).record(building)?.model
    {
      throw VectorDBError.collectionBusy(
        name: name,
        job: "a re-embed to model \(model) is in progress: \(Generations.resumeOrCancel)")
    }
    if !options.resume { try dropRunRecords() }  // a fresh run leaves no stale checkpoint
    // Judgements → folds → mining, or the saved run when resuming.
    var run = try prepareRun(options: options, progress: progress)
    // Two judged queries at least that the current retriever was not fitted on.
    let voters = run.data.judgedQueries - run.data.alreadyTrained
    guard voters >= 2, run.data.trainPairs > 0, run.data.heldOutQueries > 0 else {
      throw VectorDBError.notEnoughJudgements(
        collection: name, judged: run.data.judgedQueries, needed: run.data.queriesNeeded,
        trained: run.data.alreadyTrained)
    }
    try saveRun(run)
    let base = try database.encoder(version: run.baseModel)
    // The current retriever on every gate query: its metrics, and the full tier's pools.
    let current = try rank(run.gateQueries, depth: max(run.options.gatePool, 100)) {
      try progress?(.evaluating($0))
    }
    // Fit: a candidate per fold, each scored on the queries of its fold.
    var fits = try fitFolds(&run, base: base, current: current, progress: progress)
    // Gate: the verdict over every gate query.
    let gate = GateDecision(run: run, current: current)
    // Publish: the published fit, stored, and put to work when promoted.
    let published = try publishedCandidate(
      run, gate: gate, fits: &fits, base: base, progress: progress)
    let (info, generation, reembedded) = try publish(
      published, run: run, gate: gate, progress: progress)
    return TrainingReport(
      tier: run.options.tier, options: run.options, modelVersion: info.version,
      promoted: gate.promoted, reason: gate.reason, gate: gate.verdict,
      heldOutBefore: gate.before.means, heldOutAfter: gate.after, data: run.data,
      trainPairs: run.data.trainPairs, losses: published?.losses ?? [],
      changes: gate.changes(run: run, current: current), generation: generation,
      reembedded: reembedded, trainingSeconds: fits.seconds,
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
    /// The judged query texts it was fitted on.
    var queries: Set<String>
  }

  /// What the fold fits leave: a plain split's candidate (published when the gate
  /// rejects it) and the seconds spent fitting.
  struct FoldFits {
    var splitCandidate: Candidate?
    var seconds = 0.0
  }

  /// For each fold not scored yet (a resumed run skips the finished ones): a candidate
  /// trained on the other folds scores the fold's queries, and the run is saved.
  private func fitFolds(
    _ run: inout TrainingRun, base: SentenceEncoder, current: [String: [ScoredHit]],
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> FoldFits {
    var fits = FoldFits()
    for fold in run.folds.indices where run.folds[fold].contains(where: { run.scored[$0] == nil }) {
      let fitStart = Date()
      let candidate = try fit(run, excluding: fold, base: base, progress: progress)
      fits.seconds += Date().timeIntervalSince(fitStart)
      let (scores, embedded) = try score(
        candidate, queries: run.folds[fold], run: run, current: current, progress: progress)
      run.scored.merge(scores) { $1 }
      run.documentsEmbedded += embedded
      try saveRun(run, droppingCheckpoint: true)  // a resumed run skips this fold
      if !run.crossFits { fits.splitCandidate = candidate }
    }
    return fits
  }

  /// The candidate the run publishes. Promoted, it is fitted once more, on every judged
  /// query, as the verdict is on the recipe (so a rejected recipe costs no further fit);
  /// rejected, it is the split's candidate, or for the adapter tier (whose rejected
  /// candidates are kept) a fit on every judged query when cross-fitting left none.
  private func publishedCandidate(
    _ run: TrainingRun, gate: GateDecision, fits: inout FoldFits, base: SentenceEncoder,
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> Candidate? {
    let kept = gate.promoted ? nil : fits.splitCandidate
    guard gate.promoted || (kept == nil && run.options.tier == .adapter) else { return kept }
    let fitStart = Date()
    let candidate = try fit(run, excluding: nil, base: base, progress: progress)
    fits.seconds += Date().timeIntervalSince(fitStart)
    return candidate
  }

  /// Fits a candidate on the judged queries outside `fold` (nil: the published fit),
  /// resuming from the run's checkpoint when it belongs to this fit.
  private func fit(
    _ run: TrainingRun, excluding fold: Int?, base: SentenceEncoder,
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> Candidate {
    // Fits are numbered: the folds', then the published one.
    let (fitIndex, fits) = (fold ?? run.folds.count, run.folds.count + 1)
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
        if let last { try progress?(.training(FitProgress(last), fold: fitIndex + 1, folds: fits)) }
        if trainer.step % options.checkpointEvery == 0 && !trainer.isFinished {
          try saveBlob(.trainCheckpoint, try trainer.checkpoint())
        }
      }
      return trainer.lossHistory
    }
    do {
      switch options.tier {
      case .full, .lora:
        let examples = try encoderExamples(pairs, run: run, encoder: base)
        let trainer =
          try checkpoint.map { try EncoderTrainer(resuming: $0, examples: examples) }
          ?? EncoderTrainer(
            parameters: try EncoderParameters(base), examples: examples,
            configuration: configuration, lora: options.loraConfiguration)
        trainer.encoder.matmulPrecision = options.matmulPrecision ?? .automatic
        let losses = try loop(trainer)
        // Served as trained: the trainer's configuration and pooling, the base's tokenizer.
        let encoder = try SentenceEncoder(trained: trainer.encoder.parameters, like: base)
        return Candidate(
          model: .encoder(encoder, lora: trainer.lora), losses: losses, queries: queries)
      case .adapter:
        let examples = try adapterExamples(pairs, run: run, encoder: base)
        let trainer =
          try checkpoint.map { try AdapterTrainer(resuming: $0, examples: examples) }
          ?? AdapterTrainer(
            dimension: base.dimension, examples: examples, configuration: configuration)
        let losses = try loop(trainer)
        return Candidate(model: .adapter(trainer.adapter), losses: losses, queries: queries)
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
    _ pairs: [MinedPair], run: TrainingRun, encoder: SentenceEncoder
  ) throws -> [TrainingExample] {
    let texts = try documentTexts(Set(pairs.flatMap { [$0.positive] + $0.negatives }))
    return try pairs.map { pair in
      func document(_ id: String) throws -> (id: String, text: String) {
        guard let text = texts[id] else {
          throw VectorDBError.documentNotFound(id: id, collection: name)
        }
        return (id, encoder.prompted([text], as: .document)[0])
      }
      return TrainingExample(
        query: encoder.prompted([pair.query], as: .query)[0], positive: try document(pair.positive),
        negatives: try pair.negatives.map(document), tokenizer: encoder.tokenizer,
        maxLength: run.options.maxSequenceLength)
    }
  }

  /// The pairs as vectors for the adapter tier: queries embedded by the base encoder,
  /// documents as the run's generation stores them.
  private func adapterExamples(_ pairs: [MinedPair], run: TrainingRun, encoder: SentenceEncoder)
    throws -> [AdapterExample]
  {
    let queries = Array(Set(pairs.map(\.query))).sorted()
    let queryVectors = Dictionary(
      uniqueKeysWithValues: zip(queries, encoder.embed(encoder.prompted(queries, as: .query))))
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

}
