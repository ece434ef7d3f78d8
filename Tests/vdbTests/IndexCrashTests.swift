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
      let vectors = (0..<rows).map { _ in
        (0..<dimension).map { _ in Float.random(in: -1..<1, using: &generator) }
      }
      let file = "\(directory)/b\(batch).fvecs"
      try VectorFile.fvecsBytes(vectors).write(to: URL(fileURLWithPath: file))
      script +=
        "'\(Shell.binary)' import --vectors '\(file)' -c v --metric l2 --batch-size \(rows) --db '\(db)' >/dev/null\n"
      script += "echo committed \(batch)\n"
    }
    var lastCommitted = -1
    let kills = try killRepeatedly(rounds: 12, delay: 100_000...900_000) {
      script
    } check: {
      committed in
      lastCommitted = committed.max() ?? -1
      guard FileManager.default.fileExists(atPath: db + "/data.mdb") else { return }
      let database = try Database(path: db)
      try database.verify()
      guard let collection = try? database.collection("v", create: false),
        let plan = try collection.indexPlan()
      else {
        return
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

  /// SIGKILL while `vdb import` builds the graph from new documents, 2,000 a batch (one
  /// write transaction each, records flushed at its end): after every kill the index
  /// holds whole batches only, and the graph is whole. Each round imports the next four
  /// batches not yet committed (a batch imported again unchanged is skipped, no build),
  /// and is killed after 0.5 to 3.5 times the first batch's import time, so the kills land
  /// in builds however fast the machine is.
  func testKillNineDuringGrowingBatchBuildsLeavesWholeBatches() throws {
    let directory = try Shell.temporaryDirectory("index-build-crash")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "g", "--vectors", "24", "--metric", "l2", "--db", db])
        .status, 0)
    let (rows, dimension) = (2000, 24)
    var generator = SystemRandomNumberGenerator()
    /// `vdb import` of batch `batch`'s file, written on first use.
    func importArguments(_ batch: Int) throws -> [String] {
      let file = "\(directory)/b\(batch).jsonl"
      if !FileManager.default.fileExists(atPath: file) {
        var lines = ""
        for row in 0..<rows {
          let vector = (0..<dimension).map { _ in
            String(format: "%.4f", Float.random(in: -1..<1, using: &generator))
          }
          lines +=
            "{\"_id\": \"b\(batch)-\(row)\", \"text\": \"row \(row)\", "
            + "\"vector\": [\(vector.joined(separator: ","))]}\n"
        }
        try lines.write(toFile: file, atomically: true, encoding: .utf8)
      }
      return ["import", file, "-c", "g", "--batch-size", "\(rows)", "--db", db]
    }
    // The index table comes with the first vectors (`verify` wants it from then on).
    let arguments = try importArguments(0)
    let started = Date()
    XCTAssertEqual(try Shell.vdb(arguments).status, 0)
    let oneBatch = UInt32(Date().timeIntervalSince(started) * 1_000_000)
    var committed: Set = [0]
    let kills = try killRepeatedly(rounds: 10, delay: oneBatch / 2...oneBatch * 7 / 2) {
      var script = "set -e\n"
      let next = committed.max()! + 1
      for batch in next..<next + 4 {
        let quoted = try importArguments(batch).map { "'\($0)'" }.joined(separator: " ")
        script += "'\(Shell.binary)' \(quoted) >/dev/null\n"
        script += "echo committed \(batch)\n"
      }
      return script
    } check: { reported in
      committed.formUnion(reported)
      let database = try Database(path: db)
      try database.verify()
      let collection = try database.collection("g", create: false)
      let plan = try XCTUnwrap(try collection.indexPlan())
      let report = try collection.read { try plan.index.checkIntegrity(in: $0) }
      XCTAssertEqual(report.problems, [])
      XCTAssertEqual(report.unreachable, [])
      let stored = try collection.read { try plan.index.count(in: $0) }
      XCTAssertEqual(stored % rows, 0, "\(stored) vectors: a batch is partly there")
      XCTAssertGreaterThanOrEqual(stored, committed.count * rows)
      XCTAssertEqual(try collection.count(), stored)
    }
    XCTAssertGreaterThan(kills, 5)
    XCTAssertGreaterThan(committed.count, 1, "some batches committed before the kills")
  }

  /// Runs the shell script `script()` gives `rounds` times, each killed with SIGKILL
  /// after a random number of microseconds in `delay`; after each kill calls `check`
  /// with the batches the scripts reported committed so far (their `echo committed N`
  /// lines). Returns the kills.
  private func killRepeatedly(
    rounds: Int, delay: ClosedRange<UInt32>, script: () throws -> String,
    check: (Set<Int>) throws -> Void
  ) throws -> Int {
    var kills = 0
    var committed = Set<Int>()
    for _ in 0..<rounds {
      let child = try Shell.startGroup(try script())
      usleep(UInt32.random(in: delay))
      let (output, killed) = Shell.killGroup(child)
      if killed { kills += 1 }
      for line in output.split(separator: "\n") where line.hasPrefix("committed ") {
        committed.insert(Int(line.dropFirst("committed ".count))!)
      }
      try check(committed)
    }
    return kills
  }
}
