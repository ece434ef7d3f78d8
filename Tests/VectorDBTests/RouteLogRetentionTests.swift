import Foundation
import XCTest

@testable import VectorDB

/// The routers' log retention on entries written straight to the store (no encoder): the
/// oldest bare decisions of all routers go first; training entries stay.
final class RouteLogRetentionTests: XCTestCase {
  func testPruneKeepsTheNewestBareDecisionsOfAllRoutersAndEveryTrainingEntry() throws {
    let directory = NSTemporaryDirectory() + "vdb-route-retention-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = try Database(path: directory)
    let store = db.schema.routing
    var routers: [UInt32] = []
    for name in ["a", "b"] {
      _ = try db.createRouter(name, paths: [RoutePath(name: "faq"), RoutePath(name: "agent")])
      routers.append(try db.environment.read { try store.record(name, in: $0)!.id })
    }
    let decision = RouteLogEntry.Decision(
      path: "faq", confidence: 0.9, escalated: false, version: 1)
    func entry(_ input: String, label: String? = nil, outcome: RouteOutcome? = nil)
      -> RouteLogEntry
    {
      RouteLogEntry(
        logID: 0, time: Date(), input: input, label: label,
        outcomes: outcome.map { ["agent": $0] } ?? [:], decision: label == nil ? decision : nil)
    }
    var bare: [UInt64] = []
    try db.environment.write { txn in
      _ = try store.append([entry("labelled", label: "faq")], router: routers[0], in: txn)
      _ = try store.append([entry("judged", outcome: .bad)], router: routers[1], in: txn)
      for i in 0..<30 {  // the two routers' decisions interleaved
        bare += try store.append([entry("request \(i)")], router: routers[i % 2], in: txn)
      }
    }
    func stored() throws -> Set<UInt64> {
      var ids: Set<UInt64> = []
      try db.environment.read { txn in
        try txn.forEach(in: store.log) { key, _ in
          ids.insert(key.loadUnaligned(fromByteOffset: 4, as: UInt64.self).bigEndian)
          return true
        }
      }
      return ids
    }
    let training = try stored().subtracting(bare)
    XCTAssertEqual(training.count, 2)

    try db.environment.write { txn in
      try store.prune(LogRetention(maxEntries: 12), now: Date(), in: txn)
    }
    XCTAssertEqual(try stored(), training.union(bare.suffix(10)))

    let later = Date().addingTimeInterval(60)
    try db.environment.write { txn in
      try store.prune(LogRetention(maxEntries: nil, maxAge: 30), now: later, in: txn)
    }
    XCTAssertEqual(try stored(), training, "every bare decision is older than 30 s by then")
  }
}
