// The `--json` output of the benchmarks: one convention (sorted snake_case keys, `null`
// for a figure not measured).
import Foundation

/// Prints `report` as pretty-printed JSON with sorted keys; NaN numbers (figures not
/// measured) become `null`, as JSON has no NaN.
///
/// - Throws: what `JSONSerialization` throws for a value that is not JSON (a programming
///   error in the benchmark).
public func printJSON(_ report: [String: Any]) throws {
  func safe(_ value: Any) -> Any {
    switch value {
    case let number as Double where number.isNaN: return NSNull()
    case let number as Float where number.isNaN: return NSNull()
    case let dictionary as [String: Any]: return dictionary.mapValues(safe)
    case let array as [Any]: return array.map(safe)
    default: return value
    }
  }
  let data = try JSONSerialization.data(
    withJSONObject: safe(report), options: [.sortedKeys, .prettyPrinted])
  print(String(decoding: data, as: UTF8.self))
}
