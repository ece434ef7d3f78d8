import Foundation
import LMDB
import XCTest

@testable import VectorDB

/// `verifyReport` compares the indexes derived from the documents, the metadata index and
/// the text index, with the documents, and reads each stored record under its own key:
/// an entry lost, added or changed in place is named.
final class VerifyIndexTests: XCTestCase {
  private var path = ""
  private var db: Database!
  /// The collection's id, the first part of its index keys.
  private var collection: UInt32 = 0

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-verify-indexes-" + UUID().uuidString
    db = try Database(path: path)
    let notes = try db.collection("notes", options: CollectionOptions(vectors: .none))
    try notes.upsert([
      Document(id: "a", text: "LMDB maps the whole file", metadata: ["tag": "storage", "n": 1]),
      Document(id: "b", text: "the file is mapped read only", metadata: ["tag": "storage"]),
      Document(id: "c", text: "routers pick a path", metadata: ["tags": ["route", "x"]]),
    ])
    // Writes after the first, so the indexes are the sum of several transactions.
    _ = try notes.delete(["b"])
    try notes.upsert([Document(id: "b", text: "the file is mapped; the file", metadata: [:])])
    try notes.update(id: "c", metadata: ["tags": ["route"]])
    collection = notes.id
  }

  override func tearDownWithError() throws {
    db = nil
    try? FileManager.default.removeItem(atPath: path)
  }

  /// The problems after `damage` writes into the store.
  private func problems(after damage: (Schema, WriteTransaction) throws -> Void) throws -> [String]
  {
    XCTAssertEqual(try db.verifyReport().problems, [])
    let schema = db.schema
    try db.environment.write { try damage(schema, $0) }
    return try db.verifyReport().problems
  }

  /// The keys of `table` in order.
  private func keys(of table: Table) throws -> [[UInt8]] {
    try db.environment.read { txn in
      var keys: [[UInt8]] = []
      try txn.forEach(in: table) { key, _ in
        keys.append(Array(key))
        return true
      }
      return keys
    }
  }

  func testALostMetadataIndexEntryIsNamed() throws {
    let first = try XCTUnwrap(keys(of: db.schema.metadataIndex).first)
    let row = first.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    XCTAssertEqual(
      try problems { schema, txn in try txn.delete(schema.metadataIndex, key: first) },
      ["collection \"notes\": the metadata index disagrees with the metadata of row \(row)"])
  }

  func testAMetadataIndexEntryOfNoDocumentIsNamed() throws {
    let key = MetadataIndexKey(collection: collection, field: "tag", value: [0x02], row: 77)
    XCTAssertEqual(
      try problems { schema, txn in try txn.put(schema.metadataIndex, key: key, value: [UInt8]()) },
      [
        "collection \"notes\": the metadata index disagrees with the metadata of row 77"
          + " (no document has it)"
      ])
  }

  func testAChangedPostingIsNamedByTermAndRow() throws {
    // The block of "file": rows 0 ("a", tf 1) and 3 (the new "b", tf 2).
    let key = TextKey.block(0, of: "file", collection: collection)
    let blocks = try db.environment.read { txn in
      try txn.get(db.schema.text, key: key).map { Array($0) }
    }
    XCTAssertEqual(
      blocks,
      PostingsBlock.encode(
        [
          .init(document: 0, frequency: 1, length: 4),
          .init(document: 3, frequency: 2, length: 3),
        ], block: 0))
    let changed = PostingsBlock.encode(
      [.init(document: 0, frequency: 1, length: 4), .init(document: 3, frequency: 1, length: 3)],
      block: 0)
    XCTAssertEqual(
      try problems { schema, txn in try txn.put(schema.text, key: key, value: changed) },
      ["collection \"notes\": the text index disagrees with the text of row 3"])
  }

  func testLostTermStatisticsAndBlocksAreNamed() throws {
    XCTAssertEqual(
      try problems { schema, txn in
        try txn.delete(schema.text, key: TextKey.term("path", collection: collection))
        try txn.delete(schema.text, key: TextKey.block(0, of: "pick", collection: collection))
      },
      [
        "collection \"notes\": term \"path\" has postings (1) but no statistics",
        "collection \"notes\": term \"pick\" counts 1 documents (max tf 1); its postings hold 0"
          + " (max tf 0)",
        "collection \"notes\": the text index disagrees with the text of row 2",
      ])
  }

  func testRecordsUnderAnotherKeyAreNamed() throws {
    XCTAssertEqual(
      try problems { schema, txn in
        let record = Array(try XCTUnwrap(try txn.get(schema.collections, key: "notes")))
        try txn.delete(schema.collections, key: "notes")
        try txn.put(schema.collections, key: "memos", value: record)
      },
      ["collections: the record stored as collection \"memos\" names \"notes\""])
  }
}
