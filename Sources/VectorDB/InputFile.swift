import Foundation

/// An input read from its start in chunks, or a range at a time, as often as needed: an
/// import checks a whole file before it writes anything, then reads it again to write
/// it.
///
/// A regular file stays on disk: memory holds a chunk (and the longest line or the rows
/// asked for), not the file. A pipe, a terminal or a device can be read only once, so it
/// is read into memory when opened, as are bytes given (standard input, a download) and
/// a file that says it is empty.
///
/// Read with `pread`, not mapped: a file cut short while mapped would kill the process
/// (SIGBUS). A file that changes between two reads is an error (``checkUnchanged()``),
/// not a mix of two versions.
final class InputFile {
  /// How errors name the input: its path, or what the caller called it.
  let source: String
  /// Bytes in the input (in a regular file when it was opened).
  let size: Int
  /// Bytes read at a time from disk. Tests make it small, to cut lines and records.
  let chunkSize: Int
  private let storage: Storage

  private enum Storage {
    /// A regular file, open, and its status when it was opened.
    case disk(descriptor: Int32, opened: stat)
    case memory(Data)
  }

  /// The input at `path`: a regular file, open for reading; another kind, read whole.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file when it cannot be opened or
  ///   read (missing, unreadable), or is a directory.
  init(_ path: String, chunkSize: Int = 4 << 20) throws {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw TextFile.refusal(path) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      let error = TextFile.refusal(path)
      close(descriptor)
      throw error
    }
    source = path
    self.chunkSize = max(1, chunkSize)
    // A regular file of size 0 may still have bytes to give (`/proc`, some FUSE file
    // systems): it is read to its end like a pipe.
    if status.st_mode & S_IFMT == S_IFREG && status.st_size > 0 {
      storage = .disk(descriptor: descriptor, opened: status)
      size = Int(status.st_size)
    } else {
      defer { close(descriptor) }
      let data = try TextFile.contents(of: descriptor, source: path)
      storage = .memory(data)
      size = data.count
    }
  }

  /// `data`, named `source` in errors.
  init(_ data: Data, source: String) {
    self.source = source
    storage = .memory(data)
    size = data.count
    chunkSize = max(1, data.count)
  }

  deinit {
    if case .disk(let descriptor, _) = storage { close(descriptor) }
  }

  /// Calls `body` with the input's bytes in order, a chunk at a time; each chunk's bytes
  /// are valid only during the call.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file when a read fails or the file
  ///   is shorter than it was when opened; what `body` throws.
  func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    if case .memory(let data) = storage { return try data.withUnsafeBytes(body) }
    var buffer = [UInt8](repeating: 0, count: min(chunkSize, size))
    var offset = 0
    while offset < size {
      let count = min(buffer.count, size - offset)
      try read(into: &buffer, count: count, at: offset)
      try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
      offset += count
    }
  }

  /// The `count` bytes at `offset`.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file when the read fails or the
  ///   input ends before them (the file was cut short since it was opened).
  func bytes(at offset: Int, count: Int) throws -> [UInt8] {
    guard offset + count <= size else { throw changed() }
    var buffer = [UInt8](repeating: 0, count: count)
    try read(into: &buffer, count: count, at: offset)
    return buffer
  }

  private func read(into buffer: inout [UInt8], count: Int, at offset: Int) throws {
    switch storage {
    case .memory(let data):
      buffer.withUnsafeMutableBytes {
        data.copyBytes(
          to: $0.bindMemory(to: UInt8.self),
          from: (data.startIndex + offset)..<(data.startIndex + offset + count))
      }
    case .disk(let descriptor, _):
      var done = 0
      while done < count {
        let result = buffer.withUnsafeMutableBytes {
          pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset + done))
        }
        if result < 0 && errno == EINTR { continue }
        guard result >= 0 else { throw TextFile.refusal(source) }
        guard result > 0 else { throw changed() }
        done += result
      }
    }
  }

  /// - Throws: `VectorDBError.invalidInput` naming the file if its size or modification
  ///   time differ from when it was opened: another process wrote it meanwhile.
  func checkUnchanged() throws {
    guard case .disk(let descriptor, let opened) = storage else { return }
    var now = stat()
    guard fstat(descriptor, &now) == 0 else { throw TextFile.refusal(source) }
    guard now.st_size == opened.st_size, now.st_mtim.tv_sec == opened.st_mtim.tv_sec,
      now.st_mtim.tv_nsec == opened.st_mtim.tv_nsec
    else { throw changed() }
  }

  /// The error for a file another process changed while it was read.
  func changed(line: Int? = nil) -> VectorDBError {
    .invalidInput(
      source: source, line: line,
      reason: "the file changed while it was read (another process wrote it); run again")
  }
}
