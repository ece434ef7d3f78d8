import CKernels
import HNSW
import XCTest

@testable import Tensor

final class DistanceTests: XCTestCase {
  /// Every length from 0 to 70 exercises the kernels' full-width loops, their masked or
  /// scalar tails, and the plain definitions; the offset of 2 bytes is the alignment LMDB
  /// gives values.
  func testKernelsMatchScalarSumsAtEveryLengthAndTwoByteAlignment() {
    var rng = SplitMix64(seed: 7)
    for count in 0...70 {
      let a = (0..<count).map { _ in Float.random(in: -1..<1, using: &rng) }
      let b = (0..<count).map { _ in Float.random(in: -1..<1, using: &rng) }
      var dot: Double = 0
      var squared: Double = 0
      for i in 0..<count {
        dot += Double(a[i]) * Double(b[i])
        squared += Double(a[i] - b[i]) * Double(a[i] - b[i])
      }
      var bytes = [UInt8](repeating: 0, count: 2 + 8 * count)
      bytes.withUnsafeMutableBytes { raw in
        for i in 0..<count {
          raw.storeBytes(of: a[i], toByteOffset: 2 + 4 * i, as: Float.self)
          raw.storeBytes(of: b[i], toByteOffset: 2 + 4 * (count + i), as: Float.self)
        }
      }
      bytes.withUnsafeBytes { raw in
        let pa = raw.baseAddress! + 2
        let pb = raw.baseAddress! + 2 + 4 * count
        XCTAssertEqual(Double(Distance.dot(pa, pb, count: count)), dot, accuracy: 1e-4)
        XCTAssertEqual(Double(Distance.scalarDot(pa, pb, count: count)), dot, accuracy: 1e-4)
        XCTAssertEqual(
          Double(Distance.squaredEuclidean(pa, pb, count: count)), squared, accuracy: 1e-4)
        XCTAssertEqual(
          Double(Distance.scalarSquaredEuclidean(pa, pb, count: count)), squared,
          accuracy: 1e-4)
      }
      XCTAssertEqual(Double(Distance.dot(a, b)), dot, accuracy: 1e-4, "length \(count)")
    }
  }

  /// The bfloat16 walk kernels on every instruction-set path the CPU has (plain C,
  /// AVX2+FMA, AVX-512 BF16) against float64 sums of the widened values: every length
  /// 0...140 (full-width steps, masked and scalar tails) at LMDB's 2-byte alignment.
  func testBFloat16KernelsMatchScalarSumsOnEveryPath() {
    let best = vdb_bf16_set_level(-1)
    defer { vdb_bf16_set_level(-1) }
    for level in 0...best where vdb_bf16_set_level(level) == level {
      var rng = SplitMix64(seed: 11)
      for count in 0...140 {
        let a = (0..<count).map { _ in Float.random(in: -1..<1, using: &rng) }
        let b = (0..<count).map { _ in Float.random(in: -1..<1, using: &rng) }
        // One buffer, one element of offset: both vectors are 2- but not 4-byte aligned.
        var halves = [UInt16](repeating: 0, count: 1 + 2 * count)
        halves.withUnsafeMutableBufferPointer { h in
          vdb_bf16_round(a, h.baseAddress! + 1, Int32(count))
          vdb_bf16_round(b, h.baseAddress! + 1 + count, Int32(count))
        }
        let wa = halves[1..<1 + count].map(Self.widen)
        let wb = halves[(1 + count)...].map(Self.widen)
        var dot: Double = 0
        var squared: Double = 0
        var magnitude: Double = 0
        for i in 0..<count {
          dot += Double(wa[i]) * Double(wb[i])
          squared += Double(wa[i] - wb[i]) * Double(wa[i] - wb[i])
          magnitude += abs(Double(wa[i]) * Double(wb[i]))
        }
        halves.withUnsafeBufferPointer { h in
          let pa = h.baseAddress! + 1
          let pb = h.baseAddress! + 1 + count
          XCTAssertEqual(
            Double(vdb_bf16_dot(pa, pb, Int32(count))), dot, accuracy: 1e-6 * (1 + magnitude),
            "level \(level), length \(count)")
          XCTAssertEqual(
            Double(vdb_bf16_squared_euclidean(pa, pb, Int32(count))), squared,
            accuracy: 1e-6 * (1 + squared), "level \(level), length \(count)")
        }
        // The walk distance stays within bfloat16's error of the float32 one.
        XCTAssertEqual(Double(Distance.dot(a, b)), dot, accuracy: 0.01 * (1 + magnitude))
      }
    }
  }

  /// Rounding to bfloat16 is to nearest, ties to even, on the bit patterns that decide it.
  func testBFloat16RoundingIsToNearestEven() {
    let cases: [(UInt32, UInt16)] = [
      (0x3F80_0000, 0x3F80),  // 1: exact
      (0x3F80_7FFF, 0x3F80),  // just below half: down
      (0x3F80_8000, 0x3F80),  // half, even below: down
      (0x3F81_8000, 0x3F82),  // half, odd below: up
      (0x3F80_8001, 0x3F81),  // just above half: up
      (0xBF80_C000, 0xBF81),  // negative, above half
      (0x7F7F_FFFF, 0x7F80),  // the largest float rounds to infinity
      (0x0000_0000, 0x0000),
    ]
    for (bits, expected) in cases {
      var out: UInt16 = 0
      var value = Float(bitPattern: bits)
      vdb_bf16_round(&value, &out, 1)
      XCTAssertEqual(out, expected, "0x\(String(bits, radix: 16))")
    }
    var nan = Float.nan
    var out: UInt16 = 0
    vdb_bf16_round(&nan, &out, 1)
    XCTAssertTrue(Self.widen(out).isNaN)
  }

  static func widen(_ half: UInt16) -> Float { Float(bitPattern: UInt32(half) << 16) }

  func testNormalizeGivesUnitLengthAndLeavesZeroAlone() {
    var v: [Float] = [3, 4]
    XCTAssertEqual(Distance.normalize(&v), 5)
    XCTAssertEqual(v, [0.6, 0.8])
    var zero: [Float] = [0, 0, 0]
    XCTAssertEqual(Distance.normalize(&zero), 0)
    XCTAssertEqual(zero, [0, 0, 0])
  }
}
