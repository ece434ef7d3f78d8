import Embedding
import Foundation
import LMDB
import XCTest

@testable import VectorDB

/// The full-text index in the database: kept in step with writes, BM25 queries,
/// `$text` filters, hybrid search, and each bad input's defined behaviour.
final class KeywordSearchTests: XCTestCase {
  var path: String!

  static let notes = [
    Document(
      id: "lmdb", text: "LMDB is a memory-mapped B+tree key-value store with ACID transactions.",
      metadata: ["topic": "storage"]),
    Document(
      id: "hnsw",
      text: "HNSW builds a hierarchy of proximity graphs for approximate nearest neighbour search.",
      metadata: ["topic": "index"]),
    Document(
      id: "error", text: "Access denied: error 0x80070005 when the store is opened read-only.",
      metadata: ["topic": "storage"]),
    Document(
      id: "cake", text: "Bake the sponge cake for thirty minutes until golden.",
      metadata: ["topic": "food"]),
    Document(id: "tokyo", text: "東京タワーは東京の観光地です。", metadata: ["topic": "travel"]),
  ]

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-keyword-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// A database without a model: its text collections are documents only.
  private func notes(_ name: String = "notes") throws -> DocumentCollection {
    let collection = try Database(path: path).collection(name)
    try collection.upsert(Self.notes)
    return collection
  }

  private func keyword(
    _ collection: DocumentCollection, _ text: String, k: Int = 10,
    filter: Filter? = nil, exact: Bool = false
  ) throws -> [String] {
    try collection.query(
      texts: [text],
      options: QueryOptions(k: k, filter: filter, exact: exact, log: false, mode: .keyword)
    )[0].hits.map(\.id)
  }

  func testKeywordQueriesFindTheirTermsAndSayTheSource() throws {
    let collection = try notes()
    XCTAssertEqual(try keyword(collection, "error 0x80070005"), ["error"])
    // Stemmed and lower-cased: "Stores" finds "store".
    XCTAssertEqual(Set(try keyword(collection, "Stores")), ["lmdb", "error"])
    let hit = try collection.query(text: "graphs", log: false).hits[0]  // documents only: keyword
    XCTAssertEqual(hit.id, "hnsw")
    XCTAssertNil(hit.sources?.dense)
    XCTAssertEqual(hit.sources?.keyword?.rank, 1)
    XCTAssertEqual(hit.sources?.keyword?.score, hit.score)
  }

  func testCachedPostingsFollowEveryWrite() throws {
    let collection = try notes()
    XCTAssertEqual(try keyword(collection, "sponge cake"), ["cake"])  // now cached
    try collection.upsert([Document(id: "cake", text: "Boil the pasta, then add the sponge.")])
    XCTAssertEqual(try keyword(collection, "cake"), [])
    XCTAssertEqual(try keyword(collection, "sponge pasta"), ["cake"])
    try collection.upsert([Document(id: "pie", text: "A sponge and a pie.")])
    XCTAssertEqual(Set(try keyword(collection, "sponge")), ["cake", "pie"])
    XCTAssertEqual(try collection.delete(["cake"]), 1)
    XCTAssertEqual(try keyword(collection, "sponge"), ["pie"])
  }

  func testExhaustiveEqualsMaxScoreThroughTheDatabase() throws {
    let collection = try Database(path: path).collection("big")
    let words = (0..<300).map { "word\($0)" }
    var state: UInt64 = 42
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    let documents = (0..<1_500).map { i in
      Document(
        id: "d\(i)",
        text: (0..<(5 + next(30))).map { _ in words[min(next(300), next(300))] }.joined(
          separator: " "), metadata: ["even": .bool(i % 2 == 0)])
    }
    try collection.upsert(documents)
    for query in [
      "word0 word1", "word3 word17 word250", "word5", "word1 word2 word3 word4 word299",
    ] {
      for filter in [nil, try Filter(json: #"{"even": true}"#)] {
        let exact = try keyword(collection, query, k: 20, filter: filter, exact: true)
        XCTAssertEqual(try keyword(collection, query, k: 20, filter: filter), exact, query)
        XCTAssertEqual(exact.count, 20)
      }
    }
  }

  /// Every key of the collection's text index with the collection id cut off, and the
  /// counts in its record: what an index built fresh must equal.
  private func textIndexState(_ collection: DocumentCollection) throws -> (
    postings: [[UInt8]: [UInt8]], terms: [[UInt8]: UInt32], record: TextIndexRecord?
  ) {
    let schema = collection.schema
    return try collection.read { txn in
      var postings: [[UInt8]: [UInt8]] = [:]
      var terms: [[UInt8]: UInt32] = [:]
      let prefix = KeyBuilder().uint32(collection.id).bytes
      try txn.forEach(in: schema.text, from: prefix) { key, value in
        guard key.starts(with: prefix) else { return false }
        let rest = Array(key.dropFirst(4))
        if rest[0] == TextKey.Kind.term.rawValue {
          terms[rest] = TextIndex.pair(value).0  // df (max tf may be stale-high: a bound)
        } else {
          postings[rest] = Array(value)
        }
        return true
      }
      return (
        postings, terms,
        try Database.collectionRecord(collection.name, in: txn, schema: schema)?.text
      )
    }
  }

  func testIndexAfterInsertsUpdatesAndDeletesEqualsOneBuiltFresh() throws {
    let churned = try notes("churned")
    try churned.upsert(
      Document(id: "lmdb", text: "LMDB stores keys in a B+tree; readers never block."))
    try churned.upsert(Document(id: "extra", text: "a document that will be deleted again"))
    try churned.delete(["cake", "extra"])
    try churned.upsert(
      Document(id: "cake", text: "Bake the sponge cake for thirty minutes until golden."))
    try churned.upsert(Self.notes[1])  // unchanged text: nothing to do
    // The fresh collection gets the same rows by inserting in the churned one's row order.
    let final = try churned.documents(limit: 100)
    let db = try Database(path: path)
    let fresh = try db.collection("fresh")
    let byRow = try churned.read { txn in
      try final.map { document -> (UInt32, Document) in
        let bytes = try txn.get(
          churned.schema.docs, key: DocumentKey(collection: churned.id, id: document.id))!
        return (DocumentRecord.row(of: bytes), document)
      }
    }.sorted { $0.0 < $1.0 }
    for (row, document) in byRow {
      // Rows are handed out in order and never reused: burn the gaps with deleted documents.
      while try fresh.database.collectionRecord("fresh")!.nextRow < row {
        try fresh.upsert(Document(id: "gap", text: "gap"))
        try fresh.delete("gap")
      }
      try fresh.upsert(document)
    }
    let a = try textIndexState(churned)
    let b = try textIndexState(fresh)
    XCTAssertEqual(a.postings, b.postings)
    XCTAssertEqual(a.terms, b.terms)
    XCTAssertEqual(a.record?.documents, b.record?.documents)
    XCTAssertEqual(a.record?.terms, b.record?.terms)
    XCTAssertEqual(a.record?.documents, 5)
  }

  /// Many blocks of 128 rows, written by batches that add, replace and delete across
  /// them, then rebuilt from the documents: the same keys and bytes.
  func testIndexAcrossBlocksAfterChurnEqualsItsRebuild() throws {
    let collection = try Database(path: path).collection("blocks")
    var state: UInt64 = 7
    func text() -> String {
      (0..<(3 + Int(state % 20))).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return "w\((state >> 33) % 40)"
      }.joined(separator: " ")
    }
    for first in stride(from: 0, to: 600, by: 150) {
      try collection.upsert((first..<first + 150).map { Document(id: "d\($0)", text: text()) })
    }
    // Replacements in every block, together with new documents.
    try collection.upsert(
      stride(from: 0, to: 700, by: 7).map { Document(id: "d\($0)", text: text()) })
    try collection.delete(stride(from: 0, to: 700, by: 5).map { "d\($0)" })
    try collection.upsert([Document(id: "d5", text: text())])
    let churned = try textIndexState(collection)
    XCTAssertEqual(try collection.database.verifyReport().problems, [], "verify agrees")
    try collection.write { _, record in record.text = nil }
    try collection.buildTextIndex()
    let rebuilt = try textIndexState(collection)
    XCTAssertEqual(churned.postings, rebuilt.postings)
    XCTAssertEqual(churned.terms, rebuilt.terms)
    XCTAssertEqual(churned.record?.documents, rebuilt.record?.documents)
    XCTAssertEqual(churned.record?.terms, rebuilt.record?.terms)
    // 40 terms over rows 0..<700: up to 6 blocks each.
    XCTAssertGreaterThan(churned.postings.count, 4 * 40)
  }

  func testAnExistingCollectionWithoutAnIndexGetsOneOnFirstUse() throws {
    let collection = try notes()
    // As a database from before text search: no index keys, no record.
    try collection.write { txn, record in
      try collection.textIndex.clear(in: txn)
      record.text = nil
    }
    XCTAssertEqual(try textIndexState(collection).postings.count, 0)
    XCTAssertEqual(try keyword(collection, "cake"), ["cake"])
    XCTAssertEqual(try textIndexState(collection).record?.documents, 5)
  }

  func testAnIndexInTheOldLayoutIsRebuiltNotMisread() throws {
    let collection = try notes()
    // As a database of format 1: one key per posting (kind 0x02) and a record without
    // "format". Read as blocks, "cake" would have no postings.
    try collection.write { txn, record in
      let text = collection.schema.text
      try collection.textIndex.clear(in: txn)
      let posting = KeyBuilder().uint32(collection.id).uint8(0x02).lengthPrefixed("cake")
      try txn.put(text, key: posting.uint32(0), value: TextIndex.bytes(1, 8))
      try txn.put(
        text, key: TextKey.term("cake", collection: collection.id), value: TextIndex.bytes(1, 1))
      record.text?.format = nil
    }
    XCTAssertEqual(try keyword(collection, "cake"), ["cake"])
    let state = try textIndexState(collection)
    XCTAssertEqual(state.record?.format, TextIndex.format)
    XCTAssertFalse(state.postings.keys.contains { $0[0] == 0x02 })
    XCTAssertEqual(state.record?.documents, 5)
  }

  func testTextFilterCombinesWithMetadata() throws {
    let collection = try notes()
    let storeText = try Filter(json: #"{"$text": {"$contains": "Stores"}}"#)
    XCTAssertEqual(
      Set(try keyword(collection, "access B+tree", filter: storeText)), ["lmdb", "error"])
    let both = try Filter(
      json:
        #"{"$text": {"$contains": "store"}, "topic": "storage", "$not": {"$text": {"$contains": "ACID"}}}"#
    )
    XCTAssertEqual(try keyword(collection, "store", filter: both), ["error"])
    let either = try Filter(
      json: #"{"$or": [{"$text": {"$contains": "cake golden"}}, {"topic": "index"}]}"#)
    XCTAssertEqual(Set(try keyword(collection, "bake graphs", filter: either)), ["cake", "hnsw"])
    XCTAssertEqual(
      try keyword(
        collection, "store", filter: try Filter(json: #"{"$text": {"$contains": "cake store"}}"#)),
      [])
    XCTAssertEqual(storeText.description, #"{"$text":{"$contains":"Stores"}}"#)
    XCTAssertThrowsError(try Filter(json: #"{"$text": "store"}"#))
    XCTAssertThrowsError(try Filter(json: #"{"$text": {"$contains": "the of"}}"#)) { error in
      XCTAssertTrue("\(error)".contains("no searchable words"), "\(error)")
    }
  }

  // MARK: Bad input, each a defined behaviour

  func testBlankQueryInKeywordModeIsAnError() throws {
    let collection = try notes()
    XCTAssertThrowsError(try keyword(collection, "  ")) { error in
      XCTAssertTrue("\(error)".contains("query text is empty"), "\(error)")
    }
  }

  func testStopWordsOnlyAndAbsentTermsGiveNoHits() throws {
    let collection = try notes()
    XCTAssertEqual(try keyword(collection, "the and of it"), [])
    XCTAssertEqual(try keyword(collection, "zyzzyva quux"), [])
  }

  func testAMegabyteQueryIsSearched() throws {
    let collection = try notes()
    let big = String(repeating: "lorem ipsum dolor ", count: 60_000) + " cake"
    XCTAssertGreaterThan(big.utf8.count, 1_000_000)
    XCTAssertEqual(try keyword(collection, big), ["cake"])
  }

  /// One "character" can be longer than a key: a letter under 300 combining marks.
  func testAWordLongerThanAKeyIsIndexedAndFound() throws {
    let collection = try notes()
    let word = "a" + String(repeating: "\u{301}", count: 300)
    try collection.upsert(Document(id: "marks", text: "accents " + word))
    XCTAssertEqual(try keyword(collection, word), ["marks"])
    try collection.database.verify()
  }

  func testCJKIsSearchable() throws {
    let collection = try notes()
    XCTAssertEqual(try keyword(collection, "東京"), ["tokyo"])
    XCTAssertEqual(try keyword(collection, "タワー"), ["tokyo"])
  }

  func testKeywordOnGivenVectorsIsAClearError() throws {
    let collection = try Database(path: path).collection(
      "vectors", options: .vectors(dimension: 2, metric: .l2))
    try collection.upsert([Document(id: "a", text: "alpha")], vectors: [[0, 1]])
    XCTAssertThrowsError(try keyword(collection, "alpha")) { error in
      XCTAssertTrue("\(error)".contains("has no text index"), "\(error)")
    }
    XCTAssertEqual(try collection.query(vector: [0, 1], log: false).hits.map(\.id), ["a"])
    XCTAssertThrowsError(
      try collection.query(vectors: [[0, 1]], options: QueryOptions(mode: .hybrid)))
  }

  /// Without a text index a `$text` condition reads the documents: the same answer from
  /// a query, a count, a listing and a delete, and its negation holds for the rest.
  func testTextFilterWithoutAnIndexChecksTheDocuments() throws {
    let collection = try Database(path: path).collection(
      "vectors", options: .vectors(dimension: 2, metric: .l2))
    try collection.upsert(
      [Document(id: "a", text: "Hello world"), Document(id: "b", text: "goodbye")],
      vectors: [[0, 1], [1, 0]])
    let hello = try Filter(json: #"{"$text": {"$contains": "hello"}}"#)
    let notHello = try Filter(json: #"{"$not": {"$text": {"$contains": "hello"}}}"#)
    XCTAssertEqual(
      try collection.query(vector: [1, 0], filter: hello, log: false).hits.map(\.id), ["a"])
    XCTAssertEqual(try collection.count(matching: hello), 1)
    XCTAssertEqual(try collection.documents(matching: notHello).map(\.id), ["b"])
    XCTAssertEqual(try collection.delete(matching: hello, dryRun: true), ["a"])
  }

  func testDenseOnDocumentsOnlyIsAClearError() throws {
    let collection = try notes()
    XCTAssertThrowsError(
      try collection.query(texts: ["cake"], options: QueryOptions(log: false, mode: .dense))
    ) { error in
      XCTAssertTrue("\(error)".contains("--mode keyword"), "\(error)")
    }
  }

  func testAlphaOutsideTheUnitIntervalIsAnError() throws {
    let collection = try notes()
    for alpha in [-0.1, 1.5, Double.nan] {
      XCTAssertThrowsError(
        try collection.query(
          texts: ["cake"], options: QueryOptions(mode: .keyword, fusion: .convex(alpha: alpha))))
    }
  }

  func testBM25ParametersArePerCollection() throws {
    let collection = try notes()
    XCTAssertEqual(try collection.bm25(), .defaults)
    try collection.setBM25(BM25(k1: 1.2, b: 0.75))
    XCTAssertEqual(try collection.bm25(), BM25(k1: 1.2, b: 0.75))
    XCTAssertThrowsError(try collection.setBM25(BM25(k1: 1, b: 2)))
  }

  func testTheLogRecordsTheMode() throws {
    let collection = try notes()
    let result = try collection.query(text: "cake")
    let entry = try XCTUnwrap(try collection.database.logEntry(result.logID!))
    XCTAssertEqual(entry.mode, .keyword)
    XCTAssertEqual(entry.hits.map(\.id), ["cake"])
  }

  func testDropCollectionRemovesItsTextIndex() throws {
    let collection = try notes()
    let db = try Database(path: path)
    try db.dropCollection("notes")
    let left = try collection.read { txn in
      var count = 0
      try txn.forEach(in: collection.schema.text) { _, _ in
        count += 1
        return true
      }
      return count
    }
    XCTAssertEqual(left, 0)
  }

  // MARK: Hybrid, with the real model

  /// The notes in a database holding the default model: embedded and text-indexed.
  private func embeddedNotes() throws -> (Database, DocumentCollection) {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let collection = try db.collection("notes")
    try collection.upsert(Self.notes)
    return (db, collection)
  }

  func testHybridFusesBothListsAndSaysWhichFoundEachHit() throws {
    let (db, collection) = try embeddedNotes()
    for fusion in [Fusion.reciprocalRank, .convex(alpha: 0.5)] {
      let hits = try collection.query(
        texts: ["error 0x80070005"], options: QueryOptions(k: 3, log: false, fusion: fusion))[0]
        .hits
      XCTAssertEqual(hits.first?.id, "error")
      XCTAssertNotNil(hits[0].sources?.dense)
      XCTAssertEqual(hits[0].sources?.keyword?.rank, 1)
      XCTAssertEqual(hits.count, 3)
      XCTAssertTrue(hits.dropFirst().allSatisfy { $0.sources?.dense != nil })
    }
    let json = String(
      decoding: try JSONEncoder().encode(
        try collection.query(text: "graphs", k: 1, log: false).hits[0].sources), as: UTF8.self)
    XCTAssertTrue(json.contains("\"keyword\":{") && json.contains("\"dense\":{"), json)
    let entry = try XCTUnwrap(try db.logEntry(try collection.query(text: "cake").logID!))
    XCTAssertEqual(entry.mode, .hybrid)
  }

  func testABlankQueryIsAnErrorInEveryModeAndNothingIsLogged() throws {
    let (db, collection) = try embeddedNotes()
    for mode in [nil, SearchMode.dense, .hybrid, .keyword] {
      XCTAssertThrowsError(try collection.query(text: "", mode: mode)) { error in
        XCTAssertEqual("\(error)", "query: the query text is empty", "\(mode as Any)")
      }
    }
    XCTAssertThrowsError(
      try collection.query(texts: ["graphs", " \t\n"], options: QueryOptions(mode: .dense))
    ) { error in
      XCTAssertEqual("\(error)", "query:2: the query text is empty")
    }
    XCTAssertThrowsError(try collection.judge(query: " ", relevant: ["hnsw": 1])) { error in
      XCTAssertEqual("\(error)", "judgement: the query text is empty")
    }
    XCTAssertEqual(try db.logEntries(collection: "notes").count, 0)
  }
}
