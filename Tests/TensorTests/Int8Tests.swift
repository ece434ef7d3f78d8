import XCTest

@testable import Tensor

final class Int8Tests: XCTestCase {
  /// Every kernel level this CPU can run, narrowest first.
  private var levels: [Int8Weights.KernelLevel] {
    let saved = Int8Weights.KernelLevel.current
    defer { Int8Weights.KernelLevel.use(saved) }
    return Int8Weights.KernelLevel.allCases.filter { Int8Weights.KernelLevel.use($0) == $0 }
  }

  /// `values` cut into blocks of 32 (the last one shorter), each as symmetric integers of
  /// at most `top` in magnitude (127 for weights, 32767 for activations) and the block's
  /// scale: the definition int8.c implements, in the same float32 operations (so the
  /// integers are the kernel's).
  private func quantize(_ values: ArraySlice<Float>, top: Float) -> [(q: [Double], scale: Double)] {
    stride(from: values.startIndex, to: values.endIndex, by: 32).map { start in
      let block = values[start..<min(start + 32, values.endIndex)]
      let largest = block.map(abs).max() ?? 0
      guard largest > 0 else { return (block.map { _ in 0 }, 0) }
      if top == 127 {  // weights: w / (max / 127)
        let scale = largest / 127
        return (
          block.map { Double(min(max(($0 / scale).rounded(.toNearestOrEven), -127), 127)) },
          Double(scale)
        )
      }
      let inverse = top / largest  // activations: x · (32767 / max)
      return (
        block.map { Double(min(max(($0 * inverse).rounded(.toNearestOrEven), -top), top)) },
        Double(largest / top)
      )
    }
  }

  /// Every level equals the definition (blocks of 32 quantized, exact integer sums scaled
  /// per block) on shapes with every kind of tail — k below, at and past a block, columns
  /// not a multiple of a panel — for column slices with ragged edges, and leaves the
  /// columns outside the slice untouched.
  func testKernelsMatchTheScalarReferenceOnRaggedShapes() {
    var random = SplitMix64(seed: 18)
    let shapes = [
      (1, 1, 1), (3, 5, 17), (13, 384, 100), (70, 33, 40), (9, 1537, 48), (65, 7, 31),
      (4, 32, 16), (5, 64, 33), (66, 95, 15),
    ]
    XCTAssertTrue(levels.contains(.plain))
    for level in levels {
      Int8Weights.KernelLevel.use(level)
      for (rows, k, out) in shapes {
        // Outliers (one value in 50 is 20× larger) as real activations have.
        let x = (0..<rows * k).map { i in
          Float(Double.random(in: -2..<2, using: &random) * (i % 50 == 7 ? 20 : 1))
        }
        let w = (0..<out * k).map { _ in Float(Double.random(in: -0.5..<0.5, using: &random)) }
        let b = (0..<out).map { Float($0) / 8 }
        let packed = Int8Weights(w, outFeatures: out, inFeatures: k)
        let qx = (0..<rows).map { quantize(x[$0 * k..<($0 + 1) * k], top: 32767) }
        let qw = (0..<out).map { quantize(w[$0 * k..<($0 + 1) * k], top: 127) }
        let slices = out > 20 ? [0..<3, 3..<out - 2, out - 2..<out] : [0..<out]
        for columns in slices {
          var y = [Float](repeating: -7, count: rows * out)
          packed.linear(rows: rows, input: x, bias: b, output: &y, columns: columns)
          for r in 0..<rows {
            for c in 0..<out {
              let got = y[r * out + c]
              guard columns.contains(c) else {
                XCTAssertEqual(got, -7, "\(level.name) \(rows)×\(k)→\(out): column \(c) written")
                continue
              }
              var exact = Double(b[c])
              var magnitude = abs(exact)
              for (xb, wb) in zip(qx[r], qw[c]) {
                let sum = zip(xb.q, wb.q).reduce(0) { $0 + $1.0 * $1.1 }
                exact += xb.scale * wb.scale * sum
                magnitude += abs(xb.scale * wb.scale * sum)
              }
              XCTAssertEqual(
                Double(got), exact, accuracy: 1e-6 * max(magnitude, 1),
                "\(level.name) \(rows)×\(k)→\(out) [\(r), \(c)]")
            }
          }
        }
      }
    }
    Int8Weights.KernelLevel.use(nil)
  }

  /// The quantization error itself is small: within 1 % of Σ|x·w| of the float32 product
  /// on random data, and zero for integers that need no scaling.
  func testQuantizedProductIsCloseToFloat32() {
    var random = SplitMix64(seed: 7)
    let (rows, k, out) = (6, 384, 40)
    let x = (0..<rows * k).map { _ in Float(Double.random(in: -1..<1, using: &random)) }
    let w = (0..<out * k).map { _ in Float(Double.random(in: -1..<1, using: &random)) }
    var y = [Float](repeating: 0, count: rows * out)
    Int8Weights(w, outFeatures: out, inFeatures: k).linear(
      rows: rows, input: x, bias: nil, output: &y, columns: 0..<out)
    for r in 0..<rows {
      for c in 0..<out {
        let products = (0..<k).map { Double(x[r * k + $0]) * Double(w[c * k + $0]) }
        let total = products.map(abs).reduce(0, +)
        XCTAssertEqual(Double(y[r * out + c]), products.reduce(0, +), accuracy: 0.01 * total)
      }
    }
    // x with a 32767 in every block and w with a −127: scales 1 (that x meets a 0 weight,
    // so the sum stays exactly representable in float32).
    let xi: [Float] = (0..<64).map { (i: Int) -> Float in i % 32 == 0 ? 32767 : Float(i % 127 - 63)
    }
    let wi: [Float] = (0..<64).map { (i: Int) -> Float in
      i % 32 == 0 ? 0 : i % 32 == 5 ? -127 : Float(i * 7 % 255 - 127)
    }
    let expected: Float = zip(xi, wi).reduce(0) { $0 + $1.0 * $1.1 }
    var yi: Float = 0
    for level in levels {
      Int8Weights.KernelLevel.use(level)
      Int8Weights(wi, outFeatures: 1, inFeatures: 64).linear(
        rows: 1, input: xi, bias: nil, output: &yi, columns: 0..<1)
      XCTAssertEqual(yi, expected, "\(level.name)")
    }
    Int8Weights.KernelLevel.use(nil)
  }
}
