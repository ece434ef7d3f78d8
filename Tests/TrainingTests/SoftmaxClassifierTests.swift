import Tensor
import XCTest

@testable import Training

/// The router's head, its calibration and its metrics.
final class SoftmaxClassifierTests: XCTestCase {
  /// Gaussian-ish points around one centre per class (deterministic).
  static func clusters(classes: Int, perClass: Int, dimension: Int, spread: Double, seed: UInt64)
    -> (inputs: [Double], labels: [Int])
  {
    var random = Xoshiro256(seed: seed)
    func noise() -> Double { Double(random.nextUnitFloat()) * 2 - 1 }
    let centres = (0..<classes).map { _ in (0..<dimension).map { _ in noise() } }
    var inputs: [Double] = []
    var labels: [Int] = []
    for i in 0..<(classes * perClass) {
      let y = i % classes
      inputs += centres[y].map { $0 + spread * noise() }
      labels.append(y)
    }
    return (inputs, labels)
  }

  func testGradientsMatchFiniteDifferences() throws {
    let (inputs, labels) = Self.clusters(
      classes: 3, perClass: 3, dimension: 5, spread: 0.8, seed: 3)
    var random = Xoshiro256(seed: 5)
    let parameters = (0..<(3 * 5 + 3)).map { _ in Double(random.nextUnitFloat()) - 0.5 }
    let head = try SoftmaxClassifier<Double>(classes: 3, dimension: 5, parameters: parameters)
    let weights: [Double] = [0.5, 2, 1.25]
    let (_, gradient) = head.loss(inputs: inputs, labels: labels, classWeights: weights)
    let h = 1e-6
    for i in parameters.indices {
      var plus = head
      var minus = head
      plus.parameters[i] += h
      minus.parameters[i] -= h
      let numeric =
        (plus.loss(inputs: inputs, labels: labels, classWeights: weights).loss
          - minus.loss(inputs: inputs, labels: labels, classWeights: weights).loss) / (2 * h)
      XCTAssertEqual(gradient[i], numeric, accuracy: 1e-7, "parameter \(i)")
    }
  }

  func testFitLearnsSeparableClassesAndIsDeterministic() throws {
    let (inputs, labels) = Self.clusters(
      classes: 4, perClass: 20, dimension: 8, spread: 0.3, seed: 9)
    let floats = inputs.map(Float.init)
    var first = SoftmaxClassifier<Float>(classes: 4, dimension: 8)
    let losses = try first.fit(
      inputs: floats, labels: labels, options: .init(epochs: 60, batchSize: 16, seed: 1))
    XCTAssertLessThan(losses.last!, losses.first! / 4, "the loss falls")
    let logits = first.logits(floats)
    let predictions = (0..<labels.count).map { i in
      (0..<4).max { logits[i * 4 + $0] < logits[i * 4 + $1] }!
    }
    XCTAssertEqual(
      ClassificationMetrics(labels: labels, predictions: predictions, classes: 4).accuracy, 1)
    var second = SoftmaxClassifier<Float>(classes: 4, dimension: 8)
    try second.fit(
      inputs: floats, labels: labels, options: .init(epochs: 60, batchSize: 16, seed: 1))
    XCTAssertEqual(first.parameters, second.parameters, "the same seed, the same head")
    var third = SoftmaxClassifier<Float>(classes: 4, dimension: 8)
    try third.fit(
      inputs: floats, labels: labels, options: .init(epochs: 60, batchSize: 16, seed: 2))
    XCTAssertNotEqual(first.parameters, third.parameters, "the seed orders the batches")
  }

  /// The cross-validation scores one run after several epoch counts: the head `progress`
  /// shows after epoch e is the head a run of e epochs ends with.
  func testProgressAfterAnEpochIsTheShorterRun() throws {
    let (inputs, labels) = Self.clusters(
      classes: 3, perClass: 10, dimension: 6, spread: 0.8, seed: 4)
    let floats = inputs.map(Float.init)
    var long = SoftmaxClassifier<Float>(classes: 3, dimension: 6)
    var afterFive: [Float] = []
    try long.fit(inputs: floats, labels: labels, options: .init(epochs: 12, batchSize: 8)) {
      epoch, _, head in
      if epoch == 5 { afterFive = head.parameters }
    }
    var short = SoftmaxClassifier<Float>(classes: 3, dimension: 6)
    try short.fit(inputs: floats, labels: labels, options: .init(epochs: 5, batchSize: 8))
    XCTAssertEqual(afterFive, short.parameters)
    XCTAssertNotEqual(long.parameters, short.parameters)
  }

  func testBalancedWeights() {
    XCTAssertEqual(
      SoftmaxClassifier<Double>.balancedWeights(labels: [0, 0, 0, 1], classes: 3),
      [4.0 / 9, 4.0 / 3, 0])
  }

  /// Labels drawn from softmax(z); the model reports softmax(4z): overconfident. Temperature
  /// scaling should find T ≈ 4 and lower the calibration error.
  func testTemperatureScalingLowersCalibrationError() {
    var random = Xoshiro256(seed: 21)
    let classes = 3
    var logits: [Double] = []
    var labels: [Int] = []
    for _ in 0..<3000 {
      let z = (0..<classes).map { _ in Double(random.nextUnitFloat()) * 3 }
      let p = SoftmaxClassifier<Double>.softmax(z, classes: classes)
      let u = Double(random.nextUnitFloat())
      var y = 0
      var cumulative = p[0]
      while u > cumulative && y < classes - 1 {
        y += 1
        cumulative += p[y]
      }
      labels.append(y)
      logits += z.map { $0 * 4 }
    }
    func ece(_ temperature: Double) -> Double {
      let rows = stride(from: 0, to: logits.count, by: classes).map {
        SoftmaxClassifier<Double>.softmax(
          Array(logits[$0..<($0 + classes)]), classes: classes, temperature: temperature)
      }
      return expectedCalibrationError(
        confidences: rows.map { $0.max()! },
        correct: zip(rows, labels).map { row, y in row.firstIndex(of: row.max()!) == y })
    }
    let temperature = TemperatureScaling.fit(logits: logits, labels: labels, classes: classes)
    XCTAssertEqual(temperature, 4, accuracy: 0.6)
    XCTAssertGreaterThan(ece(1), 0.1, "the raw probabilities are overconfident")
    XCTAssertLessThan(ece(temperature), ece(1) / 3)
  }

  func testCalibrationErrorOfAPerfectAndAWrongPredictor() {
    XCTAssertEqual(
      expectedCalibrationError(
        confidences: [1, 1, 0.55, 0.55], correct: [true, true, true, false]),
      0.025, accuracy: 1e-12)
    XCTAssertEqual(
      expectedCalibrationError(confidences: [0.9, 0.9], correct: [false, false]), 0.9,
      accuracy: 1e-12)
    // What a diverged head gives binned without a trap (NaN stays in the sum).
    XCTAssertTrue(
      expectedCalibrationError(
        confidences: [.nan, 1e300, -.infinity], correct: [true, true, false]
      )
      .isNaN)
  }

  func testMetricsAndConfusion() {
    // true:      0 0 0 1 1 2
    // predicted: 0 0 1 1 2 2
    let m = ClassificationMetrics(
      labels: [0, 0, 0, 1, 1, 2], predictions: [0, 0, 1, 1, 2, 2], classes: 3)
    XCTAssertEqual(m.confusion, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    XCTAssertEqual(m.accuracy, 4.0 / 6, accuracy: 1e-12)
    XCTAssertEqual(m.precision, [1, 0.5, 0.5])
    XCTAssertEqual(m.recall[0], 2.0 / 3, accuracy: 1e-12)
    let f1 = [0.8, 0.5, 2 * 0.5 / 1.5]
    XCTAssertEqual(m.macroF1, f1.reduce(0, +) / 3, accuracy: 1e-12)
  }

  func testBootstrapSeesOnlyRealGains() {
    let labels = (0..<60).map { $0 % 3 }
    let perfect = labels
    let constant = [Int](repeating: 0, count: 60)
    let same = ClassificationMetrics.bootstrapMacroF1(
      labels: labels, current: perfect, candidate: perfect, classes: 3)
    XCTAssertFalse(same.improves)
    XCTAssertEqual(same.meanDelta, 0)
    let better = ClassificationMetrics.bootstrapMacroF1(
      labels: labels, current: constant, candidate: perfect, classes: 3)
    XCTAssertTrue(better.improves)
    // One more right answer out of 60 is within noise.
    var oneBetter = constant
    oneBetter[1] = 1
    XCTAssertFalse(
      ClassificationMetrics.bootstrapMacroF1(
        labels: labels, current: constant, candidate: oneBetter, classes: 3
      ).improves)
  }

  func testNearestCentroid() {
    let model = NearestCentroid(
      inputs: [[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], labels: [0, 0, 1, 1], classes: 2)
    XCTAssertEqual(model.predict([[0.8, 0.3], [0.2, 0.7]]), [0, 1])
  }

  /// A head started from the centroids decides as nearest centroid does, before any training.
  func testHeadFromCentroidsDecidesAsNearestCentroid() {
    let (inputs, labels) = Self.clusters(
      classes: 4, perClass: 10, dimension: 6, spread: 1.5, seed: 21)
    let vectors = stride(from: 0, to: inputs.count, by: 6).map { start in
      let v = inputs[start..<(start + 6)].map(Float.init)
      let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return v.map { $0 / norm }
    }
    let centroids = NearestCentroid(inputs: vectors, labels: labels, classes: 4)
    let head = SoftmaxClassifier<Float>(centroids: centroids, scale: 20)
    let logits = head.logits(vectors.flatMap { $0 })
    let predictions = vectors.indices.map { i in
      (0..<4).max { logits[i * 4 + $0] < logits[i * 4 + $1] }!
    }
    XCTAssertEqual(predictions, centroids.predict(vectors))
    XCTAssertNotEqual(predictions, labels, "the clusters overlap, so the check is not trivial")
  }
}
