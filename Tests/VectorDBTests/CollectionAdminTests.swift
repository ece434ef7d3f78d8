import Foundation
import LMDB
import XCTest

@testable import VectorDB

/// Creating, listing, renaming and dropping collections; a drop leaves no key behind.
final class CollectionAdminTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-collection-admin-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  struct Stop: Error {}

  /// Every table and every key/value in it (the whole database, as bytes).
  private func contents(_ db: Database) throws -> [String: [[UInt8]: [UInt8]]] {
    var result: [String: [[UInt8]: [UInt8]]] = [:]
    for name in try db.environment.tableNames() {
      let table = try db.environment.table(name)
      result[name] = try db.environment.read { txn in
        var entries: [[UInt8]: [UInt8]] = [:]
        try txn.forEach(in: table) { key, value in
          entries[Array(key)] = Array(value)
          return true
        }
        return entries
      }
    }
    return result
  }

  /// Racing creators of one collection, each asking for other vectors: exactly one is
  /// told it created it, and the collection is the one it asked for.
  func testOfRacingCreatorsExactlyOneCreates() throws {
    let db = try Database(path: path)
    for round in 0..<20 {
      let name = "race\(round)"
      let lock = NSLock()
      nonisolated(unsafe) var winners: [Int] = []
      DispatchQueue.concurrentPerform(iterations: 4) { creator in
        do {
          _ = try db.createCollection(name, options: .vectors(dimension: creator + 2, metric: .l2))
          lock.withLock { winners.append(creator) }
        } catch VectorDBError.collectionExists {
        } catch {
          XCTFail("\(error)")
        }
      }
      XCTAssertEqual(winners.count, 1, "round \(round): \(winners)")
      let info = try XCTUnwrap(try db.collections().first { $0.name == name })
      XCTAssertEqual(info.dimension, winners.first.map { $0 + 2 })
    }
  }

  /// A collection with two generations (one retained), an interrupted-free state, log
  /// entries with feedback and a metadata index, dropped: the database holds exactly
  /// what it held before the collection was created (but for the id counters).
  func testDropLeavesNoTableOrKeyBehind() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first")
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let keep = try db.createCollection("keep")
    try keep.upsert(Document(id: "k", text: "a document that stays", metadata: ["tag": "x"]))
    let kept = try keep.query(text: "stays", k: 1)
    try keep.feedback(logID: XCTUnwrap(kept.logID), documentID: "k")
    let before = try contents(db)

    let docs = try db.createCollection("docs")
    try docs.upsert(
      (0..<40).map {
        Document(
          id: "d\($0)", text: "note \($0) about topic \($0 % 5)",
          metadata: ["n": .number(Double($0))])
      })
    try docs.reembed(all: true)  // generation 2 active, 1 retained
    try docs.delete("d3")
    let result = try docs.query(text: "topic 2", k: 3)
    try docs.feedback(logID: XCTUnwrap(result.logID), documentID: "d7")
    try docs.judge(query: "topic 4", relevant: ["d4": 1])
    XCTAssertEqual(try docs.generations().count, 2)

    try db.dropCollection("docs")
    XCTAssertThrowsError(try docs.count()) {
      XCTAssertEqual($0 as? VectorDBError, .collectionNotFound("docs"))
    }
    var after = try contents(db)
    // Counters move on (ids are never reused); nothing else may differ.
    for counter in ["nextCollection", "nextLogID"] {
      after["meta"]?[Array(counter.utf8)] = before["meta"]?[Array(counter.utf8)]
    }
    XCTAssertEqual(Set(after.keys), Set(before.keys), "tables")
    for (table, entries) in before {
      XCTAssertEqual(after[table]?.count, entries.count, "entries of \(table)")
      XCTAssertTrue(after[table] == entries, "table \(table) differs")
    }
    XCTAssertEqual(try db.collectionNames(), ["keep"])
    XCTAssertEqual(try keep.query(text: "stays", k: 1).hits.map(\.id), ["k"])
    try db.verify()
  }

  /// A re-embed job (interrupted here) holds the collection: drop and rename are
  /// refused naming it; `force` drops it and everything the job built.
  func testDropWithJobIsRefusedUnlessForced() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first")
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let before = try contents(db)
    let docs = try db.createCollection("docs")
    try docs.upsert((0..<30).map { Document(id: "d\($0)", text: "text \($0)") })
    XCTAssertThrowsError(try docs.reembed(all: true, batchSize: 10) { _ in throw Stop() })
    XCTAssertThrowsError(try db.dropCollection("docs")) { error in
      guard case .collectionBusy(let name, let job) = error as? VectorDBError else {
        return XCTFail("\(error)")
      }
      XCTAssertEqual(name, "docs")
      XCTAssertTrue(job.contains("re-embed job building generation 2"), job)
    }
    XCTAssertThrowsError(try db.renameCollection("docs", to: "other")) {
      guard case .collectionBusy = $0 as? VectorDBError else { return XCTFail("\($0)") }
    }
    try db.dropCollection("docs", force: true)
    var after = try contents(db)
    after["meta"]?[Array("nextCollection".utf8)] = before["meta"]?[Array("nextCollection".utf8)]
    XCTAssertEqual(Set(after.keys), Set(before.keys))
    XCTAssertTrue(after == before)
  }

  func testCreateListRename() throws {
    let db = try Database(path: path)
    let sift = try db.createCollection("sift", options: .vectors(dimension: 4, metric: .l2))
    try sift.upsert([Document(id: "a", text: "")], vectors: [[1, 2, 3, 4]])
    try db.createCollection("plain", options: CollectionOptions(vectors: .none))
    XCTAssertThrowsError(try db.createCollection("sift")) {
      XCTAssertEqual($0 as? VectorDBError, .collectionExists("sift"))
    }
    let listed = try db.collections()
    XCTAssertEqual(listed.map(\.name), ["plain", "sift"])
    XCTAssertEqual(listed[1].documents, 1)
    XCTAssertEqual(listed[1].dimension, 4)
    XCTAssertEqual(listed[1].metric, "l2")
    XCTAssertNil(listed[0].dimension)

    let result = try sift.query(vector: [1, 2, 3, 4], k: 1)
    XCTAssertThrowsError(try db.renameCollection("sift", to: "plain")) {
      XCTAssertEqual($0 as? VectorDBError, .collectionExists("plain"))
    }
    XCTAssertThrowsError(try db.renameCollection("nope", to: "x")) {
      XCTAssertEqual($0 as? VectorDBError, .collectionNotFound("nope"))
    }
    XCTAssertThrowsError(try db.renameCollection("sift", to: "")) {
      guard case .invalidInput = $0 as? VectorDBError else { return XCTFail("\($0)") }
    }
    try db.renameCollection("sift", to: "vectors")
    XCTAssertEqual(try db.collectionNames(), ["plain", "vectors"])
    XCTAssertThrowsError(try sift.count()) {
      XCTAssertEqual($0 as? VectorDBError, .collectionNotFound("sift"))
    }
    let renamed = try db.collection("vectors", create: false)
    XCTAssertEqual(try renamed.get("a")?.id, "a")
    XCTAssertEqual(try renamed.query(vector: [1, 2, 3, 4], k: 1).hits.map(\.id), ["a"])
    // The log followed the collection: feedback on the old query works under the new name.
    XCTAssertEqual(try renamed.feedback(logID: XCTUnwrap(result.logID), documentID: "a"), .click)
    try db.verify()
  }

  /// Renames racing writes: every write committed before a rename stays counted (the
  /// rename saves the record as of its own transaction, not as it read it earlier).
  func testRenamesRacingWritesLoseNothing() throws {
    let db = try Database(path: path)
    _ = try db.collection("a", options: .vectors(dimension: 2, metric: .l2))
    let names = ["a", "b"]
    let written = Counter()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) {
      for i in 0..<400 {
        for name in names {
          guard let docs = try? db.collection(name, create: false),
            (try? docs.upsert([Document(id: "d\(i)", text: "")], vectors: [[Float(i), 1]])) != nil
          else { continue }
          written.add()
          break
        }
      }
    }
    for round in 0..<300 {
      try db.renameCollection(names[round % 2], to: names[(round + 1) % 2])
    }
    group.wait()
    let docs = try db.collection("a", create: false)
    XCTAssertEqual(try docs.count(), written.value)
    XCTAssertEqual(try docs.documents(matching: Filter.all([]), limit: 1_000).count, written.value)
    try db.verify()
  }
}

/// A count shared between threads.
private final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func add() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}
