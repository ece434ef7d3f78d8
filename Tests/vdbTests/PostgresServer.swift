import Foundation
import XCTest

/// A real PostgreSQL + pgvector server in a temporary directory (tools/pg-test-server.py,
/// PyPI's `pgserver` binaries installed by tools/setup.sh), on a loopback port and a
/// unix socket; stopped by `stop()`.
final class PostgresServer {
  let directory: String
  let port: Int
  let password: String
  private let bin: String

  /// The Python with `pgserver`: $VDB_PG_PYTHON, else the project's .venv-pg.
  static var python: String {
    ProcessInfo.processInfo.environment["VDB_PG_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
      ?? root + "/.venv-pg/bin/python"
  }
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../..").standardized.path

  init() throws {
    directory = try Shell.temporaryDirectory("pg")
    guard FileManager.default.isExecutableFile(atPath: Self.python) else {
      // Not a skip: these tests must run, so a missing server fails them.
      throw Failure("no \(Self.python): run tools/setup.sh (it installs pgserver)")
    }
    let started = try Self.run(
      Self.python, [Self.root + "/tools/pg-test-server.py", "start", directory])
    let fields = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(started.utf8)) as? [String: Any], started)
    port = try XCTUnwrap(fields["port"] as? Int)
    password = try XCTUnwrap(fields["password"] as? String)
    bin = try XCTUnwrap(fields["bin"] as? String)
  }

  func stop() {
    _ = try? Self.run(Self.python, [Self.root + "/tools/pg-test-server.py", "stop", directory])
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Over TCP with the password.
  var url: String { "postgres://postgres:\(password)@127.0.0.1:\(port)/postgres?sslmode=disable" }
  /// Over the unix socket (trusted: no password).
  var socketURL: String { "postgresql://postgres@/postgres?host=\(directory)&port=\(port)" }

  /// Runs `sql` with psql over the socket; its rows, one per line, fields split by `|`.
  @discardableResult
  func psql(_ sql: String) throws -> String {
    try Self.run(
      bin + "/psql",
      [
        "-h", directory, "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-qAt", "-v",
        "ON_ERROR_STOP=1", "-c", sql,
      ]
    ).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  private static func run(_ executable: String, _ arguments: [String]) throws -> String {
    let result = try Shell.run(executable, arguments)
    guard result.status == 0 else {
      throw Failure("\(executable) \(arguments.joined(separator: " ")) failed: \(result.stderr)")
    }
    return result.stdout
  }

  struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
  }
}
