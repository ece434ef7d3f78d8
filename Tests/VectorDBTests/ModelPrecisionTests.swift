import Embedding
import Foundation
import XCTest

@testable import VectorDB

/// Precision as a property of a model version: `convertModel`, `importModel(precision:)`,
/// and re-embedding into a generation of one precision.
final class ModelPrecisionTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-precision-tests-" + UUID().uuidString
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  func testConvertedVersionRecordsItsPrecisionAndParent() throws {
    let db = try Database(path: path)
    let original = try db.importModel(directory: DefaultModel.directory)
    XCTAssertEqual(original.precision, .float32)
    let converted = try db.convertModel(version: 1, precision: .bfloat16)
    XCTAssertEqual(converted.version, 2)
    XCTAssertEqual(converted.parent, 1)
    XCTAssertEqual(converted.precision, .bfloat16)
    XCTAssertEqual(converted.lineage["converted_from"], .number(1))
    XCTAssertEqual(converted.weightsHash, original.weightsHash, "the same float32 weights")
    // Converting again finds the same version; converting to its own precision is refused.
    XCTAssertEqual(try db.convertModel(version: 1, precision: .bfloat16).version, 2)
    XCTAssertThrowsError(try db.convertModel(version: 2, precision: .bfloat16)) { error in
      XCTAssertTrue("\(error)".contains("already computes in bfloat16"), "\(error)")
    }
    XCTAssertThrowsError(try db.convertModel(version: 9, precision: .bfloat16))
    // Importing the same directory at bfloat16 finds the conversion's twin only by
    // precision: v1 stays float32, and a bfloat16 import is a version of its own.
    XCTAssertEqual(try db.importModel(directory: DefaultModel.directory).version, 1)
    let imported = try db.importModel(directory: DefaultModel.directory, precision: .bfloat16)
    XCTAssertEqual(imported.precision, .bfloat16)
    XCTAssertNotEqual(imported.version, 1)
    // The precision survives a reopen (the encoder is rebuilt from the stored settings).
    let reopened = try Database(path: path)
    XCTAssertEqual(try reopened.encoder(version: 2).precision, .bfloat16)
    XCTAssertEqual(try reopened.encoder(version: 1).precision, .float32)
  }

  func testReembedIntoTheConvertedVersionReplacesEveryVector() throws {
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let docs = try db.collection("docs")
    let texts = (0..<40).map { "note \($0) on vector search, topic \($0 % 5)" }
    try docs.upsert(texts.enumerated().map { Document(id: "d\($0.offset)", text: $0.element) })
    try db.convertModel(version: 1, precision: .bfloat16)
    let report = try docs.reembed(to: 2, batchSize: 16)
    XCTAssertTrue(report.switched)
    XCTAssertEqual(report.embedded, 40)
    XCTAssertEqual(try docs.generations().map(\.model), [1, 2])
    let float32 = try db.encoder(version: 1)
    let bfloat16 = try db.encoder(version: 2)
    let plan = try XCTUnwrap(try docs.indexPlan())
    for (index, text) in texts.enumerated() {
      let row = try docs.read { txn in
        DocumentRecord.row(
          of: try txn.get(db.schema.docs, key: Schema.docKey(collection: docs.id, id: "d\(index)"))!
        )
      }
      let stored = try XCTUnwrap(try docs.read { try plan.index.vector(of: row, in: $0) })
      XCTAssertGreaterThan(cosine(stored, bfloat16.embed(text)), 0.99999, "d\(index)")
      XCTAssertGreaterThan(cosine(stored, float32.embed(text)), 0.9999, "d\(index)")
    }
    XCTAssertEqual(try docs.query(text: "note 7 on vector search", k: 1).hits.first?.id, "d7")
  }
}
