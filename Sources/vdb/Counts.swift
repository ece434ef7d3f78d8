import ArgumentParser
import VectorDB

/// Checks count options against `CountLimits`. (`--max-seq-length` depends on the
/// model: the training options check it, 2 up to the model's maximum, as a user error.)
enum Counts {
  /// Checks each given value (nil: not given) against its option's range.
  ///
  /// - Throws: `ValidationError` (exit code 2) naming the option, its range and the value.
  static func check(_ command: String, _ values: KeyValuePairs<String, Int?>) throws {
    for case (let option, let value?) in values {
      guard let range = CountLimits.range(option, command: command) else {
        preconditionFailure("no range for \(option)")
      }
      guard range.contains(value) else {
        throw ValidationError(
          "\(option) must be \(range.lowerBound)...\(range.upperBound); it is \(value)")
      }
    }
  }
}
