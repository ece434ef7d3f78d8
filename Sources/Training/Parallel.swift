import Dispatch
import Foundation

/// How many threads the elementwise loops of the trainer use (the BLAS calls thread themselves).
/// Defaults to the number of active processors.
nonisolated(unsafe) public var trainingThreadCount = ProcessInfo.processInfo.activeProcessorCount

/// How many chunks to split `count` items into: one per thread, but none smaller than
/// `minimumPerChunk` (a thread hop costs more than a few thousand multiply-adds).
@inline(__always)
func chunkCount(_ count: Int, minimumPerChunk: Int) -> Int {
  max(1, min(trainingThreadCount, count / max(1, minimumPerChunk)))
}

/// Runs `body(chunk, range)` for `chunks` contiguous slices of `0..<count`, concurrently.
@inline(__always)
func parallelChunks(_ count: Int, chunks: Int, _ body: (_ chunk: Int, Range<Int>) -> Void) {
  if chunks <= 1 {
    if count > 0 { body(0, 0..<count) }
    return
  }
  DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
    let start = count * chunk / chunks
    let end = count * (chunk + 1) / chunks
    if start < end { body(chunk, start..<end) }
  }
}

/// Runs `body(range)` over `count` items split into at most one chunk per thread.
@inline(__always)
func parallelChunks(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
  parallelChunks(count, chunks: chunkCount(count, minimumPerChunk: minimumPerChunk)) { body($1) }
}
