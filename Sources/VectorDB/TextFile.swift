import Foundation

/// Whole input files read as UTF-8 text (queries, CSV), with an error that says where
/// they are not.
public enum TextFile {
  /// The bytes of the file at `path`, read into memory. Not mapped: a file cut short
  /// while mapped would kill the process (SIGBUS) at the first read past its new end.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and why it cannot be read.
  public static func contents(_ path: String) throws -> Data {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw refusal(path) }
    defer { close(descriptor) }
    return try contents(of: descriptor, source: path)
  }

  /// The bytes of standard input, to its end.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `<stdin>` when it cannot be read (closed,
  ///   a directory).
  public static func standardInput() throws -> Data {
    try contents(of: STDIN_FILENO, source: "<stdin>")
  }

  /// The last system call's error (`errno`) in words: "no such file or directory".
  static var systemReason: String { String(cString: strerror(errno)).lowercased() }

  /// "cannot read: `reason`", by default the system call's (`errno`) in words.
  static func refusal(_ source: String, _ reason: String = systemReason) -> VectorDBError {
    .invalidInput(source: source, line: nil, reason: "cannot read: " + reason)
  }

  /// Everything `descriptor` gives until its end.
  ///
  /// Held whole (and as text, and split, by the caller), an input past a quarter of the
  /// machine's memory would end the process (an allocation failure, the kernel's OOM
  /// killer) rather than fail: a regular file that large is refused before it is read, a
  /// pipe when it has given that much, and a device other than a terminal (`/dev/zero`,
  /// which gives bytes without end) past 64 MiB, as imports refuse one.
  static func contents(of descriptor: Int32, source: String) throws -> Data {
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw refusal(source) }
    let memory = ProcessInfo.processInfo.physicalMemory
    let isDevice = isEndlessDevice(status, descriptor)
    let limit = isDevice ? InputFile.memoryLimit : Int(clamping: memory / 4)
    switch status.st_mode & S_IFMT {
    case S_IFDIR: throw refusal(source, "it is a directory, not a file")
    case S_IFREG:
      guard status.st_size <= limit else {
        throw refusal(
          source,
          "the file is \(status.st_size) bytes, more than a quarter of this machine's memory"
            + " (\(memory) bytes), which a file read whole may take; split it")
      }
    default: break
    }
    let isRegular = status.st_mode & S_IFMT == S_IFREG
    var data = Data(capacity: isRegular ? Int(status.st_size) : 0)
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
      if count == 0 { return data }
      if count < 0 {
        if errno == EINTR { continue }
        throw refusal(source)
      }
      guard data.count + count <= limit else {
        throw isDevice
          ? deviceRefusal(source, limit: limit)
          : refusal(
            source,
            "it gives more than \(limit) bytes, a quarter of this machine's memory, which an"
              + " input read whole may take; split it")
      }
      data.append(contentsOf: chunk[0..<count])
    }
  }

  /// Whether `descriptor` (of status `status`) is a device other than a terminal, which
  /// may give bytes without end (`/dev/zero`, `/dev/urandom`).
  static func isEndlessDevice(_ status: stat, _ descriptor: Int32) -> Bool {
    status.st_mode & S_IFMT == S_IFCHR && isatty(descriptor) == 0
  }

  /// The refusal of a device (other than a terminal) that gives more than `limit` bytes:
  /// it may never end.
  static func deviceRefusal(_ source: String, limit: Int) -> VectorDBError {
    refusal(
      source,
      "a device that gives more than \(limit >> 20) MiB (such as /dev/zero) is not read; give"
        + " a file or a pipe")
  }

  /// `data` as a String, without a leading byte order mark (Windows editors write one;
  /// left in, it would be part of the first line's first field).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and the line of the first byte
  ///   that is not UTF-8, or saying that the file is UTF-16 (a byte order mark of UTF-16).
  public static func utf8(_ data: Data, source: String) throws -> String {
    if var text = String(validating: data, as: UTF8.self) {
      if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
      return text
    }
    if let problem = utf16Problem(data) {
      throw VectorDBError.invalidInput(source: source, line: nil, reason: problem)
    }
    let (line, column) = firstInvalidUTF8(data)
    throw VectorDBError.invalidInput(
      source: source, line: line, reason: "invalid UTF-8 at character \(column)")
  }

  /// Where the first byte that is not UTF-8 lies: its line and its character in the line
  /// (both from 1).
  static func firstInvalidUTF8(_ bytes: some Sequence<UInt8>) -> (line: Int, column: Int) {
    var bytes = bytes.makeIterator()
    var parser = Unicode.UTF8.ForwardParser()
    var line = 1
    var column = 1
    while case .valid(let scalar) = parser.parseScalar(from: &bytes) {
      if scalar.count == 1 && scalar.first == UInt8(ascii: "\n") {
        line += 1
        column = 1
      } else {
        column += 1
      }
    }
    return (line, column)
  }

  /// The bytes a Windows editor puts before UTF-8 text; skipped, else it would be part of
  /// the first line's text.
  static let utf8ByteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

  /// What to say of bytes that begin with a UTF-16 byte order mark; nil for others.
  static func utf16Problem(_ bytes: some Sequence<UInt8>) -> String? {
    let start = Array(bytes.prefix(2))
    return start == [0xFF, 0xFE] || start == [0xFE, 0xFF]
      ? "the file is UTF-16 (save it as UTF-8)" : nil
  }
}
