import Foundation
import XCTest

/// Every command's `--json` output follows one convention: snake_case keys, a log id
/// is always `log_id`, and an absent value is `null`, never a missing key.
final class JSONConventionTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("json")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// The JSON values a command printed (one document, or JSON Lines).
  private func run(_ arguments: [String], input: String? = nil) throws -> [Any] {
    let result = try Shell.vdb(arguments + ["--db", db], input: input)
    XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
    let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    if let whole = try? JSONSerialization.jsonObject(
      with: Data(text.utf8), options: .fragmentsAllowed)
    {
      return [whole]
    }
    return try text.split(separator: "\n").map {
      try JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed)
    }
  }

  /// Every key outside metadata is snake_case (metric names like `ndcg@10` included).
  private func checkKeys(_ value: Any, _ where: String) {
    if let object = value as? [String: Any] {
      for (key, inner) in object {
        XCTAssertNotNil(
          key.range(of: "^[a-z][a-z0-9_@]*$", options: .regularExpression),
          "\(`where`): key \"\(key)\"")
        if key != "metadata" && key != "lineage" { checkKeys(inner, `where`) }
      }
    } else if let array = value as? [Any] {
      for element in array { checkKeys(element, `where`) }
    }
  }

  /// The objects at one place of a command's output (its JSON Lines, the elements of
  /// an array) all have the same keys: none is left out where it has no value.
  private func checkSameKeys(_ values: [Any], _ where: String) {
    let objects = values.compactMap { $0 as? [String: Any] }
    guard let keys = objects.first.map({ Set($0.keys) }) else {
      for case let array as [Any] in values { checkSameKeys(array, `where`) }
      return
    }
    for object in objects {
      XCTAssertEqual(Set(object.keys), keys, "\(`where`): \(object)")
      for (key, inner) in object where key != "metadata" && key != "lineage" {
        if let array = inner as? [Any] { checkSameKeys(array, "\(`where`) \(key)") }
      }
    }
  }

  func testEveryCommandsJSON() throws {
    XCTAssertTrue(FileManager.default.fileExists(atPath: directory))
    var outputs: [(String, [Any])] = []
    func json(_ arguments: [String], input: String? = nil) throws -> [Any] {
      let values = try run(arguments + ["--json"], input: input)
      outputs.append((arguments.joined(separator: " "), values))
      return values
    }
    _ = try json(["init"])
    _ = try json(["collections", "create", "notes"])
    _ = try json(["collections", "create", "vectors", "--vectors", "2"])
    _ = try json(["collections", "rename", "vectors", "vecs"])
    _ = try json(
      ["import", "-", "-c", "notes"],
      input: #"{"id": "a", "text": "cats purr", "topicName": "pets"}"# + "\n"
        + #"{"id": "b", "text": "engines burn fuel", "metadata": {"kindOf": "cars"}}"#)
    _ = try json(["upsert", "-c", "notes", "--id", "c", "--text", "boats float"])
    _ = try json(["update", "-c", "notes", "c", "--meta", #"{"seaWorthy": true}"#])
    _ = try json(["get", "-c", "notes", "a", "b", "--include", "vector"])
    _ = try json(["count", "-c", "notes", "--filter", #"{"topicName": "pets"}"#])
    let query = try json(["query", "-c", "notes", "a kitten", "-k", "2"])
    let logID = try XCTUnwrap((query.first as? [String: Any])?["log_id"] as? Int)
    _ = try json(["feedback", String(logID), "a"])
    let judged = try json(["feedback", "-c", "notes", "--query", "fuel", "--doc", "b"])
    XCTAssertNotNil((judged.first as? [String: Any])?["log_id"])
    let log = try json(["log", "-c", "notes"])
    XCTAssertEqual(log.count, 2)
    for entry in log { XCTAssertNotNil((entry as? [String: Any])?["log_id"], "\(entry)") }
    _ = try json(["eval", "-c", "notes", "--diagnose"])
    _ = try json(["status"])
    _ = try json(["route", "create", "helpdesk", "faq=1", "agent=5", "--escalation", "agent"])
    _ = try json([
      "route", "log", "-r", "helpdesk", "--input", "refund", "--path", "faq", "--outcome", "good",
    ])
    _ = try json(["route", "entries", "-r", "helpdesk"])
    _ = try json(["route", "list"])
    let status = try XCTUnwrap(try json(["status"]).first as? [String: Any])
    XCTAssertEqual(status["default_model"] as? Int, 1)
    XCTAssertEqual(status["model_versions"] as? Int, 1)
    let router = try XCTUnwrap((status["routers"] as? [[String: Any]])?.first)
    XCTAssertTrue(router["active"] is NSNull, "\(router)")
    _ = try json(["route", "drop", "helpdesk"])
    _ = try json(["collections"])
    _ = try json(["models"])
    _ = try json(["delete", "-c", "notes", "--filter", #"{"kindOf": "cars"}"#, "--dry-run"])
    _ = try json(["delete", "-c", "notes", "c"])
    _ = try json(["backup", directory + "/backup"])
    _ = try json(["collections", "drop", "vecs"])
    for (command, values) in outputs {
      XCTAssertFalse(values.isEmpty, command)
      for value in values { checkKeys(value, command) }
      checkSameKeys(values, command)
    }
    // Absent values are null: a collection of given vectors has no model, the first
    // model no parent, a query no adapter or filter.
    _ = try json(["collections", "create", "given", "--vectors", "3"])
    let collections = try json(["collections"])
    let vecs = try XCTUnwrap(
      (collections.first as? [[String: Any]])?.first { $0["name"] as? String == "given" })
    for key in ["model", "adapter", "job"] {
      XCTAssertTrue(vecs[key] is NSNull, "\(key) in \(vecs)")
    }
    let models = try json(["models"])
    let first = try XCTUnwrap((models.first as? [String: Any])?["model"] as? [String: Any])
    XCTAssertTrue(first["parent"] is NSNull, "\(first)")
    let entry = try XCTUnwrap(log.first as? [String: Any])
    for key in ["adapter", "filter"] { XCTAssertTrue(entry[key] is NSNull, "\(key) in \(entry)") }
  }
}
