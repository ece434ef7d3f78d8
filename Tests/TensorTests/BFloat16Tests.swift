import XCTest

@testable import Tensor

final class BFloat16Tests: XCTestCase {
  /// Every kernel level this CPU can run, narrowest first.
  private var levels: [BFloat16Weights.KernelLevel] {
    let saved = BFloat16Weights.KernelLevel.current
    defer { BFloat16Weights.KernelLevel.use(saved) }
    return BFloat16Weights.KernelLevel.allCases.filter { BFloat16Weights.KernelLevel.use($0) == $0 }
  }

  /// `value` rounded to the nearest bfloat16 (ties to even), as a float.
  private func bfloat16(_ value: Float) -> Double {
    let bits = value.bitPattern
    let rounded = (bits &+ 0x7fff &+ ((bits >> 16) & 1)) & 0xffff_0000
    return Double(Float(bitPattern: rounded))
  }

  func testRoundingIsToNearestEven() {
    // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1).
    XCTAssertEqual(bfloat16(1 + 0x1p-8), 1)
    XCTAssertEqual(bfloat16(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7)
    XCTAssertEqual(bfloat16(1 + 3 * 0x1p-8), 1 + 2 * 0x1p-7)
    // The kernel rounds the same way: x = 1 + 2⁻⁸ times w = 1 gives exactly 1.
    let w = BFloat16Weights([Float(1)], outFeatures: 1, inFeatures: 1)
    var y: Float = 0
    for level in levels {
      BFloat16Weights.KernelLevel.use(level)
      w.linear(rows: 1, input: [Float(1 + 0x1p-8)], bias: nil, output: &y, columns: 0..<1)
      XCTAssertEqual(y, 1, "\(level.name)")
    }
    BFloat16Weights.KernelLevel.use(nil)
  }

  /// Every level equals the definition (inputs rounded to bfloat16, exact sums) on shapes
  /// that are not multiples of any vector width, for column slices with ragged edges, and
  /// leaves the columns outside the slice untouched.
  func testKernelsMatchTheScalarReferenceOnRaggedShapes() {
    var random = SplitMix64(seed: 18)
    let shapes = [(1, 1, 1), (3, 5, 17), (13, 384, 100), (70, 33, 40), (9, 1537, 48), (65, 7, 31)]
    XCTAssertTrue(levels.contains(.plain))
    for level in levels {
      BFloat16Weights.KernelLevel.use(level)
      for (rows, k, out) in shapes {
        let x = (0..<rows * k).map { _ in Float(Double.random(in: -2..<2, using: &random)) }
        let w = (0..<out * k).map { _ in Float(Double.random(in: -0.5..<0.5, using: &random)) }
        let b = (0..<out).map { Float($0) / 8 }
        let packed = BFloat16Weights(w, outFeatures: out, inFeatures: k)
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
              for i in 0..<k { exact += bfloat16(x[r * k + i]) * bfloat16(w[c * k + i]) }
              XCTAssertEqual(
                Double(got), exact, accuracy: 1e-5 * Double(k),
                "\(level.name) \(rows)×\(k)→\(out) [\(r), \(c)]")
            }
          }
        }
      }
    }
    BFloat16Weights.KernelLevel.use(nil)
  }
}
