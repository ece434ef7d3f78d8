import CKernels

/// CRC-32C (Castagnoli), the checksum of stored bytes whose silent damage would change
/// answers (model weights, in the database and in a model image). Computed by the CPU's
/// crc32 instruction when it has SSE4.2, else by a table; the choice is made once at load.
package enum CRC32C {
  /// Whether the hardware instruction is in use.
  package static var isAccelerated: Bool { vdb_crc32c_is_accelerated() != 0 }

  /// The CRC of `bytes`, or of the bytes checked before them and then `bytes` when
  /// `crc` is the checksum of those.
  package static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0)
    -> UInt32
  {
    vdb_crc32c(crc, bytes.baseAddress, bytes.count)
  }
}

/// FNV-1a, 64-bit (Fowler, Noll, Vo): a fast, stable, non-cryptographic hash. The same
/// bytes give the same value on every run and machine, so it can fingerprint training
/// data and draw a seeded split.
///
/// ```swift
/// var hash = FNV1a()
/// hash.mix(bytes: "query text".utf8)
/// hash.value   // 64-bit fingerprint
/// ```
public struct FNV1a: Sendable {
  /// The hash of everything mixed in so far.
  public private(set) var value: UInt64

  /// An empty hash; a `seed` other than 0 gives an independent family of hashes.
  public init(seed: UInt64 = 0) { value = 0xcbf2_9ce4_8422_2325 ^ seed }

  /// Mixes in one byte.
  @inline(__always)
  public mutating func mix(byte: UInt8) {
    value = (value ^ UInt64(byte)) &* 0x100_0000_01b3
  }

  /// Mixes in `bytes`, in order.
  public mutating func mix<Bytes: Sequence<UInt8>>(bytes: Bytes) {
    for byte in bytes { mix(byte: byte) }
  }

  /// Mixes in the eight bytes of `word`, least significant first.
  public mutating func mix(_ word: UInt64) {
    var v = word
    for _ in 0..<8 {
      mix(byte: UInt8(truncatingIfNeeded: v))
      v >>= 8
    }
  }
}
