import Foundation
import XCTest

@testable import VectorDB

/// `vdb route` through the real binary: the whole flow, bad input with its exit codes, and a
/// training run killed with SIGKILL that leaves the active version serving.
final class RouteProcessTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }
  static let tools = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../tools").standardized.path

  override func setUpWithError() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    directory = try Shell.temporaryDirectory("route")
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  @discardableResult
  private func vdb(_ arguments: [String], status: Int32 = 0) throws -> Shell.Result {
    let result = try Shell.vdb(arguments + ["--db", db])
    XCTAssertEqual(result.status, status, "vdb \(arguments): \(result.stderr)")
    return result
  }

  private func createAndImport() throws {
    try vdb([
      "route", "create", "docs", "storage=1", "search=1", "training=1", "shell=1", "general=4",
      "--escalation", "general",
    ])
    try vdb(["route", "import", "-r", "docs", Self.tools + "/route-examples.jsonl"])
  }

  func testFlowAndBadInput() throws {
    // A router with one path, an unknown escalation path: user errors, nothing created.
    var result = try vdb(["route", "create", "one", "only"], status: 1)
    XCTAssertTrue(result.stderr.contains("at least two paths"), result.stderr)
    try vdb(["route", "create", "two", "a", "b", "--escalation", "c"], status: 1)
    try vdb(["route", "create", "bad", "a=cheap", "b"], status: 1)
    result = try vdb(["route", "create", "hex", "a=0x10", "b"], status: 1)
    XCTAssertTrue(result.stderr.contains("is not a number"), result.stderr)
    XCTAssertEqual(try vdb(["route", "list", "--json"]).stdout, "")

    try createAndImport()
    // A bad line names file and line; nothing of the file is imported.
    let bad = directory + "/bad.jsonl"
    try Data(
      (#"{"input": "fine", "path": "shell"}"# + "\n" + #"{"input": "x", "path": "web"}"# + "\n")
        .utf8
    ).write(to: URL(fileURLWithPath: bad))
    result = try vdb(["route", "import", "-r", "docs", bad], status: 1)
    XCTAssertTrue(result.stderr.contains("\(bad):2: unknown path \"web\""), result.stderr)
    let empty = directory + "/empty.jsonl"
    try Data().write(to: URL(fileURLWithPath: empty))
    result = try vdb(["route", "import", "-r", "docs", empty], status: 1)
    XCTAssertTrue(result.stderr.contains("no examples"), result.stderr)
    // Routing before any training says what to do.
    result = try vdb(["route", "-r", "docs", "how do I delete a document"], status: 1)
    XCTAssertTrue(result.stderr.contains("vdb route train -r docs"), result.stderr)
    try vdb(["route", "train", "-r", "docs", "--max-escalation", "2"], status: 2)
    result = try vdb(["route", "train", "-r", "docs", "--classifier", "knn"], status: 2)
    XCTAssertTrue(result.stderr.contains("nearest_examples"), result.stderr)

    result = try vdb(["route", "train", "-r", "docs", "--max-escalation", "0.3", "--json"])
    let report = try JSONDecoder().decode(RouterTrainingReport.self, from: Data(result.stdout.utf8))
    XCTAssertTrue(report.activated, report.reason)
    XCTAssertEqual(report.examples.count, 5)
    XCTAssertEqual(report.warnings, [])
    XCTAssertTrue(result.stdout.contains(#""warnings":[]"#), result.stdout)

    result = try vdb([
      "route", "-r", "docs", "--json", "how do I delete a document",
      "which tables does the database have",
    ])
    let lines = result.stdout.split(separator: "\n")
    XCTAssertEqual(lines.count, 2)
    let decision = try JSONDecoder().decode(RouteDecision.self, from: Data(lines[0].utf8))
    XCTAssertNotNil(decision.logID)
    for key in [#""path""#, #""confidence""#, #""probabilities""#, #""escalated""#, #""log_id""#] {
      XCTAssertTrue(lines[0].contains(key), String(lines[0]))
    }
    try vdb([
      "route", "log", "-r", "docs", "--id", String(decision.logID!), "--path", decision.path,
      "--outcome", "good",
    ])
    try vdb(
      ["route", "log", "-r", "docs", "--id", "12345", "--path", "shell", "--outcome", "good"],
      status: 1)
    try vdb(
      ["route", "log", "-r", "docs", "--input", "x", "--path", "shell", "--outcome", "fine"],
      status: 2)
    // The log: the decision with its outcome, then the second one, still pending.
    result = try vdb([
      "route", "entries", "-r", "docs", "--after", String(decision.logID! - 1), "--json",
    ])
    let entries = try result.stdout.split(separator: "\n").map {
      try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    XCTAssertEqual(
      entries.map { $0["input"] as? String },
      ["how do I delete a document", "which tables does the database have"])
    XCTAssertEqual(entries[0]["outcomes"] as? [String: String], [decision.path: "good"])
    XCTAssertTrue(entries[0]["label"] is NSNull, result.stdout)
    result = try vdb(["route", "entries", "-r", "docs", "--pending"])
    XCTAssertTrue(result.stdout.contains("which tables does the database have"), result.stdout)
    XCTAssertFalse(result.stdout.contains("how do I delete a document"), result.stdout)
    try vdb(["route", "entries", "-r", "docs", "--limit", "0"], status: 2)
    try vdb(["route", "entries", "-r", "nope"], status: 1)
    result = try vdb(["route", "diagnose", "-r", "docs", "--json"])
    XCTAssertTrue(result.stdout.contains(#""judged":1"#), result.stdout)
    result = try vdb(["route", "eval", "-r", "docs", Self.tools + "/route-test.jsonl", "--json"])
    XCTAssertTrue(result.stdout.contains(#""macro_f1""#), result.stdout)
    try vdb(["route", "eval", "-r", "nope", Self.tools + "/route-test.jsonl"], status: 1)

    // A classifier asked for by name is the one trained (and the report does not say it
    // was chosen).
    result = try vdb(["route", "train", "-r", "docs", "--classifier", "nearest_examples"])
    XCTAssertTrue(result.stdout.contains("nearest examples"), result.stdout)
    XCTAssertFalse(result.stdout.contains("chosen on the training split"), result.stdout)
    XCTAssertFalse(result.stderr.contains("warning:"), result.stderr)
    // The inputs' vectors were stored by the first run: this one embedded only the input
    // of the decision with an outcome.
    XCTAssertTrue(result.stdout.contains("embedded 1 of 111 inputs"), result.stdout)

    // Switching by hand and back; the JSON lines say which version serves.
    func active(_ result: Shell.Result) throws -> [Bool?] {
      try result.stdout.split(separator: "\n").map {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])[
          "active"] as? Bool
      }
    }
    try vdb(["route", "versions", "-r", "docs", "--activate", "1"])
    result = try vdb(["route", "versions", "-r", "docs", "--activate", "2", "--json"])
    XCTAssertEqual(try active(result), [false, true], result.stdout)
    result = try vdb(["route", "rollback", "-r", "docs", "--json"])
    XCTAssertEqual(try active(result), [true, false], result.stdout)

    // Dropped: gone from the list, a second drop and routing are "no router" (exit 1).
    XCTAssertEqual(
      try vdb(["route", "drop", "docs", "--json"]).stdout, #"{"dropped":"docs"}"# + "\n")
    XCTAssertEqual(try vdb(["route", "list", "--json"]).stdout, "")
    result = try vdb(["route", "drop", "docs"], status: 1)
    XCTAssertTrue(result.stderr.contains(#""docs""#), result.stderr)
    try vdb(["route", "-r", "docs", "how do I delete a document"], status: 1)
    XCTAssertEqual(try vdb(["verify"]).status, 0)
  }

  /// A router whose escalation path is often the best one, trained with a low
  /// --max-escalation: the threshold sends inputs the classifier is sure need "general"
  /// elsewhere, and `route train` warns (stderr; `warnings` with --json).
  func testLowEscalationTargetWarnsOfSureEscalationsSentElsewhere() throws {
    try vdb([
      "route", "create", "common", "search=1", "training=1", "general=4", "--escalation",
      "general",
    ])
    let lines = try String(contentsOfFile: Self.tools + "/route-examples.jsonl", encoding: .utf8)
    let file = directory + "/common.jsonl"
    try Data(lines.replacing(#/"path": "(storage|shell)"/#, with: #""path": "general""#).utf8)
      .write(to: URL(fileURLWithPath: file))
    try vdb(["route", "import", "-r", "common", file])
    let warning =
      #/warning: at threshold 0\.0\d\d \(chosen for --max-escalation 0\.1\) the router sends [1-9]\d* of the \d+ held-out inputs it gives to "general" with probability ≥ 0\.9 to another path; escalating them all takes a threshold above 0\.\d+, which escalates 0\.\d+ of the held-out inputs at quality [01]\.\d+\n/#
    var result = try vdb(["route", "train", "-r", "common", "--max-escalation", "0.1"])
    XCTAssertNotNil(result.stderr.firstMatch(of: warning), result.stderr)
    XCTAssertFalse(result.stdout.contains("warning"), result.stdout)

    result = try vdb(["route", "train", "-r", "common", "--max-escalation", "0.1", "--json"])
    let report = try JSONDecoder().decode(RouterTrainingReport.self, from: Data(result.stdout.utf8))
    XCTAssertEqual(report.warnings.count, 1, result.stdout)
    let reported = try XCTUnwrap(report.warnings.first, result.stdout)
    XCTAssertNotNil(("warning: " + reported + "\n").wholeMatch(of: warning), reported)
    XCTAssertFalse(result.stderr.contains("warning:"), "--json: the report carries it")
  }

  func testKilledTrainingLeavesTheActiveVersionServing() throws {
    // The epoch choice (cross-validation, no progress line) runs first: kill it there, once
    // the inputs are embedded.
    try killTraining("--epochs 1000000", whenLogShows: "embed 100%")
  }

  /// The LoRA tier, killed while it trains the encoder.
  func testKilledLoRATrainingLeavesTheActiveVersionServing() throws {
    try killTraining("--tier lora --lora-epochs 100", whenLogShows: "cross-validate lora ")
  }

  /// Trains and activates a first version, starts `vdb route train ARGUMENTS`, kills it with
  /// SIGKILL once its progress shows `marker`, and checks the first version still serves.
  private func killTraining(_ arguments: String, whenLogShows marker: String) throws {
    try createAndImport()
    try vdb(["route", "train", "-r", "docs"])
    let question = ["route", "-r", "docs", "--no-log", "--json", "how are row ids assigned"]
    let before = try vdb(question).stdout
    let log = directory + "/train.log"
    let run = try Shell.startGroup(
      "'\(Shell.binary)' route train -r docs \(arguments) --seed 3 --db '\(db)' 2> '\(log)'")
    // Wait until the run is in its training loop, then kill it.
    let deadline = Date().addingTimeInterval(300)
    var reached = false
    while !reached && Date() < deadline {
      reached = (try? String(contentsOfFile: log, encoding: .utf8))?.contains(marker) ?? false
      if !reached { usleep(100_000) }
    }
    XCTAssertTrue(reached, "the run's progress should show \"\(marker)\" before it is killed")
    XCTAssertTrue(Shell.killGroup(run).killed, "the run should still be training")
    let database = try Database(path: db)
    try database.verify()
    let (versions, active) = try database.router("docs").versions()
    XCTAssertEqual(versions.map(\.version), [1], "nothing of the killed run was stored")
    XCTAssertEqual(active, 1)
    XCTAssertEqual(try vdb(question).stdout, before, "the active version answers as before")
  }
}
