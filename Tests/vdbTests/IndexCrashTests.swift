import Foundation
import XCTest

@testable import VectorDB

/// SIGKILL during index writes: `vdb import --vectors` rewrites the vectors of the same
/// 400 documents batch after batch (each an update: unlink, relink, re-prune) and is
/// killed at random moments; after every kill the graph must be whole: no dangling
/// link, every node reachable, one node per document.
final class IndexCrashTests: XCTestCase {
  func testKillNineDuringIndexWritesLeavesAConsistentGraph() throws {
    let directory = try Shell.temporaryDirectory("index-crash")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let rows = 400
    let dimension = 24
    var generator = SystemRandomNumberGenerator()
    var script = "set -e\n"
    for batch in 0..<30 {
      var bytes: [UInt8] = []
      for _ in 0..<rows {
        withUnsafeBytes(of: Int32(dimension).littleEndian) { bytes += $0 }
        for _ in 0..<dimension {
          withUnsafeBytes(of: Float.random(in: -1..<1, using: &generator).bitPattern.littleEndian) {
            bytes += $0
          }
        }
      }
      let file = "\(directory)/b\(batch).fvecs"
      try Data(bytes).write(to: URL(fileURLWithPath: file))
      script +=
        "'\(Shell.binary)' import --vectors '\(file)' -c v --metric l2 --batch-size \(rows) --db '\(db)' >/dev/null\n"
      script += "echo committed \(batch)\n"
    }
    var kills = 0
    var lastCommitted = -1
    for _ in 0..<12 {
      let child = try Shell.startGroup(script)
      usleep(UInt32.random(in: 100_000...900_000, using: &generator))
      let (output, killed) = Shell.killGroup(child)
      if killed { kills += 1 }
      for line in output.split(separator: "\n") where line.hasPrefix("committed ") {
        lastCommitted = max(lastCommitted, Int(line.dropFirst("committed ".count))!)
      }
      guard FileManager.default.fileExists(atPath: db + "/data.mdb") else { continue }
      let database = try Database(path: db)
      try database.verify()
      guard let collection = try? database.collection("v", create: false),
        let plan = try collection.indexPlan()
      else {
        continue
      }
      let report = try collection.read { try plan.index.checkIntegrity(in: $0) }
      XCTAssertEqual(report.problems, [])
      XCTAssertEqual(report.unreachable, [])
      // Before the first batch commits the collection may exist empty; after, whole.
      let stored = try collection.count()
      let expected = lastCommitted >= 0 || stored > 0 ? rows : 0
      XCTAssertEqual(try collection.read { try plan.index.count(in: $0) }, expected)
      XCTAssertEqual(try collection.count(), expected)
    }
    XCTAssertGreaterThan(kills, 6)
    XCTAssertGreaterThanOrEqual(lastCommitted, 0, "some batches committed before the kills")
  }
}
