import Foundation
import XCTest

/// Runs the real `vdb` binary (built next to the test bundle) as a child process.
enum Shell {
  static var binary: String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("vdb").path
  }

  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
    /// The process died of a signal (`status` is then the signal's number).
    var signaled = false
  }

  /// Runs `vdb ARGS` to completion; with a `launcher` (such as `setpriv …`), runs
  /// `LAUNCHER vdb ARGS`.
  @discardableResult
  static func vdb(
    _ arguments: [String], environment: [String: String] = [:], input: String? = nil,
    launcher: [String] = []
  ) throws -> Result {
    try run(
      launcher.first ?? binary,
      launcher.isEmpty ? arguments : launcher.dropFirst() + [binary] + arguments,
      environment: environment, input: input)
  }

  /// Runs `executable ARGS` to completion.
  static func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    input: String? = nil
  ) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let input {
      let pipe = Pipe()
      process.standardInput = pipe
      pipe.fileHandleForWriting.write(Data(input.utf8))
      try pipe.fileHandleForWriting.close()
    }
    try process.run()
    // Read both pipes before waiting so a full pipe cannot block the child.
    let errData = Locked(Data())
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
      errData.value = err.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return Result(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData.value, as: UTF8.self),
      signaled: process.terminationReason == .uncaughtSignal)
  }

  /// A `bash -c script` child in a session (and process group) of its own, so the whole
  /// group (bash and any vdb it runs) can be killed at once.
  struct Group {
    let process: Process
    let output: FileHandle
    /// The group's id: the pid of the bash that leads it.
    let id: pid_t
  }

  static func startGroup(_ script: String) throws -> Group {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
    // setsid may fork; the script reports the pid that leads the new group.
    process.arguments = ["--wait", "bash", "-c", "echo $$\n" + script]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let id =
      pid_t(
        try firstLine(of: out.fileHandleForReading).trimmingCharacters(in: .whitespacesAndNewlines))
      ?? 0
    return Group(process: process, output: out.fileHandleForReading, id: id)
  }

  /// The first line a child writes to `handle` (read byte by byte, so nothing after
  /// it is consumed); what there is if the child exits first.
  static func firstLine(of handle: FileHandle) throws -> String {
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
      let byte = try handle.read(upToCount: 1) ?? Data()
      if byte.isEmpty { break }
      line.append(byte)
    }
    return String(decoding: line, as: UTF8.self)
  }

  /// SIGKILLs the group and returns what it printed; `killed` tells whether the signal
  /// found it still running. (Whether it runs is asked before the signal: after it, the
  /// group may already be dead and reaped.)
  static func killGroup(_ group: Group) -> (output: String, killed: Bool) {
    let running = group.process.isRunning
    let killed = kill(-group.id, SIGKILL) == 0 && running
    group.process.waitUntilExit()
    return (String(decoding: group.output.readDataToEndOfFile(), as: UTF8.self), killed)
  }

  /// A fresh temporary directory.
  static func temporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "vdb-\(label)-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  /// Writes a JSON Lines batch file of `count` documents with ids `PREFIX-j`.
  static func writeBatch(_ path: String, prefix: String, count: Int, textBytes: Int = 1000) throws {
    let filler = String(repeating: "lorem ipsum ", count: textBytes / 12)
    let lines = (0..<count).map { j in
      #"{"_id": "\#(prefix)-\#(j)", "text": "\#(prefix) document \#(j) \#(filler)", "metadata": {"batch": "\#(prefix)"}}"#
    }
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
  }
}

/// A test case with a fresh temporary directory for each test (removed after it) and
/// a database path in it.
class ShellTestCase: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory(String(describing: type(of: self)))
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }
}

/// A value shared between threads.
final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value
  init(_ value: Value) { stored = value }
  var value: Value {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}
