import Dispatch
import Foundation

/// Running work on all cores.
///
/// ```swift
/// let parts = Parallel.split(1000, into: Parallel.coreCount)   // [0..<500, 500..<1000]
/// Parallel.forEach(parts.count) { i in process(parts[i]) }
/// ```
public enum Parallel {
  /// The number of cores this process may use.
  public static let coreCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

  /// Calls `body(i)` for every `i` in `0..<count`, spread over the cores, and returns
  /// when all calls have finished. One iteration runs inline, without a thread hop.
  public static func forEach(_ count: Int, _ body: (Int) -> Void) {
    switch count {
    case ..<1: return
    case 1: body(0)
    default: DispatchQueue.concurrentPerform(iterations: count, execute: body)
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
}
