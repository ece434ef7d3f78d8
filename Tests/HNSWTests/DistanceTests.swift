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

  func testNormalizeGivesUnitLengthAndLeavesZeroAlone() {
    var v: [Float] = [3, 4]
    XCTAssertEqual(Distance.normalize(&v), 5)
    XCTAssertEqual(v, [0.6, 0.8])
    var zero: [Float] = [0, 0, 0]
    XCTAssertEqual(Distance.normalize(&zero), 0)
    XCTAssertEqual(zero, [0, 0, 0])
  }
}
