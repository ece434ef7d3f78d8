import XCTest

@testable import Tensor

/// Float's layer math (the inference kernels) against Double's (the C library).
final class ScalarTests: XCTestCase {
  let grid = (0...4000).map { -10 + Double($0) * 0.005 }  // 4001 points, includes a 16-lane tail

  func testGeluAndItsDerivativeMatchTheExactFunctions() {
    var u = grid.map { Float($0) }
    var g = [Float](repeating: 0, count: u.count)
    var d = [Float](repeating: 1, count: u.count)
    var exactG = grid
    var exactD = [Double](repeating: 1, count: grid.count)
    Float.gelu(u, into: &g, count: u.count)
    Float.geluBackward(&u, gradient: &d, count: u.count)
    Double.gelu(grid, into: &exactG, count: grid.count)
    Double.geluBackward(grid, gradient: &exactD, count: grid.count)
    for i in grid.indices {
      let x = Double(u[i])  // the Float input, so only the function's error is measured
      var exactAtX = [0.0]
      Double.gelu([x], into: &exactAtX, count: 1)
      XCTAssertEqual(Double(g[i]), exactAtX[0], accuracy: 2e-6 * max(1, abs(x)), "gelu(\(x))")
      XCTAssertEqual(Double(d[i]), exactD[i], accuracy: 1e-5, "gelu'(\(x))")
    }
    XCTAssertEqual(g[2000], 0)  // gelu(0) = 0
    XCTAssertEqual(Double(d[2000]), 0.5, accuracy: 1e-7)  // gelu'(0) = ½
  }

  func testSoftmaxRowsAgreeBetweenFloatAndDouble() {
    var random = Xoshiro256(seed: 17)
    let (rows, width) = (5, 37)  // a width with a SIMD tail
    let scores = (0..<(rows * width)).map { _ in 20 * Double(random.nextUnitFloat()) - 10 }
    var exact = scores
    var float = scores.map { Float($0) }
    Double.softmaxRows(&exact, rows: rows, width: width)
    Float.softmaxRows(&float, rows: rows, width: width)
    for i in scores.indices {
      XCTAssertEqual(Double(float[i]), exact[i], accuracy: 1e-6, "entry \(i)")
    }
    for row in 0..<rows {
      XCTAssertEqual(exact[(row * width)..<((row + 1) * width)].reduce(0, +), 1, accuracy: 1e-12)
    }
  }
}

final class ParallelGemmTests: XCTestCase {
  /// The threaded product equals one BLAS call, for every transpose and both split directions.
  func testSplitProductsEqualOneCall() {
    var random = Xoshiro256(seed: 21)
    for (m, n, k) in [(300, 40, 200), (40, 300, 200)] {  // split by rows, then by columns
      for transposeA in [false, true] {
        for transposeB in [false, true] {
          let a = (0..<(m * k)).map { _ in Double(random.nextUnitFloat()) - 0.5 }
          let b = (0..<(k * n)).map { _ in Double(random.nextUnitFloat()) - 0.5 }
          let start = (0..<(m * n)).map { _ in Double(random.nextUnitFloat()) }
          var expected = start
          var split = start
          let lda = transposeA ? m : k
          let ldb = transposeB ? k : n
          Double.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, a: a,
            lda: lda, b: b, ldb: ldb, beta: 2, c: &expected, ldc: n)
          BLAS.parallelGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, a: a,
            lda: lda, b: b, ldb: ldb, beta: 2, c: &split, ldc: n)
          let worst = zip(expected, split).map { abs($0 - $1) }.max()!
          XCTAssertLessThan(worst, 1e-12, "m \(m) n \(n) transposes \(transposeA) \(transposeB)")
        }
      }
    }
  }
}
