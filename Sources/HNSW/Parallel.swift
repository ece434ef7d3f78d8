import Dispatch

/// Runs `body(index, worker)` for every index in `0..<count` on up to `threads` threads
/// (worker `w` takes indices `w, w + threads, …`), and rethrows the first error.
/// With one thread it is a plain loop on the caller's thread.
@inlinable
func forEachInParallel(
  _ count: Int, threads: Int, _ body: (_ index: Int, _ worker: Int) throws -> Void
) throws {
  let workers = max(1, min(threads, count))
  if workers == 1 {
    for index in 0..<count { try body(index, 0) }
    return
  }
  var errors = [(any Error)?](repeating: nil, count: workers)
  errors.withUnsafeMutableBufferPointer { errors in
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
      do {
        var index = worker
        while index < count {
          try body(index, worker)
          index += workers
        }
      } catch {
        errors[worker] = error
      }
    }
  }
  for case let error? in errors { throw error }
}
