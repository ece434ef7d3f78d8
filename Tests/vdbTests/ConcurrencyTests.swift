import Foundation
import XCTest

/// Two writer processes and three reader processes on one database at once: writes
/// serialise without errors, and every read sees whole batches only.
final class ConcurrencyTests: XCTestCase {
  func testReadersSeeWholeBatchesWhileTwoWritersRun() throws {
    let directory = try Shell.temporaryDirectory("concurrency")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    let batchSize = 100
    try Shell.writeBatch(directory + "/seed.jsonl", prefix: "seed", count: batchSize)
    XCTAssertEqual(
      try Shell.vdb([
        "import", directory + "/seed.jsonl", "-c", "mp", "--db", db, "--batch-size", "1000",
      ]).status, 1)
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["import", directory + "/seed.jsonl", "-c", "mp", "--db", db]).status, 0)

    var writers: [Shell.Group] = []
    for writer in ["w1", "w2"] {
      var script = "set -e\n"
      for batch in 0..<60 {
        let name = "\(writer)b\(batch)"
        try Shell.writeBatch(
          "\(directory)/\(name).jsonl", prefix: name, count: batchSize, textBytes: 200)
        script +=
          "'\(Shell.binary)' import '\(directory)/\(name).jsonl' -c mp --db '\(db)' > /dev/null\n"
        script += "echo committed \(name)\n"
      }
      writers.append(try Shell.startGroup(script))
    }

    let deadline = Date().addingTimeInterval(10)
    let failures = Failures()
    DispatchQueue.concurrentPerform(iterations: 3) { _ in
      while Date() < deadline {
        do {
          let result = try Shell.vdb([
            "get", "-c", "mp", "--db", db, "--limit", "1000000", "--json",
          ])
          guard result.status == 0 else {
            failures.add("reader exited \(result.status): \(result.stderr)")
            continue
          }
          var perBatch: [String: Int] = [:]
          for line in result.stdout.split(separator: "\n") {
            let id = try JSONDecoder().decode(Row.self, from: Data(line.utf8)).id
            perBatch[String(id.split(separator: "-")[0]), default: 0] += 1
          }
          for (batch, count) in perBatch where count != batchSize {
            failures.add("reader saw \(count) of \(batchSize) documents of batch \(batch)")
          }
        } catch {
          failures.add("reader failed: \(error)")
        }
      }
    }
    var committed = 0
    for writer in writers {
      let (output, killed) = Shell.killGroup(writer)
      committed += output.split(separator: "\n").filter { $0.hasPrefix("committed") }.count
      if !killed {
        XCTAssertEqual(writer.process.terminationStatus, 0, "a writer failed")
      }
    }
    XCTAssertEqual(failures.messages, [])
    XCTAssertGreaterThan(committed, 10, "the writers should have committed batches during the test")
  }

  private struct Row: Decodable { var id: String }
}

final class Failures: @unchecked Sendable {
  private let lock = NSLock()
  private var list: [String] = []
  func add(_ message: String) { lock.withLock { list.append(message) } }
  var messages: [String] { lock.withLock { Array(list.prefix(5)) } }
}
