// What the benchmarks' command lines share, beyond swift-argument-parser itself.
import ArgumentParser

/// A comma-separated list as one option value (`--efs 16,32,64`, `--precision
/// float32,int8`): every item must parse as `Element`, or the option is refused.
public struct CommaSeparated<Element: ExpressibleByArgument>: ExpressibleByArgument {
  /// The items, in the order given.
  public var values: [Element]

  /// A list of `values` (an option's default).
  public init(_ values: [Element]) { self.values = values }

  public init?(argument: String) {
    let items = argument.split(separator: ",", omittingEmptySubsequences: false).map {
      Element(argument: String($0))
    }
    guard !items.contains(where: { $0 == nil }) else { return nil }
    values = items.compactMap { $0 }
  }

  public var defaultValueDescription: String {
    values.map { "\($0)" }.joined(separator: ",")
  }

  public static var allValueStrings: [String] { Element.allValueStrings }
}
