import Foundation

/// Hints to the kernel about the pages of mapped, read-only bytes (a model read from a
/// database's memory map or from a file): map them in with one call, or drop them from
/// this process's resident memory once copied out. Hints only: an older kernel may
/// ignore them, and a dropped page of a read-only file map comes back from the page
/// cache at its next read, unchanged. Only whole pages inside the bytes are touched.
package enum MappedPages {
  /// Maps the pages now: one call instead of a page fault per 64 KiB.
  package static func populate(_ bytes: UnsafeRawBufferPointer) {
    advise(bytes, MADV_POPULATE_READ)
  }

  /// Drops the pages from this process's resident memory (they stay in the page cache).
  /// Never for anonymous or writable memory: it would lose what was written.
  package static func release(_ bytes: UnsafeRawBufferPointer) {
    advise(bytes, MADV_DONTNEED)
  }

  private static func advise(_ bytes: UnsafeRawBufferPointer, _ advice: Int32) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard let base = bytes.baseAddress else { return }
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + bytes.count) / page * page
    guard end > start, let address = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(address, end - start, advice)
  }
}
