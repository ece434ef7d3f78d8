import Foundation
import XCTest

@testable import VectorDB

/// Training from the log with the real model on a slice of SciFact: the gate rejects a
/// model trained on wrong labels, and a run killed with SIGKILL leaves the database as
/// it was and resumes from its checkpoint.
final class TrainProcessTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("train")
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// 40 train queries of SciFact, their documents and 160 others; judgements logged,
  /// with the positives shuffled between queries when `shuffled`.
  private func prepare(shuffled: Bool) throws -> VectorDB.Collection {
    let scifact = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../../shared/datasets/scifact").standardized.path
    let database = try Database(path: db)
    try database.importModel(directory: DefaultModel.directory)
    let collection = try database.collection("s")
    let queries = try BEIR.queries(path: scifact + "/queries.jsonl")
    let qrels = try BEIR.qrels(path: scifact + "/qrels/train.tsv")
    let chosen = Array(qrels.keys.sorted().prefix(40))
    let needed = Set(chosen.flatMap { qrels[$0]!.keys })
    var documents: [Document] = []
    var others = 0
    try JSONLines.forEach(in: try Data(contentsOf: URL(fileURLWithPath: scifact + "/corpus.jsonl")))
    { line, bytes in
      let document = try JSONLines.document(from: bytes, source: "corpus", line: line)
      let isNeeded = needed.contains(document.id)
      if isNeeded || others < 160 {
        if !isNeeded { others += 1 }
        documents.append(Document(id: document.id, text: String(document.text.prefix(600))))
      }
    }
    try collection.upsert(documents)
    var positives = chosen.map { qrels[$0]! }
    if shuffled { positives = Array(positives[1...]) + [positives[0]] }
    try collection.judge(
      zip(chosen, positives).map { Judgement(query: queries[$0]!, relevant: $1) })
    return collection
  }

  func testGateRejectsACandidateTrainedOnWrongLabels() throws {
    let collection = try prepare(shuffled: true)
    var options = TrainingOptions()
    options.epochs = 2
    options.batchSize = 8
    options.learningRate = 1e-4
    options.heldOutFraction = 0.3
    let report = try collection.train(options: options)
    XCTAssertFalse(report.promoted, report.reason)
    XCTAssertEqual(
      try collection.generations().map(\.model), [1],
      "the rejected candidate's generation is dropped")
    XCTAssertEqual(try collection.database.modelVersions().last?.state, .rejected)
    XCTAssertTrue(report.reason.contains("not promoted"), report.reason)
  }

  func testKilledRunLeavesTheDatabaseAsItWasAndResumes() throws {
    _ = try prepare(shuffled: false)
    let before = try Shell.vdb([
      "query", "-c", "s", "vitamin d and bone density", "--no-log", "--json", "--db", db,
    ]).stdout
    let run = try Shell.startGroup(
      "'\(Shell.binary)' train -c s --epochs 4 --batch-size 4 --checkpoint-every 2 --db '\(db)' > /dev/null"
    )
    // Wait for the first checkpoint, then kill.
    let deadline = Date().addingTimeInterval(300)
    while Date() < deadline {
      let database = try Database(path: db)
      let id = try database.collection("s").id
      let saved = try database.environment.read { txn in
        try txn.get(database.schema.meta, key: "collection.\(id).train.checkpoint") != nil
      }
      if saved { break }
      usleep(200_000)
    }
    XCTAssertTrue(
      Shell.killGroup(run).killed, "the run should still be going at its first checkpoint")
    let database = try Database(path: db)
    try database.verify()
    XCTAssertEqual(try database.modelVersions().map(\.version), [1], "no candidate was stored")
    XCTAssertEqual(try database.collection("s").generations().map(\.model), [1])
    let after = try Shell.vdb([
      "query", "-c", "s", "vitamin d and bone density", "--no-log", "--json", "--db", db,
    ]).stdout
    XCTAssertEqual(before, after, "the active model answers exactly as before")
    let resumed = try Shell.vdb(["train", "-c", "s", "--resume", "--json", "--db", db])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    let report = try JSONDecoder().decode(TrainingReport.self, from: Data(resumed.stdout.utf8))
    XCTAssertGreaterThan(report.data.trainPairs, 0)
    XCTAssertEqual(try Database(path: db).modelVersions().count, 2)
  }
}
