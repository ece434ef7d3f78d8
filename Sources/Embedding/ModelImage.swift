import Foundation
import Tensor

/// A model's weights in the encoder's own memory layout, kept in a file that later
/// processes map instead of copying the weights out of the database: their pages are the
/// file's in the page cache, so loading costs neither the kernel's zeroing of 86 MB of
/// fresh memory nor the copy, and every process that loads the model shares one copy.
///
/// An image is derived data: whoever writes it can always write it again from the stored
/// weights, so a missing, damaged or outdated image is never an error to the user — the
/// caller loads from the weights instead and writes a new one.
///
/// File layout (integers little-endian). **Changing it needs a new `magic`**, or images
/// already written would be misread:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `VDBIMG01` |
/// | 8 | 8 | identity: which weights (the caller's fingerprint of the stored weights) |
/// | 16 | 8 | layout: ``BertModel``'s fingerprint of where each tensor lies |
/// | 24 | 8 | payload bytes (the arena of the configuration) |
/// | 32 | 4 | chunk bytes |
/// | 36 | 4 | chunk count |
/// | 40 | 4 × count | CRC-32C of each chunk of the payload, in order |
/// | ``headerBytes`` | payload bytes | the weights' arena, byte for byte |
package enum ModelImage {
  /// Where the payload starts: a multiple of every page size Linux uses (4 KiB to 64 KiB),
  /// so the payload can be mapped on its own.
  static let headerBytes = 64 << 10
  private static let magic = Array("VDBIMG01".utf8)
  private static let chunkBytes = 8 << 20
  private static let maxChunks = (headerBytes - 40) / 4

  /// Writes `payload` as an image: to a temporary file beside `path`, renamed over `path`
  /// once complete (no `fsync`: a torn image fails its checksums and is rewritten).
  ///
  /// - Throws: ``EmbeddingError/invalidImage(path:reason:)`` naming the system error;
  ///   the temporary file is removed then.
  static func write(
    _ payload: UnsafeRawBufferPointer, layout: UInt64, identity: UInt64, to path: String
  ) throws {
    let chunk = chunkSize(payload.count)
    let chunks = stride(from: 0, to: payload.count, by: chunk).map {
      CRC32C.checksum(
        UnsafeRawBufferPointer(rebasing: payload[$0..<min($0 + chunk, payload.count)]))
    }
    var header = [UInt8](repeating: 0, count: headerBytes)
    header.replaceSubrange(0..<8, with: magic)
    func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
      withUnsafeBytes(of: value.littleEndian) {
        header.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0)
      }
    }
    put(identity, at: 8)
    put(layout, at: 16)
    put(UInt64(payload.count), at: 24)
    put(UInt32(chunk), at: 32)
    put(UInt32(chunks.count), at: 36)
    for (index, crc) in chunks.enumerated() { put(crc, at: 40 + 4 * index) }

    let temporary = path + ".\(getpid()).tmp"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw failure(path, "cannot create \(temporary)") }
    var written = false
    defer {
      close(descriptor)
      if !written { unlink(temporary) }
    }
    guard header.withUnsafeBytes({ writeAll(descriptor, $0) }), writeAll(descriptor, payload)
    else { throw failure(path, "cannot write \(temporary)") }
    guard rename(temporary, path) == 0 else { throw failure(path, "cannot rename \(temporary)") }
    written = true
  }

  /// Maps the image at `path` after checking that it holds the weights `identity` names,
  /// whole: its size, header and every chunk's checksum (read on every core, which also
  /// maps the pages in for the first query). Returns the payload as an arena and the
  /// layout fingerprint it was written with.
  ///
  /// - Throws: ``EmbeddingError/invalidImage(path:reason:)`` saying what is wrong.
  static func map(_ path: String, identity: UInt64) throws -> (arena: Arena, layout: UInt64) {
    let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard descriptor >= 0 else { throw failure(path, "cannot open") }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
      throw EmbeddingError.invalidImage(path: path, reason: "not a regular file")
    }
    var header = [UInt8](repeating: 0, count: headerBytes)
    guard
      header.withUnsafeMutableBytes({ pread(descriptor, $0.baseAddress, headerBytes, 0) })
        == headerBytes, Array(header[0..<8]) == magic
    else { throw EmbeddingError.invalidImage(path: path, reason: "no image header") }
    func field<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
      header.withUnsafeBytes {
        T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self))
      }
    }
    guard field(UInt64.self, at: 8) == identity else {
      throw EmbeddingError.invalidImage(path: path, reason: "holds other weights")
    }
    // The file's size bounds every count before any arithmetic on them: a hostile header
    // must not overflow them.
    let payload = Int(status.st_size) - headerBytes
    guard payload > 0, field(UInt64.self, at: 24) == UInt64(payload) else {
      throw EmbeddingError.invalidImage(
        path: path,
        reason:
          "\(status.st_size) bytes, not the \(field(UInt64.self, at: 24)) + \(headerBytes) its header says"
      )
    }
    let chunk = Int(field(UInt32.self, at: 32))
    let chunks = Int(field(UInt32.self, at: 36))
    guard chunk == chunkSize(payload), chunks == (payload + chunk - 1) / chunk else {
      throw EmbeddingError.invalidImage(path: path, reason: "its chunk table does not fit its size")
    }
    guard let arena = Arena(mapping: descriptor, offset: headerBytes, bytes: payload) else {
      throw failure(path, "cannot map")
    }
    let bytes = arena.bytes
    var sound = [Bool](repeating: false, count: chunks)
    sound.withUnsafeMutableBufferPointer { sound in
      Parallel.forEachDynamically(chunks, threads: Parallel.coreCount) { index, _ in
        let piece = UnsafeRawBufferPointer(
          rebasing: bytes[index * chunk..<min((index + 1) * chunk, payload)])
        MappedPages.populate(piece)
        sound[index] = CRC32C.checksum(piece) == field(UInt32.self, at: 40 + 4 * index)
      }
    }
    if let damaged = sound.firstIndex(of: false) {
      throw EmbeddingError.invalidImage(
        path: path, reason: "chunk \(damaged) of \(chunks) fails its checksum")
    }
    return (arena, field(UInt64.self, at: 16))
  }

  /// Chunks of 8 MiB, larger when the header could not list them all.
  private static func chunkSize(_ payload: Int) -> Int {
    max(chunkBytes, (payload + maxChunks - 1) / maxChunks)
  }

  private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
      let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return false }
      offset += count
    }
    return true
  }

  private static func failure(_ path: String, _ what: String) -> EmbeddingError {
    .invalidImage(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
  }
}
