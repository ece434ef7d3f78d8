import Tensor

/// Splits examples into batches in which no value appears twice, as sentence-transformers'
/// `NoDuplicatesBatchSampler` does: with in-batch negatives, a repeated query or document
/// would be its own negative.
///
/// Each epoch shuffles the examples (seeded with `seed + epoch`) and makes passes over the ones
/// not yet used: an example joins the batch being filled unless one of its values (its query
/// and document keys) is already in it, in which case it waits for a later batch. A batch is
/// emitted when full.
///
/// An epoch is ⌈examples / batch size⌉ batches, the number sentence-transformers' trainer
/// takes from its sampler. When many examples share a value (a query with many relevant
/// documents), the passes end in short batches — a query's last few pairs, one by one — that
/// would add steps with almost no in-batch negatives; the examples past that count sit this
/// epoch out (the next one shuffles anew).
///
/// ```swift
/// let sampler = NoDuplicatesBatchSampler(batchSize: 32, seed: 42)
/// let batches = sampler.batches(keys: examples.map { [$0.query] + $0.documents }, epoch: 0)
/// ```
public struct NoDuplicatesBatchSampler: Sendable, Equatable, Codable {
  public var batchSize: Int
  public var seed: UInt64

  public init(batchSize: Int, seed: UInt64) {
    precondition(batchSize > 0, "batch size must be positive")
    self.batchSize = batchSize
    self.seed = seed
  }

  /// The batches of one epoch, as indices into `keys` (one array of values per example).
  public func batches<Key: Hashable>(keys: [[Key]], epoch: Int) -> [[Int]] {
    var random = Xoshiro256(seed: seed &+ UInt64(epoch))
    var remaining = Array(keys.indices)
    remaining.shuffle(using: &random)
    var batches: [[Int]] = []
    let count = (keys.count + batchSize - 1) / batchSize
    while !remaining.isEmpty && batches.count < count {
      var batch: [Int] = []
      var seen = Set<Key>()
      var deferred: [Int] = []
      var position = 0
      while position < remaining.count && batch.count < batchSize {
        let index = remaining[position]
        position += 1
        if keys[index].contains(where: seen.contains) {
          deferred.append(index)
          continue
        }
        batch.append(index)
        seen.formUnion(keys[index])
      }
      batches.append(batch)
      remaining = deferred + remaining[position...]
    }
    return batches
  }
}
