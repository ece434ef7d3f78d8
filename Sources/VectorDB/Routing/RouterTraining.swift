import Embedding
import Foundation
import LMDB
import Training

/// The classifiers `Router.train` chooses among on the training split, simplest first.
enum RouterClassifier: Equatable {
  /// The head as nearest centroid (cosine), untrained.
  case nearestCentroid
  /// Shrunk linear discriminant analysis (`LinearDiscriminant`): the centroids with a shared
  /// covariance estimated from the data.
  case discriminant
  /// The head from the centroids, trained for this many epochs.
  case trained(Int)

  /// The name in reports and lineage.
  var name: String {
    switch self {
    case .nearestCentroid: "nearest_centroid"
    case .discriminant: "shrunk_lda"
    case .trained: "softmax"
    }
  }

  var epochs: Int {
    if case .trained(let epochs) = self { return epochs }
    return 0
  }
}

/// What `Router.train` trains.
public enum RouterTier: String, Codable, Sendable, CaseIterable {
  /// A linear classifier on the encoder's frozen sentence embeddings, chosen on the training
  /// split among nearest centroid, shrunk LDA and a trained softmax head (seconds).
  case head
  /// The head, then the head and LoRA adapters on the encoder trained together (minutes);
  /// the version stores the adapters and serves with them merged into the encoder.
  case lora
}

/// How `Router.train` trains, calibrates and picks the threshold.
public struct RouterTrainingOptions: Sendable, Codable {
  /// What to train: the head alone (default) or the head with LoRA adapters.
  public var tier = RouterTier.head
  /// Passes over the training examples.
  public var epochs = 100
  /// Examples per step.
  public var batchSize = 32
  /// AdamW's learning rate for the head.
  public var learningRate = 0.01
  /// AdamW's decoupled weight decay for the head.
  public var weightDecay = 0.01
  /// Orders the batches and draws the held-out split and the bootstrap.
  public var seed: UInt64 = 42
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
  /// LoRA tier: false trains exactly `loraEpochs` (tests), without the cross-validation.
  var chooseLoRAEpochs = true
  /// The defaults: the head tier with the values above.
  public init() {}
}

/// A stage of `Router.train`, for progress reports.
public enum RouterTrainingStage: Sendable {
  case embedding(OperationProgress)
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
  /// The classifier chosen on the training split: `nearest_centroid`, `shrunk_lda` or
  /// `softmax` (the head trained from the centroids for `metrics["epochs"]` epochs).
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
  /// Wall-clock seconds the run took (JSON `seconds`).
  public var seconds: Double

  enum CodingKeys: String, CodingKey {
    case version, activated, reason, classifier, examples, unlabelled
    case trainExamples = "train_examples"
    case heldOutExamples = "heldout_examples"
    case heldOutInputs = "heldout_inputs"
    case metrics, curve, losses, seconds
  }
}

/// A held-out example with what the threshold search needs.
struct ScoredExample {
  var label: Int
  var outcomes: [Int: RouteOutcome]
  var probabilities: [Double]
}

extension Router {
  /// Trains a new version of the router from its log and activates it only when the held-out
  /// split says it is better.
  ///
  /// 1. Inputs with a best path (see `examples()`) are split per path, by a hash of the text,
  ///    into training and held-out parts.
  /// 2. The inputs are embedded by the database's default encoder (frozen). The classifier is
  ///    chosen by cross-validation on the training split (`chooseClassifier`): nearest
  ///    centroid, shrunk linear discriminant analysis, or a softmax head started as the
  ///    centroids and trained with balanced class weights and AdamW for some epochs.
  /// 3. Gate: a paired bootstrap of held-out macro-F1 against the active version (or,
  ///    without one, always the most common path); the candidate is activated only when the
  ///    95% interval of the gain is above zero (or `force`). Otherwise it is stored as
  ///    rejected with the reason.
  /// 4. Calibration: one temperature fitted on the held-out logits (ECE reported before and
  ///    after, the latter cross-fitted on halves); the threshold chosen on the held-out split
  ///    for `maxEscalation` or `minQuality` (0, never escalate, without a target).
  ///
  /// Nothing is written until the end, in one transaction: a run that is killed leaves the
  /// active version serving.
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
    let start = Date()
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
    guard let model = try database.defaultModelVersion() else {
      throw VectorDBError.routerNotAvailable(
        router: name, reason: "cannot be trained: the database has no encoder; run `vdb init` first"
      )
    }

    // Stratified split: per path, the inputs whose hash comes first are held out.
    var heldOut: [Int] = []
    var train: [Int] = []
    for path in paths.indices {
      let members = labels.indices.filter { labels[$0] == path }.sorted {
        DocumentCollection.stableHash(labelled[$0].input, seed: options.seed)
          < DocumentCollection.stableHash(labelled[$1].input, seed: options.seed)
      }
      let held = max(1, Int((options.heldOutFraction * Double(members.count)).rounded()))
      heldOut += members.prefix(held)
      train += members.dropFirst(held)
    }
    heldOut.sort()
    train.sort()

    let encoder = try database.encoder(version: model)
    let vectors = try embed(labelled.map(\.input), encoder: encoder, progress: progress)
    func matrix(_ indices: [Int]) -> [Float] { indices.flatMap { vectors[$0] } }
    let trainLabels = train.map { labels[$0] }
    let centroids = NearestCentroid(
      inputs: train.map { vectors[$0] }, labels: trainLabels, classes: paths.count)
    let hyper = SoftmaxClassifier<Float>.Options(
      epochs: options.epochs, batchSize: options.batchSize, learningRate: options.learningRate,
      weightDecay: options.weightDecay, seed: options.seed)
    let classifier = Self.chooseClassifier(
      inputs: train.map { vectors[$0] }, labels: trainLabels, classes: paths.count,
      options: hyper)
    let fitted = try Self.fit(
      classifier, inputs: train.map { vectors[$0] }, labels: trainLabels, classes: paths.count,
      options: hyper
    ) { epoch, loss in
      try progress?(.training(epoch: epoch, epochs: classifier.epochs, loss: loss))
    }
    var head = fitted.head
    let (losses, shrinkage) = (fitted.losses, fitted.shrinkage)

    var served = encoder
    var adapters: LoRAAdapters<Float>?
    var tuning: [String: JSONValue] = [:]
    if options.tier == .lora {
      let tuned = try tuneEncoder(
        texts: train.map { labelled[$0].input }, labels: trainLabels,
        vectors: train.map { vectors[$0] }, head: head, classifier: classifier,
        headOptions: hyper, encoder: encoder,
        options: options, progress: progress)
      head = tuned.head
      adapters = tuned.adapters
      served = tuned.encoder
      tuning = tuned.lineage
    }

    // Held-out predictions of the candidate, the baselines and the active version.
    let heldLabels = heldOut.map { labels[$0] }
    let heldVectors =
      adapters == nil
      ? matrix(heldOut) : served.embed(heldOut.map { labelled[$0].input }).flatMap { $0 }
    let logits = head.logits(heldVectors).map(Double.init)
    let rows = stride(from: 0, to: logits.count, by: paths.count).map {
      Array(logits[$0..<($0 + paths.count)])
    }
    let candidate = rows.map(Self.argmax)
    let centroid = centroids.predict(heldOut.map { vectors[$0] })
    var metrics: [String: Double] = [:]
    func macroF1(_ predictions: [Int]) -> Double {
      ClassificationMetrics(labels: heldLabels, predictions: predictions, classes: paths.count)
        .macroF1
    }
    metrics["macro_f1"] = macroF1(candidate)
    metrics["accuracy"] =
      Double(zip(candidate, heldLabels).filter { $0 == $1 }.count) / Double(heldOut.count)
    metrics["nearest_centroid_macro_f1"] = macroF1(centroid)
    metrics["epochs"] = Double(classifier.epochs)
    if let shrinkage { metrics["shrinkage"] = shrinkage }
    if case .number(let epochs)? = tuning["lora_epochs"] { metrics["lora_epochs"] = epochs }
    let record = try storage { try database.environment.read { try self.storedRecord(in: $0) } }
    let current: [Int]
    let currentName: String
    if let active = record.active, let activeVersion = try loadVersion(active) {
      current = activeVersion.probabilities(heldOut.map { labelled[$0].input }).map(Self.argmax)
      currentName = "active v\(active)"
      metrics["active_macro_f1"] = macroF1(current)
    } else {
      let majority = counts.indices.max { counts[$0] < counts[$1] }!
      current = [Int](repeating: majority, count: heldOut.count)
      currentName = "always \"\(paths[majority].name)\""
      metrics["majority_macro_f1"] = macroF1(current)
    }
    let verdict = ClassificationMetrics.bootstrapMacroF1(
      labels: heldLabels, current: current, candidate: candidate, classes: paths.count,
      seed: options.seed)
    let activated = verdict.improves || options.force
    func signed(_ x: Double) -> String { (x >= 0 ? "+" : "") + String(format: "%.4f", x) }
    let reason =
      (verdict.improves
        ? "activated: held-out macro-F1 improved"
        : options.force
          ? "activated by force; held-out macro-F1"
          : "not activated: held-out macro-F1 did not improve beyond noise")
      + String(format: " (%.4f vs %.4f", metrics["macro_f1"]!, macroF1(current))
      + " for \(currentName))"
      + ": mean delta \(signed(verdict.meanDelta)), 95% interval [\(signed(verdict.lower)), \(signed(verdict.upper))] over \(heldOut.count) examples"

    // Calibration: ECE after is measured on the half the temperature was not fitted on.
    let temperature = TemperatureScaling.fit(
      logits: logits, labels: heldLabels, classes: paths.count)
    var crossFitted = [[Double]](repeating: [], count: heldOut.count)
    for half in 0..<2 {
      let fitOn = heldOut.indices.filter { $0 % 2 == half }
      let t = TemperatureScaling.fit(
        logits: fitOn.flatMap { rows[$0] }, labels: fitOn.map { heldLabels[$0] },
        classes: paths.count)
      for i in heldOut.indices where i % 2 != half {
        crossFitted[i] = SoftmaxClassifier<Double>.softmax(
          rows[i], classes: paths.count, temperature: t)
      }
    }
    func ece(_ probabilities: [[Double]]) -> Double {
      expectedCalibrationError(
        confidences: probabilities.map { $0.max()! },
        correct: zip(probabilities, heldLabels).map { Self.argmax($0) == $1 })
    }
    metrics["ece_before"] = ece(
      rows.map { SoftmaxClassifier<Double>.softmax($0, classes: paths.count) })
    metrics["ece_after"] = ece(crossFitted)
    metrics["temperature"] = temperature

    let scored = heldOut.indices.map { i in
      ScoredExample(
        label: heldLabels[i],
        outcomes: Dictionary(
          uniqueKeysWithValues: labelled[heldOut[i]].outcomes.compactMap { key, value in
            paths.firstIndex { $0.name == key }.map { ($0, value) }
          }),
        probabilities: SoftmaxClassifier<Double>.softmax(
          rows[i], classes: paths.count, temperature: temperature))
    }
    let threshold = try chooseThreshold(scored, options: options)
    let chosen = point(scored, threshold: threshold)
    metrics["threshold"] = threshold
    metrics["escalation"] = chosen.escalation
    metrics["quality"] = chosen.quality
    if let escalation = escalation.flatMap({ e in paths.firstIndex { $0.name == e } }) {
      metrics["always_escalate_quality"] =
        Double(scored.filter { isGood(escalation, for: $0) }.count) / Double(scored.count)
    }
    metrics["never_escalate_quality"] = point(scored, threshold: 0).quality
    let curve =
      (escalation == nil
        ? [] : stride(from: 0.0, through: 1.0, by: 0.1).map { point(scored, threshold: $0) })

    var lineage: [String: JSONValue] = [
      "train_examples": .number(Double(train.count)),
      "heldout_examples": .number(Double(heldOut.count)),
      "classifier": .string(classifier.name),
      "epochs": .number(Double(classifier.epochs)), "max_epochs": .number(Double(options.epochs)),
      "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.learningRate),
      "weight_decay": .number(options.weightDecay), "seed": .number(Double(options.seed)),
      "heldout_fraction": .number(options.heldOutFraction),
      "losses": .array(losses.map { .number($0) }),
    ]
    lineage["tier"] = .string(options.tier.rawValue)
    if let shrinkage { lineage["shrinkage"] = .number(shrinkage) }
    lineage.merge(tuning) { $1 }
    if let target = options.maxEscalation { lineage["max_escalation"] = .number(target) }
    if let target = options.minQuality { lineage["min_quality"] = .number(target) }

    // A rejected LoRA-tier version keeps its lineage only: its adapters are megabytes.
    let keepsWeights = activated || adapters == nil
    let adapterBytes = try keepsWeights ? adapters.map(ModelStore.loraBytes) : nil
    metrics["stored_bytes"] =
      keepsWeights ? Double(4 * head.parameters.count + (adapterBytes?.count ?? 0)) : 0
    let store = self.store
    let id = self.id
    let parameters = head.parameters
    let version = try storage {
      try database.environment.write { txn -> Int in
        var record = try self.storedRecord(in: txn)
        let info = RouterVersion(
          version: record.nextVersion, state: activated ? .ready : .rejected, parent: record.active,
          created: Date(), model: model, paths: paths.map(\.name), temperature: temperature,
          threshold: threshold, reason: reason, metrics: metrics, lineage: lineage)
        try store.put(info, router: id, in: txn)
        if keepsWeights {
          try store.putParameters(parameters, router: id, version: info.version, in: txn)
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
    return RouterTrainingReport(
      version: version, activated: activated, reason: reason, classifier: classifier.name,
      examples: Dictionary(
        uniqueKeysWithValues: paths.indices.map { (paths[$0].name, counts[$0]) }),
      unlabelled: all.count - labelled.count, trainExamples: train.count,
      heldOutExamples: heldOut.count, heldOutInputs: heldOut.map { labelled[$0].input },
      metrics: metrics, curve: curve, losses: losses,
      seconds: Date().timeIntervalSince(start))
  }

  /// The head's starting inverse temperature over cosine similarities (as in contrastive
  /// losses, 1/0.05): soft enough that the first epochs still have gradient to follow.
  static let centroidScale: Float = 20

  /// The classifier, chosen by cross-validation on the training split alone (the held-out
  /// split stays unseen until the gate), simplest first: nearest centroid, the shrunk
  /// discriminant, then the head trained from the centroids for a tenth, a third and all of
  /// `options.epochs`.
  static func chooseClassifier(
    inputs: [[Float]], labels: [Int], classes: Int, options: SoftmaxClassifier<Float>.Options
  ) -> RouterClassifier {
    let epochs = Set([options.epochs / 10, options.epochs / 3, options.epochs]).filter { $0 > 0 }
    let candidates =
      [RouterClassifier.nearestCentroid, .discriminant] + epochs.sorted().map { .trained($0) }
    return crossValidate(labels: labels, classes: classes, candidates: candidates) {
      fit, check in
      candidates.map { classifier in
        // A discriminant whose covariance is singular on a fold scores nothing there.
        guard
          let head = try? Self.fit(
            classifier, inputs: fit.map { inputs[$0] }, labels: fit.map { labels[$0] },
            classes: classes, options: options
          ).head
        else { return 0 }
        return macroF1(
          logits: head.logits(check.flatMap { inputs[$0] }), labels: check.map { labels[$0] },
          classes: classes)
      }
    } ?? .trained(options.epochs)
  }

  /// `classifier` fitted to `inputs` as a head, with the epochs' losses (none but for a
  /// trained head) and the discriminant's shrinkage. `progress` gets each epoch and its loss.
  ///
  /// - Throws: `TrainingError.badInput` when a discriminant cannot be fitted (a class without
  ///   inputs, a singular covariance); what `progress` throws.
  static func fit(
    _ classifier: RouterClassifier, inputs: [[Float]], labels: [Int], classes: Int,
    options: SoftmaxClassifier<Float>.Options, progress: ((Int, Double) throws -> Void)? = nil
  ) throws -> (head: SoftmaxClassifier<Float>, losses: [Double], shrinkage: Double?) {
    if classifier == .discriminant {
      let discriminant = try LinearDiscriminant(inputs: inputs, labels: labels, classes: classes)
      return (discriminant.head, [], discriminant.shrinkage)
    }
    var head = SoftmaxClassifier<Float>(
      centroids: NearestCentroid(inputs: inputs, labels: labels, classes: classes),
      scale: centroidScale)
    var hyper = options
    hyper.epochs = classifier.epochs
    let losses = try head.fit(
      inputs: inputs.flatMap { $0 }, labels: labels,
      classWeights: SoftmaxClassifier<Float>.balancedWeights(labels: labels, classes: classes),
      options: hyper, progress: progress)
    return (head, losses, nil)
  }

  /// Chooses among `candidates` (simplest first) by 5-fold stratified cross-validation:
  /// `score` gets a fold's fitting and checking indices and returns each candidate's macro-F1
  /// on the checking part. By the one-standard-error rule, the first candidate whose mean
  /// over the folds is within one standard error of the best wins: small or noisy training
  /// splits keep close to the start, and training moves away from it only where the folds
  /// say it clearly pays. Nil when fewer than two folds had every class to fit on.
  static func crossValidate<Candidate>(
    labels: [Int], classes: Int, candidates: [Candidate],
    score: (_ fit: [Int], _ check: [Int]) throws -> [Double]
  ) rethrows -> Candidate? {
    let folds = 5
    // Stratified folds: the k-th example of each class goes to fold k mod 5.
    var seen = [Int](repeating: 0, count: classes)
    let fold = labels.map { y -> Int in
      defer { seen[y] += 1 }
      return seen[y] % folds
    }
    var scores = [[Double]](repeating: [], count: candidates.count)
    for k in 0..<folds {
      let fit = labels.indices.filter { fold[$0] != k }
      let check = labels.indices.filter { fold[$0] == k }
      // A fold whose fitting part lacks a class says nothing fair about it.
      guard !check.isEmpty, Set(fit.map { labels[$0] }).count == classes else { continue }
      for (c, value) in try score(fit, check).enumerated() { scores[c].append(value) }
    }
    guard scores[0].count >= 2 else { return nil }
    let n = Double(scores[0].count)
    let means = scores.map { $0.reduce(0, +) / n }
    let best = means.indices.max { means[$0] < means[$1] }!
    let variance =
      scores[best].map { ($0 - means[best]) * ($0 - means[best]) }.reduce(0, +) / (n - 1)
    let bar = means[best] - (variance / n).squareRoot()
    return candidates[means.indices.first { means[$0] >= bar }!]
  }

  /// Macro-F1 of the argmax of `n×classes` logits.
  static func macroF1(logits: [Float], labels: [Int], classes: Int) -> Double {
    let predictions = labels.indices.map { i in
      (0..<classes).max { logits[i * classes + $0] < logits[i * classes + $1] }!
    }
    return ClassificationMetrics(labels: labels, predictions: predictions, classes: classes)
      .macroF1
  }

  /// The LoRA tier: from the chosen head on the frozen encoder, the head and LoRA adapters
  /// on the encoder trained together (`EncoderClassifierTrainer`) for a number of epochs
  /// chosen by `crossValidate` on the training split (0 to `loraEpochs`; 0 keeps the head on
  /// the frozen encoder, and then no adapters). Returns the head, the adapters, the encoder
  /// that serves them (merged) and the run's lineage.
  private func tuneEncoder(
    texts: [String], labels: [Int], vectors: [[Float]], head: SoftmaxClassifier<Float>,
    classifier: RouterClassifier, headOptions: SoftmaxClassifier<Float>.Options,
    encoder: SentenceEncoder,
    options: RouterTrainingOptions, progress: ((RouterTrainingStage) throws -> Void)?
  ) throws -> (
    head: SoftmaxClassifier<Float>, adapters: LoRAAdapters<Float>?, encoder: SentenceEncoder,
    lineage: [String: JSONValue]
  ) {
    let classes = head.classes
    let base = try EncoderParameters(encoder)
    let sequences = texts.map { encoder.tokenize($0).map(Int32.init) }
    var tuning = EncoderClassifierTrainer.Options(seed: options.seed)
    tuning.batchSize = options.batchSize
    tuning.headLearningRate = options.learningRate
    tuning.learningRate = options.loraLearningRate
    tuning.weightDecay = options.weightDecay
    tuning.lora = LoRAConfiguration(rank: options.loraRank, alpha: 2 * Double(options.loraRank))
    func trainer(_ indices: [Int], from head: SoftmaxClassifier<Float>) throws
      -> EncoderClassifierTrainer
    {
      let fitLabels = indices.map { labels[$0] }
      return try EncoderClassifierTrainer(
        base: base, head: head, sequences: indices.map { sequences[$0] }, labels: fitLabels,
        classWeights: SoftmaxClassifier<Float>.balancedWeights(labels: fitLabels, classes: classes),
        options: tuning)
    }

    // Each fold: the head tier on the fitting part, then the joint training, scored on the
    // checking part before the first epoch and after each.
    let total = 5 * options.loraEpochs
    var done = 0
    let epochs =
      try !options.chooseLoRAEpochs
      ? options.loraEpochs
      : Self.crossValidate(
        labels: labels, classes: classes, candidates: Array(0...options.loraEpochs)
      ) { fit, check in
        let start = try Self.fit(
          classifier, inputs: fit.map { vectors[$0] }, labels: fit.map { labels[$0] },
          classes: classes, options: headOptions)
        let run = try trainer(fit, from: start.head)
        let checkSequences = check.map { sequences[$0] }
        let checkLabels = check.map { labels[$0] }
        var scores = [
          Self.macroF1(
            logits: try run.logits(checkSequences), labels: checkLabels, classes: classes)
        ]
        for _ in 0..<options.loraEpochs {
          run.trainEpoch()
          done += 1
          try progress?(.crossValidation(OperationProgress(done: done, total: total)))
          scores.append(
            Self.macroF1(
              logits: try run.logits(checkSequences), labels: checkLabels, classes: classes))
        }
        return scores
      } ?? options.loraEpochs

    var lineage: [String: JSONValue] = [
      "lora_epochs": .number(Double(epochs)),
      "lora_max_epochs": .number(Double(options.loraEpochs)),
      "lora_rank": .number(Double(options.loraRank)),
      "lora_learning_rate": .number(options.loraLearningRate),
    ]
    guard epochs > 0 else { return (head, nil, encoder, lineage) }
    let run = try trainer(Array(labels.indices), from: head)
    for epoch in 1...epochs {
      let loss = run.trainEpoch()
      try progress?(.tuning(epoch: epoch, epochs: epochs, loss: loss))
    }
    lineage["lora_losses"] = .array(run.losses.map { .number($0) })
    return (
      run.head, run.adapters,
      try SentenceEncoder(trained: run.mergedParameters, like: encoder), lineage
    )
  }

  /// Embeds `texts` in chunks, reporting progress.
  private func embed(
    _ texts: [String], encoder: SentenceEncoder, progress: ((RouterTrainingStage) throws -> Void)?
  ) throws -> [[Float]] {
    var vectors: [[Float]] = []
    vectors.reserveCapacity(texts.count)
    for first in stride(from: 0, to: texts.count, by: 64) {
      vectors += encoder.embed(Array(texts[first..<min(first + 64, texts.count)]))
      try progress?(.embedding(OperationProgress(done: vectors.count, total: texts.count)))
    }
    return vectors
  }

  static func argmax(_ values: [Double]) -> Int {
    values.indices.max { values[$0] < values[$1] }!
  }

  /// Whether path `index` serves `example` well: it is the best path, an outcome says it is
  /// good, or it is the escalation path and no outcome says it is bad.
  func isGood(_ index: Int, for example: ScoredExample) -> Bool {
    if index == example.label { return true }
    if let outcome = example.outcomes[index] { return outcome == .good }
    return paths[index].name == escalation
  }

  /// The path a request takes. Without an escalation path: the most probable one. With one:
  /// the most probable of the other paths when its probability (the confidence) reaches
  /// `threshold`, else the escalation path. Threshold 0 never escalates, above 1 always.
  func decide(_ probabilities: [Double], threshold: Double) -> (
    path: Int, confidence: Double, escalated: Bool
  ) {
    guard let escalation = paths.firstIndex(where: { $0.name == escalation }) else {
      let top = Self.argmax(probabilities)
      return (top, probabilities[top], false)
    }
    let best = probabilities.indices.filter { $0 != escalation }.max {
      probabilities[$0] < probabilities[$1]
    }!
    let confidence = probabilities[best]
    return confidence < threshold
      ? (escalation, confidence, true) : (best, confidence, false)
  }

  /// Escalation share, quality and mean cost of `threshold` on `examples`.
  func point(_ examples: [ScoredExample], threshold: Double) -> CostQualityPoint {
    var escalated = 0
    var good = 0
    var cost = 0.0
    for example in examples {
      let decision = decide(example.probabilities, threshold: threshold)
      if decision.escalated { escalated += 1 }
      if isGood(decision.path, for: example) { good += 1 }
      cost += paths[decision.path].cost ?? .nan
    }
    let n = Double(max(1, examples.count))
    return CostQualityPoint(
      threshold: threshold, escalation: Double(escalated) / n, quality: Double(good) / n,
      cost: cost.isNaN ? nil : cost / n)
  }

  /// The threshold meeting the options' target on `examples`: for `maxEscalation`, the one
  /// with the best quality (then the highest) among those escalating at most that share; for
  /// `minQuality`, the
  /// one escalating least among those reaching that quality; without a target, 0.5 (with an
  /// escalation path: escalate when no other path is more likely right than not).
  func chooseThreshold(_ examples: [ScoredExample], options: RouterTrainingOptions) throws
    -> Double
  {
    guard options.maxEscalation != nil || options.minQuality != nil else {
      return escalation == nil ? 0 : 0.5
    }
    // One threshold per distinct set of decisions: 0 (never escalate), the midpoints between
    // consecutive confidences (robust to the noise of a small split), and just above 1.
    let confidences = Set(examples.map { decide($0.probabilities, threshold: 0).confidence })
      .sorted()
    let candidates =
      [0.0] + zip(confidences, confidences.dropFirst()).map { ($0 + $1) / 2 } + [Double(1).nextUp]
    let points = candidates.map { point(examples, threshold: $0) }
    func describe(_ p: CostQualityPoint) -> String {
      String(
        format: "escalation %.3f, quality %.3f at threshold %.3f", p.escalation, p.quality,
        p.threshold)
    }
    if let target = options.maxEscalation {
      let feasible = points.filter { $0.escalation <= target }
      // Equal quality: the higher threshold, which uses the escalation budget.
      guard
        let best = feasible.max(by: {
          ($0.quality, $0.threshold) < ($1.quality, $1.threshold)
        })
      else {
        let closest = points.min { $0.escalation < $1.escalation }!
        throw VectorDBError.invalidInput(
          source: "--max-escalation", line: nil,
          reason:
            "no threshold escalates at most \(target) of the held-out inputs; the closest is \(describe(closest))"
        )
      }
      return best.threshold
    }
    let target = options.minQuality!
    guard
      let best = points.filter({ $0.quality >= target }).min(by: {
        ($0.escalation, $0.threshold) < ($1.escalation, $1.threshold)
      })
    else {
      let closest = points.max { ($0.quality, -$0.escalation) < ($1.quality, -$1.escalation) }!
      throw VectorDBError.invalidInput(
        source: "--min-quality", line: nil,
        reason:
          "no threshold reaches quality \(target) on the held-out inputs; the closest is \(describe(closest))"
      )
    }
    return best.threshold
  }
}
