import ArgumentParser
import Foundation
import VectorDB

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a collection's documents as JSON Lines (what `import` reads back).",
    discussion: """
      One snapshot, in id order; writers go on meanwhile. Lines are \
      {"id", "text", "metadata"} and, with --include vector, "vector".

      Examples:
        vdb export -c notes > notes.jsonl
        vdb export -c notes --filter '{"topic": "storage"}' -o storage.jsonl
        vdb export -c notes --include vector -o notes.jsonl
                                  to re-import without re-embedding
        vdb export -c notes --npy vectors.npy -o ids.jsonl
                                  the vectors as a float32 matrix
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "Only documents whose metadata matches this JSON filter.") var filter: String?
  @Option(help: "Also write `vector` (the stored vector of the active generation).")
  var include: [Get.Include] = []
  @Option(name: [.customShort("o"), .long], help: "Write to FILE (default: standard output).")
  var output: String?
  @Option(help: "Also write the vectors, in the order of the lines, as a float32 .npy file.")
  var npy: String?

  func run() throws {
    let collection = try database.open().collection(try target.name(), create: false)
    let filter = try filter.map { try Filter(json: $0) }
    for path in [output, npy].compactMap({ $0 }) {
      try checkWritable(path, database: database.path)
    }
    let lines = try OutputFile(output)
    // The vectors go out as they come, a MiB at a time, after a header written again at
    // the end, when their number is known.
    let npyFile = try npy.map { try OutputFile($0) }
    if let npy, npyFile?.isSeekable == false {
      throw CLIError(
        message:
          "\(npy): --npy needs a regular file (the .npy header, written last, says how many rows)",
        usage: true)
    }
    try npyFile?.write(VectorFile.npyHeader(rows: 0, dimension: 0))
    var rows = Data()
    var (rowCount, dimension) = (0, 0)
    let count = try collection.export(
      filter: filter, includeVectors: include.contains(.vector) || npy != nil
    ) { document in
      var line = document
      if let npyFile {
        guard let vector = document.vector, rowCount == 0 || vector.count == dimension else {
          throw CLIError(
            message: "document \(rowCount + 1) of the export has no vector yet",
            hint: "finish the re-embed job (`vdb reembed`), then export again")
        }
        (rowCount, dimension) = (rowCount + 1, vector.count)
        rows.append(VectorFile.littleEndianBytes(vector))
        if rows.count >= 1 << 20 {
          try npyFile.write(rows)
          rows.removeAll(keepingCapacity: true)
        }
        if !include.contains(.vector) { line.vector = nil }
      }
      try lines.write(Terminal.json(line) + Data("\n".utf8))
    }
    if let npyFile {
      try npyFile.write(rows)
      try npyFile.write(VectorFile.npyHeader(rows: rowCount, dimension: dimension), at: 0)
      try npyFile.commit()
    }
    try lines.commit()
    Terminal.standardError("exported \(Terminal.count(count, "document"))\n")
  }
}

/// A file written under a temporary name and renamed when complete (nothing
/// half-written is left on error), or standard output. A path that names a device or a
/// pipe (`/dev/null`, `/dev/stdout`, a FIFO) is written as it is: a file renamed over it
/// would replace it (as root, `/dev/null` itself). A path that is a symbolic link keeps
/// it: the file it points to is replaced.
final class OutputFile {
  private let path: String?
  /// The file written, and the one it will replace (`path`, or the file it links to).
  private let temporary: (path: String, target: String)?
  private var descriptor: Int32
  /// Whether bytes already written can be written over (`write(_:at:)`): a regular file.
  var isSeekable: Bool { temporary != nil }

  init(_ path: String?) throws {
    self.path = path
    guard let path else {
      (temporary, descriptor) = (nil, STDOUT_FILENO)
      return
    }
    var status = stat()
    if stat(path, &status) == 0 && status.st_mode & S_IFMT != S_IFREG {
      guard status.st_mode & S_IFMT != S_IFDIR else {
        throw VectorDBError.invalidInput(
          source: path, line: nil, reason: "it is a directory: give a file name")
      }
      temporary = nil
      descriptor = open(path, O_WRONLY | O_CLOEXEC)
      guard descriptor >= 0 else {
        throw VectorDBError.invalidInput(
          source: path, line: nil, reason: "cannot open it (\(Self.lastError))")
      }
      return
    }
    let target = URL(fileURLWithPath: path).resolvingSymlinksInPath()
    let temporary =
      target.deletingLastPathComponent().path + "/." + target.lastPathComponent
      + ".partial-\(getpid())"
    descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw VectorDBError.invalidInput(
        source: path, line: nil, reason: "cannot create the file (\(Self.lastError))")
    }
    self.temporary = (temporary, target.path)
  }

  deinit {
    if path != nil && descriptor >= 0 { close(descriptor) }
    if let temporary { unlink(temporary.path) }
  }

  private static var lastError: String { String(cString: strerror(errno)).lowercased() }

  /// Writes `data` at the end, or over the bytes at `position` (of a regular file only).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file (e.g. the disk is full);
  ///   `OutputClosed` when standard output's reader went away.
  func write(_ data: Data, at position: Int? = nil) throws {
    precondition(position == nil || isSeekable, "a device or a pipe is written in order")
    try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
      var offset = 0
      while offset < bytes.count {
        let start = bytes.baseAddress! + offset
        let written =
          position.map { pwrite(descriptor, start, bytes.count - offset, off_t($0 + offset)) }
          ?? systemWrite(descriptor, start, bytes.count - offset)
        if written >= 0 {
          offset += written
        } else if errno == EPIPE && path == nil {
          throw OutputClosed()
        } else if errno != EINTR {
          throw VectorDBError.invalidInput(
            source: path ?? "standard output", line: nil, reason: "cannot write (\(Self.lastError))"
          )
        }
      }
    }
  }

  /// Flushes the file to disk and gives it its name (a device or a pipe: closes it).
  func commit() throws {
    guard let path else { return }
    let synced = temporary == nil || fsync(descriptor) == 0
    let closed = close(descriptor) == 0
    descriptor = -1
    guard synced, closed, temporary.map({ rename($0.path, $0.target) == 0 }) ?? true else {
      throw VectorDBError.invalidInput(
        source: path, line: nil, reason: "cannot write (\(Self.lastError))")
    }
  }
}

/// The system call `write` (inside `OutputFile`, the name is its method's).
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
  write(descriptor, bytes, count)
}

/// Standard output's reader went away (`vdb export | head`): the command stops, quietly
/// and with exit 0, as `get` and `query` do (writes to a closed pipe fail without a word).
struct OutputClosed: Error {}

struct Backup: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Copy the database, compacted and consistent, into a new directory.",
    discussion: """
      Writers may go on meanwhile: the copy is the snapshot of the moment it starts. \
      DEST must not exist (or be an empty directory); a database there is never \
      overwritten. The copy opens as a database of its own (`vdb status --db DEST`).

      Example: vdb backup /backups/notes-2026-12-01.vdb
      """)

  @OptionGroup var database: DatabaseOptions
  @Argument(help: "The new directory.") var destination: String
  @OptionGroup var output: OutputOptions

  struct Report: Encodable {
    var path: String
    var bytes: Int
    var seconds: Double
  }

  func run() throws {
    let db = try database.open()
    let start = Date()
    try db.backup(to: destination)
    var options = Database.Options()
    options.create = false
    let report = Report(
      path: destination,
      bytes: try Database(path: destination, options: options).status().bytesOnDisk,
      seconds: Date().timeIntervalSince(start))
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "backed up \(db.path) to \(destination) (\(Terminal.bytes(report.bytes)), \(Terminal.seconds(report.seconds)))"
    )
  }
}
