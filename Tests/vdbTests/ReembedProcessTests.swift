import Embedding
import Foundation
import XCTest

@testable import VectorDB

/// Re-embedding with real processes: a job killed with SIGKILL again and again resumes
/// to the same result as a clean build, and queries from another process succeed
/// throughout, always against one complete generation.
final class ReembedProcessTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("reembed")
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// A copy of the default model with perturbed weights: a second, different model.
  private func perturbedModel() throws -> String {
    let source = DefaultModel.directory
    let target = directory + "/model2"
    try FileManager.default.createDirectory(
      atPath: target + "/1_Pooling", withIntermediateDirectories: true)
    for file in [
      "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
      "modules.json",
      "1_Pooling/config.json",
    ]
    where FileManager.default.fileExists(atPath: source + "/" + file) {
      try FileManager.default.copyItem(atPath: source + "/" + file, toPath: target + "/" + file)
    }
    var weights = try SafeTensors(contentsOf: URL(fileURLWithPath: source + "/model.safetensors"))
      .floatTensors()
    var query = weights["encoder.layer.0.attention.self.query.weight"]!
    for i in stride(from: 0, to: query.values.count, by: 5) { query.values[i] *= 1.4 }
    weights["encoder.layer.0.attention.self.query.weight"] = query
    try Data(SafeTensors.serialize(weights)).write(
      to: URL(fileURLWithPath: target + "/model.safetensors"))
    return target
  }

  private func prepare(documents: Int) throws {
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["init", "--db", db, "--model", try perturbedModel()]).status, 0)
    let lines = (0..<documents).map { i in
      #"{"_id": "d\#(String(format: "%04d", i))", "text": "record \#(i) on subject \#(i % 13) and detail \#(i % 7)"}"#
    }
    try Data(lines.joined(separator: "\n").utf8).write(
      to: URL(fileURLWithPath: directory + "/docs.jsonl"))
    XCTAssertEqual(
      try Shell.vdb(["import", directory + "/docs.jsonl", "-c", "c", "--db", db]).status, 0)
  }

  func testKilledJobResumesToACleanBuild() throws {
    try prepare(documents: 1500)
    var generator = SystemRandomNumberGenerator()
    var kills = 0
    for _ in 0..<10 {
      let job = try Shell.startGroup(
        "'\(Shell.binary)' reembed -c c --model 2 --batch-size 10 --db '\(db)'")
      usleep(UInt32.random(in: 200_000...700_000, using: &generator))
      if Shell.killGroup(job).killed { kills += 1 }
      // Whatever the moment of the kill, queries see one complete generation.
      let database = try Database(path: db)
      try database.verify()
      let collection = try database.collection("c")
      let active = try XCTUnwrap(try collection.generations().first { $0.state == .active })
      XCTAssertEqual(active.vectors, 1500, "the active generation is complete")
      if active.model == 2 { break }  // the job finished between two kills
    }
    XCTAssertGreaterThanOrEqual(kills, 3)
    let finish = try Shell.vdb(["reembed", "-c", "c", "--model", "2", "--db", db, "--json"])
    XCTAssertEqual(finish.status, 0, finish.stderr)
    // The result equals a clean embedding of every document with model 2.
    let database = try Database(path: db)
    let collection = try database.collection("c")
    XCTAssertEqual(try collection.generations().first { $0.state == .active }?.model, 2)
    let encoder = try database.encoder(version: 2)
    let plan = try XCTUnwrap(try collection.indexPlan())
    let documents = try collection.documents(limit: 10_000)
    XCTAssertEqual(documents.count, 1500)
    let expected = encoder.embed(documents.map(\.text))
    for (document, vector) in zip(documents, expected) {
      let row = try collection.read { txn in
        DocumentRecord.row(
          of: try txn.get(
            database.schema.docs, key: DocumentKey(collection: collection.id, id: document.id))!)
      }
      let stored = try XCTUnwrap(try collection.read { try plan.index.vector(of: row, in: $0) })
      let dot = zip(stored, vector).reduce(Float(0)) { $0 + $1.0 * $1.1 }
      XCTAssertGreaterThan(dot, 0.99999, document.id)
    }
    XCTAssertEqual(try collection.read { try plan.index.count(in: $0) }, 1500)
    // And its graph finds what exact search finds.
    let queries = (0..<50).map { "subject \($0 % 13) detail \($0 % 7)" }
    let approximate = try collection.query(
      texts: queries, options: QueryOptions(k: 10, log: false, mode: .dense))
    let exact = try collection.query(
      texts: queries, options: QueryOptions(k: 10, exact: true, log: false, mode: .dense))
    let found = zip(approximate, exact).map {
      Set($0.hits.map(\.id)).intersection($1.hits.map(\.id)).count
    }
    XCTAssertGreaterThanOrEqual(Double(found.reduce(0, +)) / 500, 0.95)
  }

  /// A job killed part-way is cancelled from the shell: its generation goes, the active
  /// one stays, and a job with another model may start.
  func testAKilledJobIsCancelledFromTheShell() throws {
    try prepare(documents: 600)
    let nothing = try Shell.vdb(["reembed", "-c", "c", "--cancel", "--db", db])
    XCTAssertEqual(nothing.status, 1)
    XCTAssertTrue(
      nothing.stderr.hasPrefix(#"error: collection "c" has no re-embed in progress to cancel"#),
      nothing.stderr)
    XCTAssertEqual(
      try Shell.vdb(["reembed", "-c", "c", "--cancel", "--model", "2", "--db", db]).status, 2)
    let job = try Shell.startGroup(
      "'\(Shell.binary)' reembed -c c --model 2 --batch-size 10 --db '\(db)'")
    // Until its first batch is committed (the job shows before that, with no vector).
    func vectorsBuilt() throws -> Int {
      let status = try Shell.vdb(["status", "--db", db, "--json"]).stdout
      let object = try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any]
      let collections = object?["collections"] as? [[String: Any]]
      return (collections?.first?["job"] as? [String: Any])?["vectors"] as? Int ?? 0
    }
    var waits = 0
    while try vectorsBuilt() == 0, waits < 300 {
      usleep(20_000)
      waits += 1
    }
    XCTAssertTrue(Shell.killGroup(job).killed, "killed before it finished")
    let cancelled = try Shell.vdb(["reembed", "-c", "c", "--cancel", "--json", "--db", db])
    XCTAssertEqual(cancelled.status, 0, cancelled.stderr)
    let dropped = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(cancelled.stdout.utf8)) as? [String: Any])
    XCTAssertEqual(dropped["id"] as? Int, 2)
    XCTAssertEqual(dropped["model"] as? Int, 2)
    XCTAssertGreaterThan(dropped["vectors"] as? Int ?? 0, 0)
    let database = try Database(path: db)
    try database.verify()
    let generations = try database.collection("c").generations()
    XCTAssertEqual(generations.map(\.id), [1])
    XCTAssertEqual(generations.first?.vectors, 600)
    let again = try Shell.vdb(["reembed", "-c", "c", "--model", "1", "--all", "--db", db])
    XCTAssertEqual(again.status, 0, again.stderr)
  }

  func testQueriesFromAnotherProcessSucceedThroughoutTheJob() throws {
    try prepare(documents: 400)
    let job = try Shell.startGroup(
      "'\(Shell.binary)' reembed -c c --model 2 --batch-size 20 --db '\(db)' > /dev/null; echo done"
    )
    var generations = Set<Int>()
    var failures: [String] = []
    while job.process.isRunning {
      let result = try Shell.vdb([
        "query", "-c", "c", "record 7 on subject 7", "-k", "3", "--json", "--db", db,
      ])
      if result.status != 0 { failures.append(result.stderr) }
      if let entry = try Database(path: db).logEntries(limit: 100_000).last {
        generations.insert(entry.generation)
      }
    }
    let (output, _) = Shell.killGroup(job)
    XCTAssertTrue(output.contains("done"))
    XCTAssertEqual(failures, [])
    XCTAssertTrue(
      generations.isSubset(of: [1, 2]), "queries saw generation 1, then 2: \(generations)")
    let after = try Shell.vdb([
      "query", "-c", "c", "record 7 on subject 7", "-k", "3", "--json", "--db", db,
    ])
    XCTAssertEqual(after.status, 0)
    XCTAssertEqual(try Database(path: db).logEntries(limit: 100_000).last?.generation, 2)
  }
}
