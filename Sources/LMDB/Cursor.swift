import CLMDB
import Foundation

/// A position in a table, for ordered scans. Obtained from `Transaction.withCursor`
/// and valid only inside that closure. Each move returns the entry it lands on, or
/// `nil` past either end.
public final class Cursor {
  public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

  let handle: OpaquePointer
  let table: Table

  init(handle: OpaquePointer, table: Table) {
    self.handle = handle
    self.table = table
  }

  public func first() throws -> Entry? { try move(MDB_FIRST) }
  public func last() throws -> Entry? { try move(MDB_LAST) }
  public func next() throws -> Entry? { try move(MDB_NEXT) }
  public func previous() throws -> Entry? { try move(MDB_PREV) }
  public func current() throws -> Entry? { try move(MDB_GET_CURRENT) }

  /// Moves to the first entry whose key is ≥ `key`.
  public func seek(atLeast key: some LMDBKey) throws -> Entry? {
    try key.withKeyBytes { keyBytes in
      var k = MDB_val(
        mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
      var v = MDB_val()
      return try result(mdb_cursor_get(handle, &k, &v, MDB_SET_RANGE), &k, &v, "seek")
    }
  }

  /// Deletes the entry at the cursor (write transactions only); the cursor then
  /// stands on the following entry, which `current()` returns.
  public func deleteCurrent() throws {
    try check(mdb_cursor_del(handle, 0), "delete at cursor", table: table.name)
  }

  private func move(_ op: MDB_cursor_op) throws -> Entry? {
    var k = MDB_val()
    var v = MDB_val()
    return try result(mdb_cursor_get(handle, &k, &v, op), &k, &v, "move cursor")
  }

  private func result(
    _ code: Int32, _ k: inout MDB_val, _ v: inout MDB_val, _ operation: String
  ) throws -> Entry? {
    // MDB_GET_CURRENT after deleting the last entry reports EINVAL: past the end.
    if code == MDB_NOTFOUND || code == EINVAL { return nil }
    try check(code, operation, table: table.name)
    return (
      UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
      UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    )
  }
}
