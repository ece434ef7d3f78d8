import Training

/// What a router version classifies with, over the encoder's sentence embeddings: a linear
/// head (nearest centroid, shrunk LDA and the trained head are all `softmax(W·x + b)`) or
/// the nearest examples it keeps.
enum RouterHead {
  case linear(SoftmaxClassifier<Float>)
  case nearestExamples(NearestExamples)

  var classes: Int {
    switch self {
    case .linear(let head): head.classes
    case .nearestExamples(let head): head.classes
    }
  }

  /// The length of the embeddings it reads.
  var dimension: Int {
    switch self {
    case .linear(let head): head.dimension
    case .nearestExamples(let head): head.dimension
    }
  }

  /// The `n×classes` logits of `n` embeddings laid end to end.
  func logits(_ inputs: [Float]) -> [Float] {
    switch self {
    case .linear(let head): head.logits(inputs)
    case .nearestExamples(let head): head.logits(inputs)
    }
  }

  /// The stored form (the `routerweights` value): the linear head's weights then biases, or
  /// `NearestExamples.parameters`. Which one a version holds is its lineage's `classifier`.
  var parameters: [Float] {
    switch self {
    case .linear(let head): head.parameters
    case .nearestExamples(let head): head.parameters
    }
  }

  /// The head stored as `parameters` by a version whose lineage names `classifier`
  /// (`nearest_examples`, or any other name for a linear head: versions before nearest
  /// examples existed are all linear).
  ///
  /// - Throws: `TrainingError.badInput` when `parameters` is not that head's layout.
  init(classifier: String?, classes: Int, parameters: [Float]) throws {
    if classifier == RouterClassifierKind.nearestExamples.rawValue {
      self = .nearestExamples(try NearestExamples(classes: classes, parameters: parameters))
    } else {
      self = .linear(
        try SoftmaxClassifier<Float>(
          classes: classes, dimension: (parameters.count - classes) / max(1, classes),
          parameters: parameters))
    }
  }
}

extension RouterVersion {
  /// The classifier its lineage names (`RouterClassifierKind`'s raw values; nil if none):
  /// which layout its stored head has.
  var classifier: String? {
    if case .string(let name)? = lineage["classifier"] { return name }
    return nil
  }
}
