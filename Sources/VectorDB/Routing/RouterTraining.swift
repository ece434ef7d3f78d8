import Embedding
import Foundation
import LMDB
import Training

/// What `Router.train` trains.
public enum RouterTier: String, Codable, Sendable, CaseIterable {
  /// A classifier on the encoder's frozen sentence embeddings, chosen on the training split
  /// among shrunk LDA (the default), nearest centroid, a trained softmax head and nearest
  /// examples (seconds).
  case head
  /// The head, then the head and LoRA adapters on the encoder trained together (minutes);
  /// the version stores the adapters and serves with them merged into the encoder.
  case lora
}

/// A classifier `Router.train` can be asked for, instead of the one cross-validation on the
/// training split chooses (JSON and `--classifier`: the raw values).
public enum RouterClassifierKind: String, Codable, Sendable, CaseIterable {
  /// Each path's unit mean; cosine to it (what semantic-router does).
  case nearestCentroid = "nearest_centroid"
  /// Shrunk linear discriminant analysis.
  case shrunkLDA = "shrunk_lda"
  /// The head from the centroids trained with class-weighted cross-entropy for `epochs`.
  case softmax
  /// The training inputs kept; each path scored by its 3 most similar ones.
  case nearestExamples = "nearest_examples"
}

/// How `Router.train` trains, calibrates and picks the threshold.
public struct RouterTrainingOptions: Sendable, Codable {
  /// What to train: the head alone (default) or the head with LoRA adapters.
  public var tier = RouterTier.head
  /// The classifier to fit; nil (default): the one cross-validation on the training split
  /// chooses.
  public var classifier: RouterClassifierKind?
  /// Passes over the training examples.
  public var epochs = 100
  /// Examples per step.
  public var batchSize = 32
  /// AdamW's learning rate for the head.
  public var learningRate = 0.01
  /// AdamW's decoupled weight decay for the head.
  public var weightDecay = 0.01
  /// Orders the batches and draws the bootstrap (and, on the LoRA tier, the adapters'
  /// start and the dropout masks). Not the held-out split: see `splitKey`.
  public var seed: UInt64 = 42
  /// The key of the hash that splits each path's inputs; nil: the fixed one. A run with
  /// another seed splits the same way, so the active version was never trained on the
  /// inputs that judge its successor (it would be flattered, and a better candidate
  /// rejected). Benchmarks set it to measure over several splits.
  package var splitKey: UInt64?
  /// The key when `splitKey` is nil: the default seed's, so the splits of routers trained
  /// with the default seed stayed as they were when the split stopped following the seed.
  static let fixedSplitKey: UInt64 = 42
  /// Share of each path's examples held out for the gate, calibration and threshold.
  public var heldOutFraction = 0.25
  /// Fewer labelled examples than this on any path: training refuses.
  public var minimumPerPath = 5
  /// Target: at most this share of requests escalated (needs an escalation path).
  public var maxEscalation: Double?
  /// Target: at least this share of requests on a good path (needs an escalation path).
  public var minQuality: Double?
  /// Activate the candidate even when the gate says no.
  public var force = false
  /// LoRA tier: most passes of the joint training (fewer when cross-validation says so).
  public var loraEpochs = 3
  /// LoRA tier: the adapters' rank (alpha is twice the rank, as for the retriever).
  public var loraRank = 16
  /// LoRA tier: AdamW's rate for the adapters (the head keeps `learningRate`).
  public var loraLearningRate = 1e-4
  /// LoRA tier: how the encoder's linear layers multiply; nil: ``MatmulPrecision/automatic``
  /// (bfloat16 where the CPU multiplies it natively, else float32).
  public var matmulPrecision: MatmulPrecision?
  /// LoRA tier: false trains exactly `loraEpochs` (tests), without the cross-validation.
  var chooseLoRAEpochs = true
  /// The defaults: the head tier with the values above.
  public init() {}

  /// Checks the counts and ranges, naming the option; `Router.train` calls it first.
  ///
  /// - Throws: `VectorDBError.invalidInput` (source "option") naming the option and range.
  public func validate() throws {
    func check(_ ok: Bool, _ reason: String) throws {
      if !ok { throw VectorDBError.invalidInput(source: "option", line: nil, reason: reason) }
    }
    func positive(_ value: Double) -> Bool { value > 0 && value.isFinite }
    try check(epochs >= 1, "epochs must be at least 1")
    try check(batchSize >= 1, "batch size must be at least 1")
    try check(positive(learningRate), "the learning rate must be a positive number")
    try check(weightDecay >= 0 && weightDecay.isFinite, "weight decay cannot be negative")
    try check(heldOutFraction > 0 && heldOutFraction < 1, "held-out share must be in (0, 1)")
    try check(minimumPerPath >= 2, "the minimum per path must be at least 2")
    try check(
      maxEscalation == nil || minQuality == nil,
      "give a maximum escalation or a minimum quality, not both")
    for (name, target) in [("maximum escalation", maxEscalation), ("minimum quality", minQuality)] {
      try check(target.map { (0...1).contains($0) } ?? true, "the \(name) must be in [0, 1]")
    }
    try check((1...100).contains(loraEpochs), "LoRA epochs must be 1…100")
    try check((1...256).contains(loraRank), "LoRA rank must be 1…256")
    try check(positive(loraLearningRate), "the LoRA learning rate must be a positive number")
  }
}

/// A stage of `Router.train`, for progress reports.
public enum RouterTrainingStage: Sendable {
  case embedding(OperationProgress)
  /// The cross-validation that chooses the classifier on the training split: folds done
  /// and in all.
  case choosingClassifier(OperationProgress)
  /// After each epoch: the epoch (1-based), the epochs in all, the epoch's mean loss.
  case training(epoch: Int, epochs: Int, loss: Double)
  /// LoRA tier: epochs of the cross-validation that chooses how long to tune, done and in all.
  case crossValidation(OperationProgress)
  /// LoRA tier: after each epoch of the joint training on the whole training split.
  case tuning(epoch: Int, epochs: Int, loss: Double)
}

/// One threshold on the cost/quality curve, measured on the held-out split.
public struct CostQualityPoint: Codable, Equatable, Sendable {
  /// The confidence below which a request escalates.
  public var threshold: Double
  /// Share of requests sent to the escalation path.
  public var escalation: Double
  /// Share of requests whose chosen path is good.
  public var quality: Double
  /// Mean cost per request, when every path has a cost.
  public var cost: Double?
}

/// The outcome of `Router.train`.
public struct RouterTrainingReport: Codable, Sendable {
  /// The candidate's version number (JSON `version`).
  public var version: Int
  /// Whether the gate (or `force`) made it serve (JSON `activated`).
  public var activated: Bool
  /// The gate's verdict.
  public var reason: String
  /// The classifier chosen on the training split: `nearest_centroid`, `shrunk_lda`,
  /// `softmax` (the head trained from the centroids for `metrics["epochs"]` epochs) or
  /// `nearest_examples`.
  public var classifier: String
  /// Inputs with a best path, per path; inputs whose log says nothing about the best path.
  public var examples: [String: Int]
  /// Inputs the log says nothing about the best path of (JSON `unlabelled`).
  public var unlabelled: Int
  /// Labelled inputs the classifier trained on (JSON `train_examples`).
  public var trainExamples: Int
  /// Labelled inputs held out for the gate, calibration and threshold (JSON
  /// `heldout_examples`).
  public var heldOutExamples: Int
  /// The held-out inputs (the gate, the calibration and the threshold are measured on them).
  public var heldOutInputs: [String]
  /// Held-out figures: macro_f1, accuracy, the baselines' (nearest_centroid_macro_f1,
  /// active_macro_f1 or majority_macro_f1), ece_before, ece_after, temperature, threshold,
  /// escalation, quality, always_escalate_quality, never_escalate_quality.
  public var metrics: [String: Double]
  /// The cost/quality curve on the held-out split, one point per threshold (JSON `curve`).
  public var curve: [CostQualityPoint]
  /// Mean loss of each epoch, in order (JSON `losses`; empty for the closed-form classifiers).
  public var losses: [Double]
  /// Labelled inputs the run embedded (JSON `embedded_inputs`); the others' vectors were
  /// stored by an earlier run with the same encoder (see `RouterVectorCache`).
  public var embeddedInputs: Int
  /// Wall-clock seconds the run took (JSON `seconds`).
  public var seconds: Double
  /// What the figures do not say plainly, one sentence each (JSON `warnings`; empty when
  /// none): held-out inputs the classifier gives to the escalation path with probability
  /// ≥ 0.9 that the threshold chosen for the target sends to another path.
  public var warnings: [String]

  enum CodingKeys: String, CodingKey {
    case version, activated, reason, classifier, examples, unlabelled, warnings
    case trainExamples = "train_examples"
    case heldOutExamples = "heldout_examples"
    case heldOutInputs = "heldout_inputs"
    case embeddedInputs = "embedded_inputs"
    case metrics, curve, losses, seconds
  }
}

/// A run of `Router.train`: the labelled examples and their split, and the held-out figures
/// the stages measure (as the retriever's `TrainingRun`, though a router's run is short and
/// is not saved). Stages: examples and split (`prepareRun`) → embed → fit (`fitClassifier`,
/// `tuneEncoder` on the LoRA tier, RouterFit.swift) → held-out predictions → gate →
/// calibrate → threshold → publish.
struct RouterTrainingRun {
  var options: RouterTrainingOptions
  /// The encoder version that embeds the inputs.
  var model: Int
  /// The log's inputs, with a best path or not.
  var logged: Int
  /// Inputs with a best path, in log order, and that path's index.
  var labelled: [Router.Example]
  var labels: [Int]
  /// Labelled inputs per path.
  var counts: [Int]
  /// Indices into `labelled`, each in order: the classifier's split, and the held-out one
  /// (the gate's, the calibration's and the threshold's).
  var train: [Int] = []
  var heldOut: [Int] = []
  /// Held-out figures, as the stages measure them (the report's and the version's).
  var metrics: [String: Double] = [:]
  /// The report's warnings.
  var warnings: [String] = []

  /// Stratified split: per path, the inputs whose hash comes first are held out.
  init(
    options: RouterTrainingOptions, model: Int, logged: Int, labelled: [Router.Example],
    labels: [Int], counts: [Int]
  ) {
    self.options = options
    self.model = model
    self.logged = logged
    self.labelled = labelled
    self.labels = labels
    self.counts = counts
    let splitKey = options.splitKey ?? RouterTrainingOptions.fixedSplitKey
    for path in counts.indices {
      let members = labels.indices.filter { labels[$0] == path }.sorted {
        DocumentCollection.stableHash(labelled[$0].input, seed: splitKey)
          < DocumentCollection.stableHash(labelled[$1].input, seed: splitKey)
      }
      let held = Self.heldOutCount(of: members.count, fraction: options.heldOutFraction)
      heldOut += members.prefix(held)
      train += members.dropFirst(held)
    }
    heldOut.sort()
    train.sort()
  }

  /// How many of a path's `count` inputs the split holds out: at least one.
  static func heldOutCount(of count: Int, fraction: Double) -> Int {
    max(1, Int((fraction * Double(count)).rounded()))
  }

  /// The fewest training inputs a path may keep after the split: a classifier needs some
  /// of every path to fit.
  static let minimumTrainingPerPath = 2

  var trainLabels: [Int] { train.map { labels[$0] } }
  var heldOutLabels: [Int] { heldOut.map { labels[$0] } }
  var heldOutInputs: [String] { heldOut.map { labelled[$0].input } }

  /// Macro-F1 of `predictions` of the held-out inputs.
  func heldOutMacroF1(_ predictions: [Int]) -> Double {
    ClassificationMetrics(labels: heldOutLabels, predictions: predictions, classes: counts.count)
      .macroF1
  }
}

/// The candidate's held-out logits (one row per held-out input) and most probable paths.
struct HeldOutPredictions {
  var logits: [Double]
  var rows: [[Double]]
  var predictions: [Int]
}

/// The gate's verdict on the candidate.
struct RouterGate {
  var activated: Bool
  var reason: String
}

extension Router {
  /// Trains a new version of the router from its log and activates it only when the held-out
  /// split says it is better.
  ///
  /// 1. **Examples and split** (`prepareRun`). Inputs with a best path (see `examples()`)
  ///    are split per path, by a hash of the text, into training and held-out parts.
  /// 2. **Fit** (`embed`, `fitClassifier`, then `tuneEncoder` on the LoRA tier). The inputs
  ///    are embedded by the database's default encoder (frozen), except those whose vectors
  ///    an earlier run stored (`RouterVectorCache`). The classifier is chosen by
  ///    cross-validation on the training split (`chooseClassifier`): shrunk linear
  ///    discriminant analysis (the default), nearest centroid, a softmax head started as the
  ///    centroids and trained with balanced class weights and AdamW for some epochs, or
  ///    nearest examples.
  /// 3. **Gate** (`predictHeldOut`, `gate`). A paired bootstrap of held-out macro-F1 against
  ///    the active version (or, without one, always the most common path); the candidate is
  ///    activated only when the 95% interval of the gain is above zero (or `force`).
  ///    Otherwise it is stored as rejected with the reason.
  /// 4. **Calibration and threshold** (`calibrate`, `placeThreshold`). One temperature fitted
  ///    on the held-out logits (ECE reported before and after, the latter cross-fitted on
  ///    halves); the threshold chosen on the held-out split for `maxEscalation` or
  ///    `minQuality` (without a target: 0.5 with an escalation path, else 0), with a warning
  ///    when it sends inputs the classifier is sure need escalation to another path.
  /// 5. **Publish** (`publish`). The version, its metrics and lineage, and its weights
  ///    (a rejected LoRA-tier version's are dropped).
  ///
  /// The version is written at the end, in one transaction: a run that is killed leaves the
  /// active version serving. (The inputs' vectors are stored after step 2, for the next run.)
  ///
  /// - Throws: `VectorDBError.notEnoughExamples` when a path has fewer than `minimumPerPath`
  ///   examples (saying how many more are needed); `.routerNotAvailable` when there is no
  ///   encoder, or when a target is given without an escalation path; `.invalidInput` when
  ///   the target cannot be met on the held-out split (naming the closest it can reach);
  ///   `.routerNotFound` when the router was deleted. Nothing is written then.
  public func train(
    options: RouterTrainingOptions = RouterTrainingOptions(),
    progress: ((RouterTrainingStage) throws -> Void)? = nil
  ) throws -> RouterTrainingReport {
    try options.validate()
    let start = Date()
    // Examples → split: refused here when a path has too few examples or there is no encoder.
    var run = try prepareRun(options: options)
    let encoder = try database.encoder(version: run.model)
    let (vectors, embedded) = try embed(
      run.labelled.map(\.input), model: run.model, encoder: encoder, progress: progress)
    // Fit: the classifier chosen on the training split; the LoRA tier tunes the encoder too.
    var fit = try fitClassifier(run, vectors: vectors, encoder: encoder, progress: progress)
    if options.tier == .lora {
      fit = try tuneEncoder(
        fit, texts: run.train.map { run.labelled[$0].input }, labels: run.trainLabels,
        vectors: run.train.map { vectors[$0] }, options: options, progress: progress)
    }
    let held = predictHeldOut(&run, fit: fit, vectors: vectors)
    guard held.logits.allSatisfy(\.isFinite) else {
      throw VectorDBError.invalidInput(
        source: "option", line: nil,
        reason: "the training diverged (the head's scores are not finite numbers) at learning"
          + " rate \(options.learningRate): give a smaller one")
    }
    let gate = try gate(
      &run, candidate: held.predictions, heldOutVectors: run.heldOut.map { vectors[$0] })
    let temperature = calibrate(&run, held)
    let (threshold, curve) = try placeThreshold(&run, held: held, temperature: temperature)
    // Nothing is written before this: one transaction stores the version.
    let version = try publish(
      &run, fit: fit, gate: gate, temperature: temperature, threshold: threshold)
    return RouterTrainingReport(
      version: version, activated: gate.activated, reason: gate.reason,
      classifier: fit.classifier.name,
      examples: Dictionary(
        uniqueKeysWithValues: paths.indices.map { (paths[$0].name, run.counts[$0]) }),
      unlabelled: run.logged - run.labelled.count, trainExamples: run.train.count,
      heldOutExamples: run.heldOut.count, heldOutInputs: run.heldOutInputs,
      metrics: run.metrics, curve: curve, losses: fit.losses, embeddedInputs: embedded,
      seconds: Date().timeIntervalSince(start), warnings: run.warnings)
  }

  // MARK: Examples

  /// The inputs of the log with a best path, and that path, split into training and
  /// held-out parts.
  ///
  /// - Throws: as `train` before it embeds anything: `.routerNotAvailable` (a target without
  ///   an escalation path, no encoder), `.notEnoughExamples`, what `examples()` and
  ///   `pathIndex` throw.
  private func prepareRun(options: RouterTrainingOptions) throws -> RouterTrainingRun {
    if options.maxEscalation != nil || options.minQuality != nil, escalation == nil {
      throw VectorDBError.routerNotAvailable(
        router: name,
        reason: "has no escalation path, so a threshold target cannot be met; create it with one")
    }
    let all = try examples()
    let labelled = all.filter { $0.best != nil }
    var counts = [Int](repeating: 0, count: paths.count)
    var labels: [Int] = []
    for example in labelled {
      let index = try pathIndex(example.best!, source: "the log of router \"\(name)\"")
      counts[index] += 1
      labels.append(index)
    }
    let short = paths.indices.filter { counts[$0] < options.minimumPerPath }
    if !short.isEmpty {
      throw VectorDBError.notEnoughExamples(
        router: name,
        short: Dictionary(uniqueKeysWithValues: short.map { (paths[$0].name, counts[$0]) }),
        needed: options.minimumPerPath)
    }
    for (path, count) in zip(paths, counts) {
      let kept =
        count - RouterTrainingRun.heldOutCount(of: count, fraction: options.heldOutFraction)
      if kept < RouterTrainingRun.minimumTrainingPerPath {
        throw VectorDBError.invalidInput(
          source: "option", line: nil,
          reason:
            "a held-out share of \(options.heldOutFraction) leaves path \"\(path.name)\" \(kept) of its"
            + " \(count) inputs to train on; at least \(RouterTrainingRun.minimumTrainingPerPath)"
            + " are needed: hold out less, or add inputs")
      }
    }
    guard let model = try database.defaultModelVersion() else {
      throw VectorDBError.routerNotAvailable(
        router: name, reason: "cannot be trained: the database has no encoder; run `vdb init` first"
      )
    }
    return RouterTrainingRun(
      options: options, model: model, logged: all.count, labelled: labelled, labels: labels,
      counts: counts)
  }

  /// The vectors of `texts` by `encoder` (model version `model`), and how many were
  /// embedded: those stored by an earlier run are read, the rest embedded in chunks
  /// (reporting progress). The store then holds exactly these texts' vectors for this
  /// router (`RouterVectorCache.keep`), in a transaction of its own: a run stopped later
  /// keeps them for the next.
  ///
  /// - Throws: `.storage` when LMDB fails; `.routerNotFound` when the router was dropped;
  ///   what `progress` throws (nothing is stored then).
  private func embed(
    _ texts: [String], model: Int, encoder: SentenceEncoder,
    progress: ((RouterTrainingStage) throws -> Void)?
  ) throws -> (vectors: [[Float]], embedded: Int) {
    let inputs = texts.map { ContentHash(text: $0) }
    let cache = store.vectors
    let router = id
    var vectors = try storage {
      try database.environment.read {
        try cache.vectors(
          of: inputs, model: model, router: router, dimension: encoder.dimension, in: $0)
      }
    }
    let missing = vectors.indices.filter { vectors[$0] == nil }
    if missing.count < texts.count {  // the stored ones are done at once (all: 100%)
      try progress?(
        .embedding(OperationProgress(done: texts.count - missing.count, total: texts.count)))
    }
    var made: [ContentHash: [Float]] = [:]
    for first in stride(from: 0, to: missing.count, by: 64) {
      let chunk = missing[first..<min(first + 64, missing.count)]
      for (index, vector) in zip(chunk, encoder.embed(chunk.map { texts[$0] })) {
        vectors[index] = vector
        made[inputs[index]] = vector
      }
      try progress?(
        .embedding(
          OperationProgress(
            done: texts.count - missing.count + first + chunk.count, total: texts.count)))
    }
    try storage {
      try database.environment.write { txn in
        _ = try self.storedRecord(in: txn)  // a dropped router keeps no vectors
        try cache.keep(Set(inputs), adding: made, model: model, router: router, in: txn)
      }
    }
    return (vectors.compactMap { $0 }, missing.count)
  }

  // MARK: Held-out predictions and gate

  /// The candidate's logits on the held-out inputs (embedded again by a tuned encoder), and
  /// its figures there beside nearest centroid's.
  private func predictHeldOut(
    _ run: inout RouterTrainingRun, fit: RouterFit, vectors: [[Float]]
  ) -> HeldOutPredictions {
    let heldVectors =
      fit.adapters == nil
      ? run.heldOut.flatMap { vectors[$0] } : fit.encoder.embed(run.heldOutInputs).flatMap { $0 }
    let logits = fit.head.logits(heldVectors).map(Double.init)
    let rows = stride(from: 0, to: logits.count, by: paths.count).map {
      Array(logits[$0..<($0 + paths.count)])
    }
    let candidate = rows.map(Self.argmax)
    let centroids = NearestCentroid(
      inputs: run.train.map { vectors[$0] }, labels: run.trainLabels, classes: paths.count)
    let centroid = centroids.predict(run.heldOut.map { vectors[$0] })
    run.metrics["macro_f1"] = run.heldOutMacroF1(candidate)
    run.metrics["accuracy"] =
      Double(zip(candidate, run.heldOutLabels).filter { $0 == $1 }.count)
      / Double(run.heldOut.count)
    run.metrics["nearest_centroid_macro_f1"] = run.heldOutMacroF1(centroid)
    run.metrics["epochs"] = Double(fit.classifier.epochs)
    if let shrinkage = fit.shrinkage { run.metrics["shrinkage"] = shrinkage }
    if case .number(let epochs)? = fit.tuning["lora_epochs"] { run.metrics["lora_epochs"] = epochs }
    return HeldOutPredictions(logits: logits, rows: rows, predictions: candidate)
  }

  /// The gate: a paired bootstrap of held-out macro-F1 of `candidate` against the active
  /// version (or, without one, always the most common path); `heldOutVectors` are the
  /// held-out inputs embedded by the run's frozen model.
  ///
  /// - Throws: `.routerNotFound` when the router was deleted; what loading the active
  ///   version throws.
  private func gate(
    _ run: inout RouterTrainingRun, candidate: [Int], heldOutVectors: [[Float]]
  ) throws -> RouterGate {
    let record = try storage { try database.environment.read { try self.storedRecord(in: $0) } }
    let current: [Int]
    let currentName: String
    if let active = record.active, let activeVersion = try loadVersion(active) {
      // An active version on the run's frozen model reads the vectors already made (on a
      // 10,000-input log, embedding the held-out quarter again took ~10 s).
      let reuse = !activeVersion.tuned && activeVersion.info.model == run.model
      current =
        (reuse
        ? activeVersion.probabilities(embedded: heldOutVectors)
        : activeVersion.probabilities(run.heldOutInputs)).map(Self.argmax)
      currentName = "active v\(active)"
      run.metrics["active_macro_f1"] = run.heldOutMacroF1(current)
    } else {
      let majority = run.counts.indices.max { run.counts[$0] < run.counts[$1] }!
      current = [Int](repeating: majority, count: run.heldOut.count)
      currentName = "always \"\(paths[majority].name)\""
      run.metrics["majority_macro_f1"] = run.heldOutMacroF1(current)
    }
    let verdict = ClassificationMetrics.bootstrapMacroF1(
      labels: run.heldOutLabels, current: current, candidate: candidate, classes: paths.count,
      seed: run.options.seed)
    let force = run.options.force
    let reason =
      (verdict.improves
        ? "activated: held-out macro-F1 improved"
        : force
          ? "activated by force; held-out macro-F1"
          : "not activated: held-out macro-F1 did not improve beyond noise")
      + String(format: " (%.4f vs %.4f", run.metrics["macro_f1"]!, run.heldOutMacroF1(current))
      + " for \(currentName))"
      + ": mean delta \(signed(verdict.meanDelta)), 95% interval [\(signed(verdict.lower)), \(signed(verdict.upper))] over \(run.heldOut.count) examples"
    return RouterGate(activated: verdict.improves || force, reason: reason)
  }

  // MARK: Calibration and threshold

  /// One temperature fitted on the held-out logits. ECE is reported before and after, the
  /// latter measured on the half the temperature was not fitted on.
  private func calibrate(_ run: inout RouterTrainingRun, _ held: HeldOutPredictions) -> Double {
    let (labels, classes) = (run.heldOutLabels, paths.count)
    let temperature = TemperatureScaling.fit(logits: held.logits, labels: labels, classes: classes)
    var crossFitted = [[Double]](repeating: [], count: labels.count)
    for half in 0..<2 {
      let fitOn = labels.indices.filter { $0 % 2 == half }
      let t = TemperatureScaling.fit(
        logits: fitOn.flatMap { held.rows[$0] }, labels: fitOn.map { labels[$0] },
        classes: classes)
      for i in labels.indices where i % 2 != half {
        crossFitted[i] = SoftmaxClassifier<Double>.softmax(
          held.rows[i], classes: classes, temperature: t)
      }
    }
    run.metrics["ece_before"] = Self.calibrationError(
      held.rows.map { SoftmaxClassifier<Double>.softmax($0, classes: classes) }, labels: labels)
    run.metrics["ece_after"] = Self.calibrationError(crossFitted, labels: labels)
    run.metrics["temperature"] = temperature
    return temperature
  }

  /// Expected calibration error of the most probable class of each row against `labels`.
  private static func calibrationError(_ probabilities: [[Double]], labels: [Int]) -> Double {
    expectedCalibrationError(
      confidences: probabilities.map { $0.max()! },
      correct: zip(probabilities, labels).map { argmax($0) == $1 })
  }

  /// The threshold for the options' target (`chooseThreshold`) on the held-out inputs at
  /// `temperature`, its figures (and a warning when it sends sure escalations elsewhere), and
  /// the cost/quality curve (with an escalation path).
  ///
  /// - Throws: `.invalidInput` when the target cannot be met.
  private func placeThreshold(
    _ run: inout RouterTrainingRun, held: HeldOutPredictions, temperature: Double
  ) throws -> (threshold: Double, curve: [CostQualityPoint]) {
    let labels = run.heldOutLabels
    let scored = run.heldOut.indices.map { i in
      ScoredExample(
        label: labels[i],
        outcomes: Dictionary(
          uniqueKeysWithValues: run.labelled[run.heldOut[i]].outcomes.compactMap { key, value in
            paths.firstIndex { $0.name == key }.map { ($0, value) }
          }),
        probabilities: SoftmaxClassifier<Double>.softmax(
          held.rows[i], classes: paths.count, temperature: temperature))
    }
    let threshold = try chooseThreshold(scored, options: run.options)
    let chosen = point(scored, threshold: threshold)
    run.metrics["threshold"] = threshold
    run.metrics["escalation"] = chosen.escalation
    run.metrics["quality"] = chosen.quality
    if let escalation = escalationIndex {
      run.metrics["always_escalate_quality"] =
        Double(scored.filter { isGood(escalation, for: $0) }.count) / Double(scored.count)
    }
    run.metrics["never_escalate_quality"] = point(scored, threshold: 0).quality
    if let warning = overriddenEscalationWarning(scored, threshold: threshold, options: run.options)
    {
      run.warnings.append(warning)
    }
    let curve =
      (escalation == nil
        ? [] : stride(from: 0.0, through: 1.0, by: 0.1).map { point(scored, threshold: $0) })
    return (threshold, curve)
  }

  // MARK: Publish

  /// Stores the candidate as the next version, in one transaction: activated when the gate
  /// (or `force`) says so, else rejected with the reason. Returns its number.
  ///
  /// - Throws: `.routerNotFound` when the router was deleted; `.storage`.
  private func publish(
    _ run: inout RouterTrainingRun, fit: RouterFit, gate: RouterGate, temperature: Double,
    threshold: Double
  ) throws -> Int {
    let lineage = self.lineage(run, fit: fit)
    // A rejected LoRA-tier version keeps its lineage only: its adapters are megabytes.
    let keepsWeights = gate.activated || fit.adapters == nil
    let adapterBytes = try keepsWeights ? fit.adapters.map(ModelStore.loraBytes) : nil
    run.metrics["stored_bytes"] =
      keepsWeights ? Double(4 * fit.head.parameters.count + (adapterBytes?.count ?? 0)) : 0
    let store = self.store
    let id = self.id
    let head = RouterStore.bytes(fit.head.parameters)
    let checksum = keepsWeights ? RouterStore.checksum(head: head, adapters: adapterBytes) : nil
    let (model, metrics, activated, reason) = (run.model, run.metrics, gate.activated, gate.reason)
    return try storage {
      try database.environment.write { txn -> Int in
        var record = try self.storedRecord(in: txn)
        let info = RouterVersion(
          version: record.nextVersion, state: activated ? .ready : .rejected, parent: record.active,
          created: Date(), model: model, paths: paths.map(\.name), temperature: temperature,
          threshold: threshold, reason: reason, metrics: metrics, lineage: lineage,
          checksum: checksum)
        try store.put(info, router: id, in: txn)
        if keepsWeights {
          try store.putHead(head, router: id, version: info.version, in: txn)
        }
        if let adapterBytes, keepsWeights {
          try store.putAdapters(adapterBytes, router: id, version: info.version, in: txn)
        }
        record.nextVersion += 1
        if activated { record.history.append(info.version) }
        try store.put(record, in: txn)
        return info.version
      }
    }
  }

  /// How the version was trained: the split, the classifier and its options, the losses,
  /// the LoRA tier's tuning and the target.
  private func lineage(_ run: RouterTrainingRun, fit: RouterFit) -> [String: JSONValue] {
    let options = run.options
    var lineage: [String: JSONValue] = [
      "train_examples": .number(Double(run.train.count)),
      "heldout_examples": .number(Double(run.heldOut.count)),
      "classifier": .string(fit.classifier.name),
      "epochs": .number(Double(fit.classifier.epochs)),
      "max_epochs": .number(Double(options.epochs)),
      "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.learningRate),
      "weight_decay": .number(options.weightDecay), "seed": .number(Double(options.seed)),
      "heldout_fraction": .number(options.heldOutFraction),
      "losses": .array(fit.losses.map { .number($0) }),
    ]
    lineage["tier"] = .string(options.tier.rawValue)
    if let shrinkage = fit.shrinkage { lineage["shrinkage"] = .number(shrinkage) }
    lineage.merge(fit.tuning) { $1 }
    if let target = options.maxEscalation { lineage["max_escalation"] = .number(target) }
    if let target = options.minQuality { lineage["min_quality"] = .number(target) }
    return lineage
  }
}

/// `x` with its sign and four decimals, for the gate's reason.
private func signed(_ x: Double) -> String {
  (x >= 0 ? "+" : "") + String(format: "%.4f", x)
}
