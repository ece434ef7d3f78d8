import Tensor
import XCTest

@testable import Training

/// Shrunk linear discriminant analysis, the router's classifier for few examples per path.
final class LinearDiscriminantTests: XCTestCase {
  /// Three classes of 3, 4 and 2 points in 4 dimensions.
  static let inputs: [[Float]] = [
    [1.0, 0.2, 0.0, 0.1], [0.8, 0.0, 0.3, 0.0], [0.9, 0.4, 0.1, 0.2],
    [0.1, 1.0, 0.2, 0.0], [0.3, 0.7, 0.0, 0.4], [0.0, 0.9, 0.5, 0.1], [0.2, 1.2, 0.1, 0.3],
    [0.0, 0.1, 1.0, 0.6], [0.4, 0.3, 0.8, 0.2],
  ]
  static let labels = [0, 0, 0, 1, 1, 1, 1, 2, 2]

  /// The reference numbers were computed once with scikit-learn 1.9.1 and NumPy on the same
  /// points (as Float, widened to Double): `Z` = each point minus its class mean,
  /// `cov, λ = sklearn.covariance.ledoit_wolf(Z, assume_centered=True)`,
  /// `W = numpy.linalg.solve(cov, M.T).T`, `b = −½ rowsum(W ∘ M)` for the class means `M`.
  func testMatchesScikitLearnsLedoitWolfOnASmallCase() throws {
    let lda = try LinearDiscriminant(inputs: Self.inputs, labels: Self.labels, classes: 3)
    XCTAssertEqual(lda.shrinkage, 0.8919097038, accuracy: 1e-8)
    let weights: [[Double]] = [
      [42.956015, 8.415531, 9.993224, 5.271007],
      [7.079734, 43.007667, 11.194599, 10.250959],
      [12.910152, 10.190872, 42.951784, 19.923977],
    ]
    let biases = [-21.101525, -23.104178, -25.623201]
    for c in 0..<3 {
      for j in 0..<4 { XCTAssertEqual(lda.weights[c][j], weights[c][j], accuracy: 1e-5) }
      XCTAssertEqual(lda.biases[c], biases[c], accuracy: 1e-5)
    }
    let scores = lda.scores([0.5, 0.5, 0.2, 0.1])
    for (score, expected) in zip(scores, [7.109993, 5.203538, -3.489934]) {
      XCTAssertEqual(score, expected, accuracy: 1e-5)
    }
    // The head it serves as gives the same scores (in Float).
    let logits = lda.head.logits([0.5, 0.5, 0.2, 0.1])
    for (logit, score) in zip(logits, scores) {
      XCTAssertEqual(Double(logit), score, accuracy: 1e-4)
    }
  }

  /// With λ = 1 the covariance is μI: the scores are `(m_c·x − ½‖m_c‖²)/μ`, the nearest class
  /// mean in Euclidean distance; with class means of equal norm, the cosine nearest centroid.
  func testFullShrinkageIsTheNearestMean() throws {
    let lda = try LinearDiscriminant(
      inputs: Self.inputs, labels: Self.labels, classes: 3, shrinkage: 1)
    let mu = lda.weights[0][0] == 0 ? 1 : lda.means[0][0] / lda.weights[0][0]
    for c in 0..<3 {
      for j in 0..<4 { XCTAssertEqual(lda.weights[c][j] * mu, lda.means[c][j], accuracy: 1e-9) }
      let norm = lda.means[c].reduce(0) { $0 + $1 * $1 }
      XCTAssertEqual(lda.biases[c] * mu, -norm / 2, accuracy: 1e-9)
    }
    // μ = tr(S)/d of the within-class scatter, computed here by hand.
    var trace = 0.0
    for (x, y) in zip(Self.inputs, Self.labels) {
      for j in 0..<4 {
        trace += (Double(x[j]) - lda.means[y][j]) * (Double(x[j]) - lda.means[y][j])
      }
    }
    XCTAssertEqual(mu, trace / 9 / 4, accuracy: 1e-12)

    // Mirror-image classes (x and −x on the first axis) have means of equal norm: the
    // discriminant at λ = 1 and the cosine centroids then decide alike everywhere.
    var random = Xoshiro256(seed: 11)
    func noise() -> Float { random.nextUnitFloat() * 2 - 1 }
    var inputs: [[Float]] = []
    var labels: [Int] = []
    for _ in 0..<20 {
      let x: [Float] = [0.6 + 0.3 * noise(), 0.5 * noise(), 0.5 * noise()]
      inputs += [x, [-x[0], x[1], x[2]]]
      labels += [0, 1]
    }
    let mirrored = try LinearDiscriminant(inputs: inputs, labels: labels, classes: 2, shrinkage: 1)
    let centroids = NearestCentroid(inputs: inputs, labels: labels, classes: 2)
    let probes = (0..<200).map { _ in [noise(), noise(), noise()] }
    let decided = probes.map(mirrored.scores).map { s in s.indices.max { s[$0] < s[$1] }! }
    XCTAssertEqual(decided, centroids.predict(probes))
  }

  /// The estimate follows the data: many examples in few dimensions need little shrinkage,
  /// few examples in many dimensions need much.
  func testShrinkageFallsAsExamplesOutnumberDimensions() throws {
    var random = Xoshiro256(seed: 3)
    // Anisotropic noise: the axes' spreads run from 0.1 to 1.
    func sample(_ dimension: Int) -> [Double] {
      (0..<dimension).map { j in
        Double(random.nextUnitFloat() * 2 - 1) * (0.1 + 0.9 * Double(j) / Double(dimension - 1))
      }
    }
    let many = (0..<2000).flatMap { _ in sample(4) }
    let few = (0..<10).flatMap { _ in sample(50) }
    let plenty = LinearDiscriminant.ledoitWolf(centered: many, rows: 2000, dimension: 4)
    let scarce = LinearDiscriminant.ledoitWolf(centered: few, rows: 10, dimension: 50)
    XCTAssertLessThan(plenty.shrinkage, 0.05)
    XCTAssertGreaterThan(scarce.shrinkage, 0.5)
    XCTAssertLessThanOrEqual(scarce.shrinkage, 1)
  }

  func testUnusableInputsAreRefused() {
    func refused(_ inputs: [[Float]], _ labels: [Int], classes: Int, _ message: String) {
      XCTAssertThrowsError(
        try LinearDiscriminant(inputs: inputs, labels: labels, classes: classes)
      ) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
    }
    refused([[1, 0], [0, 1]], [0, 0], classes: 2, "class 1 has no inputs")
    refused([[1, 0], [0, 1]], [0, 2], classes: 2, "label 2 is not one of the 2 classes")
    refused([[1, 0], [0]], [0, 1], classes: 2, "differ in length")
    refused([[1, 0], [0, 1]], [0, 1], classes: 2, "singular")
  }
}
