import Foundation
import XCTest

@testable import VectorDB

/// SIGKILL during imports: the text index is written in the documents' transactions,
/// so after every kill each batch is either wholly searchable by keyword or wholly
/// absent, and the index's counts match the documents.
final class TextIndexCrashTests: XCTestCase {
  func testKillNineDuringImportLeavesDocumentsAndTextIndexInStep() throws {
    let directory = try Shell.temporaryDirectory("text-crash")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let batchSize = 300
    let batchesPerRound = 24
    var generator = SystemRandomNumberGenerator()
    var kills = 0
    for round in 0..<6 {
      var script = "set -e\n"
      for batch in 0..<batchesPerRound {
        let name = "r\(round)b\(batch)"
        try Shell.writeBatch("\(directory)/\(name).jsonl", prefix: name, count: batchSize)
        script +=
          "'\(Shell.binary)' import '\(directory)/\(name).jsonl' -c crash --db '\(db)' --batch-size \(batchSize) > /dev/null\n"
      }
      let before = try Database(path: db).collection("crash").count()
      let child = try Shell.startGroup(script)
      // Kill at a random moment after the round's first batch is in, whatever the
      // machine's speed.
      let deadline = Date().addingTimeInterval(60)
      while try Database(path: db).collection("crash").count() == before && Date() < deadline {
        usleep(5_000)
      }
      usleep(UInt32.random(in: 0...300_000, using: &generator))
      if Shell.killGroup(child).killed { kills += 1 }

      let collection = try Database(path: db).collection("crash")
      let total = try collection.count()
      var searchable = 0
      for batch in 0..<batchesPerRound {
        let name = "r\(round)b\(batch)"
        let hits = try collection.query(
          texts: [name], options: QueryOptions(k: 10 * batchSize, log: false, mode: .keyword)
        )[0].hits
        let stored = try collection.get((0..<batchSize).map { "\(name)-\($0)" }).compactMap { $0 }
        XCTAssertEqual(hits.count, stored.count, "batch \(name): index and documents differ")
        XCTAssertTrue(hits.count == 0 || hits.count == batchSize, "batch \(name) is partial")
        searchable += hits.count
      }
      let record = try XCTUnwrap(try Database(path: db).collectionRecord("crash")?.text)
      XCTAssertEqual(record.documents, total, "the index counts every document once")
      XCTAssertGreaterThanOrEqual(total, searchable)
    }
    XCTAssertGreaterThanOrEqual(kills, 4, "most rounds should end in a SIGKILL")
  }
}
