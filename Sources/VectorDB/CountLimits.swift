/// The allowed values of every count a command or request takes, in one place: no
/// count may make an operation loop forever, allocate without bound, or silently do
/// nothing. The shell checks its options against it (exit 2), `vdb serve` its request
/// fields (400); docs/shell.md lists the same ranges.
package enum CountLimits {
  /// By option, or by "command option" where a command needs its own range.
  package static let ranges: [String: ClosedRange<Int>] = [
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
    "--lora-epochs": 1...100,
    "--reembed-batch-size": 1...1_000_000,
    "--checkpoint-every": 1...1_000_000,
    "--model": 1...1_000_000_000,
    "--model-version": 1...1_000_000_000,
    "--activate": 1...1_000_000_000,
    "--pool": 1...100_000,
    "--vectors": 1...65_536,
    "--port": 0...65_535,
    "--max-body-mib": 1...4096,
    "--idle-timeout": 1...86_400,
    "--max-entries": 1...1_000_000_000_000,  // log retention: a cap, not an allocation
    "--first-id": 0...1_000_000_000_000_000,  // vector rows' ids: far from Int's end
  ]

  /// The range of `option` ("-k", "--ef", …), or of "command option" where a command
  /// has its own.
  package static func range(_ option: String, command: String? = nil) -> ClosedRange<Int>? {
    command.flatMap { ranges["\($0) \(option)"] } ?? ranges[option]
  }
}
