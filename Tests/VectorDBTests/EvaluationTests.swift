import Foundation
import XCTest

@testable import VectorDB

final class BEIRFileTests: XCTestCase {
  var directory: String!

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "vdb-beir-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func write(_ name: String, _ text: String) throws -> String {
    let path = directory + "/" + name
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
  }

  func testQrelsWithHeaderCRLFAndWithout() throws {
    let withHeader = try write(
      "a.tsv", "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\nq2\td3\t0\r\n")
    let without = try write("b.tsv", "q1\td1\t1\nq1\td2\t2\nq2\td3\t0")
    let expected: [String: [String: Int]] = ["q1": ["d1": 1, "d2": 2], "q2": ["d3": 0]]
    XCTAssertEqual(try BEIR.qrels(path: withHeader), expected)
    XCTAssertEqual(try BEIR.qrels(path: without), expected)
  }

  func testMalformedQrelsNameTheLine() throws {
    let twoFields = try write("c.tsv", "q1\td1\t1\nq2 d2 1\n")
    XCTAssertThrowsError(try BEIR.qrels(path: twoFields)) { error in
      XCTAssertEqual(
        "\(error)",
        "\(twoFields):2: expected 3 tab-separated fields (query-id, corpus-id, score), found 1")
    }
    let noQuery = try write("e.tsv", "q1\td1\t1\n\td2\t1\n")
    XCTAssertThrowsError(try BEIR.qrels(path: noQuery)) { error in
      XCTAssertEqual("\(error)", "\(noQuery):2: the query-id is empty")
    }
    let badScore = try write("d.tsv", "q1\td1\t1\nq2\td2\thigh\n")
    XCTAssertThrowsError(try BEIR.qrels(path: badScore)) { error in
      XCTAssertEqual("\(error)", "\(badScore):2: score \"high\" is not an integer")
    }
  }

  func testQueriesAndTriples() throws {
    let queries = try write(
      "q.jsonl", #"{"_id": "1", "text": "first"}"# + "\n" + #"{"_id": 2, "text": "second"}"#)
    XCTAssertEqual(try BEIR.queries(path: queries), ["1": "first", "2": "second"])
    let triples = try write(
      "t.jsonl",
      #"{"query": "q", "positive": "d1", "hard_negatives": ["d2", "d3"]}"# + "\n"
        + #"{"query": "r", "positives": ["d4"]}"#)
    XCTAssertEqual(
      try Judgement.triples(path: triples),
      [
        Judgement(
          query: "q", relevant: ["d1": 1, "d2": 0, "d3": 0], source: triples,
          lines: ["d1": 1, "d2": 1, "d3": 1]),
        Judgement(query: "r", relevant: ["d4": 1], source: triples, lines: ["d4": 2]),
      ])
    let bad = try write("u.jsonl", #"{"query": "q", "hard_negatives": ["d2"]}"#)
    XCTAssertThrowsError(try Judgement.triples(path: bad)) { error in
      XCTAssertEqual("\(error)", "\(bad):1: missing field \"positive\"")
    }
    let misspelt = try write("n.jsonl", #"{"query": "q", "positive": "d1", "negatives": ["d2"]}"#)
    XCTAssertThrowsError(try Judgement.triples(path: misspelt)) { error in
      XCTAssertEqual(
        "\(error)",
        "\(misspelt):1: unknown field \"negatives\" (the fields are \"query\", \"positive\", "
          + "\"positives\", \"hard_negatives\")")
    }
  }
}

extension BEIRFileTests {
  /// An empty or blank query text is refused at its file and line: a search would
  /// refuse it as "query:N" (N its place among the judged queries), or, blank, not at all.
  func testABlankQueryTextNamesItsFileAndLine() throws {
    for text in ["", #" \t\u00a0"#] {
      let queries = try write(
        "q.jsonl", #"{"_id": "q1", "text": "hello"}"# + "\n" + #"{"_id": "q2", "text": "\#(text)"}"#
      )
      XCTAssertThrowsError(try BEIR.queries(path: queries)) { error in
        XCTAssertEqual("\(error)", "\(queries):2: the query text is empty")
      }
    }
  }

  /// feedback --qrels --queries: relevant documents by query, each with its qrels line;
  /// a query the queries file lacks is named at its qrels line.
  func testJudgementsFromQrelsKeepTheirLines() throws {
    let queries = try write(
      "q.jsonl", #"{"_id": "q1", "text": "one"}"# + "\n" + #"{"_id": "q2", "text": "two"}"#)
    let qrels = try write(
      "a.tsv", "query-id\tcorpus-id\tscore\nq2\td3\t1\nq1\td1\t2\nq1\td2\t0\nq2\td4\t1\n")
    XCTAssertEqual(
      try Judgement.qrels(path: qrels, queries: queries),
      [
        Judgement(query: "one", relevant: ["d1": 2], source: qrels, lines: ["d1": 3]),
        Judgement(
          query: "two", relevant: ["d3": 1, "d4": 1], source: qrels, lines: ["d3": 2, "d4": 5]),
      ])
    let unknown = try write("b.tsv", "q1\td1\t1\nq9\td2\t1\n")
    XCTAssertThrowsError(try Judgement.qrels(path: unknown, queries: queries)) { error in
      XCTAssertEqual("\(error)", "\(unknown):2: query \"q9\" is not in \(queries)")
    }
  }

  /// A judged document the collection does not hold is named at the file and line that
  /// judged it (the first such line), and nothing is logged.
  func testAnUnknownDocumentNamesItsFileAndLine() throws {
    let db = try Database(path: directory + "/db")
    let collection = try db.collection("b", options: CollectionOptions(vectors: .none))
    try collection.upsert([Document(id: "d1", text: "hello"), Document(id: "d2", text: "graphs")])
    let triples = try write(
      "t.jsonl",
      #"{"query": "hi", "positive": "d1"}"# + "\n" + #"{"query": "hi 2", "positive": "zzz"}"#
        + "\n" + #"{"query": "hi 3", "positive": "d2", "hard_negatives": ["yyy"]}"#)
    XCTAssertThrowsError(try collection.judge(try Judgement.triples(path: triples))) { error in
      XCTAssertEqual("\(error)", "\(triples):2: no document \"zzz\" in collection \"b\"")
    }
    let queries = try write("q.jsonl", #"{"_id": "q1", "text": "one"}"#)
    let qrels = try write("a.tsv", "q1\td1\t1\nq1\tzzz\t1\nq1\taaa\t1\n")
    XCTAssertThrowsError(
      try collection.judge(try Judgement.qrels(path: qrels, queries: queries))
    ) { error in
      XCTAssertEqual("\(error)", "\(qrels):2: no document \"zzz\" in collection \"b\"")
    }
    XCTAssertEqual(try db.logEntries(collection: "b").count, 0)
    // Given directly, not from a file: the error is the collection's own.
    XCTAssertThrowsError(try collection.judge(query: "q", relevant: ["zzz": 1])) { error in
      XCTAssertEqual(error as? VectorDBError, .documentNotFound(id: "zzz", collection: "b"))
    }
  }
}

/// SciFact as simulated usage: train queries run through the database (logged), their
/// qrels fed back as clicks (when shown) and corrections (when not); the log must then
/// hold exactly the expected (query, positive) pairs.
final class SimulatedUsageTests: XCTestCase {
  func testLogHoldsExactlyTheFedBackPairs() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    let scifact = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../../shared/datasets/scifact").standardized.path
    let path = NSTemporaryDirectory() + "vdb-simulated-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: path) }
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let collection = try db.collection("scifact")
    let queries = try BEIR.queries(path: scifact + "/queries.jsonl")
    let qrels = try BEIR.qrels(path: scifact + "/qrels/train.tsv")
    // A slice keeps the test quick: 60 train queries, their documents, and 240 others.
    let chosen = Array(qrels.keys.sorted().prefix(60))
    let needed = Set(chosen.flatMap { qrels[$0]!.keys })
    let corpus = try Data(contentsOf: URL(fileURLWithPath: scifact + "/corpus.jsonl"))
    var documents: [Document] = []
    var others = 0
    try JSONLines.forEach(in: corpus) { line, bytes in
      let document = try JSONLines.document(from: bytes, source: "corpus", line: line)
      if needed.contains(document.id) || others < 240 {
        if !needed.contains(document.id) { others += 1 }
        documents.append(document)
      }
    }
    try collection.upsert(documents)
    let results = try collection.query(
      texts: chosen.map { queries[$0]! }, options: QueryOptions(k: 10, mode: .dense))
    var expected = Set<String>()
    var corrections = 0
    for (queryID, result) in zip(chosen, results) {
      for documentID in qrels[queryID]!.keys where qrels[queryID]![documentID]! > 0 {
        let kind = try collection.feedback(logID: result.logID!, documentID: documentID)
        XCTAssertEqual(kind, result.hits.contains { $0.id == documentID } ? .click : .correction)
        if kind == .correction { corrections += 1 }
        expected.insert(queries[queryID]! + "\u{0}" + documentID)
      }
    }
    var logged = Set<String>()
    for entry in try db.logEntries(limit: 10_000) {
      for item in entry.feedback where item.isRelevant {
        logged.insert(entry.text! + "\u{0}" + item.documentID)
      }
    }
    XCTAssertEqual(logged, expected)
    XCTAssertGreaterThan(corrections, 0, "some relevant documents were not in the top 10")
    let diagnosis = try collection.diagnose()
    XCTAssertEqual(diagnosis.queries, 60)
    XCTAssertEqual(diagnosis.notFound + diagnosis.rankedLow + diagnosis.first, 1, accuracy: 1e-9)
    // Dense against keyword: the keyword path's share agrees with keyword search run here.
    let paths = try XCTUnwrap(diagnosis.paths, "a text collection with vectors compares both")
    XCTAssertEqual(
      paths.both + paths.denseOnly + paths.keywordOnly + paths.neither, 1, accuracy: 1e-9)
    let keyword = try collection.query(
      texts: chosen.map { queries[$0]! }, options: QueryOptions(k: 10, log: false, mode: .keyword))
    let keywordFinds = zip(chosen, keyword).filter { id, result in
      result.hits.contains { (qrels[id]![$0.id] ?? 0) > 0 }
    }.count
    XCTAssertEqual(paths.both + paths.keywordOnly, Double(keywordFinds) / 60, accuracy: 1e-9)
    XCTAssertGreaterThan(paths.keywordOnly, 0, "on SciFact the words find some the encoder misses")
    for item in paths.keywordOnlyCases {
      XCTAssertNotNil(item.rank)
      XCTAssertTrue(qrels.values.contains { ($0[item.document] ?? 0) > 0 })
    }
  }
}
