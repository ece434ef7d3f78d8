import Foundation
import XCTest

@testable import VectorDB

/// The training gate and model storage: pooled evaluation, folds, refusals, pruning, and a
/// promoted candidate's re-embed killed half-way.
final class TrainGateTests: ShellTestCase {
  override func setUpWithError() throws {
    try super.setUpWithError()
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  /// The gate's pooled evaluation is the full evaluation when the pool is the corpus, and
  /// close to it when the pool is the current top 20 of 200 documents.
  func testPoolEvaluationEqualsFullEvaluationWhenThePoolIsTheCorpus() throws {
    let collection = try SciFactSlice.make(database: db)
    let logged = try collection.loggedJudgements()
    let (queries, qrels) = (logged.queries, logged.qrels)
    let full = try collection.evaluate(
      queries: queries, qrels: qrels, exact: true, perQuery: true, mode: .dense)
    let pooled = try collection.evaluate(queries: queries, qrels: qrels, model: 1, pool: 1_000)
    XCTAssertEqual(pooled.queries, full.queries)
    for (key, value) in full.metrics {
      XCTAssertEqual(pooled.metrics[key]!, value, accuracy: 1e-6, key)
    }
    let small = try collection.evaluate(queries: queries, qrels: qrels, model: 1, pool: 20)
    // The current model re-scoring its own top 20 plus the judged documents: its top 10
    // is unchanged, so nDCG@10 is too.
    XCTAssertEqual(small.metrics["ndcg@10"]!, full.metrics["ndcg@10"]!, accuracy: 1e-6)
  }

  /// `vdb train` with no flags trains on the library's recipe: the dry run mines what
  /// `TrainingOptions()` mines.
  func testTheShellsDefaultsAreTheLibrarysRecipe() throws {
    let collection = try SciFactSlice.make(database: db)
    let library = try collection.trainingData(options: TrainingOptions())
    let dryRun = try Shell.vdb(["train", "-c", "s", "--dry-run", "--json", "--db", db])
    XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
    let shell = try JSONDecoder().decode(TrainingData.self, from: Data(dryRun.stdout.utf8))
    XCTAssertEqual(shell.trainPairs, library.trainPairs)
    XCTAssertEqual(shell.negatives, library.negatives)
    XCTAssertGreaterThan(shell.negatives, 0)
  }

  func testFoldsCoverEveryQueryOnceAndDependOnlyOnTextAndSeed() {
    let texts = (0..<103).map { "query \($0)" }
    let folds = DocumentCollection.folds(of: texts, count: 5, heldOutFraction: 0.2, seed: 7)
    XCTAssertEqual(folds.count, 5)
    XCTAssertEqual(folds.flatMap { $0 }.sorted(), texts.sorted())
    XCTAssertEqual(Set(folds.map(\.count)), [20, 21])
    XCTAssertEqual(
      DocumentCollection.folds(of: texts.reversed(), count: 5, heldOutFraction: 0.2, seed: 7)
        .map { $0.sorted() }, folds.map { $0.sorted() })
    let split = DocumentCollection.folds(of: texts, count: 1, heldOutFraction: 0.2, seed: 7)
    XCTAssertEqual(split.count, 1)
    XCTAssertTrue((10...32).contains(split[0].count), "about a fifth held out")
    XCTAssertEqual(TrainingOptions().foldCount(judged: 113), 3)
    XCTAssertEqual(TrainingOptions().foldCount(judged: 809), 1)
  }

  func testTrainingRefusalsSayWhatIsMissingAndChangeNothing() throws {
    let database = try Database(path: db)
    try database.importModel(directory: DefaultModel.directory)
    let collection = try database.collection("s")
    try collection.upsert([Document(id: "a", text: "alpha"), Document(id: "b", text: "beta")])
    let untrained = try Shell.vdb(["train", "-c", "s", "--db", db])
    XCTAssertEqual(untrained.status, 1, untrained.stderr)
    XCTAssertTrue(untrained.stderr.contains("0 judged queries"), untrained.stderr)
    XCTAssertTrue(untrained.stderr.contains("vdb feedback"), untrained.stderr)
    let resume = try Shell.vdb(["train", "-c", "s", "--resume", "--db", db])
    XCTAssertEqual(resume.status, 1, resume.stderr)
    XCTAssertTrue(resume.stderr.contains("no interrupted training run"), resume.stderr)
    let length = try Shell.vdb(["train", "-c", "s", "--max-seq-length", "1", "--db", db])
    XCTAssertEqual(length.status, 2, "an option out of range: \(length.stderr)")
    XCTAssertTrue(length.stderr.contains("max sequence length"), length.stderr)
    let dryRun = try Shell.vdb(["train", "-c", "s", "--dry-run", "--db", db])
    XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
    XCTAssertTrue(dryRun.stdout.contains("voting queries are needed"), dryRun.stdout)
    XCTAssertEqual(try database.modelVersions().count, 1)
    XCTAssertEqual(try collection.generations().map(\.model), [1])
  }

  /// A second `vdb train` on a collection that a live process trains is refused, naming
  /// the process; once that process is gone, training starts again.
  func testASecondTrainingRunIsRefusedWhileOneIsAlive() throws {
    let collection = try SciFactSlice.make(database: db)
    let key = "collection.\(collection.id).train.owner"
    let run = try Shell.startGroup(
      "'\(Shell.binary)' train -c s --epochs 20 --batch-size 4 --db '\(db)' > /dev/null")
    let deadline = Date().addingTimeInterval(120)
    var claimed = false
    while !claimed && Date() < deadline {
      claimed = try collection.read { txn in
        try txn.get(collection.schema.meta, key: key) != nil
      }
      if !claimed { usleep(100_000) }
    }
    XCTAssertTrue(claimed, "the first run records itself")
    let second = try Shell.vdb(["train", "-c", "s", "--db", db])
    XCTAssertEqual(second.status, 1, second.stderr)
    XCTAssertTrue(second.stderr.contains("is busy: a training run in process"), second.stderr)
    XCTAssertTrue(Shell.killGroup(run).killed)
    let dryRun = try Shell.vdb(["train", "-c", "s", "--dry-run", "--db", db])
    XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
  }

  /// A promoted candidate builds its generation as a re-embed job: killed half-way, the
  /// old model still answers, and `vdb reembed` finishes the switch.
  func testKilledReembedOfAPromotedCandidateResumes() throws {
    _ = try SciFactSlice.make(database: db)
    let query = [
      "query", "-c", "s", "vitamin d and bone density", "--no-log", "--json", "--db", db,
    ]
    let before = try Shell.vdb(query).stdout
    // Small re-embed batches make the job long enough to be caught half-way.
    let run = try Shell.startGroup(
      "'\(Shell.binary)' train -c s --folds 1 --epochs 1 --hard-negatives 0 --batch-size 8"
        + " --reembed-batch-size 2 --force --db '\(db)' > /dev/null")
    let deadline = Date().addingTimeInterval(300)
    var building: GenerationInfo?
    while building == nil && Date() < deadline {
      let generations = try Database(path: db).collection("s", create: false).generations()
      building = generations.first { $0.state == .building && $0.vectors > 0 }
      if building == nil { usleep(50_000) }
    }
    XCTAssertNotNil(building, "the promoted candidate's generation is being built")
    XCTAssertTrue(Shell.killGroup(run).killed, "killed while re-embedding")
    let database = try Database(path: db)
    try database.verify()
    XCTAssertEqual(try database.model(version: 2).state, .ready, "the candidate is stored")
    XCTAssertEqual(try Shell.vdb(query).stdout, before, "the old model still answers")
    let resumed = try Shell.vdb(["reembed", "-c", "s", "--json", "--db", db])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertTrue(resumed.stdout.contains("\"resumed\":true"), resumed.stdout)
    let generations = try database.collection("s", create: false).generations()
    XCTAssertEqual(generations.first { $0.state == .active }?.model, 2)
  }

  /// Prune deletes what nothing needs and keeps what generations and rollback need.
  func testPruneKeepsWhatGenerationsAndRollbackNeed() throws {
    let database = try Database(path: db)
    try database.importModel(directory: DefaultModel.directory)
    let collection = try database.collection("s")
    try collection.upsert((0..<5).map { Document(id: "d\($0)", text: "document number \($0)") })
    let encoder = try database.encoder(version: 1)
    let store = database.models
    func add(parent: Int) throws -> Int {
      try database.environment.write { txn in
        try store.add(
          encoder: encoder, name: "copy", state: .ready, parent: parent, lineage: [:], in: txn)
      }.version
    }
    let v2 = try add(parent: 1)
    let v3 = try database.environment.write { txn in
      try store.addLineage(
        name: "rejected", parent: try database.model(version: v2), lineage: [:], in: txn)
    }.version
    let v4 = try add(parent: 1)
    try collection.reembed(to: v2)  // generation 2 active (v2), generation 1 retained (v1)
    XCTAssertThrowsError(try database.deleteModel(version: v2)) {
      guard case .modelInUse(let version, let user) = $0 as? VectorDBError else {
        return XCTFail("\($0)")
      }
      XCTAssertEqual(version, v2)
      XCTAssertTrue(user.contains("active"), user)
    }
    XCTAssertEqual(try database.pruneModels(dryRun: true), [v3, v4])
    XCTAssertEqual(try database.modelVersions().count, 4, "a dry run deletes nothing")
    let pruned = try Shell.vdb(["models", "prune", "--json", "--db", db])
    XCTAssertEqual(pruned.status, 0, pruned.stderr)
    XCTAssertTrue(pruned.stdout.contains("\"deleted\":[3,4]"), pruned.stdout)
    XCTAssertEqual(try database.modelVersions().map(\.version), [1, v2])
    try collection.rollback()
    XCTAssertEqual(try collection.query(text: "document", k: 1, log: false).hits.count, 1)
    let refused = try Shell.vdb(["models", "delete", "1", "--db", db])
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(refused.stderr.contains("the default model"), refused.stderr)
  }
}

/// `vdb train --report` writes a page that a real browser renders, with both plots.
final class TrainReportPageTests: XCTestCase {
  func testTheReportRendersInHeadlessChromiumWithItsPlots() throws {
    let directory = try Shell.temporaryDirectory("report")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = directory + "/db"
    _ = try SciFactSlice.make(database: db)
    let page = directory + "/train.html"
    let trained = try Shell.vdb([
      "train", "-c", "s", "--tier", "adapter", "--batch-size", "8", "--report", page, "--db", db,
    ])
    XCTAssertEqual(trained.status, 0, trained.stderr)
    let html = try String(contentsOfFile: page, encoding: .utf8)
    XCTAssertFalse(html.contains("http://") || html.contains("https://"), "no network")
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first {
      FileManager.default.isExecutableFile(atPath: $0)
    }
    guard let chromium else {
      return XCTFail("chromium is missing: tools/setup.sh installs it")
    }
    let flags = "--headless --no-sandbox --disable-gpu --no-first-run"
    let rendered = try bash("'\(chromium)' \(flags) --dump-dom 'file://\(page)' 2>/dev/null")
    XCTAssertTrue(rendered.contains("<svg id=\"loss-curve\""), "the loss curve is in the DOM")
    XCTAssertTrue(rendered.contains("<polyline"), "the curve is drawn")
    XCTAssertTrue(rendered.contains("<svg id=\"interval\""), "the interval plot is in the DOM")
    let shot = directory + "/shot.png"
    _ = try bash(
      "'\(chromium)' \(flags) --window-size=1000,1400 --screenshot='\(shot)' 'file://\(page)'"
        + " >/dev/null 2>&1")
    let png = try Data(contentsOf: URL(fileURLWithPath: shot))
    XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG screenshot")
    XCTAssertGreaterThan(png.count, 10_000, "a page with content, not a blank")
  }

  /// Runs `script` with bash and returns what it printed.
  private func bash(_ script: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }
}
