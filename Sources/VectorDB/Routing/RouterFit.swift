import Embedding
import Foundation
import Training

/// A classifier `Router.train` fits: its kind, and for a trained head its epochs. The
/// candidates the training split chooses among are the statics below, simplest first.
struct RouterClassifier: Equatable {
  var kind: RouterClassifierKind
  /// Epochs of a trained head (`softmax`); 0 for the others.
  var epochs = 0

  /// The head as nearest centroid (cosine), untrained.
  static let nearestCentroid = Self(kind: .nearestCentroid)
  /// Shrunk linear discriminant analysis (`LinearDiscriminant`): the centroids with a shared
  /// covariance estimated from the data.
  static let discriminant = Self(kind: .shrunkLDA)
  /// The head from the centroids, trained for `epochs` epochs.
  static func trained(_ epochs: Int) -> Self { Self(kind: .softmax, epochs: epochs) }
  /// The training inputs kept, each path scored by its nearest ones (`NearestExamples`).
  static let nearestExamples = Self(kind: .nearestExamples)

  /// The name in reports and lineage.
  var name: String { kind.rawValue }
}

/// The fit stage's outcome: the chosen classifier's head, and on the LoRA tier the head
/// tuned together with adapters on the encoder.
struct RouterFit {
  var classifier: RouterClassifier
  var head: RouterHead
  /// Mean loss of each epoch of a trained head (empty for the closed-form classifiers).
  var losses: [Double]
  /// The discriminant's shrinkage.
  var shrinkage: Double?
  /// The encoder that serves the head: the frozen one, or the LoRA tier's with the
  /// adapters merged.
  var encoder: SentenceEncoder
  /// LoRA tier: the adapters (nil: none, the frozen encoder serves) and the tuning's lineage.
  var adapters: LoRAAdapters<Float>? = nil
  var tuning: [String: JSONValue] = [:]
}

extension RouterTrainingOptions {
  /// The options of the softmax head (the classifier choice's and the fit's).
  var headOptions: SoftmaxClassifier<Float>.Options {
    SoftmaxClassifier<Float>.Options(
      epochs: epochs, batchSize: batchSize, learningRate: learningRate,
      weightDecay: weightDecay, seed: seed)
  }
}

/// The fit stage of `Router.train`: the classifier chosen by cross-validation on the
/// training split and fitted on all of it; on the LoRA tier, the head and adapters on the
/// encoder trained together.
extension Router {
  /// The fit stage: the classifier the options name, or the one chosen on `run`'s training
  /// split (`chooseClassifier`), then fitted on all of it; `progress` gets each epoch of a
  /// trained head.
  ///
  /// - Throws: what `fit` and `progress` throw.
  func fitClassifier(
    _ run: RouterTrainingRun, vectors: [[Float]], encoder: SentenceEncoder,
    progress: ((RouterTrainingStage) throws -> Void)?
  ) throws -> RouterFit {
    let inputs = run.train.map { vectors[$0] }
    let labels = run.trainLabels
    let options = run.options.headOptions
    let classifier =
      try run.options.classifier.map {
        RouterClassifier(kind: $0, epochs: $0 == .softmax ? options.epochs : 0)
      }
      ?? Self.chooseClassifier(
        inputs: inputs, labels: labels, classes: paths.count, options: options
      ) { try progress?(.choosingClassifier($0)) }
    let fitted = try Self.fit(
      classifier, inputs: inputs, labels: labels, classes: paths.count, options: options
    ) { epoch, loss, _ in
      try progress?(.training(epoch: epoch, epochs: classifier.epochs, loss: loss))
    }
    return RouterFit(
      classifier: classifier, head: fitted.head, losses: fitted.losses,
      shrinkage: fitted.shrinkage, encoder: encoder)
  }

  /// The head's starting inverse temperature over cosine similarities (as in contrastive
  /// losses, 1/0.05): soft enough that the first epochs still have gradient to follow.
  static let centroidScale: Float = 20

  /// Nearest examples is a candidate up to this many training inputs: a version keeps them
  /// all (~1.5 KB each at 384 dimensions, 15 MB here) and a request reads every one (0.3 ms
  /// here, 1.2 ms at twice as many, once they no longer fit the cache: route-bench). Logs
  /// larger than this give the linear heads plenty to learn from.
  public static let nearestExamplesLimit = 10_000

  /// The classifier, chosen by cross-validation on the training split alone (the held-out
  /// split stays unseen until the gate), the default first: the shrunk discriminant, then
  /// nearest centroid, the head trained from the centroids for a tenth, a third and all of
  /// `options.epochs`, and nearest examples (up to `nearestExamplesLimit` inputs). The
  /// discriminant is the default because on two public intent sets it scored above the
  /// centroids on 20 of 21 small logs, where the folds were often too noisy to show it
  /// (docs/routing.md, "Which classifier by default").
  ///
  /// - Throws: what `progress` (folds done and in all) throws.
  static func chooseClassifier(
    inputs: [[Float]], labels: [Int], classes: Int, options: SoftmaxClassifier<Float>.Options,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> RouterClassifier {
    let epochs = Set([options.epochs / 10, options.epochs / 3, options.epochs]).filter { $0 > 0 }
    let candidates =
      [RouterClassifier.discriminant, .nearestCentroid] + epochs.sorted().map { .trained($0) }
      + (inputs.count <= nearestExamplesLimit ? [.nearestExamples] : [])
    var folds = 0
    try progress?(OperationProgress(done: 0, total: crossValidationFolds))
    return try crossValidate(labels: labels, classes: classes, candidates: candidates) {
      fit, check in
      let (fitInputs, fitLabels) = (fit.map { inputs[$0] }, fit.map { labels[$0] })
      let checkInputs = check.flatMap { inputs[$0] }
      func score(_ head: RouterHead) -> Double {
        macroF1(
          logits: head.logits(checkInputs), labels: check.map { labels[$0] }, classes: classes)
      }
      // The trained heads: one run to the most epochs, scored after each candidate's.
      var trained: [Int: Double] = [:]
      if let most = epochs.max() {
        _ = try? Self.fit(
          .trained(most), inputs: fitInputs, labels: fitLabels, classes: classes, options: options
        ) { epoch, _, head in
          if epochs.contains(epoch) { trained[epoch] = score(.linear(head)) }
        }
      }
      let scores = candidates.map { classifier in
        if classifier.kind == .softmax { return trained[classifier.epochs] ?? 0 }
        // A discriminant whose covariance is singular on a fold scores nothing there.
        guard
          let head = try? Self.fit(
            classifier, inputs: fitInputs, labels: fitLabels, classes: classes, options: options
          ).head
        else { return 0 }
        return score(head)
      }
      folds += 1
      try progress?(OperationProgress(done: folds, total: crossValidationFolds))
      return scores
    } ?? .trained(options.epochs)
  }

  /// `classifier` fitted to `inputs` as a head, with the epochs' losses (none but for a
  /// trained head) and the discriminant's shrinkage. `progress` gets each epoch, its loss and the head.
  ///
  /// - Throws: `TrainingError.badInput` when a discriminant cannot be fitted (a class without
  ///   inputs, a singular covariance); what `progress` throws.
  static func fit(
    _ classifier: RouterClassifier, inputs: [[Float]], labels: [Int], classes: Int,
    options: SoftmaxClassifier<Float>.Options,
    progress: ((Int, Double, SoftmaxClassifier<Float>) throws -> Void)? = nil
  ) throws -> (head: RouterHead, losses: [Double], shrinkage: Double?) {
    switch classifier.kind {
    case .shrunkLDA:
      let discriminant = try LinearDiscriminant(inputs: inputs, labels: labels, classes: classes)
      return (.linear(discriminant.head), [], discriminant.shrinkage)
    case .nearestExamples:
      let head = NearestExamples(
        inputs: inputs, labels: labels, classes: classes, scale: centroidScale)
      return (.nearestExamples(head), [], nil)
    case .nearestCentroid, .softmax: break
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
    return (.linear(head), losses, nil)
  }

  /// The folds of `crossValidate`.
  static let crossValidationFolds = 5

  /// Chooses among `candidates` (the default first) by 5-fold stratified cross-validation:
  /// `score` gets a fold's fitting and checking indices and returns each candidate's macro-F1
  /// on the checking part. By the one-standard-error rule, the first candidate whose mean
  /// over the folds is within one standard error of the best wins: small or noisy training
  /// splits keep the default, and training moves away from it only where the folds say it
  /// clearly pays. Nil when fewer than two folds had every class to fit on.
  static func crossValidate<Candidate>(
    labels: [Int], classes: Int, candidates: [Candidate],
    score: (_ fit: [Int], _ check: [Int]) throws -> [Double]
  ) rethrows -> Candidate? {
    let folds = crossValidationFolds
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
  /// the frozen encoder, and then no adapters). Returns `chosen` with the tuned head, the
  /// adapters, the encoder that serves them (merged) and the run's lineage. Nearest examples
  /// has no head to train with the adapters: it is kept as chosen, with 0 epochs.
  func tuneEncoder(
    _ chosen: RouterFit, texts: [String], labels: [Int], vectors: [[Float]],
    options: RouterTrainingOptions, progress: ((RouterTrainingStage) throws -> Void)?
  ) throws -> RouterFit {
    var tuned = chosen
    tuned.tuning = [
      "lora_epochs": .number(0), "lora_max_epochs": .number(Double(options.loraEpochs)),
      "lora_rank": .number(Double(options.loraRank)),
      "lora_learning_rate": .number(options.loraLearningRate),
      "matmul_precision": .string((options.matmulPrecision ?? .automatic).rawValue),
    ]
    guard case .linear(let head) = chosen.head else { return tuned }
    let (classifier, encoder) = (chosen.classifier, chosen.encoder)
    let headOptions = options.headOptions
    let classes = head.classes
    let base = try EncoderParameters(encoder)
    let sequences = texts.map { encoder.tokenize($0).map(Int32.init) }
    var tuning = EncoderClassifierTrainer.Options(seed: options.seed)
    tuning.batchSize = options.batchSize
    tuning.headLearningRate = options.learningRate
    tuning.learningRate = options.loraLearningRate
    tuning.weightDecay = options.weightDecay
    tuning.lora = LoRAConfiguration(rank: options.loraRank, alpha: 2 * Double(options.loraRank))
    tuning.matmulPrecision = options.matmulPrecision ?? .automatic
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
        guard case .linear(let startHead) = start.head else { return [] }  // as `head` is
        let run = try trainer(fit, from: startHead)
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

    tuned.tuning["lora_epochs"] = .number(Double(epochs))
    guard epochs > 0 else { return tuned }
    let run = try trainer(Array(labels.indices), from: head)
    for epoch in 1...epochs {
      let loss = run.trainEpoch()
      try progress?(.tuning(epoch: epoch, epochs: epochs, loss: loss))
    }
    tuned.tuning["lora_losses"] = .array(run.losses.map { .number($0) })
    tuned.head = .linear(run.head)
    tuned.adapters = run.adapters
    tuned.encoder = try SentenceEncoder(trained: run.mergedParameters, like: encoder)
    return tuned
  }
}
