import Embedding
import Foundation
import Tensor
import XCTest

@testable import VectorDB

/// Re-embedding into new generations: switch, writes during the job, resume, rollback,
/// and freeing dropped generations.
final class GenerationTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-generation-tests-" + UUID().uuidString
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  struct Stop: Error {}

  /// A database with the default model (v1), a perturbed copy of it (v2), and a
  /// collection of 120 short documents embedded with v1.
  private func setUp() throws -> (Database, DocumentCollection) {
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let base = try db.encoder(version: 1)
    var weights = base.weights
    var query = weights["encoder.layer.0.attention.self.query.weight"]!
    for i in stride(from: 0, to: query.values.count, by: 7) { query.values[i] *= 1.5 }
    weights["encoder.layer.0.attention.self.query.weight"] = query
    let changed = try SentenceEncoder(
      config: base.config, tokenizer: base.tokenizer, weights: weights)
    try db.environment.write { txn in
      _ = try db.models.add(
        encoder: changed, name: "perturbed", state: .ready, parent: 1, lineage: [:],
        in: txn)
    }
    let docs = try db.collection("docs")
    try docs.upsert(
      (0..<120).map {
        Document(id: String(format: "doc%03d", $0), text: "note number \($0) about topic \($0 % 7)")
      })
    return (db, docs)
  }

  private func storedVectors(_ docs: DocumentCollection) throws -> [String: [Float]] {
    let plan = try XCTUnwrap(try docs.indexPlan())
    var result: [String: [Float]] = [:]
    for document in try docs.documents(limit: 10_000) {
      let row = try docs.read { txn in
        DocumentRecord.row(
          of: try txn.get(
            docs.database.schema.docs, key: DocumentKey(collection: docs.id, id: document.id))!)
      }
      result[document.id] = try docs.read { try plan.index.vector(of: row, in: $0) }
    }
    return result
  }

  /// Training an encoder while a re-embed job is unfinished is refused before it trains:
  /// its candidate could not get a generation of its own.
  func testTrainingWaitsForAnUnfinishedReembed() throws {
    let (_, docs) = try setUp()
    _ = try docs.startGeneration(model: 2)
    for tier in [TrainingOptions.Tier.full, .lora] {
      var options = TrainingOptions()
      options.tier = tier
      XCTAssertThrowsError(try docs.train(options: options)) { error in
        XCTAssertTrue("\(error)".contains("a re-embed to model 2 is in progress"), "\(error)")
      }
    }
  }

  func testReembedSwitchesAndEqualsACleanBuild() throws {
    let (db, docs) = try setUp()
    let report = try docs.reembed(to: 2, batchSize: 50)
    XCTAssertTrue(report.switched)
    XCTAssertEqual(report.embedded, 120)
    XCTAssertEqual(try docs.generations().map(\.state), [.retained, .active])
    let expected = try db.encoder(version: 2)
    let stored = try storedVectors(docs)
    for document in try docs.documents(limit: 200) {
      // Equal up to float rounding, which depends on how texts were batched.
      XCTAssertGreaterThan(cosine(stored[document.id]!, expected.embed(document.text)), 0.99999)
    }
    XCTAssertEqual(try docs.query(text: "note number 5", k: 1).hits.first?.id, "doc005")
    XCTAssertEqual(try db.logEntries().last?.model, 2)
  }

  func testWritesDuringTheJobAreInTheNewGeneration() throws {
    let (_, docs) = try setUp()
    var batches = 0
    try docs.reembed(to: 2, batchSize: 30) { _ in
      batches += 1
      if batches == 2 {
        try docs.upsert(Document(id: "doc000", text: "rewritten behind the cursor"))
        try docs.upsert(Document(id: "zzz-new", text: "added after the job started"))
        try docs.delete(["doc001", "doc119"])
      }
    }
    let stored = try storedVectors(docs)
    XCTAssertEqual(stored.count, 119)
    XCTAssertNil(stored["doc001"])
    let model2 = try docs.database.encoder(version: 2)
    XCTAssertGreaterThan(
      cosine(stored["doc000"]!, model2.embed("rewritten behind the cursor")), 0.99999)
    XCTAssertGreaterThan(
      cosine(stored["zzz-new"]!, model2.embed("added after the job started")), 0.99999)
    XCTAssertEqual(
      try docs.query(text: "rewritten behind the cursor", k: 1).hits.first?.id, "doc000")
    XCTAssertFalse(
      try docs.query(text: "note number 1 about topic 1", k: 5).hits.contains { $0.id == "doc001" })
  }

  func testStoppedJobResumesWithoutRedoingBatches() throws {
    let (_, docs) = try setUp()
    var batches = 0
    XCTAssertThrowsError(
      try docs.reembed(to: 2, batchSize: 40) { _ in
        batches += 1
        if batches == 2 { throw Stop() }
      })
    let building = try XCTUnwrap(try docs.generations().first { $0.state == .building })
    XCTAssertEqual(building.vectors, 80)
    XCTAssertEqual(
      try docs.query(text: "note", k: 1).hits.count, 1, "queries still use generation 1")
    let resumed = try docs.reembed()
    XCTAssertTrue(resumed.resumed)
    XCTAssertEqual(resumed.embedded, 40, "only the documents after the cursor")
    XCTAssertEqual(try docs.generations().last?.state, .active)
  }

  /// A re-embed started with the wrong model need not be finished: cancelling drops its
  /// generation and vectors, the active one answers as before, and another model may
  /// then be chosen.
  func testAReembedCanBeCancelled() throws {
    let (db, docs) = try setUp()
    XCTAssertThrowsError(try docs.cancelReembed()) {
      XCTAssertEqual("\($0)", "collection \"docs\" has no re-embed in progress to cancel")
    }
    let before = try docs.query(text: "note number 3", k: 3, log: false).hits.map(\.id)
    XCTAssertThrowsError(try docs.reembed(to: 2, batchSize: 40) { _ in throw Stop() })
    XCTAssertThrowsError(try docs.reembed(to: 1, all: true)) {
      XCTAssertTrue("\($0)".contains("or drop it (`vdb reembed --cancel`)"), "\($0)")
    }
    let dropped = try docs.cancelReembed()
    XCTAssertEqual([dropped.id, dropped.model, dropped.vectors], [2, 2, 40])
    XCTAssertEqual(try docs.generations().map(\.id), [1])
    XCTAssertEqual(try docs.query(text: "note number 3", k: 3, log: false).hits.map(\.id), before)
    let table = GenerationRecord.indexName(collection: docs.id, generation: 2)
    XCTAssertEqual(
      try db.environment.read { txn in try txn.count(try db.environment.table(table)) }, 0,
      "its index's pages are freed")
    XCTAssertTrue(try docs.reembed(to: 1, all: true).switched, "another model may be chosen")
    XCTAssertEqual(try docs.generations().map(\.id), [1, 3])
    XCTAssertNoThrow(try db.verify())
  }

  /// A model of another dimension cannot fill a collection's index: a re-embed or an
  /// activation with it is refused before anything is written (the job sliced its
  /// vectors by the collection's dimension: a smaller model ended the process, a larger
  /// one stored pieces of vectors).
  func testAModelOfAnotherDimensionIsRefused() throws {
    let (db, docs) = try setUp()
    let base = try db.encoder(version: 1)
    let config = BertConfig(
      hiddenSize: 32, layerCount: 1, headCount: 2, intermediateSize: 64,
      vocabularySize: base.config.vocabularySize)
    let weights = Dictionary(
      uniqueKeysWithValues: config.parameterShapes().map { name, shape in
        let count = shape.reduce(1, *)
        return (name, Tensor(shape: shape, values: (0..<count).map { Float(sin(Double($0))) / 50 }))
      })
    let small = try SentenceEncoder(config: config, tokenizer: base.tokenizer, weights: weights)
    try db.environment.write { txn in
      _ = try db.models.add(
        encoder: small, name: "small", state: .ready, parent: nil, lineage: [:], in: txn)
    }
    let before = try storedVectors(docs)
    let message =
      "model version 3 makes vectors of 32 dimensions; collection \"docs\" holds 384 (a"
      + " collection's dimension is fixed: create another collection with --model 3)"
    XCTAssertThrowsError(try docs.reembed(to: 3)) { XCTAssertEqual("\($0)", message) }
    XCTAssertThrowsError(try docs.activate(model: 3)) { XCTAssertEqual("\($0)", message) }
    XCTAssertEqual(try docs.generations().map(\.id), [1], "no generation was started")
    XCTAssertEqual(try storedVectors(docs), before)
    // Its own collection takes it.
    let own = try db.collection("small", options: CollectionOptions(vectors: .model(version: 3)))
    try own.upsert([Document(id: "a", text: "note number 1")])
    XCTAssertEqual(try own.query(text: "note", k: 1, log: false).hits.map(\.id), ["a"])
  }

  func testRollbackIsInstantAndReturnsTheOldResults() throws {
    let (_, docs) = try setUp()
    let before = try docs.query(text: "topic 3", k: 5, log: false)
    try docs.reembed(to: 2)
    let after = try docs.query(text: "topic 3", k: 5, log: false)
    XCTAssertNotEqual(before.hits.map(\.score), after.hits.map(\.score))
    let rollback = try docs.rollback()
    XCTAssertEqual(rollback.embedded, 0)
    XCTAssertEqual(try docs.query(text: "topic 3", k: 5, log: false), before)
    XCTAssertEqual(try docs.activate(model: 2).embedded, 0, "model 2's generation was retained")
    XCTAssertEqual(try docs.query(text: "topic 3", k: 5, log: false), after)
  }

  func testRollbackAfterARebuildWithTheSameModel() throws {
    let (_, docs) = try setUp()
    try docs.reembed(all: true)
    XCTAssertEqual(try docs.generations().first { $0.state == .active }?.id, 2)
    XCTAssertEqual(try docs.rollback().generation, 1)
    XCTAssertEqual(try docs.generations().first { $0.state == .active }?.id, 1)
    XCTAssertEqual(try docs.generations().first { $0.state == .retained }?.id, 2)
  }

  func testSameModelTouchesOnlyStaleVectors() throws {
    let (_, docs) = try setUp()
    XCTAssertEqual(try docs.reembed().embedded, 0)
    // Give a text document a foreign vector: its source hash no longer matches.
    let plan = try XCTUnwrap(try docs.indexPlan())
    _ = try docs.database.environment.write { txn in
      try txn.delete(
        docs.database.schema.sources,
        key: SourceKey(collection: docs.id, generation: plan.generation.id, row: 3))
    }
    let report = try docs.reembed()
    XCTAssertEqual(report.embedded, 1)
    XCTAssertFalse(report.switched)
  }

  func testDroppedGenerationsFreeTheirPages() throws {
    let (db, docs) = try setUp()
    var sizes: [Int] = []
    for round in 0..<8 {
      try docs.reembed(to: round % 2 == 0 ? 2 : 1, all: true)
      sizes.append(db.environment.fileSize())
    }
    XCTAssertEqual(try docs.generations().count, 2, "one active, one retained")
    let indexTables = try db.environment.tableNames().filter { $0.hasPrefix("index.") }
    let used = try db.environment.read { txn in
      try indexTables.map { try txn.count(try db.environment.table($0)) }
    }
    XCTAssertEqual(
      used.filter { $0 > 0 }.count, 2,
      "dropped generations' tables are empty: \(zip(indexTables, used).map { "\($0)=\($1)" })")
    XCTAssertLessThanOrEqual(
      sizes[7] - sizes[3], sizes[3] - sizes[0], "the file stops growing: \(sizes)")
  }

  /// Precision is a property of a model version: `convertModel`, `importModel(precision:)`.
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

  /// VectorDB's `Precision` maps one to one onto the encoder's, by the same names: model
  /// records stored with the encoder's names (before VectorDB had its own type) decode.
  func testPrecisionMapsOntoTheEncodersByName() throws {
    XCTAssertEqual(Precision.allCases.count, SentenceEncoder.Precision.allCases.count)
    for precision in SentenceEncoder.Precision.allCases {
      XCTAssertEqual(Precision(precision).rawValue, precision.rawValue)
      XCTAssertEqual(Precision(precision).encoderPrecision, precision)
      let stored = try JSONEncoder().encode(precision)
      XCTAssertEqual(try JSONDecoder().decode(Precision.self, from: stored), Precision(precision))
    }
  }

  /// A generation holds vectors of one precision: re-embedding into a converted version
  /// replaces every vector.
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
          of: try txn.get(db.schema.docs, key: DocumentKey(collection: docs.id, id: "d\(index)"))!
        )
      }
      let stored = try XCTUnwrap(try docs.read { try plan.index.vector(of: row, in: $0) })
      XCTAssertGreaterThan(cosine(stored, bfloat16.embed(text)), 0.99999, "d\(index)")
      XCTAssertGreaterThan(cosine(stored, float32.embed(text)), 0.9999, "d\(index)")
    }
    XCTAssertEqual(try docs.query(text: "note 7 on vector search", k: 1).hits.first?.id, "d7")
  }
}

func cosine(_ a: [Float], _ b: [Float]) -> Float {
  var dot: Float = 0
  var na: Float = 0
  var nb: Float = 0
  for (x, y) in zip(a, b) {
    dot += x * y
    na += x * x
    nb += y * y
  }
  return dot / (na.squareRoot() * nb.squareRoot())
}
