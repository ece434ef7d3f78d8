import Foundation
import HNSW
import XCTest

@testable import VectorDB

/// Lower modules' errors do not escape VectorDB's public functions: they become the
/// `VectorDBError` cases the documentation promises.
final class ErrorContractTests: XCTestCase {
  func testIndexErrorsBecomeTheCasesTheyStandFor() {
    XCTAssertThrowsError(try mappingErrors(path: "/d") { throw HNSWError.zeroVector }) {
      XCTAssertEqual($0 as? VectorDBError, .invalidVector(reason: HNSWError.zeroVector.description))
    }
    XCTAssertThrowsError(try mappingErrors(path: "/d") { throw HNSWError.corrupt("node 9") }) {
      guard case .damaged(let path, _) = $0 as? VectorDBError else { return XCTFail("\($0)") }
      XCTAssertEqual(path, "/d")
    }
    let own = VectorDBError.collectionNotFound("c")
    XCTAssertThrowsError(try mappingErrors(path: "/d") { throw own }) {
      XCTAssertEqual($0 as? VectorDBError, own)
    }
    XCTAssertThrowsError(try mappingErrors(path: "/d") { throw CancellationError() }) {
      XCTAssertTrue($0 is CancellationError, "\($0)")
    }
  }

  /// A re-embed asked for while another is in progress is a busy collection (HTTP 409),
  /// and a collection without vectors says so with its name.
  func testCollectionStatesAreTypedErrors() throws {
    let path = NSTemporaryDirectory() + "vdb-error-contract-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: path) }
    let db = try Database(path: path)
    let plain = try db.collection("plain", options: CollectionOptions(vectors: .none))
    XCTAssertThrowsError(try plain.reembed()) {
      XCTAssertEqual(
        $0 as? VectorDBError,
        .notAvailable(collection: "plain", reason: "has no vectors to re-embed")
      )
    }
    XCTAssertThrowsError(try plain.export(includeVectors: true) { _ in }) {
      XCTAssertEqual(
        $0 as? VectorDBError, .notAvailable(collection: "plain", reason: "has no vectors to export")
      )
    }
  }
}
