import Dispatch

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Runs `body(index, worker)` for every index in `0..<count` on up to `threads` threads,
/// and rethrows the first error. With one thread it is a plain loop on the caller's
/// thread.
///
/// Workers take the next index from a shared counter, so when the machine is busy and
/// one worker is descheduled, the other carries on with the rest instead of leaving
/// its share waiting at the end of the phase. The items are coarse (a graph search
/// each), so a mutex per item costs nothing measurable.
@inlinable
func forEachInParallel(
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
