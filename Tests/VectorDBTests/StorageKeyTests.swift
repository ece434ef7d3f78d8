import Foundation
import LMDB
import XCTest

@testable import VectorDB

/// Pins every key layout to bytes: a database written by an older build must keep
/// opening, so a change here is a format change (see `Keys.swift`).
final class StorageKeyTests: XCTestCase {
  private func bytes(_ key: some LMDBKey) -> [UInt8] { key.withKeyBytes { Array($0) } }

  func testKeyLayoutsAreTheFormat() {
    let collection: [UInt8] = [0, 0, 0x01, 0x02]  // 258
    XCTAssertEqual(
      bytes(DocumentKey(collection: 258, id: "d-é")), collection + Array("d-é".utf8))
    XCTAssertEqual(
      DocumentKey(collection: 258, id: "d").successor, collection + [UInt8(ascii: "d"), 0])
    XCTAssertEqual(bytes(RowKey(collection: 258, row: 7)), collection + [0, 0, 0, 7])
    XCTAssertEqual(bytes(GenerationKey(collection: 258, generation: 3)), collection + [0, 0, 0, 3])
    XCTAssertEqual(
      bytes(SourceKey(collection: 258, generation: 3, row: 0x0102_0304)),
      collection + [0, 0, 0, 3, 1, 2, 3, 4])
    XCTAssertEqual(
      bytes(MetadataIndexKey(collection: 258, field: "a.b", value: [0x02], row: 9)),
      collection + [0, 3] + Array("a.b".utf8) + [0x02] + [0, 0, 0, 9])
    XCTAssertEqual(
      bytes(FeedbackKey(log: 0x0102, document: "x")), [0, 0, 0, 0, 0, 0, 1, 2, UInt8(ascii: "x")])
    XCTAssertEqual(bytes(LogKey(5)), [0, 0, 0, 0, 0, 0, 0, 5])
    XCTAssertEqual(bytes(ModelKey(5)), [0, 0, 0, 5])
    XCTAssertEqual(
      bytes(ModelBlobKey(version: 2, part: .weights)), [0, 0, 0, 2] + Array("weights".utf8))
    XCTAssertEqual(
      ModelBlobKey.Part.allCases.map(\.rawValue),
      ["settings", "vocab", "weights", "lora", "adapter", "trained_queries"])
    XCTAssertEqual(bytes(RouterVersionKey(router: 1, version: 2)), [0, 0, 0, 1, 0, 0, 0, 2])
    XCTAssertEqual(
      bytes(RouteLogKey(router: 1, log: 2)), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2])
    let input = ContentHash(text: "x")
    XCTAssertEqual(
      bytes(RouterVectorKey(model: 2, router: 1, input: input)),
      [0, 0, 0, 2, 0, 0, 0, 1] + input.bytes)
    XCTAssertEqual(
      bytes(RouterVectorKey(model: 2, router: 1, input: input)).count, RouterVectorKey.byteCount)
    XCTAssertEqual(
      MetaKey.allCases.map(\.rawValue),
      [
        "magic", "format", "created", "nextCollection", "defaultModel", "nextLogID",
        "logRetention", "nextRouter", "nextRouteLogID", "routeLogSizeAfterPrune",
      ])
    XCTAssertEqual(
      bytes(CollectionMetaKey(collection: 12, record: .trainCheckpoint)),
      Array("collection.12.train.checkpoint".utf8))
    XCTAssertEqual(
      CollectionMetaKey.Record.allCases.map(\.rawValue),
      ["train.run", "train.checkpoint", "train.fit", "train.owner", "fusion"])
  }

  func testKeysDecodeWhatTheyEncode() {
    func decode<T>(_ key: some LMDBKey, _ read: (UnsafeRawBufferPointer) -> T) -> T {
      key.withKeyBytes(read)
    }
    XCTAssertEqual(decode(DocumentKey(collection: 1, id: "doc-ü"), DocumentKey.id(of:)), "doc-ü")
    XCTAssertEqual(decode(DocumentKey(collection: 1, id: ""), DocumentKey.id(of:)), "")
    XCTAssertEqual(decode(RowKey(collection: 1, row: 77), RowKey.row(of:)), 77)
    let vectorKey = RouterVectorKey(model: 3, router: 9, input: ContentHash(text: "é"))
    XCTAssertEqual(decode(vectorKey, RouterVectorKey.decode), vectorKey)
    XCTAssertNil(decode([UInt8](repeating: 0, count: 39), RouterVectorKey.decode))
    XCTAssertNil(decode([UInt8](repeating: 0, count: 5), RowKey.row(of:)))
    XCTAssertEqual(
      decode(SourceKey(collection: 1, generation: 2, row: 0xFFFF_FFFF), SourceKey.row(of:)),
      0xFFFF_FFFF)
    XCTAssertNil(decode([UInt8](repeating: 0, count: 8), SourceKey.row(of:)))
    let field = MetadataIndexKey.field("tag", of: 4)
    let decoded = decode(
      MetadataIndexKey(collection: 4, field: "tag", value: [0x04, 0, 1, 0x61], row: 6)
    ) { MetadataIndexKey.decode($0, in: field).map { (Array($0.value), $0.row) } }
    XCTAssertEqual(decoded?.0, [0x04, 0, 1, 0x61])
    XCTAssertEqual(decoded?.1, 6)
  }

  func testRangesHoldExactlyTheirKeys() {
    let range = KeyRange.collection(7)
    XCTAssertTrue(decodeContains(range, DocumentKey(collection: 7, id: "")))
    XCTAssertTrue(decodeContains(range, RowKey(collection: 7, row: .max)))
    XCTAssertFalse(decodeContains(range, DocumentKey(collection: 8, id: "")))
    XCTAssertFalse(decodeContains(range, DocumentKey(collection: 0x0700, id: "")))
    let records = CollectionMetaKey.collection(1)
    XCTAssertTrue(decodeContains(records, CollectionMetaKey(collection: 1, record: .fusion)))
    XCTAssertFalse(decodeContains(records, CollectionMetaKey(collection: 12, record: .fusion)))
    XCTAssertFalse(decodeContains(records, MetaKey.nextCollection))
    XCTAssertTrue(decodeContains(FeedbackKey.entry(3), FeedbackKey(log: 3, document: "a")))
    XCTAssertFalse(decodeContains(FeedbackKey.entry(3), FeedbackKey(log: 4, document: "")))
    let input = ContentHash(text: "x")
    XCTAssertTrue(
      decodeContains(RouterVectorKey.model(2), RouterVectorKey(model: 2, router: 7, input: input)))
    XCTAssertFalse(
      decodeContains(RouterVectorKey.model(2), RouterVectorKey(model: 3, router: 0, input: input)))
  }

  private func decodeContains(_ range: KeyRange, _ key: some LMDBKey) -> Bool {
    key.withKeyBytes { range.contains($0) }
  }

  /// docs/storage-format.md lists exactly the tables `Schema` opens, each `meta` key, and
  /// for each table outside the text index the key layout `Schema.keyLayouts` gives.
  func testStorageFormatDocumentMatchesTheSchema() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../docs/storage-format.md")
    let text = try String(contentsOf: url, encoding: .utf8)
    let section = try XCTUnwrap(text.components(separatedBy: "## Tables").dropFirst().first)
    var keys: [String: [String]] = [:]
    for line in section.split(separator: "\n") where line.hasPrefix("| `") {
      let cells = line.split(separator: "|", omittingEmptySubsequences: false)
        .map { $0.trimmingCharacters(in: .whitespaces) }
      keys[cells[1].trimmingCharacters(in: ["`"]), default: []].append(cells[2])
    }
    XCTAssertEqual(
      Set(keys.keys), Schema.tableNames.union(["index.C.G"]), "the tables of storage-format.md")
    XCTAssertEqual(
      Set(Schema.keyLayouts.keys).union(["meta", "text"]), Schema.tableNames,
      "every fixed table has its key layout")
    for (table, layout) in Schema.keyLayouts {
      XCTAssertEqual(keys[table], [layout], "the key of \(table)")
    }
    let metaNames = Set(
      (keys["meta"] ?? []).flatMap { cell in
        cell.split(separator: "\"").enumerated().filter { $0.offset % 2 == 1 }.map {
          String($0.element)
        }
      })
    let expected = Set(
      MetaKey.allCases.map(\.rawValue)
        + CollectionMetaKey.Record.allCases.map { "collection.ID.\($0.rawValue)" })
    XCTAssertEqual(metaNames, expected, "the meta keys of storage-format.md")
  }
}
