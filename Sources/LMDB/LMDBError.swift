import CLMDB

/// An error returned by LMDB, with the operation and table it came from.
///
/// The `description` reads like a sentence a user can act on:
///
///     put into table "docs": MDB_MAP_FULL: Environment mapsize limit reached
public struct LMDBError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The LMDB return code (`MDB_NOTFOUND`, `MDB_MAP_FULL`, …) or an `errno` value.
  public var code: Int32
  /// What was being done: "open environment", "put", "begin write transaction", …
  public var operation: String
  /// The table involved, when there is one.
  public var table: String?

  public init(code: Int32, operation: String, table: String? = nil) {
    self.code = code
    self.operation = operation
    self.table = table
  }

  /// LMDB's own text for `code` (it covers `errno` values too).
  public var reason: String { String(cString: mdb_strerror(code)) }

  public var description: String {
    let place = table.map { " table \"\($0)\"" } ?? ""
    return "\(operation)\(place): \(reason)"
  }

  /// The map is full: the environment must grow before the write is retried.
  public var isMapFull: Bool { code == MDB_MAP_FULL }
  /// Another process grew the map; adopt its size and retry.
  public var isMapResized: Bool { code == MDB_MAP_RESIZED }
  /// A page that fails LMDB's own checks: the file is damaged.
  public var isCorrupted: Bool { code == MDB_CORRUPTED || code == MDB_PAGE_NOTFOUND }
  /// The file is not an LMDB environment, or its version is not ours.
  public var isInvalidFile: Bool { code == MDB_INVALID || code == MDB_VERSION_MISMATCH }
}

/// Turns an LMDB return code into a thrown `LMDBError`.
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String, table: String? = nil) throws {
  if code != MDB_SUCCESS {
    throw LMDBError(code: code, operation: operation(), table: table)
  }
}
