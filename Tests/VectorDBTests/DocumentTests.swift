import Foundation
import XCTest

@testable import VectorDB

final class DocumentTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-doc-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  func testUpsertGetReplaceDelete() throws {
    let notes = try Database(path: path).collection("notes")
    try notes.upsert(Document(id: "a", text: "first", metadata: ["tag": "x", "n": 3]))
    XCTAssertEqual(
      try notes.get("a"), Document(id: "a", text: "first", metadata: ["tag": "x", "n": 3]))
    try notes.upsert(Document(id: "a", text: "second"))
    XCTAssertEqual(try notes.get("a")?.text, "second")
    XCTAssertEqual(try notes.get("a")?.metadata, [:])
    XCTAssertEqual(try notes.count(), 1)
    XCTAssertTrue(try notes.delete("a"))
    XCTAssertFalse(try notes.delete("a"))
    XCTAssertNil(try notes.get("a"))
    XCTAssertEqual(try notes.count(), 0)
    try Database(path: path).verify()
  }

  func testBatchIsOneTransactionAndLastDuplicateWins() throws {
    let docs = try Database(path: path).collection("docs")
    try docs.upsert([
      Document(id: "x", text: "one"), Document(id: "y", text: "two"),
      Document(id: "x", text: "three"),
    ])
    XCTAssertEqual(try docs.count(), 2)
    XCTAssertEqual(try docs.get("x")?.text, "three")
    // An invalid document anywhere in the batch: nothing is written.
    XCTAssertThrowsError(
      try docs.upsert([Document(id: "z", text: "ok"), Document(id: "", text: "bad")]))
    XCTAssertNil(try docs.get("z"))
    try Database(path: path).verify()
  }

  func testIdsAreValidated() throws {
    let docs = try Database(path: path).collection("docs")
    XCTAssertThrowsError(try docs.upsert(Document(id: "", text: "t"))) { error in
      XCTAssertEqual("\(error)", "document \"\": the id is empty")
    }
    let long = String(repeating: "é", count: 300)
    XCTAssertThrowsError(try docs.upsert(Document(id: long, text: "t"))) { error in
      XCTAssertTrue("\(error)".contains("600 bytes long; the limit is 400"), "\(error)")
    }
  }

  func testEmptyAndHugeTexts() throws {
    let docs = try Database(path: path).collection("docs")
    let huge = String(repeating: "0123456789", count: 1_000_000)
    try docs.upsert([Document(id: "empty", text: ""), Document(id: "huge", text: huge)])
    XCTAssertEqual(try docs.get("empty")?.text, "")
    XCTAssertEqual(try docs.get("huge")?.text.count, 10_000_000)
    try Database(path: path).verify()
  }

  func testScanInIdOrderWithPaging() throws {
    let docs = try Database(path: path).collection("docs")
    try docs.upsert((0..<25).map { Document(id: String(format: "d%02d", $0), text: "t\($0)") })
    try Database(path: path).collection("other").upsert(Document(id: "a", text: "elsewhere"))
    let first = try docs.documents(limit: 10)
    XCTAssertEqual(first.map(\.id), (0..<10).map { String(format: "d%02d", $0) })
    let second = try docs.documents(after: first.last!.id, limit: 10)
    XCTAssertEqual(second.first?.id, "d10")
    let last = try docs.documents(after: "d19", limit: 100)
    XCTAssertEqual(last.map(\.id), (20..<25).map { String(format: "d%02d", $0) })
    XCTAssertEqual(try docs.documents(offset: 24, limit: 5).map(\.id), ["d24"])
  }

  func testContentHashFollowsTheText() throws {
    XCTAssertEqual(
      Document(id: "a", text: "same").contentHash, Document(id: "b", text: "same").contentHash)
    XCTAssertNotEqual(
      Document(id: "a", text: "same").contentHash, Document(id: "a", text: "other").contentHash)
    XCTAssertEqual(
      ContentHash(text: "abc").description,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }

  func testCollectionsAreSeparateAndDroppable() throws {
    let db = try Database(path: path)
    try db.collection("a").upsert(Document(id: "1", text: "in a"))
    try db.collection("b").upsert(Document(id: "1", text: "in b"))
    XCTAssertEqual(try db.collectionNames(), ["a", "b"])
    XCTAssertEqual(try db.collection("a").get("1")?.text, "in a")
    try db.dropCollection("a")
    XCTAssertEqual(try db.collectionNames(), ["b"])
    XCTAssertThrowsError(try db.collection("a", create: false)) { error in
      XCTAssertEqual(error as? VectorDBError, .collectionNotFound("a"))
    }
    XCTAssertEqual(try db.collection("b").get("1")?.text, "in b")
    try db.verify()
  }

  func testReopenKeepsEverything() throws {
    do {
      try Database(path: path).collection("keep").upsert(
        Document(id: "k", text: "kept", metadata: ["a": [1, 2]]))
    }
    let reopened = try Database(
      path: path,
      options: {
        var o = Database.Options()
        o.create = false
        return o
      }())
    XCTAssertEqual(try reopened.collection("keep").get("k")?.metadata, ["a": [1, 2]])
  }
}

final class OpenTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-open-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  private func openError(create: Bool = true) -> VectorDBError? {
    var options = Database.Options()
    options.create = create
    do {
      _ = try Database(path: path, options: options)
      return nil
    } catch {
      return error as? VectorDBError
    }
  }

  func testMissingDatabaseWithoutCreate() {
    XCTAssertEqual(openError(create: false), .databaseNotFound(path: path))
  }

  func testPathThatIsAFile() {
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("hello".utf8)))
    XCTAssertEqual(openError(), .notADatabase(path: path, reason: "it is a file, not a directory"))
  }

  func testDirectoryOfAnotherProgram() throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    XCTAssertTrue(
      FileManager.default.createFile(atPath: path + "/notes.txt", contents: Data("x".utf8)))
    guard case .notADatabase(_, let reason) = openError() else {
      return XCTFail("expected notADatabase")
    }
    XCTAssertTrue(reason.contains("notes.txt"), reason)
  }

  func testGarbageDataFileIsDamagedNotEmpty() throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    try Data(repeating: 0xAB, count: 20_000).write(to: URL(fileURLWithPath: path + "/data.mdb"))
    guard case .damaged = openError() else { return XCTFail("expected damaged") }
  }

  func testNewerFormatIsRefused() throws {
    let db = try Database(path: path)
    try db.environment.write { txn in
      try txn.put(
        db.schema.meta, key: "format",
        value: withUnsafeBytes(of: UInt32(99).littleEndian) { Array($0) })
    }
    XCTAssertThrowsError(try Database(path: path)) { error in
      XCTAssertEqual(
        error as? VectorDBError,
        .newerFormat(path: path, found: 99, supported: Schema.formatVersion))
    }
    try db.environment.write { txn in
      try txn.put(
        db.schema.meta, key: "format",
        value: withUnsafeBytes(of: Schema.formatVersion.littleEndian) { Array($0) })
    }
  }

  func testTruncatedDataFileIsDamaged() throws {
    do {
      let docs = try Database(path: path).collection("docs")
      try docs.upsert(
        (0..<2000).map { Document(id: "d\($0)", text: String(repeating: "x", count: 500)) })
    }
    // A fresh process would map the truncated file; simulate with a copy.
    let copy = path + "-copy"
    try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: copy) }
    let data = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
    try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: copy + "/data.mdb"))
    // Read-only too (its first open probes the tables: a page past the end was a SIGBUS).
    var readOnly = Database.Options()
    readOnly.readOnly = true
    for options in [Database.Options(), readOnly] {
      XCTAssertThrowsError(try Database(path: copy, options: options)) { error in
        guard case .damaged(_, let detail) = error as? VectorDBError else {
          return XCTFail("\(error)")
        }
        XCTAssertTrue(detail.contains("truncated"), detail)
      }
    }
  }
}
