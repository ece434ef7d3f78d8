import CKernels
import Foundation

/// CRC-32C (Castagnoli), the checksum of stored records whose silent damage would
/// change answers (model weights). Computed by the CPU's crc32 instruction when it
/// has SSE4.2, else by a table; the choice is made once at load.
enum CRC32C {
  /// Whether the hardware instruction is in use.
  static var isAccelerated: Bool { vdb_crc32c_is_accelerated() != 0 }

  /// The CRC of `bytes`, or of the bytes checked before them and then `bytes` when
  /// `crc` is the checksum of those.
  static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    vdb_crc32c(crc, bytes.baseAddress, bytes.count)
  }

  static func checksum(_ bytes: some ContiguousBytes) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }
}
