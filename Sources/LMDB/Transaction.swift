import CLMDB
import Foundation

/// A read transaction: a consistent snapshot of the environment.
///
/// Handed to the closure of `Environment.read` (and, as a `WriteTransaction`, of
/// `Environment.write`). Do not keep it, or any bytes it returns, past the closure.
public class Transaction {
  let handle: OpaquePointer
  let environment: Environment
  var isOpen = true

  init(handle: OpaquePointer, environment: Environment) {
    self.handle = handle
    self.environment = environment
  }

  /// The snapshot's transaction id: it changes exactly when a write commits, so equal
  /// ids mean equal contents (used to validate caches of pointers into the map).
  public var id: Int { Int(mdb_txn_id(handle)) }

  /// The value stored under `key`, read in place from the memory map (no copy), or
  /// `nil`. Valid until the transaction ends. LMDB aligns values to 2 bytes only:
  /// read wider types with `loadUnaligned`.
  ///
  /// - Throws: `LMDBError` for anything but a missing key (e.g. `MDB_BAD_TXN`).
  public final func get(_ table: Table, key: some LMDBKey) throws -> UnsafeRawBufferPointer? {
    try key.withKeyBytes { keyBytes in
      var k = MDB_val(
        mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
      var v = MDB_val()
      let code = mdb_get(handle, table.dbi, &k, &v)
      if code == MDB_NOTFOUND { return nil }
      try check(code, "get", table: table.name)
      return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }
  }

  /// The number of entries in `table`.
  public final func count(_ table: Table) throws -> Int {
    var stat = MDB_stat()
    try check(mdb_stat(handle, table.dbi, &stat), "stat", table: table.name)
    return stat.ms_entries
  }

  /// Bytes of pages that `table` uses (branch, leaf and overflow pages).
  public final func byteSize(_ table: Table) throws -> Int {
    var stat = MDB_stat()
    try check(mdb_stat(handle, table.dbi, &stat), "stat", table: table.name)
    return Int(stat.ms_psize) * (stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages)
  }

  /// Calls `body` for each entry of `table` in key order, starting at the first key
  /// ≥ `start` (or the first key), until `body` returns `false`.
  ///
  ///     try txn.forEach(in: docs, from: prefix) { key, value in
  ///       guard key.starts(with: prefix.bytes) else { return false }
  ///       …
  ///       return true
  ///     }
  public final func forEach(
    in table: Table, from start: (some LMDBKey)? = [UInt8]?.none,
    _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    try withCursor(table) { cursor in
      var entry = try start.map { try cursor.seek(atLeast: $0) } ?? cursor.first()
      while let (key, value) = entry {
        guard try body(key, value) else { return }
        entry = try cursor.next()
      }
    }
  }

  /// Runs `body` with a cursor over `table`; the cursor is closed when `body` returns.
  public final func withCursor<R>(_ table: Table, _ body: (Cursor) throws -> R) throws -> R {
    var cursorHandle: OpaquePointer?
    try check(mdb_cursor_open(handle, table.dbi, &cursorHandle), "open cursor", table: table.name)
    let cursor = Cursor(handle: cursorHandle!, table: table)
    defer { mdb_cursor_close(cursorHandle) }
    return try body(cursor)
  }

  /// Runs `body` with `count` independent cursors over `table` (a merge of several
  /// key ranges, such as a search over many terms' postings); all are closed after.
  public final func withCursors<R>(_ table: Table, count: Int, _ body: ([Cursor]) throws -> R)
    throws -> R
  {
    var cursors: [Cursor] = []
    defer { for cursor in cursors { mdb_cursor_close(cursor.handle) } }
    for _ in 0..<count {
      var cursorHandle: OpaquePointer?
      try check(mdb_cursor_open(handle, table.dbi, &cursorHandle), "open cursor", table: table.name)
      cursors.append(Cursor(handle: cursorHandle!, table: table))
    }
    return try body(cursors)
  }
}

/// A write transaction: everything a `Transaction` reads, plus writes. All its writes
/// become visible together when `Environment.write`'s closure returns, or not at all.
public final class WriteTransaction: Transaction {
  var sawMapFull = false

  /// Stores `value` under `key`, replacing any value there.
  ///
  /// - Throws: `MDB_MAP_FULL` (handled by `Environment.write`, which grows the map and
  ///   retries), `MDB_BAD_VALSIZE` for an empty or over-long key (max 511 bytes).
  public func put(_ table: Table, key: some LMDBKey, value: UnsafeRawBufferPointer) throws {
    try key.withKeyBytes { keyBytes in
      var k = MDB_val(
        mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
      var v = MDB_val(
        mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
      try record(mdb_put(handle, table.dbi, &k, &v, 0), "put", table)
    }
  }

  /// Stores the bytes of `value` under `key` (`[UInt8]`, `Data`, …).
  public func put(_ table: Table, key: some LMDBKey, value: some ContiguousBytes) throws {
    try value.withUnsafeBytes { try put(table, key: key, value: $0) }
  }

  /// Reserves `count` bytes under `key` and lets `fill` write them in place, saving a
  /// copy for large values. `fill` must write every byte.
  public func reserve(
    _ table: Table, key: some LMDBKey, count: Int,
    _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
  ) throws {
    try key.withKeyBytes { keyBytes in
      var k = MDB_val(
        mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
      var v = MDB_val(mv_size: count, mv_data: nil)
      try record(mdb_put(handle, table.dbi, &k, &v, UInt32(MDB_RESERVE)), "reserve", table)
      try fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }
  }

  /// Deletes `key`; returns whether it was there.
  @discardableResult
  public func delete(_ table: Table, key: some LMDBKey) throws -> Bool {
    try key.withKeyBytes { keyBytes in
      var k = MDB_val(
        mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
      let code = mdb_del(handle, table.dbi, &k, nil)
      if code == MDB_NOTFOUND { return false }
      try record(code, "delete", table)
      return true
    }
  }

  /// Deletes every entry of `table`; the table itself remains.
  public func clear(_ table: Table) throws {
    try record(mdb_drop(handle, table.dbi, 0), "clear", table)
  }

  /// Deletes `table` itself: its entries and its name. LMDB closes the handle at once
  /// (even if this transaction aborts), so the environment forgets it either way and
  /// `Environment.table` opens it afresh.
  public func deleteTable(_ table: Table) throws {
    defer { environment.forgetTable(table.name) }
    try record(mdb_drop(handle, table.dbi, 1), "delete table", table)
  }

  /// Deletes every entry in the key range [`start`, `end`) and returns how many.
  @discardableResult
  public func deleteRange(_ table: Table, from start: some LMDBKey, to end: some LMDBKey) throws
    -> Int
  {
    let endBytes = end.withKeyBytes { Array($0) }
    var deleted = 0
    try withCursor(table) { cursor in
      var entry = try cursor.seek(atLeast: start)
      while let (key, _) = entry, key.lexicographicallyPrecedes(endBytes) {
        try cursor.deleteCurrent()
        deleted += 1
        entry = try cursor.current()
      }
    }
    return deleted
  }

  private func record(_ code: Int32, _ operation: String, _ table: Table) throws {
    if code == MDB_MAP_FULL { sawMapFull = true }
    try check(code, operation, table: table.name)
  }
}
