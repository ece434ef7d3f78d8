import CKernels
import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Running work on all cores: the project's one home for threading helpers.
///
/// ```swift
/// let parts = Parallel.split(1000, into: Parallel.coreCount)   // [0..<500, 500..<1000]
/// Parallel.forEach(parts.count) { i in process(parts[i]) }
/// Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in normalize(rows: range) }
/// try Parallel.forEachDynamically(queries.count, threads: 4) { i, worker in search(i, worker) }
/// ```
public enum Parallel {
  /// The number of cores this process may use.
  public static let coreCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

  /// Calls `body(i)` for every `i` in `0..<count`, spread over the cores, and returns
  /// when all calls have finished. One iteration runs inline, without a thread hop.
  ///
  /// The calling thread takes iterations too, beside worker threads that stay awake for
  /// a moment after each call (CKernels' workers.c): the steps of one query's encoder
  /// pass are each too short to pay for waking a sleeping thread. While another thread's
  /// call holds those workers (or from inside `body`), libdispatch runs the iterations.
  public static func forEach(_ count: Int, _ body: (Int) -> Void) {
    switch count {
    case ..<1: return
    case 1: body(0)
    default:
      if coreCount > 1, count <= Int(Int32.max), onWorkers(count, body) { return }
      DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
  }

  /// Runs `forEach`'s iterations on the calling thread and the awake workers; false
  /// (nothing run) when they are busy with another call.
  private static func onWorkers(_ count: Int, _ body: (Int) -> Void) -> Bool {
    withoutActuallyEscaping(body) { body in
      var body = body
      return withUnsafeMutablePointer(to: &body) { pointer in
        vdb_workers_run(
          Int32(count), Int32(coreCount - 1),
          { context, index in
            context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(index))
          }, pointer) != 0
      }
    }
  }

  /// Splits `0..<count` into at most `parts` contiguous, non-empty ranges of nearly
  /// equal size. Inner boundaries fall on multiples of `multipleOf` (SIMD- and
  /// cache-friendly column slices), so fewer ranges come back when `count` is small.
  public static func split(_ count: Int, into parts: Int, multipleOf unit: Int = 1) -> [Range<Int>]
  {
    precondition(unit > 0, "split: unit must be positive")
    let units = (count + unit - 1) / unit
    let parts = max(1, min(parts, units))
    var ranges: [Range<Int>] = []
    ranges.reserveCapacity(parts)
    var start = 0
    for part in 0..<parts {
      let end = part == parts - 1 ? count : min(count, units * (part + 1) / parts * unit)
      if end > start { ranges.append(start..<end) }
      start = end
    }
    return ranges
  }

  /// How many chunks to split `count` items into: one per core, but none smaller than
  /// `minimumPerChunk` (a thread hop costs more than a few thousand multiply-adds).
  @inline(__always)
  package static func chunkCount(_ count: Int, minimumPerChunk: Int) -> Int {
    max(1, min(coreCount, count / max(1, minimumPerChunk)))
  }

  /// Runs `body(chunk, range)` for at most `chunks` contiguous slices of `0..<count`,
  /// concurrently; `chunk` numbers the slices from 0.
  @inline(__always)
  package static func forEachChunk(
    _ count: Int, chunks: Int, _ body: (_ chunk: Int, Range<Int>) -> Void
  ) {
    let ranges = split(count, into: chunks)
    forEach(ranges.count) { body($0, ranges[$0]) }
  }

  /// Runs `body(range)` over `count` items split into at most one chunk per core.
  @inline(__always)
  package static func forEachChunk(
    _ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void
  ) {
    forEachChunk(count, chunks: chunkCount(count, minimumPerChunk: minimumPerChunk)) { body($1) }
  }

  /// As the throwing `forEachDynamically` below, for a body that cannot fail.
  public static func forEachDynamically(
    _ count: Int, threads: Int, _ body: (_ index: Int, _ worker: Int) -> Void
  ) {
    withoutActuallyEscaping(body) { body in
      let throwing: (Int, Int) throws -> Void = body  // selects the throwing overload
      try! forEachDynamically(count, threads: threads, throwing)
    }
  }

  /// Runs two independent pieces of work at once (one on another core where there is one)
  /// and returns both results; when both fail, `first`'s error is the one thrown.
  public static func both<First, Second>(
    _ first: () throws -> First, _ second: () throws -> Second
  ) throws -> (First, Second) {
    var firstResult: Result<First, any Error>?
    var secondResult: Result<Second, any Error>?
    forEach(coreCount > 1 ? 2 : 1) { part in
      if part == 0 { firstResult = Result(catching: first) }
      if part == 1 || coreCount == 1 { secondResult = Result(catching: second) }
    }
    return (try firstResult!.get(), try secondResult!.get())
  }

  /// Runs `body(index, worker)` for every index in `0..<count` on up to `threads` threads,
  /// and rethrows the first error. With one thread it is a plain loop on the caller's
  /// thread.
  ///
  /// Workers take the next index from a shared counter, so when the machine is busy and
  /// one worker is descheduled, the other carries on with the rest instead of leaving
  /// its share waiting at the end of the phase. For coarse items (a graph search each),
  /// where a mutex per item costs nothing measurable.
  @inlinable
  public static func forEachDynamically(
    _ count: Int, threads: Int, _ body: (_ index: Int, _ worker: Int) throws -> Void
  ) throws {
    let workers = max(1, min(threads, count))
    if workers == 1 {
      for index in 0..<count { try body(index, 0) }
      return
    }
    let counter = WorkCounter(count)
    var errors = [(any Error)?](repeating: nil, count: workers)
    errors.withUnsafeMutableBufferPointer { errors in
      DispatchQueue.concurrentPerform(iterations: workers) { worker in
        do {
          while let index = counter.next() { try body(index, worker) }
        } catch {
          errors[worker] = error
          counter.stop()
        }
      }
    }
    for case let error? in errors { throw error }
  }
}

/// Hands out `0..<count` one index at a time to any number of threads.
@usableFromInline
final class WorkCounter: @unchecked Sendable {
  private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private var nextIndex = 0
  private var count: Int

  @usableFromInline
  init(_ count: Int) {
    self.count = count
    pthread_mutex_init(lock, nil)
  }

  deinit {
    pthread_mutex_destroy(lock)
    lock.deallocate()
  }

  /// The next index, or nil when all are handed out (or after `stop`).
  @usableFromInline
  func next() -> Int? {
    pthread_mutex_lock(lock)
    defer { pthread_mutex_unlock(lock) }
    guard nextIndex < count else { return nil }
    nextIndex += 1
    return nextIndex - 1
  }

  /// Hands out no more indices (after an error).
  @usableFromInline
  func stop() {
    pthread_mutex_lock(lock)
    count = 0
    pthread_mutex_unlock(lock)
  }
}

extension Parallel {
  /// Runs the items of concurrent calls in shared passes: up to `concurrentPasses` passes
  /// run at once, and a call made while that many run waits, then goes into the next pass
  /// together with every call that arrived meanwhile. A call never waits for company:
  /// with no more callers at a time than `concurrentPasses`, each runs at once, alone, as
  /// if there were no coalescer; more see fewer, larger passes. What it is for: an
  /// encoder's pass over several short texts costs less than as many passes of one
  /// (docs/server.md, "Queries share encoder passes").
  ///
  /// ```swift
  /// let coalescer = Parallel.Coalescer<String, [Float]>(concurrentPasses: 2)
  /// // on any thread; `pass` gets this call's texts and those of the calls waiting with it
  /// let vectors = coalescer.run(texts) { all in encoder.embed(all) }
  /// ```
  public final class Coalescer<Item, Result>: @unchecked Sendable {
    private final class Call {
      let items: [Item]
      var results: [Result]?
      init(_ items: [Item]) { self.items = items }
    }

    /// How many passes may run at once.
    public let concurrentPasses: Int
    private let condition = NSCondition()
    private var waiting: [Call] = []
    private var running = 0
    private var passCount = 0

    public init(concurrentPasses: Int = 1) {
      self.concurrentPasses = max(1, concurrentPasses)
    }

    /// How many passes have run (one per call when no call ever waited).
    public var passes: Int { condition.withLock { passCount } }

    /// How many calls are waiting for a pass.
    public var waitingCalls: Int { condition.withLock { waiting.count } }

    /// One result per item of `items`, in order, computed by one call of `pass` over the
    /// items of this call and of the calls waiting with it, in their order.
    ///
    /// Whichever waiting call finds a pass free runs the next one with its own `pass`, so
    /// every call of one coalescer must give the same function. `pass` must return one
    /// result per item, in order (a precondition).
    public func run(_ items: [Item], pass: ([Item]) -> [Result]) -> [Result] {
      let call = Call(items)
      condition.lock()
      defer { condition.unlock() }
      waiting.append(call)
      while call.results == nil {
        guard running < concurrentPasses, !waiting.isEmpty else {
          condition.wait()
          continue
        }
        running += 1
        passCount += 1
        let calls = waiting
        waiting.removeAll()
        condition.unlock()
        let results = pass(calls.flatMap(\.items))
        condition.lock()
        precondition(results.count == calls.reduce(0) { $0 + $1.items.count })
        var offset = 0
        for member in calls {
          member.results = Array(results[offset..<offset + member.items.count])
          offset += member.items.count
        }
        running -= 1
        condition.broadcast()
      }
      return call.results!
    }
  }
}

extension Parallel {
  /// Threads for calls that block (a disk read, a commit's fsync, a lock, an encoder
  /// pass), taking closures in order, up to `threads` at a time: where async code sends
  /// its blocking calls, off Swift's cooperative pool (one thread a core, which a blocked
  /// call would hold). Not libdispatch: on Linux it adds a thread for blocked work about
  /// once a second, so sixteen calls that wait for one another (as queries waiting to
  /// share an encoder pass do) would take sixteen seconds to all be running. Threads
  /// start when first needed and then stay, and keep their pool alive: a pool lives as
  /// long as the process once it has run something.
  ///
  /// ```swift
  /// Parallel.BlockingPool.shared.run { continuation.resume(returning: readWholeFile(path)) }
  /// ```
  public final class BlockingPool: @unchecked Sendable {
    /// The pool `Database.run` uses: 16 threads, or 4 a core on larger machines.
    public static let shared = BlockingPool(threads: max(16, 4 * coreCount))

    /// The most threads the pool runs.
    public let threads: Int
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var started = 0
    private var idle = 0

    public init(threads: Int) {
      self.threads = max(1, threads)
    }

    /// Runs `work` on one of the pool's threads, at once if one is idle or may start,
    /// else when one is free.
    public func run(_ work: @escaping () -> Void) {
      condition.lock()
      defer { condition.unlock() }
      queue.append(work)
      if queue.count > idle && started < threads {
        started += 1
        let thread = Thread { self.serve() }
        thread.name = "vdb-blocking"
        thread.start()
      } else {
        condition.signal()
      }
    }

    private func serve() {
      condition.lock()
      while true {
        while queue.isEmpty {
          idle += 1
          condition.wait()
          idle -= 1
        }
        let work = queue.removeFirst()
        condition.unlock()
        work()
        condition.lock()
      }
    }
  }
}
