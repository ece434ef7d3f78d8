// Running a peer: a Python script (../shared/bench, Benchmarks/peers) that measures
// another library on the same data and reports its figures as one JSON object.
import Foundation

/// A peer that could not report: the command and what went wrong.
public struct PeerError: Error, CustomStringConvertible {
  /// The command line run.
  public var command: String
  /// What went wrong, with the tail of the peer's standard error when it failed.
  public var problem: String
  public var description: String { "peer \(command): \(problem)" }

  /// The failure of `command`: `problem`.
  public init(command: String, problem: String) {
    self.command = command
    self.problem = problem
  }
}

/// Runs `python` with `arguments` (the script first) and returns the JSON object the peer
/// reports: on its standard output, or in `reportFile` when given (its standard output is
/// then discarded). Its standard error is kept out of the benchmark's report and shown
/// only when it fails.
///
/// - Throws: ``PeerError`` when the peer cannot start, exits with a non-zero status, or
///   reports no JSON object.
public func peerReport(
  python: String, arguments: [String], reportFile: String? = nil
) throws -> [String: Any] {
  let command = ([python] + arguments).joined(separator: " ")
  let errors = FileManager.default.temporaryDirectory
    .appendingPathComponent("vdb-peer-stderr-\(getpid())-\(UUID().uuidString)")
  // Opening it (below) throws if it could not be created.
  _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
  defer { try? FileManager.default.removeItem(at: errors) }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: python)
  process.arguments = arguments
  let output = Pipe()
  process.standardOutput = reportFile == nil ? output : FileHandle.nullDevice
  process.standardError = try FileHandle(forWritingTo: errors)
  do {
    try process.run()
  } catch {
    throw PeerError(command: command, problem: "cannot start: \(error)")
  }
  let printed = reportFile == nil ? output.fileHandleForReading.readDataToEndOfFile() : Data()
  process.waitUntilExit()
  guard process.terminationStatus == 0 else {
    let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
    throw PeerError(
      command: command,
      problem: "exit status \(process.terminationStatus)\n"
        + stderr.split(separator: "\n").suffix(5).joined(separator: "\n"))
  }
  guard let data = reportFile.map({ FileManager.default.contents(atPath: $0) }) ?? printed,
    let report = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
  else {
    throw PeerError(command: command, problem: "no JSON object in its report")
  }
  return report
}
