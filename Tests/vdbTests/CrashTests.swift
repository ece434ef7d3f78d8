import Foundation
import XCTest

@testable import VectorDB

/// Kills real `vdb` processes with SIGKILL in the middle of writing and checks that
/// every committed batch survives whole, no batch is half there, and the database
/// still opens and verifies.
final class CrashTests: XCTestCase {
  func testKillNineDuringBatchImportsLosesNothingCommitted() throws {
    let directory = try Shell.temporaryDirectory("crash")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let batchSize = 1000
    let batchesPerRound = 20
    var generator = SystemRandomNumberGenerator()
    var reported = Set<String>()
    var kills = 0
    for round in 0..<24 {
      var script = "set -e\n"
      for batch in 0..<batchesPerRound {
        let name = "r\(round)b\(batch)"
        try Shell.writeBatch("\(directory)/\(name).jsonl", prefix: name, count: batchSize)
        script +=
          "'\(Shell.binary)' import '\(directory)/\(name).jsonl' -c crash --db '\(db)' --batch-size \(batchSize) > /dev/null\n"
        script += "echo committed \(name)\n"
      }
      let child = try Shell.startGroup(script)
      usleep(UInt32.random(in: 50_000...700_000, using: &generator))
      let (output, killed) = Shell.killGroup(child)
      if killed { kills += 1 }
      for line in output.split(separator: "\n") where line.hasPrefix("committed ") {
        reported.insert(String(line.dropFirst("committed ".count)))
      }
      // Check after every kill: the database opens, verifies, and batches are whole.
      let database = try Database(path: db)
      try database.verify()
      var perBatch: [String: Int] = [:]
      var after: String?
      while true {
        let page = try database.collection("crash").documents(after: after, limit: 5000)
        guard let last = page.last else { break }
        for document in page {
          perBatch[String(document.id.split(separator: "-")[0]), default: 0] += 1
        }
        after = last.id
      }
      for batch in 0..<batchesPerRound {
        let name = "r\(round)b\(batch)"
        let found = perBatch[name] ?? 0
        XCTAssertTrue(
          found == 0 || found == batchSize, "batch \(name) is partial: \(found) of \(batchSize)")
        if reported.contains(name) {
          XCTAssertEqual(found, batchSize, "batch \(name) was reported committed but is missing")
        }
      }
    }
    XCTAssertGreaterThanOrEqual(kills, 20, "every round should end in a SIGKILL")
    XCTAssertGreaterThan(reported.count, 0)
  }
}
