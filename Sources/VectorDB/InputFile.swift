import Foundation

/// An input to import, read from its start in chunks, or a range at a time, as often as
/// needed: an import checks the whole input before it writes anything, then reads it
/// again to write it.
///
/// A regular file stays on disk: memory holds a chunk (and the longest line or the rows
/// asked for), not the file. A pipe, a terminal or a device can be read only once: its
/// first 64 MiB are held in memory, and a longer one is copied on into an unnamed
/// temporary file (in `$TMPDIR`, else `/var/tmp`, which unlike `/tmp` is on disk on
/// systems that keep `/tmp` in memory), which is then read like a regular file and goes
/// away with the `InputFile`. So memory does not grow with the input either way.
///
/// Read with `pread`, not mapped: a file cut short while mapped would kill the process
/// (SIGBUS). A file that changes between two reads is an error (``checkUnchanged()``),
/// not a mix of two versions.
///
///     // zcat docs.jsonl.gz | my-tool
///     let input = try InputFile.standardInput()  // before anything else reads it
///     try database.collection("docs").importJSONL(input)
public final class InputFile {
  /// How errors name the input: its path, `<stdin>`, or what the caller called it.
  public let source: String
  /// Bytes read at a time from disk. Tests make it small, to cut lines and records.
  let chunkSize: Int
  private let storage: Storage

  fileprivate enum Storage {
    /// A regular file (or the temporary file a pipe was copied into), open; its status
    /// when it was opened; the offset the input starts at (standard input may have been
    /// read part way by whoever passed it on).
    case disk(descriptor: Int32, opened: stat, start: Int)
    case memory(Data)
  }

  /// Bytes of a pipe held in memory; past them, it is copied into a temporary file.
  static let memoryLimit = 64 << 20
  /// Bytes read at a time from disk, unless a test asks for fewer.
  static let defaultChunkSize = 4 << 20

  /// Bytes in the input (in a regular file when it was opened).
  public var size: Int {
    switch storage {
    case .memory(let data): data.count
    case .disk(_, let opened, let start): Int(opened.st_size) - start
    }
  }

  /// The input at `path`: a regular file, open for reading; a pipe or a device, read to
  /// its end (into memory, or a temporary file past 64 MiB).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file when it cannot be opened or
  ///   read (missing, unreadable), or is a directory; or a pipe cannot be copied into a
  ///   temporary file (a full disk: the message names the directory).
  public convenience init(_ path: String) throws {
    try self.init(path, chunkSize: InputFile.defaultChunkSize)
  }

  /// The input at `path`, read `chunkSize` bytes at a time; a pipe is held in memory up
  /// to `memoryLimit` bytes.
  convenience init(_ path: String, chunkSize: Int, memoryLimit: Int = InputFile.memoryLimit)
    throws
  {
    guard !path.isEmpty else {
      throw VectorDBError.invalidInput(source: "input", line: nil, reason: "the path is empty")
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw TextFile.refusal(path) }
    try self.init(
      descriptor: descriptor, source: path, chunkSize: chunkSize, memoryLimit: memoryLimit)
  }

  /// Standard input, named `<stdin>` in errors: a file redirected to it (`< docs.jsonl`)
  /// is read from where it stands, on disk; a pipe as ``init(_:)`` reads one. Take it
  /// before opening a database: a closed standard input is an error here, where the
  /// database would put `/dev/null` in its place.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `<stdin>` when it cannot be read
  ///   (closed, a directory), or as ``init(_:)``.
  public static func standardInput() throws -> InputFile {
    // A descriptor of its own, closed with the InputFile; standard input stays open.
    let descriptor = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
    guard descriptor >= 0 else { throw TextFile.refusal(standardInputName) }
    return try InputFile(
      descriptor: descriptor, source: standardInputName, chunkSize: defaultChunkSize,
      memoryLimit: memoryLimit)
  }

  /// How errors name standard input, which has no path.
  public static let standardInputName = "<stdin>"

  /// `data`, named `source` in errors.
  public convenience init(_ data: Data, source: String) {
    self.init(data, source: source, chunkSize: data.count)
  }

  /// `data`, passed on `chunkSize` bytes at a time.
  init(_ data: Data, source: String, chunkSize: Int) {
    self.source = source
    storage = .memory(data)
    self.chunkSize = max(1, chunkSize)
  }

  /// Takes over `descriptor` (it is closed here or with the InputFile).
  init(descriptor: Int32, source: String, chunkSize: Int, memoryLimit: Int) throws {
    self.source = source
    self.chunkSize = max(1, chunkSize)
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      let error = TextFile.refusal(source)
      close(descriptor)
      throw error
    }
    switch status.st_mode & S_IFMT {
    case S_IFDIR:
      close(descriptor)
      throw TextFile.refusal(source, "it is a directory, not a file")
    // A regular file of size 0 may still have bytes to give (`/proc`, some FUSE file
    // systems): it is read to its end like a pipe.
    case S_IFREG where status.st_size > 0:
      let start = min(max(0, Int(lseek(descriptor, 0, SEEK_CUR))), Int(status.st_size))
      storage = .disk(descriptor: descriptor, opened: status, start: start)
    default:
      defer { close(descriptor) }
      // A device that may give bytes without end is held in memory up to the limit,
      // never copied to disk.
      storage = try drain(
        descriptor, source: source, memoryLimit: memoryLimit,
        canSpool: !TextFile.isEndlessDevice(status, descriptor))
    }
  }

  deinit {
    if case .disk(let descriptor, _, _) = storage { close(descriptor) }
  }

  /// Whether the input is read from a file (a regular one, or a pipe's temporary copy).
  var isOnDisk: Bool {
    if case .disk = storage { return true }
    return false
  }

  /// Calls `body` with the input's bytes in order, a chunk at a time; each chunk's bytes
  /// are valid only during the call.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file when a read fails or the file
  ///   is shorter than it was when opened; what `body` throws.
  func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    if case .memory(let data) = storage {
      return try data.withUnsafeBytes { all in
        for start in stride(from: 0, to: all.count, by: chunkSize) {
          try body(UnsafeRawBufferPointer(rebasing: all[start..<min(start + chunkSize, all.count)]))
        }
      }
    }
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
    case .disk(let descriptor, _, let start):
      var done = 0
      while done < count {
        let result = buffer.withUnsafeMutableBytes {
          pread(descriptor, $0.baseAddress! + done, count - done, off_t(start + offset + done))
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
    guard case .disk(let descriptor, let opened, _) = storage else { return }
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

/// Reads `descriptor` to its end: into memory up to `memoryLimit` bytes, then with them
/// into an unnamed temporary file, or, unless `canSpool`, not at all (an error).
private func drain(_ descriptor: Int32, source: String, memoryLimit: Int, canSpool: Bool) throws
  -> InputFile.Storage
{
  var held = Data()
  var spool: TemporaryFile?
  var chunk = [UInt8](repeating: 0, count: 1 << 20)
  while true {
    let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    if count == 0 { break }
    if count < 0 {
      if errno == EINTR { continue }
      throw TextFile.refusal(source)
    }
    if spool == nil && held.count + count > memoryLimit {
      guard canSpool else { throw TextFile.deviceRefusal(source, limit: memoryLimit) }
      spool = try TemporaryFile(for: source)
      try held.withUnsafeBytes { try spool!.append($0) }
      held = Data()
    }
    if let spool {
      try chunk.withUnsafeBytes { try spool.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    } else {
      held.append(contentsOf: chunk[..<count])
    }
  }
  guard let spool else { return .memory(held) }
  var status = stat()
  guard fstat(spool.descriptor, &status) == 0 else { throw spool.failure() }
  return .disk(descriptor: spool.take(), opened: status, start: 0)
}

/// An unnamed temporary file a pipe is copied into: created in `$TMPDIR` (else
/// `/var/tmp`, the place for large temporary files, see file-hierarchy(7)) and unlinked
/// at once, so that it goes away when its descriptor is closed, even if the process is
/// killed.
private final class TemporaryFile {
  let directory: String
  private(set) var descriptor: Int32
  private let source: String

  /// - Throws: `VectorDBError.invalidInput` naming `source` and the directory.
  init(for source: String) throws {
    let variable = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
    directory = variable.isEmpty ? "/var/tmp" : variable
    self.source = source
    var template = Array((directory + "/vdb-input-XXXXXX").utf8CString)
    descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard descriptor >= 0 else { throw failure() }
    unlink(template)
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
  }

  deinit {
    if descriptor >= 0 { close(descriptor) }
  }

  /// Writes `bytes` at the end.
  func append(_ bytes: UnsafeRawBufferPointer) throws {
    var done = 0
    while done < bytes.count {
      let result = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
      if result < 0 && errno == EINTR { continue }
      guard result > 0 else { throw failure() }
      done += result
    }
  }

  /// The descriptor, which the caller now closes.
  func take() -> Int32 {
    defer { descriptor = -1 }
    return descriptor
  }

  /// The error for a temporary file that cannot be made or written (`errno` says why).
  func failure() -> VectorDBError {
    .invalidInput(
      source: source, line: nil,
      reason:
        "cannot copy the input into a temporary file in \(directory) (\(TextFile.systemReason));"
        + " set TMPDIR to a directory with room")
  }
}
