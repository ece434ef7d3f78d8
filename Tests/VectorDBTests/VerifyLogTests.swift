import Foundation
import XCTest

@testable import VectorDB

/// `verifyReport` reads the logs: the query log and its feedback, the routers with their
/// versions, weights and logs; each damage written straight into the store is named.
final class VerifyLogTests: XCTestCase {
  private var path = ""

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-verify-logs-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  func testDamagedLogRecordsAreEachNamed() throws {
    let db = try Database(path: path)
    let notes = try db.collection("notes")
    try notes.upsert([Document(id: "lmdb", text: "LMDB is a memory-mapped key-value store")])
    let logID = try XCTUnwrap(try notes.query(text: "memory mapped store", k: 1).logID)
    try notes.feedback(logID: logID, documentID: "lmdb")
    _ = try db.createRouter("support", paths: [RoutePath(name: "faq"), RoutePath(name: "agent")])
    let store = db.schema.routing
    let router = try db.environment.read { try store.record("support", in: $0)!.id }
    func routeEntry(label: String) -> RouteLogEntry {
      RouteLogEntry(
        logID: 0, time: Date(), input: "where is my invoice", label: label, outcomes: [:],
        decision: nil)
    }
    try db.environment.write { txn in
      _ = try store.append([routeEntry(label: "faq")], router: router, in: txn)
    }
    let sound = try db.verifyReport()
    XCTAssertEqual(sound.problems, [])
    XCTAssertTrue(
      sound.checks.contains(
        "checked the logs: 1 query log entries, 1 feedback records, 1 routers, 1 routing log entries"
      ), "\(sound.checks)")

    let log = db.schema.log
    try db.environment.write { txn in
      try txn.put(log.entries, key: UInt64(logID + 1), value: Array("{\"log_id\":".utf8))
      try log.record(
        Feedback(documentID: "lmdb", kind: .click, relevance: 1, time: Date()), for: 9_999,
        in: txn)
      _ = try store.append([routeEntry(label: "billing")], router: router, in: txn)
      try txn.put(
        store.log, key: RouteLogKey(router: 77, log: 5), value: Array("{}".utf8))
      try txn.put(
        db.schema.meta, key: MetaKey.nextLogID,
        value: withUnsafeBytes(of: logID.littleEndian) { Array($0) })
    }
    let problems = try db.verifyReport().problems
    XCTAssertEqual(
      Set(problems),
      [
        "query log: entry \(logID + 1) is unreadable",
        "query log: entry \(logID) is past the counter of log ids (\(logID))",
        "feedback: for \"lmdb\" on entry 9999, which the log lacks",
        "route log of \"support\": entry 2 names a path the router lacks, \"billing\"",
        "route log: entry 5 of a missing router 77",
      ])
    XCTAssertThrowsError(try db.verify()) { error in
      guard case .damaged(_, let detail) = error as? VectorDBError else {
        return XCTFail("\(error)")
      }
      XCTAssertTrue(detail.hasSuffix("(and 4 more problems)"), detail)
    }
  }
}
