import ArgumentParser

/// The allowed values of every count option of every command, in one place: no count
/// may make a command loop forever, allocate without bound, or silently do nothing.
/// docs/shell.md lists the same ranges. (`--max-seq-length` depends on the model: the
/// training options check it, 2 up to the model's maximum, as a user error.)
enum Counts {
  /// By option, or by "command option" where a command needs its own range.
  static let ranges: [String: ClosedRange<Int>] = [
    "--batch-size": 1...1_000_000,
    "train --batch-size": 2...4096,  // in-batch negatives need a second pair
    "-k": 1...10_000,
    "--ef": 1...100_000,
    "--limit": 1...1_000_000,
    "--epochs": 1...10_000,
    "route train --epochs": 1...1_000_000,  // a small softmax head: an epoch is cheap
    "--hard-negatives": 0...10,
    "--mini-batch": 1...4096,
    "--mining-depth": 1...10_000,
    "--folds": 1...20,
    "--gate-pool": 10...100_000,
    "--gate-sample": 0...100_000,
    "--lora-rank": 1...256,
    "--reembed-batch-size": 1...1_000_000,
    "--checkpoint-every": 1...1_000_000,
    "--model": 1...1_000_000_000,
    "--model-version": 1...1_000_000_000,
    "--activate": 1...1_000_000_000,
    "--pool": 1...100_000,
    "--vectors": 1...65_536,
  ]

  /// Checks each given value (nil: not given) against its option's range.
  ///
  /// - Throws: `ValidationError` (exit code 2) naming the option, its range and the value.
  static func check(_ command: String, _ values: KeyValuePairs<String, Int?>) throws {
    for case (let option, let value?) in values {
      guard let range = ranges["\(command) \(option)"] ?? ranges[option] else {
        preconditionFailure("no range for \(option)")
      }
      guard range.contains(value) else {
        throw ValidationError(
          "\(option) must be \(range.lowerBound)...\(range.upperBound); it is \(value)")
      }
    }
  }
}
