import Foundation
import XCTest

@testable import VectorDB

/// The query log's background writer: ids usable at once, unique under concurrency,
/// and queries that go on while another writer holds the lock.
final class QueryLogWriterTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-log-writer-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  private func collection(_ db: Database) throws -> DocumentCollection {
    let docs = try db.collection("c", options: .vectors(dimension: 2, metric: .l2))
    try docs.upsert(
      (0..<20).map { Document(id: "d\($0)", text: "") }, vectors: (0..<20).map { [Float($0), 1] })
    return docs
  }

  /// The hand-written stored JSON of an entry is the object `JSONEncoder` writes —
  /// same keys, same values — for tricky strings and with optionals absent or present;
  /// a score JSON cannot hold is refused, as by `JSONEncoder`.
  func testStoredJSONIsWhatTheEncoderWrites() throws {
    let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} del \u{7F} 漢字 🧪 /"
    let full = LogEntry(
      id: 0, time: Date(timeIntervalSince1970: 1_764_617_000.123_456), collection: tricky,
      kind: .query, text: tricky, model: 3, generation: 2, k: 10, filter: #"{"a":"\"b"}"#,
      hits: [.init(id: tricky, score: 0.812_345_6), .init(id: "d2", score: -1e-7)], adapter: 4,
      mode: .hybrid)
    let bare = LogEntry(
      id: 0, time: Date(timeIntervalSince1970: 0), collection: "c", kind: .judgement, text: nil,
      model: 0, generation: 0, k: 1, filter: nil, hits: [], adapter: nil)
    for entry in [full, bare] {
      var stored = entry
      stored.id = 77
      let mine = try JSONSerialization.jsonObject(with: Data(try entry.storedJSON(id: 77)))
      let theirs = try JSONSerialization.jsonObject(with: QueryLogStore.encoder.encode(stored))
      XCTAssertEqual(mine as? NSDictionary, theirs as? NSDictionary)
      XCTAssertEqual(
        try QueryLogStore.entryDecoder.decode(
          LogEntry.self, from: Data(try entry.storedJSON(id: 77))), stored)
    }
    var nan = bare
    nan.hits = [.init(id: "d", score: .nan)]
    XCTAssertThrowsError(try nan.storedJSON(id: 1))
  }

  func testFeedbackRightAfterTheQuery() throws {
    let db = try Database(path: path)
    let docs = try collection(db)
    for i in 0..<50 {
      let result = try docs.query(vector: [Float(i % 20), 1], k: 3)
      XCTAssertEqual(
        try docs.feedback(logID: XCTUnwrap(result.logID), documentID: "d0"),
        i % 20 <= 1 ? .click : .correction)
    }
    XCTAssertEqual(try db.logEntries(limit: 100).count, 50)
  }

  /// Threads querying at once (more queries than a block of ids): every id unique,
  /// every entry committed with its own hits; ids go on densely after a reopen.
  func testConcurrentQueriesGetUniqueIDs() throws {
    let last = try queryConcurrently()  // the database is closed when it returns
    let reopened = try Database(path: path)
    let next = try reopened.collection("c", create: false).query(vector: [0, 1], k: 1)
    XCTAssertEqual(next.logID, last + 1, "closing gave back the ids never handed out")
  }

  /// 4 threads × 400 queries; returns the largest log id.
  private func queryConcurrently() throws -> UInt64 {
    let db = try Database(path: path)
    let docs = try collection(db)
    let lock = NSLock()
    nonisolated(unsafe) var ids: [UInt64: Int] = [:]
    DispatchQueue.concurrentPerform(iterations: 4) { thread in
      for i in 0..<400 {
        let target = (thread * 400 + i) % 20
        let result = try! docs.query(vector: [Float(target), 1], k: 1)
        lock.withLock { ids[result.logID!] = target }
      }
    }
    XCTAssertEqual(ids.count, 1600)
    let entries = try db.logEntries(limit: 10_000)
    XCTAssertEqual(entries.count, 1600)
    for entry in entries {
      XCTAssertEqual(entry.hits.map(\.id), ["d\(ids[entry.id]!)"])
    }
    return entries.map(\.id).max()!
  }

  /// A writer holds the lock (as an import batch does) while queries run: they all
  /// return, and their entries are committed once the writer lets go.
  func testQueriesDoNotWaitForAWriter() throws {
    let db = try Database(path: path)
    let docs = try collection(db)
    _ = try docs.query(vector: [0, 1], k: 1)  // the process's first query reserves ids
    try db.flushLog()
    let holding = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    let writerDone = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      try! db.environment.write { _ in
        holding.signal()
        release.wait()
      }
      writerDone.signal()
    }
    holding.wait()
    let queried = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var logIDs: [UInt64] = []  // read after `queried` signals
    Thread.detachNewThread {
      for i in 0..<100 { logIDs.append(try! docs.query(vector: [Float(i % 20), 1], k: 2).logID!) }
      queried.signal()
    }
    let finished = queried.wait(timeout: .now() + 60)
    release.signal()
    writerDone.wait()
    XCTAssertEqual(finished, .success, "queries waited for the writer")
    try db.flushLog()
    XCTAssertEqual(logIDs.count, 100)
    for id in logIDs { XCTAssertNotNil(try db.logEntry(id)) }
  }
}
