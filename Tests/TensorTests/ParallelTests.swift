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

  /// Calls made while a pass runs wait for it, then share the next one: one call of
  /// `pass` over all their items, each call getting its own results back in order.
  func testCallsThatWaitedShareTheNextPass() {
    let coalescer = Parallel.Coalescer<Int, Int>()
    let passes = Locked<[[Int]]>([])
    let results = Locked<[Int: [Int]]>([:])
    let leaderInPass = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let pass: ([Int]) -> [Int] = { items in
      passes.withLock { $0.append(items) }
      if items == [0] {
        leaderInPass.signal()
        release.wait()
      }
      return items.map { $0 * 10 }
    }
    let done = DispatchGroup()
    func call(_ items: [Int], index: Int) {
      done.enter()
      Thread {
        let got = coalescer.run(items, pass: pass)
        results.withLock { $0[index] = got }
        done.leave()
      }.start()
    }
    call([0], index: 0)
    leaderInPass.wait()  // the first call's pass is running
    for index in 1...7 { call(Array(repeating: index, count: index), index: index) }
    let deadline = Date().addingTimeInterval(30)
    while coalescer.waitingCalls < 7 && Date() < deadline { usleep(1000) }
    XCTAssertEqual(coalescer.waitingCalls, 7)
    release.signal()
    XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
    let ran = passes.withLock { $0 }
    XCTAssertEqual(ran.count, 2)
    XCTAssertEqual(coalescer.passes, 2)
    XCTAssertEqual(ran.first, [0])
    XCTAssertEqual(ran.last?.sorted(), (1...7).flatMap { Array(repeating: $0, count: $0) })
    let got = results.withLock { $0 }
    for index in 0...7 {
      XCTAssertEqual(
        got[index], Array(repeating: index * 10, count: max(index, 1)), "call \(index)")
    }
  }

  /// With two passes allowed at once, a second call runs beside a pass under way
  /// instead of waiting for it.
  func testACallRunsBesideAPassWhenMoreThanOneMayRun() {
    let coalescer = Parallel.Coalescer<Int, Int>(concurrentPasses: 2)
    let firstInPass = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let firstDone = DispatchSemaphore(value: 0)
    Thread {
      let results = coalescer.run([0]) { items in
        firstInPass.signal()
        release.wait()
        return items
      }
      XCTAssertEqual(results, [0])
      firstDone.signal()
    }.start()
    firstInPass.wait()
    XCTAssertEqual(coalescer.run([1, 2]) { $0.map { $0 + 1 } }, [2, 3])  // the first still runs
    XCTAssertEqual(coalescer.passes, 2)
    release.signal()
    XCTAssertEqual(firstDone.wait(timeout: .now() + 30), .success)
  }

  /// Calls that never overlap each run alone, at once; many threads at a time all get
  /// their own results.
  func testLoneCallsRunAloneAndManyThreadsGetTheirOwnResults() {
    let coalescer = Parallel.Coalescer<Int, Int>()
    for call in 0..<5 {
      XCTAssertEqual(coalescer.run([call, call + 1]) { $0.map { -$0 } }, [-call, -call - 1])
      XCTAssertEqual(coalescer.passes, call + 1)
    }
    XCTAssertEqual(coalescer.run([]) { $0 }, [])
    let wrong = Locked<[[Int]]>([])
    DispatchQueue.concurrentPerform(iterations: 8) { thread in
      for call in 0..<200 {
        let items = (0..<(call % 4)).map { thread * 1000 + call * 4 + $0 }
        let results = coalescer.run(items) { all in
          usleep(50)
          return all.map { $0 * 2 }
        }
        if results != items.map({ $0 * 2 }) { wrong.withLock { $0.append(items) } }
      }
    }
    XCTAssertEqual(wrong.withLock { $0 }, [])
    XCTAssertLessThan(coalescer.passes, 5 + 8 * 200)
  }
}

extension ParallelTests {
  /// Calls that block until all of them run: as many as the pool's threads all run at
  /// once (libdispatch on Linux would start one more a second), and one more waits
  /// for a free thread.
  func testBlockingPoolRunsAsManyBlockedCallsAsItHasThreads() {
    let pool = Parallel.BlockingPool(threads: 12)
    let inside = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let finished = DispatchGroup()
    for _ in 0..<13 {
      finished.enter()
      pool.run {
        inside.signal()
        release.wait()
        finished.leave()
      }
    }
    for call in 1...12 {
      XCTAssertEqual(inside.wait(timeout: .now() + 5), .success, "call \(call) never ran")
    }
    XCTAssertEqual(inside.wait(timeout: .now() + 0.2), .timedOut, "a 13th thread ran")
    release.signal()  // one call ends; the 13th gets its thread
    XCTAssertEqual(inside.wait(timeout: .now() + 5), .success)
    for _ in 0..<12 { release.signal() }
    XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)
  }
}

/// A value the coalescer tests' threads share.
private final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Value
  init(_ value: Value) { self.value = value }
  func withLock<R>(_ body: (inout Value) -> R) -> R {
    lock.lock()
    defer { lock.unlock() }
    return body(&value)
  }
}
