import XCTest

@testable import Training

/// The Float kernels' approximations against the C library in Double.
final class VectorMathTests: XCTestCase {
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

  func testShiftedExpMatchesTheCLibrary() {
    let inputs = (0..<1000).map { -Float($0) * 0.087 }  // 0 down to −87
    var x = inputs
    let sum = Float.expShifted(&x, count: x.count, shift: 0)
    var exactSum = 0.0
    for i in x.indices {
      let exact = Foundation.exp(Double(inputs[i]))
      exactSum += exact
      XCTAssertEqual(Double(x[i]), exact, accuracy: 1e-6 * exact + 1e-37, "exp(\(inputs[i]))")
    }
    XCTAssertEqual(Double(sum), exactSum, accuracy: 1e-5 * exactSum)
  }
}

final class ParallelGemmTests: XCTestCase {
  /// The threaded product equals one BLAS call, for every transpose and both split directions.
  func testSplitProductsEqualOneCall() {
    var random = TrainingRandom(seed: 21)
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
          parallelGemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, a: a,
            lda: lda, b: b, ldb: ldb, beta: 2, c: &split, ldc: n)
          let worst = zip(expected, split).map { abs($0 - $1) }.max()!
          XCTAssertLessThan(worst, 1e-12, "m \(m) n \(n) transposes \(transposeA) \(transposeB)")
        }
      }
    }
  }
}
