import Foundation
import Tensor

/// A classifier that keeps its training examples and scores each class by the inputs' nearest
/// ones: for an input `x` and class `c` with unit example vectors `e`,
///
///     z_c(x) = s · mean of the k largest cos(x, e) over the examples e of class c
///
/// (all of them when `c` has fewer than `k`), with `s` an inverse temperature as the
/// centroid head's. `k = 1` is the nearest neighbour; `k` as large as every class is nearest
/// centroid with the mean of cosines instead of the cosine of the mean. Unlike the linear
/// heads it follows classes made of several clusters, and a request that repeats or
/// paraphrases a logged one takes that one's path. It costs what it keeps: one
/// `examples × dimension` product per request.
///
/// ```swift
/// let head = NearestExamples(inputs: vectors, labels: labels, classes: 3)
/// let z = head.logits(query)          // 3 logits; argmax is the class
/// ```
public struct NearestExamples: Sendable {
  public let classes: Int
  public let dimension: Int
  /// How many of a class's nearest examples its score averages.
  public let neighbours: Int
  /// The inverse temperature `s` of the logits.
  public let scale: Float
  /// The examples' unit vectors, `count × dimension`, row-major.
  public let examples: [Float]
  /// Each example's class.
  public let labels: [Int]

  /// The examples `inputs` (normalised to unit length; a zero vector stays zero) with their
  /// `labels` in `0..<classes`.
  public init(
    inputs: [[Float]], labels: [Int], classes: Int, neighbours: Int = 3, scale: Float = 20
  ) {
    precondition(classes >= 2 && neighbours >= 1 && !inputs.isEmpty, "needs classes and examples")
    precondition(inputs.count == labels.count && labels.allSatisfy { (0..<classes).contains($0) })
    self.classes = classes
    dimension = inputs[0].count
    self.neighbours = neighbours
    self.scale = scale
    self.labels = labels
    examples = inputs.flatMap { x in
      var unit = x
      Distance.normalize(&unit)
      return unit
    }
  }

  /// The `n×classes` logits of `n` inputs laid end to end (their lengths do not matter). A
  /// class without examples scores `-s`, below any cosine.
  public func logits(_ inputs: [Float]) -> [Float] {
    precondition(inputs.count % dimension == 0, "inputs must be whole vectors")
    let n = inputs.count / dimension
    let count = labels.count
    var out = [Float](repeating: 0, count: n * classes)
    // Rows of inputs at a time, so the cosine matrix stays a few MB for any example count.
    let chunk = max(1, (1 << 20) / max(1, count))
    var cosines = [Float](repeating: 0, count: min(n, chunk) * count)
    var top = [Float](repeating: 0, count: classes * neighbours)
    var filled = [Int](repeating: 0, count: classes)
    for first in stride(from: 0, to: n, by: chunk) {
      let rows = min(chunk, n - first)
      inputs.withUnsafeBufferPointer { x in
        examples.withUnsafeBufferPointer { e in
          cosines.withUnsafeMutableBufferPointer { c in
            let (x, e, c) = (x.baseAddress! + first * dimension, e.baseAddress!, c.baseAddress!)
            // A few rows: one pass over the examples with the dot kernel (sgemm packs them
            // first, which costs more than the products); many: sgemm.
            if rows < 8 {
              for r in 0..<rows {
                for j in 0..<count {
                  c[r * count + j] = Distance.dot(
                    x + r * dimension, e + j * dimension, count: dimension)
                }
              }
            } else {
              Float.gemm(
                transposeA: false, transposeB: true, m: rows, n: count, k: dimension, alpha: 1,
                a: x, lda: dimension, b: e, ldb: dimension, beta: 0, c: c, ldc: count)
            }
          }
        }
      }
      for r in 0..<rows {
        let x = inputs[(first + r) * dimension..<(first + r + 1) * dimension]
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let inverse: Float = norm > 0 ? 1 / norm : 0
        for c in 0..<classes { filled[c] = 0 }
        // Each class's k largest cosines, kept in descending order by insertion.
        for (j, label) in labels.enumerated() {
          let value = cosines[r * count + j] * inverse
          let slots = label * neighbours
          var i = filled[label]
          if i == neighbours {
            guard value > top[slots + neighbours - 1] else { continue }
            i -= 1
          } else {
            filled[label] += 1
          }
          while i > 0 && top[slots + i - 1] < value {
            top[slots + i] = top[slots + i - 1]
            i -= 1
          }
          top[slots + i] = value
        }
        for c in 0..<classes {
          let kept = top[c * neighbours..<(c * neighbours + filled[c])]
          out[(first + r) * classes + c] =
            filled[c] == 0 ? -scale : scale * kept.reduce(0, +) / Float(filled[c])
        }
      }
    }
    return out
  }

  // MARK: Stored form

  /// The classifier as one flat array, as a router version stores it: `dimension`, the
  /// example count `n`, `neighbours`, `scale`, then the `n` labels, then the `n × dimension`
  /// unit vectors. (Counts and labels as Float32 are exact below 2²⁴.)
  ///
  /// Warning: stored router versions are read with this layout; changing it breaks them.
  public var parameters: [Float] {
    let header: [Float] = [Float(dimension), Float(labels.count), Float(neighbours), scale]
    return header + labels.map { Float($0) } + examples
  }

  /// The classifier `parameters` stores.
  ///
  /// - Throws: `TrainingError.badInput` when the array is not that layout: too short, counts
  ///   that do not add up, a label outside `0..<classes`.
  public init(classes: Int, parameters: [Float]) throws {
    func bad(_ reason: String) -> TrainingError {
      .badInput("stored nearest examples: \(reason)")
    }
    guard parameters.count >= 4, classes >= 2 else { throw bad("too short") }
    let header = parameters[0..<4].map(Double.init)
    let limit = Double(1 << 24)
    func isCount(_ x: Double) -> Bool { x >= 1 && x < limit && x == x.rounded() }
    guard header[0...2].allSatisfy(isCount), header[3].isFinite, header[3] > 0
    else { throw bad("a header that is not dimension, count, neighbours, scale") }
    let (dimension, count) = (Int(header[0]), Int(header[1]))
    let needed = 4 + count * (dimension + 1)
    guard parameters.count == needed else {
      throw bad("\(parameters.count) values where \(count) examples need \(needed)")
    }
    let labels = parameters[4..<(4 + count)].map(Double.init)
    guard labels.allSatisfy({ $0 >= 0 && $0 < Double(classes) && $0 == $0.rounded() }) else {
      throw bad("a label outside the \(classes) classes")
    }
    self.classes = classes
    self.dimension = dimension
    neighbours = Int(header[2])
    scale = parameters[3]
    self.labels = labels.map { Int($0) }
    examples = Array(parameters[(4 + count)...])
  }
}
