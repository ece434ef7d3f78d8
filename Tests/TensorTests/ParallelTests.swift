import Dispatch
import Tensor
import XCTest

final class ParallelTests: XCTestCase {
  /// Thousands of calls back to back, of every size, each index run exactly once: the
  /// awake workers must never run an index of one call under another call's count.
  func testForEachRunsEveryIndexOnceAcrossManyCalls() {
    let sizes = [2, 3, 5, 8, 31, 100, 1000]
    var runs = [Int](repeating: 0, count: sizes.max()!)
    runs.withUnsafeMutableBufferPointer { runs in
      for call in 0..<3000 {
        let count = sizes[call % sizes.count]
        Parallel.forEach(count) { runs[$0] += 1 }
        for i in 0..<runs.count {
          XCTAssertEqual(runs[i], i < count ? 1 : 0, "call \(call), index \(i) of \(count)")
          runs[i] = 0
        }
      }
    }
  }

  /// Several threads calling at once, and calls from inside a call: while one caller has
  /// the workers the others take another way, and every index still runs exactly once.
  func testConcurrentAndNestedCallsRunEveryIndexOnce() {
    let callers = 4
    let outer = 6
    let inner = 5
    let rounds = 300
    let cells = callers * outer * inner
    let runs = UnsafeMutableBufferPointer<Int>.allocate(capacity: cells)
    runs.initialize(repeating: 0)
    defer { runs.deallocate() }
    DispatchQueue.concurrentPerform(iterations: callers) { caller in
      for _ in 0..<rounds {
        Parallel.forEach(outer) { o in
          Parallel.forEach(inner) { i in runs[(caller * outer + o) * inner + i] += 1 }
        }
      }
    }
    XCTAssertEqual(Array(runs), [Int](repeating: rounds, count: cells))
  }
}
