import Foundation
import HNSW
import LMDB
import XCTest

@testable import VectorDB

/// SIGKILLs a process in the middle of inserting batches into an index and checks that
/// every committed batch is there whole, no uncommitted batch is there at all, and the
/// graph is consistent: no dangling links, every node reachable from the entry point.
///
/// The writer is this test binary run again on one test, `testChildInsertsBatches`,
/// which does its work only when `VDB_INDEX_CRASH_DB` is set.
final class IndexCrashTests: XCTestCase {
  static let dimension = 16
  static let batchSize = 100
  static let databaseVariable = "VDB_INDEX_CRASH_DB"

  func testKillNineDuringBatchInsertsLeavesAConsistentIndex() throws {
    let path = NSTemporaryDirectory() + "vdb-index-crash-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: path) }
    var generator = SystemRandomNumberGenerator()
    var committed = Set<Int>()
    var kills = 0
    for round in 0..<6 {
      let child = Process()
      child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
      child.arguments = ["VectorDBTests.IndexCrashTests/testChildInsertsBatches"]
      child.environment = ProcessInfo.processInfo.environment.merging([
        Self.databaseVariable: path, "VDB_INDEX_CRASH_ROUND": "\(round)",
      ]) { _, new in new }
      let output = Pipe()
      child.standardOutput = output
      child.standardError = FileHandle.nullDevice
      try child.run()
      usleep(UInt32.random(in: 300_000...1_200_000, using: &generator))
      if child.isRunning {
        kill(child.processIdentifier, SIGKILL)
        kills += 1
      }
      child.waitUntilExit()
      let printed = String(
        decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      for line in printed.split(separator: "\n") where line.hasPrefix("committed ") {
        committed.insert(Int(line.dropFirst("committed ".count))!)
      }

      let env = try Environment.open(path: path)
      let index = try VectorIndex.open("crash", in: env)
      try env.read { txn in
        let report = try index.checkIntegrity(in: txn)
        XCTAssertEqual(report.problems, [], "round \(round)")
        XCTAssertEqual(report.unreachable, [], "round \(round)")
        XCTAssertEqual(report.nodeCount % Self.batchSize, 0, "a batch is partly there")
        XCTAssertEqual(try index.count(in: txn), report.nodeCount)
        for batch in committed {
          for id in [batch * Self.batchSize, (batch + 1) * Self.batchSize - 1] {
            XCTAssertTrue(try index.contains(UInt32(id), in: txn), "batch \(batch) lost node \(id)")
          }
        }
        // The batches present are 0..<n: each child goes on from the count. Only the
        // batch in flight at the kill may be there without having been reported
        // (committed, killed before the print).
        let present = report.nodeCount / Self.batchSize
        let reported = (committed.max() ?? -1) + 1
        XCTAssertTrue(
          (reported...reported + 1).contains(present), "\(present) batches, \(reported) reported")
      }
    }
    XCTAssertGreaterThan(kills, 0, "no child was still running when killed")
    XCTAssertGreaterThan(committed.count, 0)
  }

  /// The writer: appends batches of random vectors, one write transaction each,
  /// printing "committed N" after each commit, until killed (or 200 batches).
  func testChildInsertsBatches() throws {
    guard let path = ProcessInfo.processInfo.environment[Self.databaseVariable] else {
      throw XCTSkip(
        "runs only as the child of testKillNineDuringBatchInsertsLeavesAConsistentIndex")
    }
    let env = try Environment.open(path: path)
    let index: VectorIndex
    do {
      index = try VectorIndex.open("crash", in: env)
    } catch VectorIndexError.notFound {
      index = try VectorIndex.create("crash", in: env, dimension: Self.dimension, metric: .l2)
    }
    var generator = SystemRandomNumberGenerator()
    var next = try env.read { try index.count(in: $0) } / Self.batchSize
    for _ in 0..<200 {
      let ids = (0..<Self.batchSize).map { UInt32(next * Self.batchSize + $0) }
      let vectors = (0..<Self.batchSize * Self.dimension).map { _ in
        Float.random(in: -1..<1, using: &generator)
      }
      try env.write { txn in try index.insert(ids: ids, vectors: vectors, threads: 2, in: txn) }
      print("committed \(next)")
      fflush(stdout)
      next += 1
    }
  }
}
