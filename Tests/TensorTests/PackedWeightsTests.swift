import XCTest

@testable import Tensor

/// The bfloat16 and int8 kernels at every instruction set the CPU has, against the
/// definition of each format computed in Double.
final class PackedWeightsTests: XCTestCase {
  /// `value` rounded to the nearest bfloat16 (ties to even), as a float.
  private func bfloat16(_ value: Float) -> Double {
    let bits = value.bitPattern
    let rounded = (bits &+ 0x7fff &+ ((bits >> 16) & 1)) & 0xffff_0000
    return Double(Float(bitPattern: rounded))
  }

  private typealias Quantized = (q: [Double], scale: Double)

  /// `values` cut into blocks of `size` (the last one shorter), each as symmetric integers
  /// of at most `top` in magnitude and the block's scale: weights as w / (max / 127),
  /// activations as x · (top / max) (int8: 32767 per row; w8a8: 127 per block of 32). The
  /// definitions int8.c and w8a8.c implement, in the same float32 operations (so the
  /// integers are the kernels').
  private func quantize(_ values: ArraySlice<Float>, top: Float, size: Int, weights: Bool)
    -> [Quantized]
  {
    stride(from: values.startIndex, to: values.endIndex, by: size).map { start in
      let block = values[start..<min(start + size, values.endIndex)]
      let largest = block.map(abs).max() ?? 0
      guard largest > 0 else { return (block.map { _ in 0 }, 0) }
      if weights {
        let scale = largest / top
        return (
          block.map { Double(min(max(($0 / scale).rounded(.toNearestOrEven), -top), top)) },
          Double(scale)
        )
      }
      let inverse = top / largest
      return (
        block.map { Double(min(max(($0 * inverse).rounded(.toNearestOrEven), -top), top)) },
        Double(largest / top)
      )
    }
  }

  /// The format's product of one row of x and one row of W by its definition, and the
  /// sum of the magnitudes of its terms (what the tolerance scales with).
  private func reference(_ format: PackedWeights.Format, x: ArraySlice<Float>, w: ArraySlice<Float>)
    -> (value: Double, magnitude: Double)
  {
    switch format {
    case .bfloat16:
      let terms = zip(x, w).map { bfloat16($0) * bfloat16($1) }
      return (terms.reduce(0, +), terms.map(abs).reduce(0, +))
    case .int8:
      let row = quantize(x, top: 32767, size: x.count, weights: false)[0]
      let qx = stride(from: 0, to: x.count, by: 32).map { row.q[$0..<min($0 + 32, x.count)] }
      let terms = zip(qx, quantize(w, top: 127, size: 32, weights: true)).map { xb, wb in
        row.scale * wb.scale * zip(xb, wb.q).reduce(0) { $0 + $1.0 * $1.1 }
      }
      return (terms.reduce(0, +), terms.map(abs).reduce(0, +))
    case .w8a8:
      let span = rotationSpan(x.count)
      let rx = rotated(Array(x))
      let rw = rotated(Array(w)).map { $0 / Float(span) }
      let qx = quantize(rx[...], top: 127, size: 32, weights: false)
      let terms = zip(qx, quantize(rw[...], top: 127, size: 32, weights: true)).map { xb, wb in
        xb.scale * wb.scale * zip(xb.q, wb.q).reduce(0) { $0 + $1.0 * $1.1 }
      }
      return (terms.reduce(0, +), terms.map(abs).reduce(0, +))
    }
  }

  /// w8a8's Walsh–Hadamard span for k inputs: the largest power of two ≤ 128 dividing k.
  private func rotationSpan(_ k: Int) -> Int {
    var span = 1
    while span < 128 && k % (span * 2) == 0 { span *= 2 }
    return span
  }

  /// `values` times w8a8's rotation as w8a8.c defines it: input i's sign flipped where
  /// the top bit of (i + 1) · 0x9E3779B97F4A7C15 is set, then unnormalized Walsh–Hadamard
  /// transforms over each span (a butterfly: a + b and a − b, the same floats in any order).
  private func rotated(_ values: [Float]) -> [Float] {
    var t = values.indices.map { i in
      (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15) >> 63 == 1 ? -values[i] : values[i]
    }
    let span = rotationSpan(t.count)
    var h = 1
    while h < span {
      for block in stride(from: 0, to: t.count, by: 2 * h) {
        for i in block..<block + h {
          (t[i], t[i + h]) = (t[i] + t[i + h], t[i] - t[i + h])
        }
      }
      h *= 2
    }
    return t
  }

  /// Every level of every format equals the definition on shapes with every kind of
  /// tail — k below, at and past a block or vector width, columns not a multiple of a
  /// panel — for column slices with ragged edges, and leaves the columns outside the
  /// slice untouched. Activations have outliers (one value in 50 is 20× larger), as real
  /// ones do.
  func testEveryKernelMatchesItsDefinitionOnRaggedShapes() {
    let shapes = [
      (1, 1, 1), (3, 5, 17), (13, 384, 100), (70, 33, 40), (9, 1537, 48), (65, 7, 31),
      (4, 32, 16), (5, 64, 33), (66, 95, 15), (3, 40, 18), (2, 1536, 20),
    ]
    for format in PackedWeights.Format.allCases {
      var random = SplitMix64(seed: 18)
      let levels = PackedWeights.KernelLevel.available(format)
      XCTAssertTrue(levels.contains(.plain))
      for level in levels {
        PackedWeights.KernelLevel.use(level, for: format)
        let name = "\(format) \(level.name(format))"
        for (rows, k, out) in shapes {
          let x = (0..<rows * k).map { i in
            Float(Double.random(in: -2..<2, using: &random) * (i % 50 == 7 ? 20 : 1))
          }
          let w = (0..<out * k).map { _ in Float(Double.random(in: -0.5..<0.5, using: &random)) }
          let b = (0..<out).map { Float($0) / 8 }
          let packed = PackedWeights(w, outFeatures: out, inFeatures: k, format: format)
          let slices = out > 20 ? [0..<3, 3..<out - 2, out - 2..<out] : [0..<out]
          for columns in slices {
            var y = [Float](repeating: -7, count: rows * out)
            packed.linear(rows: rows, input: x, bias: b, output: &y, columns: columns)
            for r in 0..<rows {
              for c in 0..<out {
                let got = y[r * out + c]
                guard columns.contains(c) else {
                  XCTAssertEqual(got, -7, "\(name) \(rows)×\(k)→\(out): column \(c) written")
                  continue
                }
                let exact = reference(
                  format, x: x[r * k..<(r + 1) * k], w: w[c * k..<(c + 1) * k])
                // bfloat16 sums in float32 in the kernel's order; int8's are exact
                // integers, scaled in float32.
                let tolerance =
                  format == .bfloat16
                  ? 1e-5 * Double(k) : 1e-6 * max(exact.magnitude + abs(Double(b[c])), 1)
                XCTAssertEqual(
                  Double(got), Double(b[c]) + exact.value, accuracy: tolerance,
                  "\(name) \(rows)×\(k)→\(out) [\(r), \(c)]")
              }
            }
          }
        }
      }
      PackedWeights.KernelLevel.use(nil, for: format)
    }
  }

  /// The operands training's backward products use (`dx = dy · W`, `dW = dyᵀ · x`): W packed
  /// from its transpose, and x read with strides — rows apart as usual, or from x's
  /// transpose — equal the definition at every bfloat16 level, with padding between rows
  /// and every kind of tail.
  func testBFloat16TransposedOperandsMatchTheDefinition() {
    let shapes = [(1, 1, 1), (3, 5, 17), (70, 33, 40), (17, 130, 16), (65, 7, 31), (40, 96, 50)]
    var random = SplitMix64(seed: 35)
    for level in PackedWeights.KernelLevel.available(.bfloat16) {
      PackedWeights.KernelLevel.use(level, for: .bfloat16)
      for (rows, k, out) in shapes {
        let name = "\(level.name(.bfloat16)) \(rows)×\(k)→\(out)"
        func values(_ count: Int) -> [Float] {
          (0..<count).map { _ in Float(Double.random(in: -2..<2, using: &random)) }
        }
        // Wᵀ as k rows of `out` values, 3 floats of padding after each.
        let wStride = out + 3
        let wT = values(k * wStride)
        let packed = PackedWeights(
          bfloat16Transposed: wT, outFeatures: out, inFeatures: k, rowStride: wStride)
        // x stored both ways: rows `k + 2` apart, and transposed, rows `rows + 1` apart.
        let x = values(rows * k)
        let (rowStride, columnStride) = (k + 2, rows + 1)
        var byRows = [Float](repeating: .nan, count: rows * rowStride)
        var byColumns = [Float](repeating: .nan, count: k * columnStride)
        for r in 0..<rows {
          for i in 0..<k {
            byRows[r * rowStride + i] = x[r * k + i]
            byColumns[i * columnStride + r] = x[r * k + i]
          }
        }
        for (input, strides) in [(byRows, (rowStride, 1)), (byColumns, (1, columnStride))] {
          var y = [Float](repeating: -7, count: rows * out)
          packed.linear(
            rows: rows, input: input, rowStride: strides.0, inputStride: strides.1, bias: nil,
            output: &y, columns: 0..<out)
          for r in 0..<rows {
            for c in 0..<out {
              let exact = (0..<k).reduce(0.0) {
                $0 + bfloat16(x[r * k + $1]) * bfloat16(wT[$1 * wStride + c])
              }
              XCTAssertEqual(
                Double(y[r * out + c]), exact, accuracy: 1e-5 * Double(k),
                "\(name) strides \(strides) [\(r), \(c)]")
            }
          }
        }
      }
    }
    PackedWeights.KernelLevel.use(nil, for: .bfloat16)
  }

  /// Asking for a level a format's kernel does not have gives the widest it has below
  /// that one, never a wider one: bfloat16 has no AVX-VNNI level, int8 no AMX one, w8a8
  /// neither.
  func testALevelAFormatLacksFallsToTheWidestBelowIt() {
    defer {
      for format in PackedWeights.Format.allCases {
        PackedWeights.KernelLevel.use(nil, for: format)
      }
    }
    XCTAssertFalse(PackedWeights.KernelLevel.available(.bfloat16).contains(.avxVNNI))
    XCTAssertFalse(PackedWeights.KernelLevel.available(.int8).contains(.amx))
    XCTAssertFalse(PackedWeights.KernelLevel.available(.w8a8).contains(.avxVNNI))
    XCTAssertFalse(PackedWeights.KernelLevel.available(.w8a8).contains(.amx))
    for (format, asked) in [
      (PackedWeights.Format.bfloat16, PackedWeights.KernelLevel.avxVNNI),
      (.int8, .amx), (.w8a8, .avxVNNI), (.w8a8, .amx),
    ] {
      let widestBelow = PackedWeights.KernelLevel.available(format).last {
        $0.rawValue < asked.rawValue
      }
      XCTAssertEqual(PackedWeights.KernelLevel.use(asked, for: format), widestBelow, "\(format)")
    }
    XCTAssertEqual(PackedWeights.KernelLevel.use(.plain, for: .int8), .plain)
    XCTAssertEqual(PackedWeights.KernelLevel.use(.plain, for: .w8a8), .plain)
  }

  func testBFloat16RoundsToNearestEven() {
    // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1).
    XCTAssertEqual(bfloat16(1 + 0x1p-8), 1)
    XCTAssertEqual(bfloat16(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7)
    XCTAssertEqual(bfloat16(1 + 3 * 0x1p-8), 1 + 2 * 0x1p-7)
    // The kernel rounds the same way: x = 1 + 2⁻⁸ times w = 1 gives exactly 1.
    let w = PackedWeights([Float(1)], outFeatures: 1, inFeatures: 1, format: .bfloat16)
    var y: Float = 0
    for level in PackedWeights.KernelLevel.available(.bfloat16) {
      PackedWeights.KernelLevel.use(level, for: .bfloat16)
      w.linear(rows: 1, input: [Float(1 + 0x1p-8)], bias: nil, output: &y, columns: 0..<1)
      XCTAssertEqual(y, 1, level.name(.bfloat16))
    }
    PackedWeights.KernelLevel.use(nil, for: .bfloat16)
  }

  /// The int8 and w8a8 quantization errors themselves are small: within 1 % of Σ|x·w| of
  /// the float32 product on random data, and zero for integers that need no scaling.
  func testInt8ProductIsCloseToFloat32() {
    var random = SplitMix64(seed: 7)
    let (rows, k, out) = (6, 384, 40)
    let x = (0..<rows * k).map { _ in Float(Double.random(in: -1..<1, using: &random)) }
    let w = (0..<out * k).map { _ in Float(Double.random(in: -1..<1, using: &random)) }
    for format in [PackedWeights.Format.int8, .w8a8] {
      var y = [Float](repeating: 0, count: rows * out)
      PackedWeights(w, outFeatures: out, inFeatures: k, format: format).linear(
        rows: rows, input: x, bias: nil, output: &y, columns: 0..<out)
      for r in 0..<rows {
        for c in 0..<out {
          let products = (0..<k).map { Double(x[r * k + $0]) * Double(w[c * k + $0]) }
          let total = products.map(abs).reduce(0, +)
          XCTAssertEqual(
            Double(y[r * out + c]), products.reduce(0, +), accuracy: 0.01 * total, "\(format)")
        }
      }
    }
    // x with a 32767 (its row's scale 1) and w with a −127 in every block: scales 1 (that x meets a 0 weight,
    // so the sum stays exactly representable in float32).
    let xi: [Float] = (0..<64).map { (i: Int) -> Float in i % 32 == 0 ? 32767 : Float(i % 127 - 63)
    }
    let wi: [Float] = (0..<64).map { (i: Int) -> Float in
      i % 32 == 0 ? 0 : i % 32 == 5 ? -127 : Float(i * 7 % 255 - 127)
    }
    let expected: Float = zip(xi, wi).reduce(0) { $0 + $1.0 * $1.1 }
    var yi: Float = 0
    for level in PackedWeights.KernelLevel.available(.int8) {
      PackedWeights.KernelLevel.use(level, for: .int8)
      PackedWeights(wi, outFeatures: 1, inFeatures: 64, format: .int8).linear(
        rows: 1, input: xi, bias: nil, output: &yi, columns: 0..<1)
      XCTAssertEqual(yi, expected, level.name(.int8))
    }
    PackedWeights.KernelLevel.use(nil, for: .int8)
  }

  /// bfloat16 attention at every level against its definition — q, k / √d, the softmax's
  /// P and v rounded to bfloat16, sums and softmax in Double — for 1 to 70 tokens, head
  /// sizes below, at and past a tile's 32 inputs, rows strided as in the packed qkv rows,
  /// and the context's columns past the head untouched. (The tolerance covers P landing
  /// on the other side of a bfloat16 rounding boundary in float32 than in Double.)
  func testBFloat16AttentionMatchesItsDefinition() {
    var random = SplitMix64(seed: 29)
    for level in PackedWeights.KernelLevel.available(.bfloat16) {
      PackedWeights.KernelLevel.use(level, for: .bfloat16)
      for (length, d) in [(1, 32), (5, 8), (17, 32), (40, 33), (70, 64)] {
        let stride = 3 * d + 5
        let qkv = (0..<length * stride).map { _ in
          Float(Double.random(in: -2..<2, using: &random))
        }
        let contextStride = d + 3
        var context = [Float](repeating: -7, count: length * contextStride)
        var scratch = [Float](
          repeating: .nan, count: PackedWeights.attentionScratchCount(length: length, headSize: d))
        qkv.withUnsafeBufferPointer { rows in
          let q = rows.baseAddress!
          PackedWeights.attention(
            length: length, headSize: d, q: q, k: q + d, v: q + 2 * d, stride: stride,
            context: &context, contextStride: contextStride, scratch: &scratch)
        }
        let expected = referenceAttention(
          qkv, length: length, headSize: d, stride: stride, round: bfloat16)
        let name = "\(level.name(.bfloat16)) \(length) tokens, d \(d)"
        for i in 0..<length {
          for j in 0..<contextStride {
            let got = context[i * contextStride + j]
            guard j < d else {
              XCTAssertEqual(got, -7, "\(name): context column \(j) written")
              continue
            }
            XCTAssertEqual(Double(got), expected[i][j], accuracy: 5e-3, "\(name) [\(i), \(j)]")
          }
        }
      }
    }
    PackedWeights.KernelLevel.use(nil, for: .bfloat16)
  }
}
