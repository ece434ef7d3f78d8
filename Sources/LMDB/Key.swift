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

/// Builds a composite key whose byte order is the order of its parts.
///
///     // documents of collection 7, ordered by document id
///     let key = KeyBuilder().uint32(7).string("doc-42").bytes
///
/// Integers are big-endian. A string that is the *last* part is written raw, so
/// prefixes sort first ("a" < "ab" < "b"); a string followed by more parts must be
/// written with `lengthPrefixed` so the parts cannot run into each other.
public struct KeyBuilder: LMDBKey, Sendable {
  public private(set) var bytes: [UInt8] = []

  public init() {}

  public func uint8(_ value: UInt8) -> KeyBuilder {
    var copy = self
    copy.bytes.append(value)
    return copy
  }

  public func uint32(_ value: UInt32) -> KeyBuilder {
    var copy = self
    withUnsafeBytes(of: value.bigEndian) { copy.bytes.append(contentsOf: $0) }
    return copy
  }

  public func uint64(_ value: UInt64) -> KeyBuilder {
    var copy = self
    withUnsafeBytes(of: value.bigEndian) { copy.bytes.append(contentsOf: $0) }
    return copy
  }

  /// Appends the string's UTF-8 bytes as they are (use for the last part).
  public func string(_ value: String) -> KeyBuilder {
    var copy = self
    copy.bytes.append(contentsOf: value.utf8)
    return copy
  }

  /// Appends a 2-byte big-endian length, then the UTF-8 bytes.
  public func lengthPrefixed(_ value: String) -> KeyBuilder {
    let utf8 = Array(value.utf8)
    return uint8(UInt8(truncatingIfNeeded: utf8.count >> 8))
      .uint8(UInt8(truncatingIfNeeded: utf8.count))
      .appending(utf8)
  }

  private func appending(_ raw: [UInt8]) -> KeyBuilder {
    var copy = self
    copy.bytes.append(contentsOf: raw)
    return copy
  }

  public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes(body)
  }
}
