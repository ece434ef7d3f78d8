import Foundation
import Tensor

/// A linear softmax classifier over fixed input vectors: `p = softmax(W·x + b)`, trained with
/// class-weighted cross-entropy and AdamW. Routers put it on frozen sentence embeddings.
///
/// The parameters are one flat array, the `classes×dimension` weight matrix (row-major) then
/// the `classes` biases, so that one AdamW steps them all.
///
/// ```swift
/// var head = SoftmaxClassifier<Float>(classes: 3, dimension: 384)
/// let losses = head.fit(inputs: vectors, labels: labels, options: .init(seed: 7))
/// let p = head.probabilities(for: query)      // sums to 1
/// ```
public struct SoftmaxClassifier<Scalar: TensorScalar>: Sendable {
  public let classes: Int
  public let dimension: Int
  /// The weights (`classes×dimension`, row-major), then the biases.
  public var parameters: [Scalar]

  /// A classifier with every parameter zero (uniform probabilities).
  public init(classes: Int, dimension: Int) {
    precondition(classes >= 2 && dimension >= 1, "a classifier needs 2 classes and 1 input")
    self.classes = classes
    self.dimension = dimension
    parameters = [Scalar](repeating: 0, count: classes * dimension + classes)
  }

  /// The nearest-centroid classifier written as a head: row `c` of the weights is
  /// `scale · ĉ_c` (class `c`'s unit centroid) and the biases are 0, so for unit inputs
  /// `argmax W·x` is the class whose centroid is nearest in cosine. Training from here starts
  /// at that baseline instead of at uniform probabilities; `scale` is an inverse temperature.
  public init(centroids: NearestCentroid, scale: Scalar) {
    self.init(classes: centroids.centroids.count, dimension: centroids.centroids[0].count)
    for (c, centroid) in centroids.centroids.enumerated() {
      for (j, value) in centroid.enumerated() {
        parameters[c * dimension + j] = scale * Scalar(value)
      }
    }
  }

  /// A classifier with the given parameters.
  ///
  /// - Throws: `TrainingError.badInput` when `parameters` has the wrong count.
  public init(classes: Int, dimension: Int, parameters: [Scalar]) throws {
    guard classes >= 2, dimension >= 1, parameters.count == classes * dimension + classes else {
      throw TrainingError.badInput(
        "a \(classes)-class head over \(dimension) inputs needs \(classes * dimension + classes) parameters, got \(parameters.count)"
      )
    }
    self.classes = classes
    self.dimension = dimension
    self.parameters = parameters
  }

  /// The `n×classes` logits of `n` inputs laid end to end.
  @_specialize(exported:true,where Scalar == Float)
  public func logits(_ inputs: [Scalar]) -> [Scalar] {
    precondition(inputs.count % dimension == 0, "inputs must be whole vectors")
    let n = inputs.count / dimension
    var out = [Scalar](repeating: 0, count: n * classes)
    guard n > 0 else { return out }
    let biasStart = classes * dimension
    for i in 0..<n {
      for c in 0..<classes { out[i * classes + c] = parameters[biasStart + c] }
    }
    inputs.withUnsafeBufferPointer { x in
      parameters.withUnsafeBufferPointer { w in
        out.withUnsafeMutableBufferPointer { z in
          Scalar.gemm(
            transposeA: false, transposeB: true, m: n, n: classes, k: dimension, alpha: 1,
            a: x.baseAddress!, lda: dimension, b: w.baseAddress!, ldb: dimension, beta: 1,
            c: z.baseAddress!, ldc: classes)
        }
      }
    }
    return out
  }

  /// Row-wise softmax of `n×classes` logits divided by `temperature`.
  @_specialize(exported:true,where Scalar == Float)
  @_specialize(exported:true,where Scalar == Double)
  public static func softmax(_ logits: [Scalar], classes: Int, temperature: Scalar = 1) -> [Scalar]
  {
    var out = logits
    for start in stride(from: 0, to: logits.count, by: classes) {
      let row = start..<(start + classes)
      let top = logits[row].max()! / temperature
      var sum: Scalar = 0
      for i in row {
        out[i] = Scalar.exp(logits[i] / temperature - top)
        sum += out[i]
      }
      for i in row { out[i] /= sum }
    }
    return out
  }

  /// The class probabilities of one input.
  @_specialize(exported:true,where Scalar == Float)
  public func probabilities(for input: [Scalar], temperature: Scalar = 1) -> [Scalar] {
    Self.softmax(logits(input), classes: classes, temperature: temperature)
  }

  /// The class-weighted mean cross-entropy of `inputs` (laid end to end) against `labels`, and
  /// its gradient with respect to ``parameters``:
  ///
  ///     L = Σᵢ w_yᵢ · −log p(yᵢ | xᵢ) / Σᵢ w_yᵢ,    ∂L/∂zᵢ = w_yᵢ (pᵢ − e_yᵢ) / Σᵢ w_yᵢ
  ///
  /// `classWeights` nil means 1 for every class.
  public func loss(inputs: [Scalar], labels: [Int], classWeights: [Scalar]? = nil) -> (
    loss: Scalar, gradient: [Scalar]
  ) {
    let result = backward(inputs: inputs, labels: labels, classWeights: classWeights)
    return (result.loss, result.gradient)
  }

  /// As ``loss(inputs:labels:classWeights:)``, with the gradient with respect to the inputs
  /// too, `∂L/∂X = Δ W` (`n×dimension`): what the encoder under the head backpropagates when
  /// it is trained with it.
  public func backward(inputs: [Scalar], labels: [Int], classWeights: [Scalar]? = nil) -> (
    loss: Scalar, gradient: [Scalar], inputGradient: [Scalar]
  ) {
    let n = labels.count
    precondition(inputs.count == n * dimension, "one label per input")
    let probabilities = Self.softmax(logits(inputs), classes: classes)
    var total: Scalar = 0
    var weightSum: Scalar = 0
    // Reused as ∂L/∂z.
    var delta = probabilities
    for i in 0..<n {
      let y = labels[i]
      let w = classWeights?[y] ?? 1
      total -= w * Scalar.log(max(probabilities[i * classes + y], Scalar.leastNormalMagnitude))
      weightSum += w
      delta[i * classes + y] -= 1
      for c in 0..<classes { delta[i * classes + c] *= w }
    }
    guard weightSum > 0 else {
      return (
        0, [Scalar](repeating: 0, count: parameters.count),
        [Scalar](repeating: 0, count: inputs.count)
      )
    }
    for i in delta.indices { delta[i] /= weightSum }
    var gradient = [Scalar](repeating: 0, count: parameters.count)
    // ∂L/∂W = Δᵀ X (classes×dimension); ∂L/∂b = column sums of Δ; ∂L/∂X = Δ W.
    multiply(delta, transposed: true, by: inputs, rows: n, into: &gradient)
    let biasStart = classes * dimension
    for i in 0..<n {
      for c in 0..<classes { gradient[biasStart + c] += delta[i * classes + c] }
    }
    var inputGradient = [Scalar](repeating: 0, count: inputs.count)
    multiply(delta, transposed: false, by: parameters, rows: n, into: &inputGradient)
    return (total / weightSum, gradient, inputGradient)
  }

  /// `Δᵀ·M` (`transposed`: classes×dimension, `M` n×dimension) or `Δ·M` (n×dimension, `M`
  /// classes×dimension) for the `n×classes` matrix `Δ`, written at the start of `result`.
  private func multiply(
    _ delta: [Scalar], transposed: Bool, by matrix: [Scalar], rows n: Int,
    into result: inout [Scalar]
  ) {
    delta.withUnsafeBufferPointer { d in
      matrix.withUnsafeBufferPointer { m in
        result.withUnsafeMutableBufferPointer { c in
          Scalar.gemm(
            transposeA: transposed, transposeB: false, m: transposed ? classes : n, n: dimension,
            k: transposed ? n : classes, alpha: 1, a: d.baseAddress!, lda: classes,
            b: m.baseAddress!, ldb: dimension, beta: 0, c: c.baseAddress!, ldc: dimension)
        }
      }
    }
  }

  /// How ``fit(inputs:labels:classWeights:options:progress:)`` trains.
  public struct Options: Sendable, Codable, Equatable {
    public var epochs = 100
    public var batchSize = 32
    public var learningRate = 0.01
    public var weightDecay = 0.01
    /// Orders the examples of each epoch.
    public var seed: UInt64 = 42

    public init(
      epochs: Int = 100, batchSize: Int = 32, learningRate: Double = 0.01,
      weightDecay: Double = 0.01, seed: UInt64 = 42
    ) {
      self.epochs = epochs
      self.batchSize = batchSize
      self.learningRate = learningRate
      self.weightDecay = weightDecay
      self.seed = seed
    }
  }

  /// Trains with AdamW on shuffled mini-batches (the same seed gives the same parameters) and
  /// returns the mean loss of each epoch (none for 0 epochs). `progress` gets each epoch's
  /// number, its loss and the classifier as it stands after it; if it throws, training stops
  /// with that error. The rate is constant, so the first `e` epochs of a longer run are a run
  /// of `e` epochs: one run can be scored after several.
  ///
  /// Specialised for Float here, where the module's generic code can be: routers call it
  /// from another module, where the generic version ran ~40× slower (every arithmetic
  /// operation through a witness table).
  @discardableResult
  @_specialize(exported:true,where Scalar == Float)
  public mutating func fit(
    inputs: [Scalar], labels: [Int], classWeights: [Scalar]? = nil, options: Options,
    progress: ((_ epoch: Int, _ loss: Double, _ head: Self) throws -> Void)? = nil
  ) throws -> [Double] {
    let n = labels.count
    precondition(inputs.count == n * dimension && n > 0, "one label per input")
    var optimizer = AdamW<Scalar>(
      count: parameters.count, decays: true, weightDecay: options.weightDecay)
    var random = Xoshiro256(seed: options.seed)
    var order = Array(0..<n)
    var history: [Double] = []
    let batchSize = max(1, options.batchSize)
    for epoch in stride(from: 1, through: options.epochs, by: 1) {
      order.shuffle(using: &random)
      var epochLoss = 0.0
      for start in stride(from: 0, to: n, by: batchSize) {
        let batch = order[start..<min(start + batchSize, n)]
        var x: [Scalar] = []
        x.reserveCapacity(batch.count * dimension)
        for i in batch { x.append(contentsOf: inputs[(i * dimension)..<((i + 1) * dimension)]) }
        let (loss, gradient) = self.loss(
          inputs: x, labels: batch.map { labels[$0] }, classWeights: classWeights)
        optimizer.step(
          parameters: &parameters, gradients: gradient, learningRate: options.learningRate)
        epochLoss += Double(loss) * Double(batch.count)
      }
      history.append(epochLoss / Double(n))
      try progress?(epoch, history.last!, self)
    }
    return history
  }

  /// Weights that make every class count as much in the loss: `n / (classes · n_c)`
  /// (scikit-learn's "balanced"); a class without examples gets 0.
  public static func balancedWeights(labels: [Int], classes: Int) -> [Scalar] {
    var counts = [Int](repeating: 0, count: classes)
    for y in labels { counts[y] += 1 }
    return counts.map {
      $0 == 0 ? 0 : Scalar(Double(labels.count) / Double(classes * $0))
    }
  }
}

/// The baseline semantic-router uses: each class is the mean of its examples' (unit) vectors,
/// and an input goes to the class whose mean is most cosine-similar.
public struct NearestCentroid: Sendable {
  /// One unit vector per class (zeros for a class without examples).
  public let centroids: [[Float]]

  public init(inputs: [[Float]], labels: [Int], classes: Int) {
    let dimension = inputs.first?.count ?? 0
    var sums = [[Float]](repeating: [Float](repeating: 0, count: dimension), count: classes)
    for (x, y) in zip(inputs, labels) {
      for j in 0..<dimension { sums[y][j] += x[j] }
    }
    centroids = sums.map { sum in
      let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return norm > 0 ? sum.map { $0 / norm } : sum
    }
  }

  /// The class of each input.
  public func predict(_ inputs: [[Float]]) -> [Int] {
    inputs.map { x in
      let scores = centroids.map { c in zip(c, x).reduce(0) { $0 + $1.0 * $1.1 } }
      return scores.indices.max { scores[$0] < scores[$1] }!
    }
  }
}
