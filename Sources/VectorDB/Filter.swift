import Foundation
import TextSearch

/// A condition on document metadata, written as JSON (a small subset of MongoDB's
/// query language, as Chroma and others use).
///
///     {"topic": "storage"}                                  equality
///     {"year": {"$gte": 2019, "$lt": 2024}}                 numeric range
///     {"lang": {"$in": ["en", "de"]}}                       one of
///     {"$or": [{"topic": "index"}, {"draft": true}]}        any of
///     {"$and": [{"a": 1}, {"b": {"$ne": 2}}]}               all of
///     {"$not": {"topic": "index"}}                          negation
///     {"author.name": "Ada"}                                dotted path into objects
///     {"tags": {"$exists": true}}                           the field is present
///     {"$text": {"$contains": "error 0x80070005"}}           the text has every word
///
/// Several keys in one object must all hold. A field whose value is an array matches
/// an equality or `$in` when any element does. Comparisons (`$gt`, `$gte`, `$lt`,
/// `$lte`) hold between two numbers or two strings only; a missing field fails every
/// condition except `$ne`, `$nin`, and `$exists: false`.
///
///     let recent = try Filter(json: #"{"year": {"$gte": 2020}}"#)
///     let hits = try collection.query(text: "…", k: 10, filter: recent)
public indirect enum Filter: Equatable, Sendable {
  case all([Filter])
  case any([Filter])
  case not(Filter)
  case field(path: [String], Condition)
  /// The document's text holds every term of this text (as the full-text index's
  /// analyzer makes terms: "Errors" matches "error").
  case text(contains: String)

  /// A condition on one field's value.
  public enum Condition: Equatable, Sendable {
    case equal(JSONValue)
    case notEqual(JSONValue)
    case oneOf([JSONValue])
    case noneOf([JSONValue])
    case greater(JSONValue, orEqual: Bool)
    case less(JSONValue, orEqual: Bool)
    case exists(Bool)
  }

  /// Parses a filter from its JSON text.
  ///
  /// - Throws: `VectorDBError.invalidInput` with source "filter" naming the operator
  ///   or field at fault.
  public init(json: String) throws {
    let value: JSONValue
    do {
      value = try JSONValue(parsing: json, source: "filter")
    } catch VectorDBError.invalidInput(_, _, let reason) {
      // `lang = "en"` is the usual slip: say what a filter looks like.
      throw Filter.error("\(reason); a filter is a JSON object, like {\"lang\": \"en\"}")
    }
    try self.init(value: value)
  }

  /// Builds a filter from a parsed JSON value.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the operator or field at fault.
  public init(value: JSONValue) throws {
    guard case .object(let object) = value else {
      throw Filter.error("a filter is a JSON object, like {\"field\": \"value\"}")
    }
    var parts: [Filter] = []
    for key in object.keys.sorted() {
      let operand = object[key]!
      switch key {
      case "$and", "$or":
        guard case .array(let elements) = operand, !elements.isEmpty else {
          throw Filter.error("\(key) takes a non-empty array of filters")
        }
        let children = try elements.map { try Filter(value: $0) }
        parts.append(key == "$and" ? .all(children) : .any(children))
      case "$not":
        parts.append(.not(try Filter(value: operand)))
      case "$text":
        guard case .object(let condition) = operand, condition.count == 1,
          case .string(let phrase) = condition["$contains"]
        else {
          throw Filter.error("$text takes {\"$contains\": \"words\"}")
        }
        guard !Analyzer.english.terms(phrase).isEmpty else {
          throw Filter.error("$text $contains \"\(phrase.excerpt(40))\" has no searchable words")
        }
        parts.append(.text(contains: phrase))
      case let op where op.hasPrefix("$"):
        throw Filter.error(
          "unknown operator \(op) (expected $and, $or, $not, $text, or a field name)")
      default:
        let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.contains(where: \.isEmpty) else {
          throw Filter.error("bad field name \"\(key)\"")
        }
        parts.append(
          contentsOf: try Filter.conditions(operand, field: key).map { .field(path: path, $0) })
      }
    }
    self = parts.count == 1 ? parts[0] : .all(parts)
  }

  private static func conditions(_ operand: JSONValue, field: String) throws -> [Condition] {
    guard case .object(let object) = operand, object.keys.contains(where: { $0.hasPrefix("$") })
    else {
      return [.equal(operand)]
    }
    return try object.keys.sorted().map { op in
      let value = object[op]!
      switch op {
      case "$eq": return .equal(value)
      case "$ne": return .notEqual(value)
      case "$in", "$nin":
        guard case .array(let values) = value else {
          throw error("\(op) on \"\(field)\" takes an array")
        }
        return op == "$in" ? .oneOf(values) : .noneOf(values)
      case "$gt", "$gte", "$lt", "$lte":
        switch value {
        case .number, .string: break
        default: throw error("\(op) on \"\(field)\" takes a number or a string")
        }
        let orEqual = op.hasSuffix("e")
        return op.hasPrefix("$g")
          ? .greater(value, orEqual: orEqual) : .less(value, orEqual: orEqual)
      case "$exists":
        guard case .bool(let flag) = value else {
          throw error("$exists on \"\(field)\" takes true or false")
        }
        return .exists(flag)
      default:
        throw error(
          "unknown operator \(op) on \"\(field)\" (expected $eq $ne $in $nin $gt $gte $lt $lte $exists)"
        )
      }
    }
  }

  private static func error(_ reason: String) -> VectorDBError {
    .invalidInput(source: "filter", line: nil, reason: reason)
  }

  /// Whether a document with this metadata (and text, for `$text`) passes.
  public func matches(_ metadata: [String: JSONValue], text: String = "") -> Bool {
    switch self {
    case .all(let parts): return parts.allSatisfy { $0.matches(metadata, text: text) }
    case .any(let parts): return parts.contains { $0.matches(metadata, text: text) }
    case .not(let part): return !part.matches(metadata, text: text)
    case .field(let path, let condition):
      return condition.holds(for: Filter.lookup(path, in: metadata))
    case .text(let phrase):
      return Set(Analyzer.english.terms(text)).isSuperset(of: Analyzer.english.terms(phrase))
    }
  }

  static func lookup(_ path: [String], in metadata: [String: JSONValue]) -> JSONValue? {
    var current: JSONValue = .object(metadata)
    for key in path {
      guard case .object(let object) = current, let next = object[key] else { return nil }
      current = next
    }
    return current
  }
}

extension Filter.Condition {
  /// Whether `value` (nil: the field is missing) satisfies the condition.
  func holds(for value: JSONValue?) -> Bool {
    switch self {
    case .exists(let flag): return (value != nil) == flag
    case .notEqual(let target): return !Filter.Condition.equal(target).holds(for: value)
    case .noneOf(let targets): return !Filter.Condition.oneOf(targets).holds(for: value)
    default: break
    }
    guard let value else { return false }
    if case .array(let elements) = value, !isArrayEquality {
      return elements.contains { holds(for: $0) }
    }
    switch self {
    case .equal(let target): return value == target
    case .oneOf(let targets): return targets.contains(value)
    case .greater(let bound, let orEqual):
      guard let order = Filter.Condition.compare(value, bound) else { return false }
      return order > 0 || (orEqual && order == 0)
    case .less(let bound, let orEqual):
      guard let order = Filter.Condition.compare(value, bound) else { return false }
      return order < 0 || (orEqual && order == 0)
    case .exists, .notEqual, .noneOf: return false
    }
  }

  /// An equality whose operand is itself an array compares arrays whole.
  private var isArrayEquality: Bool {
    if case .equal(.array) = self { return true }
    return false
  }

  static func compare(_ a: JSONValue, _ b: JSONValue) -> Int? {
    switch (a, b) {
    case (.number(let x), .number(let y)): return x < y ? -1 : (x > y ? 1 : 0)
    case (.string(let x), .string(let y)): return x < y ? -1 : (x > y ? 1 : 0)
    default: return nil
    }
  }
}

extension Filter: CustomStringConvertible {
  /// The filter as canonical JSON (operators spelled out), e.g. for the query log.
  public var jsonValue: JSONValue {
    switch self {
    case .all(let parts): return ["$and": .array(parts.map(\.jsonValue))]
    case .any(let parts): return ["$or": .array(parts.map(\.jsonValue))]
    case .not(let part): return ["$not": part.jsonValue]
    case .text(let phrase): return ["$text": ["$contains": .string(phrase)]]
    case .field(let path, let condition):
      let operand: JSONValue
      switch condition {
      case .equal(let value): operand = ["$eq": value]
      case .notEqual(let value): operand = ["$ne": value]
      case .oneOf(let values): operand = ["$in": .array(values)]
      case .noneOf(let values): operand = ["$nin": .array(values)]
      case .greater(let value, let orEqual): operand = .object([orEqual ? "$gte" : "$gt": value])
      case .less(let value, let orEqual): operand = .object([orEqual ? "$lte" : "$lt": value])
      case .exists(let flag): operand = ["$exists": .bool(flag)]
      }
      return .object([path.joined(separator: "."): operand])
    }
  }

  /// The filter as compact JSON text, in the form `Filter(json:)` reads.
  public var description: String { jsonValue.jsonString }
}
