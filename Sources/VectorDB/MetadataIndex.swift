import Foundation
import LMDB

/// A secondary index over document metadata, so that a selective filter finds its
/// documents without reading every one.
///
/// Every scalar leaf of a document's metadata (nested objects by dotted path, array
/// elements under their array's path) gets one key in `metaindex`:
///
///     collection id (UInt32 BE) ++ path (UInt16 BE length ++ UTF-8) ++ value ++ row id (UInt32 BE)
///
/// (`MetadataIndexKey`)
///
/// where value is `0x01` false, `0x02` true, `0x03` + 8 bytes of an order-preserving
/// encoding of a number, or `0x04` + UInt16 BE length + UTF-8 of a string. Numbers
/// sort numerically, so a range is one key range.
///
/// A key holds at most 511 bytes (LMDB's limit), so a string is indexed by its first
/// `maxStringBytes` bytes, fewer under a long path (what is left of the key): a match
/// on a cut string is checked against the documents. A path so long that not even a
/// number fits after it is not indexed; filters on it read the documents.
///
/// ⚠ The cut lengths are part of the format: a change makes old keys unfindable.
struct MetadataIndex {
  let table: Table
  let collection: UInt32

  /// Adds (or, with `remove`, deletes) the keys of one document's metadata.
  func update(row: UInt32, metadata: [String: JSONValue], remove: Bool, in txn: WriteTransaction)
    throws
  {
    for (path, value) in MetadataIndex.leaves(metadata) {
      guard let encoded = MetadataIndex.encode(value, at: path) else { continue }
      let key = MetadataIndexKey(
        collection: collection, field: path, value: encoded.bytes, row: row)
      if remove {
        try txn.delete(table, key: key)
      } else {
        try txn.put(table, key: key, value: [UInt8]())
      }
    }
  }

  /// The rows matching `filter`, computed from the index when its form allows:
  /// `exact` tells whether the rows match exactly (true) or are a superset that must
  /// still be checked against the filter (false). `nil`: the index cannot answer.
  func rows(matching filter: Filter, in txn: Transaction) throws -> (
    rows: Set<UInt32>, exact: Bool
  )? {
    switch filter {
    case .field(let path, let condition):
      let field = path.joined(separator: ".")
      switch condition {
      case .equal(let value):
        guard let encoded = MetadataIndex.encode(value, at: field) else { return nil }
        return (
          try scan(field, from: encoded.bytes, through: encoded.bytes, in: txn), encoded.whole
        )
      case .oneOf(let values):
        var rows = Set<UInt32>()
        var exact = true
        for value in values {
          guard let encoded = MetadataIndex.encode(value, at: field) else { return nil }
          rows.formUnion(try scan(field, from: encoded.bytes, through: encoded.bytes, in: txn))
          exact = exact && encoded.whole
        }
        return (rows, exact)
      case .greater(.number(let bound), let orEqual):
        guard let low = MetadataIndex.encode(.number(bound), at: field)?.bytes else { return nil }
        var rows = try scan(
          field, from: low, through: [0x03] + [UInt8](repeating: 0xFF, count: 8), in: txn)
        if !orEqual { rows.subtract(try scan(field, from: low, through: low, in: txn)) }
        return (rows, true)
      case .less(.number(let bound), let orEqual):
        guard let high = MetadataIndex.encode(.number(bound), at: field)?.bytes else { return nil }
        var rows = try scan(field, from: [0x03], through: high, in: txn)
        if !orEqual { rows.subtract(try scan(field, from: high, through: high, in: txn)) }
        return (rows, true)
      default:
        return nil
      }
    case .all(let parts):
      var result: (rows: Set<UInt32>, exact: Bool)?
      var allExact = true
      for part in parts {
        guard let found = try rows(matching: part, in: txn) else {
          allExact = false
          continue
        }
        allExact = allExact && found.exact
        result = result.map { ($0.rows.intersection(found.rows), false) } ?? found
      }
      return result.map { ($0.rows, allExact) }
    case .any(let parts):
      var rows = Set<UInt32>()
      var exact = true
      for part in parts {
        guard let found = try self.rows(matching: part, in: txn) else { return nil }
        rows.formUnion(found.rows)
        exact = exact && found.exact
      }
      return (rows, exact)
    case .not, .text:
      return nil
    }
  }

  /// Rows whose value at `field` encodes between `low` and `high` (inclusive prefixes).
  private func scan(
    _ field: String, from low: [UInt8], through high: [UInt8], in txn: Transaction
  ) throws -> Set<UInt32> {
    let keys = MetadataIndexKey.field(field, of: collection)
    var rows = Set<UInt32>()
    try txn.forEach(in: table, from: keys.prefix.bytes + low) { key, _ in
      guard keys.contains(key), let (value, row) = MetadataIndexKey.decode(key, in: keys) else {
        return false
      }
      guard !high.lexicographicallyPrecedes(value.prefix(high.count)) else { return false }
      rows.insert(row)
      return true
    }
    return rows
  }

  /// (dotted path, scalar) for every scalar leaf; array elements share their path.
  static func leaves(_ metadata: [String: JSONValue]) -> [(String, JSONValue)] {
    var result: [(String, JSONValue)] = []
    func walk(_ value: JSONValue, _ path: String) {
      switch value {
      case .object(let object):
        for (key, child) in object { walk(child, path.isEmpty ? key : path + "." + key) }
      case .array(let elements): for element in elements { walk(element, path) }
      default: result.append((path, value))
      }
    }
    walk(.object(metadata), "")
    return result
  }

  /// The longest string prefix a key holds.
  static let maxStringBytes = 400
  /// The longest key LMDB stores.
  static let maxKeyBytes = 511

  /// The order-preserving bytes of a scalar at `field`, and whether they are all of it
  /// (false: a string cut to what the key holds); nil for null, arrays and objects, and
  /// for any value when the path leaves no room for a number.
  static func encode(_ value: JSONValue, at field: String) -> (bytes: [UInt8], whole: Bool)? {
    // Collection id, the path's length and the row id, besides the path and the value.
    let room = maxKeyBytes - 10 - field.utf8.count
    guard room >= 9 else { return nil }
    switch value {
    case .bool(let flag): return ([flag ? 0x02 : 0x01], true)
    case .number(let number):
      // Flip the sign bit of positives and every bit of negatives: byte order = numeric order.
      let bits = (number == 0 ? 0 : number).bitPattern
      let ordered = bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
      return ([0x03] + withUnsafeBytes(of: ordered.bigEndian) { Array($0) }, true)
    case .string(let string):
      let cut = min(maxStringBytes, room - 3)
      let utf8 = Array(string.utf8.prefix(cut))
      let whole = utf8.count == string.utf8.count
      return ([0x04, UInt8(utf8.count >> 8), UInt8(utf8.count & 0xFF)] + utf8, whole)
    default: return nil
    }
  }
}
