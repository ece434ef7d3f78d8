import Foundation
import Tensor

/// Linear discriminant analysis with a shrunk shared covariance: the classifier of a Gaussian
/// model in which every class has its own mean and all share one covariance, with the
/// covariance estimated so that it stays well conditioned on few examples.
///
///     S  = (1/n) Σᵢ (xᵢ − m_yᵢ)(xᵢ − m_yᵢ)ᵀ        pooled within-class covariance
///     Σ̂  = (1 − λ) S + λ μ I,   μ = tr(S) / d        shrunk toward a multiple of I
///     w_c = Σ̂⁻¹ m_c,   b_c = −½ m_cᵀ Σ̂⁻¹ m_c        scores z_c = w_c·x + b_c
///
/// `m_c` is the mean of class `c`'s inputs and the classes have equal priors (a rare class
/// counts as much as a common one, as with balanced class weights). The shrinkage `λ` is
/// Ledoit and Wolf's (2004) estimate of the one minimising the expected squared error of Σ̂,
/// computed from the inputs alone: nothing is tuned. With `λ = 1` the scores are
/// `(m_c·x − ½‖m_c‖²)/μ`, the nearest class mean in Euclidean distance; when the class means
/// have equal norms that is the nearest centroid in cosine (``NearestCentroid``).
///
/// ```swift
/// let lda = try LinearDiscriminant(inputs: vectors, labels: labels, classes: 3)
/// let head = lda.head          // the same scores as a SoftmaxClassifier, to serve
/// ```
public struct LinearDiscriminant: Sendable {
  public let classes: Int
  public let dimension: Int
  /// The class means `m_c`.
  public let means: [[Double]]
  /// `λ`, in [0, 1].
  public let shrinkage: Double
  /// `w_c = Σ̂⁻¹ m_c`, one row per class.
  public let weights: [[Double]]
  /// `b_c = −½ m_cᵀ Σ̂⁻¹ m_c`.
  public let biases: [Double]

  /// Fits the means and the shrunk covariance to `inputs` (one vector each).
  ///
  /// - Parameter shrinkage: `λ`; nil computes the Ledoit–Wolf estimate.
  /// - Throws: `TrainingError.badInput` when a class has no inputs, the vectors differ in
  ///   length, a label is out of range, or the shrunk covariance is singular (every input
  ///   equal to its class mean and `λ` of 0).
  public init(inputs: [[Float]], labels: [Int], classes: Int, shrinkage: Double? = nil) throws {
    guard classes >= 2, let dimension = inputs.first?.count, dimension > 0,
      inputs.count == labels.count
    else {
      throw TrainingError.badInput(
        "a discriminant needs 2 classes and one label per input vector")
    }
    guard inputs.allSatisfy({ $0.count == dimension }) else {
      throw TrainingError.badInput("the input vectors differ in length")
    }
    var counts = [Int](repeating: 0, count: classes)
    for y in labels {
      guard (0..<classes).contains(y) else {
        throw TrainingError.badInput("label \(y) is not one of the \(classes) classes")
      }
      counts[y] += 1
    }
    if let empty = counts.firstIndex(of: 0) {
      throw TrainingError.badInput("class \(empty) has no inputs")
    }
    let n = inputs.count
    var means = [[Double]](repeating: [Double](repeating: 0, count: dimension), count: classes)
    for (x, y) in zip(inputs, labels) {
      for j in 0..<dimension { means[y][j] += Double(x[j]) }
    }
    for c in 0..<classes { means[c] = means[c].map { $0 / Double(counts[c]) } }
    // Each input minus its class mean, rows laid end to end.
    var centered = [Double](repeating: 0, count: n * dimension)
    for (i, (x, y)) in zip(inputs, labels).enumerated() {
      for j in 0..<dimension { centered[i * dimension + j] = Double(x[j]) - means[y][j] }
    }
    let estimate = Self.ledoitWolf(centered: centered, rows: n, dimension: dimension)
    let lambda = min(1, max(0, shrinkage ?? estimate.shrinkage))
    var covariance = estimate.covariance.map { $0 * (1 - lambda) }
    for i in 0..<dimension { covariance[i * dimension + i] += lambda * estimate.mu }
    guard let weights = Self.solve(covariance, dimension: dimension, rightHandSides: means) else {
      throw TrainingError.badInput(
        "the shrunk covariance is singular: every input equals its class mean")
    }
    self.classes = classes
    self.dimension = dimension
    self.means = means
    self.shrinkage = lambda
    self.weights = weights
    biases = zip(weights, means).map { w, m in -0.5 * zip(w, m).reduce(0) { $0 + $1.0 * $1.1 } }
  }

  /// The scores `z_c = w_c·x + b_c` of one input; the class is their argmax.
  public func scores(_ input: [Float]) -> [Double] {
    zip(weights, biases).map { w, b in
      zip(w, input).reduce(b) { $0 + $1.0 * Double($1.1) }
    }
  }

  /// The same scores as a softmax head (weights and biases in `Float`), which a router
  /// stores and serves like a trained one. The softmax of the scores is the Gaussian model's
  /// posterior; it is overconfident when the covariance is underestimated, which temperature
  /// scaling corrects.
  public var head: SoftmaxClassifier<Float> {
    var head = SoftmaxClassifier<Float>(classes: classes, dimension: dimension)
    for c in 0..<classes {
      for j in 0..<dimension { head.parameters[c * dimension + j] = Float(weights[c][j]) }
      head.parameters[classes * dimension + c] = Float(biases[c])
    }
    return head
  }

  /// The Ledoit–Wolf estimate for `rows` centred vectors laid end to end: the sample
  /// covariance `S = XᵀX/n` (`dimension²`, row-major), `μ = tr(S)/d` and the shrinkage
  ///
  ///     λ = min(β̄, δ) / δ,   δ = ‖S − μI‖²_F / d,   β̄ = (Σᵢ ‖xᵢ‖⁴ / n − ‖S‖²_F) / (d·n)
  ///
  /// (`β̄` estimates how far `S` is from the true covariance, `δ` how far the target is from
  /// `S`; the same formulas as scikit-learn's `ledoit_wolf_shrinkage`). `δ = 0` (S already a
  /// multiple of I) gives 0.
  public static func ledoitWolf(centered x: [Double], rows n: Int, dimension d: Int) -> (
    covariance: [Double], mu: Double, shrinkage: Double
  ) {
    precondition(x.count == n * d && n > 0)
    var covariance = [Double](repeating: 0, count: d * d)
    x.withUnsafeBufferPointer { a in
      covariance.withUnsafeMutableBufferPointer { c in
        Double.gemm(
          transposeA: true, transposeB: false, m: d, n: d, k: n, alpha: 1 / Double(n),
          a: a.baseAddress!, lda: d, b: a.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!,
          ldc: d)
      }
    }
    let mu = (0..<d).reduce(0) { $0 + covariance[$1 * d + $1] } / Double(d)
    let frobenius = covariance.reduce(0) { $0 + $1 * $1 }
    let fourth = (0..<n).reduce(0.0) { sum, i in
      let square = x[(i * d)..<((i + 1) * d)].reduce(0) { $0 + $1 * $1 }
      return sum + square * square
    }
    let delta = (frobenius - Double(d) * mu * mu) / Double(d)
    let beta = min((fourth / Double(n) - frobenius) / Double(d * n), delta)
    return (covariance, mu, delta > 0 && beta > 0 ? beta / delta : 0)
  }

  /// `A⁻¹ bₖ` for each right-hand side, `A` symmetric positive definite (`d×d`, row-major),
  /// by Cholesky factorisation `A = LLᵀ`; nil when `A` is not positive definite.
  static func solve(_ a: [Double], dimension d: Int, rightHandSides: [[Double]]) -> [[Double]]? {
    var l = [Double](repeating: 0, count: d * d)
    for j in 0..<d {
      var diagonal = a[j * d + j]
      for k in 0..<j { diagonal -= l[j * d + k] * l[j * d + k] }
      guard diagonal > 0 else { return nil }
      let pivot = diagonal.squareRoot()
      l[j * d + j] = pivot
      for i in (j + 1)..<max(j + 1, d) {
        var value = a[i * d + j]
        for k in 0..<j { value -= l[i * d + k] * l[j * d + k] }
        l[i * d + j] = value / pivot
      }
    }
    return rightHandSides.map { b in
      // L y = b, then Lᵀ x = y.
      var y = b
      for i in 0..<d {
        for k in 0..<i { y[i] -= l[i * d + k] * y[k] }
        y[i] /= l[i * d + i]
      }
      for i in stride(from: d - 1, through: 0, by: -1) {
        for k in (i + 1)..<max(i + 1, d) { y[i] -= l[k * d + i] * y[k] }
        y[i] /= l[i * d + i]
      }
      return y
    }
  }
}
