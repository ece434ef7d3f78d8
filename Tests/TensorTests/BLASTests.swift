import Tensor
import XCTest

final class BLASTests: XCTestCase {
  private func matrix(_ rows: Int, _ columns: Int, seed: Int) -> [Float] {
    (0..<rows * columns).map { Float(($0 * 7 + seed * 13) % 23) / 11 - 1 }
  }

  /// op(A)·op(B) computed naively in double precision.
  private func reference(
    _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool
  ) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
      for j in 0..<n {
        for p in 0..<k {
          let x = transposeA ? a[p * m + i] : a[i * k + p]
          let y = transposeB ? b[j * k + p] : b[p * n + j]
          c[i * n + j] += Double(x) * Double(y)
        }
      }
    }
    return c
  }

  func testGemmAgreesWithTheDefinitionForEveryTransposition() {
    let (m, n, k) = (5, 7, 9)
    for transposeA in [false, true] {
      for transposeB in [false, true] {
        let a = matrix(transposeA ? k : m, transposeA ? m : k, seed: 1)
        let b = matrix(transposeB ? n : k, transposeB ? k : n, seed: 2)
        var c = [Float](repeating: 1, count: m * n)
        c.withUnsafeMutableBufferPointer { c in
          BLAS.gemm(
            transposeA ? .transposed : .none, transposeB ? .transposed : .none,
            m: m, n: n, k: k, alpha: 2, a: a, lda: transposeA ? m : k,
            b: b, ldb: transposeB ? k : n, beta: 0.5, c: c.baseAddress!, ldc: n)
        }
        let expected = reference(
          a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        for (got, want) in zip(c, expected) {
          XCTAssertEqual(
            Double(got), 2 * want + 0.5, accuracy: 1e-4, "A\(transposeA) B\(transposeB)")
        }
      }
    }
  }

  func testLinearIsXTimesWTransposedPlusBias() {
    // Few rows take the unpacked kernel, many the gemm; odd sizes hit every tail.
    for shape in [(4, 6, 40), (14, 37, 35), (7, 384, 48), (1, 1536, 5), (40, 19, 40)] {
      checkLinear(rows: shape.0, inFeatures: shape.1, outFeatures: shape.2)
    }
  }

  func testSmallLinearKernelAgreesWithTheGemm() {
    let (rows, k, out) = (13, 390, 44)
    let x = matrix(rows, k, seed: 5)
    let w = matrix(out, k, seed: 6)
    let b = matrix(1, out, seed: 7)
    func run(smallRows: Int) -> [Float] {
      let saved = BLAS.smallLinearRows
      defer { BLAS.smallLinearRows = saved }
      BLAS.smallLinearRows = smallRows
      var y = [Float](repeating: 0, count: rows * out)
      BLAS.linear(
        rows: rows, inFeatures: k, outFeatures: out, input: x, weight: w, bias: b, output: &y)
      return y
    }
    for (small, gemm) in zip(run(smallRows: 32), run(smallRows: 0)) {
      XCTAssertEqual(small, gemm, accuracy: 1e-4 * max(1, abs(gemm)))
    }
  }

  private func checkLinear(rows: Int, inFeatures: Int, outFeatures: Int) {
    let x = Tensor(shape: [rows, inFeatures], values: matrix(rows, inFeatures, seed: 3))
    let w = Tensor(
      shape: [outFeatures, inFeatures], values: matrix(outFeatures, inFeatures, seed: 4))
    let b = Tensor(shape: [outFeatures], values: (0..<outFeatures).map { Float($0) })
    let y = BLAS.linear(x, weight: w, bias: b)
    XCTAssertEqual(y.shape, [rows, outFeatures])
    let product = reference(
      x.values, w.values, m: rows, n: outFeatures, k: inFeatures, transposeA: false,
      transposeB: true)
    for row in 0..<rows {
      for column in 0..<outFeatures {
        XCTAssertEqual(
          Double(y[row, column]), product[row * outFeatures + column] + Double(column),
          accuracy: 1e-4 * Double(inFeatures), "\(rows)×\(inFeatures)→\(outFeatures)")
      }
    }
    // The same product computed in column slices on several threads.
    var split = [Float](repeating: 0, count: rows * outFeatures)
    split.withUnsafeMutableBufferPointer { out in
      let slices = Parallel.split(outFeatures, into: 3, multipleOf: 16)
      Parallel.forEach(slices.count) { i in
        BLAS.linear(
          rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, input: x.values,
          weight: w.values, bias: b.values, output: out.baseAddress!, columns: slices[i])
      }
    }
    for (part, whole) in zip(split, y.values) {
      XCTAssertEqual(part, whole, accuracy: 1e-5 * Float(inFeatures) * max(1, abs(whole)))
    }
  }

  func testPrepareLeavesOpenBLASSingleThreaded() {
    BLAS.prepare()
    XCTAssertEqual(BLAS.openBLASThreads, 1)
    XCTAssertFalse(BLAS.coreName.isEmpty)
  }

  /// Without `OPENBLAS_CORETYPE`, the kernels are the widest this CPU has, whatever
  /// OpenBLAS picked for a CPU newer than itself (SSE3 "Prescott" on an Intel Xeon of
  /// model 207); with it, they are the ones it names.
  func testPrepareUsesTheWidestKernelsTheCPUHas() throws {
    BLAS.prepare()
    if let chosen = getenv("OPENBLAS_CORETYPE").map({ String(cString: $0) }) {
      XCTAssertEqual(BLAS.coreName.lowercased(), chosen.lowercased())
    } else {
      let widest = try XCTUnwrap(BLAS.KernelSet.widestOfThisCPU, "an x86-64 CPU without AVX2")
      XCTAssertTrue(widest.isMatched(byCore: BLAS.coreName), "\(BLAS.coreName) for \(widest)")
    }
  }

  /// `prepare` stops OpenBLAS's idle workers; raising its thread count afterwards starts
  /// them again, and a product large enough to be split among them still comes out right.
  func testOpenBLASThreadsCanBeRaisedAfterPrepare() {
    BLAS.prepare()
    defer { BLAS.openBLASThreads = 1 }
    let (m, n, k) = (256, 256, 256)
    let a = matrix(m, k, seed: 11)
    let b = matrix(k, n, seed: 12)
    func product() -> [Float] {
      var c = [Float](repeating: 0, count: m * n)
      BLAS.gemm(.none, .none, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
      return c
    }
    let alone = product()
    BLAS.openBLASThreads = 2
    XCTAssertEqual(BLAS.openBLASThreads, 2)
    let shared = product()
    let expected = reference(a, b, m: m, n: n, k: k, transposeA: false, transposeB: false)
    for (index, value) in expected.enumerated() {
      XCTAssertEqual(Double(alone[index]), value, accuracy: 1e-4 * max(1, abs(value)))
      XCTAssertEqual(Double(shared[index]), value, accuracy: 1e-4 * max(1, abs(value)))
    }
  }
}

final class TensorTests: XCTestCase {
  func testShapeAndIndexing() {
    var t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    XCTAssertEqual(t[1, 2], 6)
    t[0, 1] = 9
    XCTAssertEqual(t.values, [1, 9, 3, 4, 5, 6])
    XCTAssertEqual(t.rowCount, 2)
    XCTAssertEqual(t.rowWidth, 3)
    XCTAssertEqual(Tensor(shape: [4, 0]).values.count, 0)
    XCTAssertEqual(Tensor(shape: []).values, [0])
  }
}
