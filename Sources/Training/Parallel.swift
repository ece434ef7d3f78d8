import Tensor

/// How many chunks to split `count` items into: one per core, but none smaller than
/// `minimumPerChunk` (a thread hop costs more than a few thousand multiply-adds).
@inline(__always)
func chunkCount(_ count: Int, minimumPerChunk: Int) -> Int {
  max(1, min(Parallel.coreCount, count / max(1, minimumPerChunk)))
}

/// Runs `body(chunk, range)` for at most `chunks` contiguous slices of `0..<count`,
/// concurrently; `chunk` numbers the slices from 0.
@inline(__always)
func parallelChunks(_ count: Int, chunks: Int, _ body: (_ chunk: Int, Range<Int>) -> Void) {
  let ranges = Parallel.split(count, into: chunks)
  Parallel.forEach(ranges.count) { body($0, ranges[$0]) }
}

/// Runs `body(range)` over `count` items split into at most one chunk per core.
@inline(__always)
func parallelChunks(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
  parallelChunks(count, chunks: chunkCount(count, minimumPerChunk: minimumPerChunk)) { body($1) }
}
