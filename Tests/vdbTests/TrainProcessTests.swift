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

  private func prepare(shuffled: Bool) throws -> DocumentCollection {
    try SciFactSlice.make(database: db, shuffled: shuffled)
  }

  func testGateRejectsACandidateTrainedOnWrongLabels() throws {
    let collection = try prepare(shuffled: true)
    var options = TrainingOptions()
    options.epochs = 2
    options.batchSize = 8
    options.learningRate = 1e-4
    options.hardNegatives = 1
    options.heldOutFraction = 0.3
    options.folds = 1
    let report = try collection.train(options: options)
    XCTAssertFalse(report.promoted, report.reason)
    XCTAssertEqual(report.gate.method, "split")
    XCTAssertLessThanOrEqual(report.gate.ciLow, 0)
    XCTAssertTrue((1...200).contains(report.gate.documentsEmbedded), "the pools, not more")
    XCTAssertEqual(
      try collection.generations().map(\.model), [1],
      "the rejected candidate's generation is dropped")
    let rejected = try collection.database.modelVersions().last!
    XCTAssertEqual(rejected.state, .rejected)
    XCTAssertFalse(rejected.hasWeights, "a rejected candidate keeps its lineage only")
    XCTAssertThrowsError(try collection.activate(model: rejected.version)) {
      XCTAssertEqual($0 as? VectorDBError, .modelWithoutWeights(rejected.version))
    }
    XCTAssertTrue(report.reason.contains("not promoted"), report.reason)
  }

  func testARejectedCrossFitSaysItFittedOnlyItsFolds() throws {
    _ = try prepare(shuffled: true)
    let result = try Shell.vdb([
      "train", "-c", "s", "--folds", "2", "--epochs", "1", "--batch-size", "8", "--lr", "1e-4",
      "--db", db,
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertTrue(result.stdout.contains("trained 2 fold candidates on "), result.stdout)
    XCTAssertTrue(
      result.stdout.contains("none was fitted on all pairs, as the gate said no; model v2"),
      result.stdout)
    XCTAssertFalse(result.stdout.contains("trained model v"), result.stdout)
    XCTAssertTrue(result.stdout.contains("\nnot promoted: nDCG@10"), result.stdout)
  }

  /// A second run does not let the queries the serving retriever trained on vote: the
  /// current model would be scored on them in-sample. Only queries judged since do, and
  /// with fewer than two of them the run is refused, naming why.
  func testQueriesTheCurrentRetrieverTrainedOnDoNotVote() throws {
    let collection = try prepare(shuffled: false)
    var options = TrainingOptions()
    options.tier = .adapter
    options.batchSize = 8
    options.force = true
    let first = try collection.train(options: options)
    XCTAssertEqual(first.data.alreadyTrained, 0)
    XCTAssertEqual(first.gate.queries, 40, "every judged query votes in the first round")

    let again = try Shell.vdb(["train", "-c", "s", "--tier", "adapter", "--db", db])
    XCTAssertEqual(again.status, 1, again.stderr)
    XCTAssertTrue(
      again.stderr.contains(
        "has 40 judged queries, and its current retriever trained on 40 of them"),
      again.stderr)
    XCTAssertTrue(again.stderr.contains("vdb feedback LOG_ID DOC_ID"), again.stderr)
    let evaluated = try Shell.vdb(["eval", "-c", "s", "--from-log", "--db", db])
    XCTAssertTrue(
      evaluated.stdout.contains("note: the model was fitted on 40 of these queries"),
      evaluated.stdout)
    let diagnosis = try Shell.vdb(["eval", "-c", "s", "--diagnose", "--db", db])
    XCTAssertTrue(
      diagnosis.stdout.contains("note: the model was fitted on 40 of these queries"),
      diagnosis.stdout)
    for args in [["--from-log"], ["--diagnose"]] {
      let json = try Shell.vdb(["eval", "-c", "s", "--json", "--db", db] + args)
      XCTAssertTrue(json.stdout.contains("\"in_sample\":40"), json.stdout)
    }
    XCTAssertEqual(try collection.loggedJudgements().inSample, 40)
    XCTAssertEqual(try collection.loggedJudgements(unseen: true).queries.count, 0)
    let unseen = try Shell.vdb(["eval", "-c", "s", "--from-log", "--unseen", "--db", db])
    XCTAssertEqual(unseen.status, 1, unseen.stderr)
    XCTAssertTrue(unseen.stderr.contains("every one of the 40 logged queries"), unseen.stderr)

    // Queries judged since vote; the earlier ones still train. A trained text asked again
    // in other case and spacing is the same text to the encoder: it does not vote either.
    let judged = try collection.judgements().relevant
    let asked = judged.keys.sorted().prefix(6)
    try collection.judge(asked.map { Judgement(query: "in short: " + $0, relevant: judged[$0]!) })
    let repeated = judged.keys.sorted()[10]
    try collection.judge([
      Judgement(query: "  " + repeated.uppercased() + " ", relevant: judged[repeated]!)
    ])
    let dryRun = try Shell.vdb(["train", "-c", "s", "--tier", "adapter", "--dry-run", "--db", db])
    XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
    XCTAssertTrue(
      dryRun.stdout.contains("the gate cross-fits 3 folds: 6 judged queries vote"), dryRun.stdout)
    XCTAssertTrue(
      dryRun.stdout.contains("41 judged queries trained the current retriever"), dryRun.stdout)
    let fresh = try Shell.vdb(["eval", "-c", "s", "--from-log", "--unseen", "--json", "--db", db])
    XCTAssertEqual(fresh.status, 0, fresh.stderr)
    XCTAssertTrue(fresh.stdout.contains("\"queries\":6"), fresh.stdout)
    XCTAssertTrue(fresh.stdout.contains("\"in_sample\":0"), fresh.stdout)
    let trained = try Shell.vdb([
      "train", "-c", "s", "--tier", "adapter", "--batch-size", "8", "--force", "--db", db,
    ])
    XCTAssertTrue(
      trained.stdout.contains(
        "gate: 6 judged queries, out of fold (3 folds); 41 more trained the current retriever"),
      trained.stdout)
    try collection.rollback()  // the adapter it promoted: the next run starts where this one did
    let second = try collection.train(options: options)
    XCTAssertEqual(second.data.judgedQueries, 47)
    XCTAssertEqual(second.data.trainQueries, 47)
    XCTAssertEqual(second.data.alreadyTrained, 41)
    XCTAssertEqual(second.gate.queries, 6)
    XCTAssertEqual(
      Set(second.changes.map(\.query)).subtracting(asked.map { "in short: " + $0 }), [],
      "only the new queries were judged")

    // What counts is what serves: without the adapters, every query votes again.
    try collection.activate(model: 1)
    XCTAssertEqual(try collection.trainingData(options: options).alreadyTrained, 0)
    XCTAssertEqual(try collection.trainingData(options: options).heldOutQueries, 47)

    // A version counts what its ancestors were fitted on (the adapter's parent is v1).
    let database = collection.database
    let store = database.models
    let earlier = Set(["an earlier fine-tune's query"].map(DocumentCollection.queryHash))
    try database.environment.write { txn in
      try store.setTrainedQueries(earlier, version: 1, in: txn)
    }
    let lineage = try database.environment.read { txn in
      try store.trainedQueries(lineageOf: [second.modelVersion], path: db, in: txn)
    }
    XCTAssertEqual(
      lineage,
      earlier.union(
        (Array(judged.keys) + asked.map { "in short: " + $0 }).map(DocumentCollection.queryHash)))
    // A part that is not whole hashes is damage, named by verify and by training.
    try database.environment.write { txn in
      try txn.put(
        store.blobs, key: ModelBlobKey(version: 1, part: .trainedQueries),
        value: [UInt8](repeating: 1, count: 7))
    }
    XCTAssertThrowsError(try collection.trainingData(options: options)) {
      XCTAssertTrue("\($0)".contains("trained_queries part of model version 1"), "\($0)")
    }
    XCTAssertTrue(
      try database.verifyReport().problems.contains { $0.contains("trained_queries") },
      "verify names the part")
  }

  func testGateRejectsAnAdapterTrainedOnWrongLabels() throws {
    let collection = try prepare(shuffled: true)
    var options = TrainingOptions()
    options.tier = .adapter
    options.batchSize = 8
    options.heldOutFraction = 0.3
    let report = try collection.train(options: options)
    XCTAssertFalse(report.promoted, report.reason)
    XCTAssertNil(try collection.generations().first?.adapter, "nothing maps the queries")
    let stored = try collection.database.modelVersions().last!
    XCTAssertEqual(stored.kind, .adapter)
    XCTAssertEqual(stored.state, .rejected)
  }

  /// The LoRA tier from the shell: stored as a small delta over its parent and merged into
  /// the parent's weights at load; a promoted candidate answers from its own generation.
  func testLoRATierStoresADeltaAndServesTheMergedModel() throws {
    _ = try prepare(shuffled: false)
    let trained = try Shell.vdb([
      "train", "-c", "s", "--tier", "lora", "--lora-rank", "8", "--batch-size", "8",
      "--epochs", "1", "--hard-negatives", "1", "--folds", "1", "--force", "--json", "--db", db,
    ])
    XCTAssertEqual(trained.status, 0, trained.stderr)
    let report = try JSONDecoder().decode(TrainingReport.self, from: Data(trained.stdout.utf8))
    XCTAssertEqual(report.tier, .lora)
    XCTAssertTrue(report.promoted)
    let database = try Database(path: db)
    let model = try database.model(version: report.modelVersion)
    XCTAssertEqual(model.kind, .encoder)
    XCTAssertEqual(model.parent, 1)
    XCTAssertTrue(model.hasWeights)
    XCTAssertLessThan(
      model.weightsBytes * 20, try database.model(version: 1).weightsBytes,
      "a LoRA version stores its adapters, not the weights")
    let query = "vitamin d and bone density"
    let encoder = try database.encoder(version: report.modelVersion)
    XCTAssertNotEqual(encoder.embed(query), try database.encoder(version: 1).embed(query))
    let reopened = try database.collection("s", create: false)
    XCTAssertEqual(try reopened.generations().last?.model, report.modelVersion)
    XCTAssertEqual(
      try reopened.query(text: query, k: 5, log: false, mode: .dense).hits.map(\.id),
      try reopened.query(vector: encoder.embed(query), k: 5, log: false).hits.map(\.id))
    try database.verify()  // a LoRA version's parts are its adapters and settings
  }

  /// The adapter tier from the shell: trained over the stored vectors (no new
  /// generation), applied to text queries once active, undone by rollback.
  func testAdapterTierMapsQueriesWithoutReembedding() throws {
    let collection = try prepare(shuffled: false)
    func heldOut(_ share: String) throws -> Int {
      let dryRun = try Shell.vdb(
        [
          "train", "-c", "s", "--dry-run", "--folds", "1", "--held-out", share, "--json", "--db",
          db,
        ])
      XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
      return try JSONDecoder().decode(TrainingData.self, from: Data(dryRun.stdout.utf8))
        .heldOutQueries
    }
    XCTAssertLessThan(try heldOut("0.2"), try heldOut("0.6"))
    XCTAssertEqual(try Shell.vdb(["train", "-c", "s", "--held-out", "1", "--db", db]).status, 2)
    let query = "vitamin d and bone density"
    let before = try collection.query(text: query, k: 5, log: false, mode: .dense)
    let trained = try Shell.vdb([
      "train", "-c", "s", "--tier", "adapter", "--batch-size", "8", "--force", "--json", "--db", db,
    ])
    XCTAssertEqual(trained.status, 0, trained.stderr)
    let report = try JSONDecoder().decode(TrainingReport.self, from: Data(trained.stdout.utf8))
    XCTAssertEqual(report.tier, .adapter)
    XCTAssertTrue(report.promoted)
    XCTAssertLessThan(
      report.losses.suffix(5).reduce(0, +), report.losses.prefix(5).reduce(0, +),
      "the ranking loss falls")
    let database = try Database(path: db)
    let model = try database.model(version: report.modelVersion)
    XCTAssertEqual(model.kind, .adapter)
    XCTAssertEqual(model.parent, 1)
    let reopened = try database.collection("s", create: false)
    XCTAssertEqual(
      try reopened.generations().map { [$0.id, $0.model, $0.adapter] },
      [[1, 1, report.modelVersion]], "the same generation, its queries mapped")

    // A text query is the encoder's vector mapped by the adapter.
    let adapter = try database.queryAdapter(version: report.modelVersion)
    let mapped = adapter.apply(to: try database.encoder(version: 1).embed([query]))[0]
    let byText = try reopened.query(text: query, k: 5, log: false, mode: .dense)
    XCTAssertEqual(
      byText.hits.map(\.id), try reopened.query(vector: mapped, k: 5, log: false).hits.map(\.id))
    XCTAssertNotEqual(byText.hits.map(\.score), before.hits.map(\.score))
    let logged = try reopened.query(text: query, k: 1)
    XCTAssertEqual(try database.logEntry(logged.logID!)?.adapter, report.modelVersion)

    // Rollback undoes the adapter at once; activate brings it back.
    XCTAssertEqual(try Shell.vdb(["models", "rollback", "-c", "s", "--db", db]).status, 0)
    XCTAssertEqual(try reopened.query(text: query, k: 5, log: false, mode: .dense), before)
    try reopened.activate(model: report.modelVersion)
    XCTAssertEqual(try reopened.query(text: query, k: 5, log: false, mode: .dense), byText)

    // A rebuild with the same model keeps the adapter; rollback returns to generation 1.
    try reopened.reembed(all: true)
    XCTAssertEqual(try reopened.generations().last?.adapter, report.modelVersion)
    XCTAssertEqual(
      try reopened.query(text: query, k: 5, log: false, mode: .dense).hits.map(\.id),
      byText.hits.map(\.id))
    try reopened.rollback()
    XCTAssertEqual(try reopened.generations().first { $0.state == .active }?.id, 1)

    try reopened.activate(model: 1)
    XCTAssertEqual(
      try reopened.query(text: query, k: 5, log: false, mode: .dense), before, "adapter off")
  }

  func testKilledRunLeavesTheDatabaseAsItWasAndResumes() throws {
    _ = try prepare(shuffled: false)
    let before = try Shell.vdb([
      "query", "-c", "s", "vitamin d and bone density", "--no-log", "--json", "--db", db,
    ]).stdout
    let run = try Shell.startGroup(
      "'\(Shell.binary)' train -c s --folds 2 --epochs 2 --hard-negatives 0 --batch-size 4 --checkpoint-every 2 --db '\(db)' > /dev/null"
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
