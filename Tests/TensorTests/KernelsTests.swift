import Foundation
import Tensor
import XCTest

final class KernelsTests: XCTestCase {
  /// Deterministic pseudo-random values in [-scale, scale).
  private func values(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
  }

  /// The exponential over the whole range a softmax feeds it (x − max ≤ 0, down to the
  /// clamp): the first entry of softmax([x, 0]) is eˣ / (eˣ + 1).
  func testSoftmaxExpMatchesFoundationAcrossItsRange() {
    Kernels.forEachVectorLevel { level in
      var worst = 0.0
      var x: Float = -87
      while x < 0 {
        var row: [Float] = [x, 0]
        row.withUnsafeMutableBufferPointer { Kernels.softmax(rows: 1, width: 2, $0.baseAddress!) }
        let e = Foundation.exp(Double(x))
        worst = max(worst, abs(Double(row[0]) - e / (e + 1)) / (e / (e + 1)))
        x += 0.037
      }
      XCTAssertLessThan(worst, 5e-7, level)
    }
  }

  /// GELU′(u) = Φ(u) + u · φ(u), with erf and exp inside, at every level and length.
  func testGELUBackwardIsTheDerivative() {
    let u = values(1003, seed: 7, scale: 6)
    let gradient = values(1003, seed: 8)
    Kernels.forEachVectorLevel { level in
      var d = gradient
      d.withUnsafeMutableBufferPointer {
        Kernels.geluBackward(count: 1003, u, gradient: $0.baseAddress!)
      }
      for i in 0..<u.count {
        let x = Double(u[i])
        let derivative =
          0.5 * (1 + Foundation.erf(x / 2.0.squareRoot()))
          + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        XCTAssertEqual(Double(d[i]), Double(gradient[i]) * derivative, accuracy: 2e-6, level)
      }
    }
  }

  /// AdamW's update: at every level the same floats as the formula written out in Float
  /// (no fused multiply-adds), and those within rounding of the Double update.
  func testAdamWUpdateIsTheFormulaAtEveryLevel() {
    let count = 1003  // odd: the ragged tail
    let g = values(count, seed: 11, scale: 3)
    let m0 = values(count, seed: 12, scale: 0.1)
    let v0 = values(count, seed: 13).map { $0 * $0 }
    let theta0 = values(count, seed: 14)
    let step = AdamWStep<Float>(
      beta1: 0.9, beta2: 0.999, stepSize: 0.01 / (1 - 0.9 * 0.9),
      inverseCorrection2: 1 / (1 - 0.999 * 0.999).squareRoot(), epsilon: 1e-8,
      decay: 1 - 0.01 * 0.01)
    var expected = theta0
    for i in 0..<count {
      let mi = step.beta1 * m0[i] + (1 - step.beta1) * g[i]
      let vi = step.beta2 * v0[i] + (1 - step.beta2) * g[i] * g[i]
      let scaled = theta0[i] * step.decay
      expected[i] =
        scaled - step.stepSize * mi / (vi.squareRoot() * step.inverseCorrection2 + step.epsilon)
    }
    var thetaD = theta0.map(Double.init)
    var mD = m0.map(Double.init)
    var vD = v0.map(Double.init)
    let stepD = AdamWStep<Double>(
      beta1: Double(step.beta1), beta2: Double(step.beta2), stepSize: Double(step.stepSize),
      inverseCorrection2: Double(step.inverseCorrection2), epsilon: Double(step.epsilon),
      decay: Double(step.decay))
    Double.adamWUpdate(
      count: count, parameters: &thetaD, gradients: g.map(Double.init), firstMoment: &mD,
      secondMoment: &vD, stepD)
    Kernels.forEachVectorLevel { level in
      var (theta, m, v) = (theta0, m0, v0)
      Float.adamWUpdate(
        count: count, parameters: &theta, gradients: g, firstMoment: &m, secondMoment: &v, step)
      XCTAssertEqual(theta, expected, level)
      for i in 0..<count {
        XCTAssertEqual(Double(theta[i]), thetaD[i], accuracy: 1e-5, level)
        XCTAssertEqual(Double(m[i]), mD[i], accuracy: 1e-6, level)
      }
    }
  }

  func testGELUIsTheExactErfForm() throws {
    let input = values(1003, seed: 1, scale: 6)  // odd length: exercises the ragged tail
    Kernels.forEachVectorLevel { level in
      var x = input
      x.withUnsafeMutableBufferPointer { Kernels.gelu(count: $0.count, $0.baseAddress!) }
      for (value, result) in zip(input, x) {
        let expected = Double(value) * 0.5 * (1 + Foundation.erf(Double(value) / 2.0.squareRoot()))
        XCTAssertEqual(Double(result), expected, accuracy: 2e-6, level)
      }
    }
  }

  func testAddLayerNormMatchesTheDefinition() {
    let rows = 3
    let width = 21
    let x = values(rows * width, seed: 2, scale: 3)
    let residual = values(rows * width, seed: 3)
    let gamma = values(width, seed: 4)
    let beta = values(width, seed: 5)
    var output = [Float](repeating: 0, count: rows * width)
    output.withUnsafeMutableBufferPointer { out in
      Kernels.addLayerNorm(
        rows: rows, width: width, x, residual: residual, gamma: gamma, beta: beta,
        epsilon: 1e-12, output: out.baseAddress!)
    }
    for row in 0..<rows {
      let v = (0..<width).map { Double(x[row * width + $0] + residual[row * width + $0]) }
      let mean = v.reduce(0, +) / Double(width)
      let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
      for j in 0..<width {
        let expected =
          (v[j] - mean) / (variance + 1e-12).squareRoot() * Double(gamma[j]) + Double(beta[j])
        XCTAssertEqual(Double(output[row * width + j]), expected, accuracy: 1e-5)
      }
    }
  }

  func testSoftmaxRowsSumToOneAndMaskedEntriesAreZero() {
    // (rows, width, valid, stride): below, at and past a vector of 16, rows apart.
    for (rows, width, valid, stride) in [(2, 13, 11, 13), (3, 40, 37, 41), (2, 32, 32, 32)] {
      let input = values(rows * stride, seed: 6, scale: 20)
      Kernels.forEachVectorLevel { level in
        var x = input
        x.withUnsafeMutableBufferPointer {
          Kernels.softmax(
            rows: rows, width: width, validWidth: valid, stride: stride, $0.baseAddress!)
        }
        for row in 0..<rows {
          let logits = (0..<valid).map { Double(input[row * stride + $0]) }
          let largest = logits.max()!
          let total = logits.map { Foundation.exp($0 - largest) }.reduce(0, +)
          for j in 0..<valid {
            XCTAssertEqual(
              Double(x[row * stride + j]), Foundation.exp(logits[j] - largest) / total,
              accuracy: 1e-6, "\(level) \(rows)×\(width)")
          }
          for j in valid..<width { XCTAssertEqual(x[row * stride + j], 0, level) }
          for j in width..<stride { XCTAssertEqual(x[row * stride + j], input[row * stride + j]) }
        }
      }
    }
  }

  /// context = softmax(q·kᵀ/√d)·v, against the definition in Double, at every level: one
  /// token, lengths below, at and past a block of 6 rows and a panel of 16 keys, a head
  /// size with a ragged 16-float tail, and rows with gaps on both sides (Q|K|V rows, and
  /// context rows wider than a head), which must stay untouched.
  func testAttentionIsTheDefinition() {
    for (length, d) in [(1, 32), (6, 32), (7, 20), (17, 32), (40, 64), (235, 32)] {
      let stride = 3 * d + 5
      let contextStride = d + 3
      let qkv = values(length * stride, seed: UInt64(length * d), scale: 3)
      let untouched: Float = 42
      Kernels.forEachVectorLevel { level in
        var context = [Float](repeating: untouched, count: length * contextStride)
        var scratch = [Float](
          repeating: .nan, count: Kernels.attentionScratchCount(length: length, headSize: d))
        qkv.withUnsafeBufferPointer { qkv in
          let q = qkv.baseAddress!
          Kernels.attention(
            length: length, headSize: d, q: q, k: q + d, v: q + 2 * d, stride: stride,
            context: &context, contextStride: contextStride, scratch: &scratch)
        }
        let expected = referenceAttention(qkv, length: length, headSize: d, stride: stride)
        var worst = 0.0
        for i in 0..<length {
          for c in 0..<d {
            worst = max(worst, abs(Double(context[i * contextStride + c]) - expected[i][c]))
          }
          for c in d..<contextStride { XCTAssertEqual(context[i * contextStride + c], untouched) }
        }
        XCTAssertLessThan(worst, 2e-5, "\(level) length \(length), d \(d)")
      }
    }
  }

  func testL2NormalizeMakesUnitRowsAndLeavesZeroRowsAlone() {
    var x: [Float] = [3, 4, 0, 0]
    x.withUnsafeMutableBufferPointer { Kernels.l2Normalize(rows: 2, width: 2, $0.baseAddress!) }
    XCTAssertEqual(x, [0.6, 0.8, 0, 0])
  }

  func testSplitCoversTheRangeInAlignedPieces() {
    XCTAssertEqual(Parallel.split(1000, into: 2), [0..<500, 500..<1000])
    XCTAssertEqual(Parallel.split(384, into: 2, multipleOf: 16), [0..<192, 192..<384])
    XCTAssertEqual(Parallel.split(20, into: 4, multipleOf: 16), [0..<16, 16..<20])
    XCTAssertEqual(Parallel.split(3, into: 8), [0..<1, 1..<2, 2..<3])
    XCTAssertEqual(Parallel.split(0, into: 2), [])
    var seen = [Int](repeating: 0, count: 100)
    seen.withUnsafeMutableBufferPointer { counts in
      let parts = Parallel.split(100, into: 3)
      Parallel.forEach(parts.count) { part in
        for i in parts[part] { counts[i] += 1 }
      }
    }
    XCTAssertEqual(seen, [Int](repeating: 1, count: 100))
  }

  /// `both` returns both results, and the first closure's error when both fail.
  func testBothRunsTwoPiecesOfWorkAndKeepsTheFirstError() throws {
    struct Failure: Error, Equatable { let name: String }
    let (sum, text) = try Parallel.both({ (1...100).reduce(0, +) }, { "done" })
    XCTAssertEqual(sum, 5050)
    XCTAssertEqual(text, "done")
    XCTAssertThrowsError(
      try Parallel.both({ () throws -> Int in throw Failure(name: "first") }) {
        () throws -> Int in throw Failure(name: "second")
      }
    ) { XCTAssertEqual($0 as? Failure, Failure(name: "first")) }
    XCTAssertThrowsError(
      try Parallel.both({ 1 }) { () throws -> Int in throw Failure(name: "second") }
    ) { XCTAssertEqual($0 as? Failure, Failure(name: "second")) }
  }
}
