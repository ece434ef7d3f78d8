import Embedding
import Foundation
import Tensor
import XCTest

@testable import VectorDB

/// Text collections with the real model: embedding on upsert, text queries, the query
/// log and feedback.
final class TextTests: XCTestCase {
  var path: String!
  static let notes = [
    Document(
      id: "lmdb", text: "LMDB is a memory-mapped B+tree key-value store with ACID transactions."),
    Document(
      id: "hnsw",
      text: "HNSW builds a hierarchy of proximity graphs for approximate nearest neighbour search."),
    Document(
      id: "bert", text: "BERT is a transformer encoder pretrained with masked language modelling."),
    Document(
      id: "cake", text: "Bake the sponge cake for thirty minutes until golden.",
      metadata: ["topic": "food"]),
    Document(
      id: "tea", text: "Green tea is brewed at eighty degrees for two minutes.",
      metadata: ["topic": "food"]),
  ]

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-text-tests-" + UUID().uuidString
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  private func database() throws -> Database {
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    return db
  }

  func testModelRoundTripThroughTheDatabaseGivesIdenticalEmbeddings() throws {
    let db = try database()
    XCTAssertEqual(try db.modelVersions().map(\.version), [1])
    XCTAssertEqual(
      try db.importModel(directory: DefaultModel.directory).version, 1, "same weights: same version"
    )
    let stored = try db.encoder(version: 1)
    let direct = try SentenceEncoder(directory: URL(fileURLWithPath: DefaultModel.directory))
    let texts =
      Self.notes.map(\.text) + ["", "a much longer text " + String(repeating: "word ", count: 300)]
    XCTAssertEqual(stored.embed(texts), direct.embed(texts))
  }

  /// A model that passes the load's probe but overflows on one word (its embedding row
  /// near Float's largest value) names the document, or the query, whose text did it,
  /// and the document is not written.
  func testAVectorTheModelCannotMakeNamesItsText() throws {
    let model = path + "-model"
    defer { try? FileManager.default.removeItem(atPath: model) }
    let source = URL(fileURLWithPath: DefaultModel.directory)
    let encoder = try SentenceEncoder(directory: source)
    try FileManager.default.createDirectory(
      atPath: model + "/1_Pooling", withIntermediateDirectories: true)
    for name in [
      "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
      "1_Pooling/config.json", "modules.json",
    ] {
      try FileManager.default.copyItem(
        atPath: source.appendingPathComponent(name).path, toPath: model + "/" + name)
    }
    var weights = encoder.weights
    let table = "embeddings.word_embeddings.weight"
    var rows = weights[table]!.values
    let zebra = encoder.tokenize("zebra")[1]
    let h = encoder.dimension
    for i in zebra * h..<(zebra + 1) * h { rows[i] = Float.greatestFiniteMagnitude / 2 }
    weights[table] = Tensor(shape: weights[table]!.shape, values: rows)
    try Data(SafeTensors.serialize(weights)).write(
      to: URL(fileURLWithPath: model + "/model.safetensors"))

    let db = try Database(path: path)
    XCTAssertEqual(try db.importModel(directory: model).version, 1)
    let notes = try db.collection("notes")
    XCTAssertThrowsError(
      try notes.upsert([Document(id: "ok", text: "a horse"), Document(id: "z", text: "a zebra")])
    ) {
      XCTAssertEqual(
        "\($0)",
        #"model version 1 made an unusable vector of document "z": the vector holds NaN at position 0 (collection "notes")"#
      )
    }
    XCTAssertEqual(try notes.count(), 0, "nothing of the batch is written")
    try notes.upsert([Document(id: "ok", text: "a horse")])
    XCTAssertThrowsError(try notes.query(texts: ["horse", "zebra"])) {
      XCTAssertEqual(
        "\($0)",
        "model version 1 made an unusable vector of query 2 of 2: the vector holds NaN at position 0"
      )
    }
  }

  /// A model that names prompts (e5's "query: " and "passage: ") sees each text after its
  /// prompt wherever it embeds one: documents at import, queries at search; its versions
  /// keep them, and an export writes them back.
  /// A model directory at `model` of the default model's files (linked) but those in
  /// `files`, written from their texts.
  private func makeModelDirectory(_ model: String, files: [String: String]) throws {
    let source = DefaultModel.directory
    try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
    for name in [
      "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
      "1_Pooling", "modules.json", "model.safetensors",
    ] where files[name] == nil {
      try FileManager.default.createSymbolicLink(
        atPath: model + "/" + name, withDestinationPath: source + "/" + name)
    }
    for (name, text) in files {
      try text.write(toFile: model + "/" + name, atomically: true, encoding: .utf8)
    }
  }

  func testPromptsGoBeforeQueriesAndDocuments() throws {
    let model = path + "-prompted"
    defer { try? FileManager.default.removeItem(atPath: model) }
    let source = DefaultModel.directory
    try makeModelDirectory(
      model,
      files: [
        "config_sentence_transformers.json":
          #"{"prompts": {"query": "query: ", "passage": "passage: ", "classification": "c: "}}"#
      ])

    let db = try Database(path: path)
    XCTAssertEqual(try db.importModel(directory: source).version, 1)
    // The same weights with prompts are another model: they make other vectors.
    XCTAssertEqual(try db.importModel(directory: model).version, 2)
    XCTAssertEqual(try db.importModel(directory: model).version, 2, "found again")
    let prompts = SentenceEncoder.Prompts(query: "query: ", document: "passage: ")
    XCTAssertEqual(try db.encoder(version: 2).prompts, prompts)
    XCTAssertEqual(try db.encoder(version: 1).prompts, SentenceEncoder.Prompts())
    let notes = try db.collection(
      "notes", options: CollectionOptions(vectors: .model(version: 2)))
    try notes.upsert(Self.notes)
    let plain = try SentenceEncoder(directory: URL(fileURLWithPath: source))
    try notes.export(includeVectors: true) { document in
      let expected = plain.embed("passage: " + document.text)
      XCTAssertGreaterThan(cosine(document.vector!, expected), 0.99999, document.id)
    }
    let question = "which database uses memory mapping?"
    let hit = try XCTUnwrap(notes.query(text: question, k: 1, log: false, mode: .dense).hits.first)
    XCTAssertEqual(hit.id, "lmdb")
    let lmdb = Self.notes.first { $0.id == "lmdb" }!.text
    XCTAssertEqual(
      hit.score, cosine(plain.embed("query: " + question), plain.embed("passage: " + lmdb)),
      accuracy: 1e-4)

    let exported = path + "-exported"
    defer { try? FileManager.default.removeItem(atPath: exported) }
    _ = try db.exportModel(version: 2, to: exported)
    XCTAssertEqual(try SentenceEncoder(directory: URL(fileURLWithPath: exported)).prompts, prompts)
  }

  /// A model made for dot products (unnormalised vectors, `similarity_fn_name` "dot")
  /// gets collections that rank by the dot product unless told otherwise.
  func testACollectionComparesAsItsModelSays() throws {
    let model = path + "-dot"
    defer { try? FileManager.default.removeItem(atPath: model) }
    try makeModelDirectory(
      model,
      files: [
        "config_sentence_transformers.json": #"{"similarity_fn_name": "dot"}"#,
        "modules.json": #"""
        [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        """#,
      ])
    let db = try Database(path: path)
    XCTAssertEqual(try db.importModel(directory: DefaultModel.directory).version, 1)
    XCTAssertEqual(try db.importModel(directory: model).version, 2)
    XCTAssertEqual(try db.encoder(version: 2).similarity, .dot)
    XCTAssertEqual(try db.modelSettings(version: 2), try db.encoder(version: 2).settings)
    XCTAssertThrowsError(try db.modelSettings(version: 9)) {
      XCTAssertEqual("\($0)", "no model version 9")
    }
    let byDot = try db.collection("dot", options: CollectionOptions(vectors: .model(version: 2)))
    let byCosine = try db.collection(
      "cosine", options: CollectionOptions(vectors: .model(version: 2), metric: .cosine))
    _ = try db.collection("plain")
    let metrics = Dictionary(
      uniqueKeysWithValues: try db.collections().map { ($0.name, $0.metric) })
    XCTAssertEqual(metrics, ["dot": "dot", "cosine": "cosine", "plain": "cosine"])

    let encoder = try db.encoder(version: 2)
    let question = "which database uses memory mapping?"
    let q = encoder.embed(question)
    XCTAssertGreaterThan(abs(sqrt(q.reduce(0) { $0 + $1 * $1 }) - 1), 0.1, "not unit length")
    for collection in [byDot, byCosine] {
      try collection.upsert(Self.notes)
      let hits = try collection.query(text: question, k: 5, log: false, mode: .dense).hits
      for hit in hits {
        let d = encoder.embed(Self.notes.first { $0.id == hit.id }!.text)
        let expected =
          collection === byDot ? zip(q, d).reduce(0) { $0 + $1.0 * $1.1 } : cosine(q, d)
        XCTAssertEqual(hit.score, expected, accuracy: 1e-3 * max(1, abs(expected)), hit.id)
      }
    }

    let exported = path + "-exported"
    defer { try? FileManager.default.removeItem(atPath: exported) }
    _ = try db.exportModel(version: 2, to: exported)
    XCTAssertEqual(try SentenceEncoder(directory: URL(fileURLWithPath: exported)).similarity, .dot)
  }

  func testTextQueriesFindTheRightDocument() throws {
    let notes = try database().collection("notes")
    try notes.upsert(Self.notes)
    XCTAssertEqual(
      try notes.query(text: "which database uses memory mapping?", k: 1).hits.first?.id, "lmdb")
    XCTAssertEqual(try notes.query(text: "graph-based vector search", k: 1).hits.first?.id, "hnsw")
    let food = try notes.query(
      text: "database", k: 5, filter: try Filter(json: #"{"topic": "food"}"#))
    XCTAssertEqual(Set(food.hits.map(\.id)), ["cake", "tea"])
    // Replacing the text re-embeds it.
    try notes.upsert(Document(id: "tea", text: "Approximate nearest neighbour graphs with layers."))
    XCTAssertEqual(
      Set(try notes.query(text: "layered neighbour graphs", k: 2).hits.map(\.id)), ["hnsw", "tea"])
  }

  func testLogAndFeedbackRoundTrip() throws {
    let db = try database()
    let notes = try db.collection("notes")
    try notes.upsert(Self.notes)
    let result = try notes.query(text: "how long to brew tea", k: 2)
    let logID = try XCTUnwrap(result.logID)
    let shown = result.hits.map(\.id)
    XCTAssertEqual(try notes.feedback(logID: logID, documentID: shown[0]), .click)
    XCTAssertEqual(
      try notes.feedback(logID: logID, documentID: shown[1], relevant: false), .notRelevant)
    let hidden = Self.notes.map(\.id).first { !shown.contains($0) }!
    XCTAssertEqual(try notes.feedback(logID: logID, documentID: hidden), .correction)
    let entry = try XCTUnwrap(try db.logEntry(logID))
    XCTAssertEqual(entry.text, "how long to brew tea")
    XCTAssertEqual(entry.kind, .query)
    XCTAssertEqual(entry.model, 1)
    XCTAssertEqual(entry.hits.map(\.id), shown)
    XCTAssertEqual(Set(entry.feedback.map(\.documentID)), Set([shown[0], shown[1], hidden]))
    XCTAssertEqual(entry.feedback.first { $0.documentID == hidden }?.kind, .correction)
    // Unlogged queries get no id and leave no entry.
    XCTAssertNil(try notes.query(text: "tea", k: 1, log: false).logID)
    XCTAssertEqual(try db.logEntries().count, 1)
  }

  func testFeedbackErrors() throws {
    let db = try database()
    let notes = try db.collection("notes")
    try notes.upsert(Self.notes)
    let logID = try XCTUnwrap(try notes.query(text: "tea", k: 1).logID)
    XCTAssertThrowsError(try notes.feedback(logID: 999, documentID: "tea")) { error in
      XCTAssertEqual(error as? VectorDBError, .logEntryNotFound(999))
    }
    XCTAssertThrowsError(try notes.feedback(logID: logID, documentID: "nope")) { error in
      XCTAssertEqual(error as? VectorDBError, .documentNotFound(id: "nope", collection: "notes"))
    }
    XCTAssertThrowsError(try notes.judge(query: "q", relevant: ["tea": 1, "ghost": 1]))
    XCTAssertEqual(try db.logEntries().count, 1, "a failed judgement writes nothing")
  }

  func testJudgementsAndRetention() throws {
    let db = try database()
    let notes = try db.collection("notes")
    try notes.upsert(Self.notes)
    let ids = try notes.judge([
      Judgement(query: "key-value stores", relevant: ["lmdb": 1]),
      Judgement(query: "desserts", relevant: ["cake": 2]),
    ])
    XCTAssertEqual(ids.count, 2)
    let entry = try XCTUnwrap(try db.logEntry(ids[1]))
    XCTAssertEqual(entry.kind, .judgement)
    XCTAssertEqual(entry.feedback.map(\.relevance), [2])
    for i in 0..<5 { _ = try notes.query(text: "query \(i)", k: 1) }
    try db.setLogRetention(LogRetention(maxEntries: 3))
    let kept = try db.logEntries()
    XCTAssertEqual(kept.count, 3)
    XCTAssertEqual(kept.map(\.text), ["query 2", "query 3", "query 4"])
    XCTAssertNil(try db.logEntry(ids[0]), "pruned entries are gone, with their feedback")
    _ = try notes.query(text: "one more", k: 1)
    XCTAssertEqual(try db.logEntries().count, 3, "appending prunes the oldest")
    XCTAssertGreaterThan(try db.logEntries().last!.id, ids[1], "ids keep increasing")
    for bad in [
      LogRetention(maxEntries: 0), LogRetention(maxAge: -1), LogRetention(maxAge: .nan),
      LogRetention(maxAge: .infinity), LogRetention(maxAge: 0), LogRetention(maxAge: 1e19),
    ] {
      XCTAssertThrowsError(try db.setLogRetention(bad)) { error in
        guard case VectorDBError.invalidInput(source: "log retention", _, _) = error else {
          return XCTFail("\(bad): \(error)")
        }
      }
    }
    XCTAssertEqual(try db.logRetention(), LogRetention(maxEntries: 3), "refused: unchanged")
    XCTAssertEqual(try db.logEntries().count, 3)
  }
}
