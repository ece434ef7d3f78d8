/// Bytes that LMDB compares in the order we want.
///
/// LMDB sorts keys by `memcmp`, so integers are stored big-endian and strings as
/// their UTF-8 bytes. Composite keys are built with `KeyBuilder`.
public protocol LMDBKey {
  /// Calls `body` with the key's bytes; they are valid only during the call.
  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension UInt32: LMDBKey {
  public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: bigEndian, body)
  }

  /// Reads a big-endian `UInt32` key; `nil` when `bytes` has another length.
  public init?(keyBytes bytes: UnsafeRawBufferPointer) {
    guard bytes.count == 4 else { return nil }
    self.init(bigEndian: bytes.loadUnaligned(as: UInt32.self))
  }
}

extension UInt64: LMDBKey {
  public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: bigEndian, body)
  }

  /// Reads a big-endian `UInt64` key; `nil` when `bytes` has another length.
  public init?(keyBytes bytes: UnsafeRawBufferPointer) {
    guard bytes.count == 8 else { return nil }
    self.init(bigEndian: bytes.loadUnaligned(as: UInt64.self))
  }
}

extension String: LMDBKey {
  public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var copy = self
    return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
  }
}

extension Array: LMDBKey where Element == UInt8 {
  public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(body)
  }
}

/// Builds a composite key whose byte order is the order of its parts (for the package's
/// own tables: `package`, not part of any product's API).
///
///     // documents of collection 7, ordered by document id
///     let key = KeyBuilder().uint32(7).string("doc-42").bytes
///
/// Integers are big-endian. A string that is the *last* part is written raw, so
/// prefixes sort first ("a" < "ab" < "b"); a string followed by more parts must be
/// written with `lengthPrefixed` so the parts cannot run into each other.
package struct KeyBuilder: LMDBKey, Sendable {
  package private(set) var bytes: [UInt8] = []

  package init() {}

  package func uint8(_ value: UInt8) -> KeyBuilder {
    var copy = self
    copy.bytes.append(value)
    return copy
  }

  package func uint32(_ value: UInt32) -> KeyBuilder {
    var copy = self
    withUnsafeBytes(of: value.bigEndian) { copy.bytes.append(contentsOf: $0) }
    return copy
  }

  package func uint64(_ value: UInt64) -> KeyBuilder {
    var copy = self
    withUnsafeBytes(of: value.bigEndian) { copy.bytes.append(contentsOf: $0) }
    return copy
  }

  /// Appends the string's UTF-8 bytes as they are (use for the last part).
  package func string(_ value: String) -> KeyBuilder {
    var copy = self
    copy.bytes.append(contentsOf: value.utf8)
    return copy
  }

  /// Appends a 2-byte big-endian length, then the UTF-8 bytes.
  package func lengthPrefixed(_ value: String) -> KeyBuilder {
    let utf8 = Array(value.utf8)
    return uint8(UInt8(truncatingIfNeeded: utf8.count >> 8))
      .uint8(UInt8(truncatingIfNeeded: utf8.count))
      .appending(utf8)
  }

  /// Appends `raw` as it is: a fixed-width part such as a digest.
  package func raw(_ raw: [UInt8]) -> KeyBuilder { appending(raw) }

  private func appending(_ raw: [UInt8]) -> KeyBuilder {
    var copy = self
    copy.bytes.append(contentsOf: raw)
    return copy
  }

  package func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes(body)
  }
}

/// Reads a composite key part by part, in the order `KeyBuilder` wrote it.
///
///     var reader = KeyReader(key)
///     let collection = reader.uint32(), id = reader.rest()
///
/// Each read returns nil (and reads nothing) when too few bytes are left.
package struct KeyReader {
  private let bytes: UnsafeRawBufferPointer
  private var offset = 0

  package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  /// Whether every byte has been read.
  package var isAtEnd: Bool { offset == bytes.count }

  package mutating func uint8() -> UInt8? {
    guard offset < bytes.count else { return nil }
    defer { offset += 1 }
    return bytes[offset]
  }

  package mutating func uint32() -> UInt32? { integer() }

  package mutating func uint64() -> UInt64? { integer() }

  private mutating func integer<T: FixedWidthInteger>() -> T? {
    let size = MemoryLayout<T>.size
    guard bytes.count - offset >= size else { return nil }
    defer { offset += size }
    return T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
  }

  /// The bytes of a string written with `KeyBuilder.lengthPrefixed`, as UTF-8.
  package mutating func lengthPrefixed() -> String? {
    guard bytes.count - offset >= 2 else { return nil }
    let count = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
    guard bytes.count - offset - 2 >= count else { return nil }
    defer { offset += 2 + count }
    return String(decoding: bytes[(offset + 2)..<(offset + 2 + count)], as: UTF8.self)
  }

  /// The `count` bytes after the read ones, or nil when fewer are left.
  package mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer.SubSequence? {
    guard bytes.count - offset >= count else { return nil }
    defer { offset += count }
    return bytes[offset..<(offset + count)]
  }

  /// Every byte not read yet, as UTF-8 (a string written last, with `KeyBuilder.string`).
  package mutating func rest() -> String {
    defer { offset = bytes.count }
    return String(decoding: bytes[offset...], as: UTF8.self)
  }
}
